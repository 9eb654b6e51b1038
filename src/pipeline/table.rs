//! The fingerprint table: per-fingerprint counts behind the `occurrence` field.
//!
//! Sharded `Mutex<HashMap>`s (short critical sections, never held across `.await`), bounded by
//! `event.max_fingerprints`. When a shard is full, entries idle for longer than the window go
//! first; if that frees too little, arbitrary entries (hash order) are evicted until
//! `EVICT_FRACTION` of the shard is free, so a flood of distinct fingerprints costs amortized
//! O(1) per insert and memory stays bounded.
//!
//! Each entry also remembers the services the fingerprint was seen from: the first in its
//! [`FpMeta`], any others in a bounded [`OtherServices`] made only when a second one shows up.
//! At most 1/[`SERVICE_SETS_DIVISOR`] of the entries hold such a set, and under memory pressure
//! the sets are dropped and not collected (the first service stays).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::event::classify::{Class, Severity};
use crate::event::fingerprint::{Fingerprint, PrehashedHasher};
use crate::event::level::Level;
use crate::json::truncate;
use crate::pipeline::services::OtherServices;

/// Number of shards; a power of two well above the number of cores so ingest tasks rarely meet.
const SHARDS: usize = 32;

/// When a full shard is swept, at least 1/EVICT_FRACTION of it is freed.
const EVICT_FRACTION: usize = 8;

/// Under `high` memory pressure the table keeps 1/this of `event.max_fingerprints`, under
/// `critical` 1/this² (docs/memory.md). Least recently seen entries go first.
pub const PRESSURE_DIVISOR: usize = 4;

/// At most `event.max_fingerprints` / this entries keep the services besides their first
/// ([`OtherServices`], ≤ 400 B each): 2.4 MiB at the default 100 000, which keeps the default
/// configuration's worst case inside the fallback memory budget (docs/memory.md). Fingerprints
/// seen from several services are a minority in practice; past the bound, further ones name only
/// their first service until sets are freed (their entries evicted, or dropped under pressure).
pub const SERVICE_SETS_DIVISOR: usize = 16;

/// Longest message sample kept per fingerprint (bytes).
pub const MESSAGE_SAMPLE: usize = 200;

/// Longest service and error name kept per fingerprint (bytes): they come from clients, and
/// without a bound one entry could hold a whole line (docs/memory.md counts on this).
pub const NAME_SAMPLE: usize = 128;

/// What the first event of a fingerprint looked like, for `/fingerprints`. Made only when a
/// fingerprint is first inserted; later services are in the entry's [`OtherServices`].
#[derive(Debug, Clone)]
pub struct FpMeta {
    pub class: Class,
    pub severity: Severity,
    pub level: Level,
    /// At most [`NAME_SAMPLE`] bytes.
    pub service: Box<str>,
    /// At most [`NAME_SAMPLE`] bytes.
    pub name: Box<str>,
    /// Sanitized, at most [`MESSAGE_SAMPLE`] bytes.
    pub message: Box<str>,
}

#[derive(Debug, Clone)]
struct Entry {
    window_start_ns: u64,
    in_window: u64,
    total: u64,
    first_seen_ns: u64,
    last_seen_ns: u64,
    /// Until when (Unix ns) the advice cache is known to hold advice for this fingerprint; see
    /// [`FingerprintTable::advice_known_until`].
    advice_until_ns: u64,
    meta: Arc<FpMeta>,
    /// Services besides `meta.service`; shared with [`FpSummary`]s being read, copied on write
    /// (which happens only when a new service shows up).
    others: Option<Arc<OtherServices>>,
}

/// What [`FingerprintTable::observe`] tells about the fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Occurrence number within the current window (1 for the first).
    pub occurrence: u64,
    /// Until when (Unix ns) the advice cache is known to hold advice for it (0: not known).
    pub advice_until_ns: u64,
}

/// One row of [`FingerprintTable::top`].
#[derive(Debug, Clone)]
pub struct FpSummary {
    pub fingerprint: Fingerprint,
    pub total: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub meta: Arc<FpMeta>,
    pub others: Option<Arc<OtherServices>>,
}

