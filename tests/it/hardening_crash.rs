//! kill -9 under acked load: every event the daemon acked is in the file, with `fsync =
//! "always"` and with the default policy (an ack follows the write into the page cache, which
//! a killed process cannot lose). A daemon started again on that log repairs a line the kill
//! may have torn, so the log stays valid NDJSON.

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use crate::hardening_support::{acked_lines, daemon_msgs, event_ids, unique, AckedSender, Proc};
use crate::util::{parse_records, spawn_daemon, wait_until, Opts};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 5_000;
/// Acks seen before the kill: enough that the kill lands in the middle of steady traffic.
const ACKED_BEFORE_KILL: usize = 1500;

fn kill9_keeps_every_acked_event(fsync: Option<&str>) {
    let mut opts = Opts::new();
    if let Some(policy) = fsync {
        opts = opts.env("SINK_FSYNC", policy);
    }
    let mut d = spawn_daemon(opts);
    let senders: Vec<AckedSender> = (0..CLIENTS)
        .map(|c| AckedSender::start(&d.socket, acked_lines(&format!("k{c}"), PER_CLIENT, 50), 20))
        .collect();
    wait_until("acks to flow", Duration::from_secs(60), || {
        let n: usize = senders.iter().map(|s| s.acked().len()).sum();
        (n >= ACKED_BEFORE_KILL).then_some(())
    });
    d.signal(libc::SIGKILL);
    let st = d.wait_exit(Duration::from_secs(30));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL)
    );

    let mut acked = Vec::new();
    for s in senders {
        let (a, other) = s.join();
        assert!(other.is_empty(), "unexpected replies: {other:?}");
        acked.extend(a);
    }
    let acked = unique(&acked, "acks");
    assert!(acked.len() >= ACKED_BEFORE_KILL);
    assert!(
        acked.len() < CLIENTS * PER_CLIENT,
        "the kill came after everything was done"
    );

    // Every complete line parses; a torn last line is possible and skipped here.
    let bytes = fs::read(&d.log).unwrap();
    let in_file = unique(&event_ids(&parse_records(&bytes, false)), "log after kill");
    let missing: Vec<&String> = acked.difference(&in_file).collect();
    assert!(
        missing.is_empty(),
        "{} acked events are not in the log, e.g. {:?}",
        missing.len(),
        missing.first()
    );

    // Started again on the same log: a torn tail is cut off, the log is valid NDJSON again,
    // and nothing that was there before is lost.
    let torn = bytes.len() - bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut again = Proc::spawn(&d.log, &[]);
    let extra = AckedSender::start(&again.socket, acked_lines("again", 10, 0), 10);
    let (extra_acked, _) = extra.join();
    assert_eq!(extra_acked.len(), 10);
    let records = again.stop(); // strict parse: every line of the whole file is JSON
    let after: HashSet<String> = unique(&event_ids(&records), "log after restart");
    assert!(
        acked.is_subset(&after),
        "an acked event was lost by the restart"
    );
    assert!(extra_acked.iter().all(|id| after.contains(id)));
    assert_eq!(after.len(), in_file.len() + 10);
    let repairs = daemon_msgs(&records, "repaired torn last line");
    if torn > 0 {
        assert_eq!(
            repairs.len(),
            1,
            "a torn tail of {torn} bytes was not reported"
        );
        assert_eq!(repairs[0]["removed_bytes"], torn);
    } else {
        assert!(repairs.is_empty(), "{repairs:?}");
    }
}

#[test]
fn kill9_with_fsync_always_keeps_every_acked_event() {
    let _cpu = crate::util::cpu_share();
    kill9_keeps_every_acked_event(Some("always"));
}

#[test]
fn kill9_with_the_default_fsync_keeps_every_acked_event() {
    let _cpu = crate::util::cpu_share();
    kill9_keeps_every_acked_event(None);
}
