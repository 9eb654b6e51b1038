//! Rate limiting: admit or suppress each event right after its fingerprint is known.
//!
//! - [`rules`]: the `[limit]` config: rules keyed by fingerprint, service, peer uid or global,
//!   each with rate, burst and window; the per-fingerprint duplicate policy; Redis settings.
//! - [`local`]: the bounded, evicting key map and the per-key decisions (GCRA, window counts,
//!   Redis leases). A decision is one sharded-mutex lookup: tens of nanoseconds.
//! - [`redis`]: the background task that syncs shared limits with Redis (one Lua call per
//!   `sync_interval` while keys wait for it, asleep otherwise; clock passed in) behind a
//!   circuit breaker.
//!
//! The ingest path never waits for Redis. For a shared rule, a daemon holds a *lease* of tokens
//! granted atomically by Redis for the current window; the sync task reports what was used and
//! asks for more. Until the first lease of a window arrives, a daemon may admit one sync
//! interval's worth of the rate on its own (reported at the next sync): that is the only
//! over-admission, at most hosts × rate × sync interval per window. While Redis is unreachable
//! (breaker not `Closed`), each daemon enforces `local_share` of every shared limit alone.
//! docs/rate-limiting.md has the details.

pub mod local;
pub mod redis;
pub mod rules;
pub mod suppress;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::event::fingerprint::Fingerprint;
use crate::limit::suppress::Reason;
use crate::memory::Pressure;
use local::{Key, Limits, Shards, DUPLICATE_RULE};
use rules::{KeyKind, RuleSet, Settings};

pub use redis::{run, spawn};

/// Smallest lease asked for, in sync intervals' worth of the rule's rate: enough that a daemon
/// at the limit rate syncs well before its lease runs out. It is also what one lost response
/// (a call that timed out after Redis ran it) can cost the window.
pub const MIN_LEASE_INTERVALS: i64 = 4;

/// Counters of the limiter, for `/stats` and the sync task's own bookkeeping.
#[derive(Debug, Default)]
pub struct LimitStats {
    /// Successful syncs (one Redis round trip each).
    pub syncs: AtomicU64,
    /// Keys carried by those syncs.
    pub synced_keys: AtomicU64,
    /// Tokens granted by Redis.
    pub granted: AtomicU64,
    /// Admissions made on the local share while Redis was unreachable.
    pub local_admits: AtomicU64,
}

/// Rules with their precomputed per-rule limits.
struct Compiled {
    set: RuleSet,
    /// Full rate: local rules, shared rules' windows.
    full: Vec<Limits>,
    /// `local_share` of the rate: shared rules while Redis is unreachable.
    share: Vec<Limits>,
}

impl Compiled {
    /// `daemons`: how many daemons Redis last counted (0 = unknown), for `local_share = "auto"`.
    fn new(set: RuleSet, sync_ns: u64, daemons: u64) -> Self {
        let lim = |share: f64| {
            set.rules
                .iter()
                .map(|r| Limits::new(r.rate, r.window_ns(), r.burst, share, sync_ns))
                .collect()
        };
        Self {
            full: lim(1.0),
            share: lim(set.local_share.fraction(daemons)),
            set,
        }
    }
}

