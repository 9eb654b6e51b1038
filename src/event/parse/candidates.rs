//! Candidates for the record's fields and what stays under `extra`: the bookkeeping of format
//! recognition ([`super::formats`], docs/formats.md). The parser offers each recognized value
//! with a rank as keys stream by; [`Partial::resolve`] applies the precedence once the object
//! has ended, takes the winners out of `extra` and re-assembles what is left of nested objects.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use super::formats::{self, rank};
use super::{Expected, ParseError, RawEvent, Timestamp};
use crate::event::level::{Level, NumericScale};
use crate::json::{escaped, put_str, unquote};

/// Where a candidate came from, so the winner can be taken out of `extra`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Src {
    /// A native protocol field (never in `extra`).
    Native,
    /// `extra[i]`.
    Extra(usize),
    /// Member `m` of the object in `extra[i]`.
    Member(usize, usize),
    /// Computed from another field (a name read from the stack).
    Derived,
}

/// The best candidate so far for one record field: the lowest rank wins, the first of equals.
pub(super) struct Best<T>(pub(super) Option<(u8, T, Src)>);

impl<T> Default for Best<T> {
    fn default() -> Self {
        Best(None)
    }
}

impl<T> Best<T> {
    pub(super) fn offer(&mut self, rank: u8, value: T, src: Src) {
        if self.0.as_ref().is_none_or(|(r, ..)| rank < *r) {
            self.0 = Some((rank, value, src));
        }
    }
}

/// Members lifted out of one nested object: bit `m` for member `m` (only the first 64 members
/// are looked at).
pub(super) const MAX_LIFTED_MEMBERS: usize = 64;

/// One top-level key kept for `extra` unless its value fills a record field.
pub(super) struct ExtraField<'a> {
    pub(super) key: Cow<'a, str>,
    pub(super) value: ExtraValue<'a>,
    /// The whole value was lifted.
    used: bool,
    /// Lifted members (of [`ExtraValue::Members`]).
    lifted: u64,
}

pub(super) enum ExtraValue<'a> {
    /// JSON text: a slice of the line, or re-encoded.
    Raw(Cow<'a, str>),
    /// An object read member by member: raw members.
    Members(Vec<(Cow<'a, str>, &'a str)>),
}

#[derive(Default)]
pub(super) struct Partial<'a> {
    pub(super) message: Best<Cow<'a, str>>,
    pub(super) level: Best<Level>,
    /// `level` was a number: pino or bunyan, whose `name` is the logger's.
    pub(super) level_numeric: bool,
    /// `levelname` was present: Python logging, whose `name` is the logger's.
    pub(super) python_logging: bool,
    /// The numeric `level`, for the profiles that read it on another scale (Monolog, GELF).
    pub(super) level_number: Option<f64>,
    /// A numeric `level` that is on no default scale (0–9): GELF's syslog severity, else
    /// `wrong_type` once the line has ended.
    pub(super) level_pending: bool,
    /// Serilog CLEF (`@t`, `@m`, `@mt` seen): an absent `@l` means Information.
    pub(super) clef: bool,
    /// Monolog (`channel` or `level_name` seen).
    pub(super) monolog: bool,
    /// GELF (`short_message` seen).
    pub(super) gelf: bool,
    /// `extra` index of Serilog's `@mt`, whose holes are rendered when it is the message.
    pub(super) template: Option<usize>,
    /// A field was assembled from several parts of the line (see [`RawEvent::rebuilt`]).
    pub(super) rebuilt: bool,
    /// The message was found by the generic recognizer ([`RawEvent::generic`]).
    pub(super) generic: bool,
    /// Top-level `name`, decoded, and its raw text.
    pub(super) top_name: Option<(Cow<'a, str>, &'a str)>,
    pub(super) name: Best<Cow<'a, str>>,
    pub(super) code: Best<Cow<'a, str>>,
    pub(super) stack: Best<Cow<'a, str>>,
    pub(super) service: Best<Cow<'a, str>>,
    pub(super) ts: Best<Timestamp>,
    pub(super) context: Option<&'a str>,
    pub(super) tags: Option<&'a str>,
    pub(super) fingerprint: Vec<Cow<'a, str>>,
    pub(super) ack: bool,
    pub(super) extra: Vec<ExtraField<'a>>,
}

