//! The generic recognizer: for a line in which no logger's keys gave a message, the record's
//! fields are looked for by the names and shapes of the values (docs/formats.md, "Shapes
//! nobody named"). It runs once the line has ended and only when there is no message, so a
//! line any profile understands never pays for it; a line it cannot read either is rejected
//! for its missing `message`, as before.
//!
//! Where it looks, in precedence order: the top-level keys that are not a native field (first
//! [`MAX_KEYS`]), then the members of the first [`MAX_OBJECTS`] top-level objects (one level of
//! nesting: a logger that wraps its record, `{"log": {…}}`, `{"record": {…}}`; first
//! [`MAX_KEYS`] members each). Within one place the name lists below decide, leftmost first;
//! the top level beats the nested objects. Names are compared ASCII-case-insensitively with
//! `_`, `-`, `.` and `@` removed, so `log_level`, `logLevel` and `@Level` are one name.
//! Values of the wrong shape are skipped (a level that is no level name, a name that is not an
//! identifier, a stack that is not a string or frames).

use std::borrow::Cow;

use super::candidates::{ExtraValue, Partial, Src};
use super::formats::{self, time_text};
use super::Timestamp;
use crate::event::level::{Level, NumericScale};
use crate::json::{escaped, unquote};

/// Most keys looked at in one object (the line's own and each nested one).
pub(super) const MAX_KEYS: usize = 64;
/// Most top-level objects whose members are looked at.
pub(super) const MAX_OBJECTS: usize = 8;
/// Longest normalized key compared.
const MAX_KEY: usize = 32;

const MESSAGE: &[&str] = &[
    "message",
    "msg",
    "logmessage",
    "text",
    "description",
    "summary",
    "title",
    "reason",
    "detail",
    "details",
    "errormessage",
    "errormsg",
    "error",
    "err",
    "log",
];
const LEVEL: &[&str] = &[
    "level",
    "loglevel",
    "lvl",
    "severity",
    "severitytext",
    "levelname",
    "priority",
    "sev",
];
const NAME: &[&str] = &[
    "errortype",
    "exceptiontype",
    "errorclass",
    "exceptionclass",
    "errorname",
    "exceptionname",
    "type",
    "class",
    "kind",
    "name",
];
const STACK: &[&str] = &[
    "stack",
    "stacktrace",
    "errorstack",
    "exceptionstack",
    "traceback",
    "backtrace",
    "callstack",
    "trace",
    "exception",
];
const SERVICE: &[&str] = &[
    "service",
    "servicename",
    "app",
    "appname",
    "application",
    "component",
    "program",
];
const TIME: &[&str] = &[
    "time",
    "timestamp",
    "datetime",
    "date",
    "eventtime",
    "logtime",
    "t",
];

/// Ranks: the list position, plus this for members of nested objects.
const NESTED: u8 = 64;
/// Base rank of the generic recognizer's candidates: behind every profile's.
const BASE: u8 = 100;

/// `key` lowercased without `_`, `-`, `.`, `@`, into `buf`.
fn normalize<'b>(key: &str, buf: &'b mut [u8; MAX_KEY]) -> Option<&'b str> {
    let mut n = 0;
    for b in key.bytes() {
        if matches!(b, b'_' | b'-' | b'.' | b'@') {
            continue;
        }
        if n == MAX_KEY || !b.is_ascii() {
            return None;
        }
        buf[n] = b.to_ascii_lowercase();
        n += 1;
    }
    std::str::from_utf8(&buf[..n]).ok()
}

fn position(list: &[&str], key: &str) -> Option<u8> {
    list.iter().position(|k| *k == key).map(|p| p as u8)
}

/// An error type: `Ident(.Ident|::Ident)*`, at most 128 bytes, that reads like one
/// (`…Error`, `…Exception`, a dotted or `::` path, or PascalCase).
fn looks_like_type(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 128 || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return false;
    }
    if !b
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'$'))
    {
        return false;
    }
    s.ends_with("Error")
        || s.ends_with("Exception")
        || s.contains('.')
        || s.contains("::")
        || (b[0].is_ascii_uppercase() && b.iter().any(u8::is_ascii_lowercase))
}

/// A stack by its shape: several lines, one of them a frame (`at …`, `File "…"`, a Go
/// `file.go:N`), or a Python traceback header. `body` is the escaped JSON string body.
fn looks_like_stack(body: &str) -> bool {
    if !body.contains("\\n") {
        return false;
    }
    body.starts_with("Traceback (most recent call last):")
        || body.contains("\\n    at ")
        || body.contains("\\n\\tat ")
        || body.contains("\\n  File \\\"")
        || (body.contains("\\n\\t/") && body.contains(".go:"))
}

