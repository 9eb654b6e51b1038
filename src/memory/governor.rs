//! The governor: a small thread that samples memory every `memory.sample_interval`, turns the
//! sample into a [`Pressure`] level (two thresholds with hysteresis, plus PSI as an early
//! signal) and publishes it — in a [`PressureCell`](super::PressureCell) for the hot path and on the watch channel
//! for the structures that shrink. Transitions are written as `daemon` records (through the
//! notice queue, never blocking) and counted.
//!
//! The level logic ([`next_level`]) is a pure function of the current level and a sample, so it
//! is tested with fed-in samples.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use serde_json::json;

use super::config::{Memory, FALLBACK_BUDGET};
use super::sample::{Sample, Sampler};
use super::{MemoryStatus, Pressure, PressureTx};
use crate::outbox::Outbox;

/// PSI `some avg10` (percent of the last 10 s in which some task waited for memory) at or above
/// which pressure is at least `high`, whatever RSS says: the kernel is already reclaiming hard
/// (a cgroup at its `memory.high`, or the whole host short of memory).
pub const PSI_HIGH: f64 = 10.0;

/// While pressure is above normal, freed memory is handed back to the kernel at most this often
/// (and at once on each rise): trimming walks the allocator's arenas, a few milliseconds.
pub const TRIM_INTERVAL: Duration = Duration::from_millis(500);

/// Byte thresholds derived from a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub budget: u64,
    pub high: u64,
    pub critical: u64,
    pub hysteresis: u64,
}

impl Thresholds {
    pub fn new(cfg: &Memory, budget: u64) -> Self {
        let of = |f: f64| (budget as f64 * f) as u64;
        Self {
            budget,
            high: of(cfg.high_threshold),
            critical: of(cfg.critical_threshold),
            hysteresis: of(cfg.hysteresis),
        }
    }
}

/// The budget in force for a sample: configured, else a share of the cgroup limit, else
/// [`FALLBACK_BUDGET`].
pub fn budget(cfg: &Memory, s: &Sample) -> u64 {
    cfg.budget
        .or(s
            .cgroup_limit
            .map(|l| (l as f64 * cfg.budget_fraction) as u64))
        .unwrap_or(FALLBACK_BUDGET)
}

/// The level after observing `used` bytes (RSS) and PSI at `current`. Rising is immediate;
/// falling needs usage `hysteresis` below the threshold (and PSI back under half of
/// [`PSI_HIGH`]), so a daemon hovering at a threshold does not flap.
pub fn next_level(current: Pressure, used: u64, psi: Option<f64>, t: &Thresholds) -> Pressure {
    let psi_high = psi.is_some_and(|p| p >= PSI_HIGH);
    let target = if used >= t.critical {
        Pressure::Critical
    } else if used >= t.high || psi_high {
        Pressure::High
    } else {
        Pressure::Normal
    };
    if target >= current {
        return target;
    }
    let psi_calm = psi.is_none_or(|p| p < PSI_HIGH / 2.0);
    let below_high = used < t.high.saturating_sub(t.hysteresis) && psi_calm;
    match current {
        Pressure::Critical if used < t.critical.saturating_sub(t.hysteresis) => {
            if below_high {
                Pressure::Normal
            } else {
                Pressure::High
            }
        }
        Pressure::High if below_high => Pressure::Normal,
        other => other,
    }
}

/// Owns the sampler and the publishing side.
pub struct Governor {
    cfg: Memory,
    tx: PressureTx,
    status: Arc<MemoryStatus>,
    /// Level changes go to the log as `daemon` records.
    outbox: Outbox,
    level: Pressure,
    last_trim: Option<Instant>,
}

impl Governor {
    pub fn new(cfg: Memory, tx: PressureTx, status: Arc<MemoryStatus>, outbox: Outbox) -> Self {
        let level = *tx.borrow();
        Self {
            cfg,
            tx,
            status,
            outbox,
            level,
            last_trim: None,
        }
    }

    /// Under pressure, hands freed memory back to the kernel: on the sample after a rise (the
    /// listeners have shrunk their structures by then), then every [`TRIM_INTERVAL`].
    fn trim(&mut self, now: Instant, rose: bool) {
        if rose {
            self.last_trim = None;
            return;
        }
        if self.level == Pressure::Normal {
            return;
        }
        if self.last_trim.is_none_or(|t| now - t >= TRIM_INTERVAL) {
            self.last_trim = Some(now);
            super::trim::release_free_memory();
        }
    }

    /// Applies one sample: updates the status, and on a level change publishes it, counts it
    /// and posts a `daemon` record. Returns the level.
    pub fn observe(&mut self, s: &Sample) -> Pressure {
        let t = Thresholds::new(&self.cfg, budget(&self.cfg, s));
        let st = &self.status;
        st.rss_bytes.store(s.rss, Relaxed);
        st.budget_bytes.store(t.budget, Relaxed);
        st.cgroup_limit_bytes
            .store(s.cgroup_limit.unwrap_or(0), Relaxed);
        st.cgroup_usage_bytes
            .store(s.cgroup_usage.unwrap_or(0), Relaxed);
        st.psi_some_avg10_centi.store(
            s.psi_some_avg10.map_or(0, |p| (p * 100.0).round() as u64),
            Relaxed,
        );
        st.samples.fetch_add(1, Relaxed);
        let next = next_level(self.level, s.rss, s.psi_some_avg10, &t);
        if next != self.level {
            let from = self.level;
            self.level = next;
            st.level.set(next);
            st.entered[next as usize].fetch_add(1, Relaxed);
            // Receivers gone (shutdown) is fine: the cell still carries the level.
            let _ = self.tx.send(next);
            self.outbox.notice(
                format!("memory pressure {}", next.as_str()),
                vec![
                    ("from", json!(from.as_str())),
                    ("to", json!(next.as_str())),
                    ("rss_bytes", json!(s.rss)),
                    ("budget_bytes", json!(t.budget)),
                    ("psi_some_avg10", json!(s.psi_some_avg10)),
                ],
            );
        }
        next
    }

