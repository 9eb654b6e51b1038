//! Events: parse → validate → sanitize → enrich → fingerprint → classify → encode.
//!
//! [`Pipeline::process`] turns one client line into one enriched log record appended to the
//! caller's batch buffer, or a [`parse::ParseError`]. It runs on the connection's task, so
//! encoding is spread over the runtime's workers and the writer thread only copies bytes.

pub mod classify;
pub mod fingerprint;
pub mod level;
pub mod parse;
pub mod record;
pub mod sanitize;
pub mod table;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{BufMut, BytesMut};
use ulid::Ulid;

use crate::config;
use crate::json::{put_str, truncate};
use fingerprint::Fingerprint;
use level::Level;
use parse::ParseError;
use record::put_u64;
use sanitize::Sanitizer;
use table::FingerprintTable;

/// Per-connection facts written into every record of that connection, encoded once.
#[derive(Debug, Clone)]
pub struct ConnMeta {
    /// The `peer` object, JSON.
    pub peer_json: Box<[u8]>,
    /// Default `service` (the peer's process name), as a quoted JSON string.
    pub service_json: Box<[u8]>,
    /// The same, plain.
    pub service: Box<str>,
    /// The peer's uid (0 when unknown), for `uid` rate limits.
    pub uid: u32,
}

/// Receive time of one read from a socket; every line of that read shares it.
#[derive(Debug, Clone)]
pub struct Received {
    pub time: SystemTime,
    pub unix_ns: u64,
    pub rfc3339: String,
}

impl Received {
    pub fn now() -> Self {
        let time = SystemTime::now();
        Self {
            time,
            unix_ns: record::unix_nanos(time),
            rfc3339: record::rfc3339_micros(time),
        }
    }
}

/// Per-connection mutable state of the pipeline (no sharing, no locks).
#[derive(Default)]
pub struct ConnState {
    /// Monotonic ULIDs within the connection.
    pub ids: ulid::Generator,
    pub stacks: fingerprint::StackCache,
    /// Counts of the current read, handed to [`crate::stats::Stats::add`] per batch.
    pub tally: crate::stats::Tally,
    /// Events suppressed in the current read, merged into [`crate::stats::Stats::suppressed`].
    pub suppressed: crate::suppress::SuppressTally,
    /// Memory pressure level for the current read (set by the connection once per read).
    pub pressure: crate::memory::Pressure,
    /// Low-severity events seen under pressure, for 1-in-N sampling.
    pub sampled: u32,
    /// Advice cache hits of the current read (added to the cache's counter per read).
    pub advice_hits: u64,
}

/// What the connection needs to know about an accepted event.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    pub id: Ulid,
    pub ack: bool,
    pub level: Level,
    pub fingerprint: Fingerprint,
    /// `Some`: the event was suppressed (counted in `state.suppressed`, nothing appended to
    /// `out`, `id` is nil); the client gets `rate_limited` if it asked for an ack.
    pub suppressed: Option<crate::suppress::Reason>,
}

/// Shared, read-only (but for the fingerprint table's interior counters) event processing.
pub struct Pipeline {
    sanitizer: Sanitizer,
    /// `"host":"…",` fragment.
    host_field: Box<[u8]>,
    table: Arc<FingerprintTable>,
    /// Rate limits and the duplicate policy; kept across reloads (see [`Pipeline::with_limiter`]).
    limiter: Arc<crate::limit::Limiter>,
    /// Fix advice for new fingerprints (`None`: analysis off).
    analysis: Option<crate::analysis::AnalysisHandle>,
}

impl Pipeline {
    pub fn new(cfg: &config::Config) -> Result<Self, sanitize::SanitizeError> {
        let table = Arc::new(FingerprintTable::new(
            cfg.event.max_fingerprints.get(),
            cfg.event.occurrence_window,
        ));
        Self::with_table(cfg, table)
    }

    /// A pipeline for a reloaded config that keeps counting occurrences in `table`.
    pub fn with_table(
        cfg: &config::Config,
        table: Arc<FingerprintTable>,
    ) -> Result<Self, sanitize::SanitizeError> {
        let mut host = BytesMut::new();
        host.extend_from_slice(b"\"host\":");
        put_str(&mut host, &cfg.event.host);
        Ok(Self {
            sanitizer: Sanitizer::new(&cfg.sanitize.keys, &cfg.sanitize.patterns)?,
            host_field: host.to_vec().into_boxed_slice(),
            table,
            limiter: Arc::new(crate::limit::Limiter::disabled()),
            analysis: None,
        })
    }

    /// Uses `limiter` (built by the composition root, shared with its sync task).
    pub fn with_limiter(mut self, limiter: Arc<crate::limit::Limiter>) -> Self {
        self.limiter = limiter;
        self
    }

