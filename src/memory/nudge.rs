//! Waking the governor early. While RSS is flat and far under the budget the governor samples
//! less often, backing off up to once a second ([`governor`](super::governor)). What can change
//! that quickly is clients sending data, so the governor sets a *mark* — a number of bytes
//! read from clients since start, a fraction of its headroom ahead of the current count — and
//! the first read that takes the count past it wakes the governor for a sample at once.
//!
//! The hot path already keeps the running count (`Stats::bytes_in`, one `fetch_add` per read);
//! [`Nudge::bytes_read`] adds one relaxed load of the mark to it. The wake-up (a message on a
//! one-slot channel) happens at most once per mark: the reader that fires it disarms the mark.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

/// The mark's value while disarmed: no count reaches it.
const DISARMED: u64 = u64::MAX;

/// A nudge and its receiving end, disarmed.
pub fn nudge() -> (Nudge, NudgeRx) {
    let mark = Arc::new(AtomicU64::new(DISARMED));
    let (tx, rx) = crossbeam_channel::bounded(1);
    let tx_keep = tx.clone();
    (
        Nudge {
            mark: mark.clone(),
            tx,
        },
        NudgeRx {
            mark,
            rx,
            _open: tx_keep,
        },
    )
}

/// The readers' side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Nudge {
    mark: Arc<AtomicU64>,
    tx: Sender<()>,
}

impl Nudge {
    /// After a read: `total` is the count of bytes read from clients since start, this read
    /// included. Wakes the governor when it passes the mark.
    #[inline]
    pub fn bytes_read(&self, total: u64) {
        if total >= self.mark.load(Relaxed) {
            self.fire();
        }
    }

    #[cold]
    fn fire(&self) {
        // Only the reader that disarms the mark sends; the others see it disarmed.
        if self.mark.swap(DISARMED, Relaxed) != DISARMED {
            // Full: a wake-up is already waiting, which is as good.
            let _ = self.tx.try_send(());
        }
    }
}

/// The governor's side.
#[derive(Debug)]
pub struct NudgeRx {
    mark: Arc<AtomicU64>,
    rx: Receiver<()>,
    /// Keeps the channel open when every reader is gone (at shutdown), so the governor's
    /// wait does not turn into a busy loop of "disconnected".
    _open: Sender<()>,
}

impl NudgeRx {
    /// Wake the governor once the count of bytes read reaches `at`.
    pub fn arm(&self, at: u64) {
        self.mark.store(at, Relaxed);
    }

    /// No wake-ups (the governor samples often anyway).
    pub fn disarm(&self) {
        self.mark.store(DISARMED, Relaxed);
    }

    /// Ready when a reader passed the mark.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }

    /// Forgets a wake-up that is no longer needed (the governor sampled anyway).
    pub fn clear(&self) {
        while self.rx.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_once_per_mark_and_never_while_disarmed() {
        let (n, rx) = nudge();
        n.bytes_read(u64::MAX - 1);
        assert!(rx.receiver().try_recv().is_err(), "disarmed");
        rx.arm(1000);
        n.bytes_read(999);
        assert!(rx.receiver().try_recv().is_err(), "below the mark");
        let other = n.clone();
        n.bytes_read(1000);
        other.bytes_read(5000);
        assert!(rx.receiver().try_recv().is_ok(), "at the mark");
        assert!(rx.receiver().try_recv().is_err(), "once");
        n.bytes_read(9000);
        assert!(rx.receiver().try_recv().is_err(), "the mark is spent");
        rx.arm(10_000);
        rx.disarm();
        n.bytes_read(20_000);
        assert!(rx.receiver().try_recv().is_err(), "disarmed again");
        rx.arm(30_000);
        n.bytes_read(30_000);
        rx.clear();
        assert!(rx.receiver().try_recv().is_err(), "cleared");
    }
}
