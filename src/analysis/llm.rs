//! LLM advice from an OpenAI-compatible chat-completions endpoint.
//!
//! One shared `reqwest` client (keep-alive pool, at most `llm_concurrency` idle connections per
//! host), connect and request timeouts, an overall deadline per analysis, retries with
//! exponential back-off and full jitter that honour `Retry-After` on 429, a concurrency limit,
//! an hourly call budget and a circuit breaker (`llm`, visible in `/stats` and `/metrics`,
//! transitions written as `daemon` records). The prompt is built only from the sanitized event
//! and capped; the response must be a JSON object matching the advice schema or it is rejected.
//!
//! Transport rules (issue 15, item 10): redirects are never followed — a 3xx is a failed call
//! ([`LlmError::Redirect`], counted, seen by the breaker, not retried), so neither the prompt
//! nor the `Authorization` header ever goes to a URL the operator did not configure; the
//! client refuses anything but `https` unless config validation allowed plain `http`
//! ([`Transport`]); the certificate is checked against the same trust store as Redis's
//! (`crate::tls`: `SSL_CERT_FILE` / `SSL_CERT_DIR` or the system store, nothing compiled in).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{Llm, Transport};
use super::{Advice, Job};
use crate::breaker::Registry;
use crate::breaker::{Breaker, Outcome, Transition};
use crate::outbox::Outbox;

/// Idle keep-alive connections are closed after this long unused.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Limits on the validated response (characters / items), so a runaway model cannot bloat the
/// cache or the log.
const MAX_SUMMARY: usize = 1000;
const MAX_CAUSE: usize = 2000;
const MAX_STEP: usize = 1000;
const MAX_STEPS: usize = 12;
/// Longest `Retry-After` honoured; longer ones end the analysis (the deadline would pass).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why an LLM analysis produced no advice. `retryable` says whether another attempt may help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("breaker open")]
    BreakerOpen,
    #[error("hourly call budget exhausted")]
    Budget,
    #[error("deadline passed")]
    Deadline,
    #[error("cancelled by shutdown")]
    Cancelled,
    /// A 3xx: not followed (the `Location` is not even read). Not retried: the next attempt
    /// would get the same answer.
    #[error(
        "HTTP {status}: redirects are not followed; set analysis.llm_base_url to the final URL"
    )]
    Redirect { status: u16 },
    #[error("HTTP {status}")]
    Status {
        status: u16,
        retryable: bool,
        retry_after: Option<Duration>,
    },
    #[error("transport: {msg}")]
    Transport { msg: String, timeout: bool },
    #[error("invalid response: {0}")]
    Invalid(String),
}

impl LlmError {
    fn retryable(&self) -> bool {
        match self {
            LlmError::Status { retryable, .. } => *retryable,
            LlmError::Transport { .. } => true,
            _ => false,
        }
    }
}

/// Counters for `/stats` and `/metrics`.
#[derive(Debug, Default)]
pub struct LlmStats {
    /// HTTP requests sent (retries included).
    pub calls: AtomicU64,
    /// Analyses that got valid advice.
    pub successes: AtomicU64,
    /// Analyses that ended without advice (any reason below).
    pub failures: AtomicU64,
    pub retries: AtomicU64,
    pub timeouts: AtomicU64,
    pub invalid_responses: AtomicU64,
    pub budget_exhausted: AtomicU64,
    pub breaker_rejected: AtomicU64,
}

/// Fixed hourly window of calls.
#[derive(Debug)]
struct Budget {
    window_start: Instant,
    used: u32,
}

/// Why the client could not be built (at start).
#[derive(Debug, thiserror::Error)]
pub enum LlmClientError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TrustStoreError),
    #[error("{0}")]
    Http(#[from] reqwest::Error),
}

pub struct LlmClient {
    cfg: Llm,
    url: String,
    http: reqwest::Client,
    breaker: Mutex<Breaker>,
    slots: Semaphore,
    budget: Mutex<Budget>,
    pub stats: LlmStats,
    /// Breaker transitions go to the log as `daemon` records.
    outbox: Outbox,
}

