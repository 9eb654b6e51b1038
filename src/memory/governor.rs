//! The governor: a small thread that samples memory every `memory.sample_interval`, turns the
//! sample into a [`Pressure`] level (two thresholds with hysteresis, plus PSI as an early
//! signal) and publishes it — in a [`PressureCell`](super::PressureCell) for the hot path and on the watch channel
//! for the structures that shrink. Transitions are written as `daemon` records (through the
//! notice queue, never blocking) and counted.
//!
//! Sampling is adaptive: every `sample_interval` while anything moves — RSS changing, RSS at or
//! above [`CALM_SHARE`] of the `high` threshold, PSI up, pressure above `normal` — and, while
//! RSS stays flat and far under the budget, twice as long after each sample up to
//! [`IDLE_SAMPLE_INTERVAL`], so an idle daemon's governor wakes about once a second instead of
//! ten times. During such a pause a burst of client data wakes it at once: it arms a
//! [`Nudge`](super::nudge::Nudge) mark [`NUDGE_SHARE`] of its headroom ahead of the bytes read
//! so far, and the read that passes the mark brings the next sample forward.
//!
//! The level logic ([`next_level`]) and the sampling period ([`next_interval`]) are pure
//! functions of the current state and a sample, so they are tested with fed-in samples.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde_json::json;

use super::config::{Memory, FALLBACK_BUDGET};
use super::nudge::NudgeRx;
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

