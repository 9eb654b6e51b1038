//! The control plane through real HTTP on loopback: /metrics parses as Prometheus text and its
//! counters match what was sent; /stats, /recent, /fingerprints, /health, /ready; and the
//! qerrorsctl commands that read them.

use crate::util::control_addr;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use qerrors::ctl::client::{control_get, control_json};
use serde_json::json;

use crate::util::{self, spawn_daemon, Daemon, Opts, CTL};

/// Sends a fixed mix: 3 error TypeError (checkout), 2 warn (billing), 1 info (checkout), 2 bad.
fn send_mix(d: &Daemon) {
    let lines = [
        json!({"message":"Cannot read properties of undefined (reading 'id')","name":"TypeError","service":"checkout"}).to_string(),
        json!({"message":"Cannot read properties of undefined (reading 'id')","name":"TypeError","service":"checkout"}).to_string(),
        json!({"message":"Cannot read properties of undefined (reading 'id')","name":"TypeError","service":"checkout"}).to_string(),
        json!({"message":"slow upstream 1200ms","level":"warn","service":"billing"}).to_string(),
        json!({"message":"slow upstream 900ms","level":"warn","service":"billing"}).to_string(),
        json!({"message":"cache warmed","level":"info","service":"checkout","ack":true}).to_string(),
        "not json".to_string(),
        r#"{"message":7}"#.to_string(),
    ];
    let replies = d.send_lines(&lines);
    assert!(replies.iter().any(|r| r["ok"] == true), "{replies:?}");
    d.wait_for_events(6, util::EVENTS_TIMEOUT);
}

fn metric_values(text: &str) -> HashMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let key = if labels.is_empty() {
            s.metric.clone()
        } else {
            format!("{}{{{}}}", s.metric, labels.join(","))
        };
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(key, v);
    }
    out
}

#[test]
fn metrics_stats_recent_and_fingerprints_reflect_what_was_sent() {
    // Service labels are opt-in (client-written text); it/control_socket checks the default.
    let mut d = spawn_daemon(Opts::new().env("CONTROL_METRICS_SERVICES", true));
    let addr = control_addr(&d);
    assert_eq!(
        control_get(&addr, "/health").unwrap(),
        (200, "ok\n".to_string())
    );
    assert_eq!(control_get(&addr, "/ready").unwrap().0, 200);
    send_mix(&d);

    let (status, text) = control_get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let m = metric_values(&text);
    let get = |k: &str| {
        *m.get(k)
            .unwrap_or_else(|| panic!("metric {k} missing in:\n{text}"))
    };
    assert_eq!(get("qerrors_events_written_total"), 6.0);
    assert_eq!(get("qerrors_events_accepted_total"), 6.0);
    assert_eq!(get("qerrors_lines_received_total"), 8.0);
    assert_eq!(get("qerrors_events_rejected_total{code=invalid_json}"), 1.0);
    assert_eq!(get("qerrors_events_rejected_total{code=wrong_type}"), 1.0);
    assert_eq!(get("qerrors_events_by_level_total{level=error}"), 3.0);
    assert_eq!(get("qerrors_events_by_level_total{level=warn}"), 2.0);
    assert_eq!(
        get("qerrors_events_by_service_total{service=checkout}"),
        4.0
    );
    assert_eq!(get("qerrors_events_by_class_total{class=programming}"), 3.0);
    assert_eq!(get("qerrors_acks_total"), 1.0);
    assert!(get("qerrors_memory_rss_bytes") > 1e6);
    assert_eq!(get("qerrors_ring_capacity_events"), 65536.0);
    assert!(
        m.keys()
            .any(|k| k.starts_with("qerrors_write_latency_seconds")),
        "{text}"
    );

    let stats = control_json(&addr, "/stats").unwrap();
    assert_eq!(stats["events"]["written"], 6);
    assert_eq!(stats["events"]["rejected_total"], 2);
    assert_eq!(stats["events"]["by_level"]["warn"], 2);
    assert_eq!(
        stats["top_services"][0],
        json!({"service":"checkout","count":4})
    );
    assert_eq!(stats["pid"], d.pid());

    let recent = control_json(&addr, "/recent?n=10&level=warn").unwrap();
    let msgs: Vec<&str> = recent
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs.len(), 5, "warn and above: {msgs:?}");
    assert_eq!(msgs[4], "slow upstream 900ms", "newest last");
    let billing = control_json(&addr, "/recent?service=billing").unwrap();
    assert_eq!(billing.as_array().unwrap().len(), 2);
    assert_eq!(control_get(&addr, "/recent?level=loud").unwrap().0, 400);

    let top = control_json(&addr, "/fingerprints?top=2").unwrap();
    let top = top.as_array().unwrap();
    assert_eq!(top.len(), 2);
    assert_eq!(top[0]["count"], 3);
    assert_eq!(top[0]["name"], "TypeError");
    assert_eq!(top[0]["class"], "programming");
    assert_eq!(top[0]["service"], "checkout");
    assert_eq!(
        top[1]["count"], 2,
        "the two warnings differ only in numbers"
    );

    let page = control_get(&addr, "/").unwrap();
    assert_eq!(page.0, 200);
    assert!(page.1.contains("<html") || page.1.contains("<!doctype"));
    d.stop();
}

#[test]
fn qerrorsctl_reads_the_control_plane() {
    let mut d = spawn_daemon(Opts::new());
    let addr = control_addr(&d);
    send_mix(&d);
    let run = |args: &[&str]| {
        let out = Command::new(CTL)
            .arg("--control")
            .arg(&addr)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["status"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("6 written") && out.contains("2 rejected"),
        "{out}"
    );

    let (code, out, _) = run(&["stats"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["events"]["written"], 6);

    let (_, out, _) = run(&["recent", "-n", "2", "--json"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["message"], "cache warmed");
    let (_, out, _) = run(&["recent", "--level", "warn", "--service", "billing"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("slow upstream 900ms"));

    let (_, out, _) = run(&["top", "-n", "1"]);
    assert!(out.contains("TypeError: Cannot read properties"), "{out}");
    assert!(
        out.lines().nth(1).unwrap().trim_start().starts_with('3'),
        "{out}"
    );

    let (code, out, _) = run(&["reload"]);
    assert_eq!(code, Some(0), "{out}");
    util::wait_until("reload record", Duration::from_secs(30), || {
        d.records("daemon")
            .into_iter()
            .find(|r| r["msg"] == "config reloaded")
    });
    d.stop();

    // Down: a clear error and exit 2.
    let (code, _, err) = run(&["status"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not reachable"), "{err}");
}

#[test]
fn check_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[ring]\ncapacity_events = 0\n").unwrap();
    let out = Command::new(CTL)
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ring.capacity_events"));
    let out = Command::new(CTL)
        .args([
            "check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
