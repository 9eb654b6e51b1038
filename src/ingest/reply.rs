//! Best-effort replies to one client: rejections from the reading task and acks from the writer
//! thread go into a byte-bounded buffer that the connection's reply task flushes to the socket.
//! A client that never reads fills its buffer; further replies are dropped and counted, and
//! nothing on the ingest path ever waits for the client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::sync::Notify;
use ulid::Ulid;

use crate::protocol::{self, RejectCode};
use crate::ring::Ack;
use crate::stats::Stats;

#[derive(Debug)]
pub struct Replies {
    buf: Mutex<BytesMut>,
    cap: usize,
    /// Wakes the reply task (a stored permit if it isn't waiting).
    pub(crate) wake: Notify,
    /// Acked events queued but not yet written.
    pending_acks: AtomicUsize,
    stats: Arc<Stats>,
}

impl Replies {
    pub fn new(cap: usize, stats: Arc<Stats>) -> Self {
        Self {
            buf: Mutex::new(BytesMut::new()),
            cap,
            wake: Notify::new(),
            pending_acks: AtomicUsize::new(0),
            stats,
        }
    }

    fn push_with(&self, f: impl FnOnce(&mut BytesMut)) {
        let mut buf = match self.buf.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let before = buf.len();
        f(&mut buf);
        if buf.len() > self.cap && before > 0 {
            // Over the bound: drop this reply (the first one always fits).
            buf.truncate(before);
            self.stats.replies_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        drop(buf);
        self.wake.notify_one();
    }

    /// A rejected line (PROTOCOL.md).
    pub fn reject(&self, code: RejectCode, detail: &dyn std::fmt::Display, line: u64) {
        let detail = detail.to_string();
        self.push_with(|b| protocol::put_reject(b, code, &detail, line));
    }

    /// `rate_limited` for an event that asked for an ack and was suppressed (PROTOCOL.md). Not
    /// a rejection: not counted as one.
    pub fn rate_limited(&self, reason: Option<crate::limit::suppress::Reason>, line: u64) {
        let reason = reason.map_or("rate_limit", |r| r.as_str());
        self.push_with(|b| protocol::put_rate_limited(b, reason, line));
    }

    /// Marks `n` acked events as queued; each is later settled by [`ack`](Self::ack) or
    /// [`nack`](Self::nack).
    pub fn expect_acks(&self, n: usize) {
        self.pending_acks.fetch_add(n, Ordering::AcqRel);
    }

    pub fn pending_acks(&self) -> usize {
        self.pending_acks.load(Ordering::Acquire)
    }

    /// Takes everything buffered.
    pub fn take(&self) -> BytesMut {
        let mut buf = match self.buf.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        buf.split()
    }
}

/// The writer settles acked events through this (see [`Ack`]).
impl Ack for Replies {
    /// `{"ok":true,"id":ID}` for written events (called by the writer thread).
    fn ack(&self, ids: &[Ulid]) {
        if ids.is_empty() {
            return;
        }
        self.push_with(|b| protocol::put_acks(b, ids));
        self.stats
            .acks
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        self.pending_acks.fetch_sub(ids.len(), Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Acked events that were not written (dropped): `{"ok":false,"error":CODE,"id":ID}`.
    fn nack(&self, ids: &[Ulid], code: RejectCode) {
        if ids.is_empty() {
            return;
        }
        self.push_with(|b| protocol::put_nacks(b, ids, code));
        self.pending_acks.fetch_sub(ids.len(), Ordering::AcqRel);
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_bounded_and_counted() {
        let stats = Arc::new(Stats::default());
        let r = Replies::new(200, stats.clone());
        for i in 0..100 {
            r.reject(RejectCode::InvalidJson, &"bad \"thing\"", i);
        }
        let out = r.take();
        assert!(out.len() <= 200 + 100);
        assert!(stats.replies_dropped.load(Ordering::Relaxed) >= 97);
        let first = out[..].split(|b| *b == b'\n').next().unwrap();
        let v: serde_json::Value = serde_json::from_slice(first).unwrap();
        assert_eq!(v["error"], "invalid_json");
        assert_eq!(v["detail"], "bad \"thing\"");
        assert_eq!(v["line"], 0);
    }

    #[test]
    fn acks_settle_pending() {
        let r = Replies::new(1 << 16, Arc::new(Stats::default()));
        r.expect_acks(3);
        let ids = [Ulid::new(), Ulid::new()];
        r.ack(&ids);
        r.nack(&[Ulid::new()], RejectCode::Overloaded);
        assert_eq!(r.pending_acks(), 0);
        let out = r.take();
        let lines: Vec<serde_json::Value> = out[..]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["id"], ids[0].to_string());
        assert_eq!(lines[2]["error"], "overloaded");
    }
}
