//! Recognizing what popular loggers write, without configuration (docs/formats.md).
//!
//! The parser ([`super::parse`]) reads each top-level key once and asks `field` what it may
//! mean. A key that can fill a record field (message, level, name, stack, code, ts, service)
//! becomes a *candidate* with a rank; the lowest rank wins when the line ends, so the order of
//! keys in the line never matters. Keys of the native protocol (PROTOCOL.md) rank first, so a
//! native event is read exactly as before. Candidates that lose, and every key that maps to
//! nothing, stay under `extra`.
//!
//! Error objects (`err`, `error`, `exception`) and tracing's `fields` are read member by member
//! in the same pass; the members that win a record field are lifted out, the others stay in
//! `extra.<key>`.
#![forbid(unsafe_code)]

use time::format_description::well_known::Rfc3339;

/// What a top-level key may mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    // The native protocol (PROTOCOL.md); type errors in these reject the line.
    Message,
    Level,
    Name,
    Stack,
    Code,
    Service,
    Ts,
    Context,
    Tags,
    Fingerprint,
    Ack,
    /// A string that may be the message (`msg`, `event`), with its rank.
    MessageAlias(u8),
    /// A level name or number (`severity`, `levelname`, `levelno`).
    LevelAlias(LevelKey),
    /// A stack as a string (`stack_trace`, `stacktrace`, `exc_info`).
    StackAlias(u8),
    /// A time (`timestamp`, `time`, `@timestamp`, `asctime`).
    TsAlias(u8),
    /// An object whose members are lifted (`err`, `error`, `exception`, `fields`).
    Nested(Family),
    /// Anything else: kept under `extra`.
    Other,
}

/// The level keys other than `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LevelKey {
    /// Google Cloud structured logging.
    Severity,
    /// Python logging (python-json-logger).
    Levelname,
    /// Python logging's numeric level.
    Levelno,
}

/// Objects read member by member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// pino, bunyan (`err` serializer); slog often writes `err` as a string.
    Err,
    /// Elastic Common Schema (`error.type`, `error.message`, `error.stack_trace`); zap and
    /// slog write `error` as a string.
    Error,
    /// structlog: a formatted traceback string (`format_exc_info`) or a list of frames
    /// (`dict_tracebacks`).
    Exception,
    /// tracing-subscriber's JSON: the event's fields, `fields.message` is the message.
    Fields,
}

/// Ranks: lower wins. Native keys are 0.
pub(super) mod rank {
    pub const MSG: u8 = 1;
    pub const EVENT: u8 = 2;
    pub const FIELDS_MESSAGE: u8 = 3;
    /// `err.message` 4, `error.message` 5, `exception.message` 6.
    pub const NESTED_MESSAGE: u8 = 4;
    /// `err` 7 / `error` 8 as a plain string: the error's text (zap, slog).
    pub const NESTED_STRING_MESSAGE: u8 = 7;

    pub const SEVERITY: u8 = 1;
    pub const LEVELNAME: u8 = 2;
    pub const LEVELNO: u8 = 3;

    /// `err.type` 1, `err.name` 2, `error.type` 3, `error.name` 4, `exception.type` 5, …
    pub const NESTED_NAME: u8 = 1;
    /// structlog `dict_tracebacks`: `exc_type` of the raised exception.
    pub const TRACEBACK_NAME: u8 = 7;

    /// `err.stack` 1, `error.stack` 2, `exception.stack` 3 (also `stack_trace`, `stacktrace`).
    pub const NESTED_STACK: u8 = 1;
    pub const STACK_TRACE: u8 = 4;
    pub const STACKTRACE: u8 = 5;
    pub const EXC_INFO: u8 = 6;
    /// structlog: `exception` as a string, or as `dict_tracebacks` frames.
    pub const EXCEPTION_TEXT: u8 = 7;

    /// `err.code` 1, `error.code` 2, `exception.code` 3.
    pub const NESTED_CODE: u8 = 1;

    pub const TIMESTAMP: u8 = 1;
    pub const TIME: u8 = 2;
    pub const AT_TIMESTAMP: u8 = 3;
    pub const ASCTIME: u8 = 4;

    /// pino/bunyan's logger `name` (when `level` is numeric).
    pub const LOGGER_NAME_SERVICE: u8 = 1;
}

