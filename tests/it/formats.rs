//! Logger formats (docs/formats.md) and the client shims, end to end through a real daemon.
//!
//! - Real loggers (pino, bunyan, winston from npm; python-json-logger, structlog from PyPI) write
//!   their default JSON into the daemon's socket; the records must carry message, normalized
//!   level, name and stack.
//! - Loggers that cannot run here (Go zap/slog, Rust tracing, Java logstash-logback-encoder,
//!   Google Cloud) are covered by golden lines in their documented output.
//! - The Node and Python shims: their own unit tests (`node --test`, `unittest`), and an app
//!   that keeps reporting while the daemon is down, starts, stops and starts again.
//!
//! Node, the npm modules (`npm ci` in clients/node) or the Python packages
//! (clients/python/requirements-test.txt) missing: the test is skipped ([`crate::skip`]: listed
//! at the end of the run), unless `QERRORS_REQUIRE_ALL=1` (CI), where it fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{self, spawn_daemon, Opts, EVENTS_TIMEOUT};

/// Bound on one helper script (they finish in well under a second when healthy).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node_dir() -> PathBuf {
    repo().join("clients/node")
}

fn python_dir() -> PathBuf {
    repo().join("clients/python")
}

fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn have_node(test: &str) -> bool {
    crate::skip::require(
        test,
        runs("node", &["--version"]),
        "node (Node.js ≥ 18)",
        "apt-get install nodejs npm",
    )
}

fn have_node_modules(test: &str) -> bool {
    have_node(test)
        && crate::skip::require(
            test,
            ["pino", "bunyan", "winston", "@elastic/ecs-pino-format"]
                .iter()
                .all(|m| node_dir().join("node_modules").join(m).is_dir()),
            "clients/node/node_modules (pino, bunyan, winston, @elastic/ecs-pino-format)",
            "`npm ci` in clients/node",
        )
}

fn have_python(test: &str) -> bool {
    crate::skip::require(
        test,
        runs("python3", &["--version"]),
        "python3",
        "apt-get install python3 python3-pip",
    )
}

fn have_python_packages(test: &str) -> bool {
    have_python(test)
        && crate::skip::require(
            test,
            runs(
                "python3",
                &["-c", "import pythonjsonlogger.json, structlog"],
            ),
            "python-json-logger and structlog",
            "pip install -r clients/python/requirements-test.txt",
        )
}

/// Runs a command to completion (bounded), returning its output.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {SCRIPT_TIMEOUT:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(util::POLL);
    }
    child.wait_with_output().unwrap()
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The event whose message is `message`, waiting for it.
fn event_with(d: &util::Daemon, message: &str) -> Value {
    let deadline = Instant::now() + EVENTS_TIMEOUT;
    loop {
        if let Some(e) = d.events().into_iter().find(|e| e["message"] == message) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no event with message {message:?}; events:\n{:#?}\nrecords: {:#?}",
            d.events(),
            d.records("dropped")
        );
        std::thread::sleep(util::POLL);
    }
}

/// Checks the fields the issue asks for; `stack` must start with `stack_prefix`.
fn check(ev: &Value, level: &str, name: Option<&str>, stack_prefix: Option<&str>) {
    assert_eq!(ev["level"], level, "level of {ev:#}");
    match name {
        Some(n) => assert_eq!(ev["name"], n, "name of {ev:#}"),
        None => assert!(ev.get("name").is_none(), "no name expected in {ev:#}"),
    }
    match stack_prefix {
        Some(p) => assert!(
            ev["stack"].as_str().is_some_and(|s| s.starts_with(p)),
            "stack of {ev:#} should start with {p:?}"
        ),
        None => assert!(ev.get("stack").is_none(), "no stack expected in {ev:#}"),
    }
}

fn node_logger(d: &util::Daemon, which: &str) {
    let out = run(Command::new("node")
        .arg(node_dir().join("test/fixtures/real-loggers.js"))
        .arg(&d.socket)
        .arg(which)
        .current_dir(node_dir()));
    assert_success(which, &out);
}

