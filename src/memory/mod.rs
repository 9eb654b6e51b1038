//! Memory governance: the pressure level every bounded structure listens to.
//!
//! The [`governor`] samples the process's RSS, the cgroup's limit and usage (v2 and v1) and the
//! kernel's pressure stall information, and publishes a [`Pressure`] level on a
//! `tokio::sync::watch` channel and in a [`PressureCell`] (one atomic byte, for the hot path:
//! connections read it once per socket read). Components take a [`PressureRx`] in their
//! constructors, or are driven by [`listen`], and shrink when it rises (DESIGN.md, "Degradation
//! order under pressure"; docs/memory.md). The governor samples less often while memory is
//! flat and far under budget; ingest wakes it early through a [`Nudge`] when clients send a
//! burst.
#![deny(unsafe_code)] // `trim` allows its one libc call

pub mod config;
pub mod governor;
pub mod nudge;
pub mod sample;
pub mod trim;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use tokio::sync::watch;

pub use config::{Memory, MemoryConfig};
pub use nudge::{nudge, Nudge, NudgeRx};

/// How close the daemon is to its memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Pressure {
    /// Under the lower threshold: full-size caches and queues.
    #[default]
    Normal,
    /// Over the lower threshold: caches shrink, debug/info events are sampled, analysis of new
    /// fingerprints pauses.
    High,
    /// Over the higher threshold: queues tighten too and `/ready` fails.
    Critical,
}

impl Pressure {
    pub const ALL: [Pressure; 3] = [Pressure::Normal, Pressure::High, Pressure::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Pressure::Normal => "normal",
            Pressure::High => "high",
            Pressure::Critical => "critical",
        }
    }

    fn from_u8(v: u8) -> Pressure {
        match v {
            0 => Pressure::Normal,
            1 => Pressure::High,
            _ => Pressure::Critical,
        }
    }
}

pub type PressureTx = watch::Sender<Pressure>;
pub type PressureRx = watch::Receiver<Pressure>;

/// A pressure channel starting at `Normal`.
pub fn channel() -> (PressureTx, PressureRx) {
    watch::channel(Pressure::Normal)
}

/// The current level as one atomic byte: what the hot path reads (no lock, no allocation).
#[derive(Debug, Clone, Default)]
pub struct PressureCell(Arc<AtomicU8>);

impl PressureCell {
    pub fn get(&self) -> Pressure {
        Pressure::from_u8(self.0.load(Relaxed))
    }

    pub fn set(&self, p: Pressure) {
        self.0.store(p as u8, Relaxed);
    }
}

/// What the governor last saw, for `/stats`, `/metrics` and `/ready`. Plain atomics written by
/// the governor thread only.
#[derive(Debug, Default)]
pub struct MemoryStatus {
    pub level: PressureCell,
    pub rss_bytes: AtomicU64,
    /// The budget in force (configured, or derived from the cgroup limit).
    pub budget_bytes: AtomicU64,
    /// `memory.max` / `memory.high` (v2) or `memory.limit_in_bytes` (v1); 0 = none.
    pub cgroup_limit_bytes: AtomicU64,
    /// `memory.current` (v2) or `memory.usage_in_bytes` (v1); 0 = unknown.
    pub cgroup_usage_bytes: AtomicU64,
    /// PSI `some avg10` of memory, in hundredths of a percent; 0 when unavailable.
    pub psi_some_avg10_centi: AtomicU64,
    /// Entries into each level (index = `Pressure as usize`), since start.
    pub entered: [AtomicU64; 3],
    /// Samples taken.
    pub samples: AtomicU64,
    /// The governor's current pause between samples, in ms (`sample_interval`, or longer
    /// while it backs off).
    pub interval_ms: AtomicU64,
}

impl MemoryStatus {
    /// Level changes since start.
    pub fn transitions(&self) -> u64 {
        self.entered.iter().map(|a| a.load(Relaxed)).sum()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let opt = |v: u64| (v > 0).then_some(v);
        serde_json::json!({
            "rss_bytes": self.rss_bytes.load(Relaxed),
            "budget_bytes": opt(self.budget_bytes.load(Relaxed)),
            "pressure": self.level.get().as_str(),
            "cgroup_limit_bytes": opt(self.cgroup_limit_bytes.load(Relaxed)),
            "cgroup_usage_bytes": opt(self.cgroup_usage_bytes.load(Relaxed)),
            "psi_some_avg10": self.psi_some_avg10_centi.load(Relaxed) as f64 / 100.0,
            "sample_interval_ms": self.interval_ms.load(Relaxed),
            "transitions": {
                "normal": self.entered[0].load(Relaxed),
                "high": self.entered[1].load(Relaxed),
                "critical": self.entered[2].load(Relaxed),
            },
        })
    }
}

/// Under `high` pressure one debug/info event in this many is kept per connection (the rest
/// are counted as `suppressed` with reason `pressure`); under `critical` none is.
pub const SAMPLE_EVERY: u32 = 16;

/// Whether the next low-severity event passes sampling at level `p`; `counter` is the
/// connection's own (no sharing).
pub fn keep_sampled(p: Pressure, counter: &mut u32) -> bool {
    match p {
        Pressure::Normal => true,
        Pressure::High => {
            *counter = counter.wrapping_add(1);
            *counter % SAMPLE_EVERY == 1
        }
        Pressure::Critical => false,
    }
}

/// Runs `apply` with the current level now and again on every change, until the sender is
/// gone. For structures that shrink in place (ring, history, fingerprint table; the advice
/// cache and limiter maps use the same hook). `apply` must be quick: it runs on a runtime task.
pub fn listen(
    mut rx: PressureRx,
    apply: impl Fn(Pressure) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let p = *rx.borrow_and_update();
            apply(p);
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_round_trips_every_level() {
        let c = PressureCell::default();
        assert_eq!(c.get(), Pressure::Normal);
        for p in Pressure::ALL {
            c.set(p);
            assert_eq!(c.get(), p);
        }
    }

    #[test]
    fn sampling_keeps_one_in_n_under_high_and_none_under_critical() {
        let mut c = 0;
        let kept = (0..SAMPLE_EVERY * 10)
            .filter(|_| keep_sampled(Pressure::High, &mut c))
            .count();
        assert_eq!(kept, 10);
        assert!(keep_sampled(Pressure::Normal, &mut c));
        assert!(!keep_sampled(Pressure::Critical, &mut c));
    }

    #[tokio::test]
    async fn listen_sees_the_current_level_and_every_change() {
        let (tx, rx) = channel();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let task = listen(rx, move |p| s.lock().unwrap().push(p));
        tokio::task::yield_now().await;
        tx.send(Pressure::Critical).unwrap();
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        drop(tx);
        task.await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [Pressure::Normal, Pressure::Critical]
        );
    }
}
