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
    /// Serilog's message template (`@mt`): the message once its `{Prop}` holes are rendered.
    Template,
    /// A dotted member of an error object written flat (ECS `error.type`, `error.message`,
    /// `error.stack_trace`, `error.code`).
    Dotted(Lift),
    /// The service as a string (ECS `service.name` written flat).
    ServiceAlias(u8),
    /// Monolog's `channel`: says Monolog wrote the line (kept under `extra`).
    MonologChannel,
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
    /// Serilog CLEF `@l` (absent means Information).
    Clef,
    /// Microsoft.Extensions.Logging's JSON console formatter (`LogLevel`).
    Mel,
    /// Elastic Common Schema `log.level` (also log4j2's EcsLayout).
    Ecs,
    /// Monolog's `level_name`: wins over its numeric `level` (100–600, not pino's scale).
    Monolog,
    /// OpenTelemetry `severityText` (`ERROR2` counts as `ERROR`).
    OtelText,
    /// OpenTelemetry `severityNumber` (1–24).
    OtelNumber,
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
    /// ECS written nested: `log: {level, logger}`.
    Log,
    /// log4j2 `JsonLayout`: `thrown: {name, message, extendedStackTrace}`.
    Thrown,
    /// OpenTelemetry `body`: a string, or an AnyValue (`{"stringValue": …}`).
    Body,
    /// OpenTelemetry `attributes`: an object (the SDKs' JSON), or OTLP's list of
    /// `{key, value: AnyValue}`; `exception.*` and `service.name` are lifted.
    Attributes,
    /// OpenTelemetry `resource`: `service.name` from its `attributes`.
    Resource,
    /// `service` written as an object (ECS nested: `service: {name, version}`).
    Service,
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
    /// Serilog: `@m` (rendered) 10, `@mt` (template) 11.
    pub const CLEF_M: u8 = 10;
    pub const CLEF_MT: u8 = 11;
    /// Microsoft.Extensions.Logging JSON console.
    pub const MEL_MESSAGE: u8 = 12;
    /// GELF.
    pub const SHORT_MESSAGE: u8 = 13;
    /// OpenTelemetry `body`.
    pub const BODY: u8 = 14;
    /// log4j2 `thrown.message`, LogstashJsonEventLayoutV1 `exception.exception_message`.
    pub const THROWN_MESSAGE: u8 = 15;
    /// OpenTelemetry `exception.message` attribute.
    pub const ATTR_EXCEPTION_MESSAGE: u8 = 16;

    pub const SEVERITY: u8 = 1;
    pub const LEVELNAME: u8 = 2;
    pub const LEVELNO: u8 = 3;
    pub const CLEF_L: u8 = 4;
    pub const MEL_LEVEL: u8 = 5;
    pub const ECS_LEVEL: u8 = 6;
    pub const MONOLOG_LEVEL: u8 = 7;
    /// OpenTelemetry: the number is the data model's level; the text is free-form.
    pub const OTEL_NUMBER: u8 = 8;
    pub const OTEL_TEXT: u8 = 9;

    /// `err.type` 1, `err.name` 2, `error.type` 3, `error.name` 4, `exception.type` 5, …
    pub const NESTED_NAME: u8 = 1;
    /// structlog `dict_tracebacks`: `exc_type` of the raised exception.
    pub const TRACEBACK_NAME: u8 = 7;
    /// log4j2 `thrown.name`, LogstashJsonEventLayoutV1 `exception.exception_class`.
    pub const THROWN_NAME: u8 = 8;
    /// OpenTelemetry `exception.type` attribute.
    pub const ATTR_EXCEPTION_TYPE: u8 = 9;
    /// Monolog `context.exception.class`.
    pub const MONOLOG_CLASS: u8 = 10;

    /// `err.stack` 1, `error.stack` 2, `exception.stack` 3 (also `stack_trace`, `stacktrace`).
    pub const NESTED_STACK: u8 = 1;
    pub const STACK_TRACE: u8 = 4;
    pub const STACKTRACE: u8 = 5;
    pub const EXC_INFO: u8 = 6;
    /// structlog: `exception` as a string, or as `dict_tracebacks` frames.
    pub const EXCEPTION_TEXT: u8 = 7;
    /// Serilog `@x`, .NET `Exception`, GELF `full_message`, log4j2 `thrown.extendedStackTrace`,
    /// OTel `exception.stacktrace`, Monolog `context.exception`.
    pub const CLEF_X: u8 = 8;
    pub const MEL_EXCEPTION: u8 = 9;
    pub const FULL_MESSAGE: u8 = 10;
    pub const THROWN_STACK: u8 = 11;
    pub const ATTR_EXCEPTION_STACK: u8 = 12;
    pub const MONOLOG_TRACE: u8 = 13;

    /// `err.code` 1, `error.code` 2, `exception.code` 3.
    pub const NESTED_CODE: u8 = 1;

    pub const TIMESTAMP: u8 = 1;
    pub const TIME: u8 = 2;
    pub const AT_TIMESTAMP: u8 = 3;
    pub const ASCTIME: u8 = 4;
    /// Serilog `@t`, .NET `Timestamp`, Monolog `datetime`, OTel `timeUnixNano`, log4j2
    /// `instant` / `timeMillis`.
    pub const CLEF_T: u8 = 5;
    pub const MEL_TIMESTAMP: u8 = 6;
    pub const DATETIME: u8 = 7;
    pub const TIME_UNIX_NANO: u8 = 8;
    pub const INSTANT: u8 = 9;
    pub const TIME_MILLIS: u8 = 10;
    pub const OBSERVED_TIME: u8 = 11;

    /// pino/bunyan's logger `name` (when `level` is numeric).
    pub const LOGGER_NAME_SERVICE: u8 = 1;
    /// ECS `service.name` (flat or nested) 2, OTel `service.name` (resource or attribute) 3.
    pub const ECS_SERVICE: u8 = 2;
    pub const OTEL_SERVICE: u8 = 3;
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
        // Serilog CLEF
        "@m" => MessageAlias(rank::CLEF_M),
        "@mt" => Template,
        "@l" => LevelAlias(LevelKey::Clef),
        "@t" => TsAlias(rank::CLEF_T),
        "@x" => StackAlias(rank::CLEF_X),
        // Microsoft.Extensions.Logging JSON console
        "Message" => MessageAlias(rank::MEL_MESSAGE),
        "LogLevel" => LevelAlias(LevelKey::Mel),
        "Exception" => StackAlias(rank::MEL_EXCEPTION),
        "Timestamp" => TsAlias(rank::MEL_TIMESTAMP),
        // Monolog
        "level_name" => LevelAlias(LevelKey::Monolog),
        "channel" => MonologChannel,
        "datetime" => TsAlias(rank::DATETIME),
        // Elastic Common Schema, flat (dotted keys)
        "log.level" => LevelAlias(LevelKey::Ecs),
        "error.type" => Dotted(Lift::Name(rank::NESTED_NAME + 2)),
        "error.message" => Dotted(Lift::Message(rank::NESTED_MESSAGE + 1)),
        "error.stack_trace" => Dotted(Lift::Stack(rank::NESTED_STACK + 1)),
        "error.code" => Dotted(Lift::Code(rank::NESTED_CODE + 1)),
        "service.name" => ServiceAlias(rank::ECS_SERVICE),
        "log" => Nested(Family::Log),
        // OpenTelemetry (OTLP/JSON record and the SDKs' JSON)
        "body" => Nested(Family::Body),
        "severityText" | "severity_text" => LevelAlias(LevelKey::OtelText),
        "severityNumber" | "severity_number" => LevelAlias(LevelKey::OtelNumber),
        "attributes" => Nested(Family::Attributes),
        "resource" => Nested(Family::Resource),
        "timeUnixNano" => TsAlias(rank::TIME_UNIX_NANO),
        "observedTimeUnixNano" => TsAlias(rank::OBSERVED_TIME),
        // log4j2 JsonTemplateLayout: JsonLayout, GelfLayout
        "thrown" => Nested(Family::Thrown),
        "instant" => TsAlias(rank::INSTANT),
        "timeMillis" => TsAlias(rank::TIME_MILLIS),
        "short_message" => MessageAlias(rank::SHORT_MESSAGE),
        "full_message" => StackAlias(rank::FULL_MESSAGE),
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
    Level(u8),
    Service(u8),
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
        Family::Log => return (key == "level").then_some(Lift::Level(rank::ECS_LEVEL)),
        Family::Service => return (key == "name").then_some(Lift::Service(rank::ECS_SERVICE)),
        Family::Thrown => {
            return Some(match key {
                "name" => Lift::Name(rank::THROWN_NAME),
                "message" => Lift::Message(rank::THROWN_MESSAGE),
                "extendedStackTrace" | "stackTrace" => Lift::Stack(rank::THROWN_STACK),
                _ => return None,
            })
        }
        Family::Body => {
            return (key == "stringValue").then_some(Lift::Message(rank::BODY));
        }
        Family::Attributes => return attribute(key),
        // Read on its own (`resource_service`).
        Family::Resource => return None,
    };
    if family == Family::Exception {
        // log4j2 LogstashJsonEventLayoutV1
        match key {
            "exception_class" => return Some(Lift::Name(rank::THROWN_NAME)),
            "exception_message" => return Some(Lift::Message(rank::THROWN_MESSAGE)),
            _ => {}
        }
    }
    Some(match key {
        "message" => Lift::Message(rank::NESTED_MESSAGE + f),
        "type" => Lift::Name(rank::NESTED_NAME + 2 * f),
        "name" => Lift::Name(rank::NESTED_NAME + 2 * f + 1),
        "stack" | "stack_trace" | "stacktrace" => Lift::Stack(rank::NESTED_STACK + f),
        "code" => Lift::Code(rank::NESTED_CODE + f),
        _ => return None,
    })
}

