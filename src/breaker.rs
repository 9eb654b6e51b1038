//! A circuit breaker for outbound calls (Redis sync, the LLM endpoint).
//!
//! Classic states:
//! - `Closed`: calls flow; outcomes are counted in a rolling window of fixed time buckets
//!   (bounded memory whatever the call rate). The breaker opens when, over at least
//!   `min_calls` calls in the window, the failure rate reaches `failure_rate`, or when
//!   `max_timeouts` calls in a row timed out (a dead peer that only times out should not need
//!   `min_calls` slow calls to be noticed), or `max_failures` calls in a row failed in any way
//!   (a refused connection after a long healthy run should not need the failure rate of the
//!   whole window to be noticed).
//! - `Open`: calls are refused without being tried, for `cool_down`.
//! - `HalfOpen`: after the cool-down up to `probes` trial calls go through; one success closes
//!   the breaker, one failure opens it again for another cool-down.
//!
//! The breaker is a plain state machine: time is passed in (`now: Instant`), it does no I/O and
//! has no timers, so owners decide how to share it (one task owns it, or a short `Mutex`) and
//! tests drive it with paused or synthetic time. Its state and counts are mirrored into a
//! [`BreakerStatus`] of atomics that the control plane reads lock-free. Transitions are returned
//! to the caller, which logs them (`daemon` records) where it can.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Buckets of the rolling window. Ten buckets of a tenth of the window each: fine enough that
/// old outcomes leave the window smoothly, small enough to be a fixed array.
pub const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub const ALL: [State; 3] = [State::Closed, State::Open, State::HalfOpen];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Closed,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The call failed fast (refused, error reply, 5xx, ...).
    Failure,
    /// The call hit its deadline.
    Timeout,
}

/// Tuning of one breaker (validated by its owner's config).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Length of the rolling window the failure rate is computed over.
    pub window: Duration,
    /// Fewest calls in the window before the failure rate may open the breaker.
    pub min_calls: u32,
    /// Failure rate (0–1] at or above which the breaker opens.
    pub failure_rate: f64,
    /// Consecutive timeouts that open the breaker regardless of `min_calls`.
    pub max_timeouts: u32,
    /// Consecutive failed calls (timeouts included) that open the breaker regardless of the
    /// window; 0 = off.
    pub max_failures: u32,
    /// Time spent `Open` before probing.
    pub cool_down: Duration,
    /// Trial calls allowed at once while `HalfOpen`.
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            min_calls: 5,
            failure_rate: 0.5,
            max_timeouts: 2,
            max_failures: 0,
            cool_down: Duration::from_secs(2),
            probes: 1,
        }
    }
}

/// A state change, for the owner to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
}

/// The breakers of this daemon, registered by their owners at start (the Redis sync, the LLM
/// client) and read by the control plane. Made by `app`, shared by `Arc`.
#[derive(Debug, Default)]
pub struct Registry(std::sync::Mutex<Vec<Arc<BreakerStatus>>>);

impl Registry {
    /// Makes a breaker visible in `/stats` and `/metrics` (replacing one of the same name).
    pub fn register(&self, status: Arc<BreakerStatus>) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|b| b.name != status.name);
        list.push(status);
    }

    /// Every registered breaker, in registration order.
    pub fn all(&self) -> Vec<Arc<BreakerStatus>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Lock-free view of a breaker for `/stats` and `/metrics`.
#[derive(Debug)]
pub struct BreakerStatus {
    pub name: &'static str,
    state: AtomicU8,
    /// Transitions by target state (index of [`State::ALL`]).
    transitions: [AtomicU64; 3],
    pub successes: AtomicU64,
    pub failures: AtomicU64,
    pub timeouts: AtomicU64,
    /// Calls refused because the breaker was open.
    pub rejected: AtomicU64,
}

impl BreakerStatus {
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Relaxed))
    }

    pub fn transitions_to(&self, s: State) -> u64 {
        self.transitions[s as usize].load(Relaxed)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "state": self.state().as_str(),
            "opened": self.transitions_to(State::Open),
            "half_opened": self.transitions_to(State::HalfOpen),
            "closed": self.transitions_to(State::Closed),
            "successes": self.successes.load(Relaxed),
            "failures": self.failures.load(Relaxed),
            "timeouts": self.timeouts.load(Relaxed),
            "rejected": self.rejected.load(Relaxed),
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Index of the bucket-length period this bucket holds (0 = unused).
    epoch: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    /// Origin of bucket epochs.
    origin: Instant,
    bucket_len: Duration,
    buckets: [Bucket; BUCKETS],
    state: State,
    /// When the breaker last opened.
    opened_at: Instant,
    probes_in_flight: u32,
    consecutive_timeouts: u32,
    consecutive_failures: u32,
    status: Arc<BreakerStatus>,
}

