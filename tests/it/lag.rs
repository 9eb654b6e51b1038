//! Event-loop lag metrics end to end: a daemon under analysis bursts, a reload, log rotation
//! and a flood of distinct fingerprints keeps exposing `qerrors_event_loop_lag_seconds` and the
//! workers' busy ratios, and every scrape is consistent with itself and with the one before
//! (counts grow, buckets are cumulative, busy time only grows, ratios stay within 0..=1).
//!
//! No timing is asserted: how late the loop runs on a shared machine in a debug build says
//! nothing. The "p99 under 5 ms in a release build" target is a benchmark: `bench/lag.sh`.

use std::io::Write;
use std::thread;
use std::time::Duration;

use crate::util::{control_addr, spawn_daemon, wait_until, Daemon, Opts};
use qerrors::ctl::client::{control_get, control_json};

/// Distinct fingerprints in the flood (each event its own).
const FLOOD: usize = 200_000;
const FLOOD_CLIENTS: usize = 4;
/// Distinct fingerprints per analysis burst (each a rules analysis).
const BURST: usize = 300;
/// Small, so the bursts and the flood rotate the log several times.
const ROTATE_BYTES: u64 = 2_000_000;

/// One scrape of the lag metrics.
#[derive(Debug, Clone)]
struct Lag {
    /// `(le, cumulative count)`, in the order exposed.
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
    /// Per worker: busy ratio (gauge) and busy seconds (counter).
    ratio: Vec<f64>,
    busy_s: Vec<f64>,
}

fn worker(labels: &prometheus_parse::Labels) -> usize {
    labels
        .get("worker")
        .and_then(|w| w.parse().ok())
        .expect("a worker label")
}

/// Scrapes `/metrics` and checks the lag metrics are there and consistent within the scrape.
fn scrape(addr: &str) -> Lag {
    let (status, text) = control_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200, "{text}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text");
    let mut lag = Lag {
        buckets: Vec::new(),
        count: f64::NAN,
        sum: f64::NAN,
        ratio: Vec::new(),
        busy_s: Vec::new(),
    };
    let mut ratios = Vec::new();
    let mut busy = Vec::new();
    for s in &scrape.samples {
        match (s.metric.as_str(), &s.value) {
            ("qerrors_event_loop_lag_seconds", prometheus_parse::Value::Histogram(h)) => {
                lag.buckets = h.iter().map(|b| (b.less_than, b.count)).collect();
            }
            ("qerrors_event_loop_lag_seconds_count", v) => lag.count = value(v),
            ("qerrors_event_loop_lag_seconds_sum", v) => lag.sum = value(v),
            ("qerrors_runtime_worker_busy_ratio", v) => ratios.push((worker(&s.labels), value(v))),
            ("qerrors_runtime_worker_busy_seconds_total", v) => {
                busy.push((worker(&s.labels), value(v)));
            }
            _ => {}
        }
    }
    assert!(
        !lag.buckets.is_empty(),
        "no qerrors_event_loop_lag_seconds histogram in:\n{text}"
    );
    for w in lag.buckets.windows(2) {
        assert!(w[0].0 < w[1].0, "bucket bounds not increasing: {lag:?}");
        assert!(w[0].1 <= w[1].1, "buckets not cumulative: {lag:?}");
    }
    let (last_le, last_count) = *lag.buckets.last().unwrap();
    assert!(last_le.is_infinite(), "no +Inf bucket: {lag:?}");
    assert_eq!(last_count, lag.count, "+Inf bucket != _count: {lag:?}");
    assert!(lag.sum >= 0.0, "{lag:?}");
    // Every tick is at most the bound of the bucket it fell in; the sum cannot exceed that.
    let finite_max = lag.buckets[lag.buckets.len() - 2].0;
    if lag.buckets[lag.buckets.len() - 2].1 == lag.count {
        assert!(lag.sum <= lag.count * finite_max, "{lag:?}");
    }
    ratios.sort_by_key(|r| r.0);
    busy.sort_by_key(|b| b.0);
    assert!(!ratios.is_empty(), "no qerrors_runtime_worker_busy_ratio");
    assert_eq!(
        ratios.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..ratios.len()).collect::<Vec<_>>(),
        "one ratio per worker"
    );
    assert_eq!(ratios.len(), busy.len(), "a busy counter per worker");
    lag.ratio = ratios.into_iter().map(|r| r.1).collect();
    lag.busy_s = busy.into_iter().map(|b| b.1).collect();
    for r in &lag.ratio {
        assert!((0.0..=1.0).contains(r), "busy ratio out of range: {lag:?}");
    }
    lag
}

fn value(v: &prometheus_parse::Value) -> f64 {
    match v {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("unexpected value {other:?}"),
    }
}

/// `later` continues `earlier`: counts, buckets, sum and busy time only grow, and the count grew.
fn assert_grew(earlier: &Lag, later: &Lag, what: &str) {
    assert!(
        later.count > earlier.count,
        "{what}: no tick since the last scrape ({} → {})",
        earlier.count,
        later.count
    );
    assert!(later.sum >= earlier.sum, "{what}: sum fell");
    assert_eq!(earlier.buckets.len(), later.buckets.len(), "{what}");
    for (a, b) in earlier.buckets.iter().zip(&later.buckets) {
        assert_eq!(a.0, b.0, "{what}: bucket bounds changed");
        assert!(b.1 >= a.1, "{what}: bucket le={} fell", a.0);
    }
    for (a, b) in earlier.busy_s.iter().zip(&later.busy_s) {
        assert!(b >= a, "{what}: busy seconds fell");
    }
}