impl LlmClient {
    pub fn new(cfg: Llm, outbox: Outbox, breakers: &Registry) -> Result<Self, LlmClientError> {
        let mut http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .pool_max_idle_per_host(cfg.concurrency.get())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("qerrorsd/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .referer(false);
        http = match cfg.transport {
            Transport::Https => http
                .https_only(true)
                .use_preconfigured_tls(crate::tls::client_config()?),
            // Loopback stays on the host: a proxy from the environment would carry it away.
            Transport::LoopbackHttp => http.no_proxy(),
            Transport::Http => http,
        };
        let http = http.build()?;
        let breaker = Breaker::new("llm", cfg.breaker.clone(), std::time::Instant::now());
        breakers.register(breaker.status().clone());
        Ok(Self {
            url: format!("{}/chat/completions", cfg.base_url),
            slots: Semaphore::new(cfg.concurrency.get()),
            breaker: Mutex::new(breaker),
            budget: Mutex::new(Budget {
                window_start: Instant::now(),
                used: 0,
            }),
            cfg,
            http,
            stats: LlmStats::default(),
            outbox,
        })
    }

    pub fn model(&self) -> &str {
        &self.cfg.model
    }

    /// Calls left in the current hour (`None`: unlimited).
    pub fn budget_remaining(&self) -> Option<u32> {
        if self.cfg.calls_per_hour == 0 {
            return None;
        }
        let b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        let used = if b.window_start.elapsed() >= Duration::from_secs(3600) {
            0
        } else {
            b.used
        };
        Some(self.cfg.calls_per_hour.saturating_sub(used))
    }

    fn take_budget(&self) -> bool {
        if self.cfg.calls_per_hour == 0 {
            return true;
        }
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(b.window_start) >= Duration::from_secs(3600) {
            b.window_start = now;
            b.used = 0;
        }
        if b.used >= self.cfg.calls_per_hour {
            return false;
        }
        b.used += 1;
        true
    }

    fn note(&self, tr: Option<Transition>) {
        if let Some(t) = tr {
            self.outbox.notice(
                "breaker transition",
                vec![
                    ("breaker", "llm".into()),
                    ("from", t.from.as_str().into()),
                    ("to", t.to.as_str().into()),
                ],
            );
        }
    }

    fn acquire(&self) -> bool {
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        let (ok, tr) = b.try_acquire(std::time::Instant::now());
        drop(b);
        self.note(tr);
        ok
    }

    fn record(&self, outcome: Outcome) {
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        let tr = b.record(std::time::Instant::now(), outcome);
        drop(b);
        self.note(tr);
    }

    /// Asks the model for advice on `job`, within the configured deadline.
    pub async fn advise(&self, job: &Job, cancel: &CancellationToken) -> Result<Advice, LlmError> {
        let res = tokio::select! {
            r = self.advise_inner(job) => r,
            _ = cancel.cancelled() => Err(LlmError::Cancelled),
        };
        match &res {
            Ok(_) => self.stats.successes.fetch_add(1, Relaxed),
            Err(_) => self.stats.failures.fetch_add(1, Relaxed),
        };
        res
    }

    async fn advise_inner(&self, job: &Job) -> Result<Advice, LlmError> {
        let deadline = Instant::now() + self.cfg.deadline;
        let body = json!({
            "model": self.cfg.model,
            "temperature": 0.2,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt(job, self.cfg.max_prompt_bytes)},
            ],
        });
        let _slot = match tokio::time::timeout_at(deadline, self.slots.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(LlmError::Cancelled),
            Err(_) => return Err(LlmError::Deadline),
        };
        let mut attempt = 0u32;
        loop {
            if !self.take_budget() {
                self.stats.budget_exhausted.fetch_add(1, Relaxed);
                return Err(LlmError::Budget);
            }
            if !self.acquire() {
                self.stats.breaker_rejected.fetch_add(1, Relaxed);
                return Err(LlmError::BreakerOpen);
            }
            self.stats.calls.fetch_add(1, Relaxed);
            let err = match tokio::time::timeout_at(deadline, self.attempt(&body)).await {
                Ok(Ok(advice)) => {
                    self.record(Outcome::Success);
                    return Ok(advice);
                }
                Ok(Err(e)) => e,
                Err(_) => {
                    self.stats.timeouts.fetch_add(1, Relaxed);
                    self.record(Outcome::Timeout);
                    return Err(LlmError::Deadline);
                }
            };
            match &err {
                LlmError::Transport { timeout: true, .. } => {
                    self.stats.timeouts.fetch_add(1, Relaxed);
                    self.record(Outcome::Timeout)
                }
                LlmError::Invalid(_) => {
                    self.stats.invalid_responses.fetch_add(1, Relaxed);
                    self.record(Outcome::Failure)
                }
                _ => self.record(Outcome::Failure),
            }
            if !err.retryable() || attempt >= self.cfg.max_retries {
                return Err(err);
            }
            let wait = self.backoff(attempt, &err);
            if wait > MAX_RETRY_AFTER || Instant::now() + wait >= deadline {
                return Err(LlmError::Deadline);
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
            self.stats.retries.fetch_add(1, Relaxed);
        }
    }

