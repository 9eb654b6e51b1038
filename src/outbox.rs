//! The outbox: the one route by which records that are not events reach the writer — `daemon`
//! records from background subsystems (breaker transitions, memory pressure changes, Redis
//! trouble, config reloads) and `advice` records from analysis. `app` makes one outbox and
//! hands a clone of its [`Outbox`] to each producer; the writer owns the [`OutboxReceiver`].
//!
//! Posting never blocks and never waits on the ring (whose overflow policy could drop the
//! record, and whose bounds are for events): records go through their own bounded queue that
//! the writer drains on every pass (after each write and at least every housekeeping tick).
//! When the queue is full the record is counted in `lost`, and the count is itself written as
//! a `daemon` record once there is room.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Records waiting for the writer. Notices are rare (a breaker changes state at most once per
/// cool-down); advice records come at most once per new fingerprint and analysis, paced by the
/// analysis workers. 1,024 holds a burst of both while the writer is stalled on a full disk
/// for a while; an advice record is ~1 KiB, so a full queue is ~1 MiB (docs/memory.md).
pub const CAPACITY: usize = 1024;

/// One record for the writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A `daemon` record: its `msg` and extra fields (the writer adds `kind` and `time`).
    Daemon {
        msg: String,
        fields: Vec<(&'static str, serde_json::Value)>,
    },
    /// An encoded `advice` record line (with its `\n`); the writer counts it once it is in the
    /// log (`Stats::advice_written`).
    Advice(Bytes),
}

#[derive(Debug, Default)]
struct Counts {
    posted: AtomicU64,
    lost: AtomicU64,
}

/// The producers' side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: Sender<Record>,
    counts: Arc<Counts>,
}

/// The writer's side.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: Receiver<Record>,
    counts: Arc<Counts>,
}

/// An outbox of [`CAPACITY`] records.
pub fn outbox() -> (Outbox, OutboxReceiver) {
    with_capacity(CAPACITY)
}

/// An outbox of `capacity` records.
pub fn with_capacity(capacity: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let counts = Arc::new(Counts::default());
    (
        Outbox {
            tx,
            counts: counts.clone(),
        },
        OutboxReceiver { rx, counts },
    )
}

impl Outbox {
    /// Queues a `daemon` record; never blocks. Also logged through `tracing` at info level.
    /// Returns false when it was lost (queue full, or the writer is gone).
    pub fn notice(
        &self,
        msg: impl Into<String>,
        fields: Vec<(&'static str, serde_json::Value)>,
    ) -> bool {
        let msg = msg.into();
        tracing::info!(fields = ?fields, "{msg}");
        self.post(Record::Daemon { msg, fields })
    }

    /// Queues an encoded `advice` record line; never blocks. Returns false when it was lost.
    pub fn advice(&self, line: Bytes) -> bool {
        self.post(Record::Advice(line))
    }

    fn post(&self, r: Record) -> bool {
        match self.tx.try_send(r) {
            Ok(()) => {
                self.counts.posted.fetch_add(1, Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.lost.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Records that did not fit the queue, since start.
    pub fn lost(&self) -> u64 {
        self.counts.lost.load(Relaxed)
    }

    /// Records queued, since start.
    pub fn posted(&self) -> u64 {
        self.counts.posted.load(Relaxed)
    }
}

impl OutboxReceiver {
    /// The channel, for a writer that waits on it together with the ring.
    pub fn receiver(&self) -> &Receiver<Record> {
        &self.rx
    }

    /// Takes every queued record.
    pub fn drain(&self) -> Vec<Record> {
        self.rx.try_iter().collect()
    }

    /// Records that did not fit the queue, since start.
    pub fn lost(&self) -> u64 {
        self.counts.lost.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_counted() {
        let (tx, rx) = with_capacity(8);
        for i in 0..8 + 5 {
            tx.notice(format!("n{i}"), vec![("i", i.into())]);
        }
        assert_eq!(tx.lost(), 5);
        assert_eq!(rx.lost(), 5);
        assert_eq!(tx.posted(), 8);
        let got = rx.drain();
        assert_eq!(got.len(), 8);
        assert!(matches!(&got[0], Record::Daemon { msg, .. } if msg == "n0"));
        assert!(rx.drain().is_empty());
        assert!(tx.advice(Bytes::from_static(b"{}\n")));
        assert_eq!(rx.drain(), [Record::Advice(Bytes::from_static(b"{}\n"))]);
    }

    #[test]
    fn a_gone_writer_counts_as_lost() {
        let (tx, rx) = with_capacity(4);
        drop(rx);
        assert!(!tx.notice("late", Vec::new()));
        assert_eq!(tx.lost(), 1);
    }
}
