//! Notices: `daemon` records posted by background subsystems (breaker transitions, memory
//! pressure changes, Redis connection trouble) for the writer thread to put in the log.
//!
//! Posting never blocks and never waits on the ring (whose overflow policy could drop the
//! record): notices go through their own small bounded queue that the writer drains on every
//! housekeeping pass. When the queue is full the notice is counted in `lost` and the count is
//! itself written with the next notice that fits.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Notices waiting for the writer. Transitions are rare (a breaker changes state at most once
/// per cool-down), so a few hundred is plenty even while the writer is stalled on a full disk.
pub const CAPACITY: usize = 256;

/// One `daemon` record: its `msg` and extra fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub msg: String,
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

#[derive(Debug)]
pub struct Notices {
    tx: Sender<Notice>,
    rx: Receiver<Notice>,
    lost: AtomicU64,
    posted: AtomicU64,
}

impl Default for Notices {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
        Self {
            tx,
            rx,
            lost: AtomicU64::new(0),
            posted: AtomicU64::new(0),
        }
    }
}

impl Notices {
    /// Queues a notice; never blocks. Also logged through `tracing` at info level.
    pub fn post(&self, msg: impl Into<String>, fields: Vec<(&'static str, serde_json::Value)>) {
        let msg = msg.into();
        tracing::info!(fields = ?fields, "{msg}");
        match self.tx.try_send(Notice { msg, fields }) {
            Ok(()) => {
                self.posted.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.lost.fetch_add(1, Relaxed);
            }
        }
    }

    /// Takes every queued notice (writer side).
    pub fn drain(&self) -> Vec<Notice> {
        self.rx.try_iter().collect()
    }

    /// Notices that did not fit the queue, since start.
    pub fn lost(&self) -> u64 {
        self.lost.load(Relaxed)
    }

    pub fn posted(&self) -> u64 {
        self.posted.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_counted() {
        let n = Notices::default();
        for i in 0..CAPACITY + 5 {
            n.post(format!("n{i}"), vec![("i", i.into())]);
        }
        assert_eq!(n.lost(), 5);
        let got = n.drain();
        assert_eq!(got.len(), CAPACITY);
        assert_eq!(got[0].msg, "n0");
        assert!(n.drain().is_empty());
        n.post("again", Vec::new());
        assert_eq!(n.drain().len(), 1);
    }
}