impl Breaker {
    pub fn new(name: &'static str, cfg: BreakerConfig, now: Instant) -> Self {
        let bucket_len = (cfg.window / BUCKETS as u32).max(Duration::from_millis(1));
        Self {
            cfg,
            origin: now,
            bucket_len,
            buckets: [Bucket::default(); BUCKETS],
            state: State::Closed,
            opened_at: now,
            probes_in_flight: 0,
            consecutive_timeouts: 0,
            consecutive_failures: 0,
            status: Arc::new(BreakerStatus {
                name,
                state: AtomicU8::new(State::Closed as u8),
                transitions: Default::default(),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
        }
    }

    pub fn status(&self) -> &Arc<BreakerStatus> {
        &self.status
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// While `Open`: when the cool-down ends (the first moment [`Breaker::try_acquire`] can
    /// let a probe through). An owner with nothing else to do sleeps until then.
    pub fn cool_down_ends(&self) -> Option<Instant> {
        (self.state == State::Open).then(|| self.opened_at + self.cfg.cool_down)
    }

    /// Whether a call may be made now. `Open` turns `HalfOpen` once the cool-down is over; a
    /// `true` while `HalfOpen` takes a probe slot, released by [`Breaker::record`].
    pub fn try_acquire(&mut self, now: Instant) -> (bool, Option<Transition>) {
        let mut tr = None;
        if self.state == State::Open && now.duration_since(self.opened_at) >= self.cfg.cool_down {
            tr = self.set(State::HalfOpen);
            self.probes_in_flight = 0;
        }
        let ok = match self.state {
            State::Closed => true,
            State::Open => false,
            State::HalfOpen => {
                if self.probes_in_flight < self.cfg.probes.max(1) {
                    self.probes_in_flight += 1;
                    true
                } else {
                    false
                }
            }
        };
        if !ok {
            self.status.rejected.fetch_add(1, Relaxed);
        }
        (ok, tr)
    }

    /// Records the outcome of a call that [`Breaker::try_acquire`] allowed.
    pub fn record(&mut self, now: Instant, outcome: Outcome) -> Option<Transition> {
        let failed = outcome != Outcome::Success;
        self.consecutive_failures = if failed {
            self.consecutive_failures + 1
        } else {
            0
        };
        match outcome {
            Outcome::Success => {
                self.status.successes.fetch_add(1, Relaxed);
                self.consecutive_timeouts = 0;
            }
            Outcome::Failure => {
                self.status.failures.fetch_add(1, Relaxed);
                self.consecutive_timeouts = 0;
            }
            Outcome::Timeout => {
                self.status.timeouts.fetch_add(1, Relaxed);
                self.consecutive_timeouts += 1;
            }
        }
        match self.state {
            State::HalfOpen => {
                self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
                if failed {
                    self.open(now)
                } else {
                    self.reset_window();
                    self.set(State::Closed)
                }
            }
            // A late outcome of a call made before the breaker opened: counted, no effect.
            State::Open => None,
            State::Closed => {
                let b = self.bucket(now);
                b.calls += 1;
                b.failures += u32::from(failed);
                if self.should_open(now) {
                    self.open(now)
                } else {
                    None
                }
            }
        }
    }

    fn should_open(&self, now: Instant) -> bool {
        if self.cfg.max_timeouts > 0 && self.consecutive_timeouts >= self.cfg.max_timeouts {
            return true;
        }
        if self.cfg.max_failures > 0 && self.consecutive_failures >= self.cfg.max_failures {
            return true;
        }
        let (calls, failures) = self.window_totals(now);
        calls >= self.cfg.min_calls.max(1)
            && f64::from(failures) >= self.cfg.failure_rate * f64::from(calls)
    }

    /// Calls and failures in the buckets still inside the window.
    pub fn window_totals(&self, now: Instant) -> (u32, u32) {
        let current = self.epoch(now);
        self.buckets
            .iter()
            .filter(|b| b.epoch != 0 && current - b.epoch < BUCKETS as u64)
            .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failures))
    }

    fn epoch(&self, now: Instant) -> u64 {
        // +1 so that epoch 0 means "unused".
        (now.saturating_duration_since(self.origin).as_nanos() / self.bucket_len.as_nanos()) as u64
            + 1
    }

    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        let epoch = self.epoch(now);
        let b = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                calls: 0,
                failures: 0,
            };
        }
        b
    }

    fn reset_window(&mut self) {
        self.buckets = [Bucket::default(); BUCKETS];
        self.consecutive_timeouts = 0;
        self.consecutive_failures = 0;
    }

    fn open(&mut self, now: Instant) -> Option<Transition> {
        self.opened_at = now;
        self.reset_window();
        self.set(State::Open)
    }

    fn set(&mut self, to: State) -> Option<Transition> {
        let from = self.state;
        if from == to {
            return None;
        }
        self.state = to;
        self.status.state.store(to as u8, Relaxed);
        self.status.transitions[to as usize].fetch_add(1, Relaxed);
        Some(Transition { from, to })
    }
}