/// The limiter shared by every connection (through the pipeline) and the sync task.
pub struct Limiter {
    /// Any rule or the duplicate policy configured; false makes [`Limiter::decide`] one load.
    active: AtomicBool,
    compiled: ArcSwap<Compiled>,
    keys: Shards,
    /// Redis is configured.
    redis: bool,
    /// Shared limits are in force (Redis configured and its breaker `Closed`).
    shared: AtomicBool,
    sync_ns: u64,
    /// Daemons Redis counted in the busiest window of the last successful sync (0: none yet);
    /// `local_share = "auto"` divides by it when Redis becomes unreachable.
    daemons: AtomicU64,
    pub stats: LimitStats,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("active", &self.active)
            .field("redis", &self.redis)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// Hash of a service name for its key (the same on every daemon).
pub fn service_key(service: &str) -> u128 {
    u128::from(xxhash_rust::xxh3::xxh3_64(service.as_bytes()))
}

impl Limiter {
    pub fn new(s: &Settings) -> Self {
        let sync_ns = s.sync_interval.as_nanos() as u64;
        let redis = s.redis_url.is_some();
        Self {
            active: AtomicBool::new(!s.rules.is_empty()),
            compiled: ArcSwap::from_pointee(Compiled::new(s.rules.clone(), sync_ns, 0)),
            keys: Shards::new(s.max_keys),
            redis,
            // Shared from the start: the first events use the pre-lease allowance, and the
            // breaker switches to local shares if Redis turns out to be unreachable.
            shared: AtomicBool::new(redis),
            sync_ns,
            daemons: AtomicU64::new(0),
            stats: LimitStats::default(),
        }
    }

    /// Admit (`None`) or suppress (`Some(reason)`) one event. `now_ns`: wall-clock ns (the
    /// read's receive time). Rules apply in order; an event suppressed by a later rule has
    /// used a token of the earlier ones.
    #[inline]
    pub fn decide(&self, fp: Fingerprint, service: &str, uid: u32, now_ns: u64) -> Option<Reason> {
        if !self.active.load(Relaxed) {
            return None;
        }
        self.decide_slow(fp, service, uid, now_ns)
    }

    fn decide_slow(&self, fp: Fingerprint, service: &str, uid: u32, now: u64) -> Option<Reason> {
        let c = self.compiled.load();
        if let Some((max, window)) = c.set.duplicates {
            let w = window.as_nanos() as u64;
            let key = Key {
                rule: DUPLICATE_RULE,
                value: fp.0,
            };
            if !self
                .keys
                .with(key, |e| (e.window_count(now, w, max), false))
            {
                return Some(Reason::Duplicate);
            }
        }
        let shared = self.shared.load(Relaxed);
        for (i, r) in c.set.rules.iter().enumerate() {
            let value = match r.key {
                KeyKind::Fingerprint => fp.0,
                KeyKind::Service => service_key(service),
                KeyKind::Uid => u128::from(uid),
                KeyKind::Global => 0,
            };
            let key = Key {
                rule: i as u16,
                value,
            };
            let ok = if r.shared && self.redis {
                if shared {
                    self.keys.with(key, |e| (e.shared(now, &c.full[i]), true))
                } else {
                    let ok = self.keys.with(key, |e| (e.gcra(now, &c.share[i]), false));
                    if ok {
                        self.stats.local_admits.fetch_add(1, Relaxed);
                    }
                    ok
                }
            } else {
                self.keys.with(key, |e| (e.gcra(now, &c.full[i]), false))
            };
            if !ok {
                return Some(Reason::RateLimit);
            }
        }
        None
    }

    /// SIGHUP: new rules. State is kept when they did not change, else reset.
    pub fn reload(&self, set: &RuleSet) {
        if self.compiled.load().set == *set {
            return;
        }
        self.active.store(!set.is_empty(), Relaxed);
        self.compiled.store(Arc::new(Compiled::new(
            set.clone(),
            self.sync_ns,
            self.daemons.load(Relaxed),
        )));
        self.keys.clear();
        // The sync task plans afresh (sweeps are due only with rules).
        self.keys.wake();
    }

    /// Any rule or the duplicate policy is configured (so keys are kept and swept).
    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// For the sync task: see [`Shards::sleep_if_unlisted`].
    pub fn sleep_if_unlisted(&self) -> bool {
        self.keys.sleep_if_unlisted()
    }

    /// For the sync task: completes when a key was listed while it slept, or the rules
    /// changed.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.keys.woken()
    }

    /// For the sync task: it is awake.
    pub fn awake(&self) {
        self.keys.awake();
    }

    /// Shrinks (or restores) the key map for a memory pressure level.
    pub fn set_pressure(&self, p: Pressure) {
        self.keys.set_divisor(match p {
            Pressure::Normal => 1,
            Pressure::High => 4,
            Pressure::Critical => 16,
        });
    }

