//! The pipeline: what happens to one client line between the connection that read it and the
//! batch the writer will write, as named steps in data-flow order.
//!
//! ```text
//! line ─ parse ─ sanitize ─ fingerprint ─ sample (memory pressure) ─ admit (limits)
//!      ─ classify ─ observe (occurrence table, fleet tally) ─ offer (analysis) ─ encode ─▶ batch
//! ```
//!
//! Suppression (pressure sampling, rate limits, the duplicate policy) is decided right after the
//! fingerprint, before classification and encoding, so a suppressed event costs little; it is
//! counted per fingerprint and reason and reaches the log as a `suppressed` record.
//!
//! [`Pipeline::process`] runs on the connection's task, so parsing and encoding are spread over
//! the runtime's workers and the writer thread only copies bytes. Per-read counts are kept in
//! the connection's [`ConnState`] (no sharing) and added to the shared counters once per read by
//! [`Pipeline::end_read`].
//!
//! `app` builds a pipeline from the config and its collaborators (occurrence table, limiter,
//! analysis, suppression counts); on reload it builds a new one with the same collaborators.

pub mod services;
pub mod table;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::BytesMut;
use ulid::Ulid;

use crate::analysis::{AnalysisHandle, Job};
use crate::config;
use crate::event::classify::{self, Class, Severity};
use crate::event::fingerprint::{self, Fingerprint, StackCache};
use crate::event::level::Level;
use crate::event::parse::{self, ParseError, RawEvent};
use crate::event::record::{self, EventRecord};
use crate::event::sanitize::{SanitizeError, Sanitizer};
use crate::event::{ConnMeta, Received};
use crate::fleet::{Deltas, FleetTally};
use crate::json::truncate;
use crate::limit::suppress::{Reason, SuppressTally, Suppressions};
use crate::limit::Limiter;
use crate::memory::{self, Pressure};
use crate::stats::{ShapeSeen, Stats, Tally};
use table::{FingerprintTable, FpMeta, Seen};

/// Per-connection mutable state of the pipeline (no sharing, no locks).
#[derive(Default)]
pub struct ConnState {
    /// Monotonic ULIDs within the connection.
    pub ids: ulid::Generator,
    pub stacks: StackCache,
    /// Counts of the current read, added to [`Stats`] by [`Pipeline::end_read`].
    pub tally: Tally,
    /// Events suppressed in the current read, merged into [`Suppressions`] per read.
    pub suppressed: SuppressTally,
    /// Memory pressure level for the current read (set by the connection once per read).
    pub pressure: Pressure,
    /// Low-severity events seen under pressure, for 1-in-N sampling.
    pub sampled: u32,
    /// Advice cache hits of the current read (added to the cache's counter per read).
    pub advice_hits: u64,
    /// Fleet registry counts of the current read, merged into [`Deltas`] per read.
    pub fleet: FleetTally,
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
    pub suppressed: Option<Reason>,
}

impl Accepted {
    fn suppressed(ev: &RawEvent<'_>, fp: Fingerprint, reason: Reason) -> Self {
        Accepted {
            id: Ulid::nil(),
            // Pressure-sampled events never asked for an ack (acked ones are always kept).
            ack: ev.ack,
            level: ev.level,
            fingerprint: fp,
            suppressed: Some(reason),
        }
    }
}

/// An event's fields after redaction: borrowed from the line unless a secret was found.
struct Clean<'a> {
    message: Cow<'a, str>,
    name: Option<Cow<'a, str>>,
    code: Option<Cow<'a, str>>,
    /// The client's `service`: it reaches the log, `/metrics` labels, rate-limit keys and the
    /// LLM prompt, so it is redacted like any text.
    service: Option<Cow<'a, str>>,
    /// Escaped body of the JSON string, as the client sent it.
    stack: Option<Cow<'a, str>>,
    context: Option<Cow<'a, str>>,
    tags: Option<Cow<'a, str>>,
    extra: Option<String>,
}

/// Shared, read-only event processing (the collaborators have their own interior state).
pub struct Pipeline {
    sanitizer: Sanitizer,
    /// `"host":"…"` member.
    host_field: Box<[u8]>,
    table: Arc<FingerprintTable>,
    limiter: Arc<Limiter>,
    /// Fix advice for new fingerprints (`None`: analysis off).
    analysis: Option<AnalysisHandle>,
    suppressions: Arc<Suppressions>,
    /// The fleet registry's deltas (`None`: fleet off).
    fleet: Option<Arc<Deltas>>,
}

