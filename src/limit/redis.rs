//! The limiter's background task: memory pressure, idle sweeps and, when `limit.redis_url` is
//! set, the sync of shared limits with Redis.
//!
//! Every `sync_interval`, while any key is listed for syncing, the task takes the keys that saw
//! events, and makes **one** call: an `EVALSHA` of [`SCRIPT`] carrying, per key, the admissions
//! made before a lease (added to the shared count unconditionally) and whether it wants more
//! tokens (or gives its lease back). The script grants what was asked, but at most a fair share
//! of what is left in the window — `(limit − count) / daemons` — and adds the grant to the
//! count atomically, so leases never add up past the limit. The clock is passed in (window
//! index in the key names, expiry as an argument): no `TIME` in Lua. With no key listed the
//! task sleeps until an event lists one ([`run`]).
//!
//! Keys: `{prefix}:<rule>:<key hex>:<window index>`, a hash holding each daemon's count; the
//! braces make every key of one call hash to one Redis Cluster slot. They expire two windows
//! after their window ends.
//!
//! Every call (connect included) has the `redis_timeout` deadline and goes through the
//! [`Breaker`]; the ingest path never waits for any of it. When the breaker leaves `Closed`,
//! shared rules switch to the local share; a successful half-open probe switches them back.
//! Transitions and connection trouble are written to the log as `daemon` records.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::rules::Settings;
use super::{Limiter, SyncItem};
use crate::breaker::Registry;
use crate::breaker::{Breaker, Outcome, State, SyncNotices, Transition};
use crate::memory::PressureRx;
use crate::outbox::Outbox;

/// Most keys carried by one sync call; keys beyond it wait for the next interval. Bounds the
/// size of the call (about 150 bytes of arguments per key) and the script's run time in Redis.
pub const MAX_SYNC_KEYS: usize = 2048;

/// Idle keys are swept at most this often (and never sooner than two of the longest window).
pub const MIN_SWEEP_PERIOD: Duration = Duration::from_secs(60);

/// The sync script. KEYS: per item the current and the previous window's hash. ARGV: this
/// daemon's id, then per item: limit, expire-at (ms, from the caller's clock), used, want.
/// Returns per item: granted, count after the call, daemons counted (this one included).
pub const SCRIPT: &str = r#"
local me = ARGV[1]
local out = {}
local n = #KEYS / 2
for i = 1, n do
  local cur, prev = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 1 + (i - 1) * 4
  local limit = tonumber(ARGV[b + 1])
  local expire_at = tonumber(ARGV[b + 2])
  local used = tonumber(ARGV[b + 3])
  local want = tonumber(ARGV[b + 4])
  local delta = used
  if want < 0 then delta = delta + want end
  if delta ~= 0 then redis.call('HINCRBY', cur, me, delta) end
  local total = 0
  local vals = redis.call('HVALS', cur)
  for _, v in ipairs(vals) do total = total + tonumber(v) end
  local grant = 0
  local hosts = #vals
  if redis.call('HEXISTS', cur, me) == 0 then hosts = hosts + 1 end
  hosts = math.max(hosts, redis.call('HLEN', prev), 1)
  if want > 0 and total < limit then
    local left = limit - total
    grant = math.min(want, math.max(1, math.floor(left / hosts)), left)
    redis.call('HINCRBY', cur, me, grant)
    total = total + grant
  end
  redis.call('PEXPIREAT', cur, expire_at)
  out[3 * i - 2] = grant
  out[3 * i - 1] = total
  out[3 * i] = hosts
end
return out
"#;

/// Starts [`run`] on its own thread with a single-threaded runtime: the sync's deadlines are
/// then kept by the kernel's scheduler instead of waiting in the ingest runtime's queues behind
/// busy connection tasks (under full load that made 200 ms deadlines miss, and a timed-out call
/// that Redis did run loses its grant).
pub fn spawn(
    limiter: Arc<Limiter>,
    settings: Settings,
    pressure: PressureRx,
    outbox: Outbox,
    breakers: Arc<Registry>,
    cancel: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("qerrors-limit".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(limiter, settings, pressure, outbox, breakers, cancel)),
                Err(e) => tracing::error!(error = %e, "limiter runtime failed; limits stay local"),
            }
        })
}