    /// Exponential back-off with full jitter; at least the server's `Retry-After`.
    fn backoff(&self, attempt: u32, err: &LlmError) -> Duration {
        let exp = self
            .cfg
            .backoff_base
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .min(self.cfg.backoff_max);
        let jittered = exp.mul_f64(rand::rng().random_range(0.0..=1.0));
        match err {
            LlmError::Status {
                retry_after: Some(ra),
                ..
            } => jittered.max(*ra),
            _ => jittered,
        }
    }

    async fn attempt(&self, body: &Value) -> Result<Advice, LlmError> {
        let mut req = self.http.post(&self.url).json(body);
        if let Some(k) = &self.cfg.api_key {
            req = req.bearer_auth(k.expose());
        }
        let transport = |e: reqwest::Error| LlmError::Transport {
            timeout: e.is_timeout(),
            // Without the URL: it is configuration, and a query string could hold a key.
            msg: e.without_url().to_string(),
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(LlmError::Redirect {
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            return Err(LlmError::Status {
                status: status.as_u16(),
                retryable: status.as_u16() == 429 || status.is_server_error(),
                retry_after,
            });
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if buf.len() + chunk.len() > self.cfg.max_response_bytes {
                return Err(LlmError::Invalid("response too large".into()));
            }
            buf.extend_from_slice(&chunk);
        }
        parse_response(&buf)
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`),
/// as a wait from `now` (zero for a date in the past).
pub fn parse_retry_after(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let fmt = time::format_description::parse_borrowed::<1>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .ok()?;
    let at = time::PrimitiveDateTime::parse(v, &fmt).ok()?.assume_utc();
    let at = std::time::SystemTime::from(at);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

const SYSTEM_PROMPT: &str = "You are a senior site reliability engineer. Given one application \
error (already sanitized), explain the most likely cause and how to fix it. Answer with ONE JSON \
object and nothing else, with exactly these keys: \"summary\" (one sentence), \"likely_cause\" \
(string), \"fix_steps\" (array of 1 to 8 short imperative strings), \"confidence\" (number from \
0 to 1).";

/// The user message: only sanitized event fields, capped at `max` bytes.
pub fn prompt(job: &Job, max: usize) -> String {
    let mut p = String::with_capacity(max.min(8192));
    p.push_str("Service: ");
    p.push_str(&job.service);
    p.push_str("\nClass: ");
    p.push_str(job.class.as_str());
    if let Some(n) = &job.name {
        p.push_str("\nError name: ");
        p.push_str(n);
    }
    p.push_str("\nMessage: ");
    p.push_str(&job.message);
    if let Some(s) = &job.stack {
        p.push_str("\nStack trace (top):\n");
        p.push_str(&crate::json::unescape_capped(s));
    }
    let cut = crate::json::floor_char_boundary(&p, max);
    p.truncate(cut);
    p
}

/// Extracts and validates the advice from a chat-completions response body.
pub fn parse_response(body: &[u8]) -> Result<Advice, LlmError> {
    let bad = |m: &str| LlmError::Invalid(m.to_string());
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let content = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no choices[0].message.content"))?;
    let content = content.trim();
    // Some models wrap JSON in a Markdown fence despite being told not to.
    let content = content
        .strip_prefix("```json")
        .or_else(|| content.strip_prefix("```"))
        .and_then(|c| c.strip_suffix("```"))
        .unwrap_or(content)
        .trim();
    let a: Value =
        serde_json::from_str(content).map_err(|e| bad(&format!("content is not JSON: {e}")))?;
    // The model's text is kept, cached and shown: no control characters, bidi or invisible
    // formatting survive into it (a second channel for what `display` guards against).
    let clean = |s: &str| crate::display::strip_controls(s).trim().to_string();
    let text = |key: &str, max: usize| -> Result<String, LlmError> {
        match a.get(key).and_then(Value::as_str).map(clean) {
            Some(s) if !s.is_empty() && s.chars().count() <= max => Ok(s),
            _ => Err(bad(&format!(
                "`{key}` must be a non-empty string of at most {max} chars"
            ))),
        }
    };
    let summary = text("summary", MAX_SUMMARY)?;
    let likely_cause = text("likely_cause", MAX_CAUSE)?;
    let steps = a
        .get("fix_steps")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty() && s.len() <= MAX_STEPS)
        .ok_or_else(|| {
            bad(&format!(
                "`fix_steps` must be an array of 1 to {MAX_STEPS} strings"
            ))
        })?;
    let mut fix_steps = Vec::with_capacity(steps.len());
    for s in steps {
        match s.as_str().map(clean) {
            Some(s) if !s.is_empty() && s.chars().count() <= MAX_STEP => fix_steps.push(s),
            _ => return Err(bad("`fix_steps` items must be non-empty strings")),
        }
    }
    let confidence = a
        .get("confidence")
        .and_then(Value::as_f64)
        .filter(|c| (0.0..=1.0).contains(c))
        .ok_or_else(|| bad("`confidence` must be a number from 0 to 1"))?;
    Ok(Advice {
        summary,
        likely_cause,
        fix_steps,
        confidence,
        rule: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::classify::Class;

    fn completion(content: &str) -> Vec<u8> {
        json!({"choices":[{"message":{"role":"assistant","content":content}}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn control_characters_in_advice_are_stripped() {
        let content = serde_json::json!({
            "summary": "restart\u{1b}]0;pwned\u{7} it\u{202e}",
            "likely_cause": "c\u{85}\u{2028}",
            "fix_steps": ["a\u{1b}[8m", "\u{200b}"],
            "confidence": 0.5,
        })
        .to_string();
        let body = serde_json::json!({"choices": [{"message": {"content": content}}]}).to_string();
        match parse_response(body.as_bytes()) {
            // the second step is empty once stripped: the advice is refused, not shown blank
            Err(LlmError::Invalid(m)) => assert!(m.contains("fix_steps"), "{m}"),
            other => panic!("{other:?}"),
        }
        let content = content.replace('\u{200b}', "b");
        let body = serde_json::json!({"choices": [{"message": {"content": content}}]}).to_string();
        let a = parse_response(body.as_bytes()).unwrap();
        assert_eq!(a.summary, "restart]0;pwned it");
        assert_eq!(a.likely_cause, "c");
        assert_eq!(a.fix_steps, ["a[8m", "b"]);
    }

    #[test]
    fn valid_advice_is_accepted_even_in_a_fence() {
        let c = r#"{"summary":"s","likely_cause":"c","fix_steps":["a","b"],"confidence":0.7}"#;
        let a = parse_response(&completion(c)).unwrap();
        assert_eq!(a.fix_steps, ["a", "b"]);
        let fenced = format!("```json\n{c}\n```");
        assert_eq!(parse_response(&completion(&fenced)).unwrap(), a);
    }

    #[test]
    fn schema_violations_are_rejected() {
        for c in [
            "not json",
            r#"{"summary":"s","likely_cause":"c","fix_steps":[],"confidence":0.7}"#,
            r#"{"summary":"","likely_cause":"c","fix_steps":["a"],"confidence":0.7}"#,
            r#"{"summary":"s","likely_cause":"c","fix_steps":["a"],"confidence":7}"#,
            r#"{"summary":"s","fix_steps":["a"],"confidence":0.5}"#,
            r#"{"summary":"s","likely_cause":"c","fix_steps":[1],"confidence":0.5}"#,
        ] {
            assert!(
                matches!(parse_response(&completion(c)), Err(LlmError::Invalid(_))),
                "{c}"
            );
        }
        assert!(parse_response(b"{\"choices\":[]}").is_err());
        assert!(parse_response(b"<html>").is_err());
    }

    fn client(calls_per_hour: u32) -> LlmClient {
        let cfg = crate::analysis::config::AnalysisConfig {
            llm_base_url: "http://127.0.0.1:9/v1".into(),
            llm_calls_per_hour: calls_per_hour,
            llm_backoff_base: Duration::from_millis(100),
            llm_backoff_max: Duration::from_millis(400),
            ..Default::default()
        }
        .validate(std::path::Path::new("x.log"))
        .unwrap();
        LlmClient::new(
            cfg.llm.unwrap(),
            crate::outbox::outbox().0,
            &Registry::default(),
        )
        .unwrap()
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 08:49:37
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[tokio::test]
    async fn hourly_budget_is_enforced() {
        let c = client(2);
        assert_eq!(c.budget_remaining(), Some(2));
        assert!(c.take_budget() && c.take_budget());
        assert!(!c.take_budget());
        assert_eq!(c.budget_remaining(), Some(0));
        assert_eq!(client(0).budget_remaining(), None);
    }

    #[tokio::test]
    async fn backoff_is_jittered_capped_and_honours_retry_after() {
        let c = client(0);
        let plain = LlmError::Status {
            status: 503,
            retryable: true,
            retry_after: None,
        };
        for attempt in 0..10 {
            let cap = Duration::from_millis(100 * (1u64 << attempt.min(2)));
            for _ in 0..50 {
                assert!(c.backoff(attempt, &plain) <= cap);
            }
        }
        let ra = LlmError::Status {
            status: 429,
            retryable: true,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert!(c.backoff(0, &ra) >= Duration::from_secs(2));
        assert!(plain.retryable() && !LlmError::Invalid("x".into()).retryable());
        assert!(!LlmError::Status {
            status: 400,
            retryable: false,
            retry_after: None
        }
        .retryable());
    }

    #[test]
    fn prompt_is_capped_and_holds_only_event_fields() {
        let job = Job {
            fingerprint: 1,
            event_id: "01J".into(),
            name: Some("TypeError".into()),
            message: "x".repeat(10_000).into(),
            stack: Some("at f (a.js:1:2)\\n    at g".into()),
            service: "checkout".into(),
            class: Class::Unknown,
        };
        let p = prompt(&job, 512);
        assert!(p.len() <= 512);
        assert!(p.starts_with("Service: checkout\nClass: "));
        let small = Job {
            message: "boom".into(),
            ..job
        };
        let p = prompt(&small, 4096);
        assert!(p.contains("Error name: TypeError\nMessage: boom\nStack trace (top):\nat f (a.js:1:2)\n    at g"), "{p}");
    }
}