/// What a top-level key may mean.
pub(super) fn field(key: &str) -> Field {
    use Field::*;
    match key {
        "message" => Message,
        "level" => Level,
        "name" => Name,
        "stack" => Stack,
        "code" => Code,
        "service" => Service,
        "ts" => Ts,
        "context" => Context,
        "tags" => Tags,
        "fingerprint" => Fingerprint,
        "ack" => Ack,
        "msg" => MessageAlias(rank::MSG),
        "event" => MessageAlias(rank::EVENT),
        "severity" => LevelAlias(LevelKey::Severity),
        "levelname" => LevelAlias(LevelKey::Levelname),
        "levelno" => LevelAlias(LevelKey::Levelno),
        "stack_trace" => StackAlias(rank::STACK_TRACE),
        "stacktrace" => StackAlias(rank::STACKTRACE),
        "exc_info" => StackAlias(rank::EXC_INFO),
        "timestamp" => TsAlias(rank::TIMESTAMP),
        "time" => TsAlias(rank::TIME),
        "@timestamp" => TsAlias(rank::AT_TIMESTAMP),
        "asctime" => TsAlias(rank::ASCTIME),
        "err" => Nested(Family::Err),
        "error" => Nested(Family::Error),
        "exception" => Nested(Family::Exception),
        "fields" => Nested(Family::Fields),
        _ => Other,
    }
}

/// A member of an error object that fills a record field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lift {
    Message(u8),
    Name(u8),
    Stack(u8),
    Code(u8),
}

/// What a member of a nested object fills, with its rank.
pub(super) fn member(family: Family, key: &str) -> Option<Lift> {
    let f = match family {
        Family::Err => 0,
        Family::Error => 1,
        Family::Exception => 2,
        Family::Fields => {
            return (key == "message").then_some(Lift::Message(rank::FIELDS_MESSAGE));
        }
    };
    Some(match key {
        "message" => Lift::Message(rank::NESTED_MESSAGE + f),
        "type" => Lift::Name(rank::NESTED_NAME + 2 * f),
        "name" => Lift::Name(rank::NESTED_NAME + 2 * f + 1),
        "stack" | "stack_trace" | "stacktrace" => Lift::Stack(rank::NESTED_STACK + f),
        "code" => Lift::Code(rank::NESTED_CODE + f),
        _ => return None,
    })
}

/// Longest error name taken from a stack's header line.
const MAX_NAME_BYTES: usize = 128;

/// The error name in a stack's header, when the event has none: `TypeError: …` (V8),
/// `java.lang.IllegalStateException: …` (JVM), or the last line of a Python traceback
/// (`ValueError: …`). A header without `: message` counts only when the next line is an
/// indented `at …` frame, so a Go or Rust stack whose first line is a function is not misread.
/// `stack` is the escaped body of the JSON string; the name is a slice of it.
pub(super) fn name_from_stack(stack: &str) -> Option<&str> {
    const PY_HEADER: &str = "Traceback (most recent call last):";
    let mut lines = EscapedLines { rest: stack };
    let first = lines.next()?;
    if first == PY_HEADER {
        let last = EscapedLines { rest: stack }
            .filter(|l| !l.trim().is_empty())
            .last()?;
        if last.starts_with([' ', '\t']) {
            return None;
        }
        return header_name(last, true);
    }
    let named = header_name(first, false);
    if named.is_some() {
        return named;
    }
    let name = header_name(first, true)?;
    let next = lines.next()?;
    let indented = next.starts_with([' ', '\t']) || next.starts_with("\\t");
    let frame = next
        .trim_start_matches([' ', '\t'])
        .trim_start_matches("\\t");
    (indented && frame.starts_with("at ")).then_some(name)
}

/// `Ident(.Ident)*` followed by `: ` (or the end of the line when `bare` is allowed).
fn header_name(line: &str, bare: bool) -> Option<&str> {
    let b = line.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.');
    let end = b.iter().position(|&c| !ident(c)).unwrap_or(b.len());
    if end == 0 || end > MAX_NAME_BYTES || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return None;
    }
    if b[end - 1] == b'.' {
        return None;
    }
    let ok = match &b[end..] {
        [] => bare,
        [b':', b' ', ..] | [b':'] => true,
        _ => false,
    };
    ok.then(|| &line[..end])
}

/// Lines of an escaped JSON string body: split at `\n` escapes (with an optional `\r` escape
/// before) and raw newlines.
struct EscapedLines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for EscapedLines<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\n' => {
                    let line = &self.rest[..i];
                    self.rest = &self.rest[i + 1..];
                    return Some(line);
                }
                b'\\' if i + 1 < b.len() => {
                    if b[i + 1] == b'n' {
                        let mut line = &self.rest[..i];
                        line = line.strip_suffix("\\r").unwrap_or(line);
                        self.rest = &self.rest[i + 2..];
                        return Some(line);
                    }
                    i += 2;
                }
                _ => i += 1,
            }
        }
        let line = self.rest;
        self.rest = "";
        Some(line)
    }
}

