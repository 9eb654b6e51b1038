//! Ingest: the Unix socket listener and one task per client connection.
//!
//! A connection permit is taken *before* `accept`, so at most `ingest.max_connections`
//! connections are served and further clients wait in the kernel's listen backlog.

pub mod connection;
pub mod framing;
pub mod inflight;
pub mod listener;
pub mod peer;
pub mod reply;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config;
use crate::pipeline::Pipeline;
use crate::ring::RingSender;
use crate::stats::Stats;

/// Pause after an `accept` error such as EMFILE, so a full fd table doesn't spin the loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What every connection task shares.
pub struct Shared {
    /// Swapped on config reload; connections load it at each read.
    pub cfg: ArcSwap<config::Ingest>,
    /// Swapped on config reload; connections load it at each read.
    pub pipeline: ArcSwap<Pipeline>,
    pub ring: RingSender,
    pub stats: Arc<Stats>,
    /// The last events, for `/recent`.
    pub history: Arc<crate::control::history::History>,
    /// Cancelled on shutdown: stop reading new data, drain what was sent.
    pub cancel: CancellationToken,
    /// The memory pressure level, read once per socket read.
    pub pressure: crate::memory::PressureCell,
    /// Told the running count of bytes read after each read: wakes a backed-off memory
    /// governor when clients send a burst (one atomic load per read).
    pub memory_nudge: crate::memory::Nudge,
    /// Bytes in flight per connection and peer, with their caps.
    pub inflight: Arc<inflight::InFlight>,
    /// `memory.pressure_timeout` (restart-only).
    pub pressure_timeout: Duration,
}

/// Accepts connections until `shared.cancel` fires. Connection tasks go on `tracker`.
///
/// On cancellation the socket file is removed first (no new client can find it), then every
/// connection already waiting in the listen backlog is accepted — its client may have written
/// events already — and drained like the others, regardless of the connection limit (the
/// backlog itself bounds them).
pub async fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    socket: Arc<listener::Socket>,
) {
    // The limit is fixed at start (changing it needs a restart).
    let limit = Arc::new(Semaphore::new(shared.cfg.load().max_connections.get()));
    let mut last_error_log: Option<tokio::time::Instant> = None;
    loop {
        let permit = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _addr)) => {
                let shared = shared.clone();
                tracker.spawn(async move {
                    connection::serve(stream, shared).await;
                    drop(permit);
                });
            }
            Err(e) => {
                let now = tokio::time::Instant::now();
                if last_error_log.is_none_or(|t| now - t > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "accept failed (logged at most every 10 s)");
                    last_error_log = Some(now);
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
    socket.remove_file();
    let mut drained = 0usize;
    // A zero timeout polls `accept` once: ready connections only, no waiting.
    while let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::ZERO, listener.accept()).await {
        let shared = shared.clone();
        tracker.spawn(connection::serve(stream, shared));
        drained += 1;
    }
    if drained > 0 {
        tracing::info!(
            connections = drained,
            "accepted the listen backlog for draining"
        );
    }
}
