//! Local limiter state: a bounded, sharded map from (rule, key) to a small [`Entry`], and the
//! per-event decisions on it (GCRA for local limits, a fixed-window count for duplicates, a
//! Redis lease for shared limits).
//!
//! Bounded memory: each shard holds two generations of entries (`cur`, `old`). A hit in `old`
//! moves the entry to `cur`; when `cur` reaches half the shard's capacity, `old` is dropped and
//! `cur` becomes `old`. So at most `capacity` entries live per shard, the least recently used
//! are the ones dropped, and every operation is O(1) with no per-entry list links. A periodic
//! [`Shards::sweep`] rotates every shard so idle keys leave even without churn. Under memory
//! pressure the capacity shrinks (a quarter at `High`, a sixteenth at `Critical`).
//!
//! Keys waiting for a Redis sync are listed per shard. The sync task sleeps while no key is
//! listed; listing a key while it sleeps wakes it ([`Shards::sleep_if_unlisted`]): one atomic
//! load per newly listed key, a wake-up only on the first one after the task went to sleep.
//!
//! Why not the `governor` crate: its keyed limiter (GCRA on a `DashMap`) has no size bound
//! besides a manual `retain_recent`, cannot shrink on pressure, and a shared limit needs more
//! per key than a GCRA cell (the Redis lease, unreported admissions, demand). The GCRA itself
//! is ten lines here.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// Shards of the key map: enough that connection tasks on different workers rarely meet on one
/// lock, few enough that a sweep is cheap.
pub const SHARDS: usize = 16;

/// Keys waiting for the next Redis sync, per shard. A key that finds the list full is synced
/// when it is next seen after a sync drained the list.
pub const MAX_DIRTY_PER_SHARD: usize = 1024;

/// One limited key: a rule index and the key's value (fingerprint, service hash, uid or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub rule: u16,
    pub value: u128,
}

/// Rule index used for the duplicate policy's per-fingerprint counts.
pub const DUPLICATE_RULE: u16 = u16::MAX;

impl Key {
    /// A well-mixed 64-bit hash (values are hashes already, or small integers).
    fn hash64(&self) -> u64 {
        let v = (self.value as u64) ^ ((self.value >> 64) as u64) ^ u64::from(self.rule);
        // splitmix64 finalizer: spreads small uids and rule numbers over all bits.
        let mut z = v.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash64());
    }
}

/// Passes the key's own mixed hash through (no SipHash per lookup).
#[derive(Default)]
pub struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Map = HashMap<Key, Entry, BuildHasherDefault<PassHasher>>;

/// State of one key (40 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    /// GCRA theoretical arrival time, wall-clock ns.
    pub tat: u64,
    /// Index of the window the counters below belong to.
    pub window: u64,
    /// Duplicates: copies seen in `window`. Shared limits: admissions made before the first
    /// lease of `window` arrived (capped, see [`Limits::pre_lease`]).
    pub count: u32,
    /// Shared limits: tokens left from Redis leases for `window`.
    pub lease: u32,
    /// Shared limits: admissions not yet added to the Redis count.
    pub unreported: u32,
    /// Shared limits: events seen (admitted or not) since the last sync.
    pub demand: u32,
    /// A lease for `window` has arrived.
    pub leased: bool,
    /// Listed for the next sync.
    pub dirty: bool,
}

/// Per-rule numbers the decisions need, precomputed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// GCRA emission interval: ns between admissions at the sustained rate.
    pub emission_ns: u64,
    /// GCRA: how far the arrival time may run ahead of now (burst).
    pub tolerance_ns: u64,
    /// Events per window (shared limits).
    pub rate: u64,
    pub window_ns: u64,
    /// Admissions allowed in a window before the first lease arrives: one sync interval's
    /// worth of the rate. It bounds over-admission to hosts × rate × sync interval.
    pub pre_lease: u32,
}

impl Limits {
    /// Local GCRA limits for `rate` per `window_ns`, burst `burst`, scaled by `share`.
    pub fn new(rate: u64, window_ns: u64, burst: u64, share: f64, sync_ns: u64) -> Self {
        let scaled = ((rate as f64) * share).max(1.0);
        let emission_ns = ((window_ns as f64) / scaled).max(1.0) as u64;
        let burst = ((burst as f64) * share).max(1.0) as u64;
        let pre = ((rate as f64) * (sync_ns as f64) / (window_ns as f64)).ceil();
        Self {
            emission_ns,
            tolerance_ns: emission_ns.saturating_mul(burst.saturating_sub(1)),
            rate,
            window_ns,
            pre_lease: pre.clamp(1.0, rate as f64) as u32,
        }
    }
}

