//! The ring: a lock-free bounded MPMC queue between the connection tasks and the writer thread,
//! bounded by events **and** encoded bytes.
//!
//! The bound is the reservation counters below, not the channel: the channel is crossbeam's
//! lock-free list flavour, which allocates blocks of slots as batches queue and frees them as
//! the writer takes them. An array channel sized for `capacity_events` batches would hold
//! `capacity_events` × 96 B (6 MiB at the default) from start to exit, touched on creation,
//! whether anything is queued or not.
//!
//! The unit of transfer is a [`Batch`]: the encoded records of one socket read, so the hand-off
//! costs one queue operation per read rather than per event. Space is reserved with two atomic
//! counters before a batch is queued and released by the writer once the batch is written, so
//! the bounds cover everything between ingest and the disk. When space is short the policy
//! decides: `Backpressure` parks the connection task (it stops reading its socket, and the
//! client blocks in its kernel buffer) until the writer frees space; `DropNewest` hands the batch
//! back to be counted as dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::Notify;
use ulid::Ulid;

use crate::config::OverflowPolicy;
use crate::protocol::RejectCode;

/// What the writer calls to settle a batch's acked events once the batch is written (or given
/// up). The ring defines it so the ring and the writer never depend on ingest; a connection's
/// reply buffer implements it.
pub trait Ack: Send + Sync + std::fmt::Debug {
    /// The events reached the log.
    fn ack(&self, ids: &[Ulid]);
    /// The events will never reach the log, for `code`'s reason.
    fn nack(&self, ids: &[Ulid], code: RejectCode);
}

/// Encoded records from one read of one connection.
#[derive(Debug)]
pub struct Batch {
    /// Whole NDJSON lines.
    pub data: Bytes,
    /// Event records in `data`.
    pub events: usize,
    /// Ids to acknowledge once written, all belonging to `acker`'s connection.
    pub acks: Vec<Ulid>,
    pub acker: Option<Arc<dyn Ack>>,
    /// When the batch was read from the socket (for ingest→write latency).
    pub received: Instant,
}

/// What [`RingReceiver::recv_or`] woke up for.
#[derive(Debug)]
pub enum Woken<R> {
    Batch(Batch),
    /// A message on the other channel; `None`: that channel is closed.
    Other(Option<R>),
    /// A wake-up on the control channel (the caller checks what was asked).
    Control,
}

#[derive(Debug)]
pub enum PushError {
    /// No space and the policy is `DropNewest`.
    Full(Batch),
    /// The writer is gone.
    Closed(Batch),
}

/// Under `critical` memory pressure the ring's byte budget is 1/this of its configured size
/// (docs/memory.md): producers then wait (backpressure) or drop (drop_newest) sooner.
pub const CRITICAL_BYTES_DIVISOR: usize = 4;

#[derive(Debug)]
struct State {
    max_events: usize,
    /// Configured byte budget.
    cap_bytes: usize,
    /// Byte budget in force: `cap_bytes`, tightened under critical memory pressure.
    max_bytes: AtomicUsize,
    /// `true` = `DropNewest`; changes on config reload.
    drop_newest: AtomicBool,
    events: AtomicUsize,
    bytes: AtomicUsize,
    /// Signalled by the writer after releasing space.
    space: Notify,
    pushed: AtomicU64,
    popped: AtomicU64,
}

impl State {
    /// Reserves room for a batch. A batch always fits into an empty ring, whatever its size, so a
    /// single oversized batch cannot wedge the pipeline.
    fn try_reserve(&self, events: usize, bytes: usize) -> bool {
        let prev_e = self.events.fetch_add(events, Ordering::AcqRel);
        let prev_b = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        let empty = prev_e == 0 && prev_b == 0;
        let max_bytes = self.max_bytes.load(Ordering::Relaxed);
        if empty || (prev_e + events <= self.max_events && prev_b + bytes <= max_bytes) {
            return true;
        }
        self.release(events, bytes);
        false
    }

