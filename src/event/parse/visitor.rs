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
            if kind == Field::Message {
                self.out.current = Some(("message", Expected::String));
                let m = map.next_value::<Key<'de>>()?.0;
                self.out.current = None;
                ev.message.offer(0, m, Src::Native);
                continue;
            }
            if kind == Field::Service {
                // A string (native), or ECS's nested `service: {name, …}`.
                self.out.current = None;
                let value: Nested<'de> = map.next_value()?;
                let res = match value {
                    Nested::Text(s) => {
                        if !s.is_empty() {
                            ev.service.offer(0, s, Src::Native);
                        }
                        Ok(())
                    }
                    Nested::Json(j) if j == "null" => Ok(()),
                    Nested::Members(_) => nested(ev, key, Family::Service, value),
                    Nested::Json(_) => Err(ParseError::WrongType("service", Expected::String)),
                };
                if let Err(e) = res {
                    self.out.error.get_or_insert(e);
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
                ev.level_number = Some(n);
                match Level::from_number(n, NumericScale::Pino) {
                    Some(l) => l,
                    // GELF's syslog severity, decided when the line has ended.
                    None if (0.0..10.0).contains(&n) => {
                        ev.level_pending = true;
                        return Ok(());
                    }
                    None => return Err(ERR),
                }
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
            // zerolog's pkgerrors marshaller: an array of frames.
            None if raw.starts_with('[') => {
                check_readable(raw, "stack", true)?;
                let text = formats::frames_text(raw)
                    .ok_or(ParseError::WrongType("stack", Expected::String))?;
                ev.stack.offer(0, Cow::Owned(escaped(&text)), Src::Native);
                Ok(())
            }
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
                    ev.clef |= rank == rank::CLEF_M;
                    ev.gelf |= rank == rank::SHORT_MESSAGE;
                    if let Some(m) = unquote(raw) {
                        ev.message.offer(rank, m, Src::Extra(i));
                    }
                }
                Field::Template => {
                    ev.clef = true;
                    if let Some(m) = unquote(raw) {
                        ev.message.offer(rank::CLEF_MT, m, Src::Extra(i));
                        ev.template = Some(i);
                    }
                }
                Field::Dotted(lift) => offer_lift(ev, lift, raw, Src::Extra(i)),
                Field::ServiceAlias(rank) => {
                    if let Some(s) = unquote(raw).filter(|s| !s.is_empty()) {
                        ev.service.offer(rank, s, Src::Extra(i));
                    }
                }
                Field::MonologChannel => ev.monolog = true,
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
                        (LevelKey::OtelNumber, None) => raw
                            .parse()
                            .ok()
                            .and_then(|n| Level::from_number(n, NumericScale::Otel)),
                        (LevelKey::OtelText, Some(s)) => {
                            Level::normalize(s.trim_end_matches(|c: char| c.is_ascii_digit()))
                        }
                        (LevelKey::Levelno | LevelKey::OtelNumber, Some(_)) => None,
                        (_, None) => None,
                        (_, Some(s)) => Level::normalize(&s),
                    };
                    match which {
                        LevelKey::Levelname => ev.python_logging = true,
                        LevelKey::Monolog => ev.monolog = true,
                        LevelKey::Clef => ev.clef = true,
                        _ => {}
                    }
                    if let Some(l) = level {
                        let rank = match which {
                            LevelKey::Severity => rank::SEVERITY,
                            LevelKey::Levelname => rank::LEVELNAME,
                            LevelKey::Levelno => rank::LEVELNO,
                            LevelKey::Clef => rank::CLEF_L,
                            LevelKey::Mel => rank::MEL_LEVEL,
                            LevelKey::Ecs => rank::ECS_LEVEL,
                            LevelKey::Monolog => rank::MONOLOG_LEVEL,
                            LevelKey::OtelText => rank::OTEL_TEXT,
                            LevelKey::OtelNumber => rank::OTEL_NUMBER,
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
                    ev.clef |= rank == rank::CLEF_T;
                    let t = match unquote(raw) {
                        // OTLP/JSON writes 64-bit integers as strings of digits.
                        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                            formats::epoch_number(&s)
                        }
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
                if family == Family::Resource && k == "attributes" {
                    // OpenTelemetry: the service is a resource attribute.
                    for (lift, v) in formats::otel_attributes(raw) {
                        if let Lift::Service(rank) = lift {
                            ev.service.offer(rank, Cow::Owned(v), Src::Derived);
                        }
                    }
                    continue;
                }
                if let Some(lift) = formats::member(family, k) {
                    offer_lift(ev, lift, raw, Src::Member(i, m));
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
                Family::Body => ev.message.offer(rank::BODY, text.clone(), src),
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
            if family == Family::Attributes && json.starts_with('[') {
                // OTLP/JSON: a list of `{key, value: AnyValue}`; the list stays in `extra`.
                for (lift, v) in formats::otel_attributes(&json) {
                    offer_owned(ev, lift, v);
                }
            }
            ev.push_extra(key, ExtraValue::Raw(json));
        }
    }
    Ok(())
}

/// Offers a value a profile found (`raw` JSON) for the record field `lift` says.
fn offer_lift<'a>(ev: &mut Partial<'a>, lift: Lift, raw: &'a str, src: Src) {
    match lift {
        Lift::Message(rank) => {
            if let Some(s) = unquote(raw) {
                ev.message.offer(rank, s, src);
            }
        }
        Lift::Name(rank) => {
            if let Some(s) = unquote(raw).filter(|s| !s.is_empty()) {
                ev.name.offer(rank, s, src);
            }
        }
        Lift::Stack(rank) if raw.len() > 2 && raw.starts_with('"') => {
            ev.stack
                .offer(rank, Cow::Borrowed(&raw[1..raw.len() - 1]), src);
        }
        Lift::Stack(rank) if raw.starts_with('[') => {
            if let Some(text) = formats::frames_text(raw) {
                ev.stack.offer(rank, Cow::Owned(escaped(&text)), src);
            }
        }
        Lift::Stack(_) => {}
        Lift::Code(rank) => {
            if let Some(c) = code_text(raw) {
                ev.code.offer(rank, c, src);
            }
        }
        Lift::Level(rank) => {
            if let Some(l) = unquote(raw).and_then(|s| Level::normalize(&s)) {
                ev.level.offer(rank, l, src);
            }
        }
        Lift::Service(rank) => {
            if let Some(s) = unquote(raw).filter(|s| !s.is_empty()) {
                ev.service.offer(rank, s, src);
            }
        }
    }
}

/// Offers a decoded value that is not a slice of the line (OTLP attributes): it stays where
/// it was in `extra`.
pub(super) fn offer_owned(ev: &mut Partial<'_>, lift: Lift, v: String) {
    let src = Src::Derived;
    match lift {
        Lift::Message(rank) => ev.message.offer(rank, Cow::Owned(v), src),
        Lift::Name(rank) if !v.is_empty() => ev.name.offer(rank, Cow::Owned(v), src),
        Lift::Stack(rank) if !v.is_empty() => ev.stack.offer(rank, Cow::Owned(escaped(&v)), src),
        Lift::Code(rank) if !v.is_empty() => ev.code.offer(rank, Cow::Owned(v), src),
        Lift::Service(rank) if !v.is_empty() => ev.service.offer(rank, Cow::Owned(v), src),
        Lift::Level(rank) => {
            if let Some(l) = Level::normalize(&v) {
                ev.level.offer(rank, l, src);
            }
        }
        _ => {}
    }
}