    /// Starts sampling on its own thread (the reads are file I/O, kept off the runtime).
    /// The first sample is taken before this returns, so the budget is known at once.
    pub fn spawn(mut self) -> std::io::Result<GovernorHandle> {
        let mut sampler = Sampler::detect();
        tracing::info!(source = %sampler.describe(), "memory governor sampling");
        self.observe(&sampler.sample());
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let interval = self.cfg.sample_interval;
        let thread = std::thread::Builder::new()
            .name("qerrors-memory".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {
                        let before = self.level;
                        let now = self.observe(&sampler.sample());
                        self.trim(Instant::now(), now > before);
                    }
                    _ => return,
                }
            })?;
        Ok(GovernorHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Stops the governor thread when dropped.
pub struct GovernorHandle {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for GovernorHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryConfig;
    use Pressure::*;

    const MIB: u64 = 1 << 20;

    fn cfg(budget_mib: u64) -> Memory {
        MemoryConfig {
            budget: bytesize::ByteSize::mib(budget_mib),
            ..Default::default()
        }
        .validate()
        .unwrap()
    }

    fn t100() -> Thresholds {
        // high 80, critical 95, hysteresis 5 (MiB)
        Thresholds::new(&cfg(100), 100 * MIB)
    }

    #[test]
    fn rises_at_once_through_both_thresholds() {
        let t = t100();
        assert_eq!(next_level(Normal, 79 * MIB, None, &t), Normal);
        assert_eq!(next_level(Normal, 80 * MIB, None, &t), High);
        assert_eq!(next_level(Normal, 96 * MIB, None, &t), Critical);
        assert_eq!(next_level(High, 95 * MIB, None, &t), Critical);
    }

    #[test]
    fn falls_only_past_the_hysteresis() {
        let t = t100();
        assert_eq!(
            next_level(High, 78 * MIB, None, &t),
            High,
            "inside the band"
        );
        assert_eq!(next_level(High, 75 * MIB, None, &t), High, "at the edge");
        assert_eq!(next_level(High, 74 * MIB, None, &t), Normal);
        assert_eq!(next_level(Critical, 92 * MIB, None, &t), Critical);
        assert_eq!(next_level(Critical, 89 * MIB, None, &t), High);
        assert_eq!(next_level(Critical, 10 * MIB, None, &t), Normal);
    }

    #[test]
    fn psi_raises_to_high_and_holds_until_calm() {
        let t = t100();
        assert_eq!(next_level(Normal, 10 * MIB, Some(12.0), &t), High);
        assert_eq!(
            next_level(High, 10 * MIB, Some(7.0), &t),
            High,
            "not calm yet"
        );
        assert_eq!(next_level(High, 10 * MIB, Some(1.0), &t), Normal);
        assert_eq!(next_level(Normal, 10 * MIB, Some(9.9), &t), Normal);
    }

    #[test]
    fn budget_comes_from_config_then_cgroup_then_fallback() {
        let s = |limit| Sample {
            cgroup_limit: limit,
            ..Default::default()
        };
        assert_eq!(budget(&cfg(48), &s(Some(1 << 40))), 48 * MIB);
        let auto = MemoryConfig::default().validate().unwrap();
        assert_eq!(budget(&auto, &s(Some(400 * MIB))), 300 * MIB);
        assert_eq!(budget(&auto, &s(None)), FALLBACK_BUDGET);
    }

    #[test]
    fn observe_publishes_counts_and_posts_each_transition_once() {
        let (tx, rx) = crate::memory::channel();
        let status = Arc::new(MemoryStatus::default());
        let (outbox, records) = crate::outbox::outbox();
        let mut g = Governor::new(cfg(100), tx, status.clone(), outbox);
        let at = |mib: u64| Sample {
            rss: mib * MIB,
            ..Default::default()
        };
        for mib in [10, 50, 85, 86, 97, 99, 91, 89, 76, 60, 50] {
            g.observe(&at(mib));
        }
        assert_eq!(*rx.borrow(), Normal);
        assert_eq!(status.level.get(), Normal);
        let msgs: Vec<String> = records
            .drain()
            .into_iter()
            .filter_map(|r| match r {
                crate::outbox::Record::Daemon { msg, .. } => Some(msg),
                crate::outbox::Record::Advice(_) => None,
            })
            .collect();
        assert_eq!(
            msgs,
            [
                "memory pressure high",
                "memory pressure critical",
                "memory pressure high",
                "memory pressure normal"
            ]
        );
        assert_eq!(status.transitions(), 4);
        assert_eq!(status.entered[Critical as usize].load(Relaxed), 1);
        assert_eq!(status.budget_bytes.load(Relaxed), 100 * MIB);
        assert_eq!(status.rss_bytes.load(Relaxed), 50 * MIB);
    }
}
