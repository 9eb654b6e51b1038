//! Configuration: raw TOML structs (`*Config`, serde, every field documented) validated once at
//! start into the immutable [`Config`] the daemon runs with.
//!
//! Precedence, lowest first: embedded defaults → `--config FILE` → `QERRORS_<SECTION>_<KEY>`
//! environment variables (e.g. `QERRORS_RING_OVERFLOW=drop_newest`) → command-line overrides.
//! Errors name the source and the key path (`ring.capacity_events: must be at least 1`).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::event::sanitize;
use check::{exact_bytes, invalid, nonzero, parse_mode, positive};
pub use live::{merge_live, restart_required};

pub mod check;
pub mod live;
pub mod paths;

pub use paths::{default_log_path, default_socket_path};

/// Environment variables with this prefix override config keys: `QERRORS_<SECTION>_<KEY>`.
pub const ENV_PREFIX: &str = "QERRORS_";

/// Sections that env overrides may address (the first word after the prefix).
const SECTIONS: &[&str] = &[
    "ingest", "event", "sanitize", "ring", "sink", "control", "limit", "fleet", "analysis",
    "memory",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: cannot read: {err}")]
    Read {
        source_name: String,
        err: std::io::Error,
    },
    /// A value of the wrong type or shape; the message names its key (`ingest.max_line_bytes: …`).
    #[error("{source_name}: {}", check::toml_message(.err))]
    Parse {
        source_name: String,
        err: toml::de::Error,
    },
    /// The file is not TOML. Only the position and the parser's message: toml's own text quotes
    /// the offending line, which may hold a secret pasted in the wrong place (an unquoted key
    /// after `llm_api_key_env =`), and this error reaches the log and `/stats` on SIGHUP.
    #[error("{source_name}: line {line}, column {column}: {msg}")]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("environment {var}: {msg}")]
    Env { var: String, msg: String },
    #[error("{key}: {msg}")]
    Invalid { key: &'static str, msg: String },
    /// A sanitizer setting; the message starts with its key path (`sanitize.keys[2]: …`).
    #[error("{0}")]
    Sanitize(#[from] sanitize::SanitizeError),
    /// A `[limit]` setting; the message starts with its key path.
    #[error("{0}")]
    Limit(#[from] crate::limit::rules::LimitConfigError),
}

/// The whole file. Every section is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub ingest: IngestConfig,
    pub event: EventConfig,
    pub sanitize: SanitizeConfig,
    pub ring: RingConfig,
    pub sink: SinkConfig,
    pub control: ControlConfig,
    pub limit: crate::limit::rules::LimitConfig,
    pub fleet: crate::fleet::config::FleetConfig,
    pub analysis: crate::analysis::config::AnalysisConfig,
    pub memory: crate::memory::MemoryConfig,
}

/// `[ingest]`: the Unix socket clients write to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Socket path. Default: `/run/qerrors.sock` as root, else `$XDG_RUNTIME_DIR/qerrors.sock`,
    /// else `/tmp/qerrors-<uid>/qerrors.sock` (see [`paths`]). Ignored when systemd passes a
    /// listening socket (`LISTEN_FDS`).
    pub socket: Option<PathBuf>,
    /// Permission bits of the socket file, octal string.
    pub socket_mode: String,
    /// Group owning the socket file (name); empty = leave as created.
    pub socket_group: String,
    /// Maximum concurrent client connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one uid may hold at once; a connection beyond it is answered
    /// `too_many_connections` and closed (counted), so one user cannot take every slot.
    pub max_connections_per_uid: usize,
    /// Longest accepted line (one event). Longer lines are rejected with `line_too_long` and
    /// skipped up to the next newline; the connection stays usable.
    #[serde(
        serialize_with = "exact_bytes",
        deserialize_with = "crate::config::check::byte_size"
    )]
    pub max_line_bytes: ByteSize,
    /// Read size per connection; also the largest batch one connection hands to the ring at once.
    #[serde(
        serialize_with = "exact_bytes",
        deserialize_with = "crate::config::check::byte_size"
    )]
    pub read_buffer_bytes: ByteSize,
    /// Close a connection that sends nothing for this long.
    #[serde(with = "crate::config::check::duration")]
    pub idle_timeout: Duration,
    /// A started line must be completed within this time (slow-client protection), else the
    /// connection is closed with a `read_timeout` reply.
    #[serde(with = "crate::config::check::duration")]
    pub read_timeout: Duration,
    /// Per-connection bound on reply bytes waiting for a client that does not read; replies
    /// beyond it are dropped (counted), never buffered without bound and never blocking ingest.
    #[serde(
        serialize_with = "exact_bytes",
        deserialize_with = "crate::config::check::byte_size"
    )]
    pub reply_buffer_bytes: ByteSize,
    /// On shutdown: how long to keep reading what clients already sent and to wait for acks.
    #[serde(with = "crate::config::check::duration")]
    pub shutdown_grace: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            socket: None,
            socket_mode: "0660".into(),
            socket_group: String::new(),
            max_connections: 1024,
            max_connections_per_uid: 512,
            max_line_bytes: ByteSize::kib(256),
            read_buffer_bytes: ByteSize::kib(64),
            idle_timeout: Duration::from_secs(300),
            read_timeout: Duration::from_secs(30),
            reply_buffer_bytes: ByteSize::kib(64),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// `[event]`: enrichment and grouping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventConfig {
    /// Host name written in every record; empty = the system host name.
    pub host: String,
    /// Window for the `occurrence` counter of each fingerprint.
    #[serde(with = "crate::config::check::duration")]
    pub occurrence_window: Duration,
    /// Bound on fingerprints tracked for `occurrence`; least recently seen are evicted first.
    pub max_fingerprints: usize,
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            occurrence_window: Duration::from_secs(60),
            max_fingerprints: 100_000,
        }
    }
}

