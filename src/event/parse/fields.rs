//! Decoding and checking single raw values of the line: nesting depth, readability (lone
//! surrogate escapes, numbers beyond the f64 range), and the native `context`, `tags`,
//! `fingerprint` and `ts` fields. Errors name the field they were found in.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::formats;
use super::{Expected, ParseError, Timestamp, MAX_DEPTH, MAX_FINGERPRINT_PARTS};
use crate::json::unquote;

/// Nesting of a raw object/array value (itself at depth `at` of the line, the event object being
/// depth 1) exceeds [`MAX_DEPTH`]. serde_json skips raw values iteratively (no recursion limit),
/// so the bound is ours. Fast path: a SIMD count of `{`/`[` bytes is an upper bound of the
/// depth; only values with more openers than the limit get the exact, string-aware scan.
pub(super) fn too_deep(raw: &str, at: usize) -> bool {
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

/// The `\u` search of [`check_readable`], built once: `memmem::find` builds its searcher on every
/// call, which showed as 0.5 % of the daemon's CPU in a full-speed profile (docs/performance.md).
static UNICODE_ESCAPE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\\u"));

/// Raw text is copied into the log as is, so it must be readable by any JSON reader. serde_json's
/// raw capture accepts lone surrogate escapes and numbers beyond the f64 range (`1e400`, or an
/// integer of more than 308 digits); catch them here. Cheap prefilters decide whether the exact
/// check (a full parse) is needed: a `\u` escape, a digit followed by an exponent of three or more
/// digits, or a run of more than 308 digits. Text inside strings can trip them (a hex id like
/// `"1e123abc"`), which costs a parse, never a wrong answer.
pub(super) fn check_readable(
    raw: &str,
    field: &'static str,
    numbers: bool,
) -> Result<(), ParseError> {
    let b = raw.as_bytes();
    // A string holds no numbers (its text "1e400" is fine).
    let numbers = numbers && b.first() != Some(&b'"');
    let suspicious = UNICODE_ESCAPE.find(b).is_some()
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

pub(super) fn object<'a>(raw: &'a str, field: &'static str) -> Result<Option<&'a str>, ParseError> {
    match raw.as_bytes().first() {
        Some(b'{') => Ok(Some(raw)),
        _ if raw == "null" => Ok(None),
        _ => Err(ParseError::WrongType(field, Expected::Object)),
    }
}

pub(super) fn tags(raw: &str) -> Result<Option<&str>, ParseError> {
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

pub(super) fn fingerprint(raw: &str) -> Result<Vec<Cow<'_, str>>, ParseError> {
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

pub(super) fn timestamp(raw: &str) -> Result<Option<Timestamp>, ParseError> {
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