#[test]
fn real_node_loggers_write_into_the_socket() {
    let test = "real_node_loggers_write_into_the_socket";
    if !have_node_modules(test) {
        return;
    }
    let d = spawn_daemon(Opts::new());
    for which in ["pino", "bunyan", "winston", "pino-shim", "ecs-pino"] {
        node_logger(&d, which);
    }
    for which in ["pino", "pino-shim"] {
        let ev = event_with(&d, &format!("{which} card declined"));
        check(&ev, "error", Some("PaymentError"), Some("PaymentError: "));
        assert_eq!(ev["code"], "E_CARD_DECLINED", "{ev:#}");
        assert_eq!(ev["service"], format!("{which}-app"), "logger name: {ev:#}");
        // pid and hostname stay as extra; err is lifted completely
        assert!(ev["extra"]["hostname"].is_string(), "{ev:#}");
        assert!(ev["extra"].get("err").is_none(), "{ev:#}");
        let ev = event_with(&d, &format!("{which} giving up"));
        check(&ev, "fatal", Some("TypeError"), Some("TypeError: "));
        assert_eq!(
            ev["extra"]["err"]["message"],
            format!("{which} fatal"),
            "err.message differs from msg, so it stays: {ev:#}"
        );
    }
    // pino with Elastic's ECS formatter: dotted `log.level`, `service.name`, `error{…}`
    let ev = event_with(&d, "ecs-pino card declined");
    check(&ev, "error", Some("PaymentError"), Some("PaymentError: "));
    assert_eq!(ev["service"], "ecs-pino-app", "{ev:#}");
    assert_eq!(ev["extra"]["ecs.version"], "8.10.0", "{ev:#}");
    check(
        &event_with(&d, "ecs-pino just a warning"),
        "warn",
        None,
        None,
    );
    let ev = event_with(&d, "bunyan card declined");
    check(&ev, "error", Some("PaymentError"), Some("PaymentError: "));
    assert_eq!(ev["code"], "E_CARD_DECLINED", "{ev:#}");
    assert_eq!(ev["service"], "bunyan-app", "{ev:#}");
    check(&event_with(&d, "bunyan just a warning"), "warn", None, None);
    let ev = event_with(&d, "winston card declined");
    // winston's errors() format keeps the stack but not the name: read from the stack header
    check(&ev, "error", Some("PaymentError"), Some("PaymentError: "));
    assert_eq!(ev["service"], "winston-app", "{ev:#}");
    assert_ne!(
        ev["ts"], ev["received"],
        "winston's timestamp is used: {ev:#}"
    );
    check(
        &event_with(&d, "winston just a warning"),
        "warn",
        None,
        None,
    );
}

fn python_logger(d: &util::Daemon, which: &str) {
    let out = run(Command::new("python3")
        .arg(python_dir().join("tests/real_loggers.py"))
        .arg(&d.socket)
        .arg(which));
    assert_success(which, &out);
}

#[test]
fn real_python_loggers_write_into_the_socket() {
    let test = "real_python_loggers_write_into_the_socket";
    if !have_python_packages(test) {
        return;
    }
    let d = spawn_daemon(Opts::new());
    for which in ["jsonlogger", "structlog", "structlog-dict", "handler"] {
        python_logger(&d, which);
    }
    let tb = Some("Traceback (most recent call last):");
    let ev = event_with(&d, "jsonlogger invoice failed");
    check(&ev, "error", Some("ZeroDivisionError"), tb);
    assert_eq!(
        ev["extra"]["name"], "billing.jsonlogger",
        "logger name: {ev:#}"
    );
    check(
        &event_with(&d, "jsonlogger just a warning"),
        "warn",
        None,
        None,
    );
    for which in ["structlog", "structlog-dict"] {
        let ev = event_with(&d, &format!("{which} payment failed"));
        check(&ev, "error", Some("ZeroDivisionError"), tb);
        assert!(
            ev["stack"].as_str().unwrap().contains("in fail"),
            "frames kept: {ev:#}"
        );
        assert_eq!(ev["extra"]["order"], 42, "{ev:#}");
        check(
            &event_with(&d, &format!("{which} on fire")),
            "fatal",
            None,
            None,
        );
    }
    let ev = event_with(&d, "handler charge failed");
    check(&ev, "error", Some("ZeroDivisionError"), tb);
    assert_eq!(ev["service"], "py-handler");
    assert_eq!(ev["context"]["invoice"], 7);
    check(&event_with(&d, "handler on fire"), "fatal", None, None);
}

