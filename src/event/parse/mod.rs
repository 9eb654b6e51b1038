//! Parsing and validation of one client line (PROTOCOL.md, "An event"), including the JSON of
//! popular loggers ([`formats`], docs/formats.md).
//!
//! The line is parsed once, borrowing from the input: string fields without escapes are slices
//! of the line, `stack`, `context`, `tags` and unknown fields stay raw JSON text and are copied
//! through to the log without being re-serialized. Errors are a small `Copy` value; the detail
//! text is produced only when a reply is written.
//!
//! Here: [`parse`], its result [`RawEvent`] and its errors. The one pass over the object is
//! `visitor`; `fields` decodes and checks single values; [`formats`] says what a key may mean;
//! `candidates` ranks the values that may fill a record field and keeps the rest for `extra`.

mod candidates;
mod fields;
pub mod formats;
mod generic;
pub mod otlp;
mod visitor;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer};

use super::level::Level;
use crate::protocol::RejectCode;
use visitor::{EventVisitor, Fields};

/// Deepest JSON nesting accepted in a line (objects/arrays inside `context`, `tags`, `extra`).
/// serde_json's own recursion limit is 128; we reject earlier with a specific error.
pub const MAX_DEPTH: usize = 64;

/// Most parts in a client-supplied `fingerprint` array.
pub const MAX_FINGERPRINT_PARTS: usize = 16;

/// What a field was expected to be, for `wrong_type` details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    String,
    Level,
    Object,
    StringMap,
    Bool,
    Timestamp,
    Fingerprint,
}

impl Expected {
    fn describe(self) -> &'static str {
        match self {
            Expected::String => "a string",
            Expected::Level => {
                "one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", \"fatal\" \
                 (or a logger's name or number for them, see docs/formats.md)"
            }
            Expected::Object => "an object",
            Expected::StringMap => "an object whose values are strings",
            Expected::Bool => "true or false",
            Expected::Timestamp => {
                "an RFC 3339 string or an epoch number (s, ms, µs or ns by magnitude)"
            }
            Expected::Fingerprint => "a non-empty string or an array of 1 to 16 strings",
        }
    }
}

/// Why a line was rejected. `Copy`, no allocation; rendered only for the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// serde_json's message category and position (line 1 is the event line).
    Json {
        column: usize,
        eof: bool,
    },
    NotAnObject,
    TooDeep,
    /// A string or number that JSON's grammar allows but no JSON reader can take back: a lone
    /// UTF-16 surrogate escape (`"\ud800"`) or a number out of the f64 range (`1e400`).
    Unreadable(&'static str),
    Missing(&'static str),
    WrongType(&'static str, Expected),
}

impl ParseError {
    pub fn code(self) -> RejectCode {
        match self {
            ParseError::Json { .. }
            | ParseError::NotAnObject
            | ParseError::TooDeep
            | ParseError::Unreadable(_) => RejectCode::InvalidJson,
            ParseError::Missing(_) => RejectCode::MissingField,
            ParseError::WrongType(..) => RejectCode::WrongType,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Json { column, eof: true } => {
                write!(f, "unexpected end of line at column {column}")
            }
            ParseError::Json { column, eof: false } => {
                write!(f, "syntax error at column {column}")
            }
            ParseError::NotAnObject => f.write_str("an event must be a JSON object"),
            ParseError::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH} levels"),
            ParseError::Unreadable(field) => write!(
                f,
                "field `{field}` holds a lone surrogate escape or an out-of-range number"
            ),
            ParseError::Missing(field) => write!(f, "field `{field}` is required"),
            ParseError::WrongType(field, expected) => {
                write!(f, "field `{field}` must be {}", expected.describe())
            }
        }
    }
}

/// Client-side time of the error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timestamp {
    /// Unix time in nanoseconds (UTC).
    UnixNanos(i128),
}

/// A parsed, validated event, borrowing from the line.
#[derive(Debug, Default)]
pub struct RawEvent<'a> {
    pub message: Cow<'a, str>,
    pub level: Level,
    pub name: Option<Cow<'a, str>>,
    /// The error's code (`ECONNREFUSED`, `-111`, `P2002`), as text.
    pub code: Option<Cow<'a, str>>,
    /// The stack as the body of its JSON string literal (still escaped). Owned only when it was
    /// rebuilt (structlog's `exception`).
    pub stack: Option<Cow<'a, str>>,
    pub service: Option<Cow<'a, str>>,
    pub ts: Option<Timestamp>,
    /// Raw JSON object text.
    pub context: Option<&'a str>,
    /// Raw JSON object text (values checked to be strings).
    pub tags: Option<&'a str>,
    pub fingerprint: Vec<Cow<'a, str>>,
    pub ack: bool,
    /// Top-level fields that filled no record field, as JSON text (raw when unchanged).
    pub extra: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// A field was assembled from several parts of the line (a rendered Serilog template, a
    /// Monolog stack): text that is in no single place of the line, so the whole-line
    /// redaction shortcut does not hold for it.
    pub rebuilt: bool,
    /// No logger's keys gave a message: the generic recognizer found the fields by their names
    /// and shapes (docs/formats.md, "Shapes nobody named"). Counted per peer as an unmapped
    /// shape.
    pub generic: bool,
}