impl Pipeline {
    /// A pipeline for `cfg` (sanitizer rules, host) over collaborators that outlive it: a
    /// reload builds a new pipeline with the same ones.
    pub fn new(
        cfg: &config::Config,
        table: Arc<FingerprintTable>,
        limiter: Arc<Limiter>,
        analysis: Option<AnalysisHandle>,
        suppressions: Arc<Suppressions>,
    ) -> Result<Self, SanitizeError> {
        Ok(Self {
            sanitizer: Sanitizer::new(
                &cfg.sanitize.keys,
                &cfg.sanitize.patterns,
                cfg.sanitize.emails,
            )?,
            host_field: record::host_field(&cfg.event.host),
            table,
            limiter,
            analysis,
            suppressions,
            fleet: None,
        })
    }

    /// This pipeline, counting accepted events for the fleet registry into `fleet`.
    pub fn with_fleet(mut self, fleet: Option<Arc<Deltas>>) -> Self {
        self.fleet = fleet;
        self
    }

    /// Processes one line (UTF-8, no newline). On success one record line (with `\n`) has been
    /// appended to `out`, or the event was suppressed and counted; on error `out` is unchanged.
    pub fn process(
        &self,
        line: &str,
        meta: &ConnMeta,
        rx: &Received,
        state: &mut ConnState,
        out: &mut BytesMut,
    ) -> Result<Accepted, ParseError> {
        let mut ev = match parse::parse_with(line, &|k| self.sanitizer.is_sensitive_key(k)) {
            Ok(ev) => ev,
            Err(e) => {
                if e == ParseError::Missing("message") {
                    self.count_shape(line, meta, false, state);
                }
                return Err(e);
            }
        };
        if ev.generic {
            self.count_shape(line, meta, true, state);
        }
        let clean = self.sanitize(line, &mut ev);
        let fp = fingerprint_of(&ev, &clean, &mut state.stacks);
        let service = clean.service.as_deref().unwrap_or(&meta.service);
        if let Some(reason) = sample(&ev, state).or_else(|| self.admit(fp, service, meta, rx)) {
            state.suppressed.count(fp, reason);
            return Ok(Accepted::suppressed(&ev, fp, reason));
        }
        let (class, severity) = classify::classify(ev.level, clean.name.as_deref(), &clean.message);
        let seen = self.observe(fp, rx, &ev, &clean, service, class, severity);
        if self.fleet.is_some() {
            state.fleet.count(fp, rx.unix_ns);
        }
        state.tally.count(ev.level, class, severity, service);
        let id = state
            .ids
            .generate_from_datetime(rx.time)
            .unwrap_or_else(|_| Ulid::from_datetime(rx.time));
        self.offer(
            fp,
            id,
            rx,
            &clean,
            service,
            class,
            seen.advice_until_ns,
            state,
        );
        record::put_event(
            out,
            &EventRecord {
                id,
                received: &rx.rfc3339,
                ts: ev.ts,
                level: ev.level,
                service: clean.service.as_deref(),
                default_service_json: &meta.service_json,
                name: clean.name.as_deref(),
                code: clean.code.as_deref(),
                message: &clean.message,
                fingerprint: fp,
                class,
                severity,
                occurrence: seen.occurrence,
                host_field: &self.host_field,
                peer_json: &meta.peer_json,
                stack: clean.stack.as_deref(),
                context: clean.context.as_deref(),
                tags: clean.tags.as_deref(),
                extra: clean.extra.as_deref(),
            },
            line.len(),
        );
        Ok(Accepted {
            id,
            ack: ev.ack,
            level: ev.level,
            fingerprint: fp,
            suppressed: None,
        })
    }

    /// Adds the read's counts to the shared ones: once per read, not per event. `rx` is the
    /// read's receive time (the per-second rate counts use it).
    pub fn end_read(&self, state: &mut ConnState, stats: &Stats, rx: &Received) {
        self.suppressions.merge(&mut state.suppressed);
        if let Some(f) = &self.fleet {
            f.merge(&mut state.fleet);
        }
        if let Some(a) = &self.analysis {
            a.add_hits(&mut state.advice_hits);
        }
        stats.add(&std::mem::take(&mut state.tally), rx.unix_ns);
    }

    /// Counts a line whose shape no profile maps, by peer and top-level key set (`/stats`
    /// `shapes`). Only such lines pay for it: a second, shallow pass over their keys.
    fn count_shape(&self, line: &str, meta: &ConnMeta, generic: bool, state: &mut ConnState) {
        let keys = parse::shape_keys(line);
        let keys = self.sanitizer.redact_text(&keys).unwrap_or(keys);
        state.tally.shapes.push(ShapeSeen {
            peer: format!("{} (uid {})", meta.service, meta.uid).into(),
            keys: keys.into(),
            generic,
        });
    }

    /// The sanitizer, for what a connection reports about its peer (`peer.comm`, the default
    /// service): client-controlled text too.
    pub fn sanitizer(&self) -> &Sanitizer {
        &self.sanitizer
    }

