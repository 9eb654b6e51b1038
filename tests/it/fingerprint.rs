//! Grouping through the real daemon, against PROTOCOL.md: the fingerprint hashes the error
//! name, the message with volatile parts masked (numbers, hex, UUIDs, quoted values, paths'
//! line/column) and the top in-app stack frames normalized; a client `fingerprint` overrides it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::util::{of_kind, spawn_daemon, Daemon, Opts, EVENTS_TIMEOUT};

/// Sends `(case, line)` pairs on one connection; returns case → (fingerprint, occurrence).
fn fingerprints(d: &mut Daemon, cases: &[(&str, Value)]) -> BTreeMap<String, (String, u64)> {
    let lines: Vec<String> = cases
        .iter()
        .map(|(case, ev)| {
            let mut ev = ev.clone();
            ev["tags"] = json!({ "case": case });
            ev.to_string()
        })
        .collect();
    let replies = d.send_lines(&lines);
    assert!(replies.is_empty(), "{replies:?}");
    d.wait_for_events(cases.len(), EVENTS_TIMEOUT);
    let records = d.stop();
    let events = of_kind(&records, "event");
    assert_eq!(events.len(), cases.len());
    events
        .iter()
        .map(|e| {
            (
                e["tags"]["case"].as_str().unwrap().to_string(),
                (
                    e["fingerprint"].as_str().unwrap().to_string(),
                    e["occurrence"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

fn order_error(n: u64, ptr: &str, field: &str, line: u32, col: u32) -> Value {
    json!({
        "name": "TypeError",
        "message": format!("Cannot read properties of undefined (reading '{field}') for order {n} at {ptr}"),
        "stack": format!(
            "TypeError: Cannot read properties of undefined\n    at getOrder (/srv/app/src/orders.js:{line}:{col})\n    at handle (/srv/app/src/server.js:{}:{})\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
            line + 100, col + 1
        ),
    })
}

#[test]
fn same_error_with_different_volatile_parts_groups_together() {
    let mut d = spawn_daemon(Opts::new());
    let cases = [
        ("order-1", order_error(12345, "0x7ffd1234", "id", 42, 13)),
        ("order-2", order_error(987, "0xdeadbeef", "sku", 57, 21)),
        ("order-3", order_error(5, "0x0", "price", 7, 1)),
        (
            "session-1",
            json!({"name": "SessionError", "message": "session 123e4567-e89b-12d3-a456-426614174000 expired after 3600s"}),
        ),
        (
            "session-2",
            json!({"name": "SessionError", "message": "session 9b2f0c1e-7d4a-4c3b-8e5f-0a1b2c3d4e5f expired after 60s"}),
        ),
        (
            "path-1",
            json!({"name": "DbError", "message": "query failed at /srv/app/lib/db.js:120:7 with \"users\""}),
        ),
        (
            "path-2",
            json!({"name": "DbError", "message": "query failed at /srv/app/lib/db.js:98:31 with \"orders\""}),
        ),
    ];
    let fp = fingerprints(&mut d, &cases);
    let same = |a: &str, b: &str| {
        assert_eq!(
            fp[a].0, fp[b].0,
            "{a} and {b} are the same bug and must share a fingerprint"
        )
    };
    same("order-1", "order-2");
    same("order-1", "order-3");
    same("session-1", "session-2");
    same("path-1", "path-2");
    assert_ne!(fp["order-1"].0, fp["session-1"].0);
    assert_ne!(fp["order-1"].0, fp["path-1"].0);
    assert_ne!(fp["session-1"].0, fp["path-1"].0);
    // Grouped events count up within the window.
    assert_eq!(
        [fp["order-1"].1, fp["order-2"].1, fp["order-3"].1],
        [1, 2, 3],
        "occurrence"
    );
    assert_eq!([fp["session-1"].1, fp["session-2"].1], [1, 2]);
}

#[test]
fn different_errors_get_different_fingerprints() {
    let mut d = spawn_daemon(Opts::new());
    let cases = [
        (
            "refused",
            json!({"name": "IOError", "message": "connection refused"}),
        ),
        (
            "denied",
            json!({"name": "IOError", "message": "permission denied"}),
        ),
        (
            "value",
            json!({"name": "ValueError", "message": "invalid input"}),
        ),
        (
            "type",
            json!({"name": "TypeError", "message": "invalid input"}),
        ),
        ("noname", json!({"message": "invalid input"})),
        (
            "frame-a",
            json!({"name": "Error", "message": "boom", "stack": "Error: boom\n    at parseOrder (/srv/app/src/orders.js:1:1)"}),
        ),
        (
            "frame-b",
            json!({"name": "Error", "message": "boom", "stack": "Error: boom\n    at chargeCard (/srv/app/src/payments.js:1:1)"}),
        ),
    ];
    let fp = fingerprints(&mut d, &cases);
    let mut all: Vec<&str> = fp.values().map(|(f, _)| f.as_str()).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), cases.len(), "distinct errors collided: {fp:#?}");
    assert!(fp.values().all(|(_, occ)| *occ == 1), "{fp:#?}");
}

#[test]
fn client_fingerprint_wins() {
    let mut d = spawn_daemon(Opts::new());
    let cases = [
        (
            "s1",
            json!({"name": "A", "message": "timeout calling payments", "fingerprint": "payments-timeout"}),
        ),
        (
            "s2",
            json!({"name": "B", "message": "something else entirely", "fingerprint": "payments-timeout"}),
        ),
        (
            "auto",
            json!({"name": "A", "message": "timeout calling payments"}),
        ),
        (
            "a1",
            json!({"message": "first text", "fingerprint": ["checkout", "timeout"]}),
        ),
        (
            "a2",
            json!({"message": "second text", "fingerprint": ["checkout", "timeout"]}),
        ),
        (
            "a3",
            json!({"message": "first text", "fingerprint": ["checkout", "other"]}),
        ),
    ];
    let fp = fingerprints(&mut d, &cases);
    assert_eq!(
        fp["s1"].0, fp["s2"].0,
        "same client fingerprint groups together"
    );
    assert_eq!([fp["s1"].1, fp["s2"].1], [1, 2], "occurrence");
    assert_ne!(
        fp["s1"].0, fp["auto"].0,
        "the client fingerprint replaces the computed one"
    );
    assert_eq!(fp["a1"].0, fp["a2"].0);
    assert_ne!(fp["a1"].0, fp["a3"].0);
    assert_ne!(fp["a1"].0, fp["s1"].0);
}

/// A client fingerprint array is a list of parts, not their concatenation: `["ab","c"]`,
/// `["a","bc"]` and `"abc"` are three different groups.
#[test]
fn client_fingerprint_parts_are_not_concatenated() {
    let mut d = spawn_daemon(Opts::new());
    let cases = [
        ("p1", json!({"message": "m", "fingerprint": ["ab", "c"]})),
        ("p2", json!({"message": "m", "fingerprint": ["a", "bc"]})),
        ("p3", json!({"message": "m", "fingerprint": "abc"})),
    ];
    let fp = fingerprints(&mut d, &cases);
    assert_ne!(fp["p1"].0, fp["p2"].0, "[\"ab\",\"c\"] vs [\"a\",\"bc\"]");
    assert_ne!(fp["p1"].0, fp["p3"].0, "[\"ab\",\"c\"] vs \"abc\"");
    assert_ne!(fp["p2"].0, fp["p3"].0, "[\"a\",\"bc\"] vs \"abc\"");
}

/// Same bug → same fingerprint across processes and restarts (and hosts: the host isn't part
/// of it).
#[test]
fn fingerprint_is_stable_across_restarts_and_hosts() {
    let ev = order_error(1, "0x1", "id", 1, 1);
    let run = |host: &str| {
        let mut d = spawn_daemon(Opts::new().env("EVENT_HOST", host));
        fingerprints(&mut d, &[("x", ev.clone())])["x"].0.clone()
    };
    assert_eq!(run("host-a"), run("host-b"));
}