    pub fn limiter(&self) -> &Arc<crate::limit::Limiter> {
        &self.limiter
    }

    /// Sends new fingerprints (and those whose advice expired) to analysis.
    pub fn with_analysis(mut self, analysis: Option<crate::analysis::AnalysisHandle>) -> Self {
        self.analysis = analysis;
        self
    }

    pub fn analysis(&self) -> Option<&crate::analysis::AnalysisHandle> {
        self.analysis.as_ref()
    }

    pub fn fingerprints(&self) -> &Arc<FingerprintTable> {
        &self.table
    }

    /// Processes one line (UTF-8, no newline). On success one record line (with `\n`) has been
    /// appended to `out`; on error `out` is unchanged.
    pub fn process(
        &self,
        line: &str,
        meta: &ConnMeta,
        rx: &Received,
        state: &mut ConnState,
        out: &mut BytesMut,
    ) -> Result<Accepted, ParseError> {
        let ev = parse::parse(line)?;
        let s = &self.sanitizer;

        // One prefilter pass over the whole line decides whether any field needs a look.
        let clean = s.line_is_clean(line);
        let (message, name, stack, context, tags) = if clean {
            (
                ev.message,
                ev.name,
                ev.stack,
                ev.context.map(Cow::Borrowed),
                ev.tags.map(Cow::Borrowed),
            )
        } else {
            (
                redact(s.redact_text(&ev.message), ev.message),
                ev.name.map(|n| redact(s.redact_text(&n), n)),
                ev.stack
                    .map(|st| s.redact_escaped(&st).map_or(st, Cow::Owned)),
                ev.context.map(|c| raw_redact(s, c)),
                ev.tags.map(|t| raw_redact(s, t)),
            )
        };
        let extra = if ev.extra.is_empty() {
            None
        } else {
            let mut obj = BytesMut::with_capacity(64);
            obj.put_u8(b'{');
            for (i, (k, v)) in ev.extra.iter().enumerate() {
                if i > 0 {
                    obj.put_u8(b',');
                }
                put_str(&mut obj, k);
                obj.put_u8(b':');
                obj.extend_from_slice(v.as_bytes());
            }
            obj.put_u8(b'}');
            // Built from valid JSON pieces, so valid UTF-8.
            let text = String::from_utf8(obj.to_vec()).unwrap_or_default();
            Some(match clean {
                true => text,
                false => s.redact_json(&text).unwrap_or(text),
            })
        };

        let fp = if ev.fingerprint.is_empty() {
            let digest = state.stacks.digest(stack.as_deref());
            fingerprint::compute_with(name.as_deref(), &message, digest)
        } else {
            let parts: Vec<&str> = ev.fingerprint.iter().map(|p| p.as_ref()).collect();
            fingerprint::from_client(&parts)
        };
        // Memory pressure: debug/info events are sampled; warn+ and acked ones always kept.
        if ev.level < Level::Warn
            && !ev.ack
            && !crate::memory::keep_sampled(state.pressure, &mut state.sampled)
        {
            state
                .suppressed
                .count(fp, crate::suppress::Reason::Pressure);
            return Ok(Accepted {
                id: Ulid::nil(),
                ack: false,
                level: ev.level,
                fingerprint: fp,
                suppressed: Some(crate::suppress::Reason::Pressure),
            });
        }
        // Admission: decided before classification and encoding, so suppressed events are cheap.
        let service = ev.service.as_deref().unwrap_or(&meta.service);
        if let Some(reason) = self.limiter.decide(fp, service, meta.uid, rx.unix_ns) {
            state.suppressed.count(fp, reason);
            return Ok(Accepted {
                id: Ulid::nil(),
                ack: ev.ack,
                level: ev.level,
                fingerprint: fp,
                suppressed: Some(reason),
            });
        }
        let (class, severity) = classify::classify(ev.level, name.as_deref(), &message);
        let seen = self.table.observe(fp, rx.unix_ns, || table::FpMeta {
            class,
            severity,
            level: ev.level,
            service: truncate(
                ev.service.as_deref().unwrap_or(&meta.service),
                table::NAME_SAMPLE,
            )
            .into(),
            name: truncate(name.as_deref().unwrap_or(""), table::NAME_SAMPLE).into(),
            message: truncate(&message, table::MESSAGE_SAMPLE).into(),
        });
        state.tally.count(
            ev.level,
            class,
            severity,
            ev.service.as_deref().unwrap_or(&meta.service),
        );
        let id = state
            .ids
            .generate_from_datetime(rx.time)
            .unwrap_or_else(|_| Ulid::from_datetime(rx.time));
        if let Some(a) = &self.analysis {
            // What the table knows, else a cache lookup; on a miss a non-blocking try_send of
            // an owned, capped job.
            let known = a.offer_seen(
                fp,
                rx.unix_ns,
                seen.advice_until_ns,
                &mut state.advice_hits,
                || {
                    let service = ev.service.as_deref().unwrap_or(&meta.service);
                    crate::analysis::Job::new(
                        fp,
                        id.to_string(),
                        name.as_deref(),
                        &message,
                        stack.as_deref(),
                        service,
                        class,
                    )
                },
            );
            if let Some(until) = known {
                self.table.advice_known_until(fp, until);
            }
        }

        // Encode. Field order is part of the documented format.
        out.reserve(line.len() + 512 + meta.peer_json.len());
        out.extend_from_slice(b"{\"kind\":\"event\",\"id\":\"");
        let mut idbuf = [0u8; ulid::ULID_LEN];
        out.extend_from_slice(id.array_to_str(&mut idbuf).as_bytes());
        out.extend_from_slice(b"\",\"received\":\"");
        out.extend_from_slice(rx.rfc3339.as_bytes());
        out.extend_from_slice(b"\",\"ts\":\"");
        match ev.ts {
            Some(parse::Timestamp::UnixNanos(n)) => {
                record::put_rfc3339_micros(out, record::system_time(n))
            }
            None => out.extend_from_slice(rx.rfc3339.as_bytes()),
        }
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(ev.level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"service\":");
        match &ev.service {
            Some(svc) => put_str(out, svc),
            None => out.extend_from_slice(&meta.service_json),
        }
        if let Some(n) = &name {
            out.extend_from_slice(b",\"name\":");
            put_str(out, n);
        }
        if let Some(c) = &ev.code {
            out.extend_from_slice(b",\"code\":");
            match clean {
                true => put_str(out, c),
                false => put_str(out, s.redact_text(c).as_deref().unwrap_or(c)),
            }
        }
        out.extend_from_slice(b",\"message\":");
        put_str(out, &message);
        out.extend_from_slice(b",\"fingerprint\":\"");
        out.extend_from_slice(&fp.to_hex());
        out.extend_from_slice(b"\",\"class\":\"");
        out.extend_from_slice(class.as_str().as_bytes());
        out.extend_from_slice(b"\",\"severity\":\"");
        out.extend_from_slice(severity.as_str().as_bytes());
        out.extend_from_slice(b"\",\"occurrence\":");
        put_u64(out, seen.occurrence);
        out.put_u8(b',');
        out.extend_from_slice(&self.host_field);
        out.extend_from_slice(b",\"peer\":");
        out.extend_from_slice(&meta.peer_json);
        if let Some(st) = &stack {
            out.extend_from_slice(b",\"stack\":\"");
            out.extend_from_slice(st.as_bytes());
            out.put_u8(b'"');
        }
        for (key, val) in [
            (&b",\"context\":"[..], &context),
            (b",\"tags\":", &tags),
            (b",\"extra\":", &extra.map(Cow::Owned)),
        ] {
            if let Some(v) = val {
                out.extend_from_slice(key);
                out.extend_from_slice(v.as_bytes());
            }
        }
        out.extend_from_slice(b"}\n");
        Ok(Accepted {
            id,
            ack: ev.ack,
            level: ev.level,
            fingerprint: fp,
            suppressed: None,
        })
    }
}

fn redact<'a>(changed: Option<String>, orig: Cow<'a, str>) -> Cow<'a, str> {
    changed.map_or(orig, Cow::Owned)
}

fn raw_redact<'a>(s: &Sanitizer, raw: &'a str) -> Cow<'a, str> {
    s.redact_json(raw).map_or(Cow::Borrowed(raw), Cow::Owned)
}

/// Encodes a `{"kind":"daemon",...}` record. `fields` are extra `"key":value` JSON members.
pub fn daemon_record(out: &mut BytesMut, msg: &str, fields: &[(&str, serde_json::Value)]) {
    let mut obj = serde_json::Map::new();
    obj.insert("kind".into(), "daemon".into());
    obj.insert(
        "time".into(),
        record::rfc3339_micros(SystemTime::now()).into(),
    );
    obj.insert("msg".into(), msg.into());
    for (k, v) in fields {
        obj.insert((*k).into(), v.clone());
    }
    json_line(out, &serde_json::Value::Object(obj));
}

/// Appends any serializable value as one line.
pub fn json_line(out: &mut BytesMut, v: &serde_json::Value) {
    let text = v.to_string();
    out.extend_from_slice(text.as_bytes());
    out.put_u8(b'\n');
}