/// What an OpenTelemetry attribute fills (semantic conventions).
pub(super) fn attribute(key: &str) -> Option<Lift> {
    Some(match key {
        "exception.type" => Lift::Name(rank::ATTR_EXCEPTION_TYPE),
        "exception.message" => Lift::Message(rank::ATTR_EXCEPTION_MESSAGE),
        "exception.stacktrace" => Lift::Stack(rank::ATTR_EXCEPTION_STACK),
        "service.name" => Lift::Service(rank::OTEL_SERVICE),
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
        // log4j2's `instant`: `{"epochSecond": …, "nanoOfSecond": …}`.
        #[serde(borrow, alias = "epochSecond")]
        seconds: Int<'a>,
        #[serde(default, alias = "nanoOfSecond")]
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

/// Most frames read from a stack written as an array, and most attributes read from an
/// OpenTelemetry list: bounds the cost of a huge value (the rest stays in `extra`).
pub(super) const MAX_FRAMES: usize = 256;

/// A stack written as an array (`json`, raw), as text the fingerprint can read: strings are
/// lines; zerolog's pkgerrors frames (`{func, source, line}`) become Go frames
/// (`func()` then `\tsource:line`); log4j2's (`{class, method, file, line}`) Java frames
/// (`\tat class.method(file:line)`). `None` when an element is anything else.
pub(super) fn frames_text(json: &str) -> Option<String> {
    use std::borrow::Cow;
    use std::fmt::Write;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Elem<'a> {
        #[serde(borrow)]
        Line(Cow<'a, str>),
        #[serde(borrow)]
        Frame(Frame<'a>),
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum LineNo<'a> {
        N(u64),
        #[serde(borrow)]
        S(Cow<'a, str>),
    }
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(default, borrow)]
        func: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        source: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        class: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        method: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        file: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        line: Option<LineNo<'a>>,
    }
    let elems: Vec<&serde_json::value::RawValue> = serde_json::from_str(json).ok()?;
    let mut text = String::new();
    for raw in elems.iter().take(MAX_FRAMES) {
        // A struct would also read from an array (`["a"]`): frames are objects only.
        if !matches!(raw.get().as_bytes().first(), Some(b'{' | b'"')) {
            return None;
        }
        let line = match serde_json::from_str::<Elem<'_>>(raw.get()).ok()? {
            Elem::Line(l) => {
                text.push_str(&l);
                text.push('\n');
                continue;
            }
            Elem::Frame(f) => f,
        };
        let line_no = match &line.line {
            Some(LineNo::N(n)) => n.to_string(),
            Some(LineNo::S(s)) => s.to_string(),
            None => String::new(),
        };
        match (&line.func, &line.source, &line.class, &line.method) {
            (Some(func), source, None, _) => {
                let _ = writeln!(text, "{func}()");
                let _ = writeln!(text, "\t{}:{line_no}", source.as_deref().unwrap_or("?"));
            }
            (_, _, Some(class), method) => {
                let _ = writeln!(
                    text,
                    "\tat {class}.{}({}:{line_no})",
                    method.as_deref().unwrap_or("?"),
                    line.file.as_deref().unwrap_or("Unknown Source")
                );
            }
            _ => return None,
        }
    }
    Some(text)
}

/// OpenTelemetry attributes that fill a record field ([`attribute`]), decoded: the SDKs' JSON
/// (an object of plain values) or OTLP/JSON's list of `{key, value: {stringValue: …}}`.
/// At most [`MAX_FRAMES`] attributes are looked at; anything unreadable gives nothing.
pub(super) fn otel_attributes(json: &str) -> Vec<(Lift, String)> {
    use std::borrow::Cow;
    #[derive(serde::Deserialize)]
    struct Kv<'a> {
        #[serde(borrow)]
        key: Cow<'a, str>,
        #[serde(default)]
        value: Option<AnyValue>,
    }
    #[derive(serde::Deserialize)]
    struct AnyValue {
        #[serde(default, rename = "stringValue")]
        string_value: Option<String>,
    }
    let mut out = Vec::new();
    match json.as_bytes().first() {
        Some(b'[') => {
            let Ok(list) = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(json) else {
                return out;
            };
            for raw in list.iter().take(MAX_FRAMES) {
                let Ok(kv) = serde_json::from_str::<Kv<'_>>(raw.get()) else {
                    continue;
                };
                if let (Some(lift), Some(v)) =
                    (attribute(&kv.key), kv.value.and_then(|v| v.string_value))
                {
                    out.push((lift, v));
                }
            }
        }
        Some(b'{') => {
            let Ok(map) = object_members(json) else {
                return out;
            };
            for (k, v) in map.iter().take(MAX_FRAMES) {
                if let (Some(lift), Some(v)) = (attribute(k), crate::json::unquote(v.get())) {
                    out.push((lift, v.into_owned()));
                }
            }
        }
        _ => {}
    }
    out
}