/// `[sanitize]`: secrets that never reach the log (see docs/sanitizing.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SanitizeConfig {
    /// Sensitive key words; replaces the built-in list when set.
    pub keys: Vec<String>,
    /// Extra regular expressions; every match is replaced by `[REDACTED]`.
    pub patterns: Vec<String>,
    /// Redact the local part of email addresses (`[REDACTED]@example.com`). Off by default:
    /// an address is often what an error is about, and it is personal data rather than a
    /// credential.
    pub emails: bool,
}

impl Default for SanitizeConfig {
    fn default() -> Self {
        Self {
            keys: sanitize::DEFAULT_KEYS
                .iter()
                .map(|k| k.to_string())
                .collect(),
            patterns: Vec::new(),
            emails: false,
        }
    }
}

/// What ingest does when the ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Stop reading sockets until the writer frees space; clients block in their kernel buffer.
    Backpressure,
    /// Drop the newest events, counted and written as `dropped` records.
    DropNewest,
}

/// `[ring]`: the bounded queue between ingest and the writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RingConfig {
    /// Maximum events queued.
    pub capacity_events: usize,
    /// Maximum encoded bytes queued.
    #[serde(
        serialize_with = "exact_bytes",
        deserialize_with = "crate::config::check::byte_size"
    )]
    pub capacity_bytes: ByteSize,
    /// `backpressure` or `drop_newest`.
    pub overflow: OverflowPolicy,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            capacity_events: 65_536,
            capacity_bytes: ByteSize::mib(16),
            overflow: OverflowPolicy::Backpressure,
        }
    }
}

/// When the log file is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Never (the kernel writes back when it likes); survives a daemon crash, not power loss.
    Never,
    /// Every `sink.fsync_interval` when something was written.
    Interval,
    /// After every batch, before acks are sent.
    Always,
}

