//! Text a client wrote cannot act on an operator (issue 15, item 6): a corpus of escape
//! sequences in every field, then every `qerrorsctl` command, `/metrics` and the dashboard show
//! them inert — no ESC, no C1 control, no bidi override, no line separator, no raw CR, and one
//! line per record where a command prints one line per record.

use std::process::Command;

use serde_json::json;

use crate::util::{self, spawn_daemon, Opts, CTL};

/// Window title, OSC 8 link, hidden text, 8-bit CSI, NEL, line/paragraph separators, a bidi
/// override, an isolate, a zero-width space, BOM, BEL, DEL, and a CR-LF that fakes a record.
pub const HOSTILE: &str = "t\u{1b}]0;pwned\u{7}l\u{1b}]8;;http://x\u{1b}\\ok\u{1b}[8mhid\u{1b}[0m\
    \u{9b}31m\u{85}n\u{2028}l\u{2029}p\u{202e}exe.txt\u{2066}i\u{200b}z\u{feff}\u{7f}\r\n\
    2026-01-01 ERROR fake: record";

/// Characters that must not reach a terminal or a page raw.
pub fn raw_unsafe(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| c != '\n' && qerrors::display::is_unsafe(c))
        .collect()
}

fn ctl(addr: &str, log: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(CTL)
        .args(["--control", addr])
        .args(args)
        .env("QERRORS_SINK_PATH", log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "qerrorsctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn hostile_text_is_inert_in_every_command_and_in_metrics() {
    let mut d = spawn_daemon(Opts::new().env("CONTROL_METRICS_SERVICES", true));
    let addr = util::control_addr(&d);
    let line = json!({
        "message": HOSTILE, "name": format!("E{HOSTILE}"), "code": HOSTILE,
        "service": format!("svc{HOSTILE}"), "stack": format!("at f (a.js:1:1)\n{HOSTILE}"),
        "context": {"k": HOSTILE}, "tags": {"t": HOSTILE}, "unmapped": HOSTILE,
    })
    .to_string();
    // a second kind the built-in rules give advice for, hostile everywhere else
    let advised = json!({
        "name": "TypeError",
        "message": format!("Cannot read properties of undefined (reading 'id') {HOSTILE}"),
        "service": format!("svc{HOSTILE}"), "code": HOSTILE, "context": {"k": HOSTILE},
    })
    .to_string();
    let replies = d.send_lines(&[line.as_str(), line.as_str(), advised.as_str()]);
    assert!(replies.is_empty(), "{replies:?}");
    d.wait_for_events(3, util::EVENTS_TIMEOUT);
    let log = d.log.clone();
    // one output line per record where the command prints one per record
    for (args, lines) in [
        (&["recent"][..], Some(3)),
        (&["recent", "--json"][..], Some(3)),
        (&["top"][..], None),
        (&["top", "--json"][..], Some(2)),
        (&["stats"][..], None),
        (&["status"][..], Some(1)),
        (&["tail", "--no-follow", "--kind", "event"][..], Some(3)),
        (
            &["tail", "--no-follow", "--json", "--kind", "event"][..],
            Some(3),
        ),
        (&["tail", "--no-follow"][..], None),
    ] {
        let out = ctl(&addr, &log, args);
        assert_eq!(
            raw_unsafe(&out),
            Vec::<char>::new(),
            "qerrorsctl {args:?}:\n{out}"
        );
        if let Some(n) = lines {
            assert_eq!(out.lines().count(), n, "qerrorsctl {args:?}:\n{out}");
        }
        assert!(!out.contains("\n2026-01-01 ERROR fake"), "{args:?}: {out}");
    }
    // --json output is still the same JSON value
    let out = ctl(&addr, &log, &["recent", "--json"]);
    let rec: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    // (the sanitizer removes zero-width characters next to ASCII: docs/sanitizing.md)
    let stored: String = HOSTILE
        .chars()
        .filter(|c| !matches!(c, '\u{200b}' | '\u{feff}'))
        .collect();
    assert_eq!(rec["message"], stored);
    // advice of the TypeError's fingerprint, human and JSON
    let out = ctl(&addr, &log, &["recent", "--json"]);
    let fp = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["name"] == "TypeError")
        .unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    util::wait_until("advice", util::EVENTS_TIMEOUT, || {
        qerrors::ctl::client::control_get(&addr, &format!("/advice/{fp}"))
            .ok()
            .filter(|(code, _)| *code == 200)
    });
    for args in [
        &["advice", fp.as_str()][..],
        &["advice", fp.as_str(), "--json"][..],
    ] {
        let out = ctl(&addr, &log, args);
        assert_eq!(raw_unsafe(&out), Vec::<char>::new(), "{args:?}:\n{out}");
    }
    // /metrics: the service label is inert and the exposition still parses
    let (_, metrics) = qerrors::ctl::client::control_get(&addr, "/metrics").unwrap();
    assert_eq!(raw_unsafe(&metrics), Vec::<char>::new(), "{metrics}");
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string())))
        .expect("valid exposition");
    let by_service: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "qerrors_events_by_service_total")
        .map(|s| format!("{:?}", s.labels))
        .collect();
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "qerrors_events_by_service_total"
                && s.labels
                    .get("service")
                    .is_some_and(|v| v.starts_with("svct") && v.contains("x1b]0;pwned"))),
        "{by_service:?}"
    );
    d.stop();
}
