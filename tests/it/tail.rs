//! `qerrorsctl tail`: filters over a real daemon's log, and following it across rotation.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{
    event_line, scrub_env, spawn_daemon, wait_child, Opts, CTL, EVENTS_TIMEOUT, POLL,
};

/// `qerrorsctl tail --no-follow --log LOG ARGS…`: its stdout lines (must exit 0).
fn tail_once(log: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(CTL);
    scrub_env(&mut cmd);
    let mut child = cmd
        .arg("tail")
        .arg("--no-follow")
        .arg("--log")
        .arg(log)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).unwrap();
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let st = wait_child(&mut child, Duration::from_secs(60));
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        st.success(),
        "tail {args:?}: {st}; stderr:\n{}",
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The log's raw lines whose record satisfies `pred`, in order.
fn expected(lines: &[String], pred: impl Fn(&Value) -> bool) -> Vec<String> {
    lines
        .iter()
        .filter(|l| pred(&serde_json::from_str(l).unwrap()))
        .cloned()
        .collect()
}

/// `--json -n 1000` plus `a`.
fn all<'a>(a: &[&'a str]) -> Vec<&'a str> {
    [&["--json", "-n", "1000"], a].concat()
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

fn rank(level: &Value) -> usize {
    LEVELS.iter().position(|l| level == l).expect("a level")
}

