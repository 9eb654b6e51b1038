//! `sink.stdout = true`: every record also goes to standard output, identical to the file.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{self, DAEMON};

#[test]
fn records_are_copied_to_stdout() {
    let _cpu = crate::util::cpu_share();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("q.sock");
    let log = dir.path().join("errors.log");
    let mut cmd = Command::new(DAEMON);
    cmd.arg("--control")
        .arg("127.0.0.1:0")
        .arg("--socket")
        .arg(&sock)
        .arg("--log")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    util::scrub_env(&mut cmd);
    cmd.env("QERRORS_SINK_STDOUT", "true");
    let mut child = cmd.spawn().unwrap();
    let stream = util::wait_until("socket", Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&sock).ok()
    });
    drop(stream);
    let rep = qerrors::ctl::client::send_lines(
        &sock,
        [
            r#"{"message":"to stdout","ack":true}"#,
            r#"{"message":"and again","ack":true}"#,
        ],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(rep.acked.len(), 2, "{rep:?}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(util::wait_child(&mut child, Duration::from_secs(30)).success());
    let file = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out, file, "stdout carries exactly the file's records");
    let events = util::of_kind(&util::parse_records(out.as_bytes(), true), "event");
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["message"], "and again");
}