/// `[sink]`: the enriched log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// Log file. Default: `/var/log/qerrors/errors.log` as root, else `./qerrors-logs/errors.log`.
    pub path: Option<PathBuf>,
    /// Also write every record to standard output.
    pub stdout: bool,
    /// Target size of one write; the writer gathers queued batches up to this.
    #[serde(
        serialize_with = "exact_bytes",
        deserialize_with = "crate::config::check::byte_size"
    )]
    pub batch_bytes: ByteSize,
    /// Rotate when the file would grow past this size; 0 turns rotation off.
    #[serde(
        serialize_with = "exact_bytes",
        deserialize_with = "crate::config::check::byte_size"
    )]
    pub rotate_bytes: ByteSize,
    /// Rotated files kept (`errors.log.1` … `errors.log.N`).
    pub rotate_keep: usize,
    /// `never`, `interval` or `always`.
    pub fsync: FsyncPolicy,
    /// Period for `fsync = "interval"`.
    #[serde(with = "crate::config::check::duration")]
    pub fsync_interval: Duration,
    /// How often counts of dropped/rejected events are written as `dropped` records (only
    /// while there are such counts; after a quiet stretch the first record may wait for the
    /// writer's next path check, `reopen_check_interval`, when that is longer).
    #[serde(with = "crate::config::check::duration")]
    pub summary_interval: Duration,
    /// How often the writer checks that `path` still names the file it writes to; if the file
    /// was deleted or replaced behind its back (rotation without SIGHUP, an operator removing
    /// it), it is reopened, so records never go into an unlinked file.
    #[serde(with = "crate::config::check::duration")]
    pub reopen_check_interval: Duration,
    /// Permission bits of new log files, octal string.
    pub file_mode: String,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            path: None,
            stdout: false,
            batch_bytes: ByteSize::kib(128),
            rotate_bytes: ByteSize::mib(256),
            rotate_keep: 5,
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_secs(1),
            summary_interval: Duration::from_secs(1),
            reopen_check_interval: Duration::from_secs(1),
            file_mode: "0640".into(),
        }
    }
}

/// `[control]`: the loopback control plane (metrics, health, stats, dashboard).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Address of the control server (`127.0.0.1:0` picks a free port, written in the start
    /// record); empty turns the control plane off.
    pub listen: String,
    /// Serve on an address that is not loopback. Off: such a `listen` is an error, since
    /// whoever reaches the port reads every event.
    pub allow_remote: bool,
    /// Host names (besides `localhost` and the loopback and listen addresses) that requests may
    /// name in `Host`; any other answers 421, which stops DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Connections served at once; more are closed as they arrive (counted).
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (a half-sent request
    /// included); no connection lives longer than 6 times this.
    #[serde(with = "crate::config::check::duration")]
    pub idle_timeout: Duration,
    /// The control socket (`qerrorsctl`'s way in, authorized per request by the peer's uid).
    /// Empty: next to the ingest socket, `<dir>/<name>-control.sock` (`/run/qerrors.sock` →
    /// `/run/qerrors-control.sock`).
    pub socket: String,
    /// Permission bits of the control socket file.
    pub socket_mode: String,
    /// Group of the control socket file; empty: `ingest.socket_group`.
    pub socket_group: String,
    /// Members of this group (besides root and the daemon's own user) see every event through
    /// the control socket; empty: nobody else.
    pub admin_group: String,
    /// What a connecting user who is no admin sees: `own` (events whose `peer.uid` is theirs)
    /// or `none`.
    pub others: Others,
    /// File holding the token that TCP requests for content (and the dashboard) must present.
    /// Empty: next to the control socket, `<dir>/<name>-control.token`. Created (0640, group
    /// `admin_group`) with a random token when missing.
    pub token_file: String,
    /// `/metrics` carries `service` labels (client-written text) only when this is on.
    pub metrics_services: bool,
}

/// What non-admin users see through the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Others {
    /// Their own events (`peer.uid` equal to theirs).
    #[default]
    Own,
    /// No events; counters and health only.
    None,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            allow_remote: false,
            allowed_hosts: Vec::new(),
            max_connections: 64,
            idle_timeout: Duration::from_secs(10),
            socket: String::new(),
            socket_mode: "0660".into(),
            socket_group: String::new(),
            admin_group: String::new(),
            others: Others::Own,
            token_file: String::new(),
            metrics_services: false,
        }
    }
}

/// Who may use the control plane, and how (validated `[control]` access keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlAccess {
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub socket_group: Option<String>,
    pub admin_group: Option<String>,
    pub others: Others,
    pub token_file: PathBuf,
    pub metrics_services: bool,
}

/// `<dir>/<name>-control.sock` next to the ingest socket `<dir>/<name>.sock`.
pub fn control_socket_for(ingest: &Path) -> PathBuf {
    sibling(ingest, "-control.sock")
}

