//! The sink: a dedicated writer thread (never a tokio worker) draining the ring.
//!
//! Each wake-up takes one batch, gathers whatever else is queued up to `sink.batch_bytes`, and
//! issues one vectored write for all of it (records were encoded by the connection tasks). Then,
//! in order: fsync when `fsync = "always"`, acks to the clients, release of the ring's space.
//! With nothing queued the writer sleeps in the channel until the next thing it has to do —
//! housekeeping has deadlines, not a tick (`Schedule`): a check that the path still names the
//! open file (reopen if it was deleted or replaced) every `sink.reopen_check_interval`, the
//! interval fsync only while something written is not yet synced, summary records only while
//! counts wait to be reported. A batch, a notice in the outbox, a SIGHUP reopen or shutdown
//! ([`SinkControl`]) wakes it at once. Idle with the defaults it wakes once a second.
//!
//! Faults (see docs/durability.md): a write or (with `fsync = "always"`) an fsync that fails is
//! cut back to the last whole line and retried with backoff, holding the batches — the ring
//! fills and ingest applies backpressure — until it succeeds. Nothing is acked before that.

pub mod file;

use std::io::{self, IoSlice, Write};
use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::json;

use crate::config::{self, FsyncPolicy};
use crate::event::record::{kind, put_daemon, put_json_line};
use crate::limit::suppress::Suppressions;
use crate::outbox::{OutboxReceiver, Record};
use crate::protocol::RejectCode;
use crate::ring::{Batch, RingReceiver, Woken};
use crate::stats::Stats;
use file::{LogFile, PathChange, TailRepair};

/// Most batches in one vectored write (well under the kernel's IOV_MAX of 1024).
const MAX_GROUP: usize = 256;

/// Backoff bounds for retrying a failed write.
const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// I/O errors are logged at most this often (they repeat while a disk stays full).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Reject codes summarized as `"reason":"invalid"`; `shutting_down` is its own reason.
const INVALID_CODES: [RejectCode; 6] = [
    RejectCode::InvalidJson,
    RejectCode::InvalidUtf8,
    RejectCode::LineTooLong,
    RejectCode::MissingField,
    RejectCode::WrongType,
    RejectCode::ReadTimeout,
];

/// Requests from the rest of the daemon, read by the writer between batches. The request
/// methods also wake the writer, which may be asleep for up to `sink.reopen_check_interval`.
#[derive(Debug)]
pub struct SinkControl {
    /// SIGHUP: reopen the log file ([`SinkControl::request_reopen`]).
    pub reopen: AtomicBool,
    /// Shutdown: exit once the ring is empty, even if some producer is still alive
    /// ([`SinkControl::close`]).
    pub closing: AtomicBool,
    /// Forced exit: stop retrying failed writes ([`SinkControl::abandon`]).
    pub abandon: AtomicBool,
    /// Set by the writer while log writes fail and are being retried (disk full, I/O error);
    /// cleared when a write succeeds again. For readiness checks: a daemon in this state
    /// accepts nothing new once the ring is full.
    pub write_failing: AtomicBool,
    /// One-slot wake-up channel: a request is flagged above, then the writer is woken.
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
}

impl Default for SinkControl {
    fn default() -> Self {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        Self {
            reopen: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            write_failing: AtomicBool::new(false),
            wake_tx,
            wake_rx,
        }
    }
}

impl SinkControl {
    /// SIGHUP: reopen the log file at the next record boundary.
    pub fn request_reopen(&self) {
        self.reopen.store(true, Ordering::Release);
        self.wake();
    }

    /// Shutdown: finish once the ring is empty.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake();
    }

    /// Forced exit: give up on writes that keep failing.
    pub fn abandon(&self) {
        self.abandon.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        // Full: a wake-up is already pending, which is as good.
        let _ = self.wake_tx.try_send(());
    }
}

/// The writer's housekeeping deadlines. With nothing queued the writer sleeps until the
/// earliest of them ([`Schedule::next`]); each is only there while it has something to do.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// `sink.reopen_check_interval` after the last check of the log path: always due.
    path_check: Instant,
    /// The interval fsync: only under `fsync = "interval"` with unsynced writes.
    fsync: Option<Instant>,
    /// The next summary: only while counts wait to be reported (see
    /// [`Writer::summary_pending`]).
    summary: Option<Instant>,
}

impl Schedule {
    /// The earliest deadline.
    fn next(&self) -> Instant {
        [self.fsync, self.summary]
            .into_iter()
            .flatten()
            .fold(self.path_check, Instant::min)
    }
}

