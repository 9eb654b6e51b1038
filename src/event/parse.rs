//! Parsing and validation of one client line (PROTOCOL.md, "An event").
//!
//! The line is parsed once, borrowing from the input: string fields without escapes are slices
//! of the line, `stack`, `context`, `tags` and unknown fields stay raw JSON text and are copied
//! through to the log without being re-serialized. Errors are a small `Copy` value; the detail
//! text is produced only when a reply is written.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::level::Level;

/// Deepest JSON nesting accepted in a line (objects/arrays inside `context`, `tags`, `extra`).
/// serde_json's own recursion limit is 128; we reject earlier with a specific error.
pub const MAX_DEPTH: usize = 64;

/// Most parts in a client-supplied `fingerprint` array.
pub const MAX_FINGERPRINT_PARTS: usize = 16;

/// Reply codes of PROTOCOL.md, plus `read_timeout` for a line not completed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    InvalidJson,
    InvalidUtf8,
    LineTooLong,
    MissingField,
    WrongType,
    Overloaded,
    ShuttingDown,
    ReadTimeout,
}

impl RejectCode {
    pub const ALL: [RejectCode; 8] = [
        RejectCode::InvalidJson,
        RejectCode::InvalidUtf8,
        RejectCode::LineTooLong,
        RejectCode::MissingField,
        RejectCode::WrongType,
        RejectCode::Overloaded,
        RejectCode::ShuttingDown,
        RejectCode::ReadTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::InvalidJson => "invalid_json",
            RejectCode::InvalidUtf8 => "invalid_utf8",
            RejectCode::LineTooLong => "line_too_long",
            RejectCode::MissingField => "missing_field",
            RejectCode::WrongType => "wrong_type",
            RejectCode::Overloaded => "overloaded",
            RejectCode::ShuttingDown => "shutting_down",
            RejectCode::ReadTimeout => "read_timeout",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

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
                "one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", \"fatal\""
            }
            Expected::Object => "an object",
            Expected::StringMap => "an object whose values are strings",
            Expected::Bool => "true or false",
            Expected::Timestamp => "an RFC 3339 string or epoch milliseconds",
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
    /// The stack as the body of its JSON string literal (still escaped).
    pub stack: Option<&'a str>,
    pub service: Option<Cow<'a, str>>,
    pub ts: Option<Timestamp>,
    /// Raw JSON object text.
    pub context: Option<&'a str>,
    /// Raw JSON object text (values checked to be strings).
    pub tags: Option<&'a str>,
    pub fingerprint: Vec<Cow<'a, str>>,
    pub ack: bool,
    /// Unknown top-level fields, raw.
    pub extra: Vec<(Cow<'a, str>, &'a str)>,
}

/// Parses and validates one line (already known to be UTF-8, without its newline).
pub fn parse(line: &str) -> Result<RawEvent<'_>, ParseError> {
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
    let mut event = event;
    match event.message.take() {
        Some(m) => Ok(RawEvent {
            message: m,
            level: event.level,
            name: event.name,
            stack: event.stack,
            service: event.service,
            ts: event.ts,
            context: event.context,
            tags: event.tags,
            fingerprint: event.fingerprint,
            ack: event.ack,
            extra: event.extra,
        }),
        None => Err(ParseError::Missing("message")),
    }
}

fn json_error(e: &serde_json::Error) -> ParseError {
    ParseError::Json {
        column: e.column(),
        eof: e.classify() == serde_json::error::Category::Eof,
    }
}

