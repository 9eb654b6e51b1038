//! One client connection: read → frame → process each line → queue one batch per read.
//!
//! The reading half never waits for the client to read replies: replies go through the
//! connection's bounded [`Replies`] buffer and a separate reply task. Backpressure happens in
//! exactly one place, `ring.push().await`: while it waits, this task does not read, the
//! socket's receive buffer fills, and the client's writes block in its kernel.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::time::timeout_at;
use tokio_util::sync::CancellationToken;

use super::framing::{Frame, Framer};
use super::inflight::ConnLoad;
use super::peer::Peer;
use super::reply::Replies;
use super::Shared;
use crate::event::parse;
use crate::event::{ConnMeta, Received};
use crate::memory::Pressure;
use crate::pipeline::ConnState;
use crate::protocol::RejectCode;
use crate::ring::{Ack, Batch, PushError};

/// How often a connection over its in-flight cap looks again (it waits for other connections'
/// batches to reach the ring, so a short poll is cheap and rare).
const IN_FLIGHT_PAUSE: Duration = Duration::from_millis(5);

/// Timeouts tighten (`memory.pressure_timeout`) once active connections reach this share of
/// `ingest.max_connections` (numerator / denominator), so idle clients make room for new ones.
const SLOTS_NEARLY_TAKEN: (usize, usize) = (7, 8);

/// Serves one connection until EOF, error, timeout or shutdown.
pub async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let stats = &shared.stats;
    stats.connections_total.fetch_add(1, Relaxed);
    stats.connections_active.fetch_add(1, Relaxed);

    let peer = Peer::lookup(&stream).await.unwrap_or_default();
    let cfg = shared.cfg.load_full();
    let cap = cfg.max_connections_per_uid.get();
    let load = match shared.inflight.try_register(peer.uid, peer.pid, cap) {
        Ok(load) => load,
        Err(held) => {
            refuse(stream, &shared, peer.uid, held).await;
            stats.connections_active.fetch_sub(1, Relaxed);
            return;
        }
    };
    let (rd, wr) = stream.into_split();
    let replies = Arc::new(Replies::new(cfg.reply_buffer_bytes, shared.stats.clone()));
    let done = CancellationToken::new();
    let mut reply_task = tokio::spawn(reply_loop(wr, replies.clone(), done.clone()));

    let mut conn = Conn {
        meta: peer.meta(shared.pipeline.load().sanitizer()),
        shared: shared.clone(),
        replies: replies.clone(),
        framer: Framer::new(cfg.max_line_bytes.get()),
        // Allocated when data arrives (see `read_some`), so idle connections hold none.
        buf: BytesMut::new(),
        out: BytesMut::new(),
        state: ConnState::default(),
        line_no: 0,
        load,
    };
    conn.read_loop(rd).await;

    // Let pending acks arrive and replies flush, within a bound.
    done.cancel();
    let cfg = shared.cfg.load();
    let bound = Instant::now() + cfg.read_timeout.max(cfg.shutdown_grace);
    if timeout_at(bound.into(), &mut reply_task).await.is_err() {
        reply_task.abort();
    }
    // Its per-uid slot and in-flight account go first: once `connections.active` falls, the
    // connection holds nothing.
    drop(conn);
    stats.connections_active.fetch_sub(1, Relaxed);
}

/// A connection of a uid that already holds `ingest.max_connections_per_uid`: one
/// `too_many_connections` reply (if the socket takes it at once) and close, counted and logged
/// (at most every 10 s). Nothing it sent is read, so the client knows none of it was taken.
async fn refuse(stream: UnixStream, shared: &Shared, uid: u32, held: usize) {
    let n = shared
        .stats
        .connections_refused_per_uid
        .fetch_add(1, Relaxed)
        + 1;
    let reply = format!(
        "{{\"ok\":false,\"error\":\"too_many_connections\",\"detail\":\"uid {uid} holds \
         {held} connections (ingest.max_connections_per_uid)\",\"line\":0}}\n"
    );
    let _ = stream.try_write(reply.as_bytes());
    static LAST_LOG_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now_ms = crate::event::record::unix_nanos(std::time::SystemTime::now()) / 1_000_000;
    let last = LAST_LOG_MS.load(Relaxed);
    if now_ms.saturating_sub(last) >= 10_000
        && LAST_LOG_MS
            .compare_exchange(last, now_ms, Relaxed, Relaxed)
            .is_ok()
    {
        tracing::warn!(
            uid,
            held,
            refused_total = n,
            "connection refused: uid at ingest.max_connections_per_uid (logged at most every 10 s)"
        );
    }
}