/// What the final `stop` record and the caller learn.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriterReport {
    pub written: u64,
    pub abandoned: u64,
}

pub struct Writer {
    rx: RingReceiver,
    file: LogFile,
    stdout: Option<io::Stdout>,
    cfg: config::Sink,
    stats: Arc<Stats>,
    control: Arc<SinkControl>,
    /// Records that are not events: `daemon` notices and `advice` (the one route for them).
    outbox: OutboxReceiver,
    /// Suppressed-event counts, written as `suppressed` records each summary window.
    suppressions: Arc<Suppressions>,
    /// Reused buffer for records the writer makes itself (daemon, dropped).
    own: BytesMut,
    dirty: bool,
    last_sync: Instant,
    last_summary: Instant,
    /// Counter values already reported in `dropped` records.
    reported_overload: u64,
    /// `outbox.lost()` already reported.
    reported_lost_notices: u64,
    /// Advice records in `own`, counted as written once `own` is.
    own_advice: u64,
    reported_rejects: [u64; RejectCode::ALL.len()],
    last_error_log: Option<Instant>,
    abandoned: u64,
    last_path_check: Instant,
    /// Daemon records noted where none can be written (inside a write retry), written next.
    deferred: Vec<(&'static str, Vec<(&'static str, serde_json::Value)>)>,
    /// `suppressions.total_all()` at the last summary.
    reported_suppressed: u64,
}

impl Writer {
    /// Opens the log file; fails (before anything is bound) if it can't be.
    pub fn new(
        cfg: config::Sink,
        rx: RingReceiver,
        outbox: OutboxReceiver,
        suppressions: Arc<Suppressions>,
        stats: Arc<Stats>,
        control: Arc<SinkControl>,
    ) -> io::Result<Writer> {
        let mut file = LogFile::open(&cfg.path, cfg.file_mode, cfg.rotate_bytes, cfg.rotate_keep)?;
        let mut deferred = Vec::new();
        match file.take_repair() {
            Some(TailRepair::Truncated(n)) => {
                tracing::warn!(
                    bytes = n,
                    path = %cfg.path.display(),
                    "cut off a torn last line (an unclean stop)"
                );
                deferred.push(("repaired torn last line", vec![("removed_bytes", json!(n))]));
            }
            Some(TailRepair::Terminated) => {
                tracing::warn!(
                    path = %cfg.path.display(),
                    "the log did not end with a newline; added one"
                );
                deferred.push(("terminated last line", Vec::new()));
            }
            None => {}
        }
        let now = Instant::now();
        Ok(Writer {
            rx,
            file,
            stdout: cfg.stdout.then(io::stdout),
            cfg,
            stats,
            control,
            outbox,
            suppressions,
            own: BytesMut::new(),
            dirty: false,
            last_sync: now,
            last_summary: now,
            reported_overload: 0,
            reported_lost_notices: 0,
            own_advice: 0,
            reported_rejects: [0; RejectCode::ALL.len()],
            last_error_log: None,
            abandoned: 0,
            last_path_check: now,
            deferred,
            reported_suppressed: 0,
        })
    }