/// Runs until `cancel`: applies pressure changes, sweeps idle keys, syncs with Redis.
///
/// It sleeps until the next thing it has to do, never on a fixed tick: a sync
/// `sync_interval` after the last one while keys are listed for syncing (they saw events, or
/// hold a lease to give back) or there is no connection yet; the end of the breaker's
/// cool-down while it is open; the next sweep while any rule is configured. With nothing
/// listed it sleeps until an event lists a key ([`Limiter::woken`]: the first listing wakes
/// it, and it syncs at once), the rules change, or the pressure level does. With no rule at
/// all it only wakes for those.
pub async fn run(
    limiter: Arc<Limiter>,
    settings: Settings,
    mut pressure: PressureRx,
    outbox: Outbox,
    breakers: Arc<Registry>,
    cancel: CancellationToken,
) {
    let mut sync = settings.redis_url.as_ref().and_then(|url| {
        match Syncer::new(url, &settings, limiter.clone(), outbox.clone(), &breakers) {
            Ok(s) => Some(s),
            Err(e) => {
                // Validation opened the same URL; not expected.
                outbox.notice(
                    "redis unusable: shared limits off, local limits only",
                    vec![("error", json!(e.to_string()))],
                );
                None
            }
        }
    });
    // The first sync at once: it connects, so an unreachable Redis is reported at start.
    let mut next_sync = sync.as_ref().map(|_| Instant::now());
    let mut last_sync: Option<Instant> = None;
    let mut last_sweep = Instant::now();
    let mut pressure_open = true;
    loop {
        let sweep_at = limiter
            .is_active()
            .then(|| last_sweep + sweep_period(&limiter));
        let wake_at = [next_sync, sweep_at].into_iter().flatten().min();
        let sleep = async {
            match wake_at {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            r = pressure.changed(), if pressure_open => {
                match r {
                    Ok(()) => {
                        let p = *pressure.borrow_and_update();
                        limiter.set_pressure(p);
                    }
                    Err(_) => pressure_open = false,
                }
                continue;
            }
            _ = limiter.woken() => {
                limiter.awake();
                // A key was listed while nothing was planned: sync now, or an interval after
                // the last sync if that is later (at most one call per interval, also when a
                // key with a spent lease is listed again right after each sync).
                if sync.is_some() && next_sync.is_none() {
                    let at = sync_after_wake(Instant::now(), last_sync, settings.sync_interval);
                    next_sync = Some(at);
                }
            }
            _ = sleep => {}
        }
        let now = Instant::now();
        if sweep_at.is_some_and(|t| now >= t) {
            limiter.sweep();
            last_sweep = now;
        }
        if let Some(s) = sync.as_mut() {
            if next_sync.is_some_and(|t| now >= t) {
                last_sync = Some(now);
                s.step().await;
                // Paced from the start of this sync, like a tick (a sync that took longer than
                // the interval is followed by the next at once).
                next_sync = s.next_sync(now, settings.sync_interval);
            }
        }
    }
}

/// Idle keys are swept this often: [`MIN_SWEEP_PERIOD`], or two of the longest window.
fn sweep_period(limiter: &Limiter) -> Duration {
    MIN_SWEEP_PERIOD.max(Duration::from_nanos(
        limiter.longest_window_ns().saturating_mul(2),
    ))
}

/// When to sync after a key was listed at `now` while no sync was planned: at once, but not
/// sooner than `interval` after the last sync.
pub fn sync_after_wake(now: Instant, last_sync: Option<Instant>, interval: Duration) -> Instant {
    last_sync.map_or(now, |t| (t + interval).max(now))
}

/// When to sync next, after a sync that started at `now`: at the end of the breaker's
/// cool-down while it is open (`cool_down_ends`); an `interval` later while there is no
/// connection (a first connect or a reconnect) or when `sleep_if_unlisted` finds keys listed;
/// else `None`: nothing to sync until a key is listed (`sleep_if_unlisted` has armed that
/// wake-up).
pub fn next_sync(
    now: Instant,
    interval: Duration,
    cool_down_ends: Option<Instant>,
    connected: bool,
    sleep_if_unlisted: impl FnOnce() -> bool,
) -> Option<Instant> {
    if let Some(t) = cool_down_ends {
        return Some(t);
    }
    if !connected || !sleep_if_unlisted() {
        return Some(now + interval);
    }
    None
}

/// Why a call failed, for the breaker and the log (also the fleet sync's, `fleet::sync`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
}

impl CallError {
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            CallError::Timeout(_) => Outcome::Timeout,
            CallError::Redis(e) if e.is_timeout() => Outcome::Timeout,
            CallError::Redis(_) => Outcome::Failure,
        }
    }
}

