//! Analysis: fix advice per fingerprint, off the ingest path.
//!
//! ```text
//! Pipeline::process ── cache hit? done ── pressure ≥ High? counted, skipped
//!        │ miss, not in flight (single-flight set)
//!        ▼ try_send (full → counted; ingest never waits)
//!   bounded queue ──▶ dispatcher ──▶ up to `workers` analyses at once (tokio tasks):
//!                       rules (instant) → cache + `advice` record
//!                       LLM (if configured) → supersedes: cache + `advice` record
//! ```
//!
//! Advice records go to the log through the outbox (the writer's route for records that are not
//! events), linked to the fingerprint and the event that triggered the analysis. The cache ([`cache`]) is bounded by
//! bytes, expires entries after `analysis.cache_ttl`, shrinks under memory pressure, and is
//! saved at shutdown and loaded at start.

pub mod cache;
pub mod config;
pub mod llm;
pub mod rules;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::breaker::Registry;
use crate::event::classify::Class;
use crate::event::fingerprint::Fingerprint;
use crate::json;
use crate::memory::{Pressure, PressureRx};
use crate::outbox::Outbox;
use cache::{unix_ms, AdviceCache, Entry};
use llm::LlmClient;
use rules::Rules;

/// Longest message copied into a job (bytes). Rules match on the start of a message and the
/// prompt is capped at `analysis.llm_max_prompt_bytes` (4 KiB by default) anyway, while every
/// byte here is held `analysis.queue_capacity` times over in a full queue (docs/memory.md).
pub const MAX_JOB_MESSAGE: usize = 2 * 1024;
/// Longest (escaped) stack copied into a job: the top frames, which is what rules and the
/// prompt use.
pub const MAX_JOB_STACK: usize = 4 * 1024;
/// When the LLM is configured but failed (down, breaker open, budget used up), the rules'
/// advice (or the lack of any) is kept this long at most instead of the full TTL, so the
/// fingerprint gets another LLM try once the endpoint may be back. Breaker and budget bound
/// what those retries cost.
pub const LLM_FAILED_TTL: Duration = Duration::from_secs(15 * 60);
/// After the shutdown grace, abandoned analyses get this long to notice the cancellation.
const ABANDON_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("analysis rules: {0}")]
    Rules(#[from] rules::RulesError),
    #[error("analysis.llm_base_url: cannot build the HTTP client: {0}")]
    Http(#[from] llm::LlmClientError),
}

/// The advice object of an `advice` record (documented in docs/PROTOCOL.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    pub summary: String,
    pub likely_cause: String,
    pub fix_steps: Vec<String>,
    /// 0–1: how sure the source is.
    pub confidence: f64,
    /// The matching rule's id (rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// What an analysis needs from the event: owned, sanitized, capped.
#[derive(Debug, Clone)]
pub struct Job {
    pub fingerprint: u128,
    pub event_id: String,
    pub name: Option<Box<str>>,
    pub message: Box<str>,
    /// As escaped in the JSON record.
    pub stack: Option<Box<str>>,
    pub service: Box<str>,
    pub class: Class,
}

impl Job {
    /// Copies the event's fields, capping message and stack.
    pub fn new(
        fp: Fingerprint,
        event_id: String,
        name: Option<&str>,
        message: &str,
        stack_escaped: Option<&str>,
        service: &str,
        class: Class,
    ) -> Job {
        Job {
            fingerprint: fp.0,
            event_id,
            name: name.map(Into::into),
            message: json::truncate(message, MAX_JOB_MESSAGE).into(),
            stack: stack_escaped.map(|s| json::truncate(s, MAX_JOB_STACK).into()),
            service: service.into(),
            class,
        }
    }
}

/// Counters for `/stats` and `/metrics`.
#[derive(Debug, Default)]
pub struct AnalysisStats {
    /// Jobs queued.
    pub queued: AtomicU64,
    /// Cache misses dropped because the queue was full.
    pub queue_full: AtomicU64,
    /// Cache misses for a fingerprint already being analysed (single-flight).
    pub coalesced: AtomicU64,
    /// Cache misses not analysed because memory pressure was High or Critical.
    pub paused_pressure: AtomicU64,
    pub completed: AtomicU64,
    /// Analyses where a rule matched.
    pub rules_matched: AtomicU64,
    /// Analyses that ended without any advice.
    pub no_advice: AtomicU64,
    pub records_written: AtomicU64,
    /// Advice records that could not be queued for the writer (outbox full, or closed).
    pub records_lost: AtomicU64,
    /// Queued or running analyses abandoned at shutdown.
    pub abandoned: AtomicU64,
}

struct Shared {
    tx: mpsc::Sender<Job>,
    /// Fingerprints queued or being analysed. Bounded: an entry is added only with a queued
    /// job, so it never holds more than `queue_capacity + workers` entries.
    inflight: Mutex<HashSet<u128>>,
    cache: AdviceCache,
    stats: AnalysisStats,
    pressure: PressureRx,
    rules: Rules,
    llm: Option<LlmClient>,
    ttl: Duration,
    workers: usize,
    queue_capacity: usize,
}

/// The cheap, cloneable front used by the pipeline and the control plane.
#[derive(Clone)]
pub struct AnalysisHandle(Arc<Shared>);

impl std::fmt::Debug for AnalysisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnalysisHandle")
    }
}

