//! `qerrorsctl advice FP`: the fix advice for one fingerprint (`/advice/FP`), given in full or
//! as a unique prefix of a tracked one (as `top` prints it), readable or as JSON.

use std::process::ExitCode;

use super::{client, fail};

/// `qerrorsctl advice FP`: exit 0 with the advice, 1 when there is none, 2 when unreachable.
pub fn run(ctl: &client::Control, fp: &str, json: bool) -> ExitCode {
    let mut fp = fp.trim().to_ascii_lowercase();
    if fp.len() < 32 {
        // A prefix, as `top` prints: resolve it against the tracked fingerprints.
        let rows = match ctl.json("/fingerprints?top=1000") {
            Ok(serde_json::Value::Array(rows)) => rows,
            Ok(other) => return fail(&format!("unexpected reply: {other}")),
            Err(e) => return fail(&e.to_string()),
        };
        let found: Vec<&str> = rows
            .iter()
            .filter_map(|r| r["fingerprint"].as_str())
            .filter(|f| !fp.is_empty() && f.starts_with(fp.as_str()))
            .collect();
        match found.as_slice() {
            [one] => fp = one.to_string(),
            [] => {
                eprintln!("qerrorsctl: no tracked fingerprint starts with `{fp}`");
                return ExitCode::from(1);
            }
            _ => {
                eprintln!(
                    "qerrorsctl: `{fp}` is ambiguous ({} fingerprints); give more digits",
                    found.len()
                );
                return ExitCode::from(1);
            }
        }
    }
    let (status, body) = match ctl.get(&format!("/advice/{fp}")) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    if status != 200 {
        eprintln!("qerrorsctl: {}", crate::display::visible(body.trim_end()));
        return ExitCode::from(1);
    }
    let v: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return fail(&format!("not JSON: {e}")),
    };
    if json {
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        println!("{}", crate::display::json_visible(&text));
        return ExitCode::SUCCESS;
    }
    let a = &v["advice"];
    let s = |v: &serde_json::Value| crate::display::visible(v.as_str().unwrap_or("")).into_owned();
    println!("fingerprint  {}", s(&v["fingerprint"]));
    println!(
        "source       {}{}",
        s(&v["source"]),
        a["rule"]
            .as_str()
            .map(|r| format!(" ({})", crate::display::visible(r)))
            .unwrap_or_default()
    );
    println!(
        "confidence   {:.2}",
        a["confidence"].as_f64().unwrap_or_default()
    );
    println!("summary      {}", s(&a["summary"]));
    println!("likely cause {}", s(&a["likely_cause"]));
    println!("fix:");
    for (i, step) in a["fix_steps"].as_array().into_iter().flatten().enumerate() {
        println!("  {}. {}", i + 1, s(step));
    }
    println!(
        "event        {}   (expires {})",
        s(&v["event_id"]),
        s(&v["expires"])
    );
    ExitCode::SUCCESS
}