impl<'a> Partial<'a> {
    pub(super) fn push_extra(&mut self, key: Cow<'a, str>, value: ExtraValue<'a>) -> usize {
        self.extra.push(ExtraField {
            key,
            value,
            used: false,
            lifted: 0,
        });
        self.extra.len() - 1
    }

    /// Precedence is applied here, once every key has been seen (docs/formats.md).
    /// `secret_key` says whether a property name holds a secret (the sanitizer's keys): a
    /// Serilog template hole naming one is rendered as `[REDACTED]`.
    pub(super) fn resolve(
        mut self,
        secret_key: &dyn Fn(&str) -> bool,
    ) -> Result<RawEvent<'a>, ParseError> {
        if self.level_pending {
            // A numeric `level` of 0–9: GELF's syslog severity, else nobody's.
            let syslog = self
                .level_number
                .filter(|_| self.gelf)
                .and_then(|n| Level::from_number(n, NumericScale::Syslog))
                .ok_or(ParseError::WrongType("level", Expected::Level))?;
            self.level.offer(0, syslog, Src::Native);
        }
        if self.monolog {
            // Monolog's numbers (400 error) are not pino's/GCP's (400 warn); its `level_name`,
            // ranked below the native `level`, says the same.
            if let Some(l) = self
                .level_number
                .and_then(|n| Level::from_number(n, NumericScale::Monolog))
            {
                self.level = Best(Some((0, l, Src::Native)));
            }
            if let Some(exc) = self.context.and_then(formats::monolog_exception) {
                self.rebuilt = true;
                if let Some(class) = exc.class {
                    self.name
                        .offer(rank::MONOLOG_CLASS, Cow::Owned(class), Src::Derived);
                }
                if let Some(code) = exc.code {
                    self.code
                        .offer(rank::NESTED_CODE + 3, Cow::Owned(code), Src::Derived);
                }
                self.stack.offer(
                    rank::MONOLOG_TRACE,
                    Cow::Owned(escaped(&exc.stack)),
                    Src::Derived,
                );
            }
        }
        if self.clef && self.level.0.is_none() {
            // CLEF: an event without `@l` is Information.
            self.level.offer(rank::CLEF_L, Level::Info, Src::Derived);
        }
        if self.message.0.is_none() {
            super::generic::recognize(&mut self);
        }
        if let Some((name, raw)) = self.top_name.take() {
            if self.level_numeric {
                // pino/bunyan: `name` is the logger's, i.e. the app's; kept when `service` is set.
                if self.service.0.is_some() {
                    self.push_extra(Cow::Borrowed("name"), ExtraValue::Raw(raw.into()));
                } else if !name.is_empty() {
                    self.service
                        .offer(rank::LOGGER_NAME_SERVICE, name, Src::Native);
                }
            } else if self.python_logging {
                // Python logging: the logger's name (`myapp.db`); not an error name.
                self.push_extra(Cow::Borrowed("name"), ExtraValue::Raw(raw.into()));
            } else if !name.is_empty() {
                self.name.offer(0, name, Src::Native);
            }
        }
        let Some((_, mut message, msg_src)) = self.message.0.take() else {
            return Err(ParseError::Missing("message"));
        };
        let mut extra = std::mem::take(&mut self.extra);
        if let (Src::Extra(i), Some(t)) = (msg_src, self.template) {
            if i == t && memchr::memchr(b'{', message.as_bytes()).is_some() {
                let rendered = render_template(&message, &extra, secret_key);
                if rendered != message {
                    message = Cow::Owned(rendered);
                    self.rebuilt = true;
                }
            }
        }
        mark(&mut extra, msg_src);
        let level = win(self.level, &mut extra).unwrap_or_default();
        let stack = win(self.stack, &mut extra);
        let mut name = win(self.name, &mut extra);
        let code = win(self.code, &mut extra);
        let service = win(self.service, &mut extra);
        let ts = win(self.ts, &mut extra);
        if name.is_none() {
            name = stack.as_ref().and_then(|s| match s {
                Cow::Borrowed(s) => formats::name_from_stack(s).map(Cow::Borrowed),
                Cow::Owned(s) => formats::name_from_stack(s).map(|n| Cow::Owned(n.to_owned())),
            });
        }
        // An error object's members that say what the record says are not kept twice (pino's
        // `err.name` next to `err.type`, `err.message` equal to `msg`).
        for f in extra.iter_mut() {
            if let ExtraValue::Members(members) = &f.value {
                for (m, (k, raw)) in members.iter().enumerate().take(MAX_LIFTED_MEMBERS) {
                    let same = match k.as_ref() {
                        "message" => Some(&message),
                        "name" | "type" => name.as_ref(),
                        "code" => code.as_ref(),
                        _ => None,
                    };
                    if same.is_some_and(|s| unquote(raw).is_some_and(|v| v == *s)) {
                        f.lifted |= 1 << m;
                    }
                }
            }
        }
        let extra = extra.into_iter().filter_map(render_extra).collect();
        Ok(RawEvent {
            message,
            level,
            name,
            code,
            stack,
            service,
            ts,
            context: self.context,
            tags: self.tags,
            fingerprint: self.fingerprint,
            ack: self.ack,
            extra,
            rebuilt: self.rebuilt,
            generic: self.generic,
        })
    }
}

