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

/// Distinct (peer, key set) pairs counted in `shapes`; later ones only in `shapes_other`.
pub const MAX_SHAPES: usize = 256;

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
    /// Connections closed on arrival: their uid held `ingest.max_connections_per_uid`.
    pub connections_refused_per_uid: AtomicU64,
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
    /// Accepted events by level in each of the last few seconds, for `/stats` `events.rate`.
    pub recent: RecentRate,
    /// Ingest (socket read) → written to the log, per batch.
    pub write_latency: Histogram,
    /// Events per write.
    pub batch_events: Histogram,
    /// Lines whose shape no profile maps (docs/formats.md, "Shapes nobody named"): accepted
    /// through the generic recognizer, or rejected for a missing message.
    pub shapes_generic: AtomicU64,
    pub shapes_unmapped: AtomicU64,
    /// Lines of those per (peer, top-level key set), bounded by [`MAX_SHAPES`].
    pub shapes: Mutex<HashMap<ShapeKey, u64>>,
    /// Lines of those whose pair did not fit `shapes`.
    pub shapes_other: AtomicU64,
}

/// A peer (`comm (uid N)`) and a top-level key set.
pub type ShapeKey = (Box<str>, Box<str>);

/// One line of a shape no profile maps, as counted per read.
#[derive(Debug)]
pub struct ShapeSeen {
    pub peer: Box<str>,
    pub keys: Box<str>,
    /// The generic recognizer found a message (else the line was rejected).
    pub generic: bool,
}

/// Per-read tallies, added to [`Stats`] once per batch instead of once per event.
#[derive(Debug, Default)]
pub struct Tally {
    pub by_level: [u64; Level::ALL.len()],
    pub by_class: [u64; Class::ALL.len()],
    pub by_severity: [u64; Severity::ALL.len()],
    /// A handful of services per read at most; linear search beats hashing here.
    pub services: Vec<(String, u64)>,
    /// Lines of shapes no profile maps (rare: empty for lines any profile reads).
    pub shapes: Vec<ShapeSeen>,
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

const NS_PER_S: u64 = 1_000_000_000;

/// Whole seconds [`RecentRate`] averages over, besides the current, partial one: long enough
/// that one quiet second does not read as zero, short enough to show a burst as it happens.
pub const RATE_WINDOW_S: u64 = 5;
/// Per-second slots: the window, the current second, and one spare so that a writer whose
/// clock is already in the next second never overwrites a slot a reader sums.
const RATE_SLOTS: usize = RATE_WINDOW_S as usize + 3;
/// A slot is one `AtomicU64`: the second it counts (low 24 bits of the Unix second) above a
/// 40-bit count, so a new second replaces the old count in one compare-and-swap.
const RATE_COUNT_BITS: u32 = 40;
const RATE_COUNT_MAX: u64 = (1 << RATE_COUNT_BITS) - 1;
const RATE_TAG_MASK: u64 = (1 << (64 - RATE_COUNT_BITS)) - 1;

/// Events per second over the last [`RATE_WINDOW_S`] seconds, by level, so `/stats` can tell a
/// rate at once (the dashboard shows it on its first poll) instead of its reader having to
/// diff two samples. Cost: one compare-and-swap per level present in a read (not per event),
/// 8 × 6 words of memory, and a sum of 36 words per `/stats`.
#[derive(Debug, Default)]
pub struct RecentRate {
    slots: [[AtomicU64; Level::ALL.len()]; RATE_SLOTS],
}

impl RecentRate {
    /// Counts `by_level` events received in Unix second `now_s`.
    pub fn add(&self, now_s: u64, by_level: &[u64; Level::ALL.len()]) {
        let tag = now_s & RATE_TAG_MASK;
        let slot = &self.slots[(now_s % RATE_SLOTS as u64) as usize];
        for (c, &n) in slot.iter().zip(by_level) {
            if n == 0 {
                continue;
            }
            let _ = c.fetch_update(Relaxed, Relaxed, |v| {
                let count = if v >> RATE_COUNT_BITS == tag {
                    v & RATE_COUNT_MAX
                } else {
                    0
                };
                Some(tag << RATE_COUNT_BITS | count.saturating_add(n).min(RATE_COUNT_MAX))
            });
        }
    }

