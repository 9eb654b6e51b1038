//! `qerrorsctl`: `send` (the message form, NDJSON from stdin, a daemon that isn't there or a
//! path that is no socket), `top`'s columns, and the flags every command shares (`--level` and
//! its aliases, `-n`).

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::util::{control_addr, of_kind, scrub_env, spawn_daemon, Opts, CTL, EVENTS_TIMEOUT};

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

/// `qerrorsctl ARGS…` with no stdin (control-plane commands pass `--control` in `args`).
fn ctl_args(args: &[&str]) -> Output {
    let mut cmd = Command::new(CTL);
    scrub_env(&mut cmd);
    cmd.args(args).stdin(Stdio::null()).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
    assert!(err.contains("no daemon socket at"), "{err}");
    // A stale socket file: nobody listening.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let out = ctl(&stale, &["send", "hello", "--wait"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not running"), "{err}");
    assert!(
        err.contains("stale socket file (no daemon listening)"),
        "{err}"
    );
}

#[test]
fn send_to_a_path_that_is_no_socket_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("README.md");
    std::fs::write(&file, "# not a socket\n").unwrap();
    for (path, what) in [
        (&file, "regular file"),
        (&dir.path().to_path_buf(), "directory"),
    ] {
        let out = ctl(path, &["send", "hello"], None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "{} is not a socket (it is a {what})",
                path.display()
            )),
            "{err}"
        );
        assert!(!err.contains("stale"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# not a socket\n");
}

#[test]
fn one_level_vocabulary_for_send_tail_and_recent() {
    let mut d = spawn_daemon(Opts::new());
    let addr = control_addr(&d);
    // Aliases are sent as the canonical level.
    for (alias, level) in [("critical", "fatal"), ("WARNING", "warn"), ("err", "error")] {
        let msg = format!("sent as {alias}");
        let out = ctl(&d.socket, &["send", &msg, "--level", alias, "--wait"], None);
        assert!(out.status.success(), "{alias}: {}", stderr(&out));
        let id = acks(&out)[0]["id"].as_str().unwrap().to_string();
        let e = d
            .events()
            .into_iter()
            .find(|e| e["id"] == id.as_str())
            .unwrap();
        assert_eq!(e["level"], level, "{alias}");
    }
    // The same names filter `recent` and `tail`.
    let out = ctl_args(&[
        "--control",
        &addr,
        "recent",
        "--level",
        "critical",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recent: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recent.len(), 1, "{recent:?}");
    assert_eq!(recent[0]["message"], "sent as critical");
    let log = d.log.to_str().unwrap().to_string();
    let out = ctl_args(&[
        "tail",
        "--no-follow",
        "--json",
        "--log",
        &log,
        "--level",
        "crit",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tailed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(tailed.lines().count(), 1, "{tailed}");
    assert!(tailed.contains("sent as critical"), "{tailed}");
    // Anything else is a usage error naming the levels, everywhere, and nothing is sent.
    let sock = d.socket.to_str().unwrap().to_string();
    for args in [
        vec!["--socket", &sock, "send", "never sent", "--level", "loud"],
        vec!["--control", &addr, "recent", "--level", "loud"],
        vec!["tail", "--no-follow", "--log", &log, "--level", "loud"],
    ] {
        let out = ctl_args(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("unknown level `loud`")
                && err.contains("trace, debug, info, warn, error, fatal"),
            "{args:?}: {err}"
        );
    }
    let records = d.stop();
    assert!(!records.iter().any(|r| r["message"] == "never sent"));
}

#[test]
fn n_errors_name_the_flag_as_typed() {
    for cmd in ["top", "recent"] {
        let out = ctl_args(&["--control", "127.0.0.1:9", cmd, "-n", "abc"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("'-n <N>'"), "{cmd}: {err}");
        assert!(!err.contains("--n"), "{cmd}: {err}");
    }
}

#[test]
fn top_columns_line_up_with_the_header_whatever_the_values() {
    let d = spawn_daemon(Opts::new().env("ANALYSIS_CACHE_FILE", "off"));
    let addr = control_addr(&d);
    let long_service = "checkout-service-with-a-very-long-name-ü-ß";
    let mut lines = Vec::new();
    for i in 0..12 {
        lines.push(
            serde_json::json!({"message": "bad credentials", "name": "AuthenticationError",
                "service": long_service, "level": "error"})
            .to_string(),
        );
        if i < 3 {
            lines
                .push(serde_json::json!({"message": "x", "name": "E", "service": "s"}).to_string());
        }
    }
    assert!(d.send_lines(&lines).is_empty());
    d.wait_for_events(lines.len(), EVENTS_TIMEOUT);
    let out = ctl_args(&["--control", &addr, "top", "-n", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut rows = text.lines();
    let header = rows.next().unwrap();
    // Where each column starts (count is right-aligned: where it ends).
    let col = |t: &str| {
        header
            .find(&format!(" {t}"))
            .map(|i| header[..=i].chars().count())
            .unwrap_or_else(|| panic!("no {t} in {header:?}"))
    };
    let count_end = header.chars().count() - header.trim_start().chars().count() + 5;
    let (fp, class, sev, svc, what) = (
        col("fp"),
        col("class"),
        col("severity"),
        col("service"),
        col("what"),
    );
    let rows: Vec<Vec<char>> = rows
        .filter(|r| !r.trim_start().starts_with("advice:"))
        .map(|r| r.chars().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    let cell = |r: &[char], from: usize, to: usize| r[from..to].iter().collect::<String>();
    for r in &rows {
        let line: String = r.iter().collect();
        let count = cell(r, 0, count_end);
        assert!(
            count.trim().parse::<u64>().is_ok(),
            "count right-aligned under its title: {line:?}\n{header:?}"
        );
        assert_eq!(cell(r, count_end, fp), "  ", "{line:?}");
        assert!(
            r[fp].is_ascii_hexdigit() && r[fp - 1] == ' ',
            "{line:?}\n{header:?}"
        );
        for (from, to) in [(class, sev), (sev, svc), (svc, what)] {
            assert_ne!(
                r[from], ' ',
                "a value starts at its column: {line:?}\n{header:?}"
            );
            assert_eq!(
                &cell(r, to - 2, to),
                "  ",
                "a gap before the next column: {line:?}"
            );
        }
    }
    let first: String = rows[0].iter().collect();
    assert_eq!(
        cell(&rows[0], class, sev).trim_end(),
        "authentication",
        "{first}"
    );
    let svc_cell = cell(&rows[0], svc, what);
    assert!(
        svc_cell.trim_end().ends_with('…'),
        "long service cut: {first}"
    );
    assert!(
        long_service.starts_with(svc_cell.trim_end().trim_end_matches('…')),
        "{first}"
    );
    assert_eq!(
        cell(&rows[0], what, rows[0].len()),
        "AuthenticationError: bad credentials"
    );
}