/// Parses and validates one line (already known to be UTF-8, without its newline).
pub fn parse(line: &str) -> Result<RawEvent<'_>, ParseError> {
    parse_with(line, &|_| false)
}

/// [`parse`], with the sanitizer's judgement of which property names hold secrets (a Serilog
/// template hole naming one is rendered as `[REDACTED]`).
pub fn parse_with<'a>(
    line: &'a str,
    secret_key: &dyn Fn(&str) -> bool,
) -> Result<RawEvent<'a>, ParseError> {
    let bytes = line.as_bytes();
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    if first.map(|i| bytes[i]) != Some(b'{') {
        // Distinguish "not JSON" from "JSON but not an object" for a clearer reply.
        return Err(match serde_json::from_str::<de::IgnoredAny>(line) {
            Ok(_) => ParseError::NotAnObject,
            Err(e) => json_error(&e),
        });
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let mut out = Fields::default();
    let res = de.deserialize_map(EventVisitor { out: &mut out });
    let res = res.and_then(|()| de.end());
    if let Err(e) = res {
        if let Some(first) = out.error {
            return Err(first);
        }
        return Err(match (e.classify(), out.current) {
            (serde_json::error::Category::Data, Some((field, expected))) => {
                ParseError::WrongType(field, expected)
            }
            _ => json_error(&e),
        });
    }
    let Fields { event, error, .. } = out;
    if let Some(e) = error {
        return Err(e);
    }
    event.resolve(secret_key)
}

/// Most keys named in a shape's key set, and the longest key kept whole.
pub const SHAPE_KEYS: usize = 16;
pub const SHAPE_KEY_BYTES: usize = 32;

/// A line's top-level key set, sorted, for counting shapes no profile maps: at most
/// [`SHAPE_KEYS`] keys of at most [`SHAPE_KEY_BYTES`] bytes, `,`-separated, `…` when cut.
/// Empty when the line is no object.
pub fn shape_keys(line: &str) -> String {
    let Ok(members) = formats::object_members(line) else {
        return String::new();
    };
    let mut keys: Vec<&str> = members
        .iter()
        .map(|(k, _)| crate::json::truncate(k, SHAPE_KEY_BYTES))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let cut = keys.len() > SHAPE_KEYS;
    keys.truncate(SHAPE_KEYS);
    let mut out = keys.join(",");
    if cut {
        out.push_str(",…");
    }
    out
}

