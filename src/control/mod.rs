//! The control plane: a small HTTP server on loopback (`control.listen`, default
//! `127.0.0.1:9464`) for operators and `qerrorsctl`.
//!
//! - `GET /metrics`: Prometheus text exposition ([`metrics`]).
//! - `GET /health`: liveness (the event loop answers).
//! - `GET /ready`: 200 when accepting and the log is writable, 503 otherwise (with the reason).
//! - `GET /stats`: counters as JSON.
//! - `GET /recent?n=&level=&service=`: the last events from the error history.
//! - `GET /fingerprints?top=`: most frequent fingerprints with first/last seen, class, the
//!   services they came from and advice.
//! - `GET /advice/{fingerprint}`: the cached fix advice for one fingerprint.
//! - `GET /`: the dashboard (embedded; no file reads, no CDN).
//!
//! Bounded: at most [`MAX_IN_FLIGHT`] requests at once, a [`REQUEST_TIMEOUT`] per request, GET
//! only, no request bodies. Work that walks big structures runs on the blocking pool.

pub mod access;
pub mod guard;
pub mod history;
pub mod metrics;
pub mod reloads;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Extension, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::control::access::{Access, Viewer};
use crate::control::history::{Filter, History};
use crate::event::classify::{Class, Severity};
use crate::event::level::Level;
use crate::event::record::{rfc3339_micros, system_time};
use crate::limit::suppress::Reason;
use crate::pipeline::table::FingerprintTable;
use crate::protocol::RejectCode;
use crate::ring::RingStats;
use crate::stats::Stats;

/// Requests served at once; more wait (then time out). Loopback tooling needs few.
pub const MAX_IN_FLIGHT: usize = 32;
/// Deadline for one request, including waiting for a slot.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most rows `/recent` and `/fingerprints` return.
pub const MAX_ROWS: usize = 1000;
/// A write error within this window makes `/ready` fail.
pub const WRITE_ERROR_WINDOW: Duration = Duration::from_secs(10);

static DASHBOARD: &str = include_str!("../../assets/dashboard.html");

/// What the handlers read. Cheap to clone.
#[derive(Clone)]
pub struct ControlState {
    pub stats: Arc<Stats>,
    pub ring: RingStats,
    pub history: Arc<History>,
    pub fingerprints: Arc<FingerprintTable>,
    pub started: Instant,
    /// Cancelled when shutdown begins (`/ready` turns 503).
    pub shutting_down: CancellationToken,
    pub slots: Arc<Semaphore>,
    /// `None`: analysis off.
    pub analysis: Option<crate::analysis::AnalysisHandle>,
    /// What the memory governor last saw.
    pub memory: Arc<crate::memory::MemoryStatus>,
    /// Bytes in flight per connection and peer.
    pub inflight: Arc<crate::ingest::inflight::InFlight>,
    /// Suppressed-event totals by reason.
    pub suppressions: Arc<crate::limit::suppress::Suppressions>,
    /// Rate limits, for `/stats`.
    pub limiter: Arc<crate::limit::Limiter>,
    /// The circuit breakers (Redis, LLM).
    pub breakers: Arc<crate::breaker::Registry>,
    /// The writer's route for non-event records (its posted/lost counts).
    pub outbox: crate::outbox::Outbox,
    /// The last configuration reload's outcome.
    pub reloads: Arc<reloads::Reloads>,
    /// The names `Host` may give.
    pub hosts: guard::Hosts,
    /// Connections closed on arrival because the server was at `control.max_connections`.
    pub control_rejected: Arc<std::sync::atomic::AtomicU64>,
    /// Who sees what ([`access`]).
    pub access: Access,
    /// `/metrics` carries `service` labels.
    pub metrics_services: bool,
    /// Asks the daemon to reload its configuration; answered with the outcome.
    pub reload: Option<ReloadRequests>,
    /// How late the runtime runs ready tasks, and its workers' busy ratios.
    pub lag: Arc<crate::lag::LagStats>,
    /// The fleet registry's local side (deltas, counters); `None`: fleet off.
    pub fleet: Option<Arc<crate::fleet::Deltas>>,
    /// Reads of the fleet registry in Redis; `None`: fleet off.
    pub fleet_reader: Option<Arc<crate::fleet::read::Reader>>,
}

