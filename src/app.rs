//! The composition root: builds every component from the validated config, wires their
//! channels and cancellation, handles signals, and runs the shutdown sequence.
//!
//! Shutdown (SIGTERM/SIGINT): cancel ingest only → the listener stops accepting and removes its
//! socket → connections take what clients already sent (grace period) and wait for their acks →
//! their ring senders drop → the writer drains the ring, writes the `stop` record, fsyncs and
//! exits. A second signal exits at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use arc_swap::ArcSwap;

use crate::analysis::AnalysisHandle;
use crate::breaker;
use crate::config::{self, Config};
use crate::control::history::{History, DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS};
use crate::control::{self, ControlState};
use crate::ingest::{self, listener::Socket};
use crate::limit::suppress::Suppressions;
use crate::limit::Limiter;
use crate::notify;
use crate::outbox::{self, Outbox};
use crate::pipeline::table::FingerprintTable;
use crate::pipeline::Pipeline;
use crate::ring;
use crate::sink::{SinkControl, Writer, WriterReport};
use crate::stats::Stats;

/// Extra time, beyond `ingest.shutdown_grace`, for connection tasks to hand over their last
/// batch and collect acks before we stop waiting for them.
const TASK_GRACE_SLACK: Duration = Duration::from_secs(2);

/// Extra time, beyond `ingest.shutdown_grace`, for the writer to drain the ring at shutdown
/// before a failing log (disk full) makes it give up (under systemd's default stop timeout).
const WRITER_DRAIN_SLACK: Duration = Duration::from_secs(15);

/// Time running analyses get to finish at shutdown before they are abandoned (counted); the
/// advice cache is saved after that.
const ANALYSIS_GRACE: Duration = Duration::from_secs(3);

/// Runs the daemon until a shutdown signal; returns once everything accepted is written.
///
/// Startup order: signal handlers first (so an early SIGTERM is a clean stop, not a kill), then
/// the log file, then the socket (a bad log path fails before anyone can connect).
pub async fn run(cfg: Config, source: ConfigSource) -> anyhow::Result<WriterReport> {
    run_with(cfg, source, None).await
}

/// Called with each memory pressure level (the daemon binary lowers its own log verbosity).
pub type PressureHook = Box<dyn Fn(crate::memory::Pressure) + Send + Sync>;

