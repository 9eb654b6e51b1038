//! A stalled sink. The log path is a FIFO the test doesn't read (see `Opts::fifo_log`): once
//! the 64 KiB pipe buffer is full, the writer thread blocks in `write()` for as long as the test
//! wants — a real stall, not just a slow disk — and the tiny ring fills behind it.
//! Then the policy decides: `drop_newest` drops and counts, `backpressure` stops reading and the
//! client's writes block. Either way the books balance exactly.

use std::collections::HashSet;
use std::io::{ErrorKind, Write};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::util::{
    dropped_count, event_line, of_kind, read_replies, spawn_daemon, stop_record, Opts,
    EVENTS_TIMEOUT,
};

/// A tiny ring (it must still hold one maximal line) so the stall reaches ingest quickly.
fn stalled_opts() -> Opts {
    Opts::new()
        .fifo_log()
        .env("RING_CAPACITY_EVENTS", 16)
        .env("RING_CAPACITY_BYTES", 16384)
        .env("INGEST_MAX_LINE_BYTES", 4096)
        // fsync fails on a FIFO (EINVAL); don't let it add noise.
        .env("SINK_FSYNC", "never")
        .env("SINK_ROTATE_BYTES", 0)
}

const DROP_CLIENTS: usize = 4;
const DROP_PER_CLIENT: usize = 2000;
const DROP_ACKED: usize = 500;

#[test]
fn drop_newest_with_a_stalled_sink_counts_every_loss() {
    let mut d = spawn_daemon(stalled_opts().env("RING_OVERFLOW", "drop_newest"));
    let pad = "d".repeat(100);
    let clients: Vec<_> = (0..DROP_CLIENTS)
        .map(|c| {
            let mut s = d.connect();
            let pad = pad.clone();
            thread::spawn(move || {
                let mut data = Vec::new();
                for i in 0..DROP_PER_CLIENT {
                    data.extend_from_slice(
                        event_line(&format!("drop {c} {i} {pad}"), json!({})).as_bytes(),
                    );
                    data.push(b'\n');
                }
                // Under drop_newest the daemon keeps reading: this never blocks for long.
                s.write_all(&data).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                read_replies(&mut s)
            })
        })
        .collect();
    // One client asks for acks: dropped events are refused with `overloaded`, the rest acked
    // once the sink moves again.
    let (sent_tx, sent_rx) = mpsc::channel();
    let mut s = d.connect();
    let acker = thread::spawn(move || {
        let mut data = Vec::new();
        for i in 0..DROP_ACKED {
            data.extend_from_slice(
                event_line(&format!("acked {i}"), json!({"ack": true})).as_bytes(),
            );
            data.push(b'\n');
        }
        s.write_all(&data).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        sent_tx.send(()).unwrap();
        read_replies(&mut s)
    });
    for c in clients {
        assert!(c.join().unwrap().is_empty(), "no replies without acks");
    }
    sent_rx.recv_timeout(Duration::from_secs(120)).unwrap();

    let drain = d.unstall();
    let replies = acker.join().unwrap();
    let status = d.sigterm_and_wait();
    assert!(status.success(), "exit status {status}");
    let records = drain.finish();

    let sent = DROP_CLIENTS * DROP_PER_CLIENT + DROP_ACKED;
    let events = of_kind(&records, "event");
    let dropped = dropped_count(&records, "overload");
    assert!(
        dropped > 0,
        "the stall dropped nothing: the test did not stall the sink"
    );
    assert!(!events.is_empty());
    assert_eq!(
        events.len() as u64 + dropped,
        sent as u64,
        "written ({}) + dropped ({dropped}) must equal sent",
        events.len()
    );
    let stop = stop_record(&records);
    assert_eq!(stop["dropped"], dropped);
    assert_eq!(stop["written"], events.len());
    assert_eq!(stop["accepted"], sent);

    let logged: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let (mut acked, mut refused) = (0, 0);
    for r in &replies {
        let id = r["id"]
            .as_str()
            .unwrap_or_else(|| panic!("reply without id: {r}"));
        if r["ok"] == true {
            assert!(logged.contains(id), "acked {id} not in the log");
            acked += 1;
        } else {
            assert_eq!(r["error"], "overloaded", "{r}");
            assert!(!logged.contains(id), "refused {id} is in the log");
            refused += 1;
        }
    }
    assert_eq!(acked + refused, DROP_ACKED, "one reply per acked event");
}

const BP_EVENTS: usize = 20_000;
/// A write that makes no progress for this long counts as blocked. This only decides when the
/// test stops pushing; every assertion below holds whatever it is.
const BLOCKED_AFTER: Duration = Duration::from_secs(2);

#[test]
fn backpressure_blocks_the_client_instead_of_dropping() {
    let mut d = spawn_daemon(stalled_opts());
    let pad = "b".repeat(100);
    let mut data = Vec::new();
    for i in 0..BP_EVENTS {
        data.extend_from_slice(event_line(&format!("bp {i} {pad}"), json!({})).as_bytes());
        data.push(b'\n');
    }
    let mut s = d.connect();
    s.set_write_timeout(Some(BLOCKED_AFTER)).unwrap();
    let mut off = 0;
    let mut blocked = false;
    while off < data.len() {
        match s.write(&data[off..]) {
            Ok(0) => panic!("write returned 0"),
            Ok(n) => off += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                blocked = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(
        blocked,
        "all {} bytes were taken without the client ever blocking: the daemon buffered or \
         dropped instead of pushing back",
        data.len()
    );
    assert!(off < data.len());

    // Unstall: the rest goes through.
    let drain = d.unstall();
    s.set_write_timeout(None).unwrap();
    s.write_all(&data[off..]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_replies(&mut s).is_empty());
    drain.wait_for_events(BP_EVENTS, EVENTS_TIMEOUT);
    let status = d.sigterm_and_wait();
    assert!(status.success(), "exit status {status}");
    let records = drain.finish();

    let events = of_kind(&records, "event");
    assert_eq!(events.len(), BP_EVENTS);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["message"],
            format!("bp {i} {pad}"),
            "order on one connection"
        );
    }
    assert_eq!(dropped_count(&records, "overload"), 0);
    let stop = stop_record(&records);
    assert_eq!(stop["dropped"], 0);
    assert_eq!(stop["written"], BP_EVENTS);
}
