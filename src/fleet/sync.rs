//! The fleet sync thread: every `fleet.sync_interval`, while deltas wait, **one** call to Redis
//! (an `EVALSHA` of [`SCRIPT`]) carries up to [`MAX_SYNC_FPS`] fingerprint deltas.
//!
//! Each call is a numbered batch (`seq`, per daemon run). The script first compares it with the
//! last batch this daemon applied (`{prefix}:fleet:seq:<daemon>`) and applies it only if it is
//! newer, so a call that timed out after Redis ran it, and is retried, is not counted twice:
//! a failed batch is kept and sent again, unchanged, before anything newer (new deltas keep
//! merging meanwhile). That makes the fleet counts exact after an outage, as long as nothing
//! was dropped (docs/fleet.md).
//!
//! Redis layout (every key under the `{prefix}` hash tag, one Cluster slot; all expire after
//! `fleet.retention` without a write):
//! - `{prefix}:fleet:fp:<fp hex>`, a hash: `count`; `fs`/`fh` first seen (ms, host); `ls`/`lh`
//!   last seen; `name`, `msg`, `svc`, `class`, `sev`, `level` (the first sample sent); `hn`
//!   hosts counted and `h:<host>` for each (at most [`MAX_HOSTS`], then `hmore`); `m<0..59>`
//!   the per-minute counts of the last hour as `minute:count`, a ring indexed by minute % 60;
//! - `{prefix}:fleet:index`, a sorted set of fingerprints by count, trimmed to
//!   `fleet.max_fingerprints` (the least frequent go, hash and all): the memory bound;
//! - `{prefix}:fleet:seq:<daemon>`, the last batch applied.
//!
//! Every call (connect included) has the `fleet.redis_timeout` deadline and goes through a
//! [`Breaker`] (`breaker = "fleet"`); the ingest path never waits for any of it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::config::Fleet;
use super::{Delta, Deltas};
use crate::breaker::{Breaker, Outcome, Registry, SyncNotices, Transition};
use crate::event::fingerprint::Fingerprint;
use crate::json::truncate;
use crate::limit::redis::{CallError, Conn, Target};
use crate::outbox::Outbox;
use crate::pipeline::table::FingerprintTable;

/// Most fingerprints carried by one call; more wait for the next interval. Bounds the call's
/// size (~400 bytes of arguments per fingerprint with its sample: ~1.6 MiB) and the script's
/// run time in Redis (~10 µs per fingerprint).
pub const MAX_SYNC_FPS: usize = 4096;

/// Hosts named per fingerprint in Redis; beyond it `hmore` says there were more. Bounds the
/// hash (docs/fleet.md, the memory formula).
pub const MAX_HOSTS: usize = 16;

/// Longest host name stored (bytes).
pub const MAX_HOST_LEN: usize = 64;

/// How long the last flush at shutdown may take (one call at most).
pub const STOP_FLUSH: Duration = Duration::from_secs(2);