/// Longest pause between samples while RSS is flat and far under the budget (the sampling
/// period doubles up to it). Bursts of client data cut it short (see [`NUDGE_SHARE`]); what
/// else raises pressure — PSI (a 10-second average), a lowered cgroup limit — is not urgent
/// to the second.
pub const IDLE_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Sampling backs off only while RSS is under this share of the `high` threshold (40 % of the
/// budget with the defaults): from there, RSS would have to more than double within one pause
/// to pass the threshold unseen.
pub const CALM_SHARE: f64 = 0.5;

/// RSS counts as flat when it moved less than this share of the budget since the previous
/// sample (1 MiB of the 256 MiB fallback budget): allocator noise, not a trend.
pub const FLAT_SHARE: f64 = 1.0 / 256.0;

/// While backed off, a sample is taken as soon as clients have sent this share of the headroom
/// (the `high` threshold minus RSS) since the last one. Memory held per byte read is at most
/// ~30× (a 16-byte line becomes a ~400-byte record in the ring and a new fingerprint in the
/// table), so even that worst case stays under half the headroom between two samples.
pub const NUDGE_SHARE: f64 = 1.0 / 64.0;

/// Smallest nudge mark: one default read buffer, so a trickle of events does not wake the
/// governor read by read when the headroom is small.
pub const MIN_NUDGE_BYTES: u64 = 64 << 10;

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

/// The pause before the next sample, after one that found `rss` (the previous one found
/// `prev_rss`) at `level`, when the pause before it was `current`: `base` (the configured
/// `sample_interval`) while anything moves or RSS is near the thresholds, else twice `current`
/// up to [`IDLE_SAMPLE_INTERVAL`].
pub fn next_interval(
    current: Duration,
    base: Duration,
    level: Pressure,
    rss: u64,
    prev_rss: u64,
    psi: Option<f64>,
    t: &Thresholds,
) -> Duration {
    let calm = level == Pressure::Normal
        && (rss as f64) < t.high as f64 * CALM_SHARE
        && (rss.abs_diff(prev_rss) as f64) < t.budget as f64 * FLAT_SHARE
        && psi.is_none_or(|p| p < PSI_HIGH / 2.0);
    if calm {
        (current * 2).clamp(base, IDLE_SAMPLE_INTERVAL.max(base))
    } else {
        base
    }
}

/// Bytes clients may send during a backed-off pause before the governor samples early: a
/// [`NUDGE_SHARE`] of the headroom under the `high` threshold, at least [`MIN_NUDGE_BYTES`].
pub fn nudge_after(rss: u64, t: &Thresholds) -> u64 {
    ((t.high.saturating_sub(rss) as f64 * NUDGE_SHARE) as u64).max(MIN_NUDGE_BYTES)
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
    /// `nudge` and `bytes_read` (the count of bytes read from clients since start) cut a
    /// backed-off pause short when clients send a burst (module docs).
    pub fn spawn(
        self,
        nudge: NudgeRx,
        bytes_read: impl Fn() -> u64 + Send + 'static,
    ) -> std::io::Result<GovernorHandle> {
        let mut sampler = Sampler::detect();
        tracing::info!(source = %sampler.describe(), "memory governor sampling");
        self.spawn_with(move || sampler.sample(), nudge, bytes_read)
    }

    /// [`Governor::spawn`] with another source of samples (tests feed their own).
    pub fn spawn_with(
        mut self,
        mut sample: impl FnMut() -> Sample + Send + 'static,
        nudge: NudgeRx,
        bytes_read: impl Fn() -> u64 + Send + 'static,
    ) -> std::io::Result<GovernorHandle> {
        let first = sample();
        self.observe(&first);
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("qerrors-memory".into())
            .spawn(move || self.run(first.rss, &mut sample, &stopped, &nudge, &bytes_read))?;
        Ok(GovernorHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The sampling loop, until `stopped` disconnects.
    fn run(
        mut self,
        mut prev_rss: u64,
        sample: &mut impl FnMut() -> Sample,
        stopped: &Receiver<()>,
        nudge: &NudgeRx,
        bytes_read: &impl Fn() -> u64,
    ) {
        let base = self.cfg.sample_interval;
        let mut interval = base;
        loop {
            self.status
                .interval_ms
                .store(interval.as_millis() as u64, Relaxed);
            crossbeam_channel::select_biased! {
                recv(stopped) -> _ => return,
                recv(nudge.receiver()) -> _ => {}
                default(interval) => {}
            }
            let before = self.level;
            let s = sample();
            let now = self.observe(&s);
            self.trim(Instant::now(), now > before);
            let t = Thresholds::new(&self.cfg, budget(&self.cfg, &s));
            interval = next_interval(interval, base, now, s.rss, prev_rss, s.psi_some_avg10, &t);
            prev_rss = s.rss;
            // A nudge that came meanwhile is answered by this sample.
            nudge.disarm();
            nudge.clear();
            if interval > base {
                nudge.arm(bytes_read().saturating_add(nudge_after(s.rss, &t)));
            }
        }
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
    fn sampling_backs_off_while_flat_and_far_under_budget() {
        let t = t100(); // high 80 MiB: calm under 40 MiB; flat within 400 KiB
        let base = Duration::from_millis(100);
        let ms = Duration::from_millis;
        let next = |cur, level, rss, prev, psi| next_interval(cur, base, level, rss, prev, psi, &t);
        // Flat and low: 100 → 200 → 400 → 800 → 1000 ms, and it stays there.
        let mut cur = base;
        let mut seen = Vec::new();
        for _ in 0..6 {
            cur = next(cur, Normal, 20 * MIB, 20 * MIB + 1000, None);
            seen.push(cur);
        }
        assert_eq!(
            seen,
            [ms(200), ms(400), ms(800), ms(1000), ms(1000), ms(1000)]
        );
        // Anything moving brings it back to the configured interval at once.
        let s = ms(1000);
        assert_eq!(
            next(s, Normal, 21 * MIB, 20 * MIB, None),
            base,
            "RSS grew 1 MiB"
        );
        assert_eq!(next(s, Normal, 19 * MIB, 20 * MIB, None), base, "or shrank");
        assert_eq!(
            next(s, Normal, 40 * MIB, 40 * MIB, None),
            base,
            "half the high mark"
        );
        assert_eq!(next(s, High, 20 * MIB, 20 * MIB, None), base, "pressure");
        assert_eq!(next(s, Normal, 20 * MIB, 20 * MIB, Some(5.0)), base, "PSI");
        assert_eq!(
            next(s, Normal, 20 * MIB, 20 * MIB, Some(1.0)),
            s,
            "PSI calm"
        );
        // A configured interval longer than the idle one is never shortened.
        let slow = Duration::from_secs(2);
        assert_eq!(next_interval(slow, slow, Normal, MIB, MIB, None, &t), slow);
    }

    #[test]
    fn nudge_mark_is_a_share_of_the_headroom() {
        let t = t100();
        assert_eq!(nudge_after(16 * MIB, &t), 64 * MIB / 64);
        assert_eq!(
            nudge_after(79 * MIB, &t),
            MIN_NUDGE_BYTES,
            "at least one read buffer"
        );
        assert_eq!(nudge_after(90 * MIB, &t), MIN_NUDGE_BYTES, "over the mark");
    }

    /// Waits (bounded) until the governor has taken `n` samples; returns when it saw it.
    fn wait_samples(status: &MemoryStatus, n: u64) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(30);
        while status.samples.load(Relaxed) < n {
            assert!(Instant::now() < deadline, "no sample {n}");
            std::thread::sleep(Duration::from_millis(1));
        }
        Instant::now()
    }

    /// The real thread with fed-in samples: flat and low, it backs off to the idle interval;
    /// a burst of client data (bytes read past the mark) wakes it for a sample at once, and
    /// that sample sees the rise.
    #[test]
    fn a_backed_off_governor_is_woken_by_a_burst_and_sees_the_rise() {
        let (tx, rx) = crate::memory::channel();
        let status = Arc::new(MemoryStatus::default());
        let (outbox, _records) = crate::outbox::outbox();
        let rss = Arc::new(std::sync::atomic::AtomicU64::new(10 * MIB));
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (nudge, nudge_rx) = crate::memory::nudge();
        let mut cfg = cfg(100);
        cfg.sample_interval = Duration::from_millis(10);
        let g = Governor::new(cfg, tx, status.clone(), outbox);
        let (r, b) = (rss.clone(), read.clone());
        let handle = g
            .spawn_with(
                move || Sample {
                    rss: r.load(Relaxed),
                    ..Default::default()
                },
                nudge_rx,
                move || b.load(Relaxed),
            )
            .unwrap();
        // 10 → 20 → … → 640 → 1000 ms: backed off after 7 samples (~1.3 s).
        let deadline = Instant::now() + Duration::from_secs(30);
        while status.interval_ms.load(Relaxed) < 1000 {
            assert!(Instant::now() < deadline, "never backed off");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Right after a sample, so the next timed one is a second away.
        let n = status.samples.load(Relaxed);
        let sampled = wait_samples(&status, n + 1);
        // Under the mark (headroom 70 MiB / 64 ≈ 1.1 MiB): nothing.
        nudge.bytes_read(read.fetch_add(100_000, Relaxed) + 100_000);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            status.samples.load(Relaxed),
            n + 1,
            "no sample for a trickle"
        );
        // A burst: memory rises and the bytes read pass the mark.
        rss.store(85 * MIB, Relaxed);
        let total = read.fetch_add(4 * MIB, Relaxed) + 4 * MIB;
        let nudged = Instant::now();
        nudge.bytes_read(total);
        let seen = wait_samples(&status, n + 2);
        assert!(
            seen - nudged < Duration::from_millis(500),
            "woken {:?} after the nudge ({:?} after the previous sample)",
            seen - nudged,
            seen - sampled
        );
        assert_eq!(*rx.borrow(), High);
        assert_eq!(
            status.interval_ms.load(Relaxed),
            10,
            "back to the base interval"
        );
        drop(handle);
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