struct Conn {
    meta: ConnMeta,
    shared: Arc<Shared>,
    replies: Arc<Replies>,
    framer: Framer,
    buf: BytesMut,
    /// Encoded records of the current read.
    out: BytesMut,
    state: ConnState,
    line_no: u64,
    /// Bytes in flight, accounted per peer uid.
    load: ConnLoad,
}

enum Step {
    /// Data arrived; `true` when it was more than whitespace.
    Data(bool),
    /// Over the in-flight cap: wait for room (at the top of the loop).
    Wait,
    Eof,
    Stop,
}

impl Conn {
    async fn read_loop(&mut self, rd: OwnedReadHalf) {
        let cancel = self.shared.cancel.clone();
        let mut last_data = Instant::now();
        let mut partial_since: Option<Instant> = None;
        loop {
            // Timeouts and sizes follow config reloads; the line limit is fixed per connection.
            let cfg = self.shared.cfg.load_full();
            let read_size = cfg.read_buffer_bytes.get();
            let (idle_timeout, read_timeout) = self.timeouts(&cfg);
            if !self.load.may_read() {
                // Over the peer's or the daemon's in-flight cap: wait for room without
                // reading; time spent here is not idleness, but a started line still has to
                // finish within the read timeout.
                self.shared.inflight.waits.fetch_add(1, Relaxed);
                while !self.load.may_read() && !cancel.is_cancelled() {
                    if partial_since.is_some_and(|t| Instant::now() >= t + read_timeout) {
                        self.reject_partial(
                            RejectCode::ReadTimeout,
                            "line not completed within ingest.read_timeout",
                        );
                        return;
                    }
                    tokio::time::sleep(IN_FLIGHT_PAUSE).await;
                }
                last_data = Instant::now();
            }
            let deadline = match partial_since {
                Some(t) => t + read_timeout,
                None => last_data + idle_timeout,
            };
            let step = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.drain_on_shutdown(&rd).await;
                    Step::Stop
                }
                r = timeout_at(deadline.into(), read_some(&rd, &mut self.buf, read_size, &self.load)) => match r {
                    Err(_elapsed) => {
                        if partial_since.is_some() {
                            self.reject_partial(RejectCode::ReadTimeout, "line not completed within ingest.read_timeout");
                        }
                        Step::Stop
                    }
                    Ok(Ok(None)) => Step::Wait,
                    Ok(Ok(Some(0))) => Step::Eof,
                    Ok(Ok(Some(n))) => {
                        // Blank lines keep nothing alive: a read of whitespace only does not
                        // put off the idle timeout.
                        let fresh = &self.buf[self.buf.len().saturating_sub(n)..];
                        let substantive = fresh.iter().any(|b| !b.is_ascii_whitespace());
                        let n = n as u64;
                        let total = self.shared.stats.bytes_in.fetch_add(n, Relaxed) + n;
                        self.shared.memory_nudge.bytes_read(total);
                        Step::Data(substantive)
                    }
                    // Reset or other error: what arrived before it still counts.
                    Ok(Err(_)) => Step::Eof,
                },
            };
            match step {
                Step::Data(substantive) => {
                    let now = Instant::now();
                    if substantive {
                        last_data = now;
                    }
                    self.process(false).await;
                    partial_since = if self.framer.has_partial(&self.buf) {
                        partial_since.or(Some(now))
                    } else {
                        None
                    };
                    // A read's worth of events is a lot of work for one poll; without this a
                    // flooding client (its socket always readable, drop_newest never waiting)
                    // keeps a worker for many reads and the control plane — /ready, /stats
                    // during the very overload they report — waits seconds.
                    tokio::task::yield_now().await;
                }
                Step::Wait => {}
                Step::Eof => {
                    self.process(true).await;
                    return;
                }
                Step::Stop => return,
            }
        }
    }

    /// `(idle, read)` timeouts now: the configured ones, shortened to `memory.pressure_timeout`
    /// under memory pressure or when nearly every connection slot is taken — a silent or
    /// trickling client then cannot hold a slot or a buffer for long.
    fn timeouts(&self, cfg: &crate::config::Ingest) -> (Duration, Duration) {
        let shared = &*self.shared;
        let active = shared.stats.connections_active.load(Relaxed) as usize;
        let (num, den) = SLOTS_NEARLY_TAKEN;
        let tight = shared.pressure.get() > Pressure::Normal
            || active * den >= cfg.max_connections.get() * num;
        if tight {
            let t = shared.pressure_timeout;
            (cfg.idle_timeout.min(t), cfg.read_timeout.min(t))
        } else {
            (cfg.idle_timeout, cfg.read_timeout)
        }
    }

    /// Shutdown: take what the client already sent (whatever is in the socket buffer now),
    /// within the grace period, without waiting for more.
    async fn drain_on_shutdown(&mut self, rd: &OwnedReadHalf) {
        let cfg = self.shared.cfg.load_full();
        let deadline = Instant::now() + cfg.shutdown_grace;
        let fd = std::os::fd::AsRawFd::as_raw_fd(rd.as_ref());
        let mut chunk = vec![0u8; cfg.read_buffer_bytes.get()];
        loop {
            // A non-blocking recv(2) of our own, not tokio's `try_read`: that answers
            // WouldBlock from its cached readiness whenever the reactor has not yet seen data
            // that is already queued, and a whole burst sent before SIGTERM stayed unread
            // (the client then got a reset instead of its events written).
            match nix::sys::socket::recv(fd, &mut chunk, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    self.process(true).await;
                    return;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.shared.stats.bytes_in.fetch_add(n as u64, Relaxed);
                    self.process(false).await;
                }
                Err(nix::errno::Errno::EINTR) => {}
                // EAGAIN: nothing more is queued; anything else ends the connection too.
                Err(_) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        if self.framer.has_partial(&self.buf) {
            self.reject_partial(
                RejectCode::ShuttingDown,
                "daemon shutting down; incomplete line discarded",
            );
        }
    }

    fn reject_partial(&mut self, code: RejectCode, detail: &str) {
        self.line_no += 1;
        self.shared.stats.lines.fetch_add(1, Relaxed);
        self.shared.stats.reject(code);
        self.replies.reject(code, &detail, self.line_no);
        self.buf.clear();
    }

    /// Frames and processes everything buffered, then queues the batch.
    async fn process(&mut self, eof: bool) {
        let rx = Received::now();
        self.state.pressure = self.shared.pressure.get();
        // Records are ~1.5× their input (enrichment): one allocation per read, not a
        // doubling-and-copying series while the batch grows.
        self.out.reserve(self.buf.len() + self.buf.len() / 2 + 1024);
        let shared = &*self.shared;
        let pipeline = shared.pipeline.load();
        let stats = &shared.stats;
        let max_line = self.framer.max_line();
        let (meta, replies, state, out) =
            (&self.meta, &self.replies, &mut self.state, &mut self.out);
        let line_no = &mut self.line_no;
        let mut events = 0usize;
        let mut acks = Vec::new();
        let mut handle = |frame: Frame<'_>| {
            *line_no += 1;
            stats.lines.fetch_add(1, Relaxed);
            let line = match frame {
                Frame::TooLong => {
                    stats.reject(RejectCode::LineTooLong);
                    replies.reject(
                        RejectCode::LineTooLong,
                        &format_args!("line longer than {max_line} bytes (ingest.max_line_bytes)"),
                        *line_no,
                    );
                    return;
                }
                Frame::Line(l) => l,
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                return; // blank lines are keep-alives, not events
            }
            let text = match simdutf8::basic::from_utf8(line) {
                Ok(t) => t,
                Err(_) => {
                    let at = std::str::from_utf8(line)
                        .err()
                        .map_or(0, |e| e.valid_up_to());
                    stats.reject(RejectCode::InvalidUtf8);
                    replies.reject(
                        RejectCode::InvalidUtf8,
                        &format_args!("invalid UTF-8 at byte {at}"),
                        *line_no,
                    );
                    return;
                }
            };
            let mut one = |text: &str| match pipeline.process(text, meta, &rx, state, out) {
                Ok(acc) if acc.suppressed.is_some() => {
                    // Not a rejected line: counted in `suppressed` records, not `rejected`.
                    if acc.ack {
                        replies.rate_limited(acc.suppressed, *line_no);
                    }
                }
                Ok(acc) => {
                    events += 1;
                    if acc.ack {
                        acks.push(acc.id);
                    }
                }
                Err(e) => {
                    stats.reject(e.code());
                    replies.reject(e.code(), &e, *line_no);
                }
            };
            // An OTLP/JSON batch carries many records: each one is an event.
            match parse::otlp::split(text) {
                Some(records) => records.iter().for_each(|r| one(r)),
                None => one(text),
            }
        };
        if eof {
            self.framer.finish(&mut self.buf, &mut handle);
        } else {
            self.framer.drain(&mut self.buf, &mut handle);
        }
        pipeline.end_read(&mut self.state, stats, &rx);
        // A connection between reads holds no read buffer (only a partial line, if any): idle
        // connections cost a few KiB each, whatever ingest.read_buffer_bytes is.
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        if events == 0 {
            self.out = BytesMut::new();
            self.load.set(self.buf.len());
            return;
        }
        stats.accepted.fetch_add(events as u64, Relaxed);
        let data = self.out.split().freeze();
        shared.history.push(data.clone(), events);
        let batch = Batch {
            data,
            events,
            acker: (!acks.is_empty()).then(|| self.replies.clone() as Arc<dyn Ack>),
            acks,
            received: Instant::now(),
        };
        self.replies.expect_acks(batch.acks.len());
        // What is left of the allocation would keep the whole batch's memory alive after the
        // writer is done with it; the next read reserves afresh anyway.
        self.out = BytesMut::new();
        self.load.set(self.buf.len() + batch.data.len());
        let pushed = shared.ring.push(batch).await;
        self.load.set(self.buf.len());
        match pushed {
            Ok(()) => {}
            Err(PushError::Full(b)) => {
                stats.dropped_overload.fetch_add(b.events as u64, Relaxed);
                self.replies.nack(&b.acks, RejectCode::Overloaded);
            }
            Err(PushError::Closed(b)) => {
                stats.dropped_overload.fetch_add(b.events as u64, Relaxed);
                self.replies.nack(&b.acks, RejectCode::ShuttingDown);
            }
        }
    }
}

