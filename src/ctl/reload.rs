//! `qerrorsctl reload`: asks the daemon to reload its configuration and reopen its log
//! (`POST /reload` on the control socket, or on TCP with the token) and reports the outcome the
//! daemon answers with: exit 0 when the new configuration is in force, 1 with the daemon's
//! reason when it was rejected (or the caller may not reload), 2 when the daemon could not be
//! asked.
//!
//! No signal is sent: whoever answers on the control port cannot make `qerrorsctl` signal a
//! process of its choosing (SIGHUP stays for `systemctl reload` and `kill -HUP`).

use std::process::ExitCode;

use serde_json::Value;

use super::{client, fail};

pub fn run(ctl: &client::Control) -> ExitCode {
    let (status, body) = match ctl.post("/reload") {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let shown = crate::display::visible(body.trim_end());
    match status {
        200 | 422 => match serde_json::from_str::<Value>(&body) {
            Ok(v) => report(&v),
            Err(_) => fail(&format!("unexpected answer to reload: {shown}")),
        },
        401 | 403 => {
            eprintln!("qerrorsctl: reload refused by {}: {shown}", ctl.describe());
            ExitCode::from(1)
        }
        404 | 405 => fail(&format!(
            "{} does not take reload requests (HTTP {status}): not a qerrorsd of this version",
            ctl.describe()
        )),
        _ => fail(&format!("reload failed: HTTP {status}: {shown}")),
    }
}

fn report(reload: &Value) -> ExitCode {
    match reload["outcome"].as_str() {
        Some("applied") => {
            println!("configuration reloaded; log file reopened");
            let restart: Vec<&str> = reload["restart_required"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !restart.is_empty() {
                println!(
                    "these keys changed but keep their running values until a restart: {}",
                    restart.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Some("rejected") => {
            eprintln!(
                "qerrorsctl: configuration rejected, the running one stays: {}",
                crate::display::visible(reload["error"].as_str().unwrap_or("(no reason given)"))
            );
            ExitCode::from(1)
        }
        _ => fail(&format!("unexpected reload outcome: {reload}")),
    }
}
