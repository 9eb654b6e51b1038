//! `qerrorsctl status`: is the daemon up and ready? One line of vital signs from `/stats` and
//! `/ready`.

use std::process::ExitCode;

use super::{client, fail};

/// Exit 0 ready, 1 up but not ready, 2 down (control server unreachable).
pub fn run(ctl: &client::Control) -> ExitCode {
    let stats = match ctl.json("/stats") {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let (ready_status, ready_body) = match ctl.get("/ready") {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let ev = &stats["events"];
    println!(
        "qerrorsd {} (pid {}) up {}s: {}; {} written, {} rejected, {} dropped; ring {}/{} events; {} connections; rss {:.1} MiB",
        stats["version"].as_str().unwrap_or("?"),
        stats["pid"],
        stats["uptime_s"],
        ready_body.trim(),
        ev["written"],
        ev["rejected_total"],
        ev["dropped"]["overload"],
        stats["ring"]["events"],
        stats["ring"]["capacity_events"],
        stats["connections"]["active"],
        stats["memory"]["rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
    );
    if ready_status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
