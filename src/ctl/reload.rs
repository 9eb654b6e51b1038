//! `qerrorsctl reload`: asks the daemon to reload its configuration and reopen its log by
//! sending SIGHUP to the pid its control server reports.

use std::process::ExitCode;

use super::{client, fail};

/// SIGHUP to the daemon's pid as reported by its control server.
pub fn run(ctl: &str) -> ExitCode {
    let stats = match client::control_json(ctl, "/stats") {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let Some(pid) = stats["pid"].as_i64().and_then(|p| i32::try_from(p).ok()) else {
        return fail("the daemon did not report its pid");
    };
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    ) {
        Ok(()) => {
            println!("sent SIGHUP to qerrorsd (pid {pid}); see its log for the outcome");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!(
            "cannot signal pid {pid}: {e} (run as the daemon's user or root)"
        )),
    }
}