    /// Runs until every producer is gone (or shutdown is flagged) and the ring is empty.
    /// `start` is written first as the `start` daemon record's fields.
    pub fn run(mut self, start: serde_json::Value) -> WriterReport {
        let fields: Vec<(&str, serde_json::Value)> = match &start {
            serde_json::Value::Object(m) => {
                m.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
            }
            _ => Vec::new(),
        };
        self.daemon("start", &fields);
        self.write_deferred();
        // The outbox wakes the writer too, so advice and notices are written at once; so do
        // requests (reopen, shutdown) through `control`.
        let mut outbox_open = true;
        let closed = crossbeam_channel::never();
        let control = self.control.clone();
        loop {
            let outbox = if outbox_open {
                self.outbox.receiver()
            } else {
                &closed
            };
            let deadline = self.schedule().next();
            match self.rx.recv_or(outbox, &control.wake_rx, deadline) {
                Ok(Woken::Batch(first)) => self.write_group(first),
                Ok(Woken::Other(Some(record))) => self.put_record(record),
                Ok(Woken::Other(None)) => outbox_open = false,
                // The ring is empty (batches win ties): leave if shutdown asked for it.
                Ok(Woken::Control) | Err(RecvTimeoutError::Timeout) => {
                    if self.control.closing.load(Ordering::Acquire) {
                        break;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.housekeeping();
        }
        // Drained: final summaries, the stop record, and a last fsync whatever the policy.
        self.write_deferred();
        self.notices();
        self.summaries();
        let s = &self.stats;
        let stop = [
            ("accepted", json!(s.accepted.load(Relaxed))),
            ("written", json!(s.written.load(Relaxed))),
            ("rejected", json!(s.rejected_total())),
            (
                "dropped",
                json!(s.dropped_overload.load(Relaxed) + self.abandoned),
            ),
            ("suppressed", json!(self.suppressions.total_all())),
            ("connections", json!(s.connections_total.load(Relaxed))),
        ];
        self.daemon("stop", &stop);
        if let Err(e) = self.file.sync() {
            tracing::error!(error = %e, path = %self.file.path().display(), "final fsync failed");
        }
        WriterReport {
            written: self.stats.written.load(Relaxed),
            abandoned: self.abandoned,
        }
    }

    fn write_group(&mut self, first: Batch) {
        let mut bytes = first.data.len();
        let mut group = vec![first];
        while bytes < self.cfg.batch_bytes.get() && group.len() < MAX_GROUP {
            match self.rx.try_recv() {
                Ok(b) => {
                    bytes += b.data.len();
                    group.push(b);
                }
                Err(_) => break,
            }
        }
        let events: usize = group.iter().map(|b| b.events).sum();
        let datas: Vec<&Bytes> = group.iter().map(|b| &b.data).collect();
        let ok = self.write_out(&datas, bytes as u64);
        if ok {
            self.stats.written.fetch_add(events as u64, Relaxed);
            self.stats.batches.fetch_add(1, Relaxed);
            self.stats.batch_events.observe(events as u64);
            for b in group.iter().filter(|b| b.events > 0) {
                self.stats
                    .write_latency
                    .observe_duration_us(b.received.elapsed());
            }
            for b in &group {
                if let Some(r) = &b.acker {
                    r.ack(&b.acks);
                }
            }
        } else {
            self.abandoned += events as u64;
            for b in &group {
                if let Some(r) = &b.acker {
                    r.nack(&b.acks, RejectCode::ShuttingDown);
                }
            }
        }
        self.rx.release(events, bytes);
    }

    /// Writes whole buffers to the file (fsynced when `fsync = "always"`) and stdout,
    /// retrying with backoff until it succeeds or the daemon gives up (forced exit). Returns
    /// false only in that last case.
    ///
    /// A failed attempt is cut back to the last whole line it wrote (a partial record is
    /// truncated away; whole records stay) and the rest is retried. While it keeps failing,
    /// each retry first probes for room for the next record ([`LogFile::reserve`]), so a full
    /// disk is not written to and truncated again and again: the file ends with a whole line
    /// at every moment. Only where cutting back is impossible (a FIFO) does the retry continue
    /// from the exact unwritten remainder, which completes the line instead. Between attempts,
    /// at a line boundary, the file may be reopened (SIGHUP, or the path was deleted: an
    /// operator freeing space); a record never spans two files.
    fn write_out(&mut self, datas: &[&Bytes], total: u64) -> bool {
        if self.file.unlinked().unwrap_or(false) {
            match self.file.reopen() {
                Ok(()) => {
                    tracing::warn!(
                        path = %self.file.path().display(),
                        "the log file was deleted; recreated it"
                    );
                    self.deferred.push((
                        "reopened log file",
                        vec![("reason", json!(PathChange::Missing.as_str()))],
                    ));
                }
                Err(e) => self.log_error("the log file was deleted; recreating it failed", &e),
            }
        }
        match self.file.rotate_if_needed(total) {
            Ok(true) => {
                self.stats.rotations.fetch_add(1, Relaxed);
            }
            Ok(false) => {}
            Err(e) => self.log_error("rotating the log failed; writing on", &e),
        }
        // Bytes of this write that are in the file (not cut back), and whether they end with a
        // whole line.
        let mut landed = 0u64;
        let mut at_line_end = true;
        let mut failures = 0u64;
        let mut failing_since = None;
        let mut backoff = RETRY_MIN;
        loop {
            let probe = (failures > 0 && at_line_end).then(|| next_line_len(datas, landed));
            let (err, keep) = match self.attempt(datas, &mut landed, probe) {
                Ok(()) => break,
                Err(Failed::Write(e)) => (e, line_end_before(datas, landed)),
                // The data may not be on disk, and after a failed fsync Linux may have dropped
                // the dirty pages: cut all of this write back and write it again.
                Err(Failed::Sync(e)) => (e, 0),
            };
            failures += 1;
            failing_since.get_or_insert_with(Instant::now);
            self.stats.write_errors.fetch_add(1, Relaxed);
            self.stats.note_write_error();
            self.control.write_failing.store(true, Ordering::Release);
            // Where cutting back fails (a FIFO), the next try finishes the line instead.
            if keep == landed || self.file.truncate_back(landed - keep).is_ok() {
                landed = keep;
                at_line_end = true;
            } else {
                at_line_end = false;
            }
            let pending = self.rx.stats().events();
            self.log_error(
                &format!(
                    "writing the log failed; retrying with backoff ({pending} events waiting)"
                ),
                &err,
            );
            if self.control.abandon.load(Ordering::Acquire) {
                return false;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(RETRY_MAX);
            if at_line_end {
                // Safe points to switch files: no record would be split.
                if self.control.reopen.swap(false, Ordering::AcqRel) {
                    match self.file.reopen() {
                        Ok(()) => self
                            .deferred
                            .push(("reopened log file", vec![("reason", json!("sighup"))])),
                        Err(e) => {
                            self.log_error("reopening the log failed; keeping the old file", &e)
                        }
                    }
                }
                if let Some(change) = self.check_path(Instant::now()) {
                    self.deferred.push((
                        "reopened log file",
                        vec![("reason", json!(change.as_str()))],
                    ));
                }
            }
        }
        if let Some(since) = failing_since {
            let secs = (since.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
            tracing::warn!(
                failed_attempts = failures,
                seconds = secs,
                path = %self.file.path().display(),
                "writing the log works again"
            );
            self.control.write_failing.store(false, Ordering::Release);
            self.deferred.push((
                "log writable again",
                vec![
                    ("failed_attempts", json!(failures)),
                    ("failing_s", json!(secs)),
                ],
            ));
        }
        self.stats.bytes_out.fetch_add(total, Relaxed);
        self.dirty = true;
        if let Some(out) = &mut self.stdout {
            let mut lock = out.lock();
            for d in datas {
                if lock.write_all(d).is_err() {
                    break;
                }
            }
            let _ = lock.flush();
        }
        true
    }

    /// One try at writing what has not landed yet (then fsync under `always`), after probing
    /// for `probe` bytes of room if asked. `landed` counts the bytes of this write now in the
    /// file, also when the try fails.
    fn attempt(
        &mut self,
        datas: &[&Bytes],
        landed: &mut u64,
        probe: Option<u64>,
    ) -> Result<(), Failed> {
        if let Some(len) = probe {
            self.file.reserve(len).map_err(Failed::Write)?;
        }
        let mut slices: Vec<IoSlice<'_>> = datas.iter().map(|d| IoSlice::new(d)).collect();
        let mut rest = &mut slices[..];
        IoSlice::advance_slices(&mut rest, *landed as usize);
        let before = self.file.size();
        let written = self.file.write_all_vectored(&mut rest);
        *landed += self.file.size() - before;
        written.map_err(Failed::Write)?;
        if self.cfg.fsync == FsyncPolicy::Always {
            match self.file.sync() {
                Ok(()) => {
                    self.dirty = false;
                    self.last_sync = Instant::now();
                }
                // A file system without fsync: nothing to retry.
                Err(e) if fsync_unsupported(&e) => {
                    self.log_error("fsync is not supported for the log file", &e)
                }
                Err(e) => return Err(Failed::Sync(e)),
            }
        }
        Ok(())
    }

    /// Reopens the log if its path no longer names the open file (checked every
    /// `sink.reopen_check_interval`). Returns why it reopened.
    fn check_path(&mut self, now: Instant) -> Option<PathChange> {
        if now.duration_since(self.last_path_check) < self.cfg.reopen_check_interval {
            return None;
        }
        self.last_path_check = now;
        match self.file.path_changed() {
            Ok(None) => None,
            Ok(Some(change)) => match self.file.reopen() {
                Ok(()) => {
                    tracing::warn!(
                        reason = change.as_str(),
                        path = %self.file.path().display(),
                        "the log file was deleted or replaced; reopened it"
                    );
                    Some(change)
                }
                Err(e) => {
                    self.log_error("the log file was deleted or replaced; reopening failed", &e);
                    None
                }
            },
            Err(e) => {
                self.log_error("checking the log path failed", &e);
                None
            }
        }
    }

    /// When each housekeeping task is next due.
    fn schedule(&self) -> Schedule {
        Schedule {
            path_check: self.last_path_check + self.cfg.reopen_check_interval,
            fsync: (self.dirty && self.cfg.fsync == FsyncPolicy::Interval)
                .then(|| self.last_sync + self.cfg.fsync_interval),
            summary: self
                .summary_pending()
                .then(|| self.last_summary + self.cfg.summary_interval),
        }
    }

    /// Whether counts wait for a summary: rejects, overload drops or suppressions not yet
    /// reported (a few atomic loads). With none there is nothing to report and no reason to
    /// wake for a summary.
    fn summary_pending(&self) -> bool {
        let s = &self.stats;
        s.dropped_overload.load(Relaxed) != self.reported_overload
            || s.rejected_total() != self.reported_rejects.iter().sum::<u64>()
            || self.suppressions.total_all() != self.reported_suppressed
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        if self.control.reopen.swap(false, Ordering::AcqRel) {
            match self.file.reopen() {
                Ok(()) => self.daemon("reopened log file", &[("reason", json!("sighup"))]),
                Err(e) => self.log_error("reopening the log failed; keeping the old file", &e),
            }
        }
        if let Some(change) = self.check_path(now) {
            self.daemon("reopened log file", &[("reason", json!(change.as_str()))]);
        }
        self.write_deferred();
        self.notices();
        if self.dirty
            && self.cfg.fsync == FsyncPolicy::Interval
            && now.duration_since(self.last_sync) >= self.cfg.fsync_interval
        {
            self.sync();
        }
        if !self.summary_pending() {
            // Nothing sent since the last summary: an empty summary window closes here, so
            // the next one spans `summary_interval` from the first pass that sees lines again
            // (not the whole quiet stretch).
            self.last_summary = now;
        } else if now.duration_since(self.last_summary) >= self.cfg.summary_interval {
            self.summaries();
        }
    }

    fn write_deferred(&mut self) {
        for (msg, fields) in std::mem::take(&mut self.deferred) {
            self.daemon(msg, &fields);
        }
    }

    fn sync(&mut self) {
        if let Err(e) = self.file.sync() {
            self.stats.write_errors.fetch_add(1, Relaxed);
            self.stats.note_write_error();
            self.log_error("fsync failed", &e);
        }
        self.dirty = false;
        self.last_sync = Instant::now();
    }

    /// `dropped` records for counts not yet reported.
    fn summaries(&mut self) {
        let window_s = self.last_summary.elapsed().as_secs_f64();
        self.last_summary = Instant::now();
        // Before draining: counts merged after this are reported next time (a merge between
        // the two is drained now and makes one empty summary later, never a missed one).
        self.reported_suppressed = self.suppressions.total_all();
        let overload = self.stats.dropped_overload.load(Relaxed);
        let new_overload = overload - self.reported_overload;
        self.reported_overload = overload;

        let mut codes = serde_json::Map::new();
        let mut invalid = 0;
        let mut shutdown = 0;
        for code in RejectCode::ALL {
            let now = self.stats.rejected(code);
            let delta = now - self.reported_rejects[code.index()];
            self.reported_rejects[code.index()] = now;
            if delta == 0 {
                continue;
            }
            if INVALID_CODES.contains(&code) {
                invalid += delta;
                codes.insert(code.as_str().into(), delta.into());
            } else if code == RejectCode::ShuttingDown {
                shutdown += delta;
            }
        }
        let window = (window_s * 1000.0).round() / 1000.0;
        let mut recs = Vec::new();
        if new_overload > 0 {
            recs.push(json!({"kind":kind::DROPPED,"count":new_overload,"reason":"overload","window_s":window}));
        }
        if invalid > 0 {
            recs.push(json!({"kind":kind::DROPPED,"count":invalid,"reason":"invalid","codes":codes,"window_s":window}));
        }
        if shutdown > 0 {
            recs.push(
                json!({"kind":kind::DROPPED,"count":shutdown,"reason":"shutdown","window_s":window}),
            );
        }
        for s in self.suppressions.drain() {
            recs.push(s.to_json(window));
        }
        for r in recs {
            put_json_line(&mut self.own, &r);
        }
        self.flush_own();
    }

    /// Records from the outbox: `daemon` notices and `advice` records.
    fn notices(&mut self) {
        let lost = self.outbox.lost();
        for r in self.outbox.drain() {
            self.put_record(r);
        }
        if lost > self.reported_lost_notices {
            let n = lost - self.reported_lost_notices;
            self.reported_lost_notices = lost;
            put_daemon(
                &mut self.own,
                "notices lost: the notice queue was full",
                &[("count", json!(n))],
            );
        }
        self.flush_own();
    }

    /// Adds an outbox record to the writer's own buffer (written by the next flush).
    fn put_record(&mut self, r: Record) {
        match r {
            Record::Daemon { msg, fields } => put_daemon(&mut self.own, &msg, &fields),
            Record::Advice(line) => {
                self.own.extend_from_slice(&line);
                self.own_advice += 1;
            }
        }
    }

    fn daemon(&mut self, msg: &str, fields: &[(&str, serde_json::Value)]) {
        put_daemon(&mut self.own, msg, fields);
        self.flush_own();
    }

    fn flush_own(&mut self) {
        if self.own.is_empty() {
            return;
        }
        let data = self.own.split().freeze();
        let advice = std::mem::take(&mut self.own_advice);
        if self.write_out(&[&data], data.len() as u64) {
            self.stats.advice_written.fetch_add(advice, Relaxed);
        }
    }

    /// Logs an I/O failure at most once per [`ERROR_LOG_INTERVAL`].
    fn log_error(&mut self, what: &str, e: &io::Error) {
        let now = Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL)
        {
            tracing::error!(error = %e, path = %self.file.path().display(), "{what}");
            self.last_error_log = Some(now);
        }
    }
}

/// fsync errors that say "this file can't be synced" rather than "the data is not on disk".
fn fsync_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    )
}

/// How an attempt to write failed.
enum Failed {
    Write(io::Error),
    Sync(io::Error),
}

/// Offset just after the last `\n` in the first `upto` bytes of `datas` (0 if none).
fn line_end_before(datas: &[&Bytes], upto: u64) -> u64 {
    let mut start = 0u64;
    let mut best = 0u64;
    for d in datas {
        if start >= upto {
            break;
        }
        let n = (upto - start).min(d.len() as u64) as usize;
        if let Some(i) = memchr::memrchr(b'\n', &d[..n]) {
            best = start + i as u64 + 1;
        }
        start += d.len() as u64;
    }
    best
}

/// Bytes from offset `from` of `datas` up to and including the next `\n` (or to the end).
fn next_line_len(datas: &[&Bytes], from: u64) -> u64 {
    let mut start = 0u64;
    for d in datas {
        let end = start + d.len() as u64;
        if end > from {
            let skip = from.saturating_sub(start) as usize;
            if let Some(i) = memchr::memchr(b'\n', &d[skip..]) {
                return start + (skip + i + 1) as u64 - from;
            }
        }
        start = end;
    }
    start.saturating_sub(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_boundaries_across_buffers() {
        let (a, b, c) = (
            Bytes::from_static(b"ab\ncd"),
            Bytes::from_static(b"e\n"),
            Bytes::from_static(b"fgh\n"),
        );
        let datas = [&a, &b, &c];
        // Whole lines within the first n bytes.
        let ends: Vec<u64> = (0..=11).map(|n| line_end_before(&datas, n)).collect();
        assert_eq!(ends, [0, 0, 0, 3, 3, 3, 3, 7, 7, 7, 7, 11]);
        // The next record from an offset.
        assert_eq!(next_line_len(&datas, 0), 3);
        assert_eq!(next_line_len(&datas, 3), 4);
        assert_eq!(next_line_len(&datas, 5), 2);
        assert_eq!(next_line_len(&datas, 7), 4);
        assert_eq!(next_line_len(&datas, 11), 0);
        let open = Bytes::from_static(b"no newline");
        assert_eq!(next_line_len(&[&open], 3), 7);
    }

    #[test]
    fn the_writer_sleeps_until_the_earliest_real_deadline() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        // Idle: only the path check.
        let idle = Schedule {
            path_check: s(1000),
            fsync: None,
            summary: None,
        };
        assert_eq!(idle.next(), s(1000));
        // Unsynced writes, counts to report: whichever comes first.
        let busy = Schedule {
            fsync: Some(s(300)),
            summary: Some(s(600)),
            ..idle
        };
        assert_eq!(busy.next(), s(300));
        let summary_first = Schedule {
            fsync: Some(s(900)),
            summary: Some(s(200)),
            ..idle
        };
        assert_eq!(summary_first.next(), s(200));
        // Overdue deadlines (a long write): due now, never later than the path check.
        let late = Schedule {
            path_check: s(50),
            fsync: Some(t0),
            summary: None,
        };
        assert_eq!(late.next(), t0);
    }
}
