//! The fleet registry (issue 16, docs/fleet.md): every daemon's per-fingerprint counts merged in
//! one Redis, so `/fleet/fingerprints` answers for the whole fleet.
//!
//! ```text
//! pipeline (per event) ─ FleetTally (per connection, no lock) ─ per read ─▶ Deltas (bounded)
//!        sync thread, every fleet.sync_interval ─ take ─▶ one EVALSHA ─▶ Redis ({prefix}:fleet:…)
//! ```
//!
//! Nothing here is on the ingest path beyond a hash-map increment per event in the
//! connection's own [`FleetTally`]: the tally is merged into the shared [`Deltas`] once per
//! read (one lock), and the sync thread ([`sync`]) takes them from there. Redis trouble never
//! reaches ingest: deltas keep merging while Redis is down, bounded by `fleet.max_pending`
//! fingerprints; events of a fingerprint that finds the map full are counted as dropped
//! (`qerrors_fleet_deltas_dropped_total`, `/stats` `fleet.dropped_events`) and said in a
//! `daemon` record by the sync thread.
//!
//! - [`config`]: the `[fleet]` section.
//! - [`sync`]: the sync thread and its Lua script (exactly-once per batch).
//! - [`read`]: the control plane's reads (`/fleet/fingerprints`).

pub mod config;
pub mod read;
pub mod sync;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use crate::event::fingerprint::{Fingerprint, PrehashedHasher};

/// Per-minute counts one pending fingerprint keeps (the last hour, as Redis does); the counts of
/// older minutes stay in its total.
pub const MAX_MINUTES: usize = 60;

/// Fingerprint slots a connection's [`FleetTally`] keeps between reads (~2.5 KiB); a read with
/// more distinct fingerprints (a flood) gives the excess back after its merge, so 1,024 idle
/// connections do not each hold the largest map they ever needed.
pub const TALLY_KEEP: usize = 64;

const NS_PER_MS: u64 = 1_000_000;
const MS_PER_MINUTE: u64 = 60_000;

/// One fingerprint's sightings in one read.
#[derive(Debug, Clone, Copy)]
struct Seen {
    count: u64,
    first_ms: u64,
    last_ms: u64,
}

/// A connection's fleet counts of the current read (no sharing); merged into [`Deltas`] by
/// [`Deltas::merge`] once per read, bounded by the events of one read.
#[derive(Debug, Default)]
pub struct FleetTally {
    seen: HashMap<u128, Seen, BuildHasherDefault<PrehashedHasher>>,
}

impl FleetTally {
    /// One event of `fp` at `now_ns` (Unix nanoseconds).
    #[inline]
    pub fn count(&mut self, fp: Fingerprint, now_ns: u64) {
        let ms = now_ns / NS_PER_MS;
        self.seen
            .entry(fp.0)
            .and_modify(|s| {
                s.count += 1;
                s.last_ms = s.last_ms.max(ms);
            })
            .or_insert(Seen {
                count: 1,
                first_ms: ms,
                last_ms: ms,
            });
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// What a daemon has to tell Redis about one fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delta {
    pub count: u64,
    pub first_ms: u64,
    pub last_ms: u64,
    /// (Unix minute, count), at most [`MAX_MINUTES`], in no particular order.
    pub minutes: Vec<(u64, u64)>,
}

impl Delta {
    fn add(&mut self, s: Seen) {
        if self.count == 0 {
            self.first_ms = s.first_ms;
            self.last_ms = s.last_ms;
        } else {
            self.first_ms = self.first_ms.min(s.first_ms);
            self.last_ms = self.last_ms.max(s.last_ms);
        }
        self.count += s.count;
        // A read spans microseconds: its events go to the minute of its last one.
        let minute = s.last_ms / MS_PER_MINUTE;
        if let Some(m) = self.minutes.iter_mut().find(|m| m.0 == minute) {
            m.1 += s.count;
            return;
        }
        self.minutes.push((minute, s.count));
        if self.minutes.len() > MAX_MINUTES {
            // Past an hour (a long outage): the oldest minute leaves the per-minute counts;
            // its events stay in `count`.
            if let Some(i) = (0..self.minutes.len()).min_by_key(|&i| self.minutes[i].0) {
                self.minutes.swap_remove(i);
            }
        }
    }
}

/// Counters of the fleet registry, for `/stats` and `/metrics`.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Successful sync calls.
    pub syncs: AtomicU64,
    /// Sync calls that failed (retried with the same batch).
    pub failures: AtomicU64,
    /// Fingerprint deltas and events carried by successful syncs.
    pub synced_fingerprints: AtomicU64,
    pub synced_events: AtomicU64,
    /// Fingerprints this daemon's syncs created in the fleet registry.
    pub created: AtomicU64,
    /// Events whose delta did not fit (`max_pending`), and their distinct deltas.
    pub dropped_events: AtomicU64,
    pub dropped_deltas: AtomicU64,
    /// Events not synced at shutdown (Redis unreachable then).
    pub unsynced_at_stop: AtomicU64,
}