impl Entry {
    /// Generic cell rate algorithm: admit if the arrival time, pushed by one emission interval,
    /// stays within the burst tolerance of now.
    pub fn gcra(&mut self, now: u64, l: &Limits) -> bool {
        let tat = self.tat.max(now);
        if tat - now > l.tolerance_ns {
            return false;
        }
        self.tat = tat + l.emission_ns;
        true
    }

    /// Fixed-window count: the `max`-th copy in a window is the last admitted.
    pub fn window_count(&mut self, now: u64, window_ns: u64, max: u64) -> bool {
        let w = now / window_ns.max(1);
        if self.window != w {
            self.window = w;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        u64::from(self.count) <= max
    }

    /// Shared limit: spend a lease token, or before the window's first lease one of the
    /// `pre_lease` local admissions (reported at the next sync). Returns (admit, first sight
    /// since the last sync).
    pub fn shared(&mut self, now: u64, l: &Limits) -> bool {
        let w = now / l.window_ns.max(1);
        if self.window != w {
            // A new window: old leases and unreported counts belong to a closed window.
            self.window = w;
            self.count = 0;
            self.lease = 0;
            self.unreported = 0;
            self.leased = false;
        }
        self.demand = self.demand.saturating_add(1);
        if self.lease > 0 {
            self.lease -= 1;
            return true;
        }
        if !self.leased && self.count < l.pre_lease {
            self.count += 1;
            self.unreported += 1;
            return true;
        }
        false
    }
}

/// Lists `key` for the next sync, once (the list is bounded per shard). Returns whether it
/// was listed now.
fn list(dirty: &mut Vec<Key>, e: &mut Entry, key: Key) -> bool {
    if !e.dirty && dirty.len() < MAX_DIRTY_PER_SHARD {
        e.dirty = true;
        dirty.push(key);
        return true;
    }
    false
}

struct Shard {
    cur: Map,
    old: Map,
    dirty: Vec<Key>,
}

/// The bounded key map.
pub struct Shards {
    shards: Box<[Mutex<Shard>]>,
    /// Capacity of one shard (both generations), after pressure scaling.
    cap: AtomicUsize,
    base_cap: usize,
    /// Entries dropped by rotations.
    pub evicted: std::sync::atomic::AtomicU64,
    /// The sync task sleeps until a key is listed (see [`Shards::sleep_if_unlisted`]).
    sync_asleep: AtomicBool,
    /// Wakes the sync task: a key listed while it slept, or new rules.
    wake: Notify,
}

impl Shards {
    pub fn new(max_keys: usize) -> Self {
        let base_cap = (max_keys / SHARDS).max(2);
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        cur: Map::default(),
                        old: Map::default(),
                        dirty: Vec::new(),
                    })
                })
                .collect(),
            cap: AtomicUsize::new(base_cap),
            base_cap,
            evicted: Default::default(),
            sync_asleep: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// For the sync task, before it sleeps with no sync planned: marks it asleep and returns
    /// true when no key is listed; otherwise (a key is listed: there is work) it stays awake
    /// and this returns false. Once it returns true, the next key listed by
    /// [`Shards::with`] or [`Shards::update`] wakes [`Shards::woken`].
    ///
    /// No wake-up is lost: the flag is set before each shard is looked at under its lock, and
    /// a listing happens under that lock too, so a key listed after its shard was looked at
    /// sees the flag, and one listed before is seen here.
    pub fn sleep_if_unlisted(&self) -> bool {
        self.sync_asleep.store(true, Ordering::SeqCst);
        let listed = (0..SHARDS).any(|i| !self.lock(i).dirty.is_empty());
        if listed {
            self.sync_asleep.store(false, Relaxed);
        }
        !listed
    }

    /// Completes when a key was listed while the sync task slept, or on [`Shards::wake`].
    /// A wake-up that came before this is called is kept (one permit), not lost.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    /// The sync task is awake (whatever woke it).
    pub fn awake(&self) {
        self.sync_asleep.store(false, Relaxed);
    }

    /// Wakes the sync task (new rules: it plans afresh).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// After a key was newly listed: wakes the sync task if it sleeps. One relaxed load when
    /// it is awake; the first listing after it went to sleep wakes it, the others find the
    /// flag cleared.
    #[inline]
    fn listed(&self) {
        if self.sync_asleep.load(Relaxed) && self.sync_asleep.swap(false, Relaxed) {
            self.wake.notify_one();
        }
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the entry of `key` (created empty if missing). `f` returns (result, whether
    /// the key should be listed for the next sync).
    pub fn with<R>(&self, key: Key, f: impl FnOnce(&mut Entry) -> (R, bool)) -> R {
        let h = key.hash64();
        let mut s = self.lock((h >> 60) as usize % SHARDS);
        let s = &mut *s;
        let cap = self.cap.load(Relaxed);
        let e = match s.cur.get_mut(&key) {
            Some(e) => e,
            None => {
                let moved = s.old.remove(&key).unwrap_or_default();
                if s.cur.len() >= cap / 2 {
                    // Reuse the old generation's allocation for the new one (no regrowth).
                    self.evicted.fetch_add(s.old.len() as u64, Relaxed);
                    s.old.clear();
                    std::mem::swap(&mut s.cur, &mut s.old);
                }
                s.cur.entry(key).or_insert(moved)
            }
        };
        let (r, dirty) = f(e);
        let listed = dirty && list(&mut s.dirty, e, key);
        if listed {
            self.listed();
        }
        r
    }

    /// Takes up to `max` keys listed for sync, applying `f` to each live entry. `f` returns
    /// what to sync and whether the key stays listed for the next sync. Returns what `f`
    /// produced.
    pub fn collect<T>(
        &self,
        max: usize,
        mut f: impl FnMut(Key, &mut Entry) -> (Option<T>, bool),
    ) -> Vec<T> {
        let mut out = Vec::new();
        for i in 0..SHARDS {
            let mut s = self.lock(i);
            let s = &mut *s;
            let take = s.dirty.len().min(max.saturating_sub(out.len()));
            let keys: Vec<Key> = s.dirty.drain(..take).collect();
            for k in keys {
                let e = match s.cur.get_mut(&k) {
                    Some(e) => e,
                    None => match s.old.get_mut(&k) {
                        Some(e) => e,
                        None => continue,
                    },
                };
                let (t, keep) = f(k, e);
                e.dirty = keep;
                if keep {
                    s.dirty.push(k);
                }
                if let Some(t) = t {
                    out.push(t);
                }
            }
        }
        out
    }

    /// Runs `f` on the entry of `key` if it is still held; `f` returns whether to list the key
    /// for the next [`Shards::collect`].
    pub fn update(&self, key: Key, f: impl FnOnce(&mut Entry) -> bool) {
        let h = key.hash64();
        let mut s = self.lock((h >> 60) as usize % SHARDS);
        let s = &mut *s;
        if let Some(e) = s.cur.get_mut(&key).or(s.old.get_mut(&key)) {
            if f(e) && list(&mut s.dirty, e, key) {
                self.listed();
            }
        }
    }

    /// Forgets every listed key (local mode: nothing to sync).
    pub fn clear_dirty(&self) {
        for i in 0..SHARDS {
            let mut s = self.lock(i);
            let s = &mut *s;
            for k in std::mem::take(&mut s.dirty) {
                if let Some(e) = s.cur.get_mut(&k).or(s.old.get_mut(&k)) {
                    e.dirty = false;
                }
            }
        }
    }

    /// Rotates every shard: keys not used since the previous sweep are dropped.
    pub fn sweep(&self) {
        for i in 0..SHARDS {
            let mut s = self.lock(i);
            let s = &mut *s;
            let dropped = std::mem::replace(&mut s.old, std::mem::take(&mut s.cur));
            self.evicted.fetch_add(dropped.len() as u64, Relaxed);
        }
    }

    /// Drops all state (rules changed).
    pub fn clear(&self) {
        for i in 0..SHARDS {
            let mut s = self.lock(i);
            s.cur = Map::default();
            s.old = Map::default();
            s.dirty.clear();
        }
    }

    /// Scales the capacity by `1/divisor` (pressure) and trims shards that are over it.
    pub fn set_divisor(&self, divisor: usize) {
        let cap = (self.base_cap / divisor.max(1)).max(2);
        self.cap.store(cap, Relaxed);
        for i in 0..SHARDS {
            let mut s = self.lock(i);
            let s = &mut *s;
            if s.cur.len() + s.old.len() > cap {
                let n = s.old.len();
                s.old = Map::default();
                self.evicted.fetch_add(n as u64, Relaxed);
                if s.cur.len() > cap / 2 {
                    let n = s.cur.len();
                    s.cur = Map::default();
                    self.evicted.fetch_add(n as u64, Relaxed);
                }
                s.cur.shrink_to_fit();
                s.old.shrink_to_fit();
            }
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        (0..SHARDS)
            .map(|i| {
                let s = self.lock(i);
                s.cur.len() + s.old.len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap.load(Relaxed) * SHARDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    #[test]
    fn gcra_admits_burst_then_rate() {
        let l = Limits::new(10, S, 5, 1.0, 50 * MS);
        let mut e = Entry::default();
        let t0 = 1_000 * S;
        let admitted = (0..100).filter(|_| e.gcra(t0, &l)).count();
        assert_eq!(admitted, 5, "the burst");
        // One emission interval (100 ms) later, one more.
        assert!(!e.gcra(t0 + 50 * MS, &l));
        assert!(e.gcra(t0 + 100 * MS, &l));
        // Over 10 s at full overload: the rate, exactly.
        let mut n = 0;
        for ms in 101..10_101u64 {
            n += usize::from(e.gcra(t0 + ms * MS, &l));
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn share_scales_rate_and_burst() {
        let l = Limits::new(100, S, 100, 0.25, 50 * MS);
        let mut e = Entry::default();
        let t0 = 5 * S;
        assert_eq!((0..1000).filter(|_| e.gcra(t0, &l)).count(), 25);
        assert_eq!(l.pre_lease, 5);
    }

    #[test]
    fn duplicate_window_counts_and_resets() {
        let mut e = Entry::default();
        let w = 60 * S;
        let t0 = 100 * w;
        assert_eq!((0..10).filter(|_| e.window_count(t0, w, 3)).count(), 3);
        assert!(e.window_count(t0 + w, w, 3));
    }

    #[test]
    fn shared_uses_pre_lease_then_lease_only() {
        let l = Limits::new(100, S, 100, 1.0, 50 * MS);
        assert_eq!(l.pre_lease, 5);
        let mut e = Entry::default();
        let t0 = 7 * S;
        assert_eq!((0..20).filter(|_| e.shared(t0, &l)).count(), 5);
        assert_eq!(e.unreported, 5);
        assert_eq!(e.demand, 20);
        // A lease of 3 arrives.
        e.leased = true;
        e.lease = 3;
        assert_eq!((0..20).filter(|_| e.shared(t0, &l)).count(), 3);
        // Next window: everything resets.
        assert!(e.shared(t0 + S, &l));
        assert_eq!((e.lease, e.unreported, e.leased), (0, 1, false));
    }

    #[test]
    fn map_is_bounded_and_keeps_recent_keys() {
        let m = Shards::new(1_000);
        for i in 0..1_000_000u128 {
            m.with(
                Key {
                    rule: 0,
                    value: i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                },
                |e| {
                    e.count += 1;
                    ((), false)
                },
            );
        }
        assert!(m.len() <= m.capacity(), "{} > {}", m.len(), m.capacity());
        assert!(m.evicted.load(Relaxed) >= 1_000_000 - 1_000);
        // A key used all along survives churn.
        let hot = Key { rule: 1, value: 42 };
        for i in 0..100_000u128 {
            m.with(hot, |e| {
                e.count += 1;
                ((), false)
            });
            m.with(Key { rule: 0, value: i }, |_| ((), false));
        }
        assert_eq!(m.with(hot, |e| (e.count, false)), 100_000);
    }

    #[test]
    fn pressure_shrinks_and_sweep_drops_idle() {
        let m = Shards::new(16_000);
        for i in 0..16_000u128 {
            m.with(Key { rule: 0, value: i }, |_| ((), false));
        }
        let before = m.len();
        m.set_divisor(16);
        assert!(m.len() <= m.capacity() && m.len() < before / 4);
        m.set_divisor(1);
        let k = Key { rule: 0, value: 7 };
        m.with(k, |e| {
            e.count = 9;
            ((), false)
        });
        m.sweep();
        assert_eq!(
            m.with(k, |e| (e.count, false)),
            9,
            "used before one sweep: kept"
        );
        m.sweep();
        m.sweep();
        assert_eq!(m.with(k, |e| (e.count, false)), 0, "idle two sweeps: gone");
    }

    #[test]
    fn dirty_keys_are_collected_once() {
        let m = Shards::new(1_000);
        for v in 0..10u128 {
            for _ in 0..3 {
                m.with(Key { rule: 0, value: v }, |e| {
                    e.demand += 1;
                    ((), true)
                });
            }
        }
        let got = m.collect(100, |k, e| {
            (Some((k.value, std::mem::take(&mut e.demand))), k.value < 2)
        });
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|(_, d)| *d == 3));
        let kept = m.collect(100, |k, _| (Some(k.value), false));
        assert_eq!(kept.len(), 2, "two kept listed");
        assert!(m.collect(100, |k, _| (Some(k), false)).is_empty());
    }

    /// Whether `woken` completes without waiting (a wake-up is pending).
    fn pending_wake(m: &Shards) -> bool {
        use std::future::Future;
        let mut f = std::pin::pin!(m.woken());
        let waker = std::task::Waker::noop();
        f.as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
            .is_ready()
    }

    #[test]
    fn the_first_key_listed_while_the_sync_task_sleeps_wakes_it() {
        let m = Shards::new(1_000);
        let list = |v: u128| m.with(Key { rule: 0, value: v }, |_| ((), true));
        // Awake: listing wakes nobody.
        list(1);
        assert!(!pending_wake(&m));
        assert!(!m.sleep_if_unlisted(), "a key is listed: stay awake");
        m.collect(100, |_, _| (None::<()>, false));
        assert!(m.sleep_if_unlisted(), "nothing listed: sleep");
        assert!(!pending_wake(&m));
        // Seen again, not newly listed: still nothing... until a key is listed.
        m.with(Key { rule: 0, value: 1 }, |_| ((), false));
        assert!(!pending_wake(&m));
        list(2);
        list(3);
        assert!(pending_wake(&m), "woken by the first listing");
        assert!(!pending_wake(&m), "once");
        // A key listed by the task's own update (a failed sync's report) while asleep too.
        m.collect(100, |_, _| (None::<()>, false));
        assert!(m.sleep_if_unlisted());
        m.update(Key { rule: 0, value: 2 }, |_| true);
        assert!(pending_wake(&m));
        // New rules wake it as well.
        m.wake();
        assert!(pending_wake(&m));
    }

    /// No lost wake-up: producers on several threads list keys one at a time and wait for
    /// each to be collected by a sync loop that sleeps whenever nothing is listed. A listing
    /// that failed to wake it would never be collected (the loop has no timer).
    #[test]
    fn no_listing_is_left_waiting_by_a_sleeping_sync_loop() {
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        const PRODUCERS: usize = 3;
        const ROUNDS: u64 = 2_000;
        let m = Arc::new(Shards::new(100_000));
        let seen: Arc<Vec<AtomicU64>> =
            Arc::new((0..PRODUCERS).map(|_| AtomicU64::new(0)).collect());
        let done = Arc::new(AtomicBool::new(false));
        let sync = {
            let (m, seen, done) = (m.clone(), seen.clone(), done.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mut sleeps = 0u64;
                    while !done.load(Relaxed) {
                        for k in m.collect(usize::MAX, |k, _| (Some(k), false)) {
                            let p = (k.value >> 32) as usize;
                            seen[p].fetch_max(k.value as u32 as u64, Relaxed);
                        }
                        if m.sleep_if_unlisted() {
                            sleeps += 1;
                            m.woken().await;
                            m.awake();
                        }
                    }
                    sleeps
                })
            })
        };
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (m, seen) = (m.clone(), seen.clone());
                std::thread::spawn(move || {
                    for i in 1..=ROUNDS {
                        let key = Key {
                            rule: 0,
                            value: ((p as u128) << 32) | u128::from(i),
                        };
                        m.with(key, |_| ((), true));
                        let deadline =
                            std::time::Instant::now() + std::time::Duration::from_secs(10);
                        while seen[p].load(Relaxed) < i {
                            assert!(
                                std::time::Instant::now() < deadline,
                                "producer {p}: key {i} listed but never collected"
                            );
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        done.store(true, Relaxed);
        m.wake();
        let sleeps = sync.join().unwrap();
        assert!(sleeps > 0, "the loop never slept: the test tested nothing");
    }
}