/// Longest rendered Serilog message: the template and its values are all from the line, but
/// one property may fill many holes.
const MAX_RENDERED: usize = 64 * 1024;

/// Serilog's message template with its simple holes filled from the event's properties
/// (top-level keys): `{Name}`, `{@Name}`, `{$Name}`, `{Name:format}`, `{Name,align}` (format and
/// alignment are not applied); `{{` and `}}` are braces. A hole without a property stays as
/// written; one whose name is a secret key is `[REDACTED]`; strings are inserted decoded, other
/// values as their JSON.
fn render_template(
    tpl: &str,
    extra: &[ExtraField<'_>],
    secret_key: &dyn Fn(&str) -> bool,
) -> String {
    let mut out = String::with_capacity(tpl.len() + 32);
    let mut rest = tpl;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        let hole = tail
            .strip_prefix('{')
            .and_then(|t| t.find('}').map(|e| &t[..e]));
        let Some(hole) = hole else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
            continue;
        };
        let name = hole.trim_start_matches(['@', '$']);
        let name = &name[..name.find([':', ',']).unwrap_or(name.len())];
        let value = (!name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then(|| {
            extra.iter().find_map(|f| match &f.value {
                ExtraValue::Raw(raw) if f.key == name => Some(raw.as_ref()),
                _ => None,
            })
        })
        .flatten();
        match value {
            Some(_) if secret_key(name) => out.push_str(crate::event::sanitize::REDACTED),
            Some(raw) => match unquote(raw) {
                Some(s) => out.push_str(&s),
                None => out.push_str(raw),
            },
            None => {
                out.push('{');
                out.push_str(hole);
                out.push('}');
            }
        }
        rest = &tail[hole.len() + 2..];
        if out.len() > MAX_RENDERED {
            out.truncate(crate::json::floor_char_boundary(&out, MAX_RENDERED));
            return out;
        }
    }
    out.push_str(rest);
    out
}

/// Takes a field's winner out of `extra` (or its member out of an object in `extra`).
fn mark(extra: &mut [ExtraField<'_>], src: Src) {
    match src {
        Src::Extra(i) => extra[i].used = true,
        Src::Member(i, m) => extra[i].lifted |= 1 << m,
        Src::Native | Src::Derived => {}
    }
}

/// The winning candidate, marked as taken.
fn win<T>(best: Best<T>, extra: &mut [ExtraField<'_>]) -> Option<T> {
    best.0.map(|(_, v, src)| {
        mark(extra, src);
        v
    })
}

/// What stays of one extra field: nothing when its value was lifted, the members not lifted
/// out of an object, or the raw value.
fn render_extra(f: ExtraField<'_>) -> Option<(Cow<'_, str>, Cow<'_, str>)> {
    if f.used {
        return None;
    }
    let value = match f.value {
        ExtraValue::Raw(raw) => raw,
        ExtraValue::Members(members) => {
            let mut obj = BytesMut::with_capacity(64);
            obj.put_u8(b'{');
            let mut any = false;
            for (m, (k, v)) in members.iter().enumerate() {
                if m < MAX_LIFTED_MEMBERS && f.lifted & (1 << m) != 0 {
                    continue;
                }
                if any {
                    obj.put_u8(b',');
                }
                any = true;
                put_str(&mut obj, k);
                obj.put_u8(b':');
                obj.extend_from_slice(v.as_bytes());
            }
            if !any && f.lifted != 0 {
                return None;
            }
            obj.put_u8(b'}');
            // Built from valid JSON pieces, so valid UTF-8.
            Cow::Owned(String::from_utf8(obj.to_vec()).unwrap_or_default())
        }
    };
    Some((f.key, value))
}
