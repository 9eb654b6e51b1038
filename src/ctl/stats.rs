//! `qerrorsctl stats`: all of the daemon's counters as pretty-printed JSON (its `/stats`).

use std::process::ExitCode;

use super::{client, fail};

/// Prints `/stats`; exit 2 when the control server is unreachable.
pub fn run(ctl: &client::Control) -> ExitCode {
    match ctl.json("/stats") {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            println!("{}", crate::display::json_visible(&text));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}
