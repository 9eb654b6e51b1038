//! Local rate limits and the duplicate policy (no Redis): exact accounting of admitted and
//! suppressed events, `suppressed` summaries and `rate_limited` replies.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::limit_support::suppressed_count;
use crate::util::{event_line, spawn_daemon, stop_record, Opts};

/// Events per fingerprint in the log, keyed by fingerprint hex.
fn per_fingerprint(records: &[Value], kind: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for r in records.iter().filter(|r| r["kind"] == kind) {
        let n = if kind == "suppressed" {
            r["count"].as_u64().unwrap()
        } else {
            1
        };
        *m.entry(r["fingerprint"].as_str().unwrap().to_string())
            .or_default() += n;
    }
    m
}

#[test]
fn local_limit_admitted_plus_suppressed_is_sent_exactly() {
    let mut d = spawn_daemon(
        Opts::new()
            .env(
                "LIMIT_RULES",
                r#"[{key = "fingerprint", rate = 10, window = "1h"}]"#,
            )
            .env("SINK_SUMMARY_INTERVAL", "200ms"),
    );
    // 3 fingerprints × 50 copies, interleaved; every 5th line asks for an ack.
    let lines: Vec<String> = (0..150)
        .map(|j| {
            event_line(
                &format!("copy {j}"),
                json!({"fingerprint": format!("fp-{}", j % 3), "ack": j % 5 == 0}),
            )
        })
        .collect();
    let replies = d.send_lines(&lines);
    let acked: Vec<usize> = (0..150).filter(|j| j % 5 == 0).collect();
    let want_limited = acked.iter().filter(|j| *j / 3 >= 10).count();
    let limited: Vec<&Value> = replies
        .iter()
        .filter(|r| r["error"] == "rate_limited")
        .collect();
    assert_eq!(limited.len(), want_limited, "{replies:?}");
    for r in &limited {
        assert_eq!(r["ok"], false);
        assert_eq!(r["reason"], "rate_limit");
        let line = r["line"].as_u64().unwrap() as usize - 1;
        assert!(
            line % 5 == 0 && line / 3 >= 10,
            "line {line} was not limited"
        );
    }
    let oks = replies.iter().filter(|r| r["ok"] == true).count();
    assert_eq!(oks, acked.len() - want_limited);
    assert_eq!(
        replies.len(),
        acked.len(),
        "one reply per acked line, nothing else"
    );

    let records = d.stop();
    let events = per_fingerprint(&records, "event");
    let suppressed = per_fingerprint(&records, "suppressed");
    assert_eq!(events.len(), 3);
    for (fp, n) in &events {
        assert_eq!(*n, 10, "admitted of {fp}");
        assert_eq!(suppressed.get(fp), Some(&40), "suppressed of {fp}");
    }
    assert_eq!(suppressed_count(&records, Some("rate_limit")), 120);
    for s in records.iter().filter(|r| r["kind"] == "suppressed") {
        assert!(s["window_s"].as_f64().unwrap() > 0.0, "{s}");
    }
    let stop = stop_record(&records);
    assert_eq!(stop["accepted"], 30);
    assert_eq!(stop["written"], 30);
    assert_eq!(stop["suppressed"], 120);
    assert_eq!(
        stop["rejected"], 0,
        "a rate-limited event is not a rejected line"
    );
    assert_eq!(stop["dropped"], 0);
}

#[test]
fn duplicate_policy_and_uid_rule() {
    let mut d = spawn_daemon(
        Opts::new()
            .env("LIMIT_DUPLICATES", r#"{max = 3, window = "1h"}"#)
            .env(
                "LIMIT_RULES",
                r#"[{name = "per-user", key = "uid", rate = 12, window = "1h"}]"#,
            ),
    );
    let mut lines: Vec<String> = (0..20)
        .map(|i| event_line(&format!("same {i}"), json!({"fingerprint": "dup"})))
        .collect();
    // Distinct fingerprints from the same uid: the uid rule admits 12 in all (3 used above).
    lines.extend((0..20).map(|i| event_line("other", json!({"fingerprint": format!("u{i}")}))));
    assert!(d.send_lines(&lines).is_empty(), "no acks asked, no replies");
    let records = d.stop();
    assert_eq!(suppressed_count(&records, Some("duplicate")), 17);
    assert_eq!(suppressed_count(&records, Some("rate_limit")), 20 - 9);
    let events = records.iter().filter(|r| r["kind"] == "event").count();
    assert_eq!(events, 12);
    assert_eq!(stop_record(&records)["suppressed"], 28);
}

#[test]
fn no_rules_limit_nothing() {
    let mut d = spawn_daemon(Opts::new());
    let lines: Vec<String> = (0..200)
        .map(|_| event_line("same", json!({"fingerprint": "x"})))
        .collect();
    d.send_lines(&lines);
    let records = d.stop();
    assert_eq!(records.iter().filter(|r| r["kind"] == "event").count(), 200);
    assert_eq!(suppressed_count(&records, None), 0);
}

#[test]
fn sighup_applies_new_rules_and_names_restart_only_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("qerrors.toml");
    let rules = |rate: u32, redis: &str| {
        format!(
            "[limit]\nredis_url = \"{redis}\"\n[[limit.rules]]\nkey = \"global\"\nrate = {rate}\nwindow = \"1h\"\n"
        )
    };
    std::fs::write(&cfg, rules(2, "")).unwrap();
    let mut d = spawn_daemon(Opts::new().arg("--config").arg(&cfg));
    let five: Vec<String> = (0..5)
        .map(|i| event_line(&format!("a{i}"), json!({})))
        .collect();
    d.send_lines(&five);
    // New rate (applied, counts start afresh) and a Redis URL (needs a restart).
    std::fs::write(&cfg, rules(4, "redis://127.0.0.1:1/")).unwrap();
    d.signal(libc::SIGHUP);
    let reloaded =
        crate::util::wait_until("reload record", std::time::Duration::from_secs(30), || {
            d.records("daemon")
                .into_iter()
                .find(|r| r["msg"] == "config reloaded")
        });
    let restart = reloaded["restart_required"].as_array().unwrap();
    assert_eq!(restart.len(), 1, "{reloaded}");
    assert!(restart[0].as_str().unwrap().contains("redis_url"));
    d.send_lines(&five);
    let records = d.stop();
    assert_eq!(
        records.iter().filter(|r| r["kind"] == "event").count(),
        2 + 4
    );
    assert_eq!(suppressed_count(&records, Some("rate_limit")), 3 + 1);
    assert!(
        !records.iter().any(|r| r["msg"] == "breaker transition"),
        "redis_url was not applied live"
    );
}
