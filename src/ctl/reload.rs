//! `qerrorsctl reload`: asks the daemon to reload its configuration and reopen its log, then
//! waits for the outcome in `/stats` (`reload.generation` moves) and reports it: exit 0 when the
//! new configuration is in force, 1 with the daemon's reason when it was rejected, 2 when the
//! daemon could not be asked or did not answer.
//!
//! The signal goes to the pid the control server reports only after checking that it is a
//! qerrorsd (`/proc/<pid>/exe`) and not a pid ≤ 1: whoever answers on the control port does not
//! decide which process gets signalled.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{client, fail};

/// How long the daemon may take to load and apply a configuration.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

pub fn run(ctl: &str) -> ExitCode {
    let stats = match client::control_json(ctl, "/stats") {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let pid = match verified_pid(&stats["pid"]) {
        Ok(pid) => pid,
        Err(e) => return fail(&e),
    };
    let before = stats["reload"]["generation"].as_u64();
    if let Err(e) = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    ) {
        return fail(&format!(
            "cannot signal pid {pid}: {e} (run as the daemon's user or root)"
        ));
    }
    let Some(before) = before else {
        println!("sent SIGHUP to qerrorsd (pid {pid}); this daemon does not report reload outcomes, see its log");
        return ExitCode::SUCCESS;
    };
    let deadline = Instant::now() + OUTCOME_TIMEOUT;
    loop {
        std::thread::sleep(POLL);
        let reload = match client::control_json(ctl, "/stats") {
            Ok(v) => v["reload"].clone(),
            Err(e) => return fail(&format!("sent SIGHUP to pid {pid}, then: {e}")),
        };
        if reload["generation"].as_u64().is_some_and(|g| g > before) {
            return report(pid, &reload);
        }
        if Instant::now() >= deadline {
            return fail(&format!(
                "sent SIGHUP to pid {pid} but no reload outcome within {}s; see the daemon's log",
                OUTCOME_TIMEOUT.as_secs()
            ));
        }
    }
}

fn report(pid: i32, reload: &Value) -> ExitCode {
    match reload["outcome"].as_str() {
        Some("applied") => {
            println!("configuration reloaded (qerrorsd pid {pid}); log file reopened");
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
                reload["error"].as_str().unwrap_or("(no reason given)")
            );
            ExitCode::from(1)
        }
        _ => fail(&format!("unexpected reload outcome: {reload}")),
    }
}

/// The reported pid, if it is a running qerrorsd other than init or a process group.
fn verified_pid(reported: &Value) -> Result<i32, String> {
    let pid = reported
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| format!("the control server reported no usable pid ({reported})"))?;
    if pid <= 1 {
        return Err(format!(
            "refusing to signal pid {pid}: the control server is not a qerrorsd"
        ));
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| {
        format!("cannot verify pid {pid} is qerrorsd ({e}); run as the daemon's user or root")
    })?;
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // After a package upgrade the running binary shows as "qerrorsd (deleted)".
    if name.trim_end_matches(" (deleted)") != "qerrorsd" {
        return Err(format!(
            "refusing to signal pid {pid}: it is {}, not qerrorsd",
            exe.display()
        ));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_init_groups_and_processes_that_are_not_qerrorsd() {
        for bad in [-1, 0, 1] {
            let err = verified_pid(&Value::from(bad)).unwrap_err();
            assert!(err.contains("refusing"), "{bad}: {err}");
        }
        let err = verified_pid(&Value::from("12")).unwrap_err();
        assert!(err.contains("no usable pid"), "{err}");
        // this test process is not qerrorsd
        let err = verified_pid(&Value::from(std::process::id())).unwrap_err();
        assert!(err.contains("not qerrorsd"), "{err}");
    }
}
