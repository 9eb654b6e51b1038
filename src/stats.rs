//! Daemon-wide counters: plain atomics, bumped on the hot path with `Relaxed` ordering and read
//! by the writer's summaries, the stop record and (later) the control plane.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::event::parse::RejectCode;

/// Counters shared by every stage. One instance, created in `app` and passed by `Arc`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Lines framed (valid or not).
    pub lines: AtomicU64,
    /// Bytes read from client sockets.
    pub bytes_in: AtomicU64,
    /// Events parsed, validated and queued for the log.
    pub accepted: AtomicU64,
    /// Lines rejected, by [`RejectCode`] index.
    pub rejected: [AtomicU64; RejectCode::ALL.len()],
    /// Events that passed validation but were dropped because the ring was full (`drop_newest`).
    pub dropped_overload: AtomicU64,
    /// Event records written to the log.
    pub written: AtomicU64,
    /// Bytes written to the log (all record kinds).
    pub bytes_out: AtomicU64,
    /// Write batches issued.
    pub batches: AtomicU64,
    /// Acks sent back to clients (queued on their reply buffer).
    pub acks: AtomicU64,
    /// Replies that did not fit a client's reply buffer (client not reading).
    pub replies_dropped: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    /// Log file write errors (each retried).
    pub write_errors: AtomicU64,
    pub rotations: AtomicU64,
}

impl Stats {
    pub fn reject(&self, code: RejectCode) {
        self.rejected[code.index()].fetch_add(1, Relaxed);
    }

    pub fn rejected(&self, code: RejectCode) -> u64 {
        self.rejected[code.index()].load(Relaxed)
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|c| c.load(Relaxed)).sum()
    }
}