/// How long the ingest path trusts what it learnt from the advice cache at most (the entry's
/// own expiry comes first); an entry evicted early (byte bound, memory pressure) is noticed
/// within this time.
pub const KNOWN_FOR: Duration = Duration::from_secs(1);

impl AnalysisHandle {
    /// Once per accepted event: `known_until_ns` is what the fingerprint table remembers of
    /// the last lookup (see [`crate::pipeline::table::FingerprintTable::advice_known_until`]).
    /// Before that time the event is a hit, counted in `hits` (added to the shared counter
    /// once per read by [`Self::add_hits`]), with no shared state touched: the shared lookup
    /// (moka's concurrent map plus a hit counter every runtime worker writes) was ~3 % of the
    /// daemon's CPU at full speed. Otherwise the cache is asked: on a hit, returns until when
    /// to trust it (at most [`KNOWN_FOR`] from `now_ns`, never past the entry's expiry); on a
    /// miss, queues an analysis unless one is already queued or running for this fingerprint.
    /// Never blocks. Times are Unix nanoseconds.
    pub fn offer_seen(
        &self,
        fp: Fingerprint,
        now_ns: u64,
        known_until_ns: u64,
        hits: &mut u64,
        job: impl FnOnce() -> Job,
    ) -> Option<u64> {
        if now_ns < known_until_ns {
            *hits += 1;
            return None;
        }
        match self.0.cache.fresh_until_ms(fp.0) {
            Some(until_ms) => Some(
                now_ns
                    .saturating_add(KNOWN_FOR.as_nanos() as u64)
                    .min(until_ms.saturating_mul(1_000_000)),
            ),
            None => {
                self.on_miss(fp, job);
                None
            }
        }
    }

    /// Adds hits counted by [`Self::offer_seen`] to the cache's hit counter.
    pub fn add_hits(&self, hits: &mut u64) {
        if *hits > 0 {
            self.0.cache.hits.fetch_add(*hits, Relaxed);
            *hits = 0;
        }
    }

    fn on_miss(&self, fp: Fingerprint, job: impl FnOnce() -> Job) {
        let s = &self.0;
        if *s.pressure.borrow() >= Pressure::High {
            s.stats.paused_pressure.fetch_add(1, Relaxed);
            return;
        }
        let mut inflight = s.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if inflight.contains(&fp.0) {
            s.stats.coalesced.fetch_add(1, Relaxed);
            return;
        }
        match s.tx.try_send(job()) {
            Ok(()) => {
                inflight.insert(fp.0);
                s.stats.queued.fetch_add(1, Relaxed);
            }
            Err(_) => {
                s.stats.queue_full.fetch_add(1, Relaxed);
            }
        }
    }

    /// The cached advice for a fingerprint (32 hex digits), without counting a hit.
    pub fn advice(&self, fp_hex: &str) -> Option<Arc<Entry>> {
        let fp = u128::from_str_radix(fp_hex, 16).ok()?;
        self.0.cache.peek(fp)
    }

    /// `{"source":…,"advice":…}` for `/fingerprints`, or null.
    pub fn advice_json(&self, fp: Fingerprint) -> Value {
        match self.0.cache.peek(fp.0) {
            Some(e) if e.advice.is_some() => json!({"source": e.source, "advice": e.advice}),
            _ => Value::Null,
        }
    }

    pub fn stats(&self) -> &AnalysisStats {
        &self.0.stats
    }

    pub fn cache(&self) -> &AdviceCache {
        &self.0.cache
    }

    pub fn llm(&self) -> Option<&LlmClient> {
        self.0.llm.as_ref()
    }