/// The sync script. KEYS: the index, this daemon's seq key, then one hash per fingerprint.
/// ARGV: host, seq, retention (ms), max fingerprints, current Unix minute, fp key prefix, max
/// hosts; then per fingerprint: hex, count, first ms, last ms, n minutes, n × (minute, count),
/// has sample (0/1), [name, message, service, class, severity, level].
/// Returns `{1, created…}` (1-based positions of the fingerprints this call created), or `{0}`
/// when the batch was applied before (a retry after a lost reply).
pub const SCRIPT: &str = r#"
local idx, seqkey = KEYS[1], KEYS[2]
local host, seq, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local maxfp, nowmin, fpkey = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local maxhosts = tonumber(ARGV[7])
local last = redis.call('GET', seqkey)
if last and tonumber(last) >= seq then return {0} end
redis.call('SET', seqkey, seq, 'PX', ttl)
local out = {1}
local a = 8
local hf = 'h:' .. host
for i = 3, #KEYS do
  local k = KEYS[i]
  local member, n = ARGV[a], tonumber(ARGV[a + 1])
  local fs, ls, nm = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  a = a + 5
  local total = redis.call('HINCRBY', k, 'count', n)
  if total == n then
    redis.call('HSET', k, 'fs', fs, 'fh', host, 'ls', ls, 'lh', host)
    out[#out + 1] = i - 2
  else
    local ofs = tonumber(redis.call('HGET', k, 'fs') or fs)
    if fs < ofs then redis.call('HSET', k, 'fs', fs, 'fh', host) end
    local ols = tonumber(redis.call('HGET', k, 'ls') or ls)
    if ls > ols then redis.call('HSET', k, 'ls', ls, 'lh', host) end
  end
  if redis.call('HEXISTS', k, hf) == 0 then
    if tonumber(redis.call('HGET', k, 'hn') or '0') < maxhosts then
      redis.call('HSET', k, hf, 1)
      redis.call('HINCRBY', k, 'hn', 1)
    else
      redis.call('HSET', k, 'hmore', 1)
    end
  end
  for _ = 1, nm do
    local m, c = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    a = a + 2
    if m > nowmin - 60 then
      local f = 'm' .. (m % 60)
      local v = redis.call('HGET', k, f)
      local om, oc = -1, 0
      if v then
        local s = string.find(v, ':', 1, true)
        om, oc = tonumber(string.sub(v, 1, s - 1)), tonumber(string.sub(v, s + 1))
      end
      if om == m then
        redis.call('HSET', k, f, m .. ':' .. (oc + c))
      elseif om < m then
        redis.call('HSET', k, f, m .. ':' .. c)
      end
    end
  end
  local has = ARGV[a]
  a = a + 1
  if has == '1' then
    if redis.call('HEXISTS', k, 'msg') == 0 then
      redis.call('HSET', k, 'name', ARGV[a], 'msg', ARGV[a + 1], 'svc', ARGV[a + 2],
        'class', ARGV[a + 3], 'sev', ARGV[a + 4], 'level', ARGV[a + 5])
    end
    a = a + 6
  end
  redis.call('PEXPIRE', k, ttl)
  redis.call('ZADD', idx, total, member)
end
local over = redis.call('ZCARD', idx) - maxfp
if over > 0 then
  local gone = redis.call('ZRANGE', idx, 0, over - 1)
  for _, m in ipairs(gone) do redis.call('DEL', fpkey .. m) end
  redis.call('ZREMRANGEBYRANK', idx, 0, over - 1)
end
redis.call('PEXPIRE', idx, ttl)
return out
"#;

/// The keys of the registry under `prefix`.
pub struct Keys {
    pub index: String,
    /// Prefix of the per-fingerprint hashes (`…:fp:`), followed by the hex fingerprint.
    pub fp: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            index: format!("{{{prefix}}}:fleet:index"),
            fp: format!("{{{prefix}}}:fleet:fp:"),
        }
    }

    pub fn seq(prefix: &str, me: &str) -> String {
        format!("{{{prefix}}}:fleet:seq:{me}")
    }
}

/// Starts [`run`] on its own thread with a single-threaded runtime (like the limiter's sync:
/// its deadlines are kept by the kernel's scheduler, not behind busy connection tasks).
pub fn spawn(
    deltas: Arc<Deltas>,
    table: Arc<FingerprintTable>,
    cfg: Fleet,
    host: String,
    outbox: Outbox,
    breakers: Arc<Registry>,
    cancel: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("qerrors-fleet".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(deltas, table, cfg, host, outbox, breakers, cancel)),
                Err(e) => tracing::error!(error = %e, "fleet runtime failed; fleet sync off"),
            }
        })
}