    /// Events per second by level at `now_unix_ns`, and the span they are averaged over
    /// (seconds): the last [`RATE_WINDOW_S`] whole seconds and the current part of one, but no
    /// more than `uptime` (there was nothing before) and no less than one second (a few events
    /// in the first milliseconds are not a rate of thousands).
    pub fn per_second(&self, now_unix_ns: u64, uptime: Duration) -> ([f64; Level::ALL.len()], f64) {
        let now_s = now_unix_ns / NS_PER_S;
        let mut sums = [0u64; Level::ALL.len()];
        for s in now_s.saturating_sub(RATE_WINDOW_S)..=now_s {
            let tag = s & RATE_TAG_MASK;
            let slot = &self.slots[(s % RATE_SLOTS as u64) as usize];
            for (sum, c) in sums.iter_mut().zip(slot) {
                let v = c.load(Relaxed);
                if v >> RATE_COUNT_BITS == tag {
                    *sum += v & RATE_COUNT_MAX;
                }
            }
        }
        let part = (now_unix_ns % NS_PER_S) as f64 / NS_PER_S as f64;
        let span = (RATE_WINDOW_S as f64 + part)
            .min(uptime.as_secs_f64())
            .max(1.0);
        (sums.map(|n| n as f64 / span), span)
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

    /// Adds one read's tally; `now_unix_ns` is when the read was received.
    pub fn add(&self, t: &Tally, now_unix_ns: u64) {
        if !t.shapes.is_empty() {
            self.add_shapes(&t.shapes);
        }
        self.recent.add(now_unix_ns / NS_PER_S, &t.by_level);
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
    fn add_shapes(&self, seen: &[ShapeSeen]) {
        let mut map = match self.shapes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for s in seen {
            let c = if s.generic {
                &self.shapes_generic
            } else {
                &self.shapes_unmapped
            };
            c.fetch_add(1, Relaxed);
            let key = (s.peer.clone(), s.keys.clone());
            if let Some(n) = map.get_mut(&key) {
                *n += 1;
            } else if map.len() < MAX_SHAPES {
                map.insert(key, 1);
            } else {
                self.shapes_other.fetch_add(1, Relaxed);
            }
        }
    }

    /// The `n` most frequent (peer, key set, lines) of shapes no profile maps.
    pub fn top_shapes(&self, n: usize) -> Vec<(String, String, u64)> {
        let map = match self.shapes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut v: Vec<(String, String, u64)> = map
            .iter()
            .map(|((p, k), c)| (p.to_string(), k.to_string(), *c))
            .collect();
        drop(map);
        v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
        v.truncate(n);
        v
    }

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
        s.add(&t, 0);
        let top = s.top_services(MAX_SERVICES + 100);
        assert_eq!(top.len(), MAX_SERVICES + 1);
        assert_eq!(top[0], ("(other)".to_string(), 10));
        assert_eq!(top[1], ("svc0".to_string(), 2));
        assert_eq!(
            s.by_level[Level::Error as usize].load(Relaxed),
            MAX_SERVICES as u64 + 11
        );
    }

    #[test]
    fn recent_rate_averages_the_last_seconds() {
        const S: u64 = NS_PER_S;
        let r = RecentRate::default();
        let long = Duration::from_secs(3600);
        let err = Level::Error as usize;
        let mut n = [0u64; Level::ALL.len()];
        n[err] = 10;
        // 10 errors in each of seconds 100..=105 (two reads in 103).
        for s in 100..=105 {
            r.add(s, &n);
        }
        r.add(103, &n);
        let (rate, span) = r.per_second(105 * S + S / 2, long);
        assert_eq!(span, 5.5);
        assert!((rate[err] - 70.0 / 5.5).abs() < 1e-9, "{rate:?}");
        assert_eq!(rate[Level::Warn as usize], 0.0);
        // Seconds that fell out of the window are not counted, even where their slot is reused.
        let (rate, _) = r.per_second(112 * S, long);
        assert_eq!(rate[err], 0.0);
        r.add(112, &n);
        let (rate, span) = r.per_second(112 * S, long);
        assert_eq!((rate[err], span), (10.0 / 5.0, 5.0));
        // Right after start the span is the uptime, and at least a second.
        let (rate, span) = r.per_second(112 * S + S / 2, Duration::from_millis(2500));
        assert_eq!((rate[err], span), (4.0, 2.5));
        let (_, span) = r.per_second(112 * S, Duration::from_millis(20));
        assert_eq!(span, 1.0);
    }

    #[test]
    fn recent_rate_counts_from_many_threads() {
        let r = std::sync::Arc::new(RecentRate::default());
        let mut n = [0u64; Level::ALL.len()];
        n[Level::Info as usize] = 1;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        r.add(7, &n);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (rate, span) = r.per_second(7 * NS_PER_S, Duration::from_secs(60));
        assert_eq!(rate[Level::Info as usize] * span, 40_000.0);
    }
}