/// `/stats` `event_loop` agrees with `/metrics`: ticks, ordered quantiles, a max in the p99's
/// bucket or above it, a ratio per worker.
fn check_stats(addr: &str, lag: &Lag) {
    let s = control_json(addr, "/stats").unwrap();
    let e = &s["event_loop"];
    let ticks = e["ticks"].as_u64().unwrap() as f64;
    assert!(
        ticks >= lag.count,
        "/stats ticks {ticks} < scraped {}",
        lag.count
    );
    let q = |k: &str| e["lag_us"][k].as_u64().unwrap();
    assert!(q("p50") <= q("p90") && q("p90") <= q("p99"), "{e}");
    // Quantiles are bucket upper bounds; the largest tick lies in the p99 bucket or higher.
    assert!(q("max") * 2 >= q("p99"), "{e}");
    assert_eq!(
        e["worker_busy_ratio"].as_array().unwrap().len(),
        lag.ratio.len(),
        "{e}"
    );
}

/// All `n` burst events written and every analysis they queued finished (a full queue skips
/// some: counted, not waited for).
fn bursts_analysed(addr: &str, n: u64) -> bool {
    let s = control_json(addr, "/stats").unwrap();
    let a = &s["analysis"];
    let queued = a["queue"]["queued"].as_u64().unwrap_or(0);
    s["events"]["written"].as_u64() >= Some(n)
        && queued > 0
        && a["completed"].as_u64() >= Some(queued)
}

/// `n` events, each a new fingerprint with a message the built-in rules know.
fn analysis_burst(d: &Daemon, round: usize) {
    let lines: Vec<String> = (0..BURST)
        .map(|i| {
            serde_json::json!({
                "message": format!("connect ECONNREFUSED 10.0.{round}.{i}:5432"),
                "code": "ECONNREFUSED",
                "name": "Error",
                "fingerprint": format!("lag-burst-{round}-{i}"),
                "stack": "Error: connect ECONNREFUSED\n    at TCPConnectWrap.afterConnect (node:net:1595:16)",
            })
            .to_string()
        })
        .collect();
    d.send_lines(&lines);
}

fn flood(d: &Daemon) {
    let pad = "y".repeat(200);
    let clients: Vec<_> = (0..FLOOD_CLIENTS)
        .map(|c| {
            let mut s = d.connect();
            let pad = pad.clone();
            thread::spawn(move || {
                let mut buf = Vec::with_capacity(256 * 1024);
                for i in (c..FLOOD).step_by(FLOOD_CLIENTS) {
                    writeln!(
                        buf,
                        r#"{{"message":"flood {i} {pad}","level":"error","fingerprint":"lag-flood-{i}"}}"#
                    )
                    .unwrap();
                    if buf.len() >= 240 * 1024 {
                        s.write_all(&buf).unwrap();
                        buf.clear();
                    }
                }
                s.write_all(&buf).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut sink = Vec::new();
                std::io::Read::read_to_end(&mut s, &mut sink).unwrap();
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn lag_metrics_stay_consistent_through_bursts_reload_rotation_and_a_flood() {
    let d = spawn_daemon(
        Opts::new()
            .env("SINK_ROTATE_BYTES", ROTATE_BYTES)
            .env("SINK_ROTATE_KEEP", 100)
            .env("SINK_FSYNC", "never"),
    );
    let addr = control_addr(&d);
    // The ticker runs from the start: idle, it ticks every three seconds.
    let mut last = wait_until("a first lag tick", Duration::from_secs(30), || {
        let l = scrape(&addr);
        (l.count > 0.0).then_some(l)
    });
    check_stats(&addr, &last);
    let step = |what: &str, last: &mut Lag| {
        // At least one idle tick (3 s) fits between two scrapes.
        thread::sleep(Duration::from_millis(3200));
        let now = scrape(&addr);
        assert_grew(last, &now, what);
        check_stats(&addr, &now);
        eprintln!(
            "{what}: {} ticks, mean lag {:.3} ms, busy {:?}",
            now.count,
            now.sum / now.count * 1e3,
            now.ratio
        );
        *last = now;
    };

    for round in 0..3 {
        analysis_burst(&d, round);
    }
    wait_until("the bursts analysed", Duration::from_secs(120), || {
        bursts_analysed(&addr, 3 * BURST as u64).then_some(())
    });
    step("analysis bursts", &mut last);

    d.signal(libc::SIGHUP);
    wait_until("the reload applied", Duration::from_secs(60), || {
        let r = control_json(&addr, "/stats").unwrap()["reload"].clone();
        (r["outcome"] == "applied").then_some(())
    });
    step("reload", &mut last);

    flood(&d);
    // Counted, not parsed: re-reading ~100 MB of log every poll would be the slow part.
    let total = (3 * BURST + FLOOD) as u64;
    wait_until("the flood written", Duration::from_secs(300), || {
        let written = control_json(&addr, "/stats").unwrap()["events"]["written"].as_u64();
        (written >= Some(total)).then_some(())
    });
    let files = d.log_files().len();
    assert!(files > 2, "the log should have rotated: {files} files");
    step("flood and rotation", &mut last);
}