/// Runs until `cancel`, then makes one last flush (bounded by [`STOP_FLUSH`]). Sleeps while
/// nothing is pending; otherwise syncs an interval after the last sync (or at the end of the
/// breaker's cool-down).
pub async fn run(
    deltas: Arc<Deltas>,
    table: Arc<FingerprintTable>,
    cfg: Fleet,
    host: String,
    outbox: Outbox,
    breakers: Arc<Registry>,
    cancel: CancellationToken,
) {
    let Some(url) = cfg.redis_url.clone() else {
        return;
    };
    let mut s = match Syncer::new(
        &url,
        &cfg,
        host,
        deltas.clone(),
        table,
        outbox.clone(),
        &breakers,
    ) {
        Ok(s) => s,
        Err(e) => {
            outbox.notice(
                "redis unusable: fleet sync off",
                vec![("error", json!(e.to_string()))],
            );
            return;
        }
    };
    let mut last_sync: Option<Instant> = None;
    loop {
        if s.batch.is_none() && deltas.pending() == 0 {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = deltas.woken() => {}
            }
        }
        let mut at = last_sync.map_or_else(Instant::now, |t| t + cfg.sync_interval);
        if let Some(t) = s.breaker.cool_down_ends() {
            at = at.max(t);
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(at.into()) => {}
        }
        last_sync = Some(Instant::now());
        s.step().await;
        s.report_drops();
    }
    // Last flush: what the final interval merged (connections have drained by now).
    let _ = tokio::time::timeout(STOP_FLUSH, async {
        while s.batch.is_some() || deltas.pending() > 0 {
            if !s.step().await {
                break;
            }
        }
    })
    .await;
    s.report_drops();
    let left = s.batch.as_ref().map_or(0, |b| b.events()) + deltas.pending_events();
    if left > 0 {
        deltas.stats.unsynced_at_stop.store(left, Relaxed);
        outbox.notice(
            "fleet deltas not synced at stop",
            vec![("events", json!(left))],
        );
    }
}

/// A numbered batch of deltas, sent until Redis has it.
struct Batch {
    seq: u64,
    items: Vec<(Fingerprint, Delta)>,
}

impl Batch {
    fn events(&self) -> u64 {
        self.items.iter().map(|(_, d)| d.count).sum()
    }
}

struct Syncer {
    client: Target,
    conn: Option<Conn>,
    script: redis::Script,
    breaker: Breaker,
    deltas: Arc<Deltas>,
    table: Arc<FingerprintTable>,
    outbox: Outbox,
    keys: Keys,
    seq_key: String,
    host: String,
    timeout: Duration,
    retention_ms: u64,
    max_fingerprints: usize,
    /// The last batch taken; kept until Redis confirms it.
    batch: Option<Batch>,
    seq: u64,
    /// Failures told once per failing stretch, breaker transitions always.
    notices: SyncNotices,
    /// Dropped events already said in a `daemon` record.
    drops_reported: u64,
}

impl Syncer {
    fn new(
        url: &str,
        cfg: &Fleet,
        host: String,
        deltas: Arc<Deltas>,
        table: Arc<FingerprintTable>,
        outbox: Outbox,
        breakers: &Registry,
    ) -> redis::RedisResult<Self> {
        let client = Target::open(url, cfg.redis_cluster)?;
        let breaker = Breaker::new("fleet", cfg.breaker.clone(), Instant::now());
        breakers.register(breaker.status().clone());
        let started = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let host = truncate(&host, MAX_HOST_LEN).to_string();
        let me = format!("{host}:{}:{started}", std::process::id());
        Ok(Self {
            client,
            conn: None,
            script: redis::Script::new(SCRIPT),
            breaker,
            deltas,
            table,
            outbox,
            keys: Keys::new(&cfg.key_prefix),
            seq_key: Keys::seq(&cfg.key_prefix, &me),
            host,
            timeout: cfg.redis_timeout,
            retention_ms: cfg.retention.as_millis().min(u128::from(u64::MAX)) as u64,
            max_fingerprints: cfg.max_fingerprints,
            batch: None,
            seq: 0,
            notices: SyncNotices::default(),
            drops_reported: 0,
        })
    }

