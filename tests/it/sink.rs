//! The log file: size-based rotation under load, and SIGHUP reopen after an external rename.

use std::collections::HashSet;
use std::io::Write;
use std::thread;

use serde_json::json;

use crate::util::{
    event_line, of_kind, parse_records, read_replies, spawn_daemon, stop_record, wait_until, Opts,
    EVENTS_TIMEOUT,
};

const ROTATE_BYTES: u64 = 200_000;
const ROTATE_KEEP: usize = 50;
const ROT_CLIENTS: usize = 8;
const ROT_PER_CLIENT: usize = 500;

#[test]
fn rotation_under_load_loses_and_splits_nothing() {
    let mut d = spawn_daemon(
        Opts::new()
            .env("SINK_ROTATE_BYTES", ROTATE_BYTES)
            .env("SINK_ROTATE_KEEP", ROTATE_KEEP),
    );
    // ~4000 records of ~800 bytes: ~3 MB, about 16 files, well under `keep`.
    let pad = "p".repeat(200);
    let clients: Vec<_> = (0..ROT_CLIENTS)
        .map(|c| {
            let mut s = d.connect();
            let pad = pad.clone();
            thread::spawn(move || {
                for chunk in 0..10 {
                    let mut buf = Vec::new();
                    for i in chunk * ROT_PER_CLIENT / 10..(chunk + 1) * ROT_PER_CLIENT / 10 {
                        let l = event_line(
                            &format!("rot {c} {i} {pad}"),
                            json!({"tags": {"k": format!("{c}-{i}")}}),
                        );
                        buf.extend_from_slice(l.as_bytes());
                        buf.push(b'\n');
                    }
                    s.write_all(&buf).unwrap();
                }
                s.shutdown(std::net::Shutdown::Write).unwrap();
                read_replies(&mut s)
            })
        })
        .collect();
    for c in clients {
        assert!(c.join().unwrap().is_empty());
    }
    let n = ROT_CLIENTS * ROT_PER_CLIENT;
    d.wait_for_events(n, EVENTS_TIMEOUT);
    let records = d.stop();

    let files = d.log_files();
    assert!(files.len() >= 3, "expected rotated files, got {files:?}");
    assert!(
        files.len() <= ROTATE_KEEP + 1,
        "more than rotate_keep rotated files: {}",
        files.len()
    );
    // `final_records` already checked that every file ends with a newline and every line is
    // JSON: no record was split across files. (A file may exceed the limit when one write group
    // alone is larger, by design, so sizes aren't asserted.)
    for f in &files[..files.len() - 1] {
        assert!(
            std::fs::metadata(f).unwrap().len() > 0,
            "{} is empty",
            f.display()
        );
    }
    let events = of_kind(&records, "event");
    assert_eq!(events.len(), n, "event lines across all files");
    let keys: HashSet<&str> = events
        .iter()
        .map(|e| e["tags"]["k"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), n, "each event exactly once");
    assert_eq!(
        records[0]["msg"], "start",
        "the oldest file starts with the start record"
    );
    assert_eq!(stop_record(&records)["written"], n);
}

#[test]
fn sighup_reopens_the_log_after_a_rename() {
    let mut d = spawn_daemon(Opts::new());
    let batch = |tag: &str| -> Vec<String> {
        (0..100)
            .map(|i| event_line(&format!("{tag} {i}"), json!({})))
            .collect()
    };
    assert!(d.send_lines(&batch("before")).is_empty());
    d.wait_for_events(100, EVENTS_TIMEOUT);

    let old = d.dir.path().join("errors.log.old");
    std::fs::rename(&d.log, &old).unwrap();
    d.signal(libc::SIGHUP);
    // The writer announces the reopen in the new file; wait for it before sending more, so the
    // test doesn't race the signal.
    wait_until("the reopened log file", EVENTS_TIMEOUT, || {
        let bytes = std::fs::read(&d.log).ok()?;
        parse_records(&bytes, false)
            .iter()
            .any(|r| {
                r["kind"] == "daemon" && r["msg"].as_str().is_some_and(|m| m.contains("reopen"))
            })
            .then_some(())
    });
    assert!(d.send_lines(&batch("after")).is_empty());
    d.wait_for_events(100, EVENTS_TIMEOUT);
    let new_records = d.stop();

    let old_records = parse_records(&std::fs::read(&old).unwrap(), true);
    let msgs = |recs: &[serde_json::Value]| -> Vec<String> {
        of_kind(recs, "event")
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    };
    let before: Vec<String> = (0..100).map(|i| format!("before {i}")).collect();
    let after: Vec<String> = (0..100).map(|i| format!("after {i}")).collect();
    assert_eq!(
        msgs(&old_records),
        before,
        "the renamed file keeps the first batch"
    );
    assert_eq!(
        msgs(&new_records),
        after,
        "the new file at the original path gets the rest"
    );
    assert_eq!(stop_record(&new_records)["written"], 200);
}
