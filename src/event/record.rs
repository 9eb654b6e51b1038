//! Writing log records: JSON string escaping and timestamps, into a caller's buffer.
//!
//! Records are written by hand (field order fixed, raw client JSON copied through) because this
//! is the hottest code after parsing; everything else in the daemon uses serde.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

/// Bytes that must be escaped inside a JSON string: `"`, `\` and control characters.
const fn escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static ESCAPE: [bool; 256] = escape_table();

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a quoted JSON string.
pub fn put_str(out: &mut BytesMut, s: &str) {
    out.reserve(s.len() + 2);
    out.put_u8(b'"');
    put_escaped_body(out, s);
    out.put_u8(b'"');
}

/// Appends the escaped body of `s` (no quotes).
pub fn put_escaped_body(out: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !ESCAPE[b as usize] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.put_u8(HEX[(b >> 4) as usize]);
                out.put_u8(HEX[(b & 0xf) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
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
    fn escapes_round_trip_through_serde() {
        for s in [
            "plain",
            "q\"b\\s",
            "nl\nr\rt\t",
            "\u{1}\u{1f}",
            "ünïcødé ✓",
            "",
        ] {
            let mut out = BytesMut::new();
            put_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn timestamps() {
        let t = system_time(1_764_345_943_123_456_789);
        assert_eq!(rfc3339_micros(t), "2025-11-28T16:05:43.123456Z");
        assert_eq!(unix_nanos(t), 1_764_345_943_123_456_789);
    }
}
