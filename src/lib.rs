//! qerrors: a sidecar daemon that turns error events from local processes into an enriched,
//! grouped, rate-limited error log.
//!
//! One event crosses these modules once, in this order:
//!
//! ```text
//! apps ─ NDJSON ─▶ ingest    Unix socket, one task per connection: frame (max line), peer creds
//!                  pipeline  the steps of one line, in order, each from its own module:
//!                    event      parse (raw JSON kept) → sanitize → fingerprint
//!                    limit      sample under memory pressure, admit or suppress (counted)
//!                    event      classify
//!                    pipeline   occurrence table → offer to analysis → encode into the batch
//!                  ring      lock-free bounded queue of batches, bounded by events and bytes;
//!                            backpressure or drop-newest, always counted
//!                  sink      writer thread: gather batches → one vectored write → fsync policy →
//!                            acks (through the ring's `Ack`) → release ring space
//! ```
//!
//! Records that are not events (`daemon` notices, `advice`) reach the writer through the
//! [`outbox`]; suppressed and dropped events are counted and written as summary records.
//!
//! - [`ingest`]: listener (bind / systemd activation), connections, framing, replies, peers.
//! - [`pipeline`]: `Pipeline` (the steps of one event) and the fingerprint occurrence table.
//! - [`event`]: value types and pure stages: parse, sanitize, fingerprint, classify, record.
//! - [`limit`]: rate limits and the duplicate policy (local, Redis-shared behind a breaker), and
//!   the counts of suppressed events.
//! - [`fleet`]: the fleet registry: per-fingerprint deltas synced to a shared Redis, and the
//!   reads behind `/fleet/fingerprints`.
//! - [`ring`]: the bounded queue between ingest and the writer, and the `Ack` it carries.
//! - [`sink`]: the writer thread and the log file.
//! - [`outbox`]: the writer's route for records that are not events.
//! - [`analysis`]: fix advice per new fingerprint: built-in rules, an optional LLM, a cache.
//! - [`memory`]: the memory pressure level every bounded structure listens to.
//! - [`breaker`]: the circuit breaker around outbound calls (Redis, the LLM endpoint).
//! - [`tls`]: the trust store of outbound TLS (the LLM client; Redis's crate applies the same
//!   rule).
//! - [`control`]: loopback HTTP: /metrics, /health, /ready, /stats, /recent, /fingerprints,
//!   dashboard, and the recent-event history behind /recent.
//! - [`protocol`]: reply codes and the encoding of every reply line (docs/PROTOCOL.md).
//! - [`json`]: JSON string escaping, unescaping and truncation for the hand-written paths.
//! - [`stats`]: counters and histograms shared by all stages.
//! - [`lag`]: the event-loop lag ticker and the runtime workers' busy ratios.
//! - [`config`]: TOML + env + CLI, validated once into an immutable [`config::Config`].
//! - [`app`]: the composition root, SIGHUP reload and the shutdown sequence.
//! - [`notify`]: systemd readiness, status and watchdog.
//! - [`ctl`]: `qerrorsctl`: the client side of the protocol and one module per command.

/// `CARGO_PKG_VERSION (git describe)`, shown by `--version` and in the start record.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("QERRORS_GIT_DESCRIBE"),
    ")"
);

pub mod analysis;
pub mod app;
pub mod breaker;
pub mod config;
pub mod control;
pub mod ctl;
pub mod display;
pub mod event;
pub mod fleet;
pub mod ingest;
pub mod json;
pub mod lag;
pub mod limit;
pub mod memory;
pub mod notify;
pub mod outbox;
pub mod pipeline;
pub mod protocol;
pub mod ring;
pub mod sink;
pub mod stats;
pub mod tls;