    fn release(&self, events: usize, bytes: usize) {
        self.events.fetch_sub(events, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Cheap, cloneable view of the ring's fill level.
#[derive(Debug, Clone)]
pub struct RingStats(Arc<State>);

impl RingStats {
    pub fn events(&self) -> usize {
        self.0.events.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> usize {
        self.0.bytes.load(Ordering::Relaxed)
    }
    pub fn capacity_events(&self) -> usize {
        self.0.max_events
    }
    /// The byte budget in force (tightened under critical memory pressure).
    pub fn capacity_bytes(&self) -> usize {
        self.0.max_bytes.load(Ordering::Relaxed)
    }
    /// The configured byte budget.
    pub fn configured_bytes(&self) -> usize {
        self.0.cap_bytes
    }
    /// Batches queued / taken since start.
    pub fn pushed(&self) -> u64 {
        self.0.pushed.load(Ordering::Relaxed)
    }
    pub fn popped(&self) -> u64 {
        self.0.popped.load(Ordering::Relaxed)
    }
}

/// The producer side, one clone per connection.
#[derive(Debug, Clone)]
pub struct RingSender {
    tx: Sender<Batch>,
    state: Arc<State>,
}

/// The consumer side, owned by the writer thread.
#[derive(Debug)]
pub struct RingReceiver {
    rx: Receiver<Batch>,
    state: Arc<State>,
}

pub fn ring(
    max_events: usize,
    max_bytes: usize,
    policy: OverflowPolicy,
) -> (RingSender, RingReceiver) {
    let max_events = max_events.max(1);
    // Reservations bound what is queued (every event batch reserves at least one event slot and
    // its bytes first), so the channel itself need not be bounded; see the module docs.
    let (tx, rx) = crossbeam_channel::unbounded();
    let state = Arc::new(State {
        max_events,
        cap_bytes: max_bytes.max(1),
        max_bytes: AtomicUsize::new(max_bytes.max(1)),
        drop_newest: AtomicBool::new(policy == OverflowPolicy::DropNewest),
        events: AtomicUsize::new(0),
        bytes: AtomicUsize::new(0),
        space: Notify::new(),
        pushed: AtomicU64::new(0),
        popped: AtomicU64::new(0),
    });
    (
        RingSender {
            tx,
            state: state.clone(),
        },
        RingReceiver { rx, state },
    )
}

impl RingSender {
    pub fn stats(&self) -> RingStats {
        RingStats(self.state.clone())
    }

    /// Switches the overflow policy (config reload); waiting producers re-check it.
    pub fn set_policy(&self, policy: OverflowPolicy) {
        self.state
            .drop_newest
            .store(policy == OverflowPolicy::DropNewest, Ordering::Relaxed);
        self.state.space.notify_waiters();
    }

    /// Follows the memory pressure level: under `Critical` the byte budget shrinks to
    /// 1/[`CRITICAL_BYTES_DIVISOR`] (batches already queued stay; new ones wait or drop until
    /// the ring is under the new budget), otherwise it is the configured one.
    pub fn set_pressure(&self, p: crate::memory::Pressure) {
        let st = &self.state;
        let bytes = match p {
            crate::memory::Pressure::Critical => (st.cap_bytes / CRITICAL_BYTES_DIVISOR).max(1),
            _ => st.cap_bytes,
        };
        st.max_bytes.store(bytes, Ordering::Relaxed);
        st.space.notify_waiters();
    }

    /// Queues a batch, waiting for space under `Backpressure`.
    pub async fn push(&self, batch: Batch) -> Result<(), PushError> {
        let (events, bytes) = (batch.events, batch.data.len());
        loop {
            let notified = self.state.space.notified();
            tokio::pin!(notified);
            // Register before checking so a release between the check and the await is not missed.
            notified.as_mut().enable();
            if self.state.try_reserve(events, bytes) {
                return self.send(batch);
            }
            if self.state.drop_newest.load(Ordering::Relaxed) {
                return Err(PushError::Full(batch));
            }
            notified.await;
        }
    }

    fn send(&self, batch: Batch) -> Result<(), PushError> {
        let (events, bytes) = (batch.events, batch.data.len());
        match self.tx.try_send(batch) {
            Ok(()) => {
                self.state.pushed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.state.release(events, bytes);
                Err(PushError::Closed(e.into_inner()))
            }
        }
    }
}

impl RingReceiver {
    pub fn stats(&self) -> RingStats {
        RingStats(self.state.clone())
    }

    /// Waits until `deadline` for a batch, a message on `other` (the writer's second input)
    /// or a wake-up on `control`, whichever comes first; batches win a tie, then `other`.
    pub fn recv_or<R>(
        &self,
        other: &Receiver<R>,
        control: &Receiver<()>,
        deadline: Instant,
    ) -> Result<Woken<R>, RecvTimeoutError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        crossbeam_channel::select_biased! {
            recv(self.rx) -> b => match b {
                Ok(b) => {
                    self.state.popped.fetch_add(1, Ordering::Relaxed);
                    Ok(Woken::Batch(b))
                }
                Err(_) => Err(RecvTimeoutError::Disconnected),
            },
            recv(other) -> m => Ok(Woken::Other(m.ok())),
            recv(control) -> _ => Ok(Woken::Control),
            default(timeout) => Err(RecvTimeoutError::Timeout),
        }
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Result<Batch, RecvTimeoutError> {
        let b = self.rx.recv_timeout(timeout)?;
        self.state.popped.fetch_add(1, Ordering::Relaxed);
        Ok(b)
    }

    pub fn try_recv(&self) -> Result<Batch, TryRecvError> {
        let b = self.rx.try_recv()?;
        self.state.popped.fetch_add(1, Ordering::Relaxed);
        Ok(b)
    }

    /// Frees the space of written (or finally abandoned) batches and wakes blocked producers.
    pub fn release(&self, events: usize, bytes: usize) {
        self.state.release(events, bytes);
        self.state.space.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(events: usize, bytes: usize) -> Batch {
        Batch {
            data: Bytes::from(vec![b'x'; bytes]),
            events,
            acks: Vec::new(),
            acker: None,
            received: Instant::now(),
        }
    }

    #[tokio::test]
    async fn drop_newest_refuses_when_events_or_bytes_are_exhausted() {
        let (tx, rx) = ring(3, 100, OverflowPolicy::DropNewest);
        tx.push(batch(2, 10)).await.unwrap();
        assert!(matches!(
            tx.push(batch(2, 10)).await,
            Err(PushError::Full(_))
        ));
        tx.push(batch(1, 10)).await.unwrap();
        let b = rx.try_recv().unwrap();
        rx.release(b.events, b.data.len());
        // bytes bound
        assert!(matches!(
            tx.push(batch(1, 95)).await,
            Err(PushError::Full(_))
        ));
        assert_eq!(tx.stats().events(), 1);
        assert_eq!(tx.stats().bytes(), 10);
    }

    #[tokio::test]
    async fn an_oversized_batch_fits_an_empty_ring() {
        let (tx, rx) = ring(2, 10, OverflowPolicy::DropNewest);
        tx.push(batch(5, 50)).await.unwrap();
        assert_eq!(rx.try_recv().unwrap().events, 5);
    }

    #[tokio::test]
    async fn backpressure_waits_until_the_writer_releases() {
        let (tx, rx) = ring(2, 1000, OverflowPolicy::Backpressure);
        tx.push(batch(2, 10)).await.unwrap();
        let tx2 = tx.clone();
        let blocked = tokio::spawn(async move { tx2.push(batch(1, 10)).await.is_ok() });
        tokio::task::yield_now().await;
        assert!(!blocked.is_finished());
        let writer = std::thread::spawn(move || {
            let b = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            rx.release(b.events, b.data.len());
            let b = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            rx.release(b.events, b.data.len());
            b.events
        });
        assert!(blocked.await.unwrap());
        assert_eq!(writer.join().unwrap(), 1);
        assert_eq!(tx.stats().pushed(), 2);
        assert_eq!(tx.stats().popped(), 2);
    }

    #[tokio::test]
    async fn critical_pressure_tightens_the_byte_budget() {
        let (tx, rx) = ring(100, 1000, OverflowPolicy::DropNewest);
        tx.set_pressure(crate::memory::Pressure::Critical);
        assert_eq!(tx.stats().capacity_bytes(), 250);
        tx.push(batch(1, 200)).await.unwrap();
        assert!(matches!(
            tx.push(batch(1, 100)).await,
            Err(PushError::Full(_))
        ));
        tx.set_pressure(crate::memory::Pressure::High);
        assert_eq!(tx.stats().capacity_bytes(), 1000);
        tx.push(batch(1, 100)).await.unwrap();
        assert_eq!(rx.try_recv().unwrap().data.len(), 200);
    }

    #[tokio::test]
    async fn closed_when_the_writer_is_gone() {
        let (tx, rx) = ring(2, 1000, OverflowPolicy::Backpressure);
        drop(rx);
        assert!(matches!(
            tx.push(batch(1, 1)).await,
            Err(PushError::Closed(_))
        ));
        assert_eq!(tx.stats().events(), 0);
    }
}