/// The deltas waiting for the sync thread: bounded by `max_pending` fingerprints (together
/// with the batch the sync thread holds while it retries).
pub struct Deltas {
    pending: Mutex<HashMap<u128, Delta, BuildHasherDefault<PrehashedHasher>>>,
    max_pending: usize,
    /// Fingerprints in the sync thread's unacknowledged batch (they count against the bound).
    in_flight: AtomicUsize,
    /// Wakes the sync thread when the first delta arrives after a quiet stretch.
    wake: tokio::sync::Notify,
    pub stats: FleetStats,
}

impl Deltas {
    pub fn new(max_pending: usize) -> Self {
        Self {
            pending: Mutex::new(HashMap::default()),
            max_pending,
            in_flight: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
            stats: FleetStats::default(),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u128, Delta, BuildHasherDefault<PrehashedHasher>>> {
        match self.pending.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Merges (and empties) a read's tally: once per read, one lock. A fingerprint not pending
    /// yet is dropped, counted, when the bound is reached.
    pub fn merge(&self, tally: &mut FleetTally) {
        if tally.seen.is_empty() {
            return;
        }
        let (mut dropped_events, mut dropped_deltas) = (0, 0);
        let woke;
        {
            let mut p = self.lock();
            woke = p.is_empty();
            let room = self
                .max_pending
                .saturating_sub(self.in_flight.load(Relaxed));
            for (fp, s) in tally.seen.drain() {
                let full = p.len() >= room;
                match p.get_mut(&fp) {
                    Some(d) => d.add(s),
                    None if full => {
                        dropped_events += s.count;
                        dropped_deltas += 1;
                    }
                    None => {
                        let mut d = Delta {
                            minutes: Vec::with_capacity(1),
                            ..Delta::default()
                        };
                        d.add(s);
                        p.insert(fp, d);
                    }
                }
            }
        }
        if tally.seen.capacity() > TALLY_KEEP {
            tally.seen.shrink_to(TALLY_KEEP);
        }
        if dropped_events > 0 {
            self.stats.dropped_events.fetch_add(dropped_events, Relaxed);
            self.stats.dropped_deltas.fetch_add(dropped_deltas, Relaxed);
        }
        if woke {
            self.wake.notify_one();
        }
    }

    /// Takes up to `max` pending deltas for a sync; they count against the bound (as in
    /// flight) until [`Deltas::settled`].
    pub fn take(&self, max: usize) -> Vec<(Fingerprint, Delta)> {
        let mut p = self.lock();
        let out: Vec<(Fingerprint, Delta)> = if p.len() <= max {
            p.drain().map(|(k, d)| (Fingerprint(k), d)).collect()
        } else {
            let keys: Vec<u128> = p.keys().take(max).copied().collect();
            keys.into_iter()
                .filter_map(|k| p.remove(&k).map(|d| (Fingerprint(k), d)))
                .collect()
        };
        self.in_flight.store(out.len(), Relaxed);
        if p.capacity() > 4 * p.len().max(64) {
            p.shrink_to_fit();
        }
        out
    }

    /// The batch taken last is in Redis: it no longer counts against the bound.
    pub fn settled(&self) {
        self.in_flight.store(0, Relaxed);
    }

    /// Fingerprints pending (not counting the batch in flight).
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Events pending (not counting the batch in flight).
    pub fn pending_events(&self) -> u64 {
        self.lock().values().map(|d| d.count).sum()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// Resolves when a delta arrived in an empty map since the last call (no lost wake-ups).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// `/stats` → `fleet`.
    pub fn to_json(&self) -> serde_json::Value {
        let s = &self.stats;
        serde_json::json!({
            "pending": self.pending(),
            "in_flight": self.in_flight(),
            "max_pending": self.max_pending,
            "syncs": s.syncs.load(Relaxed),
            "failures": s.failures.load(Relaxed),
            "synced_fingerprints": s.synced_fingerprints.load(Relaxed),
            "synced_events": s.synced_events.load(Relaxed),
            "created": s.created.load(Relaxed),
            "dropped_events": s.dropped_events.load(Relaxed),
            "dropped_deltas": s.dropped_deltas.load(Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN_NS: u64 = 60_000_000_000;

    fn tally(events: &[(u128, u64)]) -> FleetTally {
        let mut t = FleetTally::default();
        for &(fp, ns) in events {
            t.count(Fingerprint(fp), ns);
        }
        t
    }

    #[test]
    fn reads_merge_into_one_delta_per_fingerprint() {
        let d = Deltas::new(10);
        d.merge(&mut tally(&[
            (1, 5 * MIN_NS),
            (1, 5 * MIN_NS + 7_000_000),
            (2, 5 * MIN_NS),
        ]));
        d.merge(&mut tally(&[(1, 6 * MIN_NS + 1_000_000)]));
        let mut got = d.take(100);
        got.sort_by_key(|(f, _)| f.0);
        assert_eq!(got.len(), 2);
        let one = &got[0].1;
        assert_eq!(one.count, 3);
        assert_eq!(one.first_ms, 5 * 60_000);
        assert_eq!(one.last_ms, 6 * 60_000 + 1);
        let mut mins = one.minutes.clone();
        mins.sort();
        assert_eq!(mins, vec![(5, 2), (6, 1)]);
        assert_eq!(got[1].1.count, 1);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.in_flight(), 2);
    }

    #[test]
    fn the_bound_drops_new_fingerprints_exactly_and_counts_the_batch_in_flight() {
        let d = Deltas::new(3);
        let mut t = FleetTally::default();
        for fp in 0..5u128 {
            for _ in 0..(fp + 1) {
                t.count(Fingerprint(fp), MIN_NS);
            }
        }
        d.merge(&mut t);
        // 3 fingerprints kept, the other two dropped with all their events; which ones is the
        // map's order, the sums are exact.
        let kept: u64 = d.take(10).iter().map(|(_, x)| x.count).sum();
        let dropped = d.stats.dropped_events.load(Relaxed);
        assert_eq!(kept + dropped, 15);
        assert_eq!(d.stats.dropped_deltas.load(Relaxed), 2);
        // Known fingerprints still merge while full; the batch in flight takes room.
        d.merge(&mut tally(&[(9, MIN_NS)]));
        assert_eq!(
            d.stats.dropped_deltas.load(Relaxed),
            3,
            "3 in flight fill the bound"
        );
        d.settled();
        d.merge(&mut tally(&[(9, MIN_NS), (9, MIN_NS)]));
        assert_eq!(d.pending_events(), 2);
    }

    #[test]
    fn per_minute_counts_keep_the_last_hour() {
        let d = Deltas::new(1);
        for m in 0..(MAX_MINUTES as u64 + 5) {
            d.merge(&mut tally(&[(7, m * MIN_NS)]));
        }
        let (_, x) = d.take(1).remove(0);
        assert_eq!(x.count, MAX_MINUTES as u64 + 5);
        assert_eq!(x.minutes.len(), MAX_MINUTES);
        assert_eq!(x.minutes.iter().map(|m| m.0).min(), Some(5));
    }
}
