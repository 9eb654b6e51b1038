//! Writing log records: the `event` record, `daemon` records and any JSON line, with the numbers
//! and timestamps they hold, into a caller's buffer (string escaping: [`crate::json`]).
//!
//! Records are written by hand (field order fixed, raw client JSON copied through) because this
//! is the hottest code after parsing; everything else in the daemon uses serde.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use ulid::Ulid;

use super::classify::{Class, Severity};
use super::fingerprint::Fingerprint;
use super::level::Level;
use super::parse::Timestamp;
use crate::json::{self, put_str};

/// The `kind` of every record the daemon writes (README, "What is written"). Writers use these
/// names, and `qerrorsctl tail --kind` accepts exactly [`kind::ALL`].
pub mod kind {
    /// An application's error event ([`super::put_event`]).
    pub const EVENT: &str = "event";
    /// Lifecycle and operational notes of the daemon itself ([`super::put_daemon`]).
    pub const DAEMON: &str = "daemon";
    /// Lines or events counted as lost in the last interval (`sink`).
    pub const DROPPED: &str = "dropped";
    /// Events held back by a rate limit, the duplicate policy or memory pressure (`limit`).
    pub const SUPPRESSED: &str = "suppressed";
    /// Fix advice for a fingerprint (`analysis`).
    pub const ADVICE: &str = "advice";
    /// Every kind, in the order the README lists them.
    pub const ALL: [&str; 5] = [EVENT, DROPPED, SUPPRESSED, DAEMON, ADVICE];
}

/// Bytes reserved per record beyond the client's line: the enriched fields (id, times,
/// fingerprint, class, severity, occurrence, host) fit in well under this.
const ENRICHED_RESERVE: usize = 512;

/// Everything one `event` record holds, sanitized and enriched, borrowed from the pipeline.
#[derive(Debug)]
pub struct EventRecord<'a> {
    pub id: Ulid,
    /// Receive time, RFC 3339.
    pub received: &'a str,
    /// The client's own time, if it sent one (else `received` is written as `ts`).
    pub ts: Option<Timestamp>,
    pub level: Level,
    /// The client's `service`; `None`: `default_service_json` is written.
    pub service: Option<&'a str>,
    /// The peer's process name as a quoted JSON string.
    pub default_service_json: &'a [u8],
    pub name: Option<&'a str>,
    pub code: Option<&'a str>,
    pub message: &'a str,
    pub fingerprint: Fingerprint,
    pub class: Class,
    pub severity: Severity,
    pub occurrence: u64,
    /// The `"host":"…"` member, encoded once.
    pub host_field: &'a [u8],
    /// The `peer` object, encoded once per connection.
    pub peer_json: &'a [u8],
    /// The stack as the escaped body of a JSON string.
    pub stack: Option<&'a str>,
    /// Raw JSON objects, copied through.
    pub context: Option<&'a str>,
    pub tags: Option<&'a str>,
    pub extra: Option<&'a str>,
}

/// How every `event` record starts ([`kind::EVENT`], spelled out for the hot path).
const EVENT_PREFIX: &[u8] = b"{\"kind\":\"event\",\"id\":\"";

/// Appends one `event` record line. Field order is part of the documented format
/// (docs/PROTOCOL.md).
pub fn put_event(out: &mut BytesMut, r: &EventRecord<'_>, line_len: usize) {
    out.reserve(line_len + ENRICHED_RESERVE + r.peer_json.len());
    out.extend_from_slice(EVENT_PREFIX);
    let mut idbuf = [0u8; ulid::ULID_LEN];
    out.extend_from_slice(r.id.array_to_str(&mut idbuf).as_bytes());
    out.extend_from_slice(b"\",\"received\":\"");
    out.extend_from_slice(r.received.as_bytes());
    out.extend_from_slice(b"\",\"ts\":\"");
    match r.ts {
        Some(Timestamp::UnixNanos(n)) => put_rfc3339_micros(out, system_time(n)),
        None => out.extend_from_slice(r.received.as_bytes()),
    }
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(r.level.as_str().as_bytes());
    out.extend_from_slice(b"\",\"service\":");
    match r.service {
        Some(svc) => put_str(out, svc),
        None => out.extend_from_slice(r.default_service_json),
    }
    if let Some(n) = r.name {
        out.extend_from_slice(b",\"name\":");
        put_str(out, n);
    }
    if let Some(c) = r.code {
        out.extend_from_slice(b",\"code\":");
        put_str(out, c);
    }
    out.extend_from_slice(b",\"message\":");
    put_str(out, r.message);
    out.extend_from_slice(b",\"fingerprint\":\"");
    out.extend_from_slice(&r.fingerprint.to_hex());
    out.extend_from_slice(b"\",\"class\":\"");
    out.extend_from_slice(r.class.as_str().as_bytes());
    out.extend_from_slice(b"\",\"severity\":\"");
    out.extend_from_slice(r.severity.as_str().as_bytes());
    out.extend_from_slice(b"\",\"occurrence\":");
    put_u64(out, r.occurrence);
    out.put_u8(b',');
    out.extend_from_slice(r.host_field);
    out.extend_from_slice(b",\"peer\":");
    out.extend_from_slice(r.peer_json);
    if let Some(st) = r.stack {
        out.extend_from_slice(b",\"stack\":\"");
        json::put_raw(out, st);
        out.put_u8(b'"');
    }
    for (key, val) in [
        (&b",\"context\":"[..], r.context),
        (b",\"tags\":", r.tags),
        (b",\"extra\":", r.extra),
    ] {
        if let Some(v) = val {
            out.extend_from_slice(key);
            json::put_raw(out, v);
        }
    }
    out.extend_from_slice(b"}\n");
}

