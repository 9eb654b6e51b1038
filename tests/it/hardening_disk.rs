//! Disk full, on a real tmpfs: the log shares a small file system with a filler file, so writes
//! fail with ENOSPC part-way through. The writer must keep the batches and retry, never leave a
//! torn line, never ack what is not written, hold ingest back through the ring, and — once
//! space returns (the filler is removed, or the operator deletes the log itself) — write
//! everything it accepted.

use std::collections::HashSet;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::hardening_support::{
    acked_lines, daemon_msgs, event_ids, reopens, unique, AckedSender, Proc, Tmpfs,
};
use crate::util::{parse_records, stop_record, wait_until};

/// The file system: filler + whatever room is left for the log.
const FS_BYTES: u64 = 2 << 20;
/// Room left for the log before the disk is full: a few hundred records.
const ROOM: u64 = 160 << 10;
/// Padding per message: records of roughly 700 bytes.
const PAD: usize = 200;
/// A ring much smaller than what is sent, so backpressure reaches the client's socket.
/// The reply buffer holds every ack of a test, so acks are counted exactly although the client
/// sends without waiting for them.
const DISK_ENV: [(&str, &str); 5] = [
    ("RING_CAPACITY_BYTES", "65536"),
    ("INGEST_REPLY_BUFFER_BYTES", "4194304"),
    ("INGEST_MAX_LINE_BYTES", "8192"),
    ("SINK_ROTATE_BYTES", "0"),
    ("SINK_BATCH_BYTES", "16384"),
];
const WAIT: Duration = Duration::from_secs(60);
/// What the writer logs (at most once per 10 s) while writes fail.
const FAILED_MSG: &str = "writing the log failed";

/// Fills the file system up to `room` free bytes.
fn fill(fs: &Tmpfs, room: u64) -> std::path::PathBuf {
    let filler = fs.path.join("filler");
    fs::write(&filler, vec![0u8; (FS_BYTES - room) as usize]).unwrap();
    filler
}

/// Waits until the writer has hit the full disk (its first error is logged after the failed
/// write was cut back).
fn wait_until_full(d: &Proc) {
    wait_until("the writer to report a failed write", WAIT, || {
        d.stderr_text().contains(FAILED_MSG).then_some(())
    });
}

/// Waits until the disk is full, then until the client is blocked: lines handed to the kernel
/// stop growing. Returns that count.
fn wait_until_stalled(d: &Proc, sender: &AckedSender, total: usize) -> usize {
    wait_until_full(d);
    let blocked = wait_until("the client to be held back", WAIT, || {
        let before = sender.written();
        thread::sleep(Duration::from_millis(300));
        (sender.written() == before).then_some(before)
    });
    assert!(
        blocked < total,
        "the client sent all {total} events while the disk was full: no backpressure"
    );
    blocked
}

/// While the disk stays full, the log ends with a whole line and holds every acked event.
/// Returns the ids in it.
fn check_log_while_full(d: &Proc, sender: &AckedSender) -> HashSet<String> {
    // Acks first: whatever was acked before this read must be in the file read after it.
    let acked = sender.acked();
    let bytes = fs::read(&d.log).unwrap();
    let records = parse_records(&bytes, true); // strict: no torn last line
    let ids = unique(&event_ids(&records), "log while full");
    for id in &acked {
        assert!(ids.contains(id), "acked event {id} is not in the log");
    }
    ids
}

#[test]
fn disk_full_holds_everything_back_and_writes_it_all_when_space_returns() {
    let _cpu = crate::util::cpu_share();
    let Some(fs) = Tmpfs::mount(
        "disk_full_holds_everything_back_and_writes_it_all_when_space_returns",
        FS_BYTES,
    ) else {
        return;
    };
    let filler = fill(&fs, ROOM);
    let mut d = Proc::spawn(&fs.path.join("errors.log"), &DISK_ENV);

    const N: usize = 3000; // ~2 MB of records: far past the room, within the whole fs
    let sender = AckedSender::start(&d.socket, acked_lines("full", N, PAD), 25);
    let blocked = wait_until_stalled(&d, &sender, N);
    let ids_while_full = check_log_while_full(&d, &sender);
    assert!(
        ids_while_full.len() < blocked,
        "{} events in the log of {blocked} sent: the disk never filled?",
        ids_while_full.len()
    );

    let outage_started = Instant::now();
    // Still stuck a moment later (the writer keeps retrying, nothing changes).
    thread::sleep(Duration::from_millis(500));
    assert_eq!(check_log_while_full(&d, &sender), ids_while_full);

    fs::remove_file(&filler).unwrap();
    let (acked, other) = sender.join();
    let outage = outage_started.elapsed();
    assert!(other.is_empty(), "unexpected replies: {other:?}");

    let records = d.stop();
    let written = unique(&event_ids(&records), "final log");
    assert_eq!(written.len(), N, "written = sent");
    assert_eq!(stop_record(&records)["written"], N);
    let acked = unique(&acked, "acks");
    assert!(acked.is_subset(&written), "an acked event is missing");
    assert_eq!(acked.len(), N, "every event was acked once written");
    let recovered = daemon_msgs(&records, "log writable again");
    assert_eq!(recovered.len(), 1, "one recovery record");
    assert!(recovered[0]["failed_attempts"].as_u64().unwrap() >= 1);

    // Logged once per 10 s, not once per retry.
    let logged = d.stderr_text().matches(FAILED_MSG).count();
    let bound = 1 + (outage.as_secs() / 10) as usize + 1;
    assert!(
        (1..=bound).contains(&logged),
        "failed writes logged {logged} times in {outage:?}"
    );
}

#[test]
fn deleting_the_log_on_a_full_disk_frees_the_space_and_writing_resumes() {
    let _cpu = crate::util::cpu_share();
    let Some(fs) = Tmpfs::mount(
        "deleting_the_log_on_a_full_disk_frees_the_space_and_writing_resumes",
        FS_BYTES,
    ) else {
        return;
    };
    let _filler = fill(&fs, ROOM);
    let log = fs.path.join("errors.log");
    let mut d = Proc::spawn(&log, &DISK_ENV);

    // Enough to fill the room, and what is left fits once the old log's space is free.
    // (Backpressure is the previous test's business: these all fit into the buffers.)
    const N: usize = 320;
    let sender = AckedSender::start(&d.socket, acked_lines("del", N, PAD), 10);
    wait_until_full(&d);
    let before = check_log_while_full(&d, &sender);
    assert!(
        !before.is_empty() && before.len() < N,
        "{} of {N} events in the log when the disk filled",
        before.len()
    );

    // The operator frees space by deleting the log. The daemon holds it open, so the space is
    // only freed once it notices and reopens.
    fs::remove_file(&log).unwrap();
    let (acked, other) = sender.join();
    assert!(other.is_empty(), "unexpected replies: {other:?}");
    let records = d.stop();

    let after = unique(&event_ids(&records), "new log");
    assert!(
        before.is_disjoint(&after),
        "an event was written twice (old and new file)"
    );
    assert_eq!(
        before.len() + after.len(),
        N,
        "every event is in the deleted file or the new one"
    );
    assert_eq!(stop_record(&records)["written"], N);
    let acked = unique(&acked, "acks");
    assert_eq!(acked.len(), N);
    let all: HashSet<String> = before.union(&after).cloned().collect();
    assert!(acked.is_subset(&all));
    assert_eq!(
        reopens(&records, "missing").len(),
        1,
        "one reopen after the deletion"
    );
    assert_eq!(daemon_msgs(&records, "log writable again").len(), 1);
}
