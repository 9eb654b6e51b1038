//! `qerrorsctl send`: one error event built from the flags, or NDJSON events from stdin, sent
//! to the daemon's socket; with `--wait` each event asks for an ack and the ids are printed.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::{client, fail};
use crate::event::level::Level;

/// What `qerrorsctl send` takes (the flags of its `--help`).
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// The error message; `-` reads NDJSON lines from stdin instead.
    pub message: Option<String>,
    /// trace, debug, info, warn, error or fatal, or an alias the daemon accepts (warning, err,
    /// critical, …); sent as the canonical name.
    #[arg(long, default_value = "error", value_parser = super::parse_level)]
    pub level: Level,
    /// Error class/type, e.g. TypeError.
    #[arg(long)]
    pub name: Option<String>,
    /// Service name (default: the daemon uses this process's name).
    #[arg(long)]
    pub service: Option<String>,
    /// Stack trace text.
    #[arg(long)]
    pub stack: Option<String>,
    /// Context object as JSON, e.g. '{"path":"/api"}'.
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    /// A tag, repeatable: --tag region=eu.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Wait until each event is written to the log (asks for acks) and print the ids.
    #[arg(long)]
    pub wait: bool,
    /// Seconds to wait for replies.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// Exit 0 when every event was accepted (and, with `wait`, confirmed), 1 when some were
/// rejected or not confirmed in time, 2 on unusable input or an unreachable daemon.
pub fn run(socket: &Path, args: SendArgs) -> ExitCode {
    let SendArgs {
        message,
        level,
        name,
        service,
        stack,
        context,
        tags,
        wait,
        timeout,
    } = args;
    let lines = match message.as_deref() {
        Some("-") | None if !std::io::stdin().is_terminal() || message.is_some() => {
            match read_stdin(wait) {
                Ok(l) => l,
                Err(e) => return fail(&e),
            }
        }
        None => return fail("nothing to send: give a MESSAGE or pipe NDJSON into `send -`"),
        Some(m) => {
            let mut ev = serde_json::Map::new();
            ev.insert("message".into(), m.into());
            ev.insert("level".into(), level.as_str().into());
            if let Some(n) = name {
                ev.insert("name".into(), n.into());
            }
            if let Some(s) = service {
                ev.insert("service".into(), s.into());
            }
            if let Some(s) = stack {
                ev.insert("stack".into(), s.into());
            }
            if let Some(c) = context {
                match serde_json::from_str::<serde_json::Value>(&c) {
                    Ok(v) => {
                        ev.insert("context".into(), v);
                    }
                    Err(e) => return fail(&format!("--context is not JSON: {e}")),
                }
            }
            if !tags.is_empty() {
                let mut t = serde_json::Map::new();
                for kv in &tags {
                    let Some((k, v)) = kv.split_once('=') else {
                        return fail(&format!("--tag {kv}: expected KEY=VALUE"));
                    };
                    t.insert(k.into(), v.into());
                }
                ev.insert("tags".into(), t.into());
            }
            if wait {
                ev.insert("ack".into(), true.into());
            }
            vec![serde_json::Value::Object(ev).to_string()]
        }
    };
    match client::send_lines(socket, &lines, Duration::from_secs(timeout)) {
        Ok(rep) => {
            for e in &rep.errors {
                eprintln!("rejected: {}", crate::display::json_visible(e));
            }
            if wait {
                for a in &rep.acked {
                    println!("{}", crate::display::json_visible(a));
                }
                if rep.acked.len() + rep.errors.len() < rep.sent {
                    eprintln!(
                        "qerrorsctl: {} of {} events not confirmed within {timeout}s",
                        rep.sent - rep.acked.len() - rep.errors.len(),
                        rep.sent
                    );
                    return ExitCode::from(1);
                }
            }
            if rep.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// NDJSON from stdin; with `--wait`, each object line gets `"ack":true`.
fn read_stdin(wait: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        if wait {
            if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str(&line) {
                m.insert("ack".into(), true.into());
                out.push(serde_json::Value::Object(m).to_string());
                continue;
            }
        }
        out.push(line);
    }
    Ok(out)
}