/// The `"host":"…"` member of every record, encoded once.
pub fn host_field(host: &str) -> Box<[u8]> {
    let mut b = BytesMut::new();
    b.extend_from_slice(b"\"host\":");
    put_str(&mut b, host);
    b.to_vec().into_boxed_slice()
}

/// The `extra` object: members whose values are JSON text already.
pub fn extra_object<K: AsRef<str>, V: AsRef<str>>(members: &[(K, V)]) -> String {
    let mut obj = BytesMut::with_capacity(64);
    obj.put_u8(b'{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            obj.put_u8(b',');
        }
        put_str(&mut obj, k.as_ref());
        obj.put_u8(b':');
        obj.extend_from_slice(v.as_ref().as_bytes());
    }
    obj.put_u8(b'}');
    // Built from valid JSON pieces, so valid UTF-8.
    String::from_utf8(obj.to_vec()).unwrap_or_default()
}

/// Appends a `{"kind":"daemon","time":…,"msg":…}` record line with `fields` as extra members.
pub fn put_daemon(out: &mut BytesMut, msg: &str, fields: &[(&str, serde_json::Value)]) {
    let mut obj = serde_json::Map::new();
    obj.insert("kind".into(), kind::DAEMON.into());
    obj.insert("time".into(), rfc3339_micros(SystemTime::now()).into());
    obj.insert("msg".into(), msg.into());
    for (k, v) in fields {
        obj.insert((*k).into(), v.clone());
    }
    put_json_line(out, &serde_json::Value::Object(obj));
}

/// Appends any JSON value as one line.
pub fn put_json_line(out: &mut BytesMut, v: &serde_json::Value) {
    json::put_raw(out, &v.to_string());
    out.put_u8(b'\n');
}

/// Appends an unsigned integer.
pub fn put_u64(out: &mut BytesMut, v: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

/// RFC 3339 UTC with microseconds, e.g. `2026-11-28T16:49:03.123456Z` (27 bytes).
pub fn rfc3339_micros(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// Appends [`rfc3339_micros`] without allocating.
pub fn put_rfc3339_micros(out: &mut BytesMut, t: SystemTime) {
    use std::fmt::Write;
    // Writing into a BytesMut cannot fail.
    let _ = write!(out, "{}", humantime::format_rfc3339_micros(t));
}

/// Converts Unix nanoseconds to a `SystemTime` (clamped at the epoch).
pub fn system_time(unix_nanos: i128) -> SystemTime {
    let n = unix_nanos.clamp(0, u64::MAX as i128) as u64;
    UNIX_EPOCH + Duration::from_nanos(n)
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = system_time(1_764_345_943_123_456_789);
        assert_eq!(rfc3339_micros(t), "2025-11-28T16:05:43.123456Z");
        assert_eq!(unix_nanos(t), 1_764_345_943_123_456_789);
    }

    #[test]
    fn event_records_use_the_event_kind() {
        let want = format!("{{\"kind\":\"{}\",\"id\":\"", kind::EVENT);
        assert_eq!(EVENT_PREFIX, want.as_bytes());
        let mut out = BytesMut::new();
        put_daemon(&mut out, "start", &[]);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["kind"], kind::DAEMON);
        assert!(kind::ALL.contains(&kind::EVENT) && kind::ALL.contains(&kind::DAEMON));
    }
}