/// Latest time accepted: 9999-12-31T23:59:59Z, so the record's RFC 3339 stays valid.
const MAX_UNIX_NANOS: i128 = 253_402_300_799_000_000_000;

/// A numeric time, as written in the line: its magnitude says the unit. Below 10^11 it is
/// seconds (zap's `ts`, a float; 10^11 s is the year 5138), below 10^14 milliseconds (pino's
/// `time`, the native `ts`), below 10^17 microseconds, else nanoseconds. Plain decimals are
/// converted exactly; other forms (exponents) through `f64`. `None` when negative, not a
/// number, or after the year 9999.
pub(super) fn epoch_number(raw: &str) -> Option<i128> {
    let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let plain = !int.is_empty()
        && int.len() <= 20
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    let ns = if plain {
        let whole: i128 = int.parse().ok()?;
        let scale: i128 = match whole {
            w if w < 100_000_000_000 => 1_000_000_000,
            w if w < 100_000_000_000_000 => 1_000_000,
            w if w < 100_000_000_000_000_000 => 1_000,
            _ => 1,
        };
        // The fraction's digits down to nanoseconds.
        let mut part = 0i128;
        let mut unit = scale;
        for d in frac.bytes() {
            unit /= 10;
            if unit == 0 {
                break;
            }
            part += i128::from(d - b'0') * unit;
        }
        whole * scale + part
    } else {
        let v: f64 = raw.parse().ok()?;
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        let ns = if v < 1e11 {
            v * 1e9
        } else if v < 1e14 {
            v * 1e6
        } else if v < 1e17 {
            v * 1e3
        } else {
            v
        };
        ns as i128
    };
    (ns <= MAX_UNIX_NANOS).then_some(ns)
}

/// Google Cloud's object form of a time (protobuf `Timestamp` as JSON):
/// `{"seconds": 1764345943, "nanos": 123000000}`, `seconds` a number or a string of digits,
/// `nanos` (optional) 0–999,999,999. `None` for anything else, or after the year 9999.
pub(super) fn seconds_nanos(raw: &str) -> Option<i128> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Int<'a> {
        N(u64),
        S(&'a str),
    }
    #[derive(serde::Deserialize)]
    struct SecondsNanos<'a> {
        #[serde(borrow)]
        seconds: Int<'a>,
        #[serde(default)]
        nanos: u32,
    }
    let t: SecondsNanos<'_> = serde_json::from_str(raw).ok()?;
    let seconds: i128 = match t.seconds {
        Int::N(n) => n.into(),
        Int::S(s) if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()?
        }
        Int::S(_) => return None,
    };
    if t.nanos >= 1_000_000_000 {
        return None;
    }
    let ns = seconds * 1_000_000_000 + i128::from(t.nanos);
    (ns <= MAX_UNIX_NANOS).then_some(ns)
}

/// Longest time string the lenient reading is tried on.
const MAX_TIME_TEXT: usize = 48;

/// An RFC 3339 time, or the near-misses loggers write: a space instead of `T`, a comma before
/// the fraction (`2026-11-28 16:49:03,123+01:00`), an offset without colon (`+0100`, Java's
/// and zap's ISO 8601) or hours only (`+01`). A time without an offset is not a point in time:
/// `None`.
pub(super) fn time_text(s: &str) -> Option<i128> {
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp_nanos())
    };
    if let Some(t) = parse(s) {
        return Some(t);
    }
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > MAX_TIME_TEXT {
        return None;
    }
    let mut buf = [0u8; MAX_TIME_TEXT + 3];
    let mut n = b.len();
    buf[..n].copy_from_slice(b);
    if buf[10] == b' ' {
        buf[10] = b'T';
    }
    if n > 19 && buf[19] == b',' {
        buf[19] = b'.';
    }
    let tail = &buf[..n];
    let sign_at = |k: usize| n > k && matches!(tail[n - k], b'+' | b'-');
    if sign_at(5) && tail[n - 4..].iter().all(u8::is_ascii_digit) {
        // ±HHMM → ±HH:MM
        buf[n] = buf[n - 1];
        buf[n - 1] = buf[n - 2];
        buf[n - 2] = b':';
        n += 1;
    } else if sign_at(3) && tail[n - 2..].iter().all(u8::is_ascii_digit) {
        buf[n..n + 3].copy_from_slice(b":00");
        n += 3;
    }
    parse(std::str::from_utf8(&buf[..n]).ok()?)
}