/// Golden lines in the documented default output of loggers that cannot run here.
#[test]
fn golden_lines_of_go_rust_java_and_gcp_loggers() {
    let d = spawn_daemon(Opts::new());
    let lines = [
        // Go zap, production config
        r#"{"level":"error","ts":1764345943.123456,"caller":"orders/service.go:42","msg":"zap: loading order failed","error":"dial tcp 10.0.0.7:5432: connect: connection refused","stacktrace":"main.loadOrder\n\t/srv/app/orders/service.go:42\nmain.main\n\t/srv/app/main.go:12"}"#,
        // Go log/slog JSONHandler
        r#"{"time":"2025-11-28T17:05:43.123456789+01:00","level":"ERROR+2","msg":"slog: request failed","err":"context deadline exceeded","path":"/api/orders"}"#,
        // Rust tracing-subscriber fmt().json()
        r#"{"timestamp":"2025-11-28T16:05:43.123456Z","level":"WARN","fields":{"message":"tracing: retrying query","attempt":2},"target":"app::db"}"#,
        // Java logstash-logback-encoder
        r#"{"@timestamp":"2025-11-28T17:05:43.123+01:00","@version":"1","message":"logback: order sync failed","logger_name":"com.example.OrderSync","thread_name":"main","level":"ERROR","level_value":40000,"stack_trace":"java.lang.IllegalStateException: no order\n\tat com.example.OrderSync.run(OrderSync.java:42)\n"}"#,
        // Google Cloud structured logging
        r#"{"severity":"CRITICAL","message":"gcp: database unreachable","logging.googleapis.com/labels":{"env":"prod"}}"#,
    ];
    let replies = d.send_lines(&lines);
    assert!(replies.is_empty(), "no rejections: {replies:?}");
    let ev = event_with(&d, "zap: loading order failed");
    check(&ev, "error", None, Some("main.loadOrder\n\t/srv/app/"));
    assert_eq!(ev["ts"], "2025-11-28T16:05:43.123456Z");
    assert_eq!(
        ev["extra"]["error"],
        "dial tcp 10.0.0.7:5432: connect: connection refused"
    );
    let ev = event_with(&d, "slog: request failed");
    check(&ev, "error", None, None);
    assert_eq!(ev["ts"], "2025-11-28T16:05:43.123456Z");
    let ev = event_with(&d, "tracing: retrying query");
    check(&ev, "warn", None, None);
    assert_eq!(ev["extra"]["fields"], serde_json::json!({"attempt": 2}));
    assert_eq!(ev["extra"]["target"], "app::db");
    let ev = event_with(&d, "logback: order sync failed");
    check(
        &ev,
        "error",
        Some("java.lang.IllegalStateException"),
        Some("java.lang.IllegalStateException: no order"),
    );
    assert_eq!(ev["ts"], "2025-11-28T16:05:43.123000Z");
    let ev = event_with(&d, "gcp: database unreachable");
    check(&ev, "fatal", None, None);
}

/// Runs an app script that keeps reporting while the daemon is down, then up, then restarted.
fn survives_daemon_restarts(cmd: &mut Command, sock: &Path, stop: &Path) {
    let mut app = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Down: the app runs without a daemon for a while.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        app.try_wait().unwrap().is_none(),
        "the app died with the daemon down"
    );
    let mut d = spawn_daemon(Opts::new().socket(sock));
    d.wait_for_events(3, EVENTS_TIMEOUT);
    let first = d.stop();
    assert!(
        app.try_wait().unwrap().is_none(),
        "the app died when the daemon stopped"
    );
    let d2 = spawn_daemon(Opts::new().socket(sock));
    d2.wait_for_events(3, EVENTS_TIMEOUT);
    std::fs::write(stop, b"").unwrap();
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    while app.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the app did not stop");
        std::thread::sleep(util::POLL);
    }
    let out = app.wait_with_output().unwrap();
    assert_success("the app", &out);
    let stats: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stats: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(stats["connects"].as_u64().unwrap() >= 2, "{stats}");
    assert!(
        util::of_kind(&first, "event")
            .iter()
            .all(|e| e["service"] == "keep-sending"),
        "{first:?}"
    );
}

