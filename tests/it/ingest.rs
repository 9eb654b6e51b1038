//! The happy path: many concurrent clients, the enriched record's fields, peer credentials, acks.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufReader, Write};
use std::thread;

use serde_json::{json, Value};

use crate::util::{
    assert_ulid, event_line, own_comm, read_replies, read_reply, rfc3339, spawn_daemon,
    stop_record, Opts, EVENTS_TIMEOUT,
};

const CLIENTS: usize = 16;
const PER_CLIENT: usize = 500;

/// Texts without digits or quotes, so grouping doesn't depend on what the fingerprint masks.
const MESSAGES: [&str; 7] = [
    "alpha failure in checkout",
    "beta failure in payments",
    "gamma failure in search",
    "delta failure in login",
    "epsilon failure in cart",
    "zeta failure in shipping",
    "eta failure in billing",
];

const STACK: &str =
    "TestError: boom\n    at handler (/srv/app/src/handler.js:10:5)\n    at \"quoted\"\t\\ end";
const TS_MILLIS: u64 = 1_764_345_943_500;
const TS_MILLIS_RFC: &str = "2025-11-28T16:05:43.500000Z";
const TS_OFFSET: &str = "2026-01-02T03:04:05.678+01:00";
const TS_OFFSET_UTC: &str = "2026-01-02T02:04:05.678000Z";

fn line(client: usize, seq: usize) -> String {
    let mut ev = json!({
        "name": "TestError",
        "stack": STACK,
        "context": {"path": "/api/orders", "attempt": 3, "nested": {"list": [1, 2.5, {"x": null}], "ok": true}},
        "tags": {"client": client.to_string(), "seq": seq.to_string()},
        "build": {"sha": "abc123"},
        "attempt_no": 7,
    });
    if seq % 3 == 0 {
        ev["level"] = "warn".into();
    }
    if seq % 2 == 0 {
        ev["service"] = "svc-it".into();
    }
    match seq % 4 {
        1 => ev["ts"] = TS_MILLIS.into(),
        2 => ev["ts"] = TS_OFFSET.into(),
        _ => {}
    }
    event_line(MESSAGES[seq % MESSAGES.len()], ev)
}

#[test]
fn concurrent_clients_every_event_written_once_with_all_fields() {
    let mut d = spawn_daemon(
        Opts::new()
            .env("EVENT_HOST", "it-host")
            .env("EVENT_OCCURRENCE_WINDOW", "1h"),
    );
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let mut s = d.connect();
            thread::spawn(move || {
                let mut buf = Vec::new();
                for i in 0..PER_CLIENT {
                    buf.extend_from_slice(line(c, i).as_bytes());
                    buf.push(b'\n');
                    // Several writes per client so reads interleave across connections.
                    if i % 50 == 49 {
                        s.write_all(&buf).unwrap();
                        buf.clear();
                    }
                }
                s.write_all(&buf).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                read_replies(&mut s)
            })
        })
        .collect();
    for c in clients {
        let replies = c.join().unwrap();
        assert!(replies.is_empty(), "valid events got replies: {replies:?}");
    }
    let n = CLIENTS * PER_CLIENT;
    d.wait_for_events(n, EVENTS_TIMEOUT);
    let records = d.stop();
    let events: Vec<&Value> = records.iter().filter(|r| r["kind"] == "event").collect();
    assert_eq!(events.len(), n, "event records");

    let comm = own_comm();
    let exe = std::env::current_exe().unwrap();
    let mut ids = HashSet::new();
    let mut seen = HashSet::new();
    let mut by_fp: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in &events {
        assert_ulid(&e["id"]);
        assert!(
            ids.insert(e["id"].as_str().unwrap().to_string()),
            "duplicate id {}",
            e["id"]
        );
        let c: usize = e["tags"]["client"].as_str().unwrap().parse().unwrap();
        let i: usize = e["tags"]["seq"].as_str().unwrap().parse().unwrap();
        assert!(seen.insert((c, i)), "event ({c},{i}) written twice");

        rfc3339(&e["received"]);
        rfc3339(&e["ts"]);
        match i % 4 {
            1 => assert_eq!(e["ts"], TS_MILLIS_RFC, "ts from epoch millis"),
            2 => assert_eq!(e["ts"], TS_OFFSET_UTC, "ts from RFC 3339 with offset"),
            _ => assert_eq!(e["ts"], e["received"], "default ts is the receive time"),
        }
        let level = if i % 3 == 0 { "warn" } else { "error" };
        assert_eq!(e["level"], level);
        let service = if i % 2 == 0 { "svc-it" } else { comm.as_str() };
        assert_eq!(e["service"], service, "service defaults to the peer's comm");
        assert_eq!(e["name"], "TestError");
        assert_eq!(e["message"], MESSAGES[i % MESSAGES.len()]);
        let fp = e["fingerprint"].as_str().expect("fingerprint");
        assert!(
            fp.len() == 32 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
            "fingerprint {fp:?} is not 32 hex digits"
        );
        assert!(
            e["class"].as_str().is_some_and(|s| !s.is_empty()),
            "class: {e}"
        );
        assert!(
            e["severity"].as_str().is_some_and(|s| !s.is_empty()),
            "severity: {e}"
        );
        let occ = e["occurrence"].as_u64().expect("occurrence is an integer");
        by_fp.entry(fp.to_string()).or_default().push(occ);
        assert_eq!(e["host"], "it-host");
        let peer = &e["peer"];
        assert_eq!(peer["pid"], std::process::id());
        assert_eq!(peer["uid"], nix::unistd::getuid().as_raw());
        assert_eq!(peer["gid"], nix::unistd::getgid().as_raw());
        assert_eq!(peer["comm"], comm.as_str());
        assert_eq!(peer["exe"], exe.to_str().unwrap());
        assert_eq!(e["stack"], STACK, "stack copied verbatim");
        assert_eq!(
            e["context"],
            json!({"path": "/api/orders", "attempt": 3, "nested": {"list": [1, 2.5, {"x": null}], "ok": true}})
        );
        assert_eq!(
            e["tags"],
            json!({"client": c.to_string(), "seq": i.to_string()})
        );
        assert_eq!(
            e["extra"],
            json!({"build": {"sha": "abc123"}, "attempt_no": 7})
        );
    }
    assert_eq!(seen.len(), n);

    // Seven distinct errors; within each, occurrences are exactly 1..=count (one window).
    assert_eq!(
        by_fp.len(),
        MESSAGES.len(),
        "one fingerprint per distinct message"
    );
    for (fp, mut occ) in by_fp {
        occ.sort_unstable();
        let expect: Vec<u64> = (1..=occ.len() as u64).collect();
        assert_eq!(occ, expect, "occurrences of {fp}");
    }

    let first = &records[0];
    assert_eq!(first["kind"], "daemon");
    assert_eq!(first["msg"], "start");
    let stop = stop_record(&records);
    assert_eq!(stop["accepted"], n);
    assert_eq!(stop["written"], n);
    assert_eq!(stop["rejected"], 0);
    assert_eq!(stop["dropped"], 0);
    assert!(
        records.iter().all(|r| r["kind"] != "dropped"),
        "nothing was dropped"
    );
}