    /// Switches shared rules between Redis leases (`true`) and local shares.
    pub fn set_shared(&self, on: bool) {
        let was = self.shared.swap(on && self.redis, Relaxed);
        if was && !on {
            // Nothing to sync while local.
            self.keys.clear_dirty();
            // `local_share = "auto"`: the share follows the daemons last counted.
            let c = self.compiled.load();
            if c.set.local_share == rules::LocalShare::Auto {
                let daemons = self.daemons.load(Relaxed);
                self.compiled.store(Arc::new(Compiled::new(
                    c.set.clone(),
                    self.sync_ns,
                    daemons,
                )));
            }
        }
    }

    /// What a successful sync said about the number of daemons sharing the limits.
    pub fn note_daemons(&self, n: u64) {
        if n > 0 {
            self.daemons.store(n, Relaxed);
        }
    }

    /// The fraction of each shared limit enforced while Redis is unreachable, now.
    pub fn local_fraction(&self) -> f64 {
        self.compiled
            .load()
            .set
            .local_share
            .fraction(self.daemons.load(Relaxed))
    }

    pub fn is_shared(&self) -> bool {
        self.shared.load(Relaxed)
    }

    /// Keys held, and the current bound.
    pub fn keys(&self) -> (usize, usize) {
        (self.keys.len(), self.keys.capacity())
    }

    pub fn evicted(&self) -> u64 {
        self.keys.evicted.load(Relaxed)
    }

    /// Drops keys unused since the previous sweep.
    pub fn sweep(&self) {
        self.keys.sweep();
    }

    /// Takes the keys to sync (at most `max`): per key, admissions to report and the lease
    /// change to ask for (positive: more tokens, negative: tokens given back).
    pub fn collect(&self, now: u64, max: usize) -> Vec<SyncItem> {
        let c = self.compiled.load_full();
        self.keys.collect(max, |key, e| {
            let demand = std::mem::take(&mut e.demand);
            let used = std::mem::take(&mut e.unreported);
            let (Some(rule), Some(l)) = (
                c.set.rules.get(usize::from(key.rule)),
                c.full.get(usize::from(key.rule)),
            ) else {
                return (None, false);
            };
            if e.window != now / l.window_ns.max(1) {
                return (None, false); // activity of a closed window
            }
            // Ask for more when the lease would not cover twice the last interval's demand,
            // and then for at least `MIN_LEASE_INTERVALS` intervals' worth of the rate (a lease
            // sized to demand alone would suppress the next burst while the window has room).
            // Redis caps it at a fair share of what is left. A key that went quiet gives its
            // lease back for the other daemons.
            let need = i64::from(demand) * 2 - i64::from(e.lease);
            let want = if demand == 0 {
                // Until the next lease, the key is back on its (per-window capped) pre-lease
                // allowance, so a burst right after the give-back is not suppressed outright.
                e.leased = false;
                -i64::from(std::mem::take(&mut e.lease))
            } else if need > 0 {
                need.max(i64::from(l.pre_lease) * MIN_LEASE_INTERVALS)
            } else {
                0
            };
            // A key holding a lease stays listed, so that it gives it back once quiet.
            let keep = e.lease > 0;
            if want == 0 && used == 0 {
                return (None, keep);
            }
            let item = SyncItem {
                key,
                rule: key.rule,
                name: rule.name.clone(),
                rate: rule.rate,
                window_ns: l.window_ns,
                window: e.window,
                used,
                want,
            };
            (Some(item), keep)
        })
    }

    /// A sync that failed: what it would have told Redis stays with the keys for the next
    /// sync — admissions made before a lease (so the shared count still hears of every one) and
    /// a lease given back (still counted as ours in Redis, so still ours to spend). Keys of a
    /// window that has closed meanwhile are left alone.
    pub fn restore(&self, items: &[SyncItem]) {
        for it in items {
            self.keys.update(it.key, |e| {
                if e.window != it.window {
                    return false;
                }
                e.unreported = e.unreported.saturating_add(it.used);
                if it.want < 0 {
                    let back = (-it.want).min(i64::from(u32::MAX)) as u32;
                    e.lease = e.lease.saturating_add(back);
                    e.leased = true;
                }
                true
            });
        }
    }