/// `POST /reload` → the daemon's main loop, which answers with the outcome.
pub type ReloadRequests = tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<reloads::Outcome>>;

pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics_text))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/stats", get(stats))
        .route("/recent", get(recent))
        .route("/fingerprints", get(fingerprints))
        .route("/advice/{fingerprint}", get(advice))
        .route("/fleet/fingerprints", get(fleet_top))
        .route("/fleet/fingerprints/{fingerprint}", get(fleet_one))
        .route("/reload", post(reload))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limit))
        .layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            access::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.hosts.clone(),
            guard::check_host,
        ))
        .layer(axum::middleware::from_fn(guard::security_headers))
        .with_state(state)
}

/// Binds the control address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves until `stop` is cancelled (the TCP listener or the control socket).
pub async fn serve<L>(listener: L, state: ControlState, stop: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    access::Who: for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let app = router(state).into_make_service_with_connect_info::<access::Who>();
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "control server failed");
    }
}

/// In-flight limit and per-request deadline.
async fn limit(
    State(st): State<ControlState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let work = async {
        let _permit = st.slots.acquire().await;
        next.run(req).await
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
    }
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

async fn metrics_text(State(st): State<ControlState>) -> Response {
    let rss = rss_bytes().await;
    // Service names are client-written text: in labels only with the opt-in
    // (control.metrics_services), for whoever scrapes.
    match metrics::encode(&st, rss, st.metrics_services) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn ready(State(st): State<ControlState>) -> Response {
    if st.shutting_down.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if st.memory.level.get() == crate::memory::Pressure::Critical {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "memory pressure critical (rss {} of budget {} bytes)\n",
                st.memory.rss_bytes.load(Relaxed),
                st.memory.budget_bytes.load(Relaxed)
            ),
        )
            .into_response();
    }
    if let Some(age) = last_write_error_age(&st.stats) {
        if age < WRITE_ERROR_WINDOW {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "log not writable (last error {:.1}s ago)\n",
                    age.as_secs_f64()
                ),
            )
                .into_response();
        }
    }
    (StatusCode::OK, "ready\n").into_response()
}