#[test]
fn filters_print_exactly_the_matching_lines() {
    let mut d = spawn_daemon(Opts::new());
    let mut lines = Vec::new();
    for i in 0..24 {
        let level = LEVELS[i % 6];
        let service = ["checkout", "billing", "search"][i % 3];
        let name = ["TypeError", "RangeError"][i % 2];
        lines.push(event_line(
            &format!("failure {i} in {service}"),
            json!({"level": level, "service": service, "name": name}),
        ));
    }
    assert!(d.send_lines(&lines).is_empty(), "no rejects");
    d.wait_for_events(lines.len(), EVENTS_TIMEOUT);
    d.stop();
    let log: Vec<String> = std::fs::read_to_string(&d.log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();

    let warn = tail_once(&d.log, &all(&["--level", "warn"]));
    assert_eq!(
        warn,
        expected(&log, |r| r["kind"] == "event" && rank(&r["level"]) >= 3)
    );
    assert_eq!(warn.len(), 12);

    let billing = tail_once(&d.log, &all(&["--service", "billing"]));
    assert_eq!(billing, expected(&log, |r| r["service"] == "billing"));
    assert_eq!(billing.len(), 8);

    let first: Value = serde_json::from_str(&warn[0]).unwrap();
    let fp = first["fingerprint"].as_str().unwrap();
    let by_fp = tail_once(&d.log, &all(&["--fingerprint", &fp[..8]]));
    assert_eq!(by_fp, expected(&log, |r| r["fingerprint"] == fp));
    assert!(!by_fp.is_empty());

    let combined = tail_once(
        &d.log,
        &all(&[
            "--level",
            "error",
            "--service",
            "checkout",
            "--kind",
            "event",
        ]),
    );
    assert_eq!(
        combined,
        expected(&log, |r| r["service"] == "checkout"
            && rank(&r["level"]) >= 4)
    );

    let daemon = tail_once(&d.log, &all(&["--kind", "daemon"]));
    assert_eq!(daemon, expected(&log, |r| r["kind"] == "daemon"));
    assert!(daemon.len() >= 2, "start and stop: {daemon:?}");

    // -n counts matching records from the end; the default is 10 of all kinds.
    let last2 = tail_once(&d.log, &["--json", "-n", "2", "--service", "search"]);
    let search = expected(&log, |r| r["service"] == "search");
    assert_eq!(last2, search[search.len() - 2..]);
    assert_eq!(tail_once(&d.log, &["--json"]), log[log.len() - 10..]);

    // Human output (not a terminal: no colour), one line per record.
    let fatal = tail_once(&d.log, &["--level", "fatal", "-n", "1"]);
    let rec: Value = serde_json::from_str(&expected(&log, |r| r["level"] == "fatal")[3]).unwrap();
    assert_eq!(fatal.len(), 1, "{fatal:?}");
    let line = &fatal[0];
    assert!(!line.contains('\x1b'), "no colour when piped: {line:?}");
    let want = format!(
        "FATAL {} {}: {} [{} #",
        rec["service"].as_str().unwrap(),
        rec["name"].as_str().unwrap(),
        rec["message"].as_str().unwrap(),
        &rec["fingerprint"].as_str().unwrap()[..8]
    );
    assert!(line.contains(&want), "{line:?} lacks {want:?}");
    let stop = tail_once(&d.log, &["--kind", "daemon", "-n", "1"]);
    assert!(stop[0].contains("·daemon· stop"), "{stop:?}");
}

#[test]
fn unknown_kinds_and_levels_are_usage_errors() {
    let mut d = spawn_daemon(Opts::new());
    d.stop();
    for args in [
        vec!["--kind", "adivce"],
        vec!["--kind", "event,adivce"],
        vec!["--level", "loud"],
    ] {
        let mut cmd = Command::new(CTL);
        scrub_env(&mut cmd);
        let out = cmd
            .args(["tail", "--no-follow", "--log"])
            .arg(&d.log)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        if args[0] == "--kind" {
            assert!(err.contains("unknown record kind `adivce`"), "{err}");
            assert!(
                err.contains("valid kinds: event, dropped, suppressed, daemon, advice"),
                "{err}"
            );
        } else {
            assert!(err.contains("unknown level `loud`"), "{err}");
        }
    }
    // Every kind the daemon writes is accepted (whether or not the log has one).
    for kind in [
        "event",
        "dropped",
        "suppressed",
        "daemon",
        "advice",
        "ADVICE",
    ] {
        tail_once(&d.log, &["--kind", kind]);
    }
}

#[test]
fn advice_records_are_rendered_for_people_and_raw_with_json() {
    let mut d = spawn_daemon(Opts::new().env("ANALYSIS_CACHE_FILE", "off"));
    let line = event_line(
        "connect ECONNREFUSED 127.0.0.1:5432",
        json!({"name": "Error", "service": "checkout"}),
    );
    assert!(d.send_lines(&[line]).is_empty());
    let rec = crate::util::wait_until("an advice record", EVENTS_TIMEOUT, || {
        d.records("advice").into_iter().next()
    });
    d.stop();
    let raw = tail_once(&d.log, &["--kind", "advice", "--json"]);
    assert_eq!(raw.len(), 1, "{raw:?}");
    assert_eq!(serde_json::from_str::<Value>(&raw[0]).unwrap(), rec);

    let human = tail_once(&d.log, &["--kind", "advice"]);
    let text = human.join("\n");
    let fp = &rec["fingerprint"].as_str().unwrap()[..8];
    let advice = &rec["advice"];
    assert!(
        human[0].contains(&format!(
            "·advice· [{fp}] checkout: {}",
            advice["summary"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(
        human[0].contains("(rules net-connection-refused, confidence "),
        "{text}"
    );
    assert!(!text.contains("{\""), "no raw JSON: {text}");
    let cause = format!("cause: {}", advice["likely_cause"].as_str().unwrap());
    assert!(human[1].trim_start() == cause, "{text}");
    let steps = advice["fix_steps"].as_array().unwrap();
    assert!(steps.len() >= 2);
    assert_eq!(human.len(), 2 + steps.len(), "{text}");
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(
            human[2 + i].trim_start(),
            format!("{}. {}", i + 1, step.as_str().unwrap()),
            "{text}"
        );
        assert!(human[2 + i].starts_with("    "), "indented: {text}");
    }
}

#[test]
fn a_missing_log_fails_without_follow() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(CTL)
        .args(["tail", "--no-follow", "--log"])
        .arg(dir.path().join("none.log"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none.log"));
}

/// Kills the follower when the test ends, however it ends.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Follower {
    fn start(log: &Path) -> Follower {
        let mut cmd = Command::new(CTL);
        scrub_env(&mut cmd);
        let mut child = cmd
            .args(["tail", "--json", "--kind", "event", "--log"])
            .arg(log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                sink.lock().unwrap().push(l);
            }
        });
        Follower { child, lines }
    }

    /// Messages printed so far, with how often each was.
    fn messages(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for l in self.lines.lock().unwrap().iter() {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            *out.entry(v["message"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        out
    }

    fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&HashMap<String, usize>) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if f(&m) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tail: {what} not within {timeout:?}; got {} distinct messages",
                m.len()
            );
            thread::sleep(POLL);
        }
    }
}

#[test]
fn follow_prints_every_event_once_across_rotations() {
    // ~20 events per file: the N events below rotate the log many times, some of them several
    // times between two of tail's polls.
    let d = spawn_daemon(
        Opts::new()
            .env("SINK_ROTATE_BYTES", 20000)
            .env("SINK_ROTATE_KEEP", 50),
    );
    let tail = Follower::start(&d.log);
    // A marker proves the follower is running before the counted events go out.
    let marker = event_line("marker", json!({"service": "tail-test"}));
    assert!(d.send_lines(&[marker]).is_empty());
    tail.wait_for("the marker", EVENTS_TIMEOUT, |m| m.contains_key("marker"));

    const N: usize = 600;
    let pad = "x".repeat(600);
    let msg = |i: usize| format!("event {i:04} {pad}");
    // Batches with pauses (rotations between polls) and one large burst at the end.
    let mut i = 0;
    while i < N {
        let batch = if i < N / 2 { 15 } else { N / 2 };
        let lines: Vec<String> = (i..(i + batch).min(N))
            .map(|k| event_line(&msg(k), json!({"level": "warn", "service": "tail-test"})))
            .collect();
        assert!(d.send_lines(&lines).is_empty());
        i += batch;
        thread::sleep(Duration::from_millis(60));
    }
    tail.wait_for("all N events", EVENTS_TIMEOUT, |m| {
        (0..N).all(|k| m.contains_key(&msg(k)))
    });
    // Anything printed twice would show up by now.
    thread::sleep(Duration::from_millis(800));
    let m = tail.messages();
    for k in 0..N {
        assert_eq!(
            m.get(&msg(k)),
            Some(&1),
            "event {k} printed {:?} times",
            m.get(&msg(k))
        );
    }
    assert_eq!(m.len(), N + 1, "only the marker and the N events");
    let files = d.log_files();
    assert!(files.len() >= 10, "the log rotated: {} files", files.len());
}