    /// One sync: the batch that failed last, else a new one. False when nothing was sent
    /// (breaker open, nothing pending) or the call failed.
    async fn step(&mut self) -> bool {
        let (ok, tr) = self.breaker.try_acquire(Instant::now());
        self.transition(tr, None);
        if !ok {
            return false;
        }
        let batch = match self.batch.take() {
            Some(b) => b,
            None => {
                let items = self.deltas.take(MAX_SYNC_FPS);
                if items.is_empty() {
                    self.deltas.settled();
                    return false;
                }
                self.seq += 1;
                Batch {
                    seq: self.seq,
                    items,
                }
            }
        };
        let result = self.call(&batch).await;
        let done = Instant::now();
        match result {
            Ok(created) => {
                let s = &self.deltas.stats;
                s.syncs.fetch_add(1, Relaxed);
                s.synced_fingerprints
                    .fetch_add(batch.items.len() as u64, Relaxed);
                s.synced_events.fetch_add(batch.events(), Relaxed);
                s.created.fetch_add(created, Relaxed);
                self.deltas.settled();
                let deltas = &self.deltas;
                self.notices
                    .succeeded(&self.outbox, "fleet redis reachable again", || {
                        vec![("pending", json!(deltas.pending()))]
                    });
                let tr = self.breaker.record(done, Outcome::Success);
                self.transition(tr, None);
                true
            }
            Err(e) => {
                self.conn = None;
                self.deltas.stats.failures.fetch_add(1, Relaxed);
                self.batch = Some(batch);
                self.notices
                    .failed(&self.outbox, "fleet sync failed", &e, self.breaker.state());
                let tr = self.breaker.record(done, e.outcome());
                self.transition(tr, Some(&e));
                false
            }
        }
    }

    /// Says in a `daemon` record how many events' deltas were dropped since the last one.
    fn report_drops(&mut self) {
        let total = self.deltas.stats.dropped_events.load(Relaxed);
        if total > self.drops_reported {
            let n = total - self.drops_reported;
            self.drops_reported = total;
            tracing::warn!(events = n, "fleet deltas dropped (fleet.max_pending)");
            self.outbox.notice(
                "fleet deltas dropped",
                vec![
                    ("events", json!(n)),
                    ("total", json!(total)),
                    ("max_pending", json!(self.deltas.max_pending())),
                ],
            );
        }
    }

    /// Runs the script for `batch`; returns how many fingerprints it created.
    async fn call(&mut self, batch: &Batch) -> Result<u64, CallError> {
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
        let now_minute = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 60);
        let mut inv = self.script.prepare_invoke();
        inv.key(&self.keys.index).key(&self.seq_key);
        inv.arg(&self.host)
            .arg(batch.seq)
            .arg(self.retention_ms)
            .arg(self.max_fingerprints)
            .arg(now_minute)
            .arg(&self.keys.fp)
            .arg(MAX_HOSTS);
        for (fp, d) in &batch.items {
            let hex = fp.to_hex();
            let hex = std::str::from_utf8(&hex).unwrap_or_default();
            inv.key(format!("{}{hex}", self.keys.fp));
            inv.arg(hex)
                .arg(d.count)
                .arg(d.first_ms)
                .arg(d.last_ms)
                .arg(d.minutes.len());
            for (m, c) in &d.minutes {
                inv.arg(*m).arg(*c);
            }
            match self.table.meta(*fp) {
                Some(meta) => {
                    inv.arg(1)
                        .arg(&*meta.name)
                        .arg(&*meta.message)
                        .arg(&*meta.service)
                        .arg(meta.class.as_str())
                        .arg(meta.severity.as_str())
                        .arg(meta.level.as_str());
                }
                None => {
                    inv.arg(0);
                }
            }
        }
        let out: Vec<i64> = match conn {
            Conn::Single(c) => tokio::time::timeout_at(deadline, inv.invoke_async(c)).await,
            Conn::Cluster(c) => tokio::time::timeout_at(deadline, inv.invoke_async(c)).await,
        }
        .map_err(|_| CallError::Timeout(self.timeout))??;
        Ok(out.len().saturating_sub(1) as u64)
    }

    /// Logs a breaker transition.
    fn transition(&self, tr: Option<Transition>, cause: Option<&CallError>) {
        let Some(tr) = tr else { return };
        let extra = vec![("pending", json!(self.deltas.pending()))];
        let cause = cause.map(|e| e as &dyn std::fmt::Display);
        SyncNotices::transition(&self.outbox, "fleet", tr, extra, cause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag_and_the_script_has_no_server_clock() {
        let k = Keys::new("qe");
        assert_eq!(k.index, "{qe}:fleet:index");
        assert_eq!(k.fp, "{qe}:fleet:fp:");
        assert_eq!(Keys::seq("qe", "h:1:2"), "{qe}:fleet:seq:h:1:2");
        assert!(!SCRIPT.contains("TIME"));
    }
}