    /// Jobs waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.0.queue_capacity - self.0.tx.capacity()
    }

    /// Analyses queued or running.
    pub fn in_flight(&self) -> usize {
        self.0
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The `analysis` object of `/stats`.
    pub fn stats_json(&self) -> Value {
        let s = &self.0.stats;
        let c = &self.0.cache;
        let llm = self.0.llm.as_ref().map_or(Value::Null, |l| {
            let m = &l.stats;
            json!({
                "model": l.model(),
                "calls": m.calls.load(Relaxed),
                "successes": m.successes.load(Relaxed),
                "failures": m.failures.load(Relaxed),
                "retries": m.retries.load(Relaxed),
                "timeouts": m.timeouts.load(Relaxed),
                "invalid_responses": m.invalid_responses.load(Relaxed),
                "breaker_rejected": m.breaker_rejected.load(Relaxed),
                "budget_exhausted": m.budget_exhausted.load(Relaxed),
                "budget_remaining": l.budget_remaining(),
            })
        });
        json!({
            "rules": self.0.rules.len(),
            "workers": self.0.workers,
            "queue": {
                "depth": self.queue_depth(),
                "capacity": self.0.queue_capacity,
                "queued": s.queued.load(Relaxed),
                "full": s.queue_full.load(Relaxed),
                "coalesced": s.coalesced.load(Relaxed),
                "paused_pressure": s.paused_pressure.load(Relaxed),
            },
            "in_flight": self.in_flight(),
            "completed": s.completed.load(Relaxed),
            "rules_matched": s.rules_matched.load(Relaxed),
            "no_advice": s.no_advice.load(Relaxed),
            "records": {"written": s.records_written.load(Relaxed), "lost": s.records_lost.load(Relaxed)},
            "abandoned": s.abandoned.load(Relaxed),
            "cache": {
                "hits": c.hits.load(Relaxed),
                "misses": c.misses.load(Relaxed),
                "entries": c.entries(),
                "bytes": c.bytes(),
                "max_bytes": c.max_bytes(),
                "shrunk": c.shrunk.load(Relaxed),
            },
            "llm": llm,
        })
    }
}

/// The running workers; [`Analysis::shutdown`] stops them.
pub struct Analysis {
    handle: AnalysisHandle,
    stop: CancellationToken,
    abort: CancellationToken,
    tracker: TaskTracker,
    dispatcher: tokio::task::JoinHandle<()>,
    cache_file: Option<PathBuf>,
}

impl Analysis {
    /// Loads the rules and the saved cache (on the blocking pool) and starts the dispatcher.
    /// `None` when `analysis.enabled` is false.
    pub async fn start(
        cfg: &config::Analysis,
        outbox: Outbox,
        breakers: &Registry,
        pressure: PressureRx,
    ) -> Result<Option<Analysis>, AnalysisError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let (builtin, user) = (cfg.builtin_rules, cfg.rules_file.clone());
        let rules = tokio::task::spawn_blocking(move || Rules::load(builtin, user.as_deref()))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        let cache = AdviceCache::new(cfg.cache_max_bytes);
        let cache_file = cfg.cache_file.clone();
        let llm = cfg
            .llm
            .clone()
            .map(|l| LlmClient::new(l, outbox.clone(), breakers))
            .transpose()?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.get());
        let shared = Arc::new(Shared {
            tx,
            inflight: Mutex::new(HashSet::new()),
            cache,
            stats: AnalysisStats::default(),
            pressure,
            rules,
            llm,
            ttl: cfg.cache_ttl,
            workers: cfg.workers.get(),
            queue_capacity: cfg.queue_capacity.get(),
        });
        if let Some(path) = cache_file.clone() {
            let s = shared.clone();
            let loaded = tokio::task::spawn_blocking(move || s.cache.load(&path)).await;
            match loaded {
                Ok(Ok(n)) if n > 0 => tracing::info!(entries = n, "advice cache loaded"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("advice cache not loaded, starting empty: {e}"),
                Err(e) => tracing::warn!("advice cache not loaded: {e}"),
            }
        }
        let handle = AnalysisHandle(shared);
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let tracker = TaskTracker::new();
        let dispatcher = tokio::spawn(dispatch(
            handle.clone(),
            rx,
            outbox,
            stop.clone(),
            abort.clone(),
            tracker.clone(),
        ));
        Ok(Some(Analysis {
            handle,
            stop,
            abort,
            tracker,
            dispatcher,
            cache_file,
        }))
    }

    pub fn handle(&self) -> AnalysisHandle {
        self.handle.clone()
    }

    /// Stops taking jobs, lets running analyses finish within `grace` (then abandons them,
    /// counted), and saves the cache. Returns once the cache file is written.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.cancel();
        let _ = self.dispatcher.await;
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                analyses = self.tracker.len(),
                "analyses still running after the shutdown grace; abandoning them"
            );
            self.abort.cancel();
            let _ = tokio::time::timeout(ABANDON_WAIT, self.tracker.wait()).await;
        }
        if let Some(path) = self.cache_file {
            let h = self.handle.clone();
            let p = path.clone();
            match tokio::task::spawn_blocking(move || h.0.cache.save(&p)).await {
                Ok(Ok(n)) => {
                    tracing::info!(entries = n, path = %path.display(), "advice cache saved")
                }
                Ok(Err(e)) => tracing::warn!("advice cache not saved: {e}"),
                Err(e) => tracing::warn!("advice cache not saved: {e}"),
            }
        }
    }
}