/// Nesting of a raw object/array value (itself at depth 2 of the line) exceeds [`MAX_DEPTH`].
/// serde_json skips raw values iteratively (no recursion limit), so the bound is ours. Fast
/// path: a SIMD count of `{`/`[` bytes is an upper bound of the depth; only values with more
/// openers than the limit get the exact, string-aware scan.
fn too_deep(raw: &str) -> bool {
    let limit = MAX_DEPTH - 1;
    let bytes = raw.as_bytes();
    if memchr::memchr2_iter(b'{', b'[', bytes)
        .take(limit + 1)
        .count()
        <= limit
    {
        return false;
    }
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for &b in bytes {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[derive(Default)]
struct Partial<'a> {
    message: Option<Cow<'a, str>>,
    level: Level,
    name: Option<Cow<'a, str>>,
    stack: Option<&'a str>,
    service: Option<Cow<'a, str>>,
    ts: Option<Timestamp>,
    context: Option<&'a str>,
    tags: Option<&'a str>,
    fingerprint: Vec<Cow<'a, str>>,
    ack: bool,
    extra: Vec<(Cow<'a, str>, &'a str)>,
}

#[derive(Default)]
struct Fields<'a> {
    event: Partial<'a>,
    error: Option<ParseError>,
    /// The typed field being decoded, to name it if serde reports a type error.
    current: Option<(&'static str, Expected)>,
}

struct EventVisitor<'o, 'a> {
    out: &'o mut Fields<'a>,
}

/// A map key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for EventVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ev = &mut self.out.event;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            // Plain string fields are decoded in the same pass (borrowed when unescaped). A type
            // error ends the parse; `parse` turns it into `wrong_type` naming `self.out.current`.
            let text_field = match key.as_ref() {
                "message" => Some("message"),
                "name" => Some("name"),
                "service" => Some("service"),
                "level" => Some("level"),
                _ => None,
            };
            if let Some(field) = text_field {
                let expected = if field == "level" {
                    Expected::Level
                } else {
                    Expected::String
                };
                self.out.current = Some((field, expected));
                let value = if field == "message" {
                    Some(map.next_value::<Key<'de>>()?.0)
                } else {
                    map.next_value::<Option<Key<'de>>>()?.map(|k| k.0)
                };
                self.out.current = None;
                let res = match (field, value) {
                    ("message", v) => {
                        ev.message = v;
                        Ok(())
                    }
                    ("level", None) => Ok(()),
                    ("level", Some(l)) => Level::parse(&l)
                        .map(|l| ev.level = l)
                        .ok_or(ParseError::WrongType("level", Expected::Level)),
                    (f, v) => {
                        let v = v.filter(|s| !s.is_empty());
                        if f == "name" {
                            ev.name = v;
                        } else {
                            ev.service = v;
                        }
                        Ok(())
                    }
                };
                if let Err(e) = res {
                    self.out.error.get_or_insert(e);
                }
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            let raw = raw.get();
            if matches!(raw.as_bytes().first(), Some(b'{' | b'[')) && too_deep(raw) {
                self.out.error.get_or_insert(ParseError::TooDeep);
                continue;
            }
            // Later errors don't overwrite the first one; keep consuming to report JSON errors
            // that come after a type error as what they are.
            let res = match key.as_ref() {
                "stack" => {
                    if raw == "null" {
                        Ok(())
                    } else if raw.starts_with('"') {
                        check_readable(raw, "stack", false)
                            .map(|()| ev.stack = Some(&raw[1..raw.len() - 1]))
                    } else {
                        Err(ParseError::WrongType("stack", Expected::String))
                    }
                }
                "ts" => timestamp(raw).map(|t| ev.ts = t),
                "context" => object(raw, "context")
                    .and_then(|o| check_readable(raw, "context", true).map(|()| ev.context = o)),
                "tags" => {
                    tags(raw).and_then(|o| check_readable(raw, "tags", false).map(|()| ev.tags = o))
                }
                "fingerprint" => fingerprint(raw).map(|f| ev.fingerprint = f),
                "ack" => match raw {
                    "true" => {
                        ev.ack = true;
                        Ok(())
                    }
                    "false" | "null" => Ok(()),
                    _ => Err(ParseError::WrongType("ack", Expected::Bool)),
                },
                _ => check_readable(raw, "extra", true).map(|()| ev.extra.push((key, raw))),
            };
            if let Err(e) = res {
                self.out.error.get_or_insert(e);
            }
        }
        Ok(())
    }
}

/// A JSON string literal's value: borrowed when it has no escapes.
fn unquote(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('"') {
        return None;
    }
    let body = &raw[1..raw.len() - 1];
    if memchr::memchr(b'\\', body.as_bytes()).is_none() {
        Some(Cow::Borrowed(body))
    } else {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    }
}