fn json_error(e: &serde_json::Error) -> ParseError {
    ParseError::Json {
        column: e.column(),
        eof: e.classify() == serde_json::error::Category::Eof,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_event_defaults() {
        let e = parse(r#"{"message":"boom"}"#).unwrap();
        assert_eq!(e.message, "boom");
        assert_eq!(e.level, Level::Error);
        assert!(!e.ack);
        assert!(matches!(e.message, Cow::Borrowed(_)));
    }

    #[test]
    fn all_fields() {
        let line = r#"{"message":"a\"b","level":"warn","name":"TypeError","stack":"x\n  at y","service":"svc","ts":"2026-11-28T16:49:03.5+01:00","context":{"a":[1,2]},"tags":{"r":"eu"},"fingerprint":["a","b"],"ack":true,"weird":{"k":1}}"#;
        let e = parse(line).unwrap();
        assert_eq!(e.message, "a\"b");
        assert_eq!(e.level, Level::Warn);
        assert_eq!(e.name.as_deref(), Some("TypeError"));
        assert_eq!(e.stack.as_deref(), Some(r"x\n  at y"));
        assert_eq!(e.context, Some(r#"{"a":[1,2]}"#));
        assert_eq!(e.tags, Some(r#"{"r":"eu"}"#));
        assert_eq!(e.fingerprint, vec!["a", "b"]);
        assert!(e.ack);
        assert_eq!(e.extra.len(), 1);
        assert_eq!(e.extra[0].0, "weird");
        assert_eq!(e.extra[0].1, r#"{"k":1}"#);
        let Some(Timestamp::UnixNanos(n)) = e.ts else {
            panic!()
        };
        assert_eq!(n, 1_795_880_943_500_000_000);
    }

    #[test]
    fn epoch_millis_ts() {
        let e = parse(r#"{"message":"m","ts":1764345943500}"#).unwrap();
        assert_eq!(e.ts, Some(Timestamp::UnixNanos(1_764_345_943_500_000_000)));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"level":"error"}"#, RejectCode::MissingField, "message"),
            (r#"{"message":42}"#, RejectCode::WrongType, "message"),
            (
                r#"{"message":"m","level":"loud"}"#,
                RejectCode::WrongType,
                "level",
            ),
            (
                r#"{"message":"m","context":[1]}"#,
                RejectCode::WrongType,
                "context",
            ),
            (
                r#"{"message":"m","tags":{"a":1}}"#,
                RejectCode::WrongType,
                "tags",
            ),
            (
                r#"{"message":"m","ack":"yes"}"#,
                RejectCode::WrongType,
                "ack",
            ),
            (
                r#"{"message":"m","ts":"yesterday"}"#,
                RejectCode::WrongType,
                "ts",
            ),
            (
                r#"{"message":"m","fingerprint":[]}"#,
                RejectCode::WrongType,
                "fingerprint",
            ),
            (
                r#"{"message":"m","stack":[1]}"#,
                RejectCode::WrongType,
                "stack",
            ),
        ];
        for (line, code, field) in cases {
            let err = parse(line).unwrap_err();
            assert_eq!(err.code(), code, "{line}");
            assert!(err.to_string().contains(field), "{line}: {err}");
        }
    }

    #[test]
    fn invalid_json_reports_a_column() {
        let err = parse(r#"{"message":"m" "level":"x"}"#).unwrap_err();
        assert_eq!(err.code(), RejectCode::InvalidJson);
        assert!(err.to_string().contains("column 16"), "{err}");
        assert_eq!(
            parse("not json").unwrap_err().code(),
            RejectCode::InvalidJson
        );
        assert_eq!(parse("[1,2]").unwrap_err(), ParseError::NotAnObject);
        assert!(matches!(
            parse(r#"{"message":"m""#).unwrap_err(),
            ParseError::Json { eof: true, .. }
        ));
        // trailing garbage after the object
        assert_eq!(
            parse(r#"{"message":"m"} x"#).unwrap_err().code(),
            RejectCode::InvalidJson
        );
    }

    #[test]
    fn deep_nesting_is_rejected_not_recursed() {
        let deep = format!(
            r#"{{"message":"m","context":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse(&deep).unwrap_err(), ParseError::TooDeep);
        let ok = format!(
            r#"{{"message":"m","context":{{"a":{}1{}}}}}"#,
            "[".repeat(50),
            "]".repeat(50)
        );
        assert!(parse(&ok).is_ok());
        // brackets inside strings don't count
        let s = format!(r#"{{"message":"{}"}}"#, "[".repeat(500));
        assert!(parse(&s).is_ok());
    }

    #[test]
    fn values_no_json_reader_could_take_back_are_rejected() {
        // A lone surrogate in a decoded string is a JSON syntax error to serde_json.
        let err = parse(r#"{"message":"\ud800"}"#).unwrap_err();
        assert_eq!(err.code(), RejectCode::InvalidJson);
        for line in [
            r#"{"message":"m","stack":"a\udc00b"}"#,
            r#"{"message":"m","context":{"a":"\ud83d"}}"#,
            r#"{"message":"m","context":{"\ud83d":1}}"#,
            r#"{"message":"m","context":{"a":[{"b":["\udc00"]}]}}"#,
            r#"{"message":"m","context":{"n":1e400}}"#,
            r#"{"message":"m","tags":{"a":"\udfff"}}"#,
            r#"{"message":"m","other":[-2.5E+999]}"#,
            r#"{"message":"m","other":[1.8e308]}"#,
        ] {
            let err = parse(line).unwrap_err();
            assert!(matches!(err, ParseError::Unreadable(_)), "{line}: {err:?}");
            assert_eq!(err.code(), RejectCode::InvalidJson);
        }
        // valid pairs, escapes and exponents are fine, also inside strings
        let ok =
            r#"{"message":"m","stack":"\ud83d\ude00 \u00e9","context":{"n":1e300,"s":"1e999"}}"#;
        assert!(parse(ok).is_ok());
        let long = format!(r#"{{"message":"m","context":{{"n":{}}}}}"#, "9".repeat(400));
        assert!(matches!(
            parse(&long),
            Err(ParseError::Unreadable("context"))
        ));
        let long_ok = format!(r#"{{"message":"m","context":{{"n":{}}}}}"#, "9".repeat(300));
        assert!(parse(&long_ok).is_ok());
    }

    #[test]
    fn a_type_error_is_reported_even_when_message_is_missing() {
        let err = parse(r#"{"level":7}"#).unwrap_err();
        assert_eq!(err, ParseError::WrongType("level", Expected::Level));
    }
}