fn last_write_error_age(stats: &Stats) -> Option<Duration> {
    let ms = stats.last_write_error_unix_ms.load(Relaxed);
    if ms == 0 {
        return None;
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Some(now.saturating_sub(Duration::from_millis(ms)))
}

/// Resident set size from /proc/self/statm, read on the blocking pool.
pub async fn rss_bytes() -> u64 {
    tokio::task::spawn_blocking(|| {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(
            pages
                * nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                    .ok()??
                    .max(1) as u64,
        )
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(0)
}

fn named<const N: usize, T: Copy>(
    all: [T; N],
    name: impl Fn(T) -> &'static str,
    counters: &[std::sync::atomic::AtomicU64],
) -> Value {
    let mut m = serde_json::Map::new();
    for (i, item) in all.into_iter().enumerate() {
        m.insert(name(item).into(), counters[i].load(Relaxed).into());
    }
    Value::Object(m)
}

/// The `/stats` document (its shape is documented in README and used by the dashboard).
/// `top_services` (client-written names) only for a viewer who sees every event.
pub fn stats_json(st: &ControlState, rss: u64, viewer: Viewer) -> Value {
    let s = &st.stats;
    let mut memory = st.memory.to_json();
    memory["rss_bytes"] = rss.into();
    let (service_sets, service_sets_max) = st.fingerprints.service_sets();
    let uptime = st.started.elapsed();
    let now_ns = crate::event::record::unix_nanos(SystemTime::now());
    let (rate, rate_span) = s.recent.per_second(now_ns, uptime);
    let round = |r: f64| (r * 1000.0).round() / 1000.0;
    let mut rate_by_level = serde_json::Map::new();
    for (l, r) in Level::ALL.into_iter().zip(rate) {
        rate_by_level.insert(l.as_str().into(), round(r).into());
    }
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_s": (uptime.as_secs_f64() * 10.0).round() / 10.0,
        "events": {
            "received": s.lines.load(Relaxed),
            "accepted": s.accepted.load(Relaxed),
            "written": s.written.load(Relaxed),
            "rejected": named(RejectCode::ALL, RejectCode::as_str, &s.rejected),
            "rejected_total": s.rejected_total(),
            "dropped": {"overload": s.dropped_overload.load(Relaxed)},
            "suppressed": {
                "rate_limit": st.suppressions.total(Reason::RateLimit),
                "duplicate": st.suppressions.total(Reason::Duplicate),
                "pressure": st.suppressions.total(Reason::Pressure),
            },
            "by_level": named(Level::ALL, Level::as_str, &s.by_level),
            "rate": {
                "window_s": round(rate_span),
                "total": round(rate.iter().sum()),
                "by_level": rate_by_level,
            },
            "by_class": named(Class::ALL, Class::as_str, &s.by_class),
            "by_severity": named(Severity::ALL, Severity::as_str, &s.by_severity),
        },
        "bytes": {"in": s.bytes_in.load(Relaxed), "out": s.bytes_out.load(Relaxed)},
        "ring": {
            "events": st.ring.events(),
            "bytes": st.ring.bytes(),
            "capacity_events": st.ring.capacity_events(),
            "capacity_bytes": st.ring.capacity_bytes(),
        },
        "connections": {
            "active": s.connections_active.load(Relaxed),
            "total": s.connections_total.load(Relaxed),
            "refused_per_uid": s.connections_refused_per_uid.load(Relaxed),
            "in_flight": st.inflight.to_json(),
        },
        "memory": memory,
        "fingerprints": {
            "tracked": st.fingerprints.len(),
            "service_sets": service_sets,
            "service_sets_max": service_sets_max,
        },
        // Key sets and peer names are client-written too: for admins only.
        "shapes": {
            "generic": s.shapes_generic.load(Relaxed),
            "unmapped": s.shapes_unmapped.load(Relaxed),
            "other": s.shapes_other.load(Relaxed),
            "top": if viewer == Viewer::All {
                s.top_shapes(10).into_iter()
                    .map(|(peer, keys, count)| json!({"peer": peer, "keys": keys, "count": count}))
                    .collect::<Vec<_>>()
            } else {
                Vec::new()
            },
        },
        "top_services": if viewer == Viewer::All {
            s.top_services(10).into_iter()
                .map(|(service, count)| json!({"service": service, "count": count}))
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        },
        "viewer": match viewer {
            Viewer::All => json!("all"),
            Viewer::Uid(uid) => json!({"uid": uid}),
            Viewer::Nothing => json!("none"),
        },
        "latency_us": {
            "p50": s.write_latency.quantile(0.50),
            "p90": s.write_latency.quantile(0.90),
            "p99": s.write_latency.quantile(0.99),
        },
        "breakers": st.breakers.all().iter()
            .map(|b| (b.name.to_string(), b.to_json()))
            .collect::<serde_json::Map<_, _>>(),
        "notices": {"posted": st.outbox.posted(), "lost": st.outbox.lost()},
        "analysis": st.analysis.as_ref().map_or(Value::Null, |a| {
            let mut v = a.stats_json();
            // Queued by analysis vs in the log (counted by the writer after the write).
            v["records"]["in_log"] = s.advice_written.load(Relaxed).into();
            v
        }),
        "limit": st.limiter.to_json(),
        "fleet": st.fleet.as_ref().map_or(Value::Null, |f| f.to_json()),
        "reload": st.reloads.to_json(),
        "control": {"connections_rejected": st.control_rejected.load(Relaxed)},
        "event_loop": st.lag.to_json(),
    })
}

async fn stats(
    State(st): State<ControlState>,
    Extension(viewer): Extension<Viewer>,
) -> Json<Value> {
    let rss = rss_bytes().await;
    Json(stats_json(&st, rss, viewer))
}

/// 403 for a viewer who may see no event at all.
fn no_events(viewer: Viewer) -> Option<Response> {
    (viewer == Viewer::Nothing).then(|| {
        (
            StatusCode::FORBIDDEN,
            "events are shown to root, the daemon's user and control.admin_group only \
             (control.others = \"none\")\n",
        )
            .into_response()
    })
}

/// `POST /reload`: reloads the configuration and answers with the outcome: 200 applied (with
/// the keys that need a restart), 422 rejected (with the reason; the running one stays).
async fn reload(State(st): State<ControlState>) -> Response {
    let Some(tx) = &st.reload else {
        return (StatusCode::SERVICE_UNAVAILABLE, "reload is not available\n").into_response();
    };
    let (answer, outcome) = tokio::sync::oneshot::channel();
    if tx.send(answer).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match outcome.await {
        Ok(reloads::Outcome::Applied { restart_required }) => Json(json!({
            "outcome": "applied",
            "restart_required": restart_required,
        }))
        .into_response(),
        Ok(reloads::Outcome::Rejected { error }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"outcome": "rejected", "error": error})),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct RecentQuery {
    n: Option<usize>,
    level: Option<String>,
    service: Option<String>,
}

async fn recent(
    State(st): State<ControlState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<RecentQuery>,
) -> Response {
    if let Some(r) = no_events(viewer) {
        return r;
    }
    let min_level = match q.level.as_deref().map(|l| Level::normalize(l).ok_or(l)) {
        Some(Err(l)) => {
            return (StatusCode::BAD_REQUEST, format!("unknown level `{l}`\n")).into_response()
        }
        Some(Ok(l)) => Some(l),
        None => None,
    };
    let filter = Filter {
        min_level,
        service: q.service,
        viewer,
    };
    let n = q.n.unwrap_or(50).min(MAX_ROWS);
    let history = st.history.clone();
    match tokio::task::spawn_blocking(move || history.recent(n, &filter)).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct TopQuery {
    top: Option<usize>,
}

async fn fingerprints(
    State(st): State<ControlState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<TopQuery>,
) -> Response {
    if let Some(r) = no_events(viewer) {
        return r;
    }
    let n = q.top.unwrap_or(10).min(MAX_ROWS);
    if viewer != Viewer::All {
        // Counts across users would tell one user about another's errors: a user sees the
        // fingerprints of their own events in the history, counted over it.
        let history = st.history.clone();
        let rows = tokio::task::spawn_blocking(move || history.own_fingerprints(n, viewer)).await;
        return match rows {
            Ok(mut rows) => {
                for r in &mut rows {
                    let fp = r["fingerprint"].as_str().unwrap_or_default().to_string();
                    r["advice"] = st.analysis.as_ref().map_or(Value::Null, |a| {
                        u128::from_str_radix(&fp, 16).map_or(Value::Null, |v| {
                            a.advice_json(crate::event::fingerprint::Fingerprint(v))
                        })
                    });
                }
                Json(rows).into_response()
            }
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        };
    }
    let table = st.fingerprints.clone();
    let rows = match tokio::task::spawn_blocking(move || table.top(n)).await {
        Ok(rows) => rows,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let ts = |ns: u64| rfc3339_micros(system_time(ns as i128));
    let out: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "fingerprint": r.fingerprint.to_string(),
                "count": r.total,
                "first_seen": ts(r.first_seen_ns),
                "last_seen": ts(r.last_seen_ns),
                "class": r.meta.class.as_str(),
                "severity": r.meta.severity.as_str(),
                "level": r.meta.level.as_str(),
                "service": &*r.meta.service,
                "services": r.services(),
                "services_more": r.services_more(),
                "name": &*r.meta.name,
                "message": &*r.meta.message,
                "advice": st.analysis.as_ref().map_or(Value::Null, |a| a.advice_json(r.fingerprint)),
            })
        })
        .collect();
    Json(out).into_response()
}