async fn dispatch(
    h: AnalysisHandle,
    mut rx: mpsc::Receiver<Job>,
    outbox: Outbox,
    stop: CancellationToken,
    abort: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(h.0.workers));
    let mut pressure = h.0.pressure.clone();
    let mut listen = true;
    loop {
        let job = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            changed = pressure.changed(), if listen => {
                if changed.is_ok() {
                    let p = *pressure.borrow_and_update();
                    if p >= Pressure::High {
                        let c = h.0.cache.bound(p);
                        let h2 = h.clone();
                        // Walks the cache: off the runtime threads.
                        tokio::task::spawn_blocking(move || h2.0.cache.shrink_to(c));
                    }
                } else {
                    // No governor any more: the last level stays in force.
                    listen = false;
                }
                continue;
            }
            job = rx.recv() => match job {
                Some(j) => j,
                None => break,
            },
        };
        let permit = tokio::select! {
            biased;
            _ = stop.cancelled() => {
                h.0.stats.abandoned.fetch_add(1, Relaxed);
                break;
            }
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (h, outbox, abort) = (h.clone(), outbox.clone(), abort.clone());
        tracker.spawn(async move {
            analyse(&h, job, &outbox, &abort).await;
            drop(permit);
        });
    }
    rx.close();
    let mut left = 0;
    while rx.try_recv().is_ok() {
        left += 1;
    }
    if left > 0 {
        h.0.stats.abandoned.fetch_add(left, Relaxed);
        tracing::warn!(jobs = left, "queued analyses abandoned at shutdown");
    }
}

/// One analysis: rules first, then the LLM (whose advice supersedes the rules').
async fn analyse(h: &AnalysisHandle, job: Job, outbox: &Outbox, abort: &CancellationToken) {
    let s = &h.0;
    // Unescaping and one regex-set pass over up to 6 KiB: CPU work of up to a few
    // milliseconds, so off the runtime's workers.
    let rules = {
        let (h2, name, message, stack) = (
            h.clone(),
            job.name.clone(),
            job.message.clone(),
            job.stack.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let stack = stack.as_deref().map(json::unescape_capped);
            h2.0.rules
                .advise(name.as_deref(), &message, stack.as_deref())
        })
        .await
        .unwrap_or(None)
    };
    let mut found = rules.is_some();
    let mut llm_failed = false;
    if let Some(a) = rules.clone() {
        s.stats.rules_matched.fetch_add(1, Relaxed);
        publish(h, &job, "rules".into(), a, s.ttl, outbox);
    }
    if let Some(llm) = &s.llm {
        match llm.advise(&job, abort).await {
            Ok(a) => {
                let source = format!("llm:{}", llm.model());
                publish(h, &job, source, a, s.ttl, outbox);
                found = true;
            }
            Err(e) => {
                if matches!(e, llm::LlmError::Cancelled) {
                    s.stats.abandoned.fetch_add(1, Relaxed);
                }
                llm_failed = true;
                tracing::debug!(
                    fingerprint = %format!("{:032x}", job.fingerprint),
                    "LLM advice failed: {e}"
                );
            }
        }
    }
    if llm_failed {
        // Keep what the rules said (already written) for a shorter time, without a new record.
        let ttl = s.ttl.min(LLM_FAILED_TTL);
        let source = if rules.is_some() { "rules" } else { "none" };
        remember(h, &job, source, rules, ttl);
    } else if !found {
        remember(h, &job, "none", None, s.ttl);
    }
    if !found {
        s.stats.no_advice.fetch_add(1, Relaxed);
    }
    s.inflight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.fingerprint);
    s.stats.completed.fetch_add(1, Relaxed);
}

