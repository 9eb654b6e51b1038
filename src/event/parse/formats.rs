//! Recognizing what popular loggers write, without configuration (docs/formats.md).
//!
//! The parser ([`super`]) reads each top-level key once and asks `field` what it may
//! mean. A key that can fill a record field (message, level, name, stack, code, ts, service)
//! becomes a *candidate* with a rank; the lowest rank wins when the line ends, so the order of
//! keys in the line never matters. Keys of the native protocol (PROTOCOL.md) rank first, so a
//! native event is read exactly as before. Candidates that lose, and every key that maps to
//! nothing, stay under `extra`.
//!
//! Error objects (`err`, `error`, `exception`) and tracing's `fields` are read member by member
//! in the same pass; the members that win a record field are lifted out, the others stay in
//! `extra.<key>`.

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
#[path = "formats_tests.rs"]
mod tests;
