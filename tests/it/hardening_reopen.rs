//! The log file removed or replaced behind the daemon's back, without SIGHUP: the writer sees
//! it (a deleted file before every write, a replaced one within `sink.reopen_check_interval`)
//! and reopens the path, so no record goes into an unlinked file.

use std::collections::HashSet;
use std::fs;

use serde_json::{json, Value};

use crate::hardening_support::reopens;
use crate::util::{
    event_line, of_kind, parse_records, spawn_daemon, stop_record, wait_until, Opts, EVENTS_TIMEOUT,
};

const BATCH: usize = 100;

fn batch(tag: &str) -> Vec<String> {
    (0..BATCH)
        .map(|i| event_line(&format!("{tag} {i}"), json!({})))
        .collect()
}

fn messages(records: &[Value]) -> Vec<String> {
    of_kind(records, "event")
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn expected(tag: &str) -> Vec<String> {
    (0..BATCH).map(|i| format!("{tag} {i}")).collect()
}

/// Deleted mid-run: the very next events are in a new file at the path (checked right away,
/// without waiting for the periodic check).
#[test]
fn a_deleted_log_is_recreated_before_the_next_write() {
    let _cpu = crate::util::cpu_share();
    // A long check interval: only the before-write check can catch it in time.
    let mut d = spawn_daemon(Opts::new().env("SINK_REOPEN_CHECK_INTERVAL", "1h"));
    assert!(d.send_lines(&batch("before")).is_empty());
    d.wait_for_events(BATCH, EVENTS_TIMEOUT);

    fs::remove_file(&d.log).unwrap();
    assert!(d.send_lines(&batch("after")).is_empty());
    d.wait_for_events(BATCH, EVENTS_TIMEOUT);
    let records = d.stop();

    assert_eq!(
        messages(&records),
        expected("after"),
        "the new file holds exactly the later events"
    );
    assert_eq!(
        reopens(&records, "missing").len(),
        1,
        "one reopen after the deletion"
    );
    assert_eq!(stop_record(&records)["written"], 2 * BATCH);
}

/// Rotated without SIGHUP (renamed away, a new empty file created in its place): detected by
/// the periodic inode check. Events in between land in the renamed file, none is lost, and
/// after the reopen everything goes to the new file.
#[test]
fn a_log_replaced_without_sighup_is_reopened() {
    let _cpu = crate::util::cpu_share();
    let mut d = spawn_daemon(Opts::new().env("SINK_REOPEN_CHECK_INTERVAL", "200ms"));
    assert!(d.send_lines(&batch("first")).is_empty());
    d.wait_for_events(BATCH, EVENTS_TIMEOUT);

    let rotated = d.dir.path().join("errors.log.1");
    fs::rename(&d.log, &rotated).unwrap();
    fs::write(&d.log, b"").unwrap();
    // Sent at once: these may still go to the renamed file, which is not a loss.
    assert!(d.send_lines(&batch("second")).is_empty());
    wait_until("the reopen record in the new file", EVENTS_TIMEOUT, || {
        let recs = parse_records(&fs::read(&d.log).ok()?, false);
        (!reopens(&recs, "replaced").is_empty()).then_some(())
    });
    assert!(d.send_lines(&batch("third")).is_empty());
    d.wait_for_events(3 * BATCH, EVENTS_TIMEOUT);
    d.stop();
    let new = parse_records(&fs::read(&d.log).unwrap(), true);
    let old = parse_records(&fs::read(&rotated).unwrap(), true);

    assert_eq!(
        reopens(&new, "replaced").len(),
        1,
        "one reopen after the swap"
    );

    let (old_msgs, new_msgs) = (messages(&old), messages(&new));
    assert_eq!(
        old_msgs[..BATCH],
        expected("first")[..],
        "the renamed file keeps the first batch"
    );
    assert!(
        new_msgs.ends_with(&expected("third")),
        "the new file gets everything after the reopen"
    );
    let all: Vec<&String> = old_msgs.iter().chain(&new_msgs).collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), 3 * BATCH, "every event once, across both files");
    assert_eq!(distinct.len(), 3 * BATCH);
    assert_eq!(stop_record(&new)["written"], 3 * BATCH);
}