#[test]
fn node_shim_survives_daemon_down_and_restart() {
    if !have_node("node_shim_survives_daemon_down_and_restart") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (sock, stop) = (dir.path().join("q.sock"), dir.path().join("stop"));
    survives_daemon_restarts(
        Command::new("node")
            .arg(node_dir().join("test/fixtures/keep-sending.js"))
            .arg(&sock)
            .arg(&stop),
        &sock,
        &stop,
    );
}

#[test]
fn python_shim_survives_daemon_down_and_restart() {
    if !have_python("python_shim_survives_daemon_down_and_restart") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (sock, stop) = (dir.path().join("q.sock"), dir.path().join("stop"));
    survives_daemon_restarts(
        Command::new("python3")
            .arg(python_dir().join("tests/keep_sending.py"))
            .arg(&sock)
            .arg(&stop),
        &sock,
        &stop,
    );
}

#[test]
fn node_shim_unit_tests() {
    if !have_node("node_shim_unit_tests") {
        return;
    }
    let out = run(Command::new("node")
        .args(["--test", "test/client.test.js"])
        .current_dir(node_dir()));
    assert_success("node --test test/client.test.js (clients/node)", &out);
}

#[test]
fn python_shim_unit_tests() {
    if !have_python("python_shim_unit_tests") {
        return;
    }
    let out = run(Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "tests",
            "-p",
            "test_*.py",
        ])
        .current_dir(python_dir()));
    assert_success("python3 -m unittest (clients/python)", &out);
}