/// A Python traceback rebuilt from structlog's `dict_tracebacks` output.
pub(super) struct Traceback {
    /// As Python prints it (causes first).
    pub text: String,
    /// `exc_type` of the raised exception.
    pub name: Option<String>,
}

/// Most chained exceptions and frames per exception read from a `dict_tracebacks` list.
const MAX_TRACEBACK_PARTS: usize = 64;

/// Rebuilds the Python traceback text from structlog's `dict_tracebacks` list (raised exception
/// first, then its causes; frames outermost first), so the stack can be fingerprinted like a
/// formatted one. Only this rare shape pays for a second parse of its own (small) value.
pub(super) fn python_traceback(json: &str) -> Option<Traceback> {
    use std::fmt::Write;
    #[derive(serde::Deserialize)]
    struct Stack {
        exc_type: String,
        #[serde(default)]
        exc_value: String,
        #[serde(default)]
        is_cause: bool,
        #[serde(default)]
        frames: Vec<Frame>,
    }
    #[derive(serde::Deserialize)]
    struct Frame {
        #[serde(default)]
        filename: String,
        #[serde(default)]
        lineno: u64,
        #[serde(default)]
        name: String,
    }
    let stacks: Vec<Stack> = serde_json::from_str(json).ok()?;
    let first = stacks.first()?;
    let name = Some(first.exc_type.clone()).filter(|n| !n.is_empty());
    let mut text = String::new();
    let chain: Vec<&Stack> = stacks.iter().take(MAX_TRACEBACK_PARTS).collect();
    for (i, st) in chain.iter().rev().enumerate() {
        if i > 0 {
            // `st` was raised while handling the previous one (or because of it).
            let prev_was_cause = chain[chain.len() - i].is_cause;
            text.push_str(if prev_was_cause {
                "\nThe above exception was the direct cause of the following exception:\n\n"
            } else {
                "\nDuring handling of the above exception, another exception occurred:\n\n"
            });
        }
        text.push_str("Traceback (most recent call last):\n");
        for f in st.frames.iter().take(MAX_TRACEBACK_PARTS) {
            let _ = writeln!(
                text,
                "  File \"{}\", line {}, in {}",
                f.filename, f.lineno, f.name
            );
        }
        if st.exc_value.is_empty() {
            let _ = writeln!(text, "{}", st.exc_type);
        } else {
            let _ = writeln!(text, "{}: {}", st.exc_type, st.exc_value);
        }
    }
    Some(Traceback { text, name })
}

#[cfg(test)]
mod tests {
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
            serde_json::from_str::<serde_json::Value>(v)
                .unwrap_or_else(|e| panic!("{k}: {v}: {e}"));
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
        let e = parse(r#"{"level":60,"msg":"m","err":{"type":"E","message":"m","stack":"E: m","errno":-111}}"#).unwrap();
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
                stack_starts: Some(
                    r#"Traceback (most recent call last):\n  File \"/srv/app/pay.py\""#,
                ),
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
        let e = parse(r#"{"err":{"message":"e"},"fields":{"message":"f"},"event":"v","msg":"m"}"#)
            .unwrap();
        assert_eq!(e.message, "m");
        let e = parse(r#"{"err":{"message":"e"},"fields":{"message":"f"},"event":"v"}"#).unwrap();
        assert_eq!(e.message, "v");
        let e = parse(r#"{"err":{"message":"e"},"fields":{"message":"f"}}"#).unwrap();
        assert_eq!(e.message, "f");
        let e = parse(r#"{"error":{"message":"x"},"err":{"message":"e"}}"#).unwrap();
        assert_eq!(e.message, "e");
        // err.type beats err.name beats error.type
        let e =
            parse(r#"{"message":"m","error":{"type":"C"},"err":{"name":"B","type":"A"}}"#).unwrap();
        assert_eq!(e.name.as_deref(), Some("A"));
        // an alias with a value of the wrong type is just extra
        let e =
            parse(r#"{"message":"m","msg":5,"severity":"loud","time":"never","stack_trace":{}}"#)
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
        let e =
            parse(r#"{"message":"m","err":null,"error":[1,{"a":2}],"exception":true}"#).unwrap();
        let vals: Vec<&str> = e.extra.iter().map(|(_, v)| v.as_ref()).collect();
        assert_eq!(vals, ["null", r#"[1,{"a":2}]"#, "true"]);
    }
}
