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
    assert_eq!(field("MESSAGE"), Field::Other);
    assert_eq!(field("Message"), Field::MessageAlias(rank::MEL_MESSAGE));
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

// Profiles added for issue 17: .NET, PHP, ECS, OpenTelemetry, zerolog, log4j2.

#[test]
fn golden_serilog_clef() {
    // CompactJsonFormatter: `@mt` with properties, `@l` absent (Information), `@x`.
    let e = parse(r#"{"@t":"2025-11-28T16:05:43.1230000Z","@mt":"Order {OrderId} for {@Customer} took {Elapsed:0.00} ms {{literal}} {Missing}","OrderId":42,"Customer":{"Name":"Ann"},"Elapsed":12.5,"SourceContext":"Shop.Orders"}"#).unwrap();
    assert_eq!(
        e.message,
        r#"Order 42 for {"Name":"Ann"} took 12.5 ms {literal} {Missing}"#
    );
    assert_eq!(e.level, Level::Info);
    assert_eq!(e.ts, Some(Timestamp::UnixNanos(T)));
    assert!(e.rebuilt);
    let keys: Vec<&str> = e.extra.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(keys, ["OrderId", "Customer", "Elapsed", "SourceContext"]);
    check(
        r#"{"@t":"2025-11-28T16:05:43.123Z","@mt":"Payment for {User} failed","@m":"Payment for \"bob\" failed","@i":"a1b2c3d4","@l":"Error","@x":"System.InvalidOperationException: Card declined\n   at Shop.Pay.Charge() in /src/Pay.cs:line 12","User":"bob"}"#,
        Want {
            message: "Payment for \"bob\" failed",
            level: Level::Error,
            name: Some("System.InvalidOperationException"),
            code: None,
            stack_starts: Some("System.InvalidOperationException: Card"),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["@mt", "@i", "User"],
        },
    );
    // levels by name; a secret property in a hole is never rendered
    let e = parse(r#"{"@mt":"m","@l":"Fatal"}"#).unwrap();
    assert_eq!(e.level, Level::Fatal);
    let e = crate::event::parse::parse_with(
        r#"{"@mt":"login {User} with {Password}","User":"u","Password":"hunter2"}"#,
        &|k| k.eq_ignore_ascii_case("password"),
    )
    .unwrap();
    assert_eq!(e.message, "login u with [REDACTED]");
    // bad input: wrong types stay in extra, a template without message is still a message
    let e = parse(r#"{"@mt":"x {A} {","@l":42,"@t":"never","@x":["a"],"A":null}"#).unwrap();
    assert_eq!(e.message, "x null {");
    assert_eq!(e.level, Level::Info);
    assert_eq!(e.ts, None);
    let e = parse(r#"{"@mt":7}"#).unwrap_err();
    assert_eq!(e, ParseError::Missing("message"));
}

#[test]
fn golden_dotnet_json_console() {
    check(
        r#"{"Timestamp":"2025-11-28T16:05:43.123Z","EventId":0,"LogLevel":"Critical","Category":"Shop.Api.OrdersController","Message":"Order 42 failed","Exception":"System.NullReferenceException: Object reference not set to an instance of an object.\n   at Shop.Api.OrdersController.Get() in /src/Orders.cs:line 30","State":{"Message":"Order 42 failed","Id":42,"{OriginalFormat}":"Order {Id} failed"}}"#,
        Want {
            message: "Order 42 failed",
            level: Level::Fatal,
            name: Some("System.NullReferenceException"),
            code: None,
            stack_starts: Some("System.NullReferenceException: Object"),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["EventId", "Category", "State"],
        },
    );
    for (l, want) in [
        ("Information", Level::Info),
        ("Warning", Level::Warn),
        ("Trace", Level::Trace),
    ] {
        let line = format!(r#"{{"Message":"m","LogLevel":"{l}"}}"#);
        assert_eq!(parse(&line).unwrap().level, want, "{l}");
    }
    // `LogLevel: "None"` is no level: it stays in extra, the default applies.
    let e = parse(r#"{"Message":"m","LogLevel":"None","Exception":7}"#).unwrap();
    assert_eq!(e.level, Level::Error);
    assert_eq!(e.extra.len(), 2);
}

#[test]
fn golden_monolog() {
    check(
        r#"{"message":"Payment failed","context":{"exception":{"class":"App\\PaymentException","message":"card declined","code":402,"file":"/app/src/Pay.php:12","trace":["/app/src/Shop.php:40","/app/public/index.php:9"]},"order":42},"level":400,"level_name":"ERROR","channel":"app","datetime":"2025-11-28T17:05:43.123000+01:00","extra":{}}"#,
        Want {
            message: "Payment failed",
            level: Level::Error,
            name: Some("App\\PaymentException"),
            code: Some("402"),
            stack_starts: Some(
                r"App\\PaymentException: card declined\n    at /app/src/Pay.php:12\n    at /app/src/Shop.php:40",
            ),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["level_name", "channel", "extra"],
        },
    );
    for (n, want) in [
        (100, Level::Debug),
        (200, Level::Info),
        (250, Level::Info),
        (300, Level::Warn),
        (500, Level::Fatal),
        (600, Level::Fatal),
    ] {
        let line = format!(r#"{{"message":"m","level":{n},"channel":"app"}}"#);
        assert_eq!(parse(&line).unwrap().level, want, "{n}");
    }
    // code 0 (PHP's default) is no code; an exception that is not an object is just context
    let e = parse(r#"{"message":"m","level":400,"level_name":"ERROR","context":{"exception":{"class":"RuntimeException","message":"x","code":0}}}"#).unwrap();
    assert_eq!(e.code, None);
    assert_eq!(e.name.as_deref(), Some("RuntimeException"));
    for ctx in [
        r#"{"exception":"RuntimeException: x"}"#,
        r#"{"exception":{"class":7}}"#,
        r#"{"exception":{"message":"no class"}}"#,
        r#"{"exception":{"class":"E","trace":[1,{"a":2}]}}"#,
    ] {
        let line = format!(r#"{{"message":"m","level_name":"ERROR","context":{ctx}}}"#);
        assert!(parse(&line).unwrap().context.is_some(), "{ctx}");
    }
}

#[test]
fn golden_ecs() {
    // ecs-logging (Python, Node, Java, .NET, Go) and log4j2's EcsLayout: dotted keys.
    check(
        r#"{"@timestamp":"2025-11-28T16:05:43.123Z","log.level":"error","message":"Payment failed","ecs.version":"1.6.0","log":{"logger":"shop.pay","origin":{"file":{"line":12,"name":"pay.py"}}},"error.type":"ValueError","error.message":"bad card","error.stack_trace":"Traceback (most recent call last):\n  File \"/app/pay.py\", line 12, in charge\nValueError: bad card","service.name":"shop","process.thread.name":"main"}"#,
        Want {
            message: "Payment failed",
            level: Level::Error,
            name: Some("ValueError"),
            code: None,
            stack_starts: Some("Traceback"),
            service: Some("shop"),
            ts_nanos: Some(T),
            extra_keys: &["ecs.version", "log", "error.message", "process.thread.name"],
        },
    );
    // nested: log {level}, error {type, message, stack_trace}, service {name}
    check(
        r#"{"@timestamp":"2025-11-28T16:05:43.123Z","log":{"level":"warn","logger":"x"},"message":"slow","error":{"type":"TimeoutError","message":"slow","stack_trace":"TimeoutError: slow\n    at f (/a.js:1:1)"},"service":{"name":"api","version":"1.2"}}"#,
        Want {
            message: "slow",
            level: Level::Warn,
            name: Some("TimeoutError"),
            code: None,
            stack_starts: Some("TimeoutError: slow"),
            service: Some("api"),
            ts_nanos: Some(T),
            extra_keys: &["log", "service"],
        },
    );
    // a service object without a name is kept; a service of another type is still wrong_type
    let e = parse(r#"{"message":"m","service":{"version":"1"}}"#).unwrap();
    assert_eq!(e.service, None);
    assert_eq!(e.extra[0].1, r#"{"version":"1"}"#);
    assert_eq!(
        parse(r#"{"message":"m","service":7}"#).unwrap_err(),
        ParseError::WrongType("service", Expected::String)
    );
    let e =
        parse(r#"{"message":"m","log.level":"loud","log":{"level":5},"error.type":[]}"#).unwrap();
    assert_eq!(e.level, Level::Error);
    assert_eq!(e.extra.len(), 3);
}

#[test]
fn golden_opentelemetry_flat() {
    // One OTLP/JSON log record (what `otlp::split` makes of a batch).
    check(
        r#"{"timeUnixNano":"1764345943123000000","observedTimeUnixNano":"1764345943200000000","severityNumber":17,"severityText":"ERROR","body":{"stringValue":"Payment failed"},"attributes":[{"key":"exception.type","value":{"stringValue":"ValueError"}},{"key":"exception.message","value":{"stringValue":"bad card"}},{"key":"exception.stacktrace","value":{"stringValue":"Traceback (most recent call last):\n  File \"/app/pay.py\", line 3, in f\nValueError: bad card"}},{"key":"order","value":{"intValue":"42"}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"scope":{"name":"shop.pay"}}"#,
        Want {
            message: "Payment failed",
            level: Level::Error,
            name: Some("ValueError"),
            code: None,
            stack_starts: Some("Traceback"),
            service: Some("shop"),
            ts_nanos: Some(T),
            extra_keys: &[
                "observedTimeUnixNano",
                "severityText",
                "attributes",
                "traceId",
                "spanId",
                "resource",
                "scope",
            ],
        },
    );
    // The Python SDK's `LogRecord.to_json()` (snake case, attributes as an object).
    check(
        r#"{"body":"Payment failed","severity_number":21,"severity_text":"FATAL","attributes":{"exception.type":"KeyError","exception.message":"'k'","code.lineno":3},"dropped_attributes":0,"timestamp":"2025-11-28T16:05:43.123000Z","observed_timestamp":"2025-11-28T16:05:43.200000Z","trace_id":"0x5b8efff798038103d269b633813fc60c","span_id":"0xeee19b7ec3c1b174","trace_flags":1,"resource":{"attributes":{"service.name":"shop","telemetry.sdk.language":"python"},"schema_url":""}}"#,
        Want {
            message: "Payment failed",
            level: Level::Fatal,
            name: Some("KeyError"),
            code: None,
            stack_starts: None,
            service: Some("shop"),
            ts_nanos: Some(T),
            extra_keys: &[
                "severity_text",
                "attributes",
                "dropped_attributes",
                "observed_timestamp",
                "trace_id",
                "span_id",
                "trace_flags",
                "resource",
            ],
        },
    );
    // severityText with a digit, severityNumber scale, no body: the exception message
    let e = parse(r#"{"severityText":"WARN3","attributes":{"exception.message":"x"}}"#).unwrap();
    assert_eq!((e.message.as_ref(), e.level), ("x", Level::Warn));
    for (n, want) in [
        (1, Level::Trace),
        (9, Level::Info),
        (13, Level::Warn),
        (24, Level::Fatal),
    ] {
        let line = format!(r#"{{"body":"m","severityNumber":{n}}}"#);
        assert_eq!(parse(&line).unwrap().level, want, "{n}");
    }
    // bad input: a body of another type, broken attributes, a huge attribute list
    let e = parse(r#"{"body":{"intValue":"3"},"severityNumber":99,"attributes":[7,{"key":1}],"resource":{"attributes":"x"},"message":"m"}"#).unwrap();
    assert_eq!((e.message.as_ref(), e.level), ("m", Level::Error));
    let many: Vec<String> = (0..5000)
        .map(|i| format!(r#"{{"key":"k{i}","value":{{"stringValue":"v"}}}}"#))
        .collect();
    let line = format!(r#"{{"body":"m","attributes":[{}]}}"#, many.join(","));
    assert_eq!(parse(&line).unwrap().message, "m");
}

#[test]
fn otlp_batch_records_parse_one_by_one() {
    let line = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"scopeLogs":[{"scope":{"name":"s"},"logRecords":[{"severityNumber":17,"body":{"stringValue":"a"}},{"severityNumber":9,"body":{"stringValue":"b"}},{"severityNumber":9}]}]}]}"#;
    let recs = crate::event::parse::otlp::split(line).unwrap();
    let parsed: Vec<_> = recs.iter().map(|r| parse(r)).collect();
    assert_eq!(parsed[0].as_ref().unwrap().message, "a");
    assert_eq!(parsed[0].as_ref().unwrap().service.as_deref(), Some("shop"));
    assert_eq!(parsed[1].as_ref().unwrap().level, Level::Info);
    assert_eq!(
        parsed[2].as_ref().unwrap_err(),
        &ParseError::Missing("message")
    );
}

#[test]
fn golden_zerolog() {
    // zerolog with pkgerrors' ErrorStackMarshaler: `stack` is an array of frames.
    check(
        r#"{"level":"error","stack":[{"func":"loadOrder","line":"42","source":"orders.go"},{"func":"main","line":"12","source":"main.go"}],"error":"dial tcp 10.0.0.5:5432: connect: connection refused","time":"2025-11-28T16:05:43.123Z","message":"loading order failed"}"#,
        Want {
            message: "loading order failed",
            level: Level::Error,
            name: None,
            code: None,
            stack_starts: Some(r"loadOrder()\n\torders.go:42\nmain()\n\tmain.go:12"),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["error"],
        },
    );
    // frames of another shape are still a type error
    for bad in [r#"[1]"#, r#"[{"x":1}]"#, r#"[["a"]]"#] {
        let err = parse(&format!(r#"{{"message":"m","stack":{bad}}}"#)).unwrap_err();
        assert_eq!(
            err,
            ParseError::WrongType("stack", Expected::String),
            "{bad}"
        );
    }
    // lines of text are a stack too
    let e = parse(r#"{"message":"m","stack":["a","b"]}"#).unwrap();
    assert_eq!(e.stack.as_deref(), Some(r"a\nb\n"));
}

#[test]
fn golden_log4j2_json_template_layout() {
    // JsonLayout.json (the default event template)
    check(
        r#"{"instant":{"epochSecond":1764345943,"nanoOfSecond":123000000},"thread":"main","level":"ERROR","loggerName":"com.shop.Pay","message":"Payment failed","thrown":{"message":"card declined","name":"java.lang.IllegalStateException","extendedStackTrace":[{"class":"com.shop.Pay","method":"charge","file":"Pay.java","line":12},{"class":"com.shop.Main","method":"main","file":"Main.java","line":5}]},"endOfBatch":false,"loggerFqcn":"org.apache.logging.log4j.spi.AbstractLogger","threadId":1,"threadPriority":5}"#,
        Want {
            message: "Payment failed",
            level: Level::Error,
            name: Some("java.lang.IllegalStateException"),
            code: None,
            stack_starts: Some(r"\tat com.shop.Pay.charge(Pay.java:12)\n"),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &[
                "thread",
                "loggerName",
                "thrown",
                "endOfBatch",
                "loggerFqcn",
                "threadId",
                "threadPriority",
            ],
        },
    );
    // LogstashJsonEventLayoutV1.json
    check(
        r#"{"mdc":{},"exception":{"exception_class":"java.lang.IllegalStateException","exception_message":"card declined","stacktrace":"java.lang.IllegalStateException: card declined\n\tat com.shop.Pay.charge(Pay.java:12)"},"@version":1,"source_host":"web-1","message":"Payment failed","thread_name":"main","@timestamp":"2025-11-28T16:05:43.123Z","level":"ERROR","logger_name":"com.shop.Pay"}"#,
        Want {
            message: "Payment failed",
            level: Level::Error,
            name: Some("java.lang.IllegalStateException"),
            code: None,
            stack_starts: Some("java.lang.IllegalStateException: card"),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &[
                "mdc",
                "exception",
                "@version",
                "source_host",
                "thread_name",
                "logger_name",
            ],
        },
    );
    // GelfLayout.json: syslog level, short_message, full_message (the stack)
    check(
        r#"{"version":"1.1","host":"web-1","short_message":"Payment failed","full_message":"java.lang.IllegalStateException: card declined\n\tat com.shop.Pay.charge(Pay.java:12)","timestamp":1764345943.123,"level":3,"_logger":"com.shop.Pay","_thread":"main"}"#,
        Want {
            message: "Payment failed",
            level: Level::Error,
            name: Some("java.lang.IllegalStateException"),
            code: None,
            stack_starts: Some("java.lang.IllegalStateException"),
            service: None,
            ts_nanos: Some(T),
            extra_keys: &["version", "host", "_logger", "_thread"],
        },
    );
    let e = parse(r#"{"short_message":"m","level":6}"#).unwrap();
    assert_eq!(e.level, Level::Info);
    // a syslog number without GELF is nobody's level
    assert_eq!(
        parse(r#"{"message":"m","level":3}"#).unwrap_err(),
        ParseError::WrongType("level", Expected::Level)
    );
    // EcsLayout.json is ECS (golden_ecs)
}

#[test]
fn generic_recognizer() {
    // top level, names normalized
    let e = parse(r#"{"Text":"disk full","Log_Level":"WARNING","ErrorType":"IOError","App":"backup","Stack":"IOError: disk full\n    at w (/a.js:1:1)"}"#).unwrap();
    assert!(e.generic);
    assert_eq!(e.message, "disk full");
    assert_eq!(e.level, Level::Warn);
    assert_eq!(e.name.as_deref(), Some("IOError"));
    assert_eq!(e.service.as_deref(), Some("backup"));
    assert!(e.stack.is_some());
    assert!(e.extra.is_empty(), "{:?}", e.extra);
    // one level of nesting: a wrapped record; top level wins
    let e = parse(r#"{"record":{"description":"inner","severity":"error","kind":"db.Timeout","extra":1},"host":"h","when":{"a":{"text":"too deep"}}}"#).unwrap();
    assert_eq!(e.message, "inner");
    assert_eq!(e.level, Level::Error);
    assert_eq!(e.name.as_deref(), Some("db.Timeout"));
    assert_eq!(e.extra[0].1, r#"{"extra":1}"#);
    let e = parse(r#"{"wrap":{"text":"nested"},"summary":"top"}"#).unwrap();
    assert_eq!(e.message, "top");
    // a stack found by its shape under any key
    let e = parse(r#"{"title":"t","blob":"Error: x\n    at f (/a.js:1:1)"}"#).unwrap();
    assert_eq!(e.name.as_deref(), Some("Error"));
    // names that are not types, levels that are not levels: left alone
    let e = parse(r#"{"text":"t","type":"a sentence","lvl":"loud"}"#).unwrap();
    assert_eq!((e.name, e.level), (None, Level::Error));
    assert_eq!(e.extra.len(), 2);
    // a record wrapped in an object a profile reads (`log`): its members are looked at too
    let e = parse(r#"{"log":{"text":"wrapped in log","level":"warn"},"pid":1}"#).unwrap();
    assert_eq!(
        (e.message.as_ref(), e.level),
        ("wrapped in log", Level::Warn)
    );
    assert!(e.extra.iter().all(|(k, _)| k != "log"), "{:?}", e.extra);
    // Docker's json-file lines: `log` is read as text
    let e = parse(r#"{"log":"panic: boom\n","stream":"stderr","time":"2025-11-28T16:05:43.123Z"}"#)
        .unwrap();
    assert_eq!(e.message, "panic: boom\n");
    assert_eq!(e.ts, Some(Timestamp::UnixNanos(T)));
    let keys: Vec<&str> = e.extra.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(keys, ["stream"]);
    // nothing to go on: still rejected for its missing message
    for line in [
        r#"{"a":1}"#,
        r#"{"x":{"y":{"message":"too deep"}}}"#,
        r#"{"text":""}"#,
    ] {
        assert_eq!(
            parse(line).unwrap_err(),
            ParseError::Missing("message"),
            "{line}"
        );
    }
    // profile lines never take this path
    assert!(!parse(r#"{"msg":"m","foo":"bar"}"#).unwrap().generic);
    // bounded: a huge object is looked at up to its first keys only
    let wide: Vec<String> = (0..10_000).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let line = format!(r#"{{{},"text":"late"}}"#, wide.join(","));
    assert_eq!(parse(&line).unwrap_err(), ParseError::Missing("message"));
}