/// Waits until the socket is readable, then reads into `buf` (reserving `size` only now, so a
/// connection waiting for data holds no read buffer). `Ok(None)`: the in-flight cap was reached
/// while waiting; nothing was read. Checking right before the read (no await in between) keeps
/// the overshoot of the cap to one read per runtime worker.
async fn read_some(
    rd: &OwnedReadHalf,
    buf: &mut BytesMut,
    size: usize,
    load: &ConnLoad,
) -> std::io::Result<Option<usize>> {
    loop {
        rd.readable().await?;
        if !load.may_read() {
            return Ok(None);
        }
        if buf.capacity() - buf.len() < size / 2 {
            buf.reserve(size);
        }
        // At most `size` per read, whatever capacity the buffer has grown to (a partial line
        // makes `reserve` reallocate to more): one read is one batch, and batches are what the
        // in-flight caps and the memory model count in units of `read_buffer_bytes`.
        match rd.try_read_buf(&mut bytes::BufMut::limit(&mut *buf, size)) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r.map(Some),
        }
    }
}

/// Writes queued replies to the client until the connection is done and no acks are pending.
async fn reply_loop(mut wr: OwnedWriteHalf, replies: Arc<Replies>, done: CancellationToken) {
    let mut writable = true;
    loop {
        let data = replies.take();
        if !data.is_empty() && writable && wr.write_all(&data).await.is_err() {
            // The client went away: keep settling acks (they are counted), stop writing.
            writable = false;
        }
        if done.is_cancelled() && replies.pending_acks() == 0 {
            // One last look: an ack may have landed after `take`.
            let rest = replies.take();
            if !rest.is_empty() && writable {
                let _ = wr.write_all(&rest).await;
            }
            break;
        }
        tokio::select! {
            _ = replies.wake.notified() => {}
            _ = done.cancelled(), if !done.is_cancelled() => {}
        }
    }
    let _ = wr.shutdown().await;
}