/// Where the shared counts live: one server (or a proxy in front of many), or a Redis Cluster.
/// Shared with the fleet registry (`fleet::sync`, `fleet::read`).
#[allow(clippy::large_enum_variant)] // one per daemon, made once
pub(crate) enum Target {
    Single(redis::Client),
    /// Learns the slot map from its seed nodes and follows `MOVED`/`ASK`. Every key of a sync
    /// carries the `{prefix}` hash tag, so a sync is one call to the node owning that slot.
    Cluster(redis::cluster::ClusterClient),
}

pub(crate) enum Conn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Target {
    pub(crate) fn open(url: &str, cluster: bool) -> redis::RedisResult<Self> {
        Ok(if cluster {
            Target::Cluster(redis::cluster::ClusterClient::new(
                super::rules::cluster_nodes(url),
            )?)
        } else {
            Target::Single(redis::Client::open(url)?)
        })
    }

    pub(crate) async fn connect(&self) -> redis::RedisResult<Conn> {
        Ok(match self {
            Target::Single(c) => Conn::Single(c.get_multiplexed_async_connection().await?),
            Target::Cluster(c) => Conn::Cluster(c.get_async_connection().await?),
        })
    }
}

struct Syncer {
    client: Target,
    conn: Option<Conn>,
    script: redis::Script,
    breaker: Breaker,
    limiter: Arc<Limiter>,
    /// Reachability changes and breaker transitions go to the log as `daemon` records.
    outbox: Outbox,
    prefix: String,
    timeout: Duration,
    /// This daemon's field in the Redis hashes: host, pid and start time.
    me: String,
    /// The last call failed (so a failure is logged once, not every interval).
    notices: SyncNotices,
}

impl Syncer {
    fn new(
        url: &str,
        s: &Settings,
        limiter: Arc<Limiter>,
        outbox: Outbox,
        breakers: &Registry,
    ) -> redis::RedisResult<Self> {
        let client = Target::open(url, s.redis_cluster)?;
        let breaker = Breaker::new("redis", s.breaker.clone(), Instant::now());
        breakers.register(breaker.status().clone());
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let started = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(Self {
            client,
            conn: None,
            script: redis::Script::new(SCRIPT),
            breaker,
            limiter,
            outbox,
            prefix: s.key_prefix.clone(),
            timeout: s.redis_timeout,
            me: format!("{host}:{}:{started}", std::process::id()),
            notices: SyncNotices::default(),
        })
    }

    /// When to sync next (see [`next_sync`]).
    fn next_sync(&self, now: Instant, interval: Duration) -> Option<Instant> {
        next_sync(
            now,
            interval,
            self.breaker.cool_down_ends(),
            self.conn.is_some(),
            || self.limiter.sleep_if_unlisted(),
        )
    }

    /// One sync.
    async fn step(&mut self) {
        let now = Instant::now();
        let (ok, tr) = self.breaker.try_acquire(now);
        self.transition(tr, None);
        if !ok {
            return;
        }
        let wall = unix_ns(SystemTime::now());
        let items = self.limiter.collect(wall, MAX_SYNC_KEYS);
        if items.is_empty() && self.breaker.state() == State::Closed && self.conn.is_some() {
            // Nothing to say: no call (`Closed` took no probe slot). A half-open probe or a
            // first connect still calls.
            return;
        }
        let result = self.call(&items).await;
        let done = Instant::now();
        match result {
            Ok((grants, daemons)) => {
                self.stats_ok(&items);
                self.limiter.apply(&items, &grants);
                self.limiter.note_daemons(daemons);
                self.notices
                    .succeeded(&self.outbox, "redis reachable again", Vec::new);
                let tr = self.breaker.record(done, Outcome::Success);
                self.transition(tr, None);
            }
            Err(e) => {
                self.conn = None;
                // Reported again next time; Redis may have applied this call before it failed
                // (a timeout after the script ran), which then counts its admissions twice:
                // under-admission, the safe side.
                self.limiter.restore(&items);
                self.notices
                    .failed(&self.outbox, "redis sync failed", &e, self.breaker.state());
                let tr = self.breaker.record(done, e.outcome());
                self.transition(tr, Some(&e));
            }
        }
    }

    fn stats_ok(&self, items: &[SyncItem]) {
        let s = &self.limiter.stats;
        s.syncs.fetch_add(1, Relaxed);
        s.synced_keys.fetch_add(items.len() as u64, Relaxed);
    }