/// `GET /advice/{fingerprint}`: 200 with the cache entry, 404 when there is none (not analysed
/// yet, expired, or nothing matched), 400 for a malformed fingerprint.
/// Fleet data is event content from every host: admins only (others 403), and 404 when the
/// fleet is off.
fn fleet_reader(
    st: &ControlState,
    viewer: Viewer,
) -> Result<Arc<crate::fleet::read::Reader>, Box<Response>> {
    if viewer != Viewer::All {
        return Err(Box::new((
            StatusCode::FORBIDDEN,
            "fleet fingerprints are shown to root, the daemon's user and control.admin_group only\n",
        )
            .into_response()));
    }
    st.fleet_reader.clone().ok_or_else(|| {
        Box::new(
            (
                StatusCode::NOT_FOUND,
                "the fleet registry is off (fleet.redis_url is empty)\n",
            )
                .into_response(),
        )
    })
}

fn fleet_error(e: crate::fleet::read::ReadError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

/// `GET /fleet/fingerprints?top=N`: the fleet's most frequent fingerprints, from Redis.
async fn fleet_top(
    State(st): State<ControlState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<TopQuery>,
) -> Response {
    let reader = match fleet_reader(&st, viewer) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match reader.top(q.top.unwrap_or(10).min(MAX_ROWS)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => fleet_error(e),
    }
}

/// `GET /fleet/fingerprints/{fp}`: one fingerprint of the fleet (404 when Redis holds none).
async fn fleet_one(
    State(st): State<ControlState>,
    Extension(viewer): Extension<Viewer>,
    axum::extract::Path(fp): axum::extract::Path<String>,
) -> Response {
    let reader = match fleet_reader(&st, viewer) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let fp = fp.trim().to_ascii_lowercase();
    let Some(v) = (fp.len() == 32)
        .then(|| u128::from_str_radix(&fp, 16).ok())
        .flatten()
    else {
        return (StatusCode::BAD_REQUEST, "a fingerprint is 32 hex digits\n").into_response();
    };
    match reader.one(crate::event::fingerprint::Fingerprint(v)).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            format!("the fleet registry holds no {fp}\n"),
        )
            .into_response(),
        Err(e) => fleet_error(e),
    }
}