/// The members of a JSON object, raw, in order.
#[allow(clippy::type_complexity)] // a list of (key, raw value) pairs; a type alias would only rename it
pub(super) fn object_members(
    json: &str,
) -> Result<Vec<(std::borrow::Cow<'_, str>, &serde_json::value::RawValue)>, serde_json::Error> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(std::borrow::Cow<'de, str>, &'de serde_json::value::RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(crate::json::Key(k)) = m.next_key()? {
                out.push((k, m.next_value()?));
            }
            Ok(out)
        }
    }
    serde_json::Deserializer::from_str(json).deserialize_map(V)
}

/// What Monolog's normalizer writes for an exception in `context.exception`.
pub(super) struct MonologException {
    pub class: Option<String>,
    /// Not `0` (PHP's default code).
    pub code: Option<String>,
    /// `Class: message`, then `file` and each `trace` entry as an `at` frame.
    pub stack: String,
}

/// `context.exception` of a Monolog line (`context` raw JSON), when it is an object with a
/// `class`. A second parse of the context, paid only by lines Monolog wrote.
pub(super) fn monolog_exception(context: &str) -> Option<MonologException> {
    use std::borrow::Cow;
    use std::fmt::Write;
    #[derive(serde::Deserialize)]
    struct Ctx<'a> {
        #[serde(borrow)]
        exception: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Exc<'a> {
        #[serde(borrow)]
        class: Cow<'a, str>,
        #[serde(default, borrow)]
        message: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        code: Option<&'a serde_json::value::RawValue>,
        #[serde(default, borrow)]
        file: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        trace: Option<Vec<&'a serde_json::value::RawValue>>,
    }
    let ctx: Ctx<'_> = serde_json::from_str(context).ok()?;
    let exc: Exc<'_> = serde_json::from_str(ctx.exception?.get()).ok()?;
    if exc.class.is_empty() {
        return None;
    }
    let mut stack = String::new();
    match exc.message.as_deref() {
        Some(m) if !m.is_empty() => {
            let _ = writeln!(stack, "{}: {m}", exc.class);
        }
        _ => {
            let _ = writeln!(stack, "{}", exc.class);
        }
    }
    for f in exc.file.iter().map(|f| f.to_string()).chain(
        exc.trace
            .iter()
            .flatten()
            .take(MAX_FRAMES)
            .filter_map(|t| crate::json::unquote(t.get()).map(|t| t.into_owned())),
    ) {
        let _ = writeln!(stack, "    at {f}");
    }
    let code = exc
        .code
        .map(|c| c.get())
        .filter(|c| *c != "0" && *c != "\"0\"" && *c != "\"\"" && *c != "null")
        .map(|c| crate::json::unquote(c).map_or_else(|| c.to_owned(), |s| s.into_owned()));
    Some(MonologException {
        class: Some(exc.class.into_owned()),
        code,
        stack,
    })
}

#[cfg(test)]
#[path = "formats_tests.rs"]
mod tests;