    /// Applies Redis's answers: leases granted for the windows they were asked for.
    pub fn apply(&self, items: &[SyncItem], grants: &[(i64, i64)]) {
        for (it, (grant, _total)) in items.iter().zip(grants) {
            let grant = (*grant).clamp(0, i64::from(u32::MAX)) as u32;
            self.stats.granted.fetch_add(u64::from(grant), Relaxed);
            if it.want <= 0 {
                continue; // a report or a give-back: no lease asked, none granted
            }
            self.keys.update(it.key, |e| {
                if e.window == it.window {
                    e.lease = e.lease.saturating_add(grant);
                    e.leased = true;
                }
                // Listed after a grant, so that a key going quiet right after it gives the
                // lease back at the next sync instead of holding it to the end of the window.
                grant > 0
            });
        }
    }

    /// The `limit` object of `/stats`.
    pub fn to_json(&self) -> serde_json::Value {
        let (held, bound) = self.keys();
        let s = &self.stats;
        serde_json::json!({
            "rules": self.compiled.load().set.rules.len(),
            "mode": match (self.redis, self.is_shared()) {
                (false, _) => "local",
                (true, true) => "shared",
                (true, false) => "local_share",
            },
            "keys": held,
            "max_keys": bound,
            "evicted": self.evicted(),
            "syncs": s.syncs.load(Relaxed),
            "synced_keys": s.synced_keys.load(Relaxed),
            "granted": s.granted.load(Relaxed),
            "local_share_admitted": s.local_admits.load(Relaxed),
            "local_share": self.local_fraction(),
            "daemons_seen": self.daemons.load(Relaxed),
        })
    }

    /// The longest window among the rules (for the idle sweep period).
    pub fn longest_window_ns(&self) -> u64 {
        let c = self.compiled.load();
        let dup = c.set.duplicates.map_or(0, |(_, w)| w.as_nanos() as u64);
        c.full.iter().map(|l| l.window_ns).fold(dup, u64::max)
    }
}