    /// Redaction: one prefilter pass over the whole line decides whether any field needs a look.
    /// Takes the text fields out of `ev` (no copies); the rest of `ev` is read on.
    fn sanitize<'a>(&self, line: &str, ev: &mut RawEvent<'a>) -> Clean<'a> {
        let s = &self.sanitizer;
        let extra = (!ev.extra.is_empty()).then(|| record::extra_object(&ev.extra));
        let (message, name, code, service, stack) = (
            std::mem::take(&mut ev.message),
            ev.name.take(),
            ev.code.take(),
            ev.service.take(),
            ev.stack.take(),
        );
        let (context, tags) = (ev.context.take(), ev.tags.take());
        // A field assembled from several parts of the line (a rendered template) may hold what
        // no part of the line does: it is checked on its own.
        if !ev.rebuilt && s.line_is_clean(line) {
            return Clean {
                message,
                name,
                code,
                service,
                stack,
                context: context.map(Cow::Borrowed),
                tags: tags.map(Cow::Borrowed),
                extra,
            };
        }
        let text = |t: Cow<'a, str>| s.redact_text(&t).map_or(t, Cow::Owned);
        let raw = |r: &'a str| s.redact_json(r).map_or(Cow::Borrowed(r), Cow::Owned);
        Clean {
            message: text(message),
            name: name.map(text),
            code: code.map(text),
            service: service.map(text),
            stack: stack.map(|st| s.redact_escaped(&st).map_or(st, Cow::Owned)),
            context: context.map(raw),
            tags: tags.map(raw),
            extra: extra.map(|x| s.redact_json(&x).unwrap_or(x)),
        }
    }

    /// Rate limits and the duplicate policy: `Some(reason)` suppresses the event.
    fn admit(
        &self,
        fp: Fingerprint,
        service: &str,
        meta: &ConnMeta,
        rx: &Received,
    ) -> Option<Reason> {
        self.limiter.decide(fp, service, meta.uid, rx.unix_ns)
    }

    /// Counts the occurrence in the table (first sight stores a sample for `/fingerprints`, a
    /// new service is added to its bounded set): the occurrence number and until when advice is
    /// known to be cached.
    #[allow(clippy::too_many_arguments)] // the event's parts, borrowed; a struct would only rename them
    fn observe(
        &self,
        fp: Fingerprint,
        rx: &Received,
        ev: &RawEvent<'_>,
        clean: &Clean<'_>,
        service: &str,
        class: Class,
        severity: Severity,
    ) -> Seen {
        self.table.observe(fp, rx.unix_ns, service, || FpMeta {
            class,
            severity,
            level: ev.level,
            service: truncate(service, table::NAME_SAMPLE).into(),
            name: truncate(clean.name.as_deref().unwrap_or(""), table::NAME_SAMPLE).into(),
            message: truncate(&clean.message, table::MESSAGE_SAMPLE).into(),
        })
    }

    /// Analysis: what the table knows, else a cache lookup; on a miss a non-blocking try_send
    /// of an owned, capped job. What the lookup learnt is remembered in the table.
    #[allow(clippy::too_many_arguments)] // the event's parts, borrowed; a struct would only rename them
    fn offer(
        &self,
        fp: Fingerprint,
        id: Ulid,
        rx: &Received,
        clean: &Clean<'_>,
        service: &str,
        class: Class,
        advice_until_ns: u64,
        state: &mut ConnState,
    ) {
        let Some(a) = &self.analysis else { return };
        let known = a.offer_seen(
            fp,
            rx.unix_ns,
            advice_until_ns,
            &mut state.advice_hits,
            || {
                Job::new(
                    fp,
                    id.to_string(),
                    clean.name.as_deref(),
                    &clean.message,
                    clean.stack.as_deref(),
                    service,
                    class,
                )
            },
        );
        if let Some(until) = known {
            self.table.advice_known_until(fp, until);
        }
    }
}

/// The client's own grouping if it sent one, else the hash of name, masked message and frames.
fn fingerprint_of(ev: &RawEvent<'_>, clean: &Clean<'_>, stacks: &mut StackCache) -> Fingerprint {
    if ev.fingerprint.is_empty() {
        let digest = stacks.digest(clean.stack.as_deref());
        fingerprint::compute_with(clean.name.as_deref(), &clean.message, digest)
    } else {
        let parts: Vec<&str> = ev.fingerprint.iter().map(|p| p.as_ref()).collect();
        fingerprint::from_client(&parts)
    }
}

/// Memory pressure: debug/info events are sampled; warn and above and acked ones always kept.
fn sample(ev: &RawEvent<'_>, state: &mut ConnState) -> Option<Reason> {
    let keep = ev.level >= Level::Warn
        || ev.ack
        || memory::keep_sampled(state.pressure, &mut state.sampled);
    (!keep).then_some(Reason::Pressure)
}
