//! Tests of [`super`]: key and member recognition, stack header names, times, structlog
//! tracebacks, and golden lines of each logger's default JSON through the whole parser.

use super::*;

#[test]
fn names_from_stack_headers() {
    let cases = [
        (
            r"TypeError: x is undefined\n    at f (/a.js:1:2)",
            Some("TypeError"),
        ),
        (r"Error\n    at f (/a.js:1:2)", Some("Error")),
        (
            r"java.lang.IllegalStateException: boom\n\tat com.x.Y.z(Y.java:1)",
            Some("java.lang.IllegalStateException"),
        ),
        (
            r"java.lang.NullPointerException\n\tat com.x.Y.z(Y.java:1)",
            Some("java.lang.NullPointerException"),
        ),
        (
            r#"Traceback (most recent call last):\n  File \"/a.py\", line 1, in f\n    g()\nValueError: bad\n"#,
            Some("ValueError"),
        ),
        (
            r#"Traceback (most recent call last):\n  File \"/a.py\", line 1, in f\nhttpx.ConnectError: boom"#,
            Some("httpx.ConnectError"),
        ),
        (
            r#"Traceback (most recent call last):\r\n  File \"/a.py\", line 1, in f\r\nKeyboardInterrupt"#,
            Some("KeyboardInterrupt"),
        ),
        // Go (zap's stacktrace) and Rust backtraces start with a function, not a name.
        (
            r"main.main\n\t/app/main.go:12\nruntime.main\n\t/go/proc.go:250",
            None,
        ),
        (
            r"   0: std::backtrace::Backtrace::create\n   1: app::main",
            None,
        ),
        (r"goroutine 1 [running]:\nmain.main()", None),
        ("", None),
        (r"just some text", None),
        (r"Error:no-space\n", None),
    ];
    for (stack, want) in cases {
        assert_eq!(name_from_stack(stack), want, "{stack}");
    }
}

#[test]
fn numeric_times_by_magnitude() {
    let want = Some(1_764_345_943_500_000_000);
    for raw in [
        "1764345943.5",
        "1764345943500",
        "1764345943500.0",
        "1764345943500000",
        "1764345943500000000",
        "1.7643459435e9",
    ] {
        assert_eq!(epoch_number(raw), want, "{raw}");
    }
    assert_eq!(
        epoch_number("1764345943.123456789"),
        Some(1_764_345_943_123_456_789)
    );
    assert_eq!(
        epoch_number("1764345943123.4567"),
        Some(1_764_345_943_123_456_700)
    );
    assert_eq!(epoch_number("0"), Some(0));
    for bad in [
        "-1",
        "1e30",
        "99999999999999999999999",
        "x",
        "",
        "1.2.3",
        "253402300800000000000",
    ] {
        assert_eq!(epoch_number(bad), None, "{bad}");
    }
}

#[test]
fn lenient_time_text() {
    let want = Some(1_764_345_943_123_000_000);
    for s in [
        "2025-11-28T16:05:43.123Z",
        "2025-11-28T17:05:43.123+01:00",
        "2025-11-28T17:05:43.123+0100",
        "2025-11-28T17:05:43.123+01",
        "2025-11-28 17:05:43,123+01:00",
    ] {
        assert_eq!(time_text(s), want, "{s}");
    }
    for s in [
        "2025-11-28 17:05:43,123",
        "yesterday",
        "",
        "2025-11-28T17:05:43.123",
    ] {
        assert_eq!(time_text(s), None, "{s}");
    }
}

#[test]
fn structlog_dict_tracebacks() {
    let json = r#"[{"exc_type":"ValueError","exc_value":"bad input","exc_notes":[],"syntax_error":null,"is_cause":false,"frames":[{"filename":"/app/main.py","lineno":8,"name":"<module>"},{"filename":"/app/main.py","lineno":7,"name":"f"}],"is_group":false,"exceptions":[]},{"exc_type":"KeyError","exc_value":"'inner'","is_cause":true,"frames":[{"filename":"/app/main.py","lineno":5,"name":"f"}]}]"#;
    let tb = python_traceback(json).unwrap();
    assert_eq!(tb.name.as_deref(), Some("ValueError"));
    assert_eq!(
        tb.text,
        "Traceback (most recent call last):\n  File \"/app/main.py\", line 5, in f\n\
         KeyError: 'inner'\n\nThe above exception was the direct cause of the following \
         exception:\n\nTraceback (most recent call last):\n  File \"/app/main.py\", line 8, \
         in <module>\n  File \"/app/main.py\", line 7, in f\nValueError: bad input\n"
    );
    assert!(python_traceback("[]").is_none());
    assert!(python_traceback("[1]").is_none());
}

