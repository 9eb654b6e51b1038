//! Memory governance end to end: a daemon with a small budget under a flood of distinct
//! fingerprints and a stalled sink stays within its budget (RSS sampled from /proc by the test),
//! sheds in the documented order, accounts for every event, and comes back when it is over.

use crate::util::control_addr;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use qerrors::ctl::client::{control_get, control_json};
use serde_json::Value;

use crate::util::{dropped_count, of_kind, spawn_daemon, stop_record, wait_until, Opts};

const MIB: u64 = 1 << 20;
/// The daemon's budget in this test (`memory.budget`), the example. The debug build
/// with every subsystem on idles at ~24 MiB, peaks at 46–47 MiB in this flood and settles at
/// 35–36 MiB after it, well under `critical`'s exit threshold (0.90 × 48 MiB). (Before the ring
/// stopped pre-allocating its slots and the daemon trimmed its startup peak, it settled at
/// 37–46 MiB and this test ran at 56 MiB; docs/memory.md.)
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
    let _cpu = crate::util::cpu_exclusive();
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
    // RSS once a second, for the record (run with --nocapture).
    for (t, r) in probe.samples.lock().unwrap().iter().step_by(100) {
        eprintln!("  {:>6.2}s {:>4} MiB", t.as_secs_f64(), r / MIB);
    }
    let peak = probe.max();
    eprintln!(
        "flood of {FLOOD} in {flood_time:?}: idle RSS {} MiB, peak {} MiB",
        idle / MIB,
        peak / MIB
    );

    // The sink moves again; the log drains and pressure comes back down.
    let drain = d.unstall();
    let addr = wait_until("start record", Duration::from_secs(30), || {
        drain
            .records()
            .iter()
            .find(|r| r["kind"] == "daemon" && r["msg"] == "start")
            .and_then(|r| r["control_socket"].as_str().map(String::from))
    });
    // "After the flood" = once its backlog is written: the ring is empty.
    wait_until("backlog written", Duration::from_secs(60), || {
        let s = control_json(&addr, "/stats").ok()?;
        (s["ring"]["events"] == 0).then_some(())
    });
    // The debug-build daemon with every subsystem on idles at ~30 MiB and settles at 37–46 MiB:
    // around `high`'s exit threshold, so "no leak" is checked as "out of critical and under the
    // budget", not as "back to normal".
    let level = wait_until(
        "pressure back below critical",
        Duration::from_secs(60),
        || {
            let s = control_json(&addr, "/stats").ok()?;
            let level = s["memory"]["pressure"].as_str()?.to_string();
            (level != "critical" && rss(pid).unwrap_or(u64::MAX) < BUDGET).then_some(level)
        },
    );
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
    assert_ne!(
        level, "critical",
        "pressure did not come back down: {transitions:?}"
    );
}

/// A budget far below what the daemon needs just to run: pressure is critical from the first
/// sample, which shows every critical-level behaviour without any memory games.
fn critical_opts() -> Opts {
    Opts::new()
        .env("MEMORY_BUDGET", 4 * MIB)
        .env("MEMORY_PRESSURE_TIMEOUT", "1s")
}

#[test]
fn at_critical_ready_fails_stats_and_metrics_say_why_and_only_warn_and_up_is_kept() {
    let mut d = spawn_daemon(critical_opts());
    let addr = control_addr(&d);
    let (status, body) = wait_until("/ready failing", Duration::from_secs(30), || {
        let r = control_get(&addr, "/ready").ok()?;
        (r.0 == 503).then_some(r)
    });
    assert_eq!(status, 503);
    assert!(body.contains("memory pressure critical"), "{body}");
    // The governor thread sets the level (what /ready reads) before it counts the transition:
    // wait for the count itself, not for /ready.
    let stats = wait_until(
        "/stats counting the transition to critical",
        Duration::from_secs(30),
        || {
            let s = control_json(&addr, "/stats").ok()?;
            (s["memory"]["transitions"]["critical"].as_u64()? >= 1).then_some(s)
        },
    );
    let mem = &stats["memory"];
    assert_eq!(mem["budget_bytes"], 4 * MIB, "{mem}");
    assert_eq!(mem["pressure"], "critical", "{mem}");
    assert!(mem["rss_bytes"].as_u64().unwrap() > 4 * MIB, "{mem}");
    assert_eq!(mem["transitions"]["critical"], 1, "{mem}");
    assert!(
        stats["connections"]["in_flight"]["cap_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let (_, metrics) = control_get(&addr, "/metrics").unwrap();
    for needle in [
        "qerrors_memory_budget_bytes 4194304",
        "qerrors_memory_pressure{level=\"critical\"} 1",
        "qerrors_memory_pressure_transitions_total{level=\"critical\"} 1",
        "qerrors_ingest_in_flight_bytes",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }

    let levels = ["debug", "info", "warn", "error", "trace", "fatal"];
    let lines: Vec<String> = (0..60)
        .map(|i| {
            let level = levels[i % levels.len()];
            format!("{{\"message\":\"m{i}\",\"level\":\"{level}\"}}")
        })
        .collect();
    assert!(d.send_lines(&lines).is_empty());
    // An acked info event is never sampled out: the client asked to know.
    let replies = d.send_lines(&["{\"message\":\"asked\",\"level\":\"info\",\"ack\":true}"]);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["ok"], true, "{replies:?}");
    // The daemon's own log is at warn under pressure: a reload's info lines stay out of it
    // (QERRORS_LOG_LEVEL is info in the harness), its record still reaches the log file.
    d.signal(libc::SIGHUP);
    wait_until("config reloaded record", Duration::from_secs(30), || {
        d.records("daemon")
            .into_iter()
            .find(|r| r["msg"] == "config reloaded")
    });
    // The daemon's stderr is written by its logger's own thread (a non-blocking writer), so a
    // line there may lag the records in the log file: wait for the pressure line itself.
    wait_until(
        "the pressure line in the daemon's stderr",
        Duration::from_secs(30),
        || {
            d.stderr_text()
                .contains("memory pressure critical")
                .then_some(())
        },
    );
    let stderr = d.stderr_text();
    assert!(!stderr.contains("configuration reloaded"), "{stderr}");
    assert!(stderr.contains("memory pressure critical"), "{stderr}");
    let records = d.stop();
    let events = of_kind(&records, "event");
    let kept: Vec<&str> = events
        .iter()
        .map(|e| e["level"].as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 31, "{kept:?}");
    assert!(
        kept[..30]
            .iter()
            .all(|l| ["warn", "error", "fatal"].contains(l)),
        "{kept:?}"
    );
    let suppressed: u64 = of_kind(&records, "suppressed")
        .iter()
        .filter(|r| r["reason"] == "pressure")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(suppressed, 30);
    assert_eq!(stop_record(&records)["suppressed"], 30);
    assert_eq!(memory_records(&records), ["memory pressure critical"]);
}

#[test]
fn under_pressure_silent_and_trickling_clients_lose_their_slot_sooner() {
    // ingest.idle_timeout stays 5 minutes and read_timeout 30 s; pressure makes both 1 s.
    let d = spawn_daemon(critical_opts());
    let mut silent = d.connect();
    let mut trickler = d.connect();
    let t = thread::spawn(move || {
        // Two bytes a second of a line that never ends, for 20 s: less than the configured
        // read timeout, so only the pressure timeout can close it in time.
        let mut replies = Vec::new();
        for _ in 0..40 {
            if trickler.write_all(b"{").is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(500));
            trickler.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 4096];
            match std::io::Read::read(&mut trickler, &mut buf) {
                Ok(0) => break,
                Ok(n) => replies.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            trickler.set_nonblocking(false).unwrap();
        }
        replies
    });
    let mut buf = Vec::new();
    // EOF well before the 5-minute idle timeout (the socket's read timeout is 30 s).
    std::io::Read::read_to_end(&mut silent, &mut buf).expect("closed by the daemon");
    assert!(buf.is_empty());
    let replies = crate::util::parse_records(&t.join().unwrap(), false);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["error"], "read_timeout", "{replies:?}");
}