/// The `daemon` records of a background Redis sync (the limiter's, the fleet's): its failures
/// are told once per failing stretch, and its breaker's transitions always.
#[derive(Debug, Default)]
pub struct SyncNotices {
    /// The last call failed.
    failing: bool,
}

impl SyncNotices {
    /// A failed call: the first of a stretch is a warning and a `daemon` record `msg` with the
    /// error and the breaker's state.
    pub fn failed(
        &mut self,
        outbox: &crate::outbox::Outbox,
        msg: &'static str,
        error: &dyn std::fmt::Display,
        state: State,
    ) {
        if std::mem::replace(&mut self.failing, true) {
            return;
        }
        tracing::warn!(error = %error, "{msg}");
        outbox.notice(
            msg,
            vec![
                ("error", serde_json::json!(error.to_string())),
                ("breaker", serde_json::json!(state.as_str())),
            ],
        );
    }

    /// A successful call: after a failing stretch, a `daemon` record `msg` with `fields`.
    pub fn succeeded(
        &mut self,
        outbox: &crate::outbox::Outbox,
        msg: &'static str,
        fields: impl FnOnce() -> Vec<(&'static str, serde_json::Value)>,
    ) {
        if std::mem::replace(&mut self.failing, false) {
            outbox.notice(msg, fields());
        }
    }

    /// A breaker transition, if `tr` is one: a warning and a `breaker transition` record with
    /// the breaker's `name`, `from`, `to`, then `extra`, then the `error` that caused it.
    pub fn transition(
        outbox: &crate::outbox::Outbox,
        name: &'static str,
        tr: Transition,
        extra: Vec<(&'static str, serde_json::Value)>,
        cause: Option<&dyn std::fmt::Display>,
    ) {
        let mut fields = vec![
            ("breaker", serde_json::json!(name)),
            ("from", serde_json::json!(tr.from.as_str())),
            ("to", serde_json::json!(tr.to.as_str())),
        ];
        fields.extend(extra);
        if let Some(e) = cause {
            fields.push(("error", serde_json::json!(e.to_string())));
        }
        tracing::warn!(
            breaker = name,
            from = tr.from.as_str(),
            to = tr.to.as_str(),
            "breaker transition"
        );
        outbox.notice("breaker transition", fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            window: Duration::from_secs(10),
            min_calls: 4,
            failure_rate: 0.5,
            max_timeouts: 2,
            max_failures: 0,
            cool_down: Duration::from_secs(5),
            probes: 1,
        }
    }

    #[test]
    fn consecutive_failures_open_after_a_healthy_run() {
        let t0 = Instant::now();
        let mut b = Breaker::new(
            "t",
            BreakerConfig {
                max_failures: 3,
                ..cfg()
            },
            t0,
        );
        for _ in 0..100 {
            call(&mut b, t0, Outcome::Success);
        }
        assert_eq!(call(&mut b, t0, Outcome::Failure), None);
        assert_eq!(call(&mut b, t0, Outcome::Failure), None);
        assert!(call(&mut b, t0, Outcome::Failure).is_some(), "3 in a row");
        assert_eq!(b.state(), State::Open);
    }

    fn call(b: &mut Breaker, now: Instant, o: Outcome) -> Option<Transition> {
        let (ok, tr) = b.try_acquire(now);
        assert!(ok, "call refused in state {:?}", b.state());
        assert!(tr.is_none());
        b.record(now, o)
    }

    #[test]
    fn opens_on_failure_rate_only_after_min_calls() {
        let t0 = Instant::now();
        let mut b = Breaker::new("t", cfg(), t0);
        assert_eq!(call(&mut b, t0, Outcome::Failure), None);
        assert_eq!(call(&mut b, t0, Outcome::Failure), None);
        assert_eq!(
            call(&mut b, t0, Outcome::Failure),
            None,
            "3 calls < min_calls"
        );
        let tr = call(&mut b, t0, Outcome::Success);
        assert_eq!(
            tr,
            Some(Transition {
                from: State::Closed,
                to: State::Open
            })
        );
        assert_eq!(b.status().state(), State::Open);
        assert_eq!(b.status().transitions_to(State::Open), 1);
    }

    #[test]
    fn stays_closed_below_the_failure_rate() {
        let t0 = Instant::now();
        let mut b = Breaker::new("t", cfg(), t0);
        for i in 0..100 {
            let o = if i % 3 == 2 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(call(&mut b, t0, o), None);
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let mut b = Breaker::new("t", cfg(), t0);
        for _ in 0..3 {
            call(&mut b, t0, Outcome::Failure);
        }
        // 11 s later the three failures are outside the 10 s window.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(b.window_totals(t1), (0, 0));
        for _ in 0..3 {
            assert_eq!(call(&mut b, t1, Outcome::Success), None);
        }
        assert_eq!(call(&mut b, t1, Outcome::Failure), None);
        assert_eq!(b.window_totals(t1), (4, 1));
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn consecutive_timeouts_open_without_min_calls() {
        let t0 = Instant::now();
        let mut b = Breaker::new("t", cfg(), t0);
        assert_eq!(call(&mut b, t0, Outcome::Timeout), None);
        assert!(call(&mut b, t0, Outcome::Timeout).is_some());
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.status().timeouts.load(Relaxed), 2);
    }

    #[test]
    fn open_refuses_then_half_open_probe_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new("t", cfg(), t0);
        call(&mut b, t0, Outcome::Timeout);
        call(&mut b, t0, Outcome::Timeout);
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(b.try_acquire(t1), (false, None));
        assert_eq!(b.status().rejected.load(Relaxed), 1);
        let t2 = t0 + Duration::from_secs(5);
        let (ok, tr) = b.try_acquire(t2);
        assert!(ok);
        assert_eq!(
            tr,
            Some(Transition {
                from: State::Open,
                to: State::HalfOpen
            })
        );
        // Only one probe at a time.
        assert_eq!(b.try_acquire(t2), (false, None));
        assert_eq!(
            b.record(t2, Outcome::Success),
            Some(Transition {
                from: State::HalfOpen,
                to: State::Closed
            })
        );
        // The window starts afresh after closing.
        assert_eq!(b.window_totals(t2), (0, 0));
        assert!(b.try_acquire(t2).0);
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cool_down() {
        let t0 = Instant::now();
        let mut b = Breaker::new("t", cfg(), t0);
        call(&mut b, t0, Outcome::Timeout);
        call(&mut b, t0, Outcome::Timeout);
        let t1 = t0 + Duration::from_secs(6);
        assert!(b.try_acquire(t1).0);
        assert_eq!(
            b.record(t1, Outcome::Failure),
            Some(Transition {
                from: State::HalfOpen,
                to: State::Open
            })
        );
        assert_eq!(b.cool_down_ends(), Some(t1 + Duration::from_secs(5)));
        assert!(!b.try_acquire(t1 + Duration::from_secs(4)).0);
        assert!(b.try_acquire(t1 + Duration::from_secs(5)).0);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.cool_down_ends(), None, "only while open");
    }

    #[test]
    fn late_outcomes_while_open_do_not_change_state() {
        let t0 = Instant::now();
        let mut b = Breaker::new("t", cfg(), t0);
        let (ok, _) = b.try_acquire(t0);
        assert!(ok);
        call(&mut b, t0, Outcome::Timeout);
        call(&mut b, t0, Outcome::Timeout);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.record(t0, Outcome::Success), None);
        assert_eq!(b.state(), State::Open);
    }

    /// The breaker with tokio's paused clock, as its owners use it.
    #[tokio::test(start_paused = true)]
    async fn paused_time_cool_down() {
        let start = tokio::time::Instant::now().into_std();
        let mut b = Breaker::new("t", cfg(), start);
        for _ in 0..4 {
            let now = tokio::time::Instant::now().into_std();
            b.try_acquire(now);
            b.record(now, Outcome::Failure);
        }
        assert_eq!(b.state(), State::Open);
        tokio::time::sleep(Duration::from_millis(4999)).await;
        assert!(!b.try_acquire(tokio::time::Instant::now().into_std()).0);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(b.try_acquire(tokio::time::Instant::now().into_std()).0);
        assert_eq!(b.state(), State::HalfOpen);
    }
}