/// Caches the result and writes its `advice` record.
fn publish(
    h: &AnalysisHandle,
    job: &Job,
    source: String,
    advice: Advice,
    ttl: Duration,
    outbox: &Outbox,
) {
    let s = &h.0;
    let record = json!({
        "kind": crate::event::record::kind::ADVICE,
        "time": crate::event::record::rfc3339_micros(SystemTime::now()),
        "fingerprint": format!("{:032x}", job.fingerprint),
        "source": source,
        "advice": advice,
        "event_id": job.event_id,
        "service": &*job.service,
    });
    remember(h, job, &source, Some(advice), ttl);
    let mut buf = BytesMut::new();
    crate::event::record::put_json_line(&mut buf, &record);
    match outbox.advice(buf.freeze()) {
        true => s.stats.records_written.fetch_add(1, Relaxed),
        false => s.stats.records_lost.fetch_add(1, Relaxed),
    };
}

/// Puts a result in the cache for `ttl` (`advice: None`: nothing found), shrinking the cache
/// if memory pressure lowered its bound.
fn remember(h: &AnalysisHandle, job: &Job, source: &str, advice: Option<Advice>, ttl: Duration) {
    let s = &h.0;
    let created = unix_ms(SystemTime::now());
    s.cache.insert(
        job.fingerprint,
        Entry {
            fingerprint: format!("{:032x}", job.fingerprint),
            source: source.to_string(),
            advice,
            event_id: job.event_id.clone(),
            created_unix_ms: created,
            expires_unix_ms: created.saturating_add(ttl.as_millis() as u64),
        },
    );
    let p = *s.pressure.borrow();
    if p >= Pressure::High {
        let bound = s.cache.bound(p);
        if s.cache.bytes() > bound {
            // Walks the cache: off the runtime threads, like the dispatcher's shrink.
            let h2 = h.clone();
            tokio::task::spawn_blocking(move || h2.0.cache.shrink_to(bound));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_capped_on_char_boundaries() {
        let msg = "é".repeat(MAX_JOB_MESSAGE);
        let j = Job::new(
            Fingerprint(1),
            "id".into(),
            None,
            &msg,
            None,
            "svc",
            Class::Unknown,
        );
        assert!(j.message.len() <= MAX_JOB_MESSAGE);
    }

    async fn started(pressure: PressureRx) -> (Analysis, crate::outbox::OutboxReceiver) {
        let cfg = config::AnalysisConfig {
            cache_file: "off".into(),
            cache_max_bytes: bytesize::ByteSize::kib(64),
            ..Default::default()
        }
        .validate(std::path::Path::new("x.log"))
        .unwrap();
        let (tx, rx) = crate::outbox::outbox();
        let a = Analysis::start(&cfg, tx, &Registry::default(), pressure)
            .await
            .unwrap()
            .unwrap();
        (a, rx)
    }

    fn job(fp: u128, msg: &str) -> Job {
        Job::new(
            Fingerprint(fp),
            format!("ev{fp}"),
            Some("Error"),
            msg,
            None,
            "svc",
            Class::Unknown,
        )
    }

    /// One event with nothing known from the table: a shared-cache lookup, an analysis on a
    /// miss.
    fn offer(h: &AnalysisHandle, fp: Fingerprint, job: impl FnOnce() -> Job) {
        let now = unix_ms(SystemTime::now()) * 1_000_000;
        h.offer_seen(fp, now, 0, &mut 0, job);
    }

    #[tokio::test]
    async fn offer_seen_trusts_what_it_learnt_for_at_most_known_for() {
        let (_ptx, prx) = crate::memory::channel();
        let (a, _rx) = started(prx).await;
        let h = a.handle();
        let now = unix_ms(SystemTime::now()) * 1_000_000;
        let mut hits = 0;
        // Nothing cached: a miss queues one analysis, nothing learnt.
        let learnt = h.offer_seen(Fingerprint(9), now, 0, &mut hits, || {
            job(9, "connect ECONNREFUSED 127.0.0.1:1")
        });
        assert_eq!(learnt, None);
        assert_eq!(h.stats().queued.load(Relaxed), 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while h.stats().completed.load(Relaxed) < 1 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Cached now: one shared lookup, trusted for KNOWN_FOR.
        let until = h
            .offer_seen(Fingerprint(9), now, 0, &mut hits, || unreachable!())
            .expect("advice is cached");
        assert_eq!(until, now + KNOWN_FOR.as_nanos() as u64);
        assert_eq!(h.cache().hits.load(Relaxed), 1);
        // Before `until`: a hit counted locally, the shared cache untouched.
        for _ in 0..5 {
            let r = h.offer_seen(Fingerprint(9), now + 1, until, &mut hits, || unreachable!());
            assert_eq!(r, None);
        }
        assert_eq!((hits, h.cache().hits.load(Relaxed)), (5, 1));
        h.add_hits(&mut hits);
        assert_eq!((hits, h.cache().hits.load(Relaxed)), (0, 6));
        // Never trusted past the entry's own expiry.
        let expires_ns = h
            .advice(&format!("{:032x}", 9u128))
            .unwrap()
            .expires_unix_ms
            * 1_000_000;
        let late = expires_ns - 1000;
        let r = h.offer_seen(Fingerprint(9), late, 0, &mut hits, || unreachable!());
        assert_eq!(r, Some(expires_ns));
        a.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn single_flight_then_cache_hit() {
        let (_ptx, prx) = crate::memory::channel();
        let (a, rx) = started(prx).await;
        let h = a.handle();
        for _ in 0..100 {
            offer(&h, Fingerprint(7), || {
                job(7, "connect ECONNREFUSED 127.0.0.1:1")
            });
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while h.stats().completed.load(Relaxed) < 1 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(h.stats().queued.load(Relaxed), 1);
        offer(&h, Fingerprint(7), || job(7, "x"));
        assert_eq!(h.cache().hits.load(Relaxed), 1);
        let e = h.advice(&format!("{:032x}", 7u128)).unwrap();
        assert_eq!(e.source, "rules");
        assert_eq!(e.event_id, "ev7");
        let Some(crate::outbox::Record::Advice(line)) = rx.drain().into_iter().next() else {
            panic!("no advice record in the outbox");
        };
        let rec: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(rec["kind"], "advice");
        assert_eq!(rec["advice"]["rule"], "net-connection-refused");
        a.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn disabled_starts_nothing() {
        let cfg = config::AnalysisConfig {
            enabled: false,
            ..Default::default()
        }
        .validate(std::path::Path::new("x.log"))
        .unwrap();
        let (tx, _rx) = crate::outbox::outbox();
        let (_ptx, prx) = crate::memory::channel();
        let a = Analysis::start(&cfg, tx, &Registry::default(), prx)
            .await
            .unwrap();
        assert!(a.is_none());
    }

    #[tokio::test]
    async fn pressure_pauses_new_fingerprints() {
        let (ptx, prx) = crate::memory::channel();
        let (a, _rx) = started(prx).await;
        let h = a.handle();
        ptx.send(Pressure::High).unwrap();
        offer(&h, Fingerprint(9), || job(9, "boom"));
        assert_eq!(h.stats().paused_pressure.load(Relaxed), 1);
        assert_eq!(h.stats().queued.load(Relaxed), 0);
        ptx.send(Pressure::Normal).unwrap();
        offer(&h, Fingerprint(9), || job(9, "boom"));
        assert_eq!(h.stats().queued.load(Relaxed), 1);
        a.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn the_cache_shrinks_when_pressure_rises() {
        let (ptx, prx) = crate::memory::channel();
        let (a, _rx) = started(prx).await;
        let h = a.handle();
        let now = unix_ms(SystemTime::now());
        for i in 0..400u128 {
            h.cache().insert(
                i,
                Entry {
                    fingerprint: format!("{i:032x}"),
                    source: "rules".into(),
                    advice: Some(Advice {
                        summary: "s".repeat(300),
                        likely_cause: "c".into(),
                        fix_steps: vec!["a".into()],
                        confidence: 0.5,
                        rule: None,
                    }),
                    event_id: "e".into(),
                    created_unix_ms: now,
                    expires_unix_ms: now + 60_000,
                },
            );
        }
        let bound = h.cache().bound(Pressure::High);
        assert!(h.cache().max_bytes() > bound);
        ptx.send(Pressure::High).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while h.cache().bytes() > bound {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} > {bound}",
                h.cache().bytes()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(h.cache().shrunk.load(Relaxed) > 0);
        a.shutdown(Duration::from_secs(1)).await;
    }
}