#[test]
fn a_peer_over_its_in_flight_cap_waits_and_nothing_is_lost() {
    // A stalled sink with backpressure: connections hold their batches while waiting for the
    // ring; the peer cap stops the others from reading more on top.
    // The start record sits in the stalled FIFO: pick the control port here.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut d = spawn_daemon(
        Opts::new()
            .arg("--control")
            .arg(&addr)
            .fifo_log()
            .env("RING_CAPACITY_EVENTS", 16)
            .env("RING_CAPACITY_BYTES", 16384)
            .env("INGEST_MAX_LINE_BYTES", 4096)
            .env("INGEST_READ_BUFFER_BYTES", 4096)
            .env("MEMORY_PEER_IN_FLIGHT_BYTES", 8192)
            .env("SINK_FSYNC", "never")
            .env("SINK_ROTATE_BYTES", 0),
    );
    // The control socket (the start record is in the stalled FIFO too).
    let sock = qerrors::config::control_socket_for(&d.socket)
        .to_string_lossy()
        .into_owned();
    const CONNS: usize = 6;
    const PER: usize = 500;
    let clients: Vec<_> = (0..CONNS)
        .map(|c| {
            let mut s = d.connect();
            thread::spawn(move || {
                let mut data = Vec::new();
                for i in 0..PER {
                    data.extend_from_slice(
                        format!("{{\"message\":\"cap {c} {i} {}\"}}\n", "p".repeat(100)).as_bytes(),
                    );
                }
                s.write_all(&data).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                crate::util::read_replies(&mut s)
            })
        })
        .collect();
    let inflight = wait_until(
        "a connection waiting for in-flight room",
        Duration::from_secs(60),
        || {
            let s = control_json(&sock, "/stats").ok()?;
            let f = s["connections"]["in_flight"].clone();
            (f["waits"].as_u64()? > 0 && f["bytes"].as_u64()? > 0).then_some(f)
        },
    );
    // Over the cap by at most what connections already held when it was reached: one batch
    // each (a read of at most 4 KiB, enriched, plus a partial line).
    let bytes = inflight["bytes"].as_u64().unwrap();
    assert!(bytes <= 8192 + CONNS as u64 * 24 * 1024, "{inflight}");
    assert_eq!(
        inflight["top_peers"][0]["uid"],
        nix::unistd::getuid().as_raw(),
        "{inflight}"
    );
    // Per connection too: the ones holding bytes, ours (this process), none above one batch
    // (a read of at most 4 KiB of ~130-byte lines, enriched to ~600 bytes each: < 24 KiB).
    let conns = inflight["top_connections"].as_array().unwrap();
    assert!(!conns.is_empty() && conns.len() <= CONNS, "{inflight}");
    for c in conns {
        assert_eq!(c["pid"], std::process::id(), "{inflight}");
        let b = c["bytes"].as_u64().unwrap();
        assert!(b > 0 && b <= 24 * 1024, "{inflight}");
    }
    let drain = d.unstall();
    for c in clients {
        assert!(c.join().unwrap().is_empty());
    }
    let status = d.sigterm_and_wait();
    assert!(status.success());
    let records = drain.finish();
    assert_eq!(of_kind(&records, "event").len(), CONNS * PER);
}