async fn advice(
    State(st): State<ControlState>,
    Extension(viewer): Extension<Viewer>,
    axum::extract::Path(fp): axum::extract::Path<String>,
) -> Response {
    if let Some(r) = no_events(viewer) {
        return r;
    }
    let fp = fp.trim().to_ascii_lowercase();
    if fp.len() != 32 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (StatusCode::BAD_REQUEST, "a fingerprint is 32 hex digits\n").into_response();
    }
    if viewer != Viewer::All {
        // Advice quotes the event it was made for: only for fingerprints of one's own events.
        let (history, want) = (st.history.clone(), fp.clone());
        let own = tokio::task::spawn_blocking(move || history.has_fingerprint(&want, viewer))
            .await
            .unwrap_or(false);
        if !own {
            return (
                StatusCode::NOT_FOUND,
                format!("no advice for {fp} among your events in the recent history\n"),
            )
                .into_response();
        }
    }
    let Some(a) = &st.analysis else {
        return (
            StatusCode::NOT_FOUND,
            "analysis is off (analysis.enabled = false)\n",
        )
            .into_response();
    };
    match a.advice(&fp) {
        Some(e) if e.advice.is_some() => Json(json!({
            "fingerprint": e.fingerprint,
            "source": e.source,
            "advice": e.advice,
            "event_id": e.event_id,
            "created": rfc3339_micros(SystemTime::UNIX_EPOCH + Duration::from_millis(e.created_unix_ms)),
            "expires": rfc3339_micros(SystemTime::UNIX_EPOCH + Duration::from_millis(e.expires_unix_ms)),
        }))
        .into_response(),
        Some(_) => (StatusCode::NOT_FOUND, format!("no advice for {fp}: no rule matched and no LLM answer\n")).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no advice for {fp} (not analysed yet, or expired)\n")).into_response(),
    }
}