/// [`run`], with a hook for pressure changes.
pub async fn run_with(
    cfg: Config,
    source: ConfigSource,
    on_pressure: Option<PressureHook>,
) -> anyhow::Result<WriterReport> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;

    let stats = Arc::new(Stats::default());
    let control = Arc::new(SinkControl::default());
    let (ring_tx, ring_rx) = ring::ring(
        cfg.ring.capacity_events.get(),
        cfg.ring.capacity_bytes.get(),
        cfg.ring.overflow,
    );
    // Events reach the writer through the ring; every other record through the outbox.
    let (outbox, outbox_rx) = outbox::outbox();
    let suppressions = Arc::new(Suppressions::default());
    let breakers = Arc::new(breaker::Registry::default());
    let writer = Writer::new(
        cfg.sink.clone(),
        ring_rx,
        outbox_rx,
        suppressions.clone(),
        stats.clone(),
        control.clone(),
    )
    .with_context(|| format!("opening log file {}", cfg.sink.path.display()))?;
    let sockets = Socket::open_with_control(&cfg.ingest, &cfg.control_access)
        .context("opening the ingest socket")?;
    let socket = sockets.ingest;
    let admins = control::access::Admins::new(cfg.control_access.admin_group.as_deref())
        .map_err(anyhow::Error::msg)?;
    // A control socket that cannot be bound does not keep the daemon from taking events.
    let mut control_socket_unavailable = None;
    let control_socket = match sockets.control {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(
                "control socket not started: {e}; qerrorsctl falls back to TCP (with the token)"
            );
            control_socket_unavailable = Some((
                cfg.control_access.socket.display().to_string(),
                e.to_string(),
            ));
            None
        }
    };
    // The memory governor first: every bounded structure below listens to its level.
    let memory = Arc::new(crate::memory::MemoryStatus::default());
    let (pressure_tx, pressure_rx) = crate::memory::channel();
    // Ingest wakes a backed-off governor when clients send a burst (memory/nudge.rs).
    let (memory_nudge, nudge_rx) = crate::memory::nudge();
    let bytes_read = {
        let stats = stats.clone();
        move || stats.bytes_in.load(Ordering::Relaxed)
    };
    let _governor = crate::memory::governor::Governor::new(
        cfg.memory.clone(),
        pressure_tx,
        memory.clone(),
        outbox.clone(),
    )
    .spawn(nudge_rx, bytes_read)
    .context("starting the memory governor")?;
    // The pipeline's collaborators live as long as the daemon; each config generation's
    // pipeline is built over the same ones.
    let limiter = Arc::new(Limiter::new(&cfg.limit));
    let analysis = crate::analysis::Analysis::start(
        &cfg.analysis,
        outbox.clone(),
        &breakers,
        pressure_rx.clone(),
    )
    .await
    .context("starting analysis")?;
    let parts = PipelineParts {
        table: Arc::new(FingerprintTable::new(
            cfg.event.max_fingerprints.get(),
            cfg.event.occurrence_window,
        )),
        limiter: limiter.clone(),
        analysis: analysis.as_ref().map(|a| a.handle()),
        suppressions: suppressions.clone(),
        fleet: cfg
            .fleet
            .redis_url
            .is_some()
            .then(|| Arc::new(crate::fleet::Deltas::new(cfg.fleet.max_pending))),
        outbox: outbox.clone(),
    };
    let pipeline = Arc::new(
        parts
            .pipeline(&cfg)
            .context("building the event pipeline")?,
    );
    // Compiling the rule and sanitizer regexes peaks ~5 MiB above what they keep; give the
    // difference back now rather than carry it for the daemon's lifetime (docs/memory.md).
    tokio::task::spawn_blocking(crate::memory::trim::release_free_memory);

    // A control port someone else holds does not keep the daemon from taking events: it runs
    // without the control server and says so (stderr here, the log once the writer runs).
    let mut control_unavailable = None;
    let control_listener = match cfg.control {
        Some(addr) => match control::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(
                    "control server not started: cannot bind {addr}: {e}; running without it \
                     (no /metrics, /health, dashboard, qerrorsctl status) until a restart"
                );
                control_unavailable = Some((addr.to_string(), e.to_string()));
                None
            }
        },
        None => None,
    };
    if let Some(a) = cfg.control.filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            "control server on {a}, beyond loopback (control.allow_remote): whoever reaches it \
             reads every event"
        );
    }
    let control_addr = control_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.to_string());
    let control_socket_display = control_socket.as_ref().map(|s| s.display.clone());
    // TCP serves content only to whoever presents this token.
    let token = match &control_listener {
        Some(_) => {
            let access = cfg.control_access.clone();
            tokio::task::spawn_blocking(move || control::access::load_or_create_token(&access))
                .await
                .unwrap_or(None)
        }
        None => None,
    };

    let start = json!({
        "version": crate::VERSION,
        "pid": std::process::id(),
        "host": cfg.event.host,
        "socket": socket.display,
        "overflow": format!("{:?}", cfg.ring.overflow).to_lowercase(),
        "control": control_addr,
        "control_socket": control_socket_display,
        "memory_budget": memory.budget_bytes.load(Ordering::Relaxed),
    });
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("qerrors-writer".into())
        .spawn(move || {
            let report = writer.run(start);
            let _ = done_tx.send(report);
        })
        .context("starting the writer thread")?;
    if let Some((listen, error)) = control_unavailable {
        outbox.notice(
            "control server not started",
            vec![("listen", json!(listen)), ("error", json!(error))],
        );
    }
    if let Some((path, error)) = control_socket_unavailable {
        outbox.notice(
            "control socket not started",
            vec![("path", json!(path)), ("error", json!(error))],
        );
    }

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let listener = tokio::net::UnixListener::from_std(socket.listener.try_clone()?)
        .context("registering the socket with the runtime")?;
    let history = Arc::new(History::new(DEFAULT_MAX_EVENTS, DEFAULT_MAX_BYTES));
    let fingerprints = parts.table.clone();
    let ring_stats = ring_tx.stats();
    // Every bounded structure follows the pressure level (docs/memory.md).
    let _shrink = {
        let (ring, history, table) = (ring_tx.clone(), history.clone(), fingerprints.clone());
        crate::memory::listen(pressure_rx.clone(), move |p| {
            table.set_pressure(p);
            history.set_pressure(p);
            ring.set_pressure(p);
            if let Some(hook) = &on_pressure {
                hook(p);
            }
        })
    };
    let inflight = Arc::new(ingest::inflight::InFlight::new(
        cfg.memory.in_flight_bytes.get(),
        cfg.memory.peer_in_flight_bytes.get(),
    ));
    let shared = Arc::new(ingest::Shared {
        cfg: ArcSwap::from_pointee(cfg.ingest.clone()),
        pipeline: ArcSwap::new(pipeline),
        ring: ring_tx,
        stats: stats.clone(),
        history: history.clone(),
        cancel: cancel.clone(),
        pressure: memory.level.clone(),
        memory_nudge,
        inflight: inflight.clone(),
        pressure_timeout: cfg.memory.pressure_timeout,
    });
    let reloads = Arc::new(control::reloads::Reloads::default());
    let control_stop = CancellationToken::new();
    let limit_stop = CancellationToken::new();
    let limit_thread = crate::limit::spawn(
        limiter.clone(),
        cfg.limit.clone(),
        pressure_rx.clone(),
        outbox.clone(),
        breakers.clone(),
        limit_stop.clone(),
    )
    .context("starting the limiter thread")?;
    let fleet_stop = CancellationToken::new();
    let fleet_thread = match &parts.fleet {
        Some(deltas) => Some(
            crate::fleet::sync::spawn(
                deltas.clone(),
                parts.table.clone(),
                cfg.fleet.clone(),
                cfg.event.host.clone(),
                outbox.clone(),
                breakers.clone(),
                fleet_stop.clone(),
            )
            .context("starting the fleet thread")?,
        ),
        None => None,
    };
    let control_rejected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The lag ticker: how late the runtime runs a ready task (src/lag.rs).
    let lag = Arc::new(crate::lag::LagStats::new(
        tokio::runtime::Handle::current().metrics().num_workers(),
    ));
    let lag_task = {
        let (lag, stats) = (lag.clone(), stats.clone());
        tokio::spawn(crate::lag::run(lag, move || {
            stats.bytes_in.load(Ordering::Relaxed)
        }))
    };
    let token_ok = token.is_some();
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(4);
    let state = ControlState {
        stats: stats.clone(),
        ring: ring_stats,
        history,
        fingerprints,
        started: std::time::Instant::now(),
        shutting_down: cancel.clone(),
        slots: Arc::new(tokio::sync::Semaphore::new(control::MAX_IN_FLIGHT)),
        analysis: parts.analysis.clone(),
        memory: memory.clone(),
        inflight,
        suppressions,
        limiter,
        breakers,
        outbox,
        reloads: reloads.clone(),
        hosts: control::guard::Hosts::new(cfg.control, &cfg.control_guard.allowed_hosts),
        control_rejected: control_rejected.clone(),
        access: control::access::Access::new(token, cfg.control_access.others),
        metrics_services: cfg.control_access.metrics_services,
        reload: Some(reload_tx),
        lag,
        fleet: parts.fleet.clone(),
        fleet_reader: crate::fleet::read::Reader::new(&cfg.fleet).map(Arc::new),
    };
    let control_task = control_listener.map(|listener| {
        let listener =
            control::guard::Guarded::new(listener, &cfg.control_guard, control_rejected.clone());
        tokio::spawn(control::serve(
            listener,
            state.clone(),
            control_stop.clone(),
        ))
    });
    let control_socket_task = match control_socket {
        Some(s) => {
            let listener = tokio::net::UnixListener::from_std(s.listener.try_clone()?)
                .context("registering the control socket with the runtime")?;
            let listener = control::access::GuardedUnix::new(
                listener,
                &cfg.control_guard,
                control_rejected,
                admins,
            );
            Some((
                tokio::spawn(control::serve(listener, state, control_stop.clone())),
                s,
            ))
        }
        None => None,
    };
    // Where the dashboard's token is, when TCP serves content.
    let token_path = match &control_addr {
        Some(_) if token_ok => std::path::absolute(&cfg.control_access.token_file)
            .unwrap_or_else(|_| cfg.control_access.token_file.clone())
            .display()
            .to_string(),
        Some(_) => "none (TCP serves /metrics, /health, /ready only)".to_string(),
        None => "off".to_string(),
    };
    let socket = Arc::new(socket);
    let accept = tokio::spawn(ingest::accept_loop(
        listener,
        shared.clone(),
        tracker.clone(),
        socket.clone(),
    ));
    // Absolute, so the line says where to look from any directory.
    let log_path = std::path::absolute(&cfg.sink.path).unwrap_or_else(|_| cfg.sink.path.clone());
    tracing::info!(
        socket = %socket.display,
        log = %log_path.display(),
        control = control_addr.as_deref().unwrap_or("off"),
        control_socket = control_socket_display.as_deref().unwrap_or("off"),
        token = %token_path,
        "qerrorsd ready"
    );
    notify::ready();
    let watchdog = tokio::spawn(notify::watchdog_and_status(stats.clone()));

    let mut current = cfg;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reopening the log file and reloading the configuration");
                control.request_reopen();
                notify::reloading();
                current = reload(current, &source, &shared, &parts, &reloads).await;
                notify::ready();
            }
            Some(answer) = reload_rx.recv() => {
                tracing::info!("reload requested on the control plane: reopening the log file and reloading the configuration");
                control.request_reopen();
                notify::reloading();
                current = reload(current, &source, &shared, &parts, &reloads).await;
                notify::ready();
                if let Some(outcome) = reloads.last() {
                    let _ = answer.send(outcome);
                }
            }
        }
    }
    watchdog.abort();
    notify::stopping();

    // A second signal means "now".
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        eprintln!("qerrorsd: second signal, exiting at once without draining");
        std::process::exit(1);
    });

    tracing::info!("shutting down: draining connections and the ring");
    cancel.cancel();
    let _ = accept.await;
    drop(socket);
    tracker.close();
    let wait = current.ingest.shutdown_grace + TASK_GRACE_SLACK;
    if tokio::time::timeout(wait, tracker.wait()).await.is_err() {
        tracing::warn!(
            connections = tracker.len(),
            "connections still open after the shutdown grace; their unread data is lost"
        );
    }
    // No more decisions to sync.
    limit_stop.cancel();
    let _ = tokio::task::spawn_blocking(move || limit_thread.join()).await;
    // The last deltas go to Redis (one bounded flush) before the writer closes.
    fleet_stop.cancel();
    if let Some(t) = fleet_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let Some(a) = analysis {
        a.shutdown(ANALYSIS_GRACE).await;
    }
    // Producers that are still alive can't keep the writer from finishing.
    control.close();
    // A writer stuck retrying (disk full) gets a bounded time to finish; then it gives up on
    // what it holds, counting it as dropped in the stop record and in this process's log.
    let mut done_rx = done_rx;
    let drain = current.ingest.shutdown_grace + WRITER_DRAIN_SLACK;
    let report = match tokio::time::timeout(drain, &mut done_rx).await {
        Ok(r) => r.context("the writer thread died")?,
        Err(_) => {
            tracing::error!(
                queued_events = shared.ring.stats().events(),
                "the log is still not writable {drain:?} into shutdown; abandoning queued events"
            );
            control.abandon();
            done_rx.await.context("the writer thread died")?
        }
    };
    // The control plane answers (503 on /ready) until everything is written.
    control_stop.cancel();
    if let Some(t) = control_task {
        let _ = t.await;
    }
    if let Some((t, s)) = control_socket_task {
        let _ = t.await;
        s.remove_file();
    }
    lag_task.abort();
    tracing::info!(
        written = report.written,
        rejected = stats.rejected_total(),
        dropped = stats.dropped_overload.load(Ordering::Relaxed) + report.abandoned,
        "stopped"
    );
    Ok(report)
}

