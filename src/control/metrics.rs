//! `/metrics`: the daemon's counters in Prometheus/OpenMetrics text, encoded with the
//! `prometheus-client` crate from the live atomics at scrape time (a custom collector, so the
//! hot path keeps its plain atomics and nothing is copied between scrapes).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::ControlState;
use crate::breaker::State as BreakerState;
use crate::event::classify::{Class, Severity};
use crate::event::level::Level;
use crate::limit::suppress::Reason;
use crate::protocol::RejectCode;
use crate::stats::Histogram;

/// Metric names start with this.
const PREFIX: &str = "qerrors";

/// Renders every metric; `events_by_service` (client-written label values) only when
/// `services` (`control.metrics_services`).
pub fn encode(
    st: &ControlState,
    rss_bytes: u64,
    services: bool,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(Snapshot {
        st: st.clone(),
        rss_bytes,
        services,
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

struct Snapshot {
    st: ControlState,
    rss_bytes: u64,
    services: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot")
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: i64,
) -> std::fmt::Result {
    e.encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// One counter family with a single label.
fn counter_by(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (String, u64)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, v) in values {
        // Label values can come from clients (`service`): made inert like every shown text.
        let value = crate::display::visible(&value);
        let labels = [(label, value.as_ref())];
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

fn labelled<const N: usize, T: Copy>(
    all: [T; N],
    name: fn(T) -> &'static str,
    counters: &[AtomicU64],
) -> Vec<(String, u64)> {
    all.into_iter()
        .enumerate()
        .map(|(i, t)| (name(t).to_string(), counters[i].load(Relaxed)))
        .collect()
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    h: &Histogram,
    scale: f64,
) -> std::fmt::Result {
    let buckets: Vec<(f64, u64)> = h
        .cumulative()
        .into_iter()
        .map(|(bound, c)| (bound * scale, c))
        .collect();
    // The encoder takes per-bucket counts and accumulates them itself.
    let mut prev = 0;
    let per_bucket: Vec<(f64, u64)> = buckets
        .iter()
        .map(|&(b, c)| {
            let n = c - prev;
            prev = c;
            (b, n)
        })
        .collect();
    e.encode_descriptor(name, help, unit, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum() as f64 * scale, h.count(), &per_bucket, None)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let st = &self.st;
        let s = &st.stats;
        let e = &mut e;
        let (hist_events, hist_bytes) = st.history.size();
        // Plain counters and gauges: (name, help, value); rendered in this order.
        let counters: [(&str, &str, u64); 5] = [
            (
                "lines_received",
                "Lines read from clients (valid or not).",
                s.lines.load(Relaxed),
            ),
            (
                "events_accepted",
                "Events that passed validation.",
                s.accepted.load(Relaxed),
            ),
            (
                "events_written",
                "Event records written to the log.",
                s.written.load(Relaxed),
            ),
            (
                "advice_records_written",
                "Advice records written to the log (counted after the write).",
                s.advice_written.load(Relaxed),
            ),
            (
                "control_connections_rejected",
                "Control-server connections closed on arrival because control.max_connections were open.",
                st.control_rejected.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            counter(e, name, help, v)?;
        }
        counter_by(
            e,
            "events_rejected",
            "Lines rejected, by reply code.",
            "code",
            labelled(RejectCode::ALL, RejectCode::as_str, &s.rejected),
        )?;
        counter_by(
            e,
            "events_dropped",
            "Accepted events not written, by reason.",
            "reason",
            [("overload".to_string(), s.dropped_overload.load(Relaxed))],
        )?;
        counter_by(
            e,
            "events_suppressed",
            "Events suppressed (rate limits, duplicates, pressure), by reason.",
            "reason",
            Reason::ALL.map(|r| (r.as_str().to_string(), st.suppressions.total(r))),
        )?;
        if let Some(a) = &st.analysis {
            analysis_metrics(e, a)?;
        }
        if let Some(f) = &st.fleet {
            fleet_metrics(e, f)?;
        }
        let mem = &st.memory;
        counter_by(
            e,
            "memory_pressure_transitions",
            "Memory pressure level changes, by level entered.",
            "level",
            crate::memory::Pressure::ALL.map(|p| {
                (
                    p.as_str().to_string(),
                    mem.entered[p as usize].load(Relaxed),
                )
            }),
        )?;
        let mut m = e.encode_descriptor(
            "memory_pressure",
            "Memory pressure level (1 for the current level), by level.",
            None,
            MetricType::Gauge,
        )?;
        for p in crate::memory::Pressure::ALL {
            m.encode_family(&[("level", p.as_str())])?
                .encode_gauge(&i64::from(mem.level.get() == p))?;
        }
        let breakers = st.breakers.all();
        let mut m = e.encode_descriptor(
            "breaker_state",
            "Circuit breaker state (1 for the current state), by breaker.",
            None,
            MetricType::Gauge,
        )?;
        for b in &breakers {
            for state in BreakerState::ALL {
                let labels = [("breaker", b.name), ("state", state.as_str())];
                m.encode_family(&labels)?
                    .encode_gauge(&i64::from(b.state() == state))?;
            }
        }
        let mut m = e.encode_descriptor(
            "breaker_transitions",
            "Circuit breaker transitions, by breaker and state entered.",
            None,
            MetricType::Counter,
        )?;
        for b in &breakers {
            for state in BreakerState::ALL {
                let labels = [("breaker", b.name), ("state", state.as_str())];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&b.transitions_to(state), None)?;
            }
        }
        counter_by(
            e,
            "events_by_level",
            "Accepted events by level.",
            "level",
            labelled(Level::ALL, Level::as_str, &s.by_level),
        )?;
        counter_by(
            e,
            "events_by_class",
            "Accepted events by error class.",
            "class",
            labelled(Class::ALL, Class::as_str, &s.by_class),
        )?;
        counter_by(
            e,
            "events_by_severity",
            "Accepted events by severity.",
            "severity",
            labelled(Severity::ALL, Severity::as_str, &s.by_severity),
        )?;
        if self.services {
            counter_by(
                e,
                "events_by_service",
                "Accepted events by service (top 20).",
                "service",
                s.top_services(20),
            )?;
        }
        let counters: [(&str, &str, u64); 11] = [
            (
                "bytes_in",
                "Bytes read from client sockets.",
                s.bytes_in.load(Relaxed),
            ),
            (
                "bytes_out",
                "Bytes written to the log.",
                s.bytes_out.load(Relaxed),
            ),
            (
                "write_batches",
                "Vectored writes issued.",
                s.batches.load(Relaxed),
            ),
            (
                "write_errors",
                "Failed log writes (each retried).",
                s.write_errors.load(Relaxed),
            ),
            ("rotations", "Log rotations.", s.rotations.load(Relaxed)),
            ("acks", "Acks sent to clients.", s.acks.load(Relaxed)),
            (
                "replies_dropped",
                "Replies dropped for clients that do not read.",
                s.replies_dropped.load(Relaxed),
            ),
            (
                "connections",
                "Client connections accepted.",
                s.connections_total.load(Relaxed),
            ),
            (
                "connections_refused_per_uid",
                "Client connections closed on arrival: their uid held \
                 ingest.max_connections_per_uid.",
                s.connections_refused_per_uid.load(Relaxed),
            ),
            (
                "ring_pushed",
                "Batches queued to the writer.",
                st.ring.pushed(),
            ),
            (
                "ring_popped",
                "Batches taken by the writer.",
                st.ring.popped(),
            ),
        ];
        for (name, help, v) in counters {
            counter(e, name, help, v)?;
        }
        let bytes = Some(&Unit::Bytes);
        let gauges: [(&str, &str, Option<&Unit>, u64); 13] = [
            (
                "connections_active",
                "Client connections open.",
                None,
                s.connections_active.load(Relaxed),
            ),
            (
                "ring_events",
                "Events queued or being written.",
                None,
                st.ring.events() as u64,
            ),
            (
                "ring_bytes",
                "Bytes queued or being written.",
                bytes,
                st.ring.bytes() as u64,
            ),
            (
                "ring_capacity_events",
                "Ring capacity in events.",
                None,
                st.ring.capacity_events() as u64,
            ),
            (
                "ring_capacity_bytes",
                "Ring capacity in bytes.",
                bytes,
                st.ring.capacity_bytes() as u64,
            ),
            ("memory_rss", "Resident set size.", bytes, self.rss_bytes),
            (
                "memory_budget",
                "Memory budget in force (memory.budget or a share of the cgroup limit).",
                bytes,
                mem.budget_bytes.load(Relaxed),
            ),
            (
                "memory_cgroup_limit",
                "The cgroup's memory limit (0: none).",
                bytes,
                mem.cgroup_limit_bytes.load(Relaxed),
            ),
            (
                "ingest_in_flight",
                "Bytes read from clients and not yet queued for the writer.",
                bytes,
                st.inflight.total() as u64,
            ),
            (
                "fingerprints_tracked",
                "Fingerprints in the occurrence table.",
                None,
                st.fingerprints.len() as u64,
            ),
            (
                "history_events",
                "Events kept for /recent.",
                None,
                hist_events as u64,
            ),
            (
                "history_bytes",
                "Bytes kept for /recent.",
                bytes,
                hist_bytes as u64,
            ),
            (
                "uptime",
                "Time since start.",
                Some(&Unit::Seconds),
                st.started.elapsed().as_secs(),
            ),
        ];
        for (name, help, unit, v) in gauges {
            gauge(e, name, help, unit, v as i64)?;
        }
        histogram(
            e,
            "write_latency",
            "Socket read to log write, per batch (bucket bounds are powers of two microseconds).",
            Some(&Unit::Seconds),
            &s.write_latency,
            1e-6,
        )?;
        histogram(
            e,
            "batch_events",
            "Events per log write.",
            None,
            &s.batch_events,
            1.0,
        )?;
        runtime_metrics(e, &st.lag)
    }
}

/// How late the runtime runs ready tasks, and how busy each worker is (src/lag.rs).
fn runtime_metrics(e: &mut DescriptorEncoder, lag: &crate::lag::LagStats) -> std::fmt::Result {
    histogram(
        e,
        "event_loop_lag",
        "How late the lag ticker ran past its deadline (bucket bounds are powers of two microseconds; includes the timer's 1 ms granularity).",
        Some(&Unit::Seconds),
        &lag.lag,
        1e-6,
    )?;
    let mut m = e.encode_descriptor(
        "runtime_worker_busy_ratio",
        "Share of the last second (or more) each runtime worker spent polling tasks, by worker.",
        None,
        MetricType::Gauge,
    )?;
    for (w, r) in lag.busy_ratios().into_iter().enumerate() {
        m.encode_family(&[("worker", w.to_string())])?
            .encode_gauge(&r)?;
    }
    // Scrapes run on the runtime; outside one (a unit test) there is nothing to report.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let rt = rt.metrics();
        let mut m = e.encode_descriptor(
            "runtime_worker_busy",
            "Time each runtime worker spent polling tasks since start, by worker.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for w in 0..rt.num_workers() {
            let busy = rt.worker_total_busy_duration(w).as_secs_f64();
            m.encode_family(&[("worker", w.to_string())])?
                .encode_counter::<NoLabelSet, _, u64>(&busy, None)?;
        }
    }
    Ok(())
}

/// The analysis counters and gauges (`analysis_*`).
fn analysis_metrics(
    e: &mut DescriptorEncoder,
    a: &crate::analysis::AnalysisHandle,
) -> std::fmt::Result {
    let s = a.stats();
    let c = a.cache();
    let counters: [(&str, &str, u64); 10] = [
        (
            "analysis_queued",
            "Fingerprints queued for analysis.",
            s.queued.load(Relaxed),
        ),
        (
            "analysis_queue_full",
            "Analyses skipped because the queue was full.",
            s.queue_full.load(Relaxed),
        ),
        (
            "analysis_coalesced",
            "Cache misses for a fingerprint already being analysed.",
            s.coalesced.load(Relaxed),
        ),
        (
            "analysis_paused_pressure",
            "Analyses skipped under memory pressure.",
            s.paused_pressure.load(Relaxed),
        ),
        (
            "analysis_completed",
            "Analyses finished.",
            s.completed.load(Relaxed),
        ),
        (
            "analysis_abandoned",
            "Analyses abandoned at shutdown.",
            s.abandoned.load(Relaxed),
        ),
        (
            "analysis_records_written",
            "Advice records queued to the log.",
            s.records_written.load(Relaxed),
        ),
        (
            "analysis_records_lost",
            "Advice records that could not be queued to the log.",
            s.records_lost.load(Relaxed),
        ),
        (
            "advice_cache_hits",
            "Accepted events whose fingerprint had cached advice (advice cache hits).",
            c.hits.load(Relaxed),
        ),
        (
            "advice_cache_misses",
            "Advice cache misses.",
            c.misses.load(Relaxed),
        ),
    ];
    for (name, help, v) in counters {
        counter(e, name, help, v)?;
    }
    let gauges: [(&str, &str, Option<&Unit>, u64); 3] = [
        (
            "analysis_queue_depth",
            "Analyses waiting in the queue.",
            None,
            a.queue_depth() as u64,
        ),
        (
            "advice_cache_entries",
            "Entries in the advice cache.",
            None,
            c.entries(),
        ),
        (
            "advice_cache",
            "Estimated size of the advice cache.",
            Some(&Unit::Bytes),
            c.bytes(),
        ),
    ];
    for (name, help, unit, v) in gauges {
        gauge(e, name, help, unit, v as i64)?;
    }
    if let Some(l) = a.llm() {
        let m = &l.stats;
        let counters: [(&str, &str, u64); 5] = [
            (
                "llm_calls",
                "HTTP requests to the LLM endpoint (retries included).",
                m.calls.load(Relaxed),
            ),
            (
                "llm_successes",
                "Analyses that got valid LLM advice.",
                m.successes.load(Relaxed),
            ),
            (
                "llm_failures",
                "Analyses whose LLM part failed (rules advice stands).",
                m.failures.load(Relaxed),
            ),
            (
                "llm_retries",
                "LLM request retries.",
                m.retries.load(Relaxed),
            ),
            (
                "llm_budget_exhausted",
                "LLM calls skipped because the hourly budget was used up.",
                m.budget_exhausted.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            counter(e, name, help, v)?;
        }
        if let Some(left) = l.budget_remaining() {
            gauge(
                e,
                "llm_budget_remaining",
                "LLM calls left in the current hour.",
                None,
                i64::from(left),
            )?;
        }
    }
    Ok(())
}

/// The fleet registry's counters (only with `fleet.redis_url` set).
fn fleet_metrics(e: &mut DescriptorEncoder, f: &crate::fleet::Deltas) -> std::fmt::Result {
    let s = &f.stats;
    for (name, help, v) in [
        (
            "fleet_deltas_dropped",
            "Events whose fleet delta did not fit (fleet.max_pending) and never reached Redis.",
            s.dropped_events.load(Relaxed),
        ),
        (
            "fleet_syncs",
            "Successful fleet sync calls to Redis.",
            s.syncs.load(Relaxed),
        ),
        (
            "fleet_sync_failures",
            "Failed fleet sync calls (their batch is sent again).",
            s.failures.load(Relaxed),
        ),
        (
            "fleet_synced_events",
            "Events carried to the fleet registry.",
            s.synced_events.load(Relaxed),
        ),
    ] {
        counter(e, name, help, v)?;
    }
    gauge(
        e,
        "fleet_pending_fingerprints",
        "Fingerprints with deltas waiting for a sync (in flight included).",
        None,
        (f.pending() + f.in_flight()) as i64,
    )
}
