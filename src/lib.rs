//! qerrors: a sidecar daemon that turns error events from local processes into an enriched,
//! grouped, rate-limited error log.
//!
//! Data flow (one module per stage):
//!
//! ```text
//! apps ─ NDJSON ─▶ ingest   Unix socket, one task per connection: frame (max line) → peer creds
//!                  event    parse once (raw JSON kept) → validate → sanitize → enrich → fingerprint
//!                  limit    admit or suppress (counted) right after the fingerprint; shared
//!                           limits sync with Redis in the background
//!                           → classify → encode the record into the read's batch
//!                  ring     lock-free bounded queue of batches, bounded by events and bytes;
//!                           backpressure or drop-newest, always counted
//!                  sink     writer thread: gather batches → one vectored write → fsync policy →
//!                           acks → release ring space; rotation, reopen, `dropped` summaries
//! ```
//!
//! - [`analysis`]: fix advice per new fingerprint: built-in rules, an optional LLM, a cache.
//! - [`control`]: loopback HTTP: /metrics, /health, /ready, /stats, /recent, /fingerprints, dashboard.
//! - [`config`]: TOML + env + CLI, validated once into an immutable [`config::Config`].
//! - [`ingest`]: listener (bind / systemd activation), connections, framing, replies, peers.
//! - [`event`]: parse, sanitize, fingerprint, classify, occurrence table, record encoding.
//! - [`limit`]: rate limits and the duplicate policy (local, Redis-shared behind a breaker).
//! - [`ring`]: the bounded queue between ingest and the writer.
//! - [`sink`]: the writer thread and the log file.
//! - [`stats`]: counters and histograms shared by all stages.
//! - [`suppress`]: per-fingerprint counts of suppressed events, written as `suppressed` records.
//! - [`notice`]: `daemon` records posted by background subsystems for the writer.
//! - [`breaker`]: the circuit breaker around outbound calls (Redis, the LLM endpoint).
//! - [`memory`]: the memory pressure level every bounded structure listens to.
//! - [`history`]: the last events, for `/recent`.
//! - [`app`]: the composition root, SIGHUP reload and the shutdown sequence.
//! - [`notify`]: systemd readiness, status and watchdog.
//! - [`ctl`]: `qerrorsctl`'s commands, one file each (`tail` follows the log across rotation),
//!   and [`ctl::client`], the client side of the protocol.

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
pub mod event;
pub mod history;
pub mod ingest;
pub mod json;
pub mod limit;
pub mod memory;
pub mod notice;
pub mod notify;
pub mod protocol;
pub mod ring;
pub mod sink;
pub mod stats;
pub mod suppress;