/// Where the configuration came from, to read it again on SIGHUP.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub path: Option<std::path::PathBuf>,
    pub overrides: config::Overrides,
}

impl ConfigSource {
    /// Reads and validates the file + environment + command line, exactly as at start.
    pub fn load(&self) -> Result<Config, config::ConfigError> {
        config::RawConfig::load(self.path.as_deref(), std::env::vars())
            .and_then(|raw| raw.validate(&self.overrides))
    }
}

/// What every pipeline generation is built over: kept by `app` across reloads.
struct PipelineParts {
    table: Arc<FingerprintTable>,
    limiter: Arc<Limiter>,
    analysis: Option<AnalysisHandle>,
    suppressions: Arc<Suppressions>,
    /// The fleet registry's deltas (`None`: fleet off).
    fleet: Option<Arc<crate::fleet::Deltas>>,
    /// Where reload outcomes are written.
    outbox: Outbox,
}

impl PipelineParts {
    fn pipeline(&self, cfg: &Config) -> Result<Pipeline, crate::event::sanitize::SanitizeError> {
        Pipeline::new(
            cfg,
            self.table.clone(),
            self.limiter.clone(),
            self.analysis.clone(),
            self.suppressions.clone(),
        )
        .map(|p| p.with_fleet(self.fleet.clone()))
    }
}

