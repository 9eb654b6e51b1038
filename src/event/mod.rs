//! Events: the value types of one error event and the pure stages that read, clean and describe
//! it. Nothing here holds shared state or imports limit, analysis, memory, stats or the ring:
//! [`crate::pipeline`] runs these stages in order and owns everything stateful.
//!
//! - [`parse`]: one line → a borrowed [`parse::RawEvent`] (logger formats recognized in the
//!   same pass), or a [`parse::ParseError`].
//! - [`sanitize`]: secrets redacted in every field.
//! - [`fingerprint`]: the stable hash that groups one bug.
//! - [`classify`]: class and severity.
//! - [`record`]: the enriched `event` record (and `daemon` records), encoded by hand.
//! - [`level`]: levels as loggers spell them.

pub mod classify;
pub mod fingerprint;
pub mod level;
pub mod parse;
pub mod record;
pub mod sanitize;

use std::time::SystemTime;

/// Per-connection facts written into every record of that connection, encoded once.
#[derive(Debug, Clone)]
pub struct ConnMeta {
    /// The `peer` object, JSON.
    pub peer_json: Box<[u8]>,
    /// Default `service` (the peer's process name), as a quoted JSON string.
    pub service_json: Box<[u8]>,
    /// The same, plain.
    pub service: Box<str>,
    /// The peer's uid (0 when unknown), for `uid` rate limits.
    pub uid: u32,
}

/// Receive time of one read from a socket; every line of that read shares it.
#[derive(Debug, Clone)]
pub struct Received {
    pub time: SystemTime,
    pub unix_ns: u64,
    pub rfc3339: String,
}

impl Received {
    pub fn now() -> Self {
        let time = SystemTime::now();
        Self {
            time,
            unix_ns: record::unix_nanos(time),
            rfc3339: record::rfc3339_micros(time),
        }
    }
}
