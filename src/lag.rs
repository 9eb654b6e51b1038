//! Event-loop lag: how late the runtime runs a task that is ready, and how busy its workers are.
//!
//! A ticker task on the runtime sleeps until a deadline and, when polled, records how far past
//! the deadline it is ([`LagStats::lag`], microseconds; `qerrors_event_loop_lag_seconds` in
//! `/metrics`). A worker stuck in a long poll, or a run queue too deep to get through, shows up
//! as lag; the figure includes the timer's 1 ms granularity (a deadline is rounded up to the
//! next millisecond tick), so on an idle runtime it reads 0–1 ms.
//!
//! The ticker ticks every [`BUSY_PERIOD`] while clients send (the bytes-read counter moved
//! since the last tick) and every [`IDLE_PERIOD`] otherwise, so an idle daemon's runtime
//! workers still wake about once a second at most (docs/performance.md, "Idle cost"). A sleep
//! longer than 64 ms wakes its worker twice (tokio's timer wheel fires the coarse 64 ms slot,
//! then re-files the entry for its exact millisecond), hence a tick every three seconds: two
//! wake-ups per three seconds, with room for the runtime's other rare wake-ups. At each
//! tick at least [`BUSY_WINDOW`] after the previous sample it also computes each worker's busy
//! ratio over that window from tokio's `worker_total_busy_duration` (time spent polling tasks,
//! not parked), for `/metrics` and `/stats`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stats::Histogram;

/// Tick period while clients send: 20 samples a second, enough for a p99 over a minute, and
/// nothing against the events' own wake-ups.
pub const BUSY_PERIOD: Duration = Duration::from_millis(50);
/// Tick period while nothing is read: the idle budget is one wake-up a second per thread, and
/// each idle tick costs two (measured: 2.2 context switches/s at a one-second period, 1.1–1.4
/// at two seconds).
pub const IDLE_PERIOD: Duration = Duration::from_secs(3);
/// Shortest window a busy ratio is computed over (shorter ones are mostly noise).
pub const BUSY_WINDOW: Duration = Duration::from_secs(1);

/// The ticker's findings, read by the control plane.
#[derive(Debug)]
pub struct LagStats {
    /// Lateness of each tick, in microseconds.
    pub lag: Histogram,
    /// The largest lateness seen, in microseconds.
    max_us: AtomicU64,
    /// Per worker, the busy ratio over the last window, as `f64` bits.
    busy_ratio: Box<[AtomicU64]>,
}

impl LagStats {
    /// For a runtime of `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Self {
            lag: Histogram::default(),
            max_us: AtomicU64::new(0),
            busy_ratio: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records one tick that ran `late` after its deadline.
    pub fn record(&self, late: Duration) {
        let us = late.as_micros().min(u128::from(u64::MAX)) as u64;
        self.lag.observe(us);
        self.max_us.fetch_max(us, Relaxed);
    }

    pub fn max_us(&self) -> u64 {
        self.max_us.load(Relaxed)
    }

    /// Each worker's busy ratio (0..=1) over the last window.
    pub fn busy_ratios(&self) -> Vec<f64> {
        self.busy_ratio
            .iter()
            .map(|r| f64::from_bits(r.load(Relaxed)))
            .collect()
    }

    fn set_busy_ratio(&self, worker: usize, ratio: f64) {
        if let Some(r) = self.busy_ratio.get(worker) {
            r.store(ratio.clamp(0.0, 1.0).to_bits(), Relaxed);
        }
    }

    /// The `/stats` summary.
    pub fn to_json(&self) -> Value {
        let round = |r: f64| (r * 1000.0).round() / 1000.0;
        json!({
            "ticks": self.lag.count(),
            "lag_us": {
                "p50": self.lag.quantile(0.50),
                "p90": self.lag.quantile(0.90),
                "p99": self.lag.quantile(0.99),
                "max": self.max_us(),
            },
            "worker_busy_ratio": self.busy_ratios().into_iter().map(round).collect::<Vec<_>>(),
        })
    }
}

/// The next sleep: short while the bytes-read count moves, long while it does not.
pub fn next_period(bytes_read: u64, last_bytes_read: u64) -> Duration {
    if bytes_read == last_bytes_read {
        IDLE_PERIOD
    } else {
        BUSY_PERIOD
    }
}

/// Busy time per worker at one instant, to compute ratios between two samples.
struct BusySample {
    at: Instant,
    busy: Vec<Duration>,
}