/// One key and its raw value: offers what it may fill. `nested` ranks it behind the top level.
fn offer<'a>(ev: &mut Partial<'a>, key: &str, raw: &'a str, src: Src, nested: bool) {
    let mut buf = [0u8; MAX_KEY];
    let Some(k) = normalize(key, &mut buf) else {
        return;
    };
    let base = BASE + if nested { NESTED } else { 0 };
    let string = unquote(raw);
    if let (Some(p), Some(s)) = (position(MESSAGE, k), string.as_ref()) {
        if !s.trim().is_empty() {
            ev.message.offer(base + p, s.clone(), src);
            return;
        }
    }
    if let Some(p) = position(LEVEL, k) {
        let level = match string.as_ref() {
            Some(s) => Level::normalize(s),
            None => raw
                .parse()
                .ok()
                .and_then(|n| Level::from_number(n, NumericScale::Pino)),
        };
        if let Some(l) = level {
            ev.level.offer(base + p, l, src);
            return;
        }
    }
    if let (Some(p), Some(s)) = (position(NAME, k), string.as_ref()) {
        if looks_like_type(s) {
            ev.name.offer(base + p, s.clone(), src);
            return;
        }
    }
    let body = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|b| !b.is_empty());
    match (position(STACK, k), body) {
        (Some(p), Some(body)) => {
            ev.stack.offer(base + p, Cow::Borrowed(body), src);
            return;
        }
        (Some(p), None) if raw.starts_with('[') => {
            if let Some(text) = formats::frames_text(raw) {
                ev.stack.offer(base + p, Cow::Owned(escaped(&text)), src);
                return;
            }
        }
        // Any string shaped like a stack, whatever its key.
        (None, Some(body)) if looks_like_stack(body) => {
            ev.stack
                .offer(base + STACK.len() as u8, Cow::Borrowed(body), src);
            return;
        }
        _ => {}
    }
    if let (Some(p), Some(s)) = (position(SERVICE, k), string.as_ref()) {
        if !s.is_empty() && s.len() <= 128 {
            ev.service.offer(base + p, s.clone(), src);
            return;
        }
    }
    if let Some(p) = position(TIME, k) {
        let t = match string.as_ref() {
            Some(s) => time_text(s),
            None => formats::epoch_number(raw),
        };
        if let Some(t) = t {
            ev.ts.offer(base + p, Timestamp::UnixNanos(t), src);
        }
    }
}

/// Looks for the record's fields in a line that gave no message (see the module docs). Sets
/// `ev.generic` when it found one.
pub(super) fn recognize(ev: &mut Partial<'_>) {
    let mut objects = 0;
    let n = ev.extra.len().min(MAX_KEYS);
    for i in 0..n {
        let (key, raw) = match &ev.extra[i].value {
            ExtraValue::Raw(Cow::Borrowed(raw)) => (ev.extra[i].key.clone(), *raw),
            // A string re-encoded by an object family that is no object here (Docker's
            // json-file `{"log": "…"}`): only its text can be the message.
            ExtraValue::Raw(Cow::Owned(raw)) => {
                let mut buf = [0u8; MAX_KEY];
                let p = normalize(&ev.extra[i].key, &mut buf).and_then(|k| position(MESSAGE, k));
                if let (Some(p), Some(s)) = (p, unquote(raw)) {
                    if !s.trim().is_empty() {
                        let s = Cow::Owned(s.into_owned());
                        ev.message.offer(BASE + p, s, Src::Extra(i));
                    }
                }
                continue;
            }
            // An object a profile already reads member by member (`log`, `error`, …): its
            // other members count as one level of nesting too.
            ExtraValue::Members(members) => {
                if objects < MAX_OBJECTS {
                    objects += 1;
                    let members: Vec<(Cow<'_, str>, &str)> =
                        members.iter().take(MAX_KEYS).cloned().collect();
                    for (m, (k, v)) in members.iter().enumerate() {
                        offer(ev, k, v, Src::Member(i, m), true);
                    }
                }
                continue;
            }
        };
        if raw.starts_with('{') {
            if objects < MAX_OBJECTS {
                objects += 1;
                let Ok(members) = formats::object_members(raw) else {
                    continue;
                };
                let members: Vec<(Cow<'_, str>, &str)> = members
                    .into_iter()
                    .take(MAX_KEYS)
                    .map(|(k, v)| (k, v.get()))
                    .collect();
                for (m, (k, v)) in members.iter().enumerate() {
                    offer(ev, k, v, Src::Member(i, m), true);
                }
                ev.extra[i].value = ExtraValue::Members(members);
            }
            continue;
        }
        offer(ev, &key, raw, Src::Extra(i), false);
    }
    ev.generic = ev.message.0.is_some();
}