#[test]
fn fields_and_members() {
    assert_eq!(field("message"), Field::Message);
    assert_eq!(field("msg"), Field::MessageAlias(rank::MSG));
    assert_eq!(field("Message"), Field::Other);
    assert_eq!(member(Family::Err, "type"), Some(Lift::Name(1)));
    assert_eq!(member(Family::Err, "name"), Some(Lift::Name(2)));
    assert_eq!(member(Family::Error, "type"), Some(Lift::Name(3)));
    assert_eq!(member(Family::Fields, "message"), Some(Lift::Message(3)));
    assert_eq!(member(Family::Fields, "code"), None);
    assert_eq!(member(Family::Err, "errno"), None);
}

// Whole lines through the parser.
use crate::event::level::Level;
use crate::event::parse::{parse, Expected, ParseError, Timestamp};
use crate::protocol::RejectCode;

/// Golden lines in each logger's documented default JSON output (docs/formats.md).
struct Want {
    message: &'static str,
    level: Level,
    name: Option<&'static str>,
    code: Option<&'static str>,
    stack_starts: Option<&'static str>,
    service: Option<&'static str>,
    ts_nanos: Option<i128>,
    extra_keys: &'static [&'static str],
}

fn check(line: &str, w: Want) {
    let e = parse(line).unwrap_or_else(|err| panic!("{line}: {err}"));
    assert_eq!(e.message, w.message, "{line}");
    assert_eq!(e.level, w.level, "{line}");
    assert_eq!(e.name.as_deref(), w.name, "{line}");
    assert_eq!(e.code.as_deref(), w.code, "{line}");
    match w.stack_starts {
        Some(p) => assert!(
            e.stack.as_deref().is_some_and(|s| s.starts_with(p)),
            "{line}: stack {:?}",
            e.stack
        ),
        None => assert_eq!(e.stack, None, "{line}"),
    }
    assert_eq!(e.service.as_deref(), w.service, "{line}");
    let ts = e.ts.map(|Timestamp::UnixNanos(n)| n);
    assert_eq!(ts, w.ts_nanos, "{line}");
    let keys: Vec<&str> = e.extra.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(keys, w.extra_keys, "{line}");
    // Every extra value is valid JSON.
    for (k, v) in &e.extra {
        serde_json::from_str::<serde_json::Value>(v).unwrap_or_else(|e| panic!("{k}: {v}: {e}"));
    }
}

const T: i128 = 1_764_345_943_123_000_000;