impl BusySample {
    fn take(m: &tokio::runtime::RuntimeMetrics) -> Self {
        Self {
            at: Instant::now(),
            busy: (0..m.num_workers())
                .map(|w| m.worker_total_busy_duration(w))
                .collect(),
        }
    }
}

/// Ratio of busy time to wall time between two samples, per worker.
fn busy_ratios(before: &BusySample, after: &BusySample) -> Vec<f64> {
    let wall = after.at.saturating_duration_since(before.at).as_secs_f64();
    before
        .busy
        .iter()
        .zip(&after.busy)
        .map(|(b, a)| {
            if wall > 0.0 {
                a.saturating_sub(*b).as_secs_f64() / wall
            } else {
                0.0
            }
        })
        .collect()
}

/// Runs the ticker until the task is aborted. `bytes_read` is the count of bytes read from
/// clients since start (it picks the period).
pub async fn run(stats: std::sync::Arc<LagStats>, bytes_read: impl Fn() -> u64) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut last_bytes = bytes_read();
    let mut period = IDLE_PERIOD;
    let mut busy = BusySample::take(&metrics);
    loop {
        let deadline = tokio::time::Instant::now() + period;
        tokio::time::sleep_until(deadline).await;
        stats.record(tokio::time::Instant::now().saturating_duration_since(deadline));
        let now_bytes = bytes_read();
        period = next_period(now_bytes, last_bytes);
        last_bytes = now_bytes;
        if busy.at.elapsed() >= BUSY_WINDOW {
            let sample = BusySample::take(&metrics);
            for (w, r) in busy_ratios(&busy, &sample).into_iter().enumerate() {
                stats.set_busy_ratio(w, r);
            }
            busy = sample;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[test]
    fn records_lag_and_max() {
        let s = LagStats::new(2);
        s.record(Duration::from_micros(300));
        s.record(Duration::from_micros(40));
        s.record(Duration::from_millis(7));
        assert_eq!(s.lag.count(), 3);
        assert_eq!(s.max_us(), 7000);
        assert_eq!(s.lag.sum(), 7340);
        let j = s.to_json();
        assert_eq!(j["ticks"], 3);
        assert_eq!(j["lag_us"]["max"], 7000);
        assert_eq!(j["worker_busy_ratio"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn busy_ratio_is_clamped_and_per_worker() {
        let s = LagStats::new(2);
        s.set_busy_ratio(0, 0.25);
        s.set_busy_ratio(1, 1.5);
        s.set_busy_ratio(7, 0.5); // no such worker: ignored
        assert_eq!(s.busy_ratios(), vec![0.25, 1.0]);
        let t0 = Instant::now();
        let before = BusySample {
            at: t0,
            busy: vec![Duration::ZERO, Duration::from_millis(100)],
        };
        let after = BusySample {
            at: t0 + Duration::from_secs(2),
            busy: vec![Duration::from_millis(500), Duration::from_millis(100)],
        };
        assert_eq!(busy_ratios(&before, &after), vec![0.25, 0.0]);
    }

    #[test]
    fn period_follows_client_reads() {
        assert_eq!(next_period(10, 10), IDLE_PERIOD);
        assert_eq!(next_period(11, 10), BUSY_PERIOD);
    }

    /// With paused time the ticker ticks once per idle period while nothing is read, and
    /// every busy period once bytes move.
    #[tokio::test(start_paused = true)]
    async fn ticks_slowly_when_idle_and_fast_when_busy() {
        let stats = Arc::new(LagStats::new(1));
        let bytes = Arc::new(AtomicU64::new(0));
        let task = {
            let (stats, bytes) = (stats.clone(), bytes.clone());
            tokio::spawn(run(stats, move || bytes.load(Relaxed)))
        };
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        assert_eq!(
            stats.lag.count(),
            3,
            "one tick every three seconds while idle"
        );
        // Reads between every tick: 20 ticks a second.
        for _ in 0..80 {
            bytes.fetch_add(1, Relaxed);
            tokio::time::sleep(BUSY_PERIOD).await;
        }
        // The first tick after the reads began is still an idle one (at 12 s), then every
        // 50 ms up to 14.5 s.
        let n = stats.lag.count() - 3;
        assert!((48..=53).contains(&n), "{n} ticks while busy");
        task.abort();
    }
}
