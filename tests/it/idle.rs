//! Idle cost: a daemon with nothing to do lets every thread sleep. Each test spawns a daemon,
//! lets it do some work (events written, limits decided and synced), waits for it to settle,
//! then counts every thread's context switches (voluntary + involuntary, from
//! `/proc/PID/task/*/status`) over a few seconds of idleness and asserts each thread's rate.
//!
//! Context switches of a thread that has nothing to do are its own wake-ups, not caused by
//! other load on the machine, so the bound holds on a busy box too. Before the idle work
//! (docs/performance.md, "Idle cost") the writer woke ~20×/s, the governor ~10×/s and the
//! limiter's thread ~35×/s with no limit rule at all.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::limit_support::{redis_available, Redis};
use crate::util::{control_addr, event_line, spawn_daemon, wait_until, Daemon, Opts};

/// The most wake-ups per second any idle thread may average (the target is one; the slack
/// is for a blocking-pool thread retiring or a sample that lands on a boundary).
const MAX_RATE: f64 = 1.5;
/// Time for the work the test caused to finish: the last fsync, the limiter giving its leases
/// back, the governor backing off to its longest interval (100 ms doubling to 1 s: ~1.5 s).
const SETTLE: Duration = Duration::from_secs(3);
/// How long the switches are counted (long enough that a 1/s waker seen at both ends of the
/// window, 9 wake-ups in 8 s, stays well under [`MAX_RATE`]).
const WINDOW: Duration = Duration::from_secs(8);

/// Context switches per thread: tid → (name, switches).
fn switches(pid: i32) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let path = t.path();
        // A thread that exits meanwhile (a retiring blocking-pool thread) is skipped.
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("status")),
        ) else {
            continue;
        };
        let count = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let n = count("voluntary_ctxt_switches:") + count("nonvoluntary_ctxt_switches:");
        out.insert(
            t.file_name().to_string_lossy().into_owned(),
            (comm.trim().to_string(), n),
        );
    }
    out
}

/// Waits [`SETTLE`], counts switches over [`WINDOW`] and returns each thread's rate per
/// second (threads present at both ends), named `name (tid)`.
fn idle_rates(d: &Daemon) -> Vec<(String, f64)> {
    thread::sleep(SETTLE);
    let t0 = Instant::now();
    let a = switches(d.pid());
    thread::sleep(WINDOW);
    let b = switches(d.pid());
    let secs = t0.elapsed().as_secs_f64();
    b.iter()
        .filter_map(|(tid, (name, n))| {
            let (_, before) = a.get(tid)?;
            Some((format!("{name} ({tid})"), (n - before) as f64 / secs))
        })
        .collect()
}

fn assert_idle(d: &Daemon, what: &str) {
    let rates = idle_rates(d);
    let table: Vec<String> = rates
        .iter()
        .map(|(t, r)| format!("{t}: {r:.1}/s"))
        .collect();
    eprintln!("{what}: {}", table.join(", "));
    for name in ["qerrors-writer", "qerrors-memory", "qerrors-limit"] {
        assert!(
            rates.iter().any(|(t, _)| t.starts_with(name)),
            "{what}: no {name} thread among {table:?}"
        );
    }
    let busy: Vec<&String> = rates
        .iter()
        .zip(&table)
        .filter(|((_, r), _)| *r > MAX_RATE)
        .map(|(_, t)| t)
        .collect();
    assert!(
        busy.is_empty(),
        "{what}: threads waking more than {MAX_RATE}/s while idle: {busy:?} (all: {table:?})"
    );
}

/// Some work for every stage: events written (and so fsynced), some rejected (a summary).
fn some_traffic(d: &Daemon, n: usize) {
    let mut lines: Vec<String> = (0..n)
        .map(|i| event_line(&format!("idle test {i}"), json!({"fingerprint": "fp-idle"})))
        .collect();
    lines.push("not json".into());
    d.send_lines(&lines);
    d.wait_for_events(n, Duration::from_secs(60));
}

#[test]
fn idle_daemon_threads_sleep() {
    let d = spawn_daemon(Opts::new());
    some_traffic(&d, 20);
    assert_idle(&d, "defaults");
}

#[test]
fn idle_daemon_with_local_limits_sleeps() {
    let d = spawn_daemon(
        Opts::new()
            .env(
                "LIMIT_RULES",
                r#"[{key = "fingerprint", rate = 10, window = "1s"}]"#,
            )
            .env("LIMIT_DUPLICATES", r#"{max = 50, window = "1m"}"#),
    );
    some_traffic(&d, 5);
    assert_idle(&d, "local limits");
}

/// With a Redis-shared rule the sync thread sleeps while no key needs syncing, and an event
/// wakes it: the sync happens long before the idle thread would have woken on its own (the
/// key sweep, a minute away).
#[test]
fn idle_daemon_with_redis_limits_sleeps_and_wakes_for_events() {
    if !redis_available("idle_daemon_with_redis_limits_sleeps_and_wakes_for_events") {
        return;
    }
    let redis = Redis::start(None);
    // A long window: a sync that lands in the next window drops the closed window's report
    // (by design), which would leave nothing to observe here.
    let d = spawn_daemon(
        Opts::new()
            .env("LIMIT_REDIS_URL", redis.url())
            .env("LIMIT_KEY_PREFIX", "idle")
            .env(
                "LIMIT_RULES",
                r#"[{key = "global", rate = 1000000, window = "1h", shared = true}]"#,
            ),
    );
    let addr = control_addr(&d);
    let limit = || qerrors::ctl::client::control_json(&addr, "/stats").unwrap()["limit"].clone();
    let synced = || limit()["synced_keys"].as_u64().unwrap();
    some_traffic(&d, 5);
    wait_until("a first sync", Duration::from_secs(30), || {
        (synced() > 0).then_some(())
    });
    assert_idle(&d, "redis limits");
    // Asleep with nothing listed: one event lists its key and wakes the sync thread, which
    // syncs at once (left alone it would sleep until the key sweep, a minute away).
    let before = limit();
    some_traffic(&d, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while synced() <= before["synced_keys"].as_u64().unwrap() {
        assert!(
            Instant::now() < deadline,
            "no sync after an event woke the idle sync thread: before {before}, now {}",
            limit()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_idle(&d, "redis limits, after waking");
}
