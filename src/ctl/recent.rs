//! `qerrorsctl recent`: the last events from the daemon's error history (`/recent`), one line
//! each or as JSON lines.

use std::process::ExitCode;

use crate::display::{json_visible as visible_json, visible};

use super::{client, fail};
use crate::event::level::Level;

/// The last `n` events, at least `level` and of `service` when given.
pub fn run(
    ctl: &client::Control,
    n: usize,
    level: Option<Level>,
    service: Option<String>,
    json: bool,
) -> ExitCode {
    let mut q = format!("/recent?n={n}");
    if let Some(l) = level {
        q.push_str(&format!("&level={}", l.as_str()));
    }
    if let Some(s) = service {
        q.push_str(&format!("&service={}", urlencode(&s)));
    }
    let rows = match ctl.json(&q) {
        Ok(serde_json::Value::Array(rows)) => rows,
        Ok(other) => return fail(&format!("unexpected reply: {other}")),
        Err(e) => return fail(&e.to_string()),
    };
    for r in rows {
        if json {
            println!("{}", visible_json(&r.to_string()));
        } else {
            let s = |k: &str| visible(r[k].as_str().unwrap_or("")).into_owned();
            let fp: String = s("fingerprint").chars().take(8).collect();
            println!(
                "{} {:5} {} {}{} [{}] x{}",
                s("received"),
                s("level"),
                s("service"),
                r["name"]
                    .as_str()
                    .map(|n| format!("{}: ", visible(n)))
                    .unwrap_or_default(),
                s("message"),
                fp,
                r["occurrence"],
            );
        }
    }
    ExitCode::SUCCESS
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