#[test]
fn golden_pino() {
    check(
        r#"{"level":50,"time":1764345943123,"pid":4242,"hostname":"web-1","name":"checkout","err":{"type":"Error","message":"connect ECONNREFUSED 127.0.0.1:5432","stack":"Error: connect ECONNREFUSED 127.0.0.1:5432\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)","errno":-111,"code":"ECONNREFUSED","syscall":"connect"},"msg":"connect ECONNREFUSED 127.0.0.1:5432"}"#,
        Want {
            message: "connect ECONNREFUSED 127.0.0.1:5432",
            level: Level::Error,
            name: Some("Error"),
            code: Some("ECONNREFUSED"),
            stack_starts: Some("Error: connect"),
            service: Some("checkout"),
            ts_nanos: Some(T),
            extra_keys: &["pid", "hostname", "err"],
        },
    );
    // err's unmapped members stay; lifted ones leave.
    let e = parse(
        r#"{"level":60,"msg":"m","err":{"type":"E","message":"m","stack":"E: m","errno":-111}}"#,
    )
    .unwrap();
    assert_eq!(e.level, Level::Fatal);
    assert_eq!(e.extra[0].1, r#"{"errno":-111}"#);
    // a message that differs from msg stays in err
    let e = parse(r#"{"level":50,"msg":"loading order failed","err":{"type":"TypeError","message":"x is undefined"}}"#).unwrap();
    assert_eq!(e.message, "loading order failed");
    assert_eq!(e.name.as_deref(), Some("TypeError"));
    assert_eq!(e.extra[0].1, r#"{"message":"x is undefined"}"#);
    // an explicit service wins over the logger name, which is kept
    let e = parse(r#"{"level":50,"name":"lg","service":"svc","msg":"m"}"#).unwrap();
    assert_eq!(e.service.as_deref(), Some("svc"));
    assert_eq!(e.name, None);
    assert_eq!(
        (e.extra[0].0.as_ref(), e.extra[0].1.as_ref()),
        ("name", r#""lg""#)
    );
}

#[test]
fn golden_bunyan() {
    check(
        r#"{"name":"checkout","hostname":"web-1","pid":4242,"level":50,"err":{"message":"boom","name":"TypeError","stack":"TypeError: boom\n    at f (/srv/app/x.js:1:2)","code":"E_BOOM"},"msg":"boom","time":"2025-11-28T16:05:43.123Z","v":0}"#,
        Want {
            message: "boom",
            level: Level::Error,
            name: Some("TypeError"),
            code: Some("E_BOOM"),
            stack_starts: Some("TypeError: boom"),
            service: Some("checkout"),
            ts_nanos: Some(T),
            extra_keys: &["hostname", "pid", "v"],
        },
    );
}

#[test]
fn golden_winston() {
    check(
        r#"{"level":"error","message":"boom","stack":"RangeError: boom\n    at f (/srv/app/x.js:1:2)","timestamp":"2025-11-28T16:05:43.123Z","service":"api"}"#,
        Want {
            message: "boom",
            level: Level::Error,
            name: Some("RangeError"),
            code: None,
            stack_starts: Some("RangeError: boom"),
            service: Some("api"),
            ts_nanos: Some(T),
            extra_keys: &[],
        },
    );
    let e = parse(r#"{"level":"warn","message":"slow"}"#).unwrap();
    assert_eq!(e.level, Level::Warn);
}

#[test]
fn golden_python_json_logger() {
    check(
        r#"{"asctime": "2025-11-28 17:05:43,123", "name": "billing.invoices", "levelname": "ERROR", "message": "invoice failed", "exc_info": "Traceback (most recent call last):\n  File \"/srv/app/billing.py\", line 12, in charge\n    1 / 0\nZeroDivisionError: division by zero"}"#,
        Want {
            message: "invoice failed",
            level: Level::Error,
            name: Some("ZeroDivisionError"),
            code: None,
            stack_starts: Some("Traceback (most recent call last):"),
            service: None,
            // asctime has no zone: receive time is used, the text stays in extra
            ts_nanos: None,
            extra_keys: &["asctime", "name"],
        },
    );
    let e = parse(r#"{"message":"m","levelname":"WARNING","levelno":30}"#).unwrap();
    assert_eq!(e.level, Level::Warn);
    let e = parse(r#"{"message":"m","levelno":50}"#).unwrap();
    assert_eq!(e.level, Level::Fatal);
}

#[test]
fn golden_structlog() {
    check(
        r#"{"event": "payment failed", "level": "error", "timestamp": "2025-11-28T16:05:43.123Z", "exception": "Traceback (most recent call last):\n  File \"/srv/app/pay.py\", line 3, in pay\n    raise ValueError(\"bad card\")\nValueError: bad card"}"#,
        Want {
            message: "payment failed",
            level: Level::Error,
            name: Some("ValueError"),
            code: None,
            stack_starts: Some(r#"Traceback (most recent call last):\n  File \"/srv/app/pay.py\""#),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &[],
        },
    );
    check(
        r#"{"event":"payment failed","level":"critical","exception":[{"exc_type":"ValueError","exc_value":"bad card","exc_notes":[],"syntax_error":null,"is_cause":false,"frames":[{"filename":"/srv/app/pay.py","lineno":3,"name":"pay"}],"is_group":false,"exceptions":[]}]}"#,
        Want {
            message: "payment failed",
            level: Level::Fatal,
            name: Some("ValueError"),
            code: None,
            stack_starts: Some(
                r#"Traceback (most recent call last):\n  File \"/srv/app/pay.py\", line 3, in pay\nValueError: bad card"#,
            ),
            service: None,
            ts_nanos: None,
            extra_keys: &[],
        },
    );
}

#[test]
fn golden_zap() {
    check(
        r#"{"level":"error","ts":1764345943.123,"caller":"orders/service.go:42","msg":"loading order failed","error":"dial tcp 10.0.0.7:5432: connect: connection refused","stacktrace":"main.loadOrder\n\t/srv/app/orders/service.go:42\nmain.main\n\t/srv/app/main.go:12"}"#,
        Want {
            message: "loading order failed",
            level: Level::Error,
            name: None,
            code: None,
            stack_starts: Some(r"main.loadOrder\n\t/srv/app/orders/service.go:42"),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["caller", "error"],
        },
    );
    let e = parse(r#"{"level":"dpanic","msg":"m"}"#).unwrap();
    assert_eq!(e.level, Level::Error);
    let e = parse(r#"{"level":"panic","msg":"m"}"#).unwrap();
    assert_eq!(e.level, Level::Fatal);
}

#[test]
fn golden_slog() {
    check(
        r#"{"time":"2025-11-28T17:05:43.123+01:00","level":"ERROR","msg":"request failed","err":"context deadline exceeded","path":"/api/orders"}"#,
        Want {
            message: "request failed",
            level: Level::Error,
            name: None,
            code: None,
            stack_starts: None,
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["err", "path"],
        },
    );
    let e = parse(r#"{"level":"WARN+2","msg":"m"}"#).unwrap();
    assert_eq!(e.level, Level::Warn);
    // an error string alone is the message
    let e = parse(r#"{"level":"ERROR","err":"boom"}"#).unwrap();
    assert_eq!(e.message, "boom");
    assert!(e.extra.is_empty());
}

#[test]
fn golden_tracing_subscriber() {
    check(
        r#"{"timestamp":"2025-11-28T16:05:43.123000Z","level":"ERROR","fields":{"message":"query failed","error":"timeout","rows":3},"target":"app::db","span":{"name":"load"},"spans":[{"name":"load"}]}"#,
        Want {
            message: "query failed",
            level: Level::Error,
            name: None,
            code: None,
            stack_starts: None,
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["fields", "target", "span", "spans"],
        },
    );
    let e = parse(r#"{"level":"WARN","fields":{"message":"only"}}"#).unwrap();
    assert_eq!(e.message, "only");
    assert!(e.extra.is_empty(), "{:?}", e.extra);
}

#[test]
fn golden_logstash_logback() {
    check(
        r#"{"@timestamp":"2025-11-28T17:05:43.123+01:00","@version":"1","message":"order sync failed","logger_name":"com.example.OrderSync","thread_name":"main","level":"ERROR","level_value":40000,"stack_trace":"java.lang.IllegalStateException: no order\n\tat com.example.OrderSync.run(OrderSync.java:42)\n\tat java.base/java.lang.Thread.run(Thread.java:840)\n"}"#,
        Want {
            message: "order sync failed",
            level: Level::Error,
            name: Some("java.lang.IllegalStateException"),
            code: None,
            stack_starts: Some("java.lang.IllegalStateException: no order"),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["@version", "logger_name", "thread_name", "level_value"],
        },
    );
}

#[test]
fn golden_google_cloud() {
    check(
        r#"{"severity":"CRITICAL","message":"db down","timestamp":"2025-11-28T16:05:43.123Z","logging.googleapis.com/trace":"projects/p/traces/abc"}"#,
        Want {
            message: "db down",
            level: Level::Fatal,
            name: None,
            code: None,
            stack_starts: None,
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["logging.googleapis.com/trace"],
        },
    );
    // The object form of `timestamp` (protobuf Timestamp as JSON).
    check(
        r#"{"severity":"ERROR","message":"db down","timestamp":{"seconds":1764345943,"nanos":123000000}}"#,
        Want {
            message: "db down",
            level: Level::Error,
            name: None,
            code: None,
            stack_starts: None,
            service: None,
            ts_nanos: Some(T),
            extra_keys: &[],
        },
    );
    for (ts, want) in [
        (r#"{"seconds":"1764345943","nanos":123000000}"#, Some(T)),
        (r#"{"seconds":1764345943}"#, Some(T - 123_000_000)),
        (r#"{"seconds":1764345943,"nanos":1000000000}"#, None),
        (r#"{"seconds":-1}"#, None),
        (r#"{"seconds":"soon"}"#, None),
        (r#"{"nanos":5}"#, None),
        (r#"{"seconds":99999999999999}"#, None),
    ] {
        let line = format!(r#"{{"message":"m","timestamp":{ts}}}"#);
        let e = parse(&line).unwrap();
        assert_eq!(e.ts, want.map(Timestamp::UnixNanos), "{ts}");
        // Unreadable times stay under extra, as written.
        assert_eq!(e.extra.is_empty(), want.is_some(), "{ts}");
    }
    let e = parse(r#"{"severity":"WARNING","message":"m"}"#).unwrap();
    assert_eq!(e.level, Level::Warn);
    let e = parse(r#"{"severity":500,"message":"m"}"#).unwrap();
    assert_eq!(e.level, Level::Error);
}

#[test]
fn precedence() {
    // native fields win; the losing aliases stay under extra
    let e = parse(r#"{"msg":"alias","message":"native","severity":"DEBUG","level":"warn","stack_trace":"x","stack":"y","time":1,"ts":"2025-11-28T16:05:43.123Z","code":7,"err":{"code":"E","type":"T","stack":"z"},"name":"N"}"#).unwrap();
    assert_eq!(e.message, "native");
    assert_eq!(e.level, Level::Warn);
    assert_eq!(e.stack.as_deref(), Some("y"));
    assert_eq!(e.code.as_deref(), Some("7"));
    assert_eq!(e.name.as_deref(), Some("N"));
    assert_eq!(e.ts, Some(Timestamp::UnixNanos(T)));
    let keys: Vec<&str> = e.extra.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(keys, ["msg", "severity", "stack_trace", "time", "err"]);
    assert_eq!(e.extra[4].1, r#"{"code":"E","type":"T","stack":"z"}"#);
    // msg beats event beats fields.message beats err.message
    let e =
        parse(r#"{"err":{"message":"e"},"fields":{"message":"f"},"event":"v","msg":"m"}"#).unwrap();
    assert_eq!(e.message, "m");
    let e = parse(r#"{"err":{"message":"e"},"fields":{"message":"f"},"event":"v"}"#).unwrap();
    assert_eq!(e.message, "v");
    let e = parse(r#"{"err":{"message":"e"},"fields":{"message":"f"}}"#).unwrap();
    assert_eq!(e.message, "f");
    let e = parse(r#"{"error":{"message":"x"},"err":{"message":"e"}}"#).unwrap();
    assert_eq!(e.message, "e");
    // err.type beats err.name beats error.type
    let e = parse(r#"{"message":"m","error":{"type":"C"},"err":{"name":"B","type":"A"}}"#).unwrap();
    assert_eq!(e.name.as_deref(), Some("A"));
    // an alias with a value of the wrong type is just extra
    let e = parse(r#"{"message":"m","msg":5,"severity":"loud","time":"never","stack_trace":{}}"#)
        .unwrap();
    assert_eq!(e.level, Level::Error);
    assert_eq!(e.extra.len(), 4);
    // still no message at all
    assert_eq!(
        parse(r#"{"msg":5}"#).unwrap_err(),
        ParseError::Missing("message")
    );
}

#[test]
fn native_levels_accept_logger_spellings_but_not_nonsense() {
    for (l, want) in [
        (r#""ERROR""#, Level::Error),
        (r#""warning""#, Level::Warn),
        ("30", Level::Info),
    ] {
        let line = format!(r#"{{"message":"m","level":{l}}}"#);
        assert_eq!(parse(&line).unwrap().level, want);
    }
    for l in [r#""loud""#, "7", "true", "{}"] {
        let err = parse(&format!(r#"{{"message":"m","level":{l}}}"#)).unwrap_err();
        assert_eq!(err, ParseError::WrongType("level", Expected::Level), "{l}");
    }
}

#[test]
fn name_comes_from_the_stack_only_when_absent() {
    let e = parse(r#"{"message":"m","stack":"TypeError: m\n    at f (/a.js:1:1)"}"#).unwrap();
    assert_eq!(e.name.as_deref(), Some("TypeError"));
    let e = parse(r#"{"message":"m","name":"Mine","stack":"TypeError: m"}"#).unwrap();
    assert_eq!(e.name.as_deref(), Some("Mine"));
}

#[test]
fn nested_objects_are_checked_like_the_rest() {
    let deep = format!(
        r#"{{"message":"m","err":{{"a":{}{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(parse(&deep).unwrap_err(), ParseError::TooDeep);
    let bad = r#"{"message":"m","err":{"n":1e400}}"#;
    assert_eq!(parse(bad).unwrap_err().code(), RejectCode::InvalidJson);
    let e = parse(r#"{"message":"m","err":null,"error":[1,{"a":2}],"exception":true}"#).unwrap();
    let vals: Vec<&str> = e.extra.iter().map(|(_, v)| v.as_ref()).collect();
    assert_eq!(vals, ["null", r#"[1,{"a":2}]"#, "true"]);
}
