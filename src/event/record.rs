//! Writing log records: numbers and timestamps into a caller's buffer (strings: [`crate::json`]).
//!
//! Records are written by hand (field order fixed, raw client JSON copied through) because this
//! is the hottest code after parsing; everything else in the daemon uses serde.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

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
}
