//! `qerrorsctl send`: the message form, NDJSON from stdin, and a daemon that isn't there.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::util::{of_kind, scrub_env, spawn_daemon, Opts, CTL, EVENTS_TIMEOUT};

fn ctl(socket: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(CTL);
    scrub_env(&mut cmd);
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(input).unwrap();
    }
    // qerrorsctl bounds its own wait with --timeout (default 10 s).
    child.wait_with_output().unwrap()
}

/// The `{"ok":true,"id":…}` lines printed by `--wait`.
fn acks(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn send_message_with_wait_prints_the_ack() {
    let mut d = spawn_daemon(Opts::new());
    let out = ctl(
        &d.socket,
        &[
            "send",
            "disk full on /data",
            "--wait",
            "--name",
            "IOError",
            "--level",
            "fatal",
            "--service",
            "backup",
            "--tag",
            "region=eu",
            "--context",
            r#"{"path":"/data"}"#,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = acks(&out);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["ok"], true);
    let id = a[0]["id"].as_str().unwrap().to_string();
    // --wait means written: no polling needed.
    let events = d.events();
    let e = events
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap_or_else(|| panic!("acked {id} not in the log"));
    assert_eq!(e["message"], "disk full on /data");
    assert_eq!(e["name"], "IOError");
    assert_eq!(e["level"], "fatal");
    assert_eq!(e["service"], "backup");
    assert_eq!(e["tags"]["region"], "eu");
    assert_eq!(e["context"]["path"], "/data");
    assert_eq!(e["peer"]["comm"], "qerrorsctl");
    d.stop();
}

#[test]
fn send_ndjson_from_stdin() {
    let mut d = spawn_daemon(Opts::new());
    let input = b"{\"message\":\"one\"}\n\n{\"message\":\"two\",\"level\":\"warn\"}\n{\"message\":\"three\"}\n";
    let out = ctl(&d.socket, &["send", "-", "--wait"], Some(input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = acks(&out);
    assert_eq!(a.len(), 3, "{a:?}");
    let events = d.events();
    for ack in &a {
        assert!(
            events.iter().any(|e| e["id"] == ack["id"]),
            "acked {} not in the log",
            ack["id"]
        );
    }
    // Without --wait: fire and forget, exit 0.
    let out = ctl(&d.socket, &["send", "-"], Some(b"{\"message\":\"four\"}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    d.wait_for_events(4, EVENTS_TIMEOUT);
    let records = d.stop();
    let msgs: Vec<String> = of_kind(&records, "event")
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(msgs, ["one", "two", "three", "four"]);
}

#[test]
fn send_reports_a_rejected_line_and_fails() {
    let mut d = spawn_daemon(Opts::new());
    let out = ctl(
        &d.socket,
        &["send", "-", "--wait"],
        Some(b"{\"message\":\"fine\"}\n{\"message\":42}\n"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong_type"), "{err}");
    assert_eq!(acks(&out).len(), 1);
    d.stop();
}

#[test]
fn send_without_a_daemon_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // No socket file at all.
    let missing = dir.path().join("missing.sock");
    let out = ctl(&missing, &["send", "hello"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not running"), "{err}");
    assert!(
        err.contains(missing.to_str().unwrap()),
        "names the path: {err}"
    );
    // A stale socket file: nobody listening.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let out = ctl(&stale, &["send", "hello", "--wait"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not running"), "{err}");
}