/// `<dir>/<name>-control.token` next to the control socket's ingest socket.
pub fn token_file_for(ingest: &Path) -> PathBuf {
    sibling(ingest, "-control.token")
}

fn sibling(ingest: &Path, suffix: &str) -> PathBuf {
    let name = ingest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "qerrors.sock".into());
    let stem = name.strip_suffix(".sock").unwrap_or(&name);
    ingest.with_file_name(format!("{stem}{suffix}"))
}

/// The control server's limits and the names it answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlGuard {
    pub allowed_hosts: Vec<String>,
    pub max_connections: NonZeroUsize,
    pub idle_timeout: Duration,
}

/// Validated, immutable configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub ingest: Ingest,
    pub event: Event,
    pub sanitize: SanitizeConfig,
    pub ring: Ring,
    pub sink: Sink,
    /// `None`: control plane off.
    pub control: Option<std::net::SocketAddr>,
    /// How the control server guards itself (`[control]` besides `listen`).
    pub control_guard: ControlGuard,
    /// The control socket and who sees what.
    pub control_access: ControlAccess,
    pub limit: crate::limit::rules::Settings,
    /// The fleet registry (`redis_url: None`: off).
    pub fleet: crate::fleet::config::Fleet,
    pub analysis: crate::analysis::config::Analysis,
    pub memory: crate::memory::Memory,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ingest {
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub socket_group: Option<String>,
    pub max_connections: NonZeroUsize,
    /// Connections one uid may hold at once (root's included).
    pub max_connections_per_uid: NonZeroUsize,
    pub max_line_bytes: NonZeroUsize,
    pub read_buffer_bytes: NonZeroUsize,
    pub idle_timeout: Duration,
    pub read_timeout: Duration,
    pub reply_buffer_bytes: usize,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub host: String,
    pub occurrence_window: Duration,
    pub max_fingerprints: NonZeroUsize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ring {
    pub capacity_events: NonZeroUsize,
    pub capacity_bytes: NonZeroUsize,
    pub overflow: OverflowPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    pub path: PathBuf,
    pub stdout: bool,
    pub batch_bytes: NonZeroUsize,
    pub rotate_bytes: u64,
    pub rotate_keep: usize,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    pub summary_interval: Duration,
    pub reopen_check_interval: Duration,
    pub file_mode: u32,
}

/// Command-line overrides, applied last.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub socket: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub control: Option<String>,
}