/// One key's share of a sync call.
#[derive(Debug, Clone)]
pub struct SyncItem {
    pub key: Key,
    pub rule: u16,
    pub name: String,
    /// The shared limit per window.
    pub rate: u64,
    pub window_ns: u64,
    /// Window index (wall-clock ns / window).
    pub window: u64,
    /// Admissions made before the lease, to add to the shared count.
    pub used: u32,
    /// More lease tokens wanted (> 0; Redis grants a fair share), or tokens given back (< 0).
    pub want: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(text: &str) -> Settings {
        let raw: rules::LimitConfig = toml::from_str(text).unwrap();
        raw.validate().unwrap()
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn no_rules_admit_everything() {
        let l = Limiter::new(&rules::LimitConfig::default().validate().unwrap());
        for i in 0..1000 {
            assert_eq!(l.decide(Fingerprint(i), "svc", 0, i as u64), None);
        }
        assert_eq!(l.keys().0, 0);
    }

    #[test]
    fn rules_key_by_fingerprint_service_uid_and_global() {
        let l = Limiter::new(&settings(
            r#"
            [[rules]]
            key = "fingerprint"
            rate = 3
            [[rules]]
            key = "service"
            rate = 5
            [[rules]]
            key = "uid"
            rate = 100
            [[rules]]
            key = "global"
            rate = 8
            "#,
        ));
        let t = 100 * S;
        let ok = |fp: u128, svc: &str| l.decide(Fingerprint(fp), svc, 1000, t).is_none();
        assert_eq!((0..10).filter(|_| ok(1, "a")).count(), 3, "per fingerprint");
        assert_eq!(
            (0..10).filter(|i| ok(100 + i, "a")).count(),
            2,
            "service a: 5"
        );
        assert_eq!((0..10).filter(|i| ok(200 + i, "b")).count(), 3, "global: 8");
        assert_eq!(
            l.decide(Fingerprint(999), "c", 1000, t),
            Some(Reason::RateLimit)
        );
    }

    #[test]
    fn duplicates_before_rates() {
        let l = Limiter::new(&settings(
            "[duplicates]\nmax = 2\nwindow = \"10s\"\n[[rules]]\nkey = \"global\"\nrate = 1000\n",
        ));
        let t = 50 * S;
        let r: Vec<_> = (0..4)
            .map(|_| l.decide(Fingerprint(7), "s", 0, t))
            .collect();
        assert_eq!(
            r,
            [None, None, Some(Reason::Duplicate), Some(Reason::Duplicate)]
        );
        assert_eq!(l.decide(Fingerprint(7), "s", 0, t + 10 * S), None);
    }

    #[test]
    fn reload_resets_only_on_change() {
        let s = settings("[[rules]]\nkey = \"global\"\nrate = 2\n");
        let l = Limiter::new(&s);
        let t = 10 * S;
        assert_eq!(
            (0..5)
                .filter(|_| l.decide(Fingerprint(1), "", 0, t).is_none())
                .count(),
            2
        );
        l.reload(&s.rules);
        assert!(
            l.decide(Fingerprint(1), "", 0, t).is_some(),
            "same rules: state kept"
        );
        let s2 = settings("[[rules]]\nkey = \"global\"\nrate = 4\n");
        l.reload(&s2.rules);
        assert_eq!(
            (0..5)
                .filter(|_| l.decide(Fingerprint(1), "", 0, t).is_none())
                .count(),
            4
        );
        l.reload(&settings("").rules);
        assert!(l.decide(Fingerprint(1), "", 0, t).is_none());
    }

    #[test]
    fn auto_local_share_follows_the_daemons_redis_counted() {
        let s = settings(
            "redis_url = \"redis://127.0.0.1:1\"\n[[rules]]\nkey = \"global\"\nrate = 100\n",
        );
        assert_eq!(s.rules.local_share, rules::LocalShare::Auto, "the default");
        let l = Limiter::new(&s);
        assert_eq!(
            l.local_fraction(),
            1.0,
            "nothing counted yet: the whole limit"
        );
        l.note_daemons(4);
        l.note_daemons(0); // an answer without items says nothing
        assert_eq!(l.local_fraction(), 0.25);
        l.set_shared(false);
        let t = 20 * S;
        let n = (0..500)
            .filter(|_| l.decide(Fingerprint(1), "", 0, t).is_none())
            .count();
        assert_eq!(n, 25, "a quarter of 100 per second");
    }

    #[test]
    fn shared_mode_leases_and_local_share_fallback() {
        let s = settings(
            "redis_url = \"redis://127.0.0.1:1\"\nsync_interval = \"100ms\"\nlocal_share = 0.5\n[[rules]]\nkey = \"global\"\nrate = 100\n",
        );
        let l = Limiter::new(&s);
        let t = 20 * S;
        // Pre-lease: one sync interval's worth (10).
        let n = (0..50)
            .filter(|_| l.decide(Fingerprint(1), "", 0, t).is_none())
            .count();
        assert_eq!(n, 10);
        let items = l.collect(t, 100);
        assert_eq!(items.len(), 1);
        assert_eq!((items[0].used, items[0].want), (10, 100));
        l.apply(&items, &[(30, 40)]);
        let n = (0..20)
            .filter(|_| l.decide(Fingerprint(1), "", 0, t).is_none())
            .count();
        assert_eq!(n, 20);
        // The 10 tokens left cover less than twice the demand of 20: ask for 30, at least
        // four intervals' worth (40).
        let items = l.collect(t, 100);
        assert_eq!((items[0].used, items[0].want), (0, 40));
        l.apply(&items, &[(0, 100)]);
        // Quiet for an interval: the 10 left are given back.
        let items = l.collect(t, 100);
        assert_eq!((items[0].used, items[0].want), (0, -10));
        l.apply(&items, &[(0, 90)]);
        assert!(l.collect(t, 100).is_empty(), "nothing held, nothing listed");
        let n = (0..50)
            .filter(|_| l.decide(Fingerprint(1), "", 0, t).is_none())
            .count();
        assert_eq!(
            n, 0,
            "no lease, and the window's pre-lease allowance is used up"
        );
        // A failed sync loses nothing: its report (and a give-back) comes again next time.
        let t3 = t + Duration::from_secs(1).as_nanos() as u64; // the next 1 s window
        let n = (0..50)
            .filter(|_| l.decide(Fingerprint(1), "", 0, t3).is_none())
            .count();
        assert_eq!(n, 10);
        let items = l.collect(t3, 100);
        assert_eq!(items[0].used, 10);
        l.restore(&items); // the call failed
        let n = (0..20)
            .filter(|_| l.decide(Fingerprint(1), "", 0, t3).is_none())
            .count();
        assert_eq!(n, 0, "pre-lease allowance spent, no lease yet");
        let items = l.collect(t3, 100);
        assert_eq!(items.len(), 1, "the key is listed again");
        assert_eq!(
            (items[0].used, items[0].want),
            (10, 40),
            "the admissions are reported again"
        );
        l.apply(&items, &[(5, 15)]);
        let items = l.collect(t3, 100); // quiet: give the 5 back
        assert_eq!((items[0].used, items[0].want), (0, -5));
        l.restore(&items); // failed: the 5 are still ours
        let n = (0..50)
            .filter(|_| l.decide(Fingerprint(1), "", 0, t3).is_none())
            .count();
        assert_eq!(n, 5, "the lease that could not be given back is spent");
        // Redis unreachable: half of the limit, locally.
        l.set_shared(false);
        let t2 = t + Duration::from_secs(5).as_nanos() as u64;
        let n = (0..500)
            .filter(|_| l.decide(Fingerprint(1), "", 0, t2).is_none())
            .count();
        assert_eq!(n, 50);
        assert_eq!(l.stats.local_admits.load(Relaxed), 50);
    }

    /// The background task follows the pressure channel (no Redis configured).
    #[tokio::test(start_paused = true)]
    async fn task_shrinks_on_pressure_and_stops_on_cancel() {
        let s = settings("max_keys = 16000\n[[rules]]\nkey = \"fingerprint\"\nrate = 10\n");
        let l = Arc::new(Limiter::new(&s));
        for i in 0..16_000u128 {
            l.decide(Fingerprint(i), "", 0, S);
        }
        let (tx, rx) = crate::memory::channel();
        let cancel = tokio_util::sync::CancellationToken::new();
        let (outbox, _records) = crate::outbox::outbox();
        let breakers = Arc::new(crate::breaker::Registry::default());
        let task = tokio::spawn(run(l.clone(), s, rx, outbox, breakers, cancel.clone()));
        tx.send(Pressure::High).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (held, cap) = l.keys();
        assert_eq!(cap, (16_000 / local::SHARDS / 4) * local::SHARDS);
        assert!(held <= cap);
        tx.send(Pressure::Normal).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(l.keys().1, 16_000);
        cancel.cancel();
        task.await.unwrap();
    }

    #[test]
    fn pressure_shrinks_the_key_map() {
        let l = Limiter::new(&settings(
            "max_keys = 16000\n[[rules]]\nkey = \"fingerprint\"\nrate = 10\n",
        ));
        let (tx, mut rx) = crate::memory::channel();
        for i in 0..16_000u128 {
            l.decide(Fingerprint(i), "", 0, S);
        }
        tx.send(Pressure::Critical).unwrap();
        assert!(rx.has_changed().unwrap());
        l.set_pressure(*rx.borrow_and_update());
        let (held, cap) = l.keys();
        assert_eq!(cap, (16_000 / local::SHARDS / 16) * local::SHARDS);
        assert!(held <= cap, "{held} > {cap}");
    }
}
