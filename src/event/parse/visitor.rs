//! The serde visitor that walks the event object in one pass: each top-level key is read once
//! and, by what [`super::formats`] says it may mean, decoded as a native field, offered as a
//! ranked candidate ([`super::candidates`]) or kept for `extra`; error objects (`err`, `error`,
//! `exception`) and tracing's `fields` are read member by member in the same pass.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::candidates::{ExtraValue, Partial, Src, MAX_LIFTED_MEMBERS};
use super::fields::{check_readable, fingerprint, object, tags, timestamp, too_deep};
use super::formats::{self, rank, Family, Field, LevelKey, Lift};
use super::{Expected, ParseError, Timestamp};
use crate::event::level::{Level, NumericScale};
use crate::json::{escaped, quoted, unquote, Key};

#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) event: Partial<'a>,
    pub(super) error: Option<ParseError>,
    /// The typed field being decoded, to name it if serde reports a type error.
    pub(super) current: Option<(&'static str, Expected)>,
}

pub(super) struct EventVisitor<'o, 'a> {
    pub(super) out: &'o mut Fields<'a>,
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