    /// Per item (granted, count after the call), and the most daemons counted in any item.
    async fn call(&mut self, items: &[SyncItem]) -> Result<(Vec<(i64, i64)>, u64), CallError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => {
                let c = tokio::time::timeout_at(deadline, self.client.connect())
                    .await
                    .map_err(|_| CallError::Timeout(self.timeout))??;
                self.conn.insert(c)
            }
        };
        let mut inv = self.script.prepare_invoke();
        inv.arg(&self.me);
        for it in items {
            let (cur, prev) = keys(&self.prefix, it);
            inv.key(cur).key(prev);
            let window_ms = it.window_ns / 1_000_000;
            // Expire two windows after this one ends (the clock is ours, not Redis's).
            let expire_at = (it.window + 3).saturating_mul(window_ms.max(1));
            inv.arg(it.rate).arg(expire_at).arg(it.used).arg(it.want);
        }
        let flat: Vec<i64> = match conn {
            Conn::Single(c) => tokio::time::timeout_at(deadline, inv.invoke_async(c)).await,
            Conn::Cluster(c) => tokio::time::timeout_at(deadline, inv.invoke_async(c)).await,
        }
        .map_err(|_| CallError::Timeout(self.timeout))??;
        let daemons = flat.chunks_exact(3).map(|c| c[2].max(0) as u64).max();
        Ok((
            flat.chunks_exact(3).map(|c| (c[0], c[1])).collect(),
            daemons.unwrap_or(0),
        ))
    }

    /// Logs a breaker transition and switches between shared and local limits.
    fn transition(&self, tr: Option<Transition>, cause: Option<&CallError>) {
        let Some(tr) = tr else { return };
        let shared = tr.to == State::Closed;
        self.limiter.set_shared(shared);
        let mut extra = vec![(
            "limits",
            json!(if shared { "shared" } else { "local_share" }),
        )];
        if !shared {
            extra.push(("local_share", json!(self.limiter.local_fraction())));
        }
        let cause = cause.map(|e| e as &dyn std::fmt::Display);
        SyncNotices::transition(&self.outbox, "redis", tr, extra, cause);
    }
}

/// The current and previous window's key of an item.
pub fn keys(prefix: &str, it: &SyncItem) -> (String, String) {
    let k = |w: u64| format!("{{{prefix}}}:{}:{:x}:{w}", it.name, it.key.value);
    (k(it.window), k(it.window.saturating_sub(1)))
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::local::Key;

    #[test]
    fn keys_share_one_hash_tag() {
        let it = SyncItem {
            key: Key {
                rule: 0,
                value: 0xab,
            },
            rule: 0,
            name: "per-fp".into(),
            rate: 10,
            window_ns: 1_000_000_000,
            window: 77,
            used: 0,
            want: 1,
        };
        let (cur, prev) = keys("qe", &it);
        assert_eq!(cur, "{qe}:per-fp:ab:77");
        assert_eq!(prev, "{qe}:per-fp:ab:76");
        assert!(!SCRIPT.contains("TIME"), "no server clock in the script");
    }

    #[test]
    fn syncs_while_keys_are_listed_and_sleeps_when_none_are() {
        let now = Instant::now();
        let iv = Duration::from_millis(50);
        let cool = now + Duration::from_secs(2);
        let asked = std::cell::Cell::new(0);
        let listed = |l: bool| {
            let asked = &asked;
            move || {
                asked.set(asked.get() + 1);
                !l
            }
        };
        // Keys listed: the next interval.
        assert_eq!(next_sync(now, iv, None, true, listed(true)), Some(now + iv));
        // Nothing listed: no sync planned (the listing of a key wakes the task).
        assert_eq!(next_sync(now, iv, None, true, listed(false)), None);
        assert_eq!(asked.get(), 2);
        // Not connected yet (or lost): keep trying each interval, whatever is listed, and
        // without arming the wake-up.
        assert_eq!(
            next_sync(now, iv, None, false, listed(false)),
            Some(now + iv)
        );
        // Breaker open: the probe at the end of the cool-down, not before.
        assert_eq!(
            next_sync(now, iv, Some(cool), true, listed(true)),
            Some(cool)
        );
        assert_eq!(
            next_sync(now, iv, Some(cool), false, listed(false)),
            Some(cool)
        );
        assert_eq!(asked.get(), 2);
        // Woken by a listing: at once after a quiet stretch, else one interval after the last
        // sync (one call per interval at most).
        assert_eq!(sync_after_wake(now, None, iv), now);
        assert_eq!(sync_after_wake(now, Some(now - iv * 10), iv), now);
        let just = now - Duration::from_millis(10);
        assert_eq!(sync_after_wake(now, Some(just), iv), just + iv);
    }
}