/// `some-app | qerrorsctl send -` with a logger's own lines: accepted and recognized.
#[test]
fn qerrorsctl_send_pipes_logger_lines() {
    let d = spawn_daemon(Opts::new());
    let input = concat!(
        r#"{"level":50,"time":1764345943123,"pid":7,"hostname":"h","name":"piped-app","err":{"type":"RangeError","message":"piped pino","stack":"RangeError: piped pino\n    at f (/srv/a.js:1:1)"},"msg":"piped pino"}"#,
        "\n",
        r#"{"levelname":"CRITICAL","message":"piped python","exc_info":"Traceback (most recent call last):\n  File \"/srv/a.py\", line 1, in f\nOSError: disk"}"#,
        "\n"
    );
    let mut cmd = Command::new(util::CTL);
    util::scrub_env(&mut cmd);
    let mut child = cmd
        .arg("--socket")
        .arg(&d.socket)
        .args(["send", "-", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_success("qerrorsctl send -", &out);
    let ev = event_with(&d, "piped pino");
    check(
        &ev,
        "error",
        Some("RangeError"),
        Some("RangeError: piped pino"),
    );
    assert_eq!(ev["service"], "piped-app");
    let ev = event_with(&d, "piped python");
    check(
        &ev,
        "fatal",
        Some("OSError"),
        Some("Traceback (most recent call last):"),
    );
}

fn have_python_profile_packages(test: &str) -> bool {
    have_python(test)
        && crate::skip::require(
            test,
            runs(
                "python3",
                &[
                    "-c",
                    "import ecs_logging, opentelemetry.sdk._logs, \
                     opentelemetry.exporter.otlp.proto.common._log_encoder",
                ],
            ),
            "ecs-logging, opentelemetry-sdk and opentelemetry-exporter-otlp-proto-common",
            "pip install -r clients/python/requirements-test.txt",
        )
}

/// The Python ecs-logging formatter, the OpenTelemetry SDK's JSON (one record per line) and
/// OTLP/JSON as the OTLP exporters encode it (one `resourceLogs` batch of two records on one
/// line), written by the real libraries into the socket.
#[test]
fn real_ecs_and_opentelemetry_loggers_write_into_the_socket() {
    let test = "real_ecs_and_opentelemetry_loggers_write_into_the_socket";
    if !have_python_profile_packages(test) {
        return;
    }
    let d = spawn_daemon(Opts::new());
    for which in ["ecs", "otel", "otlp"] {
        python_logger(&d, which);
    }
    let ev = event_with(&d, "ecs invoice failed");
    check(&ev, "error", Some("ZeroDivisionError"), Some("  File "));
    assert_eq!(ev["extra"]["order"], 42, "{ev:#}");
    assert_eq!(ev["extra"]["log"]["logger"], "billing.ecs", "{ev:#}");
    check(&event_with(&d, "ecs just a warning"), "warn", None, None);
    let ev = event_with(&d, "otel invoice failed");
    check(&ev, "error", Some("ValueError"), Some("Traceback"));
    assert_eq!(ev["service"], "billing-otel", "{ev:#}");
    assert!(ev["extra"]["trace_id"].is_string(), "ids kept: {ev:#}");
    check(&event_with(&d, "otel just a warning"), "warn", None, None);
    let log = std::fs::read_to_string(&d.log).unwrap();
    // The OTLP batch: each record its own event, the resource's service on each.
    let ev = event_with(&d, "otlp invoice failed");
    check(&ev, "error", Some("KeyError"), Some("Traceback"));
    assert_eq!(ev["service"], "billing-otlp", "{ev:#}");
    let warn = event_with(&d, "otlp just a warning");
    check(&warn, "warn", None, None);
    assert_eq!(warn["service"], "billing-otlp", "{warn:#}");
    for secret in [
        "otelsecret1234567890",
        "otelhunter2",
        "otlpsecret1234567890",
        "otlphunter2",
    ] {
        assert!(!log.contains(secret), "{secret} reached the log:\n{log}");
    }
}

/// Golden lines of the profiles added for .NET, PHP, ECS, OpenTelemetry, zerolog and log4j2,
/// through a real daemon; an OTLP/JSON batch line gives one event per record.
#[test]
fn golden_lines_of_dotnet_php_ecs_otel_zerolog_log4j2() {
    let d = spawn_daemon(Opts::new());
    let lines = [
        // Serilog CompactJsonFormatter
        r#"{"@t":"2025-11-28T16:05:43.1230000Z","@mt":"clef: order {OrderId} failed","@l":"Error","@x":"System.InvalidOperationException: no stock\n   at Shop.Orders.Place() in /src/Orders.cs:line 12","OrderId":42}"#,
        // Microsoft.Extensions.Logging JSON console
        r#"{"EventId":3,"LogLevel":"Warning","Category":"Shop.Api","Message":"mel: slow request","State":{"Message":"mel: slow request"}}"#,
        // Monolog JsonFormatter, with a secret in the exception's message
        r#"{"message":"monolog: payment failed","context":{"exception":{"class":"App\\PaymentException","message":"gateway said password=monosecret99","code":402,"file":"/app/src/Pay.php:12"}},"level":400,"level_name":"ERROR","channel":"app","datetime":"2025-11-28T17:05:43.123456+01:00","extra":{}}"#,
        // ECS (log4j2 EcsLayout, ecs-logging-java)
        r#"{"@timestamp":"2025-11-28T16:05:43.123Z","ecs.version":"1.2.0","log.level":"WARN","message":"ecs: disk almost full","process.thread.name":"main","log.logger":"com.shop.Disk","service.name":"shop-java"}"#,
        // zerolog + pkgerrors
        r#"{"level":"error","stack":[{"func":"loadOrder","line":"42","source":"orders.go"}],"error":"connection refused","time":"2025-11-28T16:05:43Z","message":"zerolog: loading order failed"}"#,
        // log4j2 GelfLayout
        r#"{"version":"1.1","host":"web-1","short_message":"gelf: queue stuck","full_message":"java.lang.IllegalStateException: stuck\n\tat com.shop.Q.run(Q.java:9)","timestamp":1764345943.123,"level":2,"_logger":"com.shop.Q"}"#,
        // OTLP/JSON: three records in one line, a secret in an attribute
        r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"otlp-svc"}}]},"scopeLogs":[{"scope":{"name":"s"},"logRecords":[{"timeUnixNano":"1764345943123000000","severityNumber":17,"body":{"stringValue":"otlp: one"},"attributes":[{"key":"exception.type","value":{"stringValue":"KeyError"}},{"key":"http.authorization","value":{"stringValue":"Bearer otlpsecret123456"}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"},{"severityNumber":13,"body":{"stringValue":"otlp: two"}},{"severityNumber":9,"body":{"stringValue":"otlp: three"}}]}]}]}"#,
    ];
    let replies = d.send_lines(&lines);
    assert!(replies.is_empty(), "no rejections: {replies:?}");
    let events = d.wait_for_events(9, EVENTS_TIMEOUT);
    assert_eq!(events.len(), 9, "{events:#?}");
    let ev = event_with(&d, "clef: order 42 failed");
    check(
        &ev,
        "error",
        Some("System.InvalidOperationException"),
        Some("System.InvalidOperationException: no stock"),
    );
    assert_eq!(ev["ts"], "2025-11-28T16:05:43.123000Z");
    check(&event_with(&d, "mel: slow request"), "warn", None, None);
    let ev = event_with(&d, "monolog: payment failed");
    check(
        &ev,
        "error",
        Some("App\\PaymentException"),
        Some("App\\PaymentException: gateway said"),
    );
    assert_eq!(ev["code"], "402");
    let ev = event_with(&d, "ecs: disk almost full");
    check(&ev, "warn", None, None);
    assert_eq!(ev["service"], "shop-java");
    let ev = event_with(&d, "zerolog: loading order failed");
    check(&ev, "error", None, Some("loadOrder()\n\torders.go:42"));
    let ev = event_with(&d, "gelf: queue stuck");
    check(
        &ev,
        "fatal",
        Some("java.lang.IllegalStateException"),
        Some("java.lang."),
    );
    let ev = event_with(&d, "otlp: one");
    check(&ev, "error", Some("KeyError"), None);
    assert_eq!(ev["service"], "otlp-svc");
    assert_eq!(ev["ts"], "2025-11-28T16:05:43.123000Z");
    assert_eq!(ev["extra"]["traceId"], "5b8efff798038103d269b633813fc60c");
    check(&event_with(&d, "otlp: two"), "warn", None, None);
    check(&event_with(&d, "otlp: three"), "info", None, None);
    let log = std::fs::read_to_string(&d.log).unwrap();
    for secret in ["monosecret99", "otlpsecret123456"] {
        assert!(!log.contains(secret), "{secret} reached the log:\n{log}");
    }
    // Each record is an event for accounting: 7 lines, 9 accepted and written.
    let stats = qerrors::ctl::client::control_json(&util::control_addr(&d), "/stats").unwrap();
    assert_eq!(stats["events"]["received"], 7, "{stats:#}");
    assert_eq!(stats["events"]["accepted"], 9, "{stats:#}");
}

/// Lines no profile maps: the generic recognizer reads what it can, the rest is rejected as
/// before, and both are counted per peer and key set in `/stats` (and `qerrorsctl stats`).
#[test]
fn unmapped_shapes_are_recognized_or_counted() {
    let d = spawn_daemon(Opts::new());
    let lines = [
        r#"{"Text":"generic: disk full","Log_Level":"WARNING","ErrorType":"IOError","App":"backup"}"#,
        r#"{"Text":"generic: again","Log_Level":"WARNING","ErrorType":"IOError","App":"backup"}"#,
        r#"{"record":{"description":"generic: wrapped","severity":"error"},"host":"h"}"#,
        r#"{"foo":1,"bar":{"baz":2}}"#,
    ];
    let replies = d.send_lines(&lines);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["error"], "missing_field", "{replies:?}");
    let ev = event_with(&d, "generic: disk full");
    check(&ev, "warn", Some("IOError"), None);
    assert_eq!(ev["service"], "backup");
    check(&event_with(&d, "generic: wrapped"), "error", None, None);
    let stats = qerrors::ctl::client::control_json(&util::control_addr(&d), "/stats").unwrap();
    let shapes = &stats["shapes"];
    assert_eq!(shapes["generic"], 3, "{shapes:#}");
    assert_eq!(shapes["unmapped"], 1, "{shapes:#}");
    let top = shapes["top"].as_array().unwrap();
    assert_eq!(top[0]["keys"], "App,ErrorType,Log_Level,Text", "{shapes:#}");
    assert_eq!(top[0]["count"], 2, "{shapes:#}");
    assert!(
        top[0]["peer"].as_str().unwrap().contains("(uid "),
        "{shapes:#}"
    );
    assert!(
        top.iter()
            .any(|s| s["keys"] == "bar,foo" && s["count"] == 1),
        "{shapes:#}"
    );
    // qerrorsctl stats shows the same document
    let out = run(Command::new(util::CTL)
        .arg("--control")
        .arg(util::control_addr(&d))
        .arg("stats"));
    assert_success("qerrorsctl stats", &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("App,ErrorType,Log_Level,Text"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// PHP's Monolog (Debian's `php-monolog`) with its `JsonFormatter`, into the socket: level from
/// Monolog's numbers, the exception lifted from `context.exception`, its secret redacted.
#[test]
fn real_monolog_writes_into_the_socket() {
    let test = "real_monolog_writes_into_the_socket";
    if !crate::skip::require_tool(test, "php", "apt-get install php-cli php-monolog")
        || !crate::skip::require(
            test,
            Path::new("/usr/share/php/Monolog/autoload.php").is_file(),
            "php-monolog",
            "apt-get install php-monolog",
        )
    {
        return;
    }
    let d = spawn_daemon(Opts::new());
    let out = run(Command::new("php")
        .arg(repo().join("tests/fixtures/monolog.php"))
        .arg(&d.socket));
    assert_success("monolog", &out);
    let ev = event_with(&d, "monolog invoice failed");
    check(
        &ev,
        "error",
        Some("PaymentException"),
        Some("PaymentException: gateway refused"),
    );
    assert_eq!(ev["code"], "402", "{ev:#}");
    assert_eq!(ev["context"]["order"], 42, "{ev:#}");
    assert_eq!(ev["extra"]["channel"], "billing", "{ev:#}");
    check(
        &event_with(&d, "monolog just a warning"),
        "warn",
        None,
        None,
    );
    check(&event_with(&d, "monolog on fire"), "fatal", None, None);
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(
        !log.contains("phpsecret4242"),
        "the secret reached the log:\n{log}"
    );
}

/// Real zerolog (Go, Debian's `golang-github-rs-zerolog-dev`) with the pkgerrors stack
/// marshaller: `stack` is an array of frames (rejected as `wrong_type` before issue 17), the
/// error text stays in `extra` and its secret is redacted.
#[test]
fn real_zerolog_writes_into_the_socket() {
    let test = "real_zerolog_writes_into_the_socket";
    let gocode = Path::new("/usr/share/gocode/src/github.com/rs/zerolog/pkgerrors");
    if !crate::skip::require(
        test,
        runs("go", &["version"]),
        "go",
        "apt-get install golang-go",
    ) || !crate::skip::require(
        test,
        gocode.is_dir(),
        "zerolog and pkg/errors for Go",
        "apt-get install golang-github-rs-zerolog-dev golang-github-pkg-errors-dev",
    ) {
        return;
    }
    // Debian's Go packages live in a GOPATH: build offline, without modules.
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("tests/fixtures/zerolog/main.go"),
        work.path().join("main.go"),
    )
    .unwrap();
    let bin = work.path().join("zl");
    let out = run(Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(work.path())
        .env("GOPATH", "/usr/share/gocode")
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", work.path().join("cache")));
    assert_success("go build", &out);
    let d = spawn_daemon(Opts::new());
    let out = run(Command::new(&bin).arg(&d.socket));
    assert_success("zerolog", &out);
    let ev = event_with(&d, "zerolog charge failed");
    check(&ev, "error", None, Some("charge()\n\tmain.go:"));
    assert_eq!(ev["service"], "zl-billing", "{ev:#}");
    check(
        &event_with(&d, "zerolog just a warning"),
        "warn",
        None,
        None,
    );
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(
        !log.contains("zlsecret4242"),
        "the secret reached the log:\n{log}"
    );
    assert!(
        log.contains("gateway refused"),
        "the error text is kept:\n{log}"
    );
}