impl FpSummary {
    /// The services it was seen from, by name: the first one, then the others in the order
    /// first seen (at most [`crate::pipeline::services::MAX_NAMED`]).
    pub fn services(&self) -> Vec<&str> {
        let mut v = vec![&*self.meta.service];
        v.extend(self.others.iter().flat_map(|o| o.names()));
        v
    }

    /// How many more services it was seen from, not named (saturates at
    /// [`crate::pipeline::services::MAX_COUNTED`]).
    pub fn services_more(&self) -> usize {
        self.others.as_ref().map_or(0, |o| o.more())
    }
}

type Shard = HashMap<u128, Entry, BuildHasherDefault<PrehashedHasher>>;

pub struct FingerprintTable {
    shards: Box<[Mutex<Shard>]>,
    window_ns: u64,
    /// Configured entries per shard.
    max_per_shard: usize,
    /// Entries per shard in force: `max_per_shard`, divided under memory pressure.
    per_shard: AtomicUsize,
    /// Whether services beyond the first are recorded (not under memory pressure).
    track_services: AtomicBool,
    /// Entries holding an [`OtherServices`] (changed under a shard's lock), and the bound.
    service_sets: AtomicUsize,
    max_service_sets: usize,
}

impl FingerprintTable {
    pub fn new(max_entries: usize, window: Duration) -> Self {
        let per_shard = max_entries.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            window_ns: window.as_nanos().min(u64::MAX as u128) as u64,
            max_per_shard: per_shard,
            per_shard: AtomicUsize::new(per_shard),
            track_services: AtomicBool::new(true),
            service_sets: AtomicUsize::new(0),
            max_service_sets: (max_entries / SERVICE_SETS_DIVISOR).max(1),
        }
    }

    /// Follows the memory pressure level: shrinks the bound (evicting the least recently seen
    /// entries now and releasing the shards' spare capacity) and drops the entries' other
    /// services (collecting none until pressure is over) under pressure, restores both when
    /// pressure is over.
    pub fn set_pressure(&self, p: crate::memory::Pressure) {
        let div = match p {
            crate::memory::Pressure::Normal => 1,
            crate::memory::Pressure::High => PRESSURE_DIVISOR,
            crate::memory::Pressure::Critical => PRESSURE_DIVISOR * PRESSURE_DIVISOR,
        };
        let limit = (self.max_per_shard / div).max(1);
        self.per_shard.store(limit, Relaxed);
        self.track_services.store(div == 1, Relaxed);
        if div == 1 {
            return;
        }
        for shard in self.shards.iter() {
            let mut g = match shard.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let mut freed = 0;
            if g.len() > limit {
                let mut by_age: Vec<(u64, u128)> =
                    g.iter().map(|(k, e)| (e.last_seen_ns, *k)).collect();
                by_age.sort_unstable();
                let excess = g.len() - limit;
                for (_, k) in by_age.into_iter().take(excess) {
                    freed += g.remove(&k).is_some_and(|e| e.others.is_some()) as usize;
                }
            }
            for e in g.values_mut() {
                freed += e.others.take().is_some() as usize;
            }
            self.service_sets.fetch_sub(freed, Relaxed);
            g.shrink_to_fit();
        }
    }

    /// Counts one sighting at `now_ns` (Unix nanoseconds) from `service`; returns the occurrence
    /// number within the current window (1 for the first) and what is known about its advice.
    /// `meta` is called only for a new fingerprint (its `service` should be `service`).
    pub fn observe(
        &self,
        fp: Fingerprint,
        now_ns: u64,
        service: &str,
        meta: impl FnOnce() -> FpMeta,
    ) -> Seen {
        let idx = (fp.0 as usize) % SHARDS;
        let mut shard = match self.shards[idx].lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(e) = shard.get_mut(&fp.0) {
            if now_ns.saturating_sub(e.window_start_ns) >= self.window_ns {
                e.window_start_ns = now_ns;
                e.in_window = 0;
            }
            e.in_window += 1;
            e.total += 1;
            e.last_seen_ns = e.last_seen_ns.max(now_ns);
            if self.track_services.load(Relaxed) {
                self.note_service(e, truncate(service, NAME_SAMPLE));
            }
            return Seen {
                occurrence: e.in_window,
                advice_until_ns: e.advice_until_ns,
            };
        }
        if shard.len() >= self.per_shard.load(Relaxed) {
            self.evict(&mut shard, now_ns);
        }
        shard.insert(
            fp.0,
            Entry {
                window_start_ns: now_ns,
                in_window: 1,
                total: 1,
                first_seen_ns: now_ns,
                last_seen_ns: now_ns,
                advice_until_ns: 0,
                meta: Arc::new(meta()),
                others: None,
            },
        );
        Seen {
            occurrence: 1,
            advice_until_ns: 0,
        }
    }

    /// Records that the advice cache holds advice for `fp` until `until_ns` (Unix ns), so the
    /// ingest path need not ask the shared cache for every event (see
    /// [`crate::analysis::AnalysisHandle::offer_seen`]). A no-op if `fp` is not in the table.
    pub fn advice_known_until(&self, fp: Fingerprint, until_ns: u64) {
        let idx = (fp.0 as usize) % SHARDS;
        let mut shard = match self.shards[idx].lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(e) = shard.get_mut(&fp.0) {
            e.advice_until_ns = until_ns;
        }
    }

    /// The `n` fingerprints seen most often (total), most first. Walks every shard: for the
    /// control plane, not the hot path.
    pub fn top(&self, n: usize) -> Vec<FpSummary> {
        let mut all: Vec<FpSummary> = Vec::new();
        for shard in self.shards.iter() {
            let g = match shard.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            all.extend(g.iter().map(|(k, e)| FpSummary {
                fingerprint: Fingerprint(*k),
                total: e.total,
                first_seen_ns: e.first_seen_ns,
                last_seen_ns: e.last_seen_ns,
                meta: e.meta.clone(),
                others: e.others.clone(),
            }));
        }
        all.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then(a.fingerprint.0.cmp(&b.fingerprint.0))
        });
        all.truncate(n);
        all
    }

    fn evict(&self, shard: &mut Shard, now_ns: u64) {
        let window = self.window_ns;
        let mut freed = 0;
        shard.retain(|_, e| {
            let keep = now_ns.saturating_sub(e.last_seen_ns) < window;
            freed += (!keep && e.others.is_some()) as usize;
            keep
        });
        let per_shard = self.per_shard.load(Relaxed);
        let target = per_shard - (per_shard / EVICT_FRACTION).max(1);
        if shard.len() > target {
            let excess = shard.len() - target;
            let victims: Vec<u128> = shard.keys().take(excess).copied().collect();
            for k in victims {
                freed += shard.remove(&k).is_some_and(|e| e.others.is_some()) as usize;
            }
        }
        self.service_sets.fetch_sub(freed, Relaxed);
    }

    /// Records that the entry's fingerprint was (also) seen from `service` (already truncated
    /// to [`NAME_SAMPLE`]). The common case, its first service again, is one string compare.
    fn note_service(&self, e: &mut Entry, service: &str) {
        if *e.meta.service == *service {
            return;
        }
        match &mut e.others {
            Some(o) if o.would_add(service) => {
                Arc::make_mut(o).add(service);
            }
            Some(_) => {}
            None => {
                let max = self.max_service_sets;
                let reserved = self
                    .service_sets
                    .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
                    .is_ok();
                if reserved {
                    let mut o = OtherServices::default();
                    o.add(service);
                    e.others = Some(Arc::new(o));
                }
            }
        }
    }

    /// Entries holding services besides their first, and how many may.
    pub fn service_sets(&self) -> (usize, usize) {
        (self.service_sets.load(Relaxed), self.max_service_sets)
    }

    /// Fingerprints currently tracked.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|g| g.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total sightings and first/last seen (Unix ns) of one fingerprint, if tracked.
    pub fn get(&self, fp: Fingerprint) -> Option<(u64, u64, u64)> {
        let shard = self.shards[(fp.0 as usize) % SHARDS].lock().ok()?;
        shard
            .get(&fp.0)
            .map(|e| (e.total, e.first_seen_ns, e.last_seen_ns))
    }

    /// The sample of one fingerprint (what its first event looked like), if tracked.
    pub fn meta(&self, fp: Fingerprint) -> Option<Arc<FpMeta>> {
        let shard = match self.shards[(fp.0 as usize) % SHARDS].lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        shard.get(&fp.0).map(|e| e.meta.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn meta() -> FpMeta {
        FpMeta {
            class: Class::Unknown,
            severity: Severity::Low,
            level: Level::Error,
            service: "svc".into(),
            name: "E".into(),
            message: "m".into(),
        }
    }

    #[test]
    fn top_orders_by_total() {
        let t = FingerprintTable::new(100, Duration::from_secs(60));
        for (fp, n) in [(1u128, 3), (2, 5), (3, 1)] {
            for _ in 0..n {
                t.observe(Fingerprint(fp), S, "svc", meta);
            }
        }
        let top = t.top(2);
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].fingerprint.0, top[0].total), (2, 5));
        assert_eq!((top[1].fingerprint.0, top[1].total), (1, 3));
        assert_eq!(&*top[0].meta.service, "svc");
    }

    #[test]
    fn counts_within_window_and_resets_after() {
        let t = FingerprintTable::new(100, Duration::from_secs(60));
        let fp = Fingerprint(42);
        assert_eq!(t.observe(fp, 10 * S, "svc", meta).occurrence, 1);
        assert_eq!(t.observe(fp, 20 * S, "svc", meta).occurrence, 2);
        assert_eq!(t.observe(fp, 69 * S, "svc", meta).occurrence, 3);
        assert_eq!(
            t.observe(fp, 70 * S, "svc", meta).occurrence,
            1,
            "new window"
        );
        assert_eq!(t.get(fp), Some((4, 10 * S, 70 * S)));
        assert_eq!(t.observe(Fingerprint(7), 70 * S, "svc", meta).occurrence, 1);
    }

    #[test]
    fn remembers_advice_until_for_known_fingerprints_only() {
        let t = FingerprintTable::new(100, Duration::from_secs(60));
        let fp = Fingerprint(42);
        assert_eq!(t.observe(fp, S, "svc", meta).advice_until_ns, 0);
        t.advice_known_until(fp, 5 * S);
        assert_eq!(
            t.observe(fp, 2 * S, "svc", meta),
            Seen {
                occurrence: 2,
                advice_until_ns: 5 * S
            }
        );
        // Unknown fingerprints are not inserted by it.
        t.advice_known_until(Fingerprint(9), 5 * S);
        assert_eq!(t.get(Fingerprint(9)), None);
        assert_eq!(
            t.observe(Fingerprint(9), 3 * S, "svc", meta)
                .advice_until_ns,
            0
        );
    }

    #[test]
    fn a_flood_of_distinct_fingerprints_stays_bounded() {
        let t = FingerprintTable::new(1000, Duration::from_secs(60));
        for i in 0..200_000u128 {
            t.observe(
                Fingerprint(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)),
                S,
                "svc",
                meta,
            );
        }
        let cap = 1000usize.div_ceil(SHARDS) * SHARDS;
        assert!(t.len() <= cap, "{} > {cap}", t.len());
        assert!(t.len() > cap / 2, "evicts too much: {}", t.len());
    }

    #[test]
    fn pressure_shrinks_to_the_most_recent_entries_and_normal_restores_the_bound() {
        use crate::memory::Pressure;
        let t = FingerprintTable::new(SHARDS * 16, Duration::from_secs(60));
        // 16 per shard, seen at increasing times
        for i in 0..(SHARDS as u128 * 16) {
            t.observe(Fingerprint(i), i as u64, "svc", meta);
        }
        assert_eq!(t.len(), SHARDS * 16);
        t.set_pressure(Pressure::High);
        assert_eq!(t.len(), SHARDS * 4);
        let newest = Fingerprint(SHARDS as u128 * 16 - 1);
        assert!(t.get(newest).is_some(), "most recent kept");
        assert!(t.get(Fingerprint(0)).is_none(), "least recent gone");
        t.set_pressure(Pressure::Critical);
        assert_eq!(t.len(), SHARDS);
        // inserts stay within the tightened bound
        for i in 0..10_000u128 {
            t.observe(Fingerprint(1_000_000 + i), 1_000_000, "svc", meta);
        }
        assert!(t.len() <= SHARDS, "{}", t.len());
        t.set_pressure(Pressure::Normal);
        for i in 0..10_000u128 {
            t.observe(Fingerprint(2_000_000 + i), 2_000_000, "svc", meta);
        }
        assert!(t.len() > SHARDS * 8, "{}", t.len());
    }

    #[test]
    fn idle_entries_are_evicted_first() {
        let t = FingerprintTable::new(SHARDS * 4, Duration::from_secs(1));
        // one old entry per shard slot, then fill with fresh ones
        let old = Fingerprint(3);
        t.observe(old, 0, "svc", meta);
        for i in 1..4u128 {
            t.observe(Fingerprint(3 + i * SHARDS as u128), 10 * S, "svc", meta);
        }
        // shard of `old` is now full (4); inserting one more evicts the idle one
        t.observe(Fingerprint(3 + 4 * SHARDS as u128), 10 * S, "svc", meta);
        assert!(t.get(old).is_none());
        assert!(t.get(Fingerprint(3 + SHARDS as u128)).is_some());
    }

    /// As the pipeline makes it.
    fn meta_from(service: &str) -> impl FnOnce() -> FpMeta + '_ {
        move || FpMeta {
            service: truncate(service, NAME_SAMPLE).into(),
            ..meta()
        }
    }

    fn services_of(t: &FingerprintTable, fp: u128) -> (Vec<String>, usize) {
        let row = t.top(usize::MAX);
        let row = row.iter().find(|r| r.fingerprint.0 == fp).unwrap();
        let names = row.services().into_iter().map(String::from).collect();
        (names, row.services_more())
    }

    #[test]
    fn services_of_a_fingerprint_merge_in_the_order_first_seen() {
        use crate::pipeline::services::MAX_NAMED;
        let t = FingerprintTable::new(100, Duration::from_secs(60));
        let fp = Fingerprint(42);
        for svc in [
            "checkout", "checkout", "billing", "checkout", "search", "billing",
        ] {
            t.observe(fp, S, svc, meta_from(svc));
        }
        t.observe(Fingerprint(7), S, "other", meta_from("other"));
        assert_eq!(
            services_of(&t, 42),
            (
                vec!["checkout".into(), "billing".into(), "search".into()],
                0
            )
        );
        assert_eq!(t.get(fp).unwrap().0, 6, "counted as one fingerprint");
        assert_eq!(services_of(&t, 7), (vec!["other".into()], 0), "not mixed");
        // Past the named ones, distinct services are counted once each.
        for svc in ["cart", "auth", "mail", "auth", "checkout", "cart"] {
            t.observe(fp, S, svc, meta_from(svc));
        }
        let (names, more) = services_of(&t, 42);
        assert_eq!(names.len(), MAX_NAMED);
        assert_eq!(names[..3], ["checkout", "billing", "search"]);
        assert_eq!(names[3], "cart");
        assert_eq!(more, 2, "auth and mail");
    }

    #[test]
    fn services_per_fingerprint_are_bounded() {
        use crate::pipeline::services::{MAX_COUNTED, MAX_NAMED, NAMES_BYTES};
        let t = FingerprintTable::new(100, Duration::from_secs(60));
        let fp = Fingerprint(42);
        let long = |i: usize| format!("{i:-<w$}", w = NAME_SAMPLE * 2);
        for i in 0..10_000 {
            let svc = long(i);
            t.observe(fp, S, &svc, meta_from(&svc));
        }
        let (names, more) = services_of(&t, 42);
        assert_eq!(
            names[0].len(),
            NAME_SAMPLE,
            "the first one, as FpMeta keeps it"
        );
        // Truncated to NAME_SAMPLE, longer than the byte budget of the others: only counted.
        const { assert!(NAME_SAMPLE > NAMES_BYTES) };
        assert_eq!(names.len(), 1);
        assert_eq!(more, MAX_COUNTED);
        for i in 0..10_000 {
            let svc = format!("s{i}");
            t.observe(fp, S, &svc, meta_from(&svc));
        }
        let (names, more) = services_of(&t, 42);
        assert_eq!(names.len(), MAX_NAMED);
        assert_eq!(names[1..], ["s0", "s1", "s2"]);
        assert_eq!(more, MAX_COUNTED);
    }

    #[test]
    fn pressure_drops_other_services_and_normal_collects_them_again() {
        use crate::memory::Pressure;
        let t = FingerprintTable::new(100, Duration::from_secs(60));
        let fp = Fingerprint(42);
        t.observe(fp, S, "checkout", meta_from("checkout"));
        t.observe(fp, S, "billing", meta_from("billing"));
        t.set_pressure(Pressure::High);
        assert_eq!(services_of(&t, 42), (vec!["checkout".into()], 0));
        t.observe(fp, S, "search", meta_from("search"));
        assert_eq!(
            services_of(&t, 42),
            (vec!["checkout".into()], 0),
            "not collected"
        );
        t.set_pressure(Pressure::Normal);
        t.observe(fp, S, "search", meta_from("search"));
        assert_eq!(
            services_of(&t, 42),
            (vec!["checkout".into(), "search".into()], 0)
        );
    }

    #[test]
    fn a_summary_keeps_its_services_while_the_entry_changes() {
        let t = FingerprintTable::new(100, Duration::from_secs(60));
        let fp = Fingerprint(42);
        t.observe(fp, S, "checkout", meta_from("checkout"));
        t.observe(fp, S, "billing", meta_from("billing"));
        let before = t.top(1);
        t.observe(fp, S, "search", meta_from("search"));
        assert_eq!(before[0].services(), ["checkout", "billing"]);
        assert_eq!(
            services_of(&t, 42).0,
            ["checkout", "billing", "search"],
            "copied on write, not lost"
        );
    }

    /// Entries that actually hold a set, by walking the shards.
    fn sets_held(t: &FingerprintTable) -> usize {
        t.top(usize::MAX)
            .iter()
            .filter(|r| r.others.is_some())
            .count()
    }

    #[test]
    fn few_entries_hold_service_sets_and_freeing_them_is_counted() {
        use crate::memory::Pressure;
        let t = FingerprintTable::new(SHARDS * 16, Duration::from_secs(1));
        let max = SHARDS * 16 / SERVICE_SETS_DIVISOR;
        assert_eq!(t.service_sets(), (0, max));
        let two = |fp: u128, at: u64| {
            t.observe(Fingerprint(fp), at, "a", meta_from("a"));
            t.observe(Fingerprint(fp), at, "b", meta_from("b"));
        };
        for fp in 0..(max as u128 + 5) {
            two(fp, S);
        }
        assert_eq!(t.service_sets(), (max, max));
        assert_eq!(sets_held(&t), max);
        let over = services_of(&t, max as u128 + 4);
        assert_eq!(
            over,
            (vec!["a".into()], 0),
            "past the bound: the first only"
        );
        // Eviction of idle entries frees their sets (and the count says so).
        for fp in 0..(SHARDS as u128 * 64) {
            t.observe(Fingerprint(1_000 + fp), 10 * S, "c", meta_from("c"));
        }
        assert_eq!(t.service_sets().0, sets_held(&t));
        assert_eq!(t.service_sets().0, 0, "all idle, all evicted");
        two(5_000, 10 * S);
        assert_eq!(t.service_sets().0, 1);
        t.set_pressure(Pressure::High);
        assert_eq!((t.service_sets().0, sets_held(&t)), (0, 0));
        t.set_pressure(Pressure::Normal);
        two(5_000, 10 * S);
        assert_eq!((t.service_sets().0, sets_held(&t)), (1, 1));
    }
}
