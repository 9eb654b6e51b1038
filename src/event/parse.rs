//! Parsing and validation of one client line (PROTOCOL.md, "An event"), including the JSON of
//! popular loggers ([`super::formats`], docs/formats.md).
//!
//! The line is parsed once, borrowing from the input: string fields without escapes are slices
//! of the line, `stack`, `context`, `tags` and unknown fields stay raw JSON text and are copied
//! through to the log without being re-serialized. Errors are a small `Copy` value; the detail
//! text is produced only when a reply is written.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::candidates::{ExtraValue, Partial, Src, MAX_LIFTED_MEMBERS};
use super::formats::{self, rank, Family, Field, LevelKey, Lift};
use super::level::{Level, NumericScale};
use crate::json::{escaped, quoted, unquote, Key};
use crate::protocol::RejectCode;

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
    event.resolve()
}

fn json_error(e: &serde_json::Error) -> ParseError {
    ParseError::Json {
        column: e.column(),
        eof: e.classify() == serde_json::error::Category::Eof,
    }
}

/// Nesting of a raw object/array value (itself at depth `at` of the line, the event object being
/// depth 1) exceeds [`MAX_DEPTH`]. serde_json skips raw values iteratively (no recursion limit),
/// so the bound is ours. Fast path: a SIMD count of `{`/`[` bytes is an upper bound of the
/// depth; only values with more openers than the limit get the exact, string-aware scan.
fn too_deep(raw: &str, at: usize) -> bool {
    if !matches!(raw.as_bytes().first(), Some(b'{' | b'[')) {
        return false;
    }
    let limit = MAX_DEPTH + 1 - at;
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
struct Fields<'a> {
    event: Partial<'a>,
    error: Option<ParseError>,
    /// The typed field being decoded, to name it if serde reports a type error.
    current: Option<(&'static str, Expected)>,
}

struct EventVisitor<'o, 'a> {
    out: &'o mut Fields<'a>,
}

/// The value of a [`Field::Nested`] key, read in the same pass: an object's members stay raw;
/// a string is decoded; anything else is kept as JSON text.
enum Nested<'a> {
    Members(Vec<(Cow<'a, str>, &'a str)>),
    Text(Cow<'a, str>),
    Json(Cow<'a, str>),
}

impl<'de> Deserialize<'de> for Nested<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Nested<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Nested<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = m.next_value()?;
                    members.push((k, v.get()));
                }
                Ok(Nested::Members(members))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Nested<'de>, A::Error> {
                let mut text = String::from("[");
                while let Some(v) = s.next_element::<&'de RawValue>()? {
                    if text.len() > 1 {
                        text.push(',');
                    }
                    text.push_str(v.get());
                }
                text.push(']');
                Ok(Nested::Json(Cow::Owned(text)))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Nested<'de>, E> {
                Ok(Nested::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Nested<'de>, E> {
                Ok(Nested::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Nested<'de>, E> {
                Ok(Nested::Text(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Nested<'de>, E> {
                Ok(Nested::Json(Cow::Borrowed(if v {
                    "true"
                } else {
                    "false"
                })))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Nested<'de>, E> {
                Ok(Nested::Json(Cow::Borrowed("null")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Nested<'de>, E> {
                Ok(Nested::Json(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Nested<'de>, E> {
                Ok(Nested::Json(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Nested<'de>, E> {
                // serde_json only yields finite numbers.
                Ok(Nested::Json(Cow::Owned(
                    serde_json::Number::from_f64(v)
                        .map_or_else(|| "null".into(), |n| n.to_string()),
                )))
            }
        }
        d.deserialize_any(V)
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
            let kind = formats::field(&key);
            // Plain string fields are decoded in the same pass (borrowed when unescaped). A type
            // error ends the parse; `parse` turns it into `wrong_type` naming `self.out.current`.
            if matches!(kind, Field::Message | Field::Service) {
                let field = if kind == Field::Message {
                    "message"
                } else {
                    "service"
                };
                self.out.current = Some((field, Expected::String));
                let value = if kind == Field::Message {
                    Some(map.next_value::<Key<'de>>()?.0)
                } else {
                    map.next_value::<Option<Key<'de>>>()?.map(|k| k.0)
                };
                self.out.current = None;
                match (kind, value) {
                    (Field::Message, Some(m)) => ev.message.offer(0, m, Src::Native),
                    (_, Some(s)) if !s.is_empty() => ev.service.offer(0, s, Src::Native),
                    _ => {}
                }
                continue;
            }
            if let Field::Nested(family) = kind {
                self.out.current = None;
                let value: Nested<'de> = map.next_value()?;
                if let Err(e) = nested(ev, key, family, value) {
                    self.out.error.get_or_insert(e);
                }
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            let raw = raw.get();
            if too_deep(raw, 2) {
                self.out.error.get_or_insert(ParseError::TooDeep);
                continue;
            }
            // Later errors don't overwrite the first one; keep consuming to report JSON errors
            // that come after a type error as what they are.
            if let Err(e) = top_level(ev, key, kind, raw) {
                self.out.error.get_or_insert(e);
            }
        }
        Ok(())
    }
}

/// One top-level key (not `message`, `service` or a nested object) with its raw value.
fn top_level<'a>(
    ev: &mut Partial<'a>,
    key: Cow<'a, str>,
    kind: Field,
    raw: &'a str,
) -> Result<(), ParseError> {
    let string_body = |raw: &'a str| raw.strip_prefix('"').and_then(|r| r.strip_suffix('"'));
    match kind {
        Field::Level => {
            if raw == "null" {
                return Ok(());
            }
            const ERR: ParseError = ParseError::WrongType("level", Expected::Level);
            let level = if let Some(s) = unquote(raw) {
                Level::normalize(&s).ok_or(ERR)?
            } else {
                let n: f64 = raw.parse().map_err(|_| ERR)?;
                ev.level_numeric = true;
                Level::from_number(n, NumericScale::Pino).ok_or(ERR)?
            };
            ev.level.offer(0, level, Src::Native);
            Ok(())
        }
        Field::Name => {
            if raw == "null" {
                return Ok(());
            }
            let name = unquote(raw).ok_or(ParseError::WrongType("name", Expected::String))?;
            ev.top_name = Some((name, raw));
            Ok(())
        }
        Field::Stack => match string_body(raw) {
            _ if raw == "null" => Ok(()),
            Some(body) => check_readable(raw, "stack", false)
                .map(|()| ev.stack.offer(0, Cow::Borrowed(body), Src::Native)),
            None => Err(ParseError::WrongType("stack", Expected::String)),
        },
        Field::Ts => timestamp(raw).map(|t| {
            if let Some(t) = t {
                ev.ts.offer(0, t, Src::Native)
            }
        }),
        Field::Context => object(raw, "context")
            .and_then(|o| check_readable(raw, "context", true).map(|()| ev.context = o)),
        Field::Tags => {
            tags(raw).and_then(|o| check_readable(raw, "tags", false).map(|()| ev.tags = o))
        }
        Field::Fingerprint => fingerprint(raw).map(|f| ev.fingerprint = f),
        Field::Ack => match raw {
            "true" => {
                ev.ack = true;
                Ok(())
            }
            "false" | "null" => Ok(()),
            _ => Err(ParseError::WrongType("ack", Expected::Bool)),
        },
        _ => {
            // Everything else is kept for `extra`; a recognized alias also becomes a candidate
            // and leaves `extra` if it wins.
            check_readable(raw, "extra", true)?;
            let i = ev.extra.len();
            match kind {
                Field::Code => {
                    if let Some(c) = code_text(raw) {
                        ev.code.offer(0, c, Src::Extra(i));
                    }
                }
                Field::MessageAlias(rank) => {
                    if let Some(m) = unquote(raw) {
                        ev.message.offer(rank, m, Src::Extra(i));
                    }
                }
                Field::LevelAlias(which) => {
                    let level = match (which, unquote(raw)) {
                        (LevelKey::Levelno, None) => raw
                            .parse()
                            .ok()
                            .and_then(|n| Level::from_number(n, NumericScale::Python)),
                        (LevelKey::Severity, None) => raw
                            .parse()
                            .ok()
                            .and_then(|n| Level::from_number(n, NumericScale::Pino)),
                        (LevelKey::Levelno, Some(_)) | (LevelKey::Levelname, None) => None,
                        (_, Some(s)) => Level::normalize(&s),
                    };
                    if which == LevelKey::Levelname {
                        ev.python_logging = true;
                    }
                    if let Some(l) = level {
                        let rank = match which {
                            LevelKey::Severity => rank::SEVERITY,
                            LevelKey::Levelname => rank::LEVELNAME,
                            LevelKey::Levelno => rank::LEVELNO,
                        };
                        ev.level.offer(rank, l, Src::Extra(i));
                    }
                }
                Field::StackAlias(rank) => {
                    if let Some(body) = string_body(raw).filter(|b| !b.is_empty()) {
                        ev.stack.offer(rank, Cow::Borrowed(body), Src::Extra(i));
                    }
                }
                Field::TsAlias(rank) => {
                    let t = match unquote(raw) {
                        Some(s) => formats::time_text(&s),
                        None if raw.starts_with('{') => formats::seconds_nanos(raw),
                        None => formats::epoch_number(raw),
                    };
                    if let Some(t) = t {
                        ev.ts.offer(rank, Timestamp::UnixNanos(t), Src::Extra(i));
                    }
                }
                _ => {}
            }
            ev.push_extra(key, ExtraValue::Raw(Cow::Borrowed(raw)));
            Ok(())
        }
    }
}

/// A code: a non-empty string, or a number as written.
fn code_text(raw: &str) -> Option<Cow<'_, str>> {
    match raw.as_bytes().first()? {
        b'"' => unquote(raw).filter(|c| !c.is_empty()),
        b'-' | b'0'..=b'9' => Some(Cow::Borrowed(raw)),
        _ => None,
    }
}

/// An error object (`err`, `error`, `exception`) or tracing's `fields`: members that fill a
/// record field become candidates; the object stays in `extra` minus the members that win.
fn nested<'a>(
    ev: &mut Partial<'a>,
    key: Cow<'a, str>,
    family: Family,
    value: Nested<'a>,
) -> Result<(), ParseError> {
    let i = ev.extra.len();
    match value {
        Nested::Members(members) => {
            for (m, (k, raw)) in members.iter().enumerate() {
                if too_deep(raw, 3) {
                    return Err(ParseError::TooDeep);
                }
                check_readable(raw, "extra", true)?;
                if m >= MAX_LIFTED_MEMBERS {
                    continue;
                }
                let src = Src::Member(i, m);
                match formats::member(family, k) {
                    Some(Lift::Message(rank)) => {
                        if let Some(s) = unquote(raw) {
                            ev.message.offer(rank, s, src);
                        }
                    }
                    Some(Lift::Name(rank)) => {
                        if let Some(s) = unquote(raw).filter(|s| !s.is_empty()) {
                            ev.name.offer(rank, s, src);
                        }
                    }
                    Some(Lift::Stack(rank)) if raw.len() > 2 && raw.starts_with('"') => {
                        ev.stack
                            .offer(rank, Cow::Borrowed(&raw[1..raw.len() - 1]), src);
                    }
                    Some(Lift::Code(rank)) => {
                        if let Some(c) = code_text(raw) {
                            ev.code.offer(rank, c, src);
                        }
                    }
                    Some(Lift::Stack(_)) | None => {}
                }
            }
            ev.push_extra(key, ExtraValue::Members(members));
        }
        Nested::Text(text) => {
            let src = Src::Extra(i);
            match family {
                Family::Err | Family::Error if !text.is_empty() => {
                    let rank = rank::NESTED_STRING_MESSAGE + (family == Family::Error) as u8;
                    ev.message.offer(rank, text.clone(), src);
                }
                Family::Exception if !text.is_empty() => {
                    ev.stack
                        .offer(rank::EXCEPTION_TEXT, Cow::Owned(escaped(&text)), src);
                }
                _ => {}
            }
            ev.push_extra(key, ExtraValue::Raw(Cow::Owned(quoted(&text))));
        }
        Nested::Json(json) => {
            if too_deep(&json, 2) {
                return Err(ParseError::TooDeep);
            }
            check_readable(&json, "extra", true)?;
            if family == Family::Exception && json.starts_with('[') {
                if let Some(tb) = formats::python_traceback(&json) {
                    ev.stack.offer(
                        rank::EXCEPTION_TEXT,
                        Cow::Owned(escaped(&tb.text)),
                        Src::Extra(i),
                    );
                    if let Some(n) = tb.name {
                        ev.name
                            .offer(rank::TRACEBACK_NAME, Cow::Owned(n), Src::Derived);
                    }
                }
            }
            ev.push_extra(key, ExtraValue::Raw(json));
        }
    }
    Ok(())
}

/// Raw text is copied into the log as is, so it must be readable by any JSON reader. serde_json's
/// raw capture accepts lone surrogate escapes and numbers beyond the f64 range (`1e400`, or an
/// integer of more than 308 digits); catch them here. Cheap prefilters decide whether the exact
/// check (a full parse) is needed: a `\u` escape, a digit followed by an exponent of three or more
/// digits, or a run of more than 308 digits. Text inside strings can trip them (a hex id like
/// `"1e123abc"`), which costs a parse, never a wrong answer.
fn check_readable(raw: &str, field: &'static str, numbers: bool) -> Result<(), ParseError> {
    let b = raw.as_bytes();
    // A string holds no numbers (its text "1e400" is fine).
    let numbers = numbers && b.first() != Some(&b'"');
    let suspicious = memchr::memmem::find(b, b"\\u").is_some()
        || (numbers && (has_big_exponent(b) || has_long_digit_run(b)));
    if !suspicious {
        return Ok(());
    }
    serde_json::from_str::<Readable>(raw)
        .map(|_| ())
        .map_err(|_| ParseError::Unreadable(field))
}

/// Reads any JSON value the way a full parse would — every string decoded (a lone surrogate
/// escape fails), every number converted (one beyond the f64 range fails) — and keeps nothing.
/// A `serde_json::Value` did the same check with an allocation per node; `IgnoredAny` skips
/// strings and numbers without checking them.
struct Readable;

impl<'de> Deserialize<'de> for Readable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Readable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Readable, E> {
                Ok(Readable)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Readable, E> {
                Ok(Readable)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Readable, E> {
                Ok(Readable)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Readable, E> {
                Ok(Readable)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Readable, E> {
                Ok(Readable)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Readable, E> {
                Ok(Readable)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Readable, A::Error> {
                while s.next_element::<Readable>()?.is_some() {}
                Ok(Readable)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Readable, A::Error> {
                while m.next_key::<Readable>()?.is_some() {
                    m.next_value::<Readable>()?;
                }
                Ok(Readable)
            }
        }
        d.deserialize_any(V)
    }
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
    let nanos = match unquote(raw) {
        Some(s) => formats::time_text(&s),
        None => formats::epoch_number(raw),
    };
    nanos.map(|n| Some(Timestamp::UnixNanos(n))).ok_or(ERR)
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