/// Raw text is copied into the log as is, so it must be readable by any JSON reader. serde_json's
/// raw capture accepts lone surrogate escapes and numbers beyond the f64 range (`1e400`, or an
/// integer of more than 308 digits); catch them here. Cheap prefilters decide whether the exact
/// check (a full parse) is needed: a `\u` escape, a digit followed by an exponent of three or more
/// digits, or a run of more than 308 digits. Text inside strings can trip them (a hex id like
/// `"1e123abc"`), which costs a parse, never a wrong answer.
fn check_readable(raw: &str, field: &'static str, numbers: bool) -> Result<(), ParseError> {
    let b = raw.as_bytes();
    let suspicious = memchr::memmem::find(b, b"\\u").is_some()
        || (numbers && (has_big_exponent(b) || has_long_digit_run(b)));
    if !suspicious {
        return Ok(());
    }
    serde_json::from_str::<serde_json::Value>(raw)
        .map(|_| ())
        .map_err(|_| ParseError::Unreadable(field))
}

/// Most digits a JSON number can have before its value leaves the f64 range (1e308).
const MAX_F64_DIGITS: usize = 308;

/// `<digit or .>[eE][+-]?<3 digits>`: the only exponents that can overflow an f64.
fn has_big_exponent(b: &[u8]) -> bool {
    memchr::memchr2_iter(b'e', b'E', b).any(|i| {
        if i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
            return false;
        }
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        b.len() >= j + 3 && b[j..j + 3].iter().all(u8::is_ascii_digit)
    })
}

fn has_long_digit_run(b: &[u8]) -> bool {
    if b.len() <= MAX_F64_DIGITS {
        return false;
    }
    let mut run = 0usize;
    for &c in b {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run > MAX_F64_DIGITS {
            return true;
        }
    }
    false
}

fn object<'a>(raw: &'a str, field: &'static str) -> Result<Option<&'a str>, ParseError> {
    match raw.as_bytes().first() {
        Some(b'{') => Ok(Some(raw)),
        _ if raw == "null" => Ok(None),
        _ => Err(ParseError::WrongType(field, Expected::Object)),
    }
}

fn tags(raw: &str) -> Result<Option<&str>, ParseError> {
    let Some(obj) = object(raw, "tags")? else {
        return Ok(None);
    };
    // Values must be strings; check without building a map.
    struct StringsOnly;
    impl<'de> Deserialize<'de> for StringsOnly {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = StringsOnly;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object of strings")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StringsOnly, A::Error> {
                    while m.next_key::<de::IgnoredAny>()?.is_some() {
                        let v: &'de RawValue = m.next_value()?;
                        if !v.get().starts_with('"') {
                            return Err(de::Error::custom("not a string"));
                        }
                    }
                    Ok(StringsOnly)
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<StringsOnly>(obj)
        .map(|_| Some(obj))
        .map_err(|_| ParseError::WrongType("tags", Expected::StringMap))
}

fn fingerprint(raw: &str) -> Result<Vec<Cow<'_, str>>, ParseError> {
    const ERR: ParseError = ParseError::WrongType("fingerprint", Expected::Fingerprint);
    if raw == "null" {
        return Ok(Vec::new());
    }
    if raw.starts_with('"') {
        let s = unquote(raw).ok_or(ERR)?;
        return if s.is_empty() { Err(ERR) } else { Ok(vec![s]) };
    }
    if !raw.starts_with('[') {
        return Err(ERR);
    }
    let parts: Vec<&RawValue> = serde_json::from_str(raw).map_err(|_| ERR)?;
    if parts.is_empty() || parts.len() > MAX_FINGERPRINT_PARTS {
        return Err(ERR);
    }
    parts
        .into_iter()
        .map(|p| unquote(p.get()).ok_or(ERR))
        .collect()
}

fn timestamp(raw: &str) -> Result<Option<Timestamp>, ParseError> {
    const ERR: ParseError = ParseError::WrongType("ts", Expected::Timestamp);
    if raw == "null" {
        return Ok(None);
    }
    if let Some(s) = unquote(raw) {
        let t = time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| ERR)?;
        return Ok(Some(Timestamp::UnixNanos(t.unix_timestamp_nanos())));
    }
    let ms: f64 = raw.parse().map_err(|_| ERR)?;
    // Years 1970..=9999 only: keeps the formatted value a valid RFC 3339 date.
    if !(0.0..=253_402_300_799_000.0).contains(&ms) {
        return Err(ERR);
    }
    Ok(Some(Timestamp::UnixNanos((ms * 1e6) as i128)))
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
        assert_eq!(e.stack, Some(r"x\n  at y"));
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
                r#"{"message":"m","stack":["a"]}"#,
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
