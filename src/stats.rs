//! Daemon-wide counters: plain atomics, bumped on the hot path with `Relaxed` ordering and read
//! by the writer's summaries, the stop record and the control plane. Counters only: channels,
//! handles and registries are wired by `app`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use crate::event::classify::{Class, Severity};
use crate::event::level::Level;
use crate::protocol::RejectCode;

/// Distinct services counted by name in `top_services`; later ones are counted as
/// [`OTHER_SERVICES`] so a client inventing names cannot grow memory.
pub const MAX_SERVICES: usize = 256;
pub const OTHER_SERVICES: &str = "(other)";

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
    /// `advice` records written to the log (counted by the writer after the write).
    pub advice_written: AtomicU64,
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
    /// When the last write error happened (Unix ms; 0 = never), for `/ready`.
    pub last_write_error_unix_ms: AtomicU64,
    pub rotations: AtomicU64,
    /// Accepted events by level, class and severity (indexes of their `ALL` arrays).
    pub by_level: [AtomicU64; Level::ALL.len()],
    pub by_class: [AtomicU64; Class::ALL.len()],
    pub by_severity: [AtomicU64; Severity::ALL.len()],
    /// Accepted events per service, bounded by [`MAX_SERVICES`].
    pub services: Mutex<HashMap<Box<str>, u64>>,
    /// Ingest (socket read) → written to the log, per batch.
    pub write_latency: Histogram,
    /// Events per write.
    pub batch_events: Histogram,
}

/// Per-read tallies, added to [`Stats`] once per batch instead of once per event.
#[derive(Debug, Default)]
pub struct Tally {
    pub by_level: [u64; Level::ALL.len()],
    pub by_class: [u64; Class::ALL.len()],
    pub by_severity: [u64; Severity::ALL.len()],
    /// A handful of services per read at most; linear search beats hashing here.
    pub services: Vec<(String, u64)>,
}

impl Tally {
    pub fn count(&mut self, level: Level, class: Class, severity: Severity, service: &str) {
        self.by_level[level as usize] += 1;
        self.by_class[class as usize] += 1;
        self.by_severity[severity as usize] += 1;
        match self.services.iter_mut().find(|(s, _)| s == service) {
            Some((_, n)) => *n += 1,
            None => self.services.push((service.to_string(), 1)),
        }
    }
}

/// A lock-free histogram with power-of-two buckets: bucket `i` counts values `< 2^i` units
/// (and not in an earlier bucket); the last one is unbounded.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; HISTOGRAM_BUCKETS],
    sum: AtomicU64,
    count: AtomicU64,
}

/// 2^0 … 2^26 units: for microseconds, 1 µs to ~67 s, then +Inf.
pub const HISTOGRAM_BUCKETS: usize = 28;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, v: u64) {
        let i = (u64::BITS - v.leading_zeros()) as usize;
        self.buckets[i.min(HISTOGRAM_BUCKETS - 1)].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn observe_duration_us(&self, d: Duration) {
        self.observe(d.as_micros().min(u64::MAX as u128) as u64);
    }

    /// `(upper bound, cumulative count)` per bucket, the last bound being +Inf.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                acc += b.load(Relaxed);
                let bound = if i + 1 == HISTOGRAM_BUCKETS {
                    f64::INFINITY
                } else {
                    (1u64 << i) as f64
                };
                (bound, acc)
            })
            .collect()
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Upper bound of the bucket holding quantile `q` (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        let cum = self.cumulative();
        let total = cum.last().map_or(0, |c| c.1);
        if total == 0 {
            return 0;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        cum.iter()
            .position(|(_, c)| *c >= rank)
            .map_or(0, |i| 1u64 << i.min(HISTOGRAM_BUCKETS - 2))
    }
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

    pub fn note_write_error(&self) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis().max(1) as u64);
        self.last_write_error_unix_ms.store(ms, Relaxed);
    }

    pub fn add(&self, t: &Tally) {
        for (c, n) in self.by_level.iter().zip(t.by_level) {
            if n > 0 {
                c.fetch_add(n, Relaxed);
            }
        }
        for (c, n) in self.by_class.iter().zip(t.by_class) {
            if n > 0 {
                c.fetch_add(n, Relaxed);
            }
        }
        for (c, n) in self.by_severity.iter().zip(t.by_severity) {
            if n > 0 {
                c.fetch_add(n, Relaxed);
            }
        }
        let mut map = match self.services.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (svc, n) in &t.services {
            if let Some(c) = map.get_mut(svc.as_str()) {
                *c += n;
            } else if map.len() < MAX_SERVICES {
                map.insert(svc.as_str().into(), *n);
            } else {
                *map.entry(OTHER_SERVICES.into()).or_insert(0) += n;
            }
        }
    }

    /// Services by accepted events, most first.
    pub fn top_services(&self, n: usize) -> Vec<(String, u64)> {
        let map = match self.services.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut v: Vec<(String, u64)> = map.iter().map(|(k, c)| (k.to_string(), *c)).collect();
        drop(map);
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::default();
        for v in [0, 1, 3, 100, 100, 100, 5000] {
            h.observe(v);
        }
        assert_eq!(h.count(), 7);
        assert_eq!(h.sum(), 5304);
        let cum = h.cumulative();
        assert_eq!(cum[0], (1.0, 1)); // 0
        assert_eq!(cum[1], (2.0, 2)); // 1
        assert_eq!(cum[2], (4.0, 3)); // 3
        assert_eq!(cum[7].1, 6); // 100 < 128
        assert_eq!(cum.last().unwrap(), &(f64::INFINITY, 7));
        assert_eq!(h.quantile(0.5), 128);
        assert_eq!(h.quantile(0.99), 8192);
    }

    #[test]
    fn services_are_bounded() {
        let s = Stats::default();
        let mut t = Tally::default();
        for i in 0..(MAX_SERVICES + 10) {
            t.count(
                Level::Error,
                Class::Unknown,
                Severity::High,
                &format!("svc{i}"),
            );
        }
        t.count(Level::Error, Class::Unknown, Severity::High, "svc0");
        s.add(&t);
        let top = s.top_services(MAX_SERVICES + 100);
        assert_eq!(top.len(), MAX_SERVICES + 1);
        assert_eq!(top[0], ("(other)".to_string(), 10));
        assert_eq!(top[1], ("svc0".to_string(), 2));
        assert_eq!(
            s.by_level[Level::Error as usize].load(Relaxed),
            MAX_SERVICES as u64 + 11
        );
    }
}