/// `peer` comes from SO_PEERCRED and /proc, and a client can't override it (or `id`, `kind`,
/// `host`): unknown top-level fields, whatever their names, go under `extra`.
#[test]
fn peer_credentials_are_the_kernels_and_cannot_be_spoofed() {
    let mut d = spawn_daemon(Opts::new().env("EVENT_HOST", "real-host"));
    let spoof = event_line(
        "spoof attempt",
        json!({"peer": {"pid": 1, "uid": 4242}, "id": "not-an-id", "host": "fake-host", "kind": "advice"}),
    );
    let replies = d.send_lines(&[spoof]);
    assert!(replies.is_empty(), "{replies:?}");
    d.wait_for_events(1, EVENTS_TIMEOUT);
    let records = d.stop();
    let ev = crate::util::of_kind(&records, "event");
    assert_eq!(ev.len(), 1, "{records:?}");
    let e = &ev[0];
    assert_eq!(e["peer"]["pid"], std::process::id());
    assert_eq!(e["peer"]["uid"], nix::unistd::getuid().as_raw());
    assert_eq!(e["peer"]["gid"], nix::unistd::getgid().as_raw());
    assert_eq!(e["host"], "real-host");
    assert_ulid(&e["id"]);
    assert_eq!(
        e["extra"],
        json!({"peer": {"pid": 1, "uid": 4242}, "id": "not-an-id", "host": "fake-host", "kind": "advice"})
    );
}

/// `"ack":true` → `{"ok":true,"id":ID}` only once the record is in the file: each id is looked
/// up in the log right after its ack arrives, without polling.
#[test]
fn ack_arrives_after_the_record_is_in_the_log() {
    let mut d = spawn_daemon(Opts::new().env("SINK_FSYNC", "always"));
    let s = d.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut acked = Vec::new();
    for i in 0..20 {
        w.write_all(event_line(&format!("acked event {i}"), json!({"ack": true})).as_bytes())
            .unwrap();
        w.write_all(b"\n").unwrap();
        let reply = read_reply(&mut r).expect("EOF instead of an ack");
        assert_eq!(reply["ok"], true, "{reply}");
        assert_ulid(&reply["id"]);
        let id = reply["id"].as_str().unwrap().to_string();
        let log = std::fs::read_to_string(&d.log).unwrap();
        assert!(
            log.contains(&format!("\"id\":\"{id}\"")),
            "ack for {id} arrived before the record was in the log"
        );
        acked.push(id);
    }
    // Without ack (false or absent): no reply.
    w.write_all(b"{\"message\":\"no ack\",\"ack\":false}\n{\"message\":\"no ack either\"}\n")
        .unwrap();
    w.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        read_reply(&mut r).is_none(),
        "unexpected reply to an event without ack"
    );
    d.wait_for_events(22, EVENTS_TIMEOUT);
    let records = d.stop();
    let events = crate::util::of_kind(&records, "event");
    assert_eq!(events.len(), 22);
    for (i, id) in acked.iter().enumerate() {
        let e = events
            .iter()
            .find(|e| e["id"] == id.as_str())
            .unwrap_or_else(|| panic!("acked id {id} not in the log"));
        assert_eq!(e["message"], format!("acked event {i}"));
    }
}
