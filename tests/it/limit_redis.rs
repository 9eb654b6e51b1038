//! Redis-shared limits with real `redis-server`s (started per test on a free port, killed by
//! PID): one shared limit across three daemons, Redis killed / paused / restarted mid-load
//! (breaker, local shares, no ingest stall, exact accounting), and unusable Redis at start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::limit_support::{
    free_port, p99, paced_load, probe, redis_available, suppressed_count, transitions_to, Redis,
};
use crate::util::{event_line, rfc3339, spawn_daemon, stop_record, wait_until, Daemon, Opts};

/// Generous bound for records to show up (loaded 2-core box).
const RECORD_TIMEOUT: Duration = Duration::from_secs(30);

fn daemon(redis_url: &str, prefix: &str, rules: &str, extra: &[(&str, &str)]) -> Daemon {
    let mut o = Opts::new()
        .env("LIMIT_REDIS_URL", redis_url)
        .env("LIMIT_KEY_PREFIX", prefix)
        .env("LIMIT_RULES", rules);
    for (k, v) in extra {
        o = o.env(k, v);
    }
    spawn_daemon(o)
}

fn events(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| r["kind"] == "event").collect()
}

/// Waits for the daemon's `redis sync failed` record (`what` names the case) and returns it.
fn sync_failure(d: &Daemon, what: &str) -> Value {
    wait_until(
        &format!("{what}: redis failure record"),
        RECORD_TIMEOUT,
        || {
            d.records("daemon")
                .into_iter()
                .find(|r| r["msg"] == "redis sync failed")
        },
    )
}

fn assert_no_sync_failure(records: &[Value], what: &str) {
    assert!(
        !records
            .iter()
            .any(|r| r["kind"] == "daemon" && r["msg"] == "redis sync failed"),
        "{what}: a sync failed"
    );
}

/// Waits until a sync carried keys to Redis, then checks the daemon is on shared limits with
/// its breaker closed.
fn wait_shared_sync(d: &Daemon, what: &str) {
    let addr = crate::util::control_addr(d);
    wait_until(&format!("{what}: a sync"), RECORD_TIMEOUT, || {
        let stats = qerrors::ctl::client::control_json(&addr, "/stats").ok()?;
        (stats["limit"]["synced_keys"].as_u64()? > 0).then_some(())
    });
    let stats = qerrors::ctl::client::control_json(&addr, "/stats").unwrap();
    assert_eq!(stats["limit"]["mode"], "shared", "{what}: {stats}");
    assert_eq!(
        stats["breakers"]["redis"]["state"], "closed",
        "{what}: {stats}"
    );
}

fn time_of(r: &Value, field: &str) -> SystemTime {
    let t = rfc3339(&r[field]);
    SystemTime::UNIX_EPOCH + Duration::from_nanos(t.unix_timestamp_nanos() as u64)
}

fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[test]
fn three_daemons_share_one_limit() {
    let _cpu = crate::util::cpu_exclusive();
    if !redis_available("three_daemons_share_one_limit") {
        return;
    }
    let redis = Redis::start(None);
    // L = 400 events/s, as 100 per 250 ms window.
    const RATE: u64 = 100;
    const WINDOW_MS: u64 = 250;
    let rules = format!(r#"[{{key = "global", rate = {RATE}, window = "{WINDOW_MS}ms"}}]"#);
    let started = Instant::now();
    let mut ds: Vec<Daemon> = (0..3)
        .map(|_| daemon(&redis.url(), "share3", &rules, &[]))
        .collect();
    // One acked event each first: a debug-build daemon spends ~0.3 s on its first event (lazy
    // initialisation, 0.4 ms in release), which would otherwise cut the measured 10 s short.
    for d in &ds {
        let r = d.send_lines(&[r#"{"message":"warm-up","ack":true}"#]);
        assert!(
            r.len() == 1 && r[0]["ok"] == true,
            "warm-up not admitted: {r:?}"
        );
    }
    let is_load = |e: &&Value| e["message"] != "warm-up";
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = SystemTime::now();
    let loads: Vec<_> = ds
        .iter()
        .map(|d| paced_load(d.socket.clone(), 2_000, 20, stop.clone()))
        .collect();
    thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<u64> = loads.into_iter().map(|h| h.join().unwrap().lines).collect();
    let t1 = SystemTime::now();
    // Each daemon learnt from Redis that three share the limit: `local_share = "auto"` (the
    // default) would enforce a third each during an outage. Both values come from the limiter's
    // sync thread (what Redis answered): waited for, bounded, rather than trusting the 10 s.
    for d in &ds {
        let addr = crate::util::control_addr(d);
        let stats = wait_until("daemons_seen = 3 in /stats", RECORD_TIMEOUT, || {
            let s = qerrors::ctl::client::control_json(&addr, "/stats").ok()?;
            (s["limit"]["daemons_seen"] == 3).then_some(s)
        });
        assert_eq!(stats["limit"]["daemons_seen"], 3, "{stats}");
        let share = stats["limit"]["local_share"].as_f64().unwrap();
        assert!((share - 1.0 / 3.0).abs() < 1e-9, "{stats}");
    }
    let mut total = 0;
    for (d, sent) in ds.iter_mut().zip(&sent) {
        let records = d.stop();
        let admitted = events(&records).into_iter().filter(is_load).count() as u64;
        let suppressed = suppressed_count(&records, Some("rate_limit"));
        assert_eq!(admitted + suppressed, *sent, "admitted + suppressed = sent");
        assert_eq!(stop_record(&records)["rejected"], 0);
        total += admitted;
    }
    let elapsed = started.elapsed();
    let calls = redis.script_calls();

    let ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let windows = ms(t1) / WINDOW_MS - ms(t0) / WINDOW_MS + 1;
    let l_times_10s = RATE * 1000 / WINDOW_MS * 10;
    eprintln!(
        "shared limit: sent {sent:?}, admitted {total} (L×10s = {l_times_10s}, windows touched \
         {windows} → {}), redis script calls {calls} in {elapsed:?} = {:.1}/s per daemon",
        windows * RATE,
        calls as f64 / elapsed.as_secs_f64() / 3.0
    );
    let lo = l_times_10s as f64 * 0.9;
    let hi = l_times_10s as f64 * 1.1;
    assert!(
        (lo..=hi).contains(&(total as f64)),
        "admitted {total} not within ±10 % of {l_times_10s}"
    );
    let unshared: u64 = sent.iter().map(|s| (*s).min(l_times_10s)).sum();
    assert!(
        (total as f64) < unshared as f64 * 0.5,
        "admitted {total}: not far below three unshared daemons ({unshared})"
    );
    // At most one round trip per sync interval per daemon (+ the first EVAL per connection).
    let intervals = (elapsed.as_millis() as u64) / 50 + 1;
    assert!(
        calls <= 3 * intervals + 3,
        "{calls} script calls for 3 daemons over {intervals} sync intervals"
    );
    assert!(calls > 0);
}

/// What happened around an outage: the log, the probe's samples (send time, reply latency,
/// reply), lines sent by the load, and when the outage began and ended.
struct Outage {
    records: Vec<Value>,
    samples: Vec<(Instant, Duration, Value)>,
    sent: u64,
    began: (Instant, SystemTime),
    ended: (Instant, SystemTime),
}

/// Paced load + latency probe for 3 s, then `start` the outage, keep loading for `during`,
/// `end` it, run `after` (waits for recovery), stop everything and the daemon.
fn run_outage(
    d: &mut Daemon,
    start: impl FnOnce(),
    during: Duration,
    end: impl FnOnce(),
    after: impl FnOnce(&Daemon),
) -> Outage {
    let stop = Arc::new(AtomicBool::new(false));
    let load = paced_load(d.socket.clone(), 1_000, 10, stop.clone());
    let pr = probe(d.socket.clone(), Duration::from_millis(20), stop.clone());
    thread::sleep(Duration::from_secs(3));
    let began = (Instant::now(), SystemTime::now());
    start();
    thread::sleep(during);
    let ended = (Instant::now(), SystemTime::now());
    end();
    after(d);
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().unwrap().lines;
    let samples = pr.join().unwrap();
    let records = d.stop();
    Outage {
        records,
        samples,
        sent,
        began,
        ended,
    }
}

/// The checks every outage shares: the breaker opened within 1 s, ingest did not stall, every
/// event is accounted for exactly once, and local shares applied while Redis was away.
fn check_outage(o: &Outage, rate_per_s: f64, share: f64) {
    let open = transitions_to(&o.records, "open");
    let first_open = open
        .iter()
        .find(|r| secs_between(o.began.1, time_of(r, "time")) >= 0.0)
        .unwrap_or_else(|| panic!("no breaker open record after the outage began"));
    let took = secs_between(o.began.1, time_of(first_open, "time"));
    assert!(
        took < 1.0,
        "breaker opened {took:.3} s after the outage began"
    );

    // Ingest latency (probe round trips) before vs during the outage.
    let before: Vec<Duration> = o
        .samples
        .iter()
        .filter(|(t, ..)| *t < o.began.0)
        .map(|s| s.1)
        .collect();
    let during: Vec<Duration> = o
        .samples
        .iter()
        .filter(|(t, ..)| *t >= o.began.0 && *t < o.ended.0)
        .map(|s| s.1)
        .collect();
    let (pb, pd) = (p99(before), p99(during));
    eprintln!("probe p99 before {pb:?}, during the outage {pd:?}");
    assert!(
        pd <= pb * 10 + Duration::from_millis(150),
        "ingest stalled: p99 {pd:?} during the outage vs {pb:?} before"
    );

    // Exact accounting: every line is an event or counted as suppressed; each probe line got
    // one reply, and exactly the acked ones are in the log.
    let evs = events(&o.records);
    let suppressed = suppressed_count(&o.records, Some("rate_limit"));
    let probes = o.samples.len() as u64;
    assert_eq!(evs.len() as u64 + suppressed, o.sent + probes);
    let acked = o.samples.iter().filter(|s| s.2["ok"] == true).count();
    let limited = o
        .samples
        .iter()
        .filter(|s| s.2["error"] == "rate_limited")
        .count();
    assert_eq!(acked + limited, o.samples.len(), "unexpected probe replies");
    let logged_probes = evs.iter().filter(|e| e["service"] == "probe").count();
    assert_eq!(logged_probes, acked);
    let mut ids: Vec<&str> = evs.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), evs.len(), "an event was written twice");
    let stop = stop_record(&o.records);
    assert_eq!(stop["rejected"], 0);
    assert_eq!(stop["dropped"], 0);

    // Local share while the breaker was not closed: from its opening to the outage's end.
    let from = time_of(first_open, "time");
    let secs = secs_between(from, o.ended.1);
    let during_local = evs
        .iter()
        .filter(|e| {
            let t = time_of(e, "received");
            secs_between(from, t) >= 0.0 && secs_between(t, o.ended.1) >= 0.0
        })
        .count() as f64;
    let expected = rate_per_s * share * secs;
    eprintln!("local share: {during_local} admitted in {secs:.2} s (share rate → {expected:.0})");
    assert!(
        during_local <= expected + rate_per_s * share + 20.0,
        "{during_local} admitted on the local share in {secs:.2} s, expected ≤ {expected:.0} + burst"
    );
    assert!(
        during_local >= expected * 0.5,
        "{during_local} admitted on the local share in {secs:.2} s, expected about {expected:.0}"
    );
}

const OUTAGE_RULES: &str = r#"[{key = "global", rate = 200, window = "1s"}]"#;
const OUTAGE_ENV: [(&str, &str); 2] = [
    ("LIMIT_LOCAL_SHARE", "0.5"),
    ("LIMIT_BREAKER", r#"{cool_down = "1s"}"#),
];

#[test]
fn redis_killed_mid_load_then_restarted() {
    let _cpu = crate::util::cpu_exclusive();
    if !redis_available("redis_killed_mid_load_then_restarted") {
        return;
    }
    let redis = std::cell::RefCell::new(Redis::start(None));
    let url = redis.borrow().url();
    let mut d = daemon(&url, "kill", OUTAGE_RULES, &OUTAGE_ENV);
    let restarted = std::cell::Cell::new(SystemTime::now());
    let o = run_outage(
        &mut d,
        || redis.borrow_mut().kill(),
        Duration::from_secs(4),
        || {
            redis.borrow_mut().restart();
            restarted.set(SystemTime::now());
        },
        |d| {
            // HalfOpen → Closed on the restarted server, and shared limiting resumes there.
            wait_until("breaker closed after the restart", RECORD_TIMEOUT, || {
                let recs = d.all_records();
                transitions_to(&recs, "closed")
                    .iter()
                    .any(|r| secs_between(restarted.get(), time_of(r, "time")) >= 0.0)
                    .then_some(())
            });
            wait_until(
                "shared counts in the restarted redis",
                RECORD_TIMEOUT,
                || {
                    let keys = redis.borrow().cmd(&["KEYS", "{kill}:*"]);
                    (!keys.is_empty()).then_some(())
                },
            );
        },
    );
    check_outage(&o, 200.0, 0.5);
    let half = transitions_to(&o.records, "half_open");
    let closed = transitions_to(&o.records, "closed");
    let t_restart = restarted.get();
    let c = closed
        .iter()
        .find(|r| secs_between(t_restart, time_of(r, "time")) >= 0.0)
        .expect("closed after restart");
    assert!(
        half.iter()
            .any(|h| secs_between(time_of(h, "time"), time_of(c, "time")) >= 0.0),
        "closed without a half-open probe"
    );
    assert_eq!(c["from"], "half_open");
    assert_eq!(c["limits"], "shared");
}

#[test]
fn redis_paused_calls_time_out() {
    let _cpu = crate::util::cpu_exclusive();
    if !redis_available("redis_paused_calls_time_out") {
        return;
    }
    let redis = Redis::start(None);
    let mut d = daemon(&redis.url(), "pause", OUTAGE_RULES, &OUTAGE_ENV);
    const PAUSE: Duration = Duration::from_secs(4);
    let o = run_outage(
        &mut d,
        || {
            redis.cmd(&["CLIENT", "PAUSE", &PAUSE.as_millis().to_string(), "ALL"]);
        },
        PAUSE,
        || {},
        |d| {
            wait_until("breaker closed after the pause", RECORD_TIMEOUT, || {
                (!transitions_to(&d.all_records(), "closed").is_empty()).then_some(())
            });
        },
    );
    check_outage(&o, 200.0, 0.5);
    let open = transitions_to(&o.records, "open");
    assert!(
        open.iter()
            .any(|r| r["error"].as_str().unwrap_or("").contains("no answer")
                || r["error"].as_str().unwrap_or("").contains("timed out")),
        "the breaker opened on timeouts: {open:?}"
    );
}

/// `rediss://` (managed Redis usually wants TLS): the daemon verifies the server against the
/// system's trust store, here a throw-away CA named by `SSL_CERT_FILE`, and shares limits as
/// over plain TCP.
#[test]
fn shared_limits_over_tls() {
    if !redis_available("shared_limits_over_tls")
        || !crate::limit_support::tool_available("shared_limits_over_tls", "openssl")
    {
        return;
    }
    let redis = Redis::start_tls();
    let rules = r#"[{key = "global", rate = 30, window = "1h"}]"#;
    let ca = redis.tls_ca().display().to_string();
    // SSL_CERT_FILE is read by the TLS stack, not a QERRORS_ variable: set it unprefixed.
    let mut d = spawn_daemon(
        Opts::new()
            .env("LIMIT_REDIS_URL", redis.tls_url())
            .env("LIMIT_KEY_PREFIX", "tls")
            .env("LIMIT_RULES", rules)
            .raw_env("SSL_CERT_FILE", &ca),
    );
    let lines: Vec<String> = (0..50)
        .map(|i| event_line(&format!("e{i}"), Value::Null))
        .collect();
    d.send_lines(&lines);
    wait_shared_sync(&d, "TLS");
    // The count is in Redis: the script ran there and the window's hash holds what this
    // daemon took (its admissions, plus any lease it has not spent yet).
    assert!(redis.script_calls() > 0);
    let key = redis.cmd(&["KEYS", "{tls}:*"]);
    let key = key
        .lines()
        .next()
        .expect("no limit key in Redis")
        .to_string();
    let counted: u64 = redis
        .cmd(&["HVALS", &key])
        .lines()
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    let records = d.stop();
    assert_no_sync_failure(&records, "TLS");
    // A burst before the first lease gets the pre-lease allowance only (one sync interval's
    // worth of 30 per hour: 1); the rest is suppressed, never lost.
    let admitted = events(&records).len() as u64;
    assert_eq!(
        admitted + suppressed_count(&records, Some("rate_limit")),
        50
    );
    assert!((1..=30).contains(&admitted), "{admitted}");
    assert!(
        (admitted..=30).contains(&counted),
        "Redis counted {counted}, admitted {admitted}"
    );

    // Without the CA the server is not trusted: the daemon says so and runs on local limits.
    let mut d = daemon(&redis.tls_url(), "tls-untrusted", rules, &[]);
    let failed = sync_failure(&d, "untrusted certificate");
    eprintln!("untrusted certificate: {failed}");
    d.stop();
}

/// Redis Cluster: the daemon is given a seed node that does *not* own the `{prefix}` slot, so
/// every call has to follow the cluster's redirection; the counts end up on the owner. The same
/// seed without `redis_cluster` fails with `MOVED` (what made the old single-node client
/// useless against a cluster).
#[test]
fn shared_limits_on_a_redis_cluster() {
    if !crate::limit_support::redis_cli_available("shared_limits_on_a_redis_cluster") {
        return;
    }
    let cluster = crate::limit_support::RedisCluster::start();
    let owner = cluster.owner_of("clu").port;
    let seed = cluster.nodes.iter().find(|n| n.port != owner).unwrap();
    let seed_url = format!("redis://127.0.0.1:{}/", seed.port);
    let rules = r#"[{key = "global", rate = 30, window = "1h"}]"#;
    let mut d = daemon(&seed_url, "clu", rules, &[("LIMIT_REDIS_CLUSTER", "true")]);
    let lines: Vec<String> = (0..20)
        .map(|i| event_line(&format!("e{i}"), Value::Null))
        .collect();
    d.send_lines(&lines);
    wait_shared_sync(&d, "cluster");
    let owner_node = cluster.nodes.iter().find(|n| n.port == owner).unwrap();
    let keys = owner_node.cmd(&["KEYS", "{clu}:*"]);
    assert!(!keys.is_empty(), "no limit keys on the slot's owner");
    assert!(owner_node.script_calls() > 0, "the script ran on the owner");
    let records = d.stop();
    assert_no_sync_failure(&records, "cluster");
    let admitted = events(&records).len() as u64;
    assert_eq!(
        admitted + suppressed_count(&records, Some("rate_limit")),
        20
    );

    // The control: the same seed as a plain server.
    let mut d = daemon(&seed_url, "clu", rules, &[]);
    d.send_lines(&lines);
    let failed = sync_failure(&d, "plain client on a cluster node");
    assert!(
        failed["error"].as_str().unwrap().contains("Moved"),
        "{failed}"
    );
    d.stop();
}

#[test]
fn unusable_redis_at_start_runs_on_local_limits() {
    if !redis_available("unusable_redis_at_start_runs_on_local_limits") {
        return;
    }
    let secured = Redis::start(Some("right-password"));
    let wrong_password = format!("redis://:wrong@127.0.0.1:{}/", secured.port);
    let wrong_port = format!("redis://127.0.0.1:{}/", free_port());
    let rules = r#"[{key = "global", rate = 10, window = "1h"}]"#;
    for (url, what) in [
        (wrong_password, "wrong password"),
        (wrong_port, "wrong port"),
    ] {
        let mut d = daemon(&url, "bad", rules, &[("LIMIT_LOCAL_SHARE", "0.5")]);
        let failed = sync_failure(&d, what);
        eprintln!("{what}: {failed}");
        assert!(!failed["error"].as_str().unwrap().is_empty());
        wait_until(&format!("{what}: breaker open"), RECORD_TIMEOUT, || {
            (!transitions_to(&d.all_records(), "open").is_empty()).then_some(())
        });
        // The daemon's stderr is written by its logger's own thread (a non-blocking writer):
        // the record in the log file does not mean the line is in stderr yet. Wait for it.
        wait_until(
            &format!("{what}: `redis sync failed` in the daemon's stderr"),
            RECORD_TIMEOUT,
            || d.stderr_text().contains("redis sync failed").then_some(()),
        );
        assert!(
            d.stderr_text().contains("redis sync failed"),
            "{what}: the daemon's own log says so"
        );
        let lines: Vec<String> = (0..20)
            .map(|i| event_line(&format!("e{i}"), Value::Null))
            .collect();
        d.send_lines(&lines);
        // Watching it: /stats and /metrics show the breaker and the limiter's mode.
        let addr = crate::util::control_addr(&d);
        let stats = qerrors::ctl::client::control_json(&addr, "/stats").unwrap();
        assert_ne!(stats["breakers"]["redis"]["state"], "closed", "{stats}");
        assert!(stats["breakers"]["redis"]["opened"].as_u64().unwrap() >= 1);
        assert_eq!(stats["limit"]["mode"], "local_share", "{stats}");
        assert_eq!(stats["limit"]["local_share_admitted"], 5);
        assert_eq!(stats["events"]["suppressed"]["rate_limit"], 15);
        let (_, metrics) = qerrors::ctl::client::control_get(&addr, "/metrics").unwrap();
        assert!(
            metrics.contains("breaker=\"redis\""),
            "no redis breaker in /metrics"
        );
        let records = d.stop();
        assert_eq!(events(&records).len(), 5, "{what}: half of the burst of 10");
        assert_eq!(suppressed_count(&records, Some("rate_limit")), 15);
    }
}
