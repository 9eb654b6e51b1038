//! The fleet registry (issue 16) with a real `redis-server` and several daemons: fleet counts
//! are the exact sum of what each daemon wrote; Redis killed mid-load and restarted (no ingest
//! stall, counts reconcile exactly); a tiny `fleet.max_pending` drops an exact, reported count;
//! a flood of distinct fingerprints keeps Redis within `fleet.max_fingerprints`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::limit_support::{p99, paced_load, probe, redis_available, Redis};
use crate::util::{control_addr, spawn_daemon, wait_until, Daemon, Opts};

/// Generous bound for syncs to land (loaded 2-core box, debug build).
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

fn daemon(url: &str, prefix: &str, host: &str, extra: &[(&str, &str)]) -> Daemon {
    let mut o = Opts::new()
        .env("FLEET_REDIS_URL", url)
        .env("FLEET_KEY_PREFIX", prefix)
        .env("FLEET_SYNC_INTERVAL", "100ms")
        .env("EVENT_HOST", host);
    for (k, v) in extra {
        o = o.env(k, v);
    }
    spawn_daemon(o)
}

/// Per fingerprint, the events in the daemons' logs (what they wrote).
fn written(daemons: &[&Daemon]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for d in daemons {
        for e in d.events() {
            *m.entry(e["fingerprint"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    m
}

/// Per fingerprint, the fleet count in Redis (the index's scores are the counts).
fn fleet_counts(redis: &Redis, prefix: &str) -> BTreeMap<String, u64> {
    let flat = redis.cmd(&[
        "ZRANGE",
        &format!("{{{prefix}}}:fleet:index"),
        "0",
        "-1",
        "WITHSCORES",
    ]);
    let lines: Vec<&str> = flat.lines().collect();
    lines
        .chunks_exact(2)
        .map(|p| (p[0].to_string(), p[1].parse::<u64>().unwrap()))
        .collect()
}

fn stats(d: &Daemon) -> Value {
    qerrors::ctl::client::control_json(&control_addr(d), "/stats").unwrap()
}

/// Waits until the daemon has nothing left to sync.
fn wait_synced(d: &Daemon, what: &str) -> Value {
    wait_until(what, SYNC_TIMEOUT, || {
        let s = stats(d);
        let f = &s["fleet"];
        (f["pending"] == 0 && f["in_flight"] == 0 && f["syncs"].as_u64()? > 0).then_some(s)
    })
}

/// The value of an unlabelled metric line in `/metrics`.
fn metric(d: &Daemon, name: &str) -> Option<u64> {
    let (_, text) = qerrors::ctl::client::control_get(&control_addr(d), "/metrics").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn fleet_counts_are_the_exact_sum_of_three_daemons() {
    if !redis_available("fleet_counts_are_the_exact_sum_of_three_daemons") {
        return;
    }
    let redis = Redis::start(None);
    let url = redis.url();
    let ds: Vec<Daemon> = ["fleet-a", "fleet-b", "fleet-c"]
        .iter()
        .map(|h| daemon(&url, "sum", h, &[]))
        .collect();
    // 10,000 events over 200 fingerprints, unevenly: 5,000 / 3,000 / 2,000.
    let shares = [5_000usize, 3_000, 2_000];
    thread::scope(|s| {
        for (d, n) in ds.iter().zip(shares) {
            s.spawn(move || {
                let mut data = Vec::new();
                for i in 0..n {
                    data.extend_from_slice(
                        format!(
                            "{{\"message\":\"fleet sum {i}\",\"fingerprint\":\"fp-{}\",\"level\":\"error\",\"service\":\"sum\"}}\n",
                            i % 200
                        )
                        .as_bytes(),
                    );
                }
                d.send_raw(&data);
                d.wait_for_events(n, SYNC_TIMEOUT);
            });
        }
    });
    let refs: Vec<&Daemon> = ds.iter().collect();
    let want = written(&refs);
    assert_eq!(want.len(), 200);
    assert_eq!(want.values().sum::<u64>(), 10_000);
    let got = wait_until("fleet counts = the sum of the logs", SYNC_TIMEOUT, || {
        let got = fleet_counts(&redis, "sum");
        (got == want).then_some(got)
    });
    assert_eq!(got.values().sum::<u64>(), 10_000);
    for d in &ds {
        let s = wait_synced(d, "all synced");
        assert_eq!(s["fleet"]["dropped_events"], 0, "{s}");
        assert_eq!(metric(d, "qerrors_fleet_deltas_dropped_total"), Some(0));
    }
    // The created counts add up to the fingerprints: each was created by exactly one daemon.
    let created: u64 = ds
        .iter()
        .map(|d| stats(d)["fleet"]["created"].as_u64().unwrap())
        .sum();
    assert_eq!(created, 200);

    // Reading it back through the control plane.
    let ctl = control_addr(&ds[2]);
    let top = qerrors::ctl::client::control_json(&ctl, "/fleet/fingerprints?top=3").unwrap();
    let rows = top.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let max = *want.values().max().unwrap();
    assert_eq!(rows[0]["count"], max, "{top}");
    let r = &rows[0];
    assert_eq!(r["hosts"], 3, "{r}");
    assert_eq!(
        r["host_names"],
        serde_json::json!(["fleet-a", "fleet-b", "fleet-c"])
    );
    assert_eq!(r["service"], "sum");
    assert_eq!(r["level"], "error");
    assert!(r["message"].as_str().unwrap().starts_with("fleet sum"));
    assert_eq!(r["last_hour"], r["count"], "all in the last hour: {r}");
    // qerrorsctl top --fleet: the same rows, led by their hosts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qerrorsctl"))
        .args(["--control", &ctl, "top", "--fleet", "-n", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.lines().nth(1).unwrap().contains("[3 hosts] fleet sum"),
        "{text}"
    );
    let fp = r["fingerprint"].as_str().unwrap();
    let one =
        qerrors::ctl::client::control_json(&ctl, &format!("/fleet/fingerprints/{fp}")).unwrap();
    assert_eq!(one["count"], max);
    assert!(one["first_seen"].as_str().unwrap() <= one["last_seen"].as_str().unwrap());
    let (code, _) = qerrors::ctl::client::control_get(
        &ctl,
        "/fleet/fingerprints/0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    assert_eq!(code, 404);
    // Every key under the hash tag, with an expiry.
    let ttl: i64 = redis
        .cmd(&["PTTL", &format!("{{sum}}:fleet:fp:{fp}")])
        .parse()
        .unwrap();
    assert!(ttl > 13 * 86_400_000, "retention 14 days: {ttl}");
}

#[test]
fn redis_killed_mid_load_counts_reconcile_exactly() {
    let _cpu = crate::util::cpu_exclusive();
    if !redis_available("redis_killed_mid_load_counts_reconcile_exactly") {
        return;
    }
    let mut redis = Redis::start_persistent();
    let url = redis.url();
    let env = [
        ("FLEET_REDIS_TIMEOUT", "300ms"),
        ("FLEET_BREAKER", r#"{cool_down = "500ms"}"#),
    ];
    let ds: Vec<Daemon> = ["kill-a", "kill-b", "kill-c"]
        .iter()
        .map(|h| daemon(&url, "kill", h, &env))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = ds
        .iter()
        .map(|d| paced_load(d.socket.clone(), 1_000, 50, stop.clone()))
        .collect();
    let probes = probe(
        ds[0].socket.clone(),
        Duration::from_millis(20),
        stop.clone(),
    );
    thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    redis.kill();
    thread::sleep(Duration::from_secs(3));
    let restarted = Instant::now();
    redis.restart();
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = loads.into_iter().map(|l| l.join().unwrap().lines).sum();
    let samples = probes.join().unwrap();

    // No ingest stall while Redis was gone.
    let before: Vec<Duration> = samples
        .iter()
        .filter(|(t, ..)| *t < killed)
        .map(|s| s.1)
        .collect();
    let during: Vec<Duration> = samples
        .iter()
        .filter(|(t, ..)| *t >= killed && *t < restarted)
        .map(|s| s.1)
        .collect();
    let (pb, pd) = (p99(before), p99(during));
    eprintln!("probe p99 before {pb:?}, during the outage {pd:?}");
    assert!(
        pd <= pb * 10 + Duration::from_millis(150),
        "ingest stalled: p99 {pd:?} during the outage vs {pb:?} before"
    );

    // Every line was written, and the fleet counts reconcile exactly with the logs.
    let refs: Vec<&Daemon> = ds.iter().collect();
    let probes_sent = samples.len() as u64;
    let want = wait_until("every line in the logs", SYNC_TIMEOUT, || {
        let w = written(&refs);
        (w.values().sum::<u64>() == sent + probes_sent).then_some(w)
    });
    wait_until("fleet counts = the sum of the logs", SYNC_TIMEOUT, || {
        (fleet_counts(&redis, "kill") == want).then_some(())
    });
    for d in &ds {
        let s = wait_synced(d, "all synced");
        assert_eq!(s["fleet"]["dropped_events"], 0, "{s}");
        assert!(s["fleet"]["failures"].as_u64().unwrap() > 0, "{s}");
        let recs = d.records("daemon");
        assert!(
            recs.iter().any(|r| r["msg"] == "fleet sync failed"),
            "no failure record"
        );
        assert!(
            recs.iter()
                .any(|r| r["msg"] == "fleet redis reachable again"),
            "no recovery record"
        );
        assert!(
            recs.iter()
                .any(|r| r["msg"] == "breaker transition" && r["breaker"] == "fleet"),
            "no breaker record"
        );
    }
}

#[test]
fn a_tiny_max_pending_drops_an_exact_reported_count() {
    if !redis_available("a_tiny_max_pending_drops_an_exact_reported_count") {
        return;
    }
    // Nothing listens on the port until the restart below.
    let mut redis = Redis::start(None);
    redis.kill();
    let d = daemon(
        &redis.url(),
        "tiny",
        "tiny-a",
        &[
            ("FLEET_MAX_PENDING", "5"),
            ("FLEET_REDIS_TIMEOUT", "300ms"),
            ("FLEET_BREAKER", r#"{cool_down = "300ms"}"#),
        ],
    );
    // 20 fingerprints × 3 events, in several reads.
    for chunk in 0..4 {
        let mut data = Vec::new();
        for k in (chunk * 5)..(chunk * 5 + 5) {
            for i in 0..3 {
                data.extend_from_slice(
                    format!("{{\"message\":\"tiny {i}\",\"fingerprint\":\"tiny-{k}\"}}\n")
                        .as_bytes(),
                );
            }
        }
        d.send_raw(&data);
    }
    d.wait_for_events(60, SYNC_TIMEOUT);
    wait_until("a drop", SYNC_TIMEOUT, || {
        (stats(&d)["fleet"]["dropped_events"].as_u64()? > 0).then_some(())
    });

    // Reading the fleet while Redis is down: an error within the deadline, not a hang.
    let t = Instant::now();
    let (code, body) =
        qerrors::ctl::client::control_get(&control_addr(&d), "/fleet/fingerprints?top=5").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("fleet redis"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    redis.restart();
    let s = wait_synced(&d, "synced after the restart");
    let dropped = s["fleet"]["dropped_events"].as_u64().unwrap();
    let fleet: u64 = fleet_counts(&redis, "tiny").values().sum();
    assert_eq!(
        fleet + dropped,
        60,
        "fleet {fleet} + dropped {dropped}: {s}"
    );
    assert!(
        dropped > 0 && dropped % 3 == 0,
        "whole fingerprints: {dropped}"
    );
    assert_eq!(
        metric(&d, "qerrors_fleet_deltas_dropped_total"),
        Some(dropped)
    );
    let said: u64 = wait_until("the drop records", SYNC_TIMEOUT, || {
        let n: u64 = d
            .records("daemon")
            .iter()
            .filter(|r| r["msg"] == "fleet deltas dropped")
            .map(|r| r["events"].as_u64().unwrap())
            .sum();
        (n == dropped).then_some(n)
    });
    assert_eq!(said, dropped);
}

#[test]
fn a_flood_of_distinct_fingerprints_stays_within_max_fingerprints() {
    if !redis_available("a_flood_of_distinct_fingerprints_stays_within_max_fingerprints") {
        return;
    }
    let redis = Redis::start(None);
    let used = |r: &Redis| -> u64 {
        r.cmd(&["INFO", "memory"])
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let base = used(&redis);
    const BOUND: u64 = 1_000;
    const FLOOD: usize = 20_000;
    let d = daemon(
        &redis.url(),
        "flood",
        "flood-host-with-a-long-name-0001",
        &[
            ("FLEET_MAX_FINGERPRINTS", "1000"),
            ("FLEET_MAX_PENDING", "100000"),
        ],
    );
    // Messages at the sample's longest (200 bytes), names at 64: the largest hashes.
    let long = "x".repeat(300);
    let name = "E".repeat(64);
    let mut data = Vec::new();
    for i in 0..FLOOD {
        data.extend_from_slice(
            format!(
                "{{\"message\":\"{long}\",\"name\":\"{name}\",\"service\":\"flood-service\",\"fingerprint\":\"flood-{i}\"}}\n"
            )
            .as_bytes(),
        );
    }
    d.send_raw(&data);
    d.wait_for_events(FLOOD, SYNC_TIMEOUT);
    wait_until("the flood synced", SYNC_TIMEOUT, || {
        let f = &stats(&d)["fleet"];
        (f["synced_events"].as_u64()? == FLOOD as u64).then_some(())
    });
    let held: u64 = redis
        .cmd(&["ZCARD", "{flood}:fleet:index"])
        .parse()
        .unwrap();
    assert_eq!(held, BOUND);
    let keys: u64 = redis.cmd(&["DBSIZE"]).parse().unwrap();
    assert!(keys <= BOUND + 2, "index + seq + {BOUND} hashes: {keys}");
    let grown = used(&redis).saturating_sub(base);
    let per_fp = grown / BOUND;
    eprintln!("redis grew {grown} bytes for {BOUND} fingerprints: {per_fp} bytes each");
    // docs/fleet.md: at most 2,400 bytes per fingerprint seen from one host in one minute
    // (the largest sample), Redis's own overhead for keys, expiry and the index included.
    assert!(per_fp <= 2_400, "{per_fp} bytes per fingerprint");
}