/// SIGHUP: re-reads the configuration. A bad one keeps the running one and says why; a good one
/// is applied live for the keys that can change at run time, and keys that need a restart are
/// named. Either outcome is written to the log as a `daemon` record. Returns the config now in
/// force (restart-only keys keep their running values).
async fn reload(
    current: Config,
    source: &ConfigSource,
    shared: &ingest::Shared,
    parts: &PipelineParts,
    reloads: &control::reloads::Reloads,
) -> Config {
    use control::reloads::Outcome;
    let src = source.clone();
    let loaded = tokio::task::spawn_blocking(move || src.load()).await;
    let new = match loaded {
        Ok(Ok(new)) => new,
        Ok(Err(e)) => {
            tracing::error!("configuration reload rejected, keeping the running one: {e}");
            parts.outbox.notice(
                "config reload rejected",
                vec![("error", json!(e.to_string()))],
            );
            reloads.record(Outcome::Rejected {
                error: e.to_string(),
            });
            return current;
        }
        Err(e) => {
            tracing::error!("configuration reload failed: {e}");
            reloads.record(Outcome::Rejected {
                error: format!("reload failed: {e}"),
            });
            return current;
        }
    };
    let restart = config::restart_required(&current, &new);
    let pipeline = match parts.pipeline(&new) {
        Ok(p) => p,
        Err(e) => {
            // Validation compiled the same sanitizer; this is not expected.
            tracing::error!("configuration reload rejected: {e}");
            reloads.record(Outcome::Rejected {
                error: e.to_string(),
            });
            return current;
        }
    };
    // Restart-only keys keep their running values; everything else takes the new ones.
    let applied = config::merge_live(&current, new);
    parts.limiter.reload(&applied.limit.rules);
    shared.pipeline.store(Arc::new(pipeline));
    shared.cfg.store(Arc::new(applied.ingest.clone()));
    shared.ring.set_policy(applied.ring.overflow);
    if restart.is_empty() {
        tracing::info!("configuration reloaded");
    } else {
        tracing::warn!(keys = ?restart, "configuration reloaded; these keys need a restart to change");
    }
    parts.outbox.notice(
        "config reloaded",
        vec![("restart_required", json!(restart))],
    );
    reloads.record(Outcome::Applied {
        restart_required: restart.iter().map(ToString::to_string).collect(),
    });
    applied
}
