//! The sink: a dedicated writer thread (never a tokio worker) draining the ring.
//!
//! Each wake-up takes one batch, gathers whatever else is queued up to `sink.batch_bytes`, and
//! issues one vectored write for all of it (records were encoded by the connection tasks). Then,
//! in order: fsync when `fsync = "always"`, acks to the clients, release of the ring's space.
//! With nothing queued the writer sleeps in the channel; a short tick drives housekeeping:
//! reopen after SIGHUP, periodic fsync, and `dropped` summary records.

pub mod file;

use std::io::{self, IoSlice, Write};
use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::RecvTimeoutError;
use serde_json::json;

use crate::config::{self, FsyncPolicy};
use crate::event::daemon_record;
use crate::event::parse::RejectCode;
use crate::ring::{Batch, RingReceiver};
use crate::stats::Stats;
use file::LogFile;

/// Longest the writer sleeps before housekeeping (reopen requests, fsync, summaries).
const TICK: Duration = Duration::from_millis(50);

/// Most batches in one vectored write (well under the kernel's IOV_MAX of 1024).
const MAX_GROUP: usize = 256;

/// Backoff bounds for retrying a failed write.
const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Reject codes summarized as `"reason":"invalid"`; `shutting_down` is its own reason.
const INVALID_CODES: [RejectCode; 6] = [
    RejectCode::InvalidJson,
    RejectCode::InvalidUtf8,
    RejectCode::LineTooLong,
    RejectCode::MissingField,
    RejectCode::WrongType,
    RejectCode::ReadTimeout,
];

/// Requests from the rest of the daemon, read by the writer between batches.
#[derive(Debug, Default)]
pub struct SinkControl {
    /// SIGHUP: reopen the log file.
    pub reopen: AtomicBool,
    /// Shutdown: exit once the ring is empty, even if some producer is still alive.
    pub closing: AtomicBool,
    /// Forced exit: stop retrying failed writes.
    pub abandon: AtomicBool,
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
    /// Reused buffer for records the writer makes itself (daemon, dropped).
    own: BytesMut,
    dirty: bool,
    last_sync: Instant,
    last_summary: Instant,
    /// Counter values already reported in `dropped` records.
    reported_overload: u64,
    reported_rejects: [u64; RejectCode::ALL.len()],
    last_error_log: Option<Instant>,
    abandoned: u64,
}

impl Writer {
    /// Opens the log file; fails (before anything is bound) if it can't be.
    pub fn new(
        cfg: config::Sink,
        rx: RingReceiver,
        stats: Arc<Stats>,
        control: Arc<SinkControl>,
    ) -> io::Result<Writer> {
        let file = LogFile::open(&cfg.path, cfg.file_mode, cfg.rotate_bytes, cfg.rotate_keep)?;
        let now = Instant::now();
        Ok(Writer {
            rx,
            file,
            stdout: cfg.stdout.then(io::stdout),
            cfg,
            stats,
            control,
            own: BytesMut::new(),
            dirty: false,
            last_sync: now,
            last_summary: now,
            reported_overload: 0,
            reported_rejects: [0; RejectCode::ALL.len()],
            last_error_log: None,
            abandoned: 0,
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
        loop {
            match self.rx.recv_timeout(TICK) {
                Ok(first) => self.write_group(first),
                Err(RecvTimeoutError::Timeout) => {
                    if self.control.closing.load(Ordering::Acquire) {
                        break;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.housekeeping();
        }
        // Drained: final summaries, the stop record, and a last fsync whatever the policy.
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
        if ok && self.cfg.fsync == FsyncPolicy::Always {
            self.sync();
        }
        if ok {
            self.stats.written.fetch_add(events as u64, Relaxed);
            self.stats.batches.fetch_add(1, Relaxed);
            for b in &group {
                if let Some(r) = &b.replies {
                    r.ack(&b.acks);
                }
            }
        } else {
            self.abandoned += events as u64;
            for b in &group {
                if let Some(r) = &b.replies {
                    r.nack(&b.acks, RejectCode::ShuttingDown);
                }
            }
        }
        self.rx.release(events, bytes);
    }

    /// Writes whole buffers to the file (and stdout), retrying with backoff until it succeeds
    /// or the daemon gives up (forced exit). Returns false only in that last case.
    fn write_out(&mut self, datas: &[&Bytes], total: u64) -> bool {
        match self.file.rotate_if_needed(total) {
            Ok(true) => {
                self.stats.rotations.fetch_add(1, Relaxed);
            }
            Ok(false) => {}
            Err(e) => self.log_error("rotating the log failed; writing on", &e),
        }
        let mut slices: Vec<IoSlice<'_>> = datas.iter().map(|d| IoSlice::new(d)).collect();
        let mut rest = &mut slices[..];
        let mut backoff = RETRY_MIN;
        while let Err(e) = self.file.write_all_vectored(&mut rest) {
            self.stats.write_errors.fetch_add(1, Relaxed);
            self.log_error("writing the log failed; retrying", &e);
            if self.control.abandon.load(Ordering::Acquire) {
                return false;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(RETRY_MAX);
            if self.control.reopen.swap(false, Ordering::AcqRel) {
                let _ = self.file.reopen();
            }
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

    fn housekeeping(&mut self) {
        let now = Instant::now();
        if self.control.reopen.swap(false, Ordering::AcqRel) {
            match self.file.reopen() {
                Ok(()) => self.daemon("reopened log file", &[]),
                Err(e) => self.log_error("reopening the log failed; keeping the old file", &e),
            }
        }
        if self.dirty
            && self.cfg.fsync == FsyncPolicy::Interval
            && now.duration_since(self.last_sync) >= self.cfg.fsync_interval
        {
            self.sync();
        }
        if now.duration_since(self.last_summary) >= self.cfg.summary_interval {
            self.summaries();
        }
    }

    fn sync(&mut self) {
        if let Err(e) = self.file.sync() {
            self.stats.write_errors.fetch_add(1, Relaxed);
            self.log_error("fsync failed", &e);
        }
        self.dirty = false;
        self.last_sync = Instant::now();
    }

    /// `dropped` records for counts not yet reported.
    fn summaries(&mut self) {
        let window_s = self.last_summary.elapsed().as_secs_f64();
        self.last_summary = Instant::now();
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
            recs.push(json!({"kind":"dropped","count":new_overload,"reason":"overload","window_s":window}));
        }
        if invalid > 0 {
            recs.push(json!({"kind":"dropped","count":invalid,"reason":"invalid","codes":codes,"window_s":window}));
        }
        if shutdown > 0 {
            recs.push(
                json!({"kind":"dropped","count":shutdown,"reason":"shutdown","window_s":window}),
            );
        }
        for r in recs {
            crate::event::json_line(&mut self.own, &r);
        }
        self.flush_own();
    }

    fn daemon(&mut self, msg: &str, fields: &[(&str, serde_json::Value)]) {
        daemon_record(&mut self.own, msg, fields);
        self.flush_own();
    }

    fn flush_own(&mut self) {
        if self.own.is_empty() {
            return;
        }
        let data = self.own.split().freeze();
        self.write_out(&[&data], data.len() as u64);
    }

    /// Logs an I/O failure at most once per 10 s (they repeat while a disk stays full).
    fn log_error(&mut self, what: &str, e: &io::Error) {
        let now = Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            tracing::error!(error = %e, path = %self.file.path().display(), "{what}");
            self.last_error_log = Some(now);
        }
    }
}
