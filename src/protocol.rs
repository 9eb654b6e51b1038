//! The wire contract of docs/PROTOCOL.md on the daemon's side: reply codes and the encoding of
//! every reply line (rejections, `rate_limited`, acks and nacks).
//!
//! Replies are written by hand into the connection's reply buffer: acks are sent for every
//! acked event, from the writer thread, and must not allocate per event.

use bytes::BytesMut;
use ulid::Ulid;

use crate::json::put_escaped;

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

/// `{"ok":false,"error":CODE,"detail":DETAIL,"line":N}`: a rejected line.
pub fn put_reject(b: &mut BytesMut, code: RejectCode, detail: &str, line: u64) {
    b.extend_from_slice(b"{\"ok\":false,\"error\":\"");
    b.extend_from_slice(code.as_str().as_bytes());
    b.extend_from_slice(b"\",\"detail\":\"");
    put_escaped(b, detail);
    b.extend_from_slice(b"\",\"line\":");
    b.extend_from_slice(itoa::Buffer::new().format(line).as_bytes());
    b.extend_from_slice(b"}\n");
}

/// `{"ok":false,"error":"rate_limited","reason":REASON,"detail":…,"line":N}`: an event that
/// asked for an ack and was suppressed. Not a rejection (counted in `suppressed` records).
pub fn put_rate_limited(b: &mut BytesMut, reason: &str, line: u64) {
    b.extend_from_slice(b"{\"ok\":false,\"error\":\"rate_limited\",\"reason\":\"");
    b.extend_from_slice(reason.as_bytes());
    b.extend_from_slice(
        b"\",\"detail\":\"suppressed by a limit; counted in a suppressed record\",\"line\":",
    );
    b.extend_from_slice(itoa::Buffer::new().format(line).as_bytes());
    b.extend_from_slice(b"}\n");
}

/// `{"ok":true,"id":ID}` per written event.
pub fn put_acks(b: &mut BytesMut, ids: &[Ulid]) {
    let mut idbuf = [0u8; ulid::ULID_LEN];
    for id in ids {
        b.extend_from_slice(b"{\"ok\":true,\"id\":\"");
        b.extend_from_slice(id.array_to_str(&mut idbuf).as_bytes());
        b.extend_from_slice(b"\"}\n");
    }
}

/// `{"ok":false,"error":CODE,"id":ID}` per acked event that was not written.
pub fn put_nacks(b: &mut BytesMut, ids: &[Ulid], code: RejectCode) {
    let mut idbuf = [0u8; ulid::ULID_LEN];
    for id in ids {
        b.extend_from_slice(b"{\"ok\":false,\"error\":\"");
        b.extend_from_slice(code.as_str().as_bytes());
        b.extend_from_slice(b"\",\"id\":\"");
        b.extend_from_slice(id.array_to_str(&mut idbuf).as_bytes());
        b.extend_from_slice(b"\"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(b: &[u8]) -> Vec<serde_json::Value> {
        b.split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn every_reply_is_one_json_line() {
        let mut b = BytesMut::new();
        put_reject(&mut b, RejectCode::WrongType, "a \"quoted\"\ndetail", 3);
        put_rate_limited(&mut b, "duplicate", 4);
        let ids = [Ulid::new(), Ulid::new()];
        put_acks(&mut b, &ids);
        put_nacks(&mut b, &ids[..1], RejectCode::Overloaded);
        let l = lines(&b);
        assert_eq!(l.len(), 5);
        assert_eq!(l[0]["error"], "wrong_type");
        assert_eq!(l[0]["detail"], "a \"quoted\"\ndetail");
        assert_eq!(l[0]["line"], 3);
        assert_eq!(l[1]["error"], "rate_limited");
        assert_eq!(l[1]["reason"], "duplicate");
        assert_eq!(l[2]["ok"], true);
        assert_eq!(l[3]["id"], ids[1].to_string());
        assert_eq!(l[4]["error"], "overloaded");
        assert_eq!(l[4]["id"], ids[0].to_string());
    }

    #[test]
    fn codes_are_indexed_in_order() {
        for (i, c) in RejectCode::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