impl RawConfig {
    /// Loads the file (if any), then applies `QERRORS_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<RawConfig, ConfigError> {
        let (mut table, source_name) = match path {
            Some(p) => {
                let name = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|err| ConfigError::Read {
                    source_name: name.clone(),
                    err,
                })?;
                let table: toml::Table = toml::from_str(&text)
                    .map_err(|err| check::syntax_error(name.clone(), &text, &err))?;
                (table, name)
            }
            None => (toml::Table::new(), "embedded defaults".to_string()),
        };
        let mut any_env = false;
        // Legacy names (`QERRORS_SOCKET`, …) count as their new name unless that is set too.
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        for (new, legacy) in paths::env::ALIASES {
            if !env.iter().any(|(k, _)| k == new) {
                if let Some(entry) = env.iter_mut().find(|(k, v)| k == legacy && !v.is_empty()) {
                    entry.0 = new.to_string();
                }
            }
        }
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let Some((section, key)) = rest.split_once('_') else {
                continue;
            };
            if !SECTIONS.contains(&section) {
                // Not a config key (e.g. QERRORS_LOG_LEVEL for the daemon's own log filter).
                continue;
            }
            any_env = true;
            let parsed = parse_env_value(&value);
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(key.to_string(), parsed);
                }
                _ => {
                    return Err(ConfigError::Env {
                        var,
                        msg: format!("`{section}` is not a table"),
                    })
                }
            }
        }
        let source_name = if any_env {
            format!("{source_name} + QERRORS_* environment")
        } else {
            source_name
        };
        toml::Value::Table(table)
            .try_into()
            .map_err(|err| ConfigError::Parse { source_name, err })
    }

    /// Validates into the runtime [`Config`].
    pub fn validate(self, overrides: &Overrides) -> Result<Config, ConfigError> {
        let i = self.ingest;
        let socket = overrides
            .socket
            .clone()
            .or(i.socket)
            .unwrap_or_else(default_socket_path);
        if socket.as_os_str().is_empty() {
            return Err(invalid("ingest.socket", "must not be empty"));
        }
        let max_line = check::at_least_bytes(
            "ingest.max_line_bytes",
            i.max_line_bytes,
            check::MIN_LINE_BYTES as u64,
            "64 bytes",
        )? as usize;
        let read_buf = check::at_least_bytes(
            "ingest.read_buffer_bytes",
            i.read_buffer_bytes,
            check::MIN_READ_BUFFER_BYTES as u64,
            "512 bytes",
        )? as usize;
        let ingest = Ingest {
            socket,
            socket_mode: parse_mode("ingest.socket_mode", &i.socket_mode)?,
            socket_group: (!i.socket_group.is_empty()).then_some(i.socket_group),
            max_connections: nonzero("ingest.max_connections", i.max_connections)?,
            max_connections_per_uid: nonzero(
                "ingest.max_connections_per_uid",
                i.max_connections_per_uid,
            )?,
            max_line_bytes: nonzero("ingest.max_line_bytes", max_line)?,
            read_buffer_bytes: nonzero("ingest.read_buffer_bytes", read_buf)?,
            idle_timeout: positive("ingest.idle_timeout", i.idle_timeout)?,
            read_timeout: positive("ingest.read_timeout", i.read_timeout)?,
            reply_buffer_bytes: i.reply_buffer_bytes.as_u64() as usize,
            shutdown_grace: i.shutdown_grace,
        };

        let e = self.event;
        let host = if e.host.is_empty() {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
        } else {
            e.host
        };
        let event = Event {
            host,
            occurrence_window: positive("event.occurrence_window", e.occurrence_window)?,
            max_fingerprints: nonzero("event.max_fingerprints", e.max_fingerprints)?,
        };

        // Compile once here so a bad pattern fails validation, naming its index.
        sanitize::Sanitizer::new(
            &self.sanitize.keys,
            &self.sanitize.patterns,
            self.sanitize.emails,
        )?;

        let r = self.ring;
        let ring = Ring {
            capacity_events: nonzero("ring.capacity_events", r.capacity_events)?,
            capacity_bytes: nonzero("ring.capacity_bytes", r.capacity_bytes.as_u64() as usize)?,
            overflow: r.overflow,
        };
        if ring.capacity_bytes.get() < max_line {
            return Err(invalid(
                "ring.capacity_bytes",
                "must be at least ingest.max_line_bytes (one event must fit)",
            ));
        }

        let s = self.sink;
        let path = overrides
            .log
            .clone()
            .or(s.path)
            .unwrap_or_else(default_log_path);
        if path.file_name().is_none() {
            return Err(invalid("sink.path", "must name a file"));
        }
        let sink = Sink {
            path,
            stdout: s.stdout,
            batch_bytes: nonzero("sink.batch_bytes", s.batch_bytes.as_u64() as usize)?,
            rotate_bytes: s.rotate_bytes.as_u64(),
            rotate_keep: s.rotate_keep,
            fsync: s.fsync,
            fsync_interval: positive("sink.fsync_interval", s.fsync_interval)?,
            summary_interval: positive("sink.summary_interval", s.summary_interval)?,
            reopen_check_interval: positive("sink.reopen_check_interval", s.reopen_check_interval)?,
            file_mode: parse_mode("sink.file_mode", &s.file_mode)?,
        };
        if sink.rotate_bytes > 0 && sink.rotate_keep == 0 {
            return Err(invalid(
                "sink.rotate_keep",
                "must be at least 1 when rotation is on",
            ));
        }

        let listen = overrides
            .control
            .clone()
            .unwrap_or_else(|| self.control.listen.clone());
        let control = if listen.trim().is_empty() {
            None
        } else {
            Some(listen.parse().map_err(|e| {
                invalid(
                    "control.listen",
                    format!("`{listen}` is not an address:port: {e}"),
                )
            })?)
        };

        if let Some(addr) = control {
            let addr: std::net::SocketAddr = addr;
            if !addr.ip().is_loopback() && !self.control.allow_remote {
                return Err(invalid(
                    "control.listen",
                    format!(
                        "{addr} is not a loopback address: whoever reaches it reads every event; \
                         set control.allow_remote = true to serve it anyway"
                    ),
                ));
            }
        }
        let control_guard = ControlGuard {
            allowed_hosts: self
                .control
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            max_connections: nonzero("control.max_connections", self.control.max_connections)?,
            idle_timeout: positive("control.idle_timeout", self.control.idle_timeout)?,
        };

        let c = &self.control;
        let control_access = ControlAccess {
            socket: if c.socket.trim().is_empty() {
                control_socket_for(&ingest.socket)
            } else {
                PathBuf::from(c.socket.trim())
            },
            socket_mode: parse_mode("control.socket_mode", &c.socket_mode)?,
            socket_group: Some(c.socket_group.trim().to_string())
                .filter(|g| !g.is_empty())
                .or_else(|| ingest.socket_group.clone()),
            admin_group: Some(c.admin_group.trim().to_string()).filter(|g| !g.is_empty()),
            others: c.others,
            token_file: if c.token_file.trim().is_empty() {
                token_file_for(&ingest.socket)
            } else {
                PathBuf::from(c.token_file.trim())
            },
            metrics_services: c.metrics_services,
        };
        if control_access.socket == ingest.socket {
            return Err(invalid("control.socket", "must differ from ingest.socket"));
        }

        let analysis = self.analysis.validate(&sink.path)?;
        let memory = self.memory.validate()?;
        let limit = self.limit.validate()?;
        let fleet = self.fleet.validate(&limit)?;

        Ok(Config {
            ingest,
            event,
            sanitize: self.sanitize,
            ring,
            sink,
            control,
            control_guard,
            control_access,
            limit,
            fleet,
            analysis,
            memory,
        })
    }
}

