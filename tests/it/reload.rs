//! SIGHUP reloads the configuration: live keys change without a restart and without losing
//! events under load; a bad file is rejected and the running configuration stays.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::util::{self, spawn_daemon, Opts};

fn daemon_msgs(records: &[serde_json::Value]) -> Vec<String> {
    util::of_kind(records, "daemon")
        .iter()
        .map(|r| r["msg"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn valid_change_applies_live_without_losing_events() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("qerrors.toml");
    std::fs::write(&cfg, "[ingest]\nread_timeout = \"30s\"\n").unwrap();
    let mut d = spawn_daemon(Opts::new().arg("--config").arg(&cfg));

    // A sender streams events on its own connections across the reload.
    let stop = Arc::new(AtomicBool::new(false));
    let sock = d.socket.clone();
    let sender = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) && sent < 40_000 {
                let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
                let mut batch = Vec::new();
                for i in 0..500 {
                    writeln!(
                        batch,
                        r#"{{"message":"load {}","name":"LoadError"}}"#,
                        sent + i
                    )
                    .unwrap();
                }
                s.write_all(&batch).unwrap();
                drop(s);
                sent += 500;
                thread::sleep(Duration::from_millis(10));
            }
            sent
        })
    };
    thread::sleep(Duration::from_millis(300));
    // Before: a custom token shape is not a secret yet.
    d.send_lines(&[r#"{"message":"order CUST-0001 failed","name":"Before"}"#]);
    std::fs::write(
        &cfg,
        "[ingest]\nread_timeout = \"30s\"\n[sanitize]\npatterns = [\"CUST-[0-9]+\"]\n[ring]\noverflow = \"backpressure\"\n",
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    util::wait_until("reload record", Duration::from_secs(30), || {
        daemon_msgs(&d.records("daemon"))
            .contains(&"config reloaded".to_string())
            .then_some(())
    });
    d.send_lines(&[r#"{"message":"order CUST-0002 failed","name":"After"}"#]);
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();

    let records = d.stop();
    let events = util::of_kind(&records, "event");
    let load = events.iter().filter(|e| e["name"] == "LoadError").count() as u64;
    assert_eq!(load, sent, "every event sent across the reload is written");
    let before = events.iter().find(|e| e["name"] == "Before").unwrap();
    assert_eq!(before["message"], "order CUST-0001 failed");
    let after = events.iter().find(|e| e["name"] == "After").unwrap();
    assert_eq!(after["message"], "order [REDACTED] failed");
    let reloaded = util::of_kind(&records, "daemon")
        .into_iter()
        .find(|r| r["msg"] == "config reloaded")
        .unwrap();
    assert_eq!(reloaded["restart_required"], serde_json::json!([]));
}

#[test]
fn invalid_change_is_rejected_and_the_old_config_keeps_running() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("qerrors.toml");
    std::fs::write(&cfg, "[sanitize]\npatterns = [\"CUST-[0-9]+\"]\n").unwrap();
    let mut d = spawn_daemon(Opts::new().arg("--config").arg(&cfg));

    // Unknown key and a restart-only change: the whole file is refused.
    std::fs::write(&cfg, "[sanitize]\npatterns = []\n[sink]\nrotate_byts = 1\n").unwrap();
    d.signal(libc::SIGHUP);
    let rejected = util::wait_until("reject record", Duration::from_secs(30), || {
        util::of_kind(&d.records("daemon"), "daemon")
            .into_iter()
            .find(|r| r["msg"] == "config reload rejected")
    });
    assert!(
        rejected["error"].as_str().unwrap().contains("rotate_byts"),
        "{rejected}"
    );
    // Still running, still with the old patterns.
    d.send_lines(&[r#"{"message":"order CUST-0003 failed"}"#]);

    // A valid file that changes a restart-only key: applied for the rest, the key is named.
    std::fs::write(
        &cfg,
        "[ring]\ncapacity_events = 1234\n[sanitize]\npatterns = []\n",
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    let reloaded = util::wait_until("reload record", Duration::from_secs(30), || {
        util::of_kind(&d.records("daemon"), "daemon")
            .into_iter()
            .find(|r| r["msg"] == "config reloaded")
    });
    assert_eq!(
        reloaded["restart_required"],
        serde_json::json!(["ring.capacity_events"])
    );
    d.send_lines(&[r#"{"message":"order CUST-0004 failed"}"#]);

    let records = d.stop();
    let msgs: Vec<String> = util::of_kind(&records, "event")
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(msgs, ["order [REDACTED] failed", "order CUST-0004 failed"]);
}

/// `qerrorsctl reload` reports the daemon's outcome: exit 0 and the restart-only keys when the
/// file is applied, exit 1 and the daemon's reason when it is rejected.
#[test]
fn qerrorsctl_reload_reports_the_outcome_and_fails_on_rejection() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("qerrors.toml");
    std::fs::write(&cfg, "[ingest]\nread_timeout = \"30s\"\n").unwrap();
    let mut d = spawn_daemon(Opts::new().arg("--config").arg(&cfg));
    let addr = util::control_addr(&d);
    let reload = || {
        let out = std::process::Command::new(util::CTL)
            .args(["--control", &addr, "reload"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    std::fs::write(&cfg, "[ring]\ncapacity_events = 0\n").unwrap();
    let (code, out, err) = reload();
    assert_eq!(code, Some(1), "stdout {out:?} stderr {err:?}");
    assert!(err.contains("configuration rejected"), "{err}");
    assert!(err.contains("ring.capacity_events"), "{err}");

    std::fs::write(&cfg, "[ring]\ncapacity_events = 1234\n").unwrap();
    let (code, out, err) = reload();
    assert_eq!(code, Some(0), "stdout {out:?} stderr {err:?}");
    assert!(out.contains("configuration reloaded"), "{out}");
    assert!(out.contains("ring.capacity_events"), "{out}");

    let stats = qerrors::ctl::client::control_json(&addr, "/stats").unwrap();
    assert_eq!(stats["reload"]["generation"], 2, "{stats}");
    assert_eq!(stats["reload"]["outcome"], "applied", "{stats}");
    d.stop();
}
