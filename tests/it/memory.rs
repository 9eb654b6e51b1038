//! Memory governance end to end: a daemon with a small budget under a flood of distinct
//! fingerprints and a stalled sink stays within its budget (RSS sampled from /proc by the test),
//! sheds in the documented order, accounts for every event, and comes back when it is over.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{dropped_count, of_kind, spawn_daemon, stop_record, wait_until, Opts};

const MIB: u64 = 1 << 20;
/// The daemon's budget in this test (`memory.budget`).
const BUDGET: u64 = 48 * MIB;
/// RSS may pass the budget by this much (docs/memory.md, "Slack"): the governor reacts within
/// a sample interval, and what is already allocated when it does is released as it drains.
const SLACK: u64 = 16 * MIB;
/// Events in the flood; each has its own fingerprint.
const FLOOD: usize = 1_000_000;
const CLIENTS: usize = 4;
/// Every this many events one is large (a long stack trace of [`PAD`] bytes); the rest are
/// small, so the flood is quick even in a debug build.
const LARGE_EVERY: usize = 64;
const PAD: usize = 8192;

/// RSS of `pid` in bytes, from /proc/PID/statm.
fn rss(pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Samples RSS every 10 ms on a thread until stopped; returns the samples.
struct RssProbe {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl RssProbe {
    fn start(pid: i32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let t0 = Instant::now();
        let handle = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(r) = rss(pid) {
                    out.lock().unwrap().push((t0.elapsed(), r));
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            stop,
            samples,
            handle: Some(handle),
        }
    }

    fn max(&self) -> u64 {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.1)
            .max()
            .unwrap_or(0)
    }

    fn finish(mut self) -> Vec<(Duration, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

fn flood_line(i: usize, pad: &str) -> String {
    // 3 of 4 events are info/debug (sampled under pressure), 1 of 4 error (always kept).
    let level = ["error", "info", "debug", "info"][i % 4];
    let stack = if i % LARGE_EVERY == 0 { pad } else { "" };
    format!("{{\"message\":\"f{i}\",\"level\":\"{level}\",\"fingerprint\":\"{i}\",\"stack\":\"{stack}\"}}\n")
}

fn memory_records(records: &[Value]) -> Vec<String> {
    of_kind(records, "daemon")
        .into_iter()
        .filter_map(|r| r["msg"].as_str().map(str::to_string))
        .filter(|m| m.starts_with("memory pressure"))
        .collect()
}

#[test]
fn a_flood_of_distinct_fingerprints_stays_within_the_budget_and_every_event_is_accounted() {
    let mut d = spawn_daemon(
        Opts::new()
            .fifo_log()
            .env("MEMORY_BUDGET", BUDGET)
            .env("MEMORY_SAMPLE_INTERVAL", "20ms")
            .env("RING_OVERFLOW", "drop_newest")
            .env("SINK_FSYNC", "never")
            .env("SINK_ROTATE_BYTES", 0),
    );
    let pid = d.pid();
    let idle = rss(pid).unwrap();
    let probe = RssProbe::start(pid);
    let started = Instant::now();
    let pad = "x".repeat(PAD);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let mut s = d.connect();
            let pad = pad.clone();
            thread::spawn(move || {
                let mut buf = Vec::with_capacity(256 * 1024);
                for i in (c..FLOOD).step_by(CLIENTS) {
                    buf.extend_from_slice(flood_line(i, &pad).as_bytes());
                    if buf.len() >= 240 * 1024 {
                        s.write_all(&buf).unwrap();
                        buf.clear();
                    }
                }
                s.write_all(&buf).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                // No acks asked: EOF comes when the daemon has read everything.
                let mut sink = Vec::new();
                std::io::Read::read_to_end(&mut s, &mut sink).unwrap();
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let flood_time = started.elapsed();
    {
        let v = probe.samples.lock().unwrap();
        let i = v
            .iter()
            .enumerate()
            .max_by_key(|(_, s)| s.1)
            .map_or(0, |(i, _)| i);
        for (t, r) in &v[i.saturating_sub(30)..(i + 30).min(v.len())] {
            eprintln!("  {:>6.2}s {:>4} MiB", t.as_secs_f64(), r / MIB);
        }
    }
    let peak = probe.max();
    eprintln!(
        "flood of {FLOOD} in {flood_time:?}: idle RSS {} MiB, peak {} MiB",
        idle / MIB,
        peak / MIB
    );

    // The sink moves again; the log drains and pressure comes back down.
    let drain = d.unstall();
    wait_until("pressure back to normal", Duration::from_secs(60), || {
        let transitions = memory_records(&drain.records());
        (transitions.last().map(String::as_str) == Some("memory pressure normal")).then_some(())
    });
    let settled = rss(pid).unwrap();
    let samples = probe.finish();
    let status = d.sigterm_and_wait();
    assert!(status.success(), "exit status {status}");
    let records = drain.finish();

    let over: Vec<_> = samples.iter().filter(|s| s.1 > BUDGET + SLACK).collect();
    assert!(
        over.is_empty(),
        "RSS above budget + slack ({} MiB) at {:?}",
        (BUDGET + SLACK) / MIB,
        over.iter()
            .take(5)
            .map(|s| (s.0, s.1 / MIB))
            .collect::<Vec<_>>()
    );

    let written = of_kind(&records, "event").len() as u64;
    let dropped = dropped_count(&records, "overload");
    let suppressed: u64 = of_kind(&records, "suppressed")
        .iter()
        .filter(|r| r["reason"] == "pressure")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    eprintln!(
        "written {written}, suppressed {suppressed}, dropped {dropped}, settled at {} MiB",
        settled / MIB
    );
    assert!(
        settled < BUDGET,
        "RSS stayed at {} MiB after the flood",
        settled / MIB
    );
    assert_eq!(
        written + suppressed + dropped,
        FLOOD as u64,
        "written {written} + suppressed {suppressed} + dropped {dropped} must equal sent"
    );
    assert!(suppressed > 0, "pressure never sampled anything out");
    let stop = stop_record(&records);
    assert_eq!(stop["written"], written);
    assert_eq!(stop["suppressed"], suppressed);
    let transitions = memory_records(&records);
    assert!(
        transitions.iter().any(|m| m == "memory pressure high"),
        "{transitions:?}"
    );
    assert_eq!(
        transitions.last().map(String::as_str),
        Some("memory pressure normal"),
        "pressure did not come back down: {transitions:?}"
    );
}