/// An env value is read as a TOML value when it parses as one (`5`, `true`, `["a"]`), else as
/// a plain string (`drop_newest`, `10s`, `/var/log/x.log`).
fn parse_env_value(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

/// The documented example (`config.example.toml`): every key with its comment and its exact
/// default, as `qerrorsd --print-default-config` prints it. A test keeps it equal to the defaults.
pub const DEFAULT_TOML: &str = include_str!("../../config.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_validate() {
        let cfg = RawConfig::load(None, env(&[]))
            .unwrap()
            .validate(&Overrides::default())
            .unwrap();
        assert_eq!(cfg.ingest.max_line_bytes.get(), 256 * 1024);
        assert_eq!(cfg.ring.overflow, OverflowPolicy::Backpressure);
        assert_eq!(cfg.ingest.socket_mode, 0o660);
    }

    #[test]
    fn env_overrides_file_and_cli_overrides_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[ring]\noverflow = \"backpressure\"\ncapacity_events = 10\n[sink]\npath = \"/tmp/a.log\"\n",
        )
        .unwrap();
        let raw = RawConfig::load(
            Some(&f),
            env(&[
                ("QERRORS_RING_OVERFLOW", "drop_newest"),
                ("QERRORS_SINK_PATH", "/tmp/b.log"),
                ("QERRORS_INGEST_MAX_LINE_BYTES", "1024"),
                ("QERRORS_LOG_LEVEL", "debug"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        let over = Overrides {
            log: Some("/tmp/c.log".into()),
            ..Default::default()
        };
        let cfg = raw.validate(&over).unwrap();
        assert_eq!(cfg.ring.overflow, OverflowPolicy::DropNewest);
        assert_eq!(cfg.ring.capacity_events.get(), 10);
        assert_eq!(cfg.ingest.max_line_bytes.get(), 1024);
        assert_eq!(cfg.sink.path, PathBuf::from("/tmp/c.log"));
    }

    #[test]
    fn legacy_env_names_are_aliases_and_the_new_name_wins() {
        let legacy = env(&[
            ("QERRORS_SOCKET", "/tmp/legacy.sock"),
            ("QERRORS_CONTROL", "127.0.0.1:9999"),
            ("QERRORS_LOG_FILE", "/tmp/legacy.log"),
        ]);
        let cfg = RawConfig::load(None, legacy.clone())
            .unwrap()
            .validate(&Overrides::default())
            .unwrap();
        assert_eq!(cfg.ingest.socket, PathBuf::from("/tmp/legacy.sock"));
        assert_eq!(cfg.control, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(cfg.sink.path, PathBuf::from("/tmp/legacy.log"));
        let mut both = legacy;
        both.extend(env(&[
            ("QERRORS_INGEST_SOCKET", "/tmp/new.sock"),
            ("QERRORS_CONTROL_LISTEN", "127.0.0.1:9998"),
            ("QERRORS_SINK_PATH", "/tmp/new.log"),
        ]));
        let cfg = RawConfig::load(None, both)
            .unwrap()
            .validate(&Overrides::default())
            .unwrap();
        assert_eq!(cfg.ingest.socket, PathBuf::from("/tmp/new.sock"));
        assert_eq!(cfg.control, Some("127.0.0.1:9998".parse().unwrap()));
        assert_eq!(cfg.sink.path, PathBuf::from("/tmp/new.log"));
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[sink]\nrotate_byts = 5\n").unwrap();
        let err = RawConfig::load(Some(&f), env(&[])).unwrap_err().to_string();
        assert!(err.contains("rotate_byts"), "{err}");
        assert!(err.contains("c.toml"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let raw = RawConfig::load(None, env(&[("QERRORS_RING_CAPACITY_EVENTS", "0")])).unwrap();
        let err = raw.validate(&Overrides::default()).unwrap_err().to_string();
        assert!(err.starts_with("ring.capacity_events"), "{err}");

        let raw = RawConfig::load(None, env(&[("QERRORS_INGEST_SOCKET_MODE", "rwx")])).unwrap();
        let err = raw.validate(&Overrides::default()).unwrap_err().to_string();
        assert!(err.starts_with("ingest.socket_mode"), "{err}");

        let raw = RawConfig::load(None, env(&[("QERRORS_SANITIZE_PATTERNS", "[\"(\"]")])).unwrap();
        let err = raw.validate(&Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("sanitize.patterns"), "{err}");
    }

    #[test]
    fn example_config_is_exactly_the_defaults() {
        let example: RawConfig = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(
            toml::to_string(&example).unwrap(),
            toml::to_string(&RawConfig::default()).unwrap()
        );
    }

    #[test]
    fn reload_applies_live_keys_and_names_restart_only_ones() {
        let old = RawConfig::default()
            .validate(&Overrides::default())
            .unwrap();
        let raw = RawConfig::load(
            None,
            env(&[
                ("QERRORS_RING_OVERFLOW", "drop_newest"),
                ("QERRORS_INGEST_READ_TIMEOUT", "7s"),
                ("QERRORS_SANITIZE_PATTERNS", "[\"CUST-[0-9]+\"]"),
                ("QERRORS_INGEST_SOCKET", "/tmp/other.sock"),
                ("QERRORS_SINK_FSYNC", "always"),
            ]),
        )
        .unwrap();
        let new = raw.validate(&Overrides::default()).unwrap();
        // The control socket and token sit next to the ingest socket: they move with it.
        assert_eq!(
            restart_required(&old, &new),
            [
                "ingest.socket",
                "sink",
                "control (socket, socket_mode, socket_group, admin_group, others, token_file, \
                 metrics_services)"
            ]
        );
        let applied = merge_live(&old, new);
        assert_eq!(applied.ring.overflow, OverflowPolicy::DropNewest);
        assert_eq!(applied.ingest.read_timeout, Duration::from_secs(7));
        assert_eq!(applied.sanitize.patterns, ["CUST-[0-9]+"]);
        assert_eq!(applied.ingest.socket, old.ingest.socket);
        assert_eq!(applied.sink, old.sink);
        assert!(restart_required(&old, &applied).is_empty());
    }

    #[test]
    fn default_toml_round_trips() {
        let parsed: RawConfig = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(parsed.ingest.max_connections, 1024);
        assert_eq!(parsed.ingest.max_line_bytes.as_u64(), 256 * 1024);
        assert_eq!(parsed.ring.capacity_bytes.as_u64(), 16 << 20);
        assert_eq!(parsed.analysis.cache_max_bytes.as_u64(), 8 << 20);
        // the comments come along: the example is what is printed
        assert!(DEFAULT_TOML.contains("# Unix socket clients write to."));
    }
}
