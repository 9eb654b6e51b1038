//! `[analysis]`: the raw config section and its validated form.
//!
//! Keys are flat (`llm_base_url`, not `[analysis.llm]`) so every one of them can be set from the
//! environment as `QERRORS_ANALYSIS_<KEY>`. The LLM API key is never a config value: the config
//! names an environment variable or a file that holds it, and the key itself is only kept in a
//! [`Secret`] whose `Debug` prints `[REDACTED]`.
//!
//! No error here repeats a value of the `llm_*` keys: a key pasted into `llm_api_key_env` by
//! mistake, or credentials in `llm_base_url`, would otherwise reach stderr, `--check-config`,
//! the `config reload rejected` record and `/stats`. The errors name the key and the rule.
//!
//! The endpoint's transport ([`Transport`]): `https://`; plain `http://` only to a loopback
//! address (the prompt never leaves the host, as with a local model server) or with
//! `llm_allow_http = true`; never with credentials, a query or a fragment in the URL.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::config::check::{self, invalid, nonzero, positive};
use crate::config::ConfigError;

/// Default name of the cache file, next to the log.
pub const CACHE_FILE_NAME: &str = "advice-cache.json";

/// `[analysis]`: fix advice per fingerprint (built-in rules, optionally an LLM).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Analyse new fingerprints at all (rules and LLM).
    pub enabled: bool,
    /// Use the built-in rule set (shipped with the daemon, offline).
    pub builtin_rules: bool,
    /// Extra rules (TOML, same format as the built-in set; see docs/analysis.md). They are
    /// tried before the built-in ones. Empty: none.
    pub rules_file: String,
    /// Fingerprints waiting for analysis; when full, new ones are counted and skipped (ingest
    /// never waits).
    pub queue_capacity: usize,
    /// Analyses running at once.
    pub workers: usize,
    /// How long advice stays valid; a fingerprint seen after that is analysed again.
    #[serde(with = "crate::config::check::duration")]
    pub cache_ttl: Duration,
    /// Memory bound of the advice cache.
    #[serde(deserialize_with = "crate::config::check::byte_size")]
    pub cache_max_bytes: ByteSize,
    /// Where the cache is saved at shutdown and loaded at start. Empty: `advice-cache.json`
    /// next to the log file; `off`: not persisted.
    pub cache_file: String,
    /// OpenAI-compatible endpoint, up to the version (`https://api.openai.com/v1`); the daemon
    /// POSTs to `<base_url>/chat/completions`. Empty: no LLM, no network. `https://`, or
    /// `http://` to a loopback address (`127.0.0.0/8`, `::1`, `localhost`); no `user:password@`,
    /// query or fragment. Redirects are never followed.
    pub llm_base_url: String,
    /// Allow a plain `http://` `llm_base_url` to a host that is not loopback (the prompt and
    /// the key then cross the network in clear text). Loopback needs no opt-in.
    pub llm_allow_http: bool,
    /// Model name sent with each request; the advice's `source` is `llm:<model>`.
    pub llm_model: String,
    /// Name of the environment variable holding the API key (never the key itself).
    pub llm_api_key_env: String,
    /// Path of a file holding the API key (first line); used when `llm_api_key_env` is empty.
    pub llm_api_key_file: String,
    /// TCP (and TLS) connect timeout.
    #[serde(with = "crate::config::check::duration")]
    pub llm_connect_timeout: Duration,
    /// Timeout of one HTTP request (send to last byte of the response).
    #[serde(with = "crate::config::check::duration")]
    pub llm_request_timeout: Duration,
    /// Overall deadline of one analysis's LLM part, retries and back-off included.
    #[serde(with = "crate::config::check::duration")]
    pub llm_deadline: Duration,
    /// Retries after the first attempt (on connect errors, timeouts, 429 and 5xx).
    pub llm_max_retries: u32,
    /// First back-off; doubles per retry, with full jitter, up to `llm_backoff_max`.
    #[serde(with = "crate::config::check::duration")]
    pub llm_backoff_base: Duration,
    #[serde(with = "crate::config::check::duration")]
    pub llm_backoff_max: Duration,
    /// LLM requests in flight at once (also the idle keep-alive connections kept).
    pub llm_concurrency: usize,
    /// Most LLM requests (retries included) per hour; 0 = no limit.
    pub llm_calls_per_hour: u32,
    /// Cap on the event text put in the prompt.
    #[serde(deserialize_with = "crate::config::check::byte_size")]
    pub llm_max_prompt_bytes: ByteSize,
    /// Longest response body read.
    #[serde(deserialize_with = "crate::config::check::byte_size")]
    pub llm_max_response_bytes: ByteSize,
    /// Breaker: failure rate (0–1] over the window that opens it.
    pub llm_breaker_failure_rate: f64,
    /// Breaker: fewest calls in the window before the rate counts.
    pub llm_breaker_min_calls: u32,
    /// Breaker: time spent open before a probe.
    #[serde(with = "crate::config::check::duration")]
    pub llm_breaker_cool_down: Duration,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            builtin_rules: true,
            rules_file: String::new(),
            queue_capacity: 256,
            workers: 4,
            cache_ttl: Duration::from_secs(24 * 3600),
            cache_max_bytes: ByteSize::mib(8),
            cache_file: String::new(),
            llm_base_url: String::new(),
            llm_allow_http: false,
            llm_model: "gpt-4o-mini".into(),
            llm_api_key_env: String::new(),
            llm_api_key_file: String::new(),
            llm_connect_timeout: Duration::from_secs(3),
            llm_request_timeout: Duration::from_secs(20),
            llm_deadline: Duration::from_secs(60),
            llm_max_retries: 2,
            llm_backoff_base: Duration::from_millis(500),
            llm_backoff_max: Duration::from_secs(10),
            llm_concurrency: 2,
            llm_calls_per_hour: 200,
            llm_max_prompt_bytes: ByteSize::kib(4),
            llm_max_response_bytes: ByteSize::kib(64),
            llm_breaker_failure_rate: 0.5,
            llm_breaker_min_calls: 4,
            llm_breaker_cool_down: Duration::from_secs(30),
        }
    }
}

/// A secret string: `Debug` never shows it.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Validated `[analysis]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub enabled: bool,
    pub builtin_rules: bool,
    pub rules_file: Option<PathBuf>,
    pub queue_capacity: NonZeroUsize,
    pub workers: NonZeroUsize,
    pub cache_ttl: Duration,
    pub cache_max_bytes: u64,
    /// `None`: not persisted.
    pub cache_file: Option<PathBuf>,
    pub llm: Option<Llm>,
}

/// How the LLM endpoint is reached, decided from `llm_base_url` and `llm_allow_http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `https://`: the certificate is checked against the trust store (`crate::tls`).
    Https,
    /// `http://` to a loopback address: never leaves the host, so proxies named in the
    /// environment (`HTTP_PROXY`, `ALL_PROXY`) are not used for it.
    LoopbackHttp,
    /// `http://` elsewhere, allowed by `llm_allow_http`.
    Http,
}

/// Validated LLM settings (present only when `llm_base_url` is set).
#[derive(Debug, Clone, PartialEq)]
pub struct Llm {
    /// Without a trailing `/`.
    pub base_url: String,
    pub transport: Transport,
    pub model: String,
    pub api_key: Option<Secret>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub deadline: Duration,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub concurrency: NonZeroUsize,
    /// 0 = unlimited.
    pub calls_per_hour: u32,
    pub max_prompt_bytes: usize,
    pub max_response_bytes: usize,
    pub breaker: BreakerConfig,
}

impl AnalysisConfig {
    /// Validates; `log_path` places the default cache file. Reads the API key (from the named
    /// environment variable or file) once, here.
    pub fn validate(self, log_path: &Path) -> Result<Analysis, ConfigError> {
        let cache_file = match self.cache_file.trim() {
            "off" => None,
            "" => Some(
                log_path
                    .parent()
                    .map(|d| d.join(CACHE_FILE_NAME))
                    .unwrap_or_else(|| PathBuf::from(CACHE_FILE_NAME)),
            ),
            p => Some(PathBuf::from(p)),
        };
        check::at_least_bytes(
            "analysis.cache_max_bytes",
            self.cache_max_bytes,
            check::MIN_CACHE_BYTES,
            "1 KiB",
        )?;
        let rules_file =
            (!self.rules_file.trim().is_empty()).then(|| PathBuf::from(&self.rules_file));
        if let Some(p) = &rules_file {
            // Compiled here too so `--check-config` and SIGHUP name a bad rule.
            super::rules::Rules::load(false, Some(p))
                .map_err(|e| invalid("analysis.rules_file", e.to_string()))?;
        }
        let llm = if self.llm_base_url.trim().is_empty() {
            None
        } else {
            Some(self.llm()?)
        };
        Ok(Analysis {
            enabled: self.enabled,
            builtin_rules: self.builtin_rules,
            rules_file: (!self.rules_file.trim().is_empty())
                .then(|| PathBuf::from(&self.rules_file)),
            queue_capacity: nonzero("analysis.queue_capacity", self.queue_capacity)?,
            workers: nonzero("analysis.workers", self.workers)?,
            cache_ttl: positive("analysis.cache_ttl", self.cache_ttl)?,
            cache_max_bytes: self.cache_max_bytes.as_u64(),
            cache_file,
            llm,
        })
    }

    fn llm(&self) -> Result<Llm, ConfigError> {
        let base_url = self.llm_base_url.trim().trim_end_matches('/').to_string();
        let transport = endpoint(&base_url, self.llm_allow_http)?;
        if transport == Transport::Https {
            // Here too, so `--check-config` and SIGHUP report an unreadable SSL_CERT_FILE.
            crate::tls::root_store()
                .map_err(|e| invalid("analysis.llm_base_url", e.to_string()))?;
        }
        if self.llm_model.trim().is_empty() {
            return Err(invalid("analysis.llm_model", "must not be empty"));
        }
        let api_key = self.api_key()?;
        if !(self.llm_breaker_failure_rate > 0.0 && self.llm_breaker_failure_rate <= 1.0) {
            return Err(invalid(
                "analysis.llm_breaker_failure_rate",
                "must be in (0, 1]",
            ));
        }
        if self.llm_backoff_max < self.llm_backoff_base {
            return Err(invalid(
                "analysis.llm_backoff_max",
                "must be at least analysis.llm_backoff_base",
            ));
        }
        let max_prompt_bytes = check::at_least_bytes(
            "analysis.llm_max_prompt_bytes",
            self.llm_max_prompt_bytes,
            check::MIN_PROMPT_BYTES as u64,
            "256 bytes",
        )? as usize;
        Ok(Llm {
            base_url,
            transport,
            model: self.llm_model.trim().to_string(),
            api_key,
            connect_timeout: positive("analysis.llm_connect_timeout", self.llm_connect_timeout)?,
            request_timeout: positive("analysis.llm_request_timeout", self.llm_request_timeout)?,
            deadline: positive("analysis.llm_deadline", self.llm_deadline)?,
            max_retries: self.llm_max_retries,
            backoff_base: positive("analysis.llm_backoff_base", self.llm_backoff_base)?,
            backoff_max: self.llm_backoff_max,
            concurrency: nonzero("analysis.llm_concurrency", self.llm_concurrency)?,
            calls_per_hour: self.llm_calls_per_hour,
            max_prompt_bytes,
            max_response_bytes: (self.llm_max_response_bytes.as_u64() as usize)
                .max(check::MIN_RESPONSE_BYTES),
            breaker: BreakerConfig {
                window: Duration::from_secs(60),
                min_calls: self.llm_breaker_min_calls.max(1),
                failure_rate: self.llm_breaker_failure_rate,
                max_timeouts: 2,
                cool_down: positive("analysis.llm_breaker_cool_down", self.llm_breaker_cool_down)?,
                probes: 1,
                ..BreakerConfig::default()
            },
        })
    }

    /// The key, from the environment variable or the file the config names. The errors never
    /// repeat what the config says (it may be the key itself, pasted in the wrong place).
    fn api_key(&self) -> Result<Option<Secret>, ConfigError> {
        let (key, raw) = if !self.llm_api_key_env.is_empty() {
            const KEY: &str = "analysis.llm_api_key_env";
            if !is_env_var_name(&self.llm_api_key_env) {
                return Err(invalid(
                    KEY,
                    "not a valid environment variable name (letters, digits and `_`, not \
                     starting with a digit). If it is the API key itself: put the key in the \
                     daemon's environment (or a file, llm_api_key_file) and name the variable \
                     here; the value is not repeated in this message",
                ));
            }
            match std::env::var(&self.llm_api_key_env) {
                Ok(k) if !k.trim().is_empty() => (KEY, k),
                _ => {
                    return Err(invalid(
                        KEY,
                        "the environment variable it names is not set (or empty) in the \
                         daemon's environment",
                    ))
                }
            }
        } else if !self.llm_api_key_file.is_empty() {
            const KEY: &str = "analysis.llm_api_key_file";
            // The io error's text holds no path.
            let text = std::fs::read_to_string(&self.llm_api_key_file)
                .map_err(|e| invalid(KEY, format!("cannot read the file it names: {e}")))?;
            match text.lines().next().map(str::trim) {
                Some(k) if !k.is_empty() => (KEY, k.to_string()),
                _ => return Err(invalid(KEY, "the file it names is empty")),
            }
        } else {
            return Ok(None);
        };
        let raw = raw.trim();
        // Sent as `Authorization: Bearer <key>`: a character a header cannot carry would fail
        // every request.
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                key,
                "the key holds spaces or characters an HTTP header cannot carry",
            ));
        }
        Ok(Some(Secret(raw.to_string())))
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what shells and systemd's `Environment=` accept as a name. API
/// keys have `-` (`sk-…`) or are long mixed-case strings; most fail this test.
fn is_env_var_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Checks `llm_base_url` (already trimmed) and says how it is reached. No message repeats the
/// URL or a part of it: it may carry credentials.
fn endpoint(url: &str, allow_http: bool) -> Result<Transport, ConfigError> {
    const KEY: &str = "analysis.llm_base_url";
    // url's parse errors ("invalid port number", "empty host") hold no part of the input.
    let u = reqwest::Url::parse(url).map_err(|e| invalid(KEY, format!("not a URL: {e}")))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(invalid(
            KEY,
            "must not carry a user name or password (`user:password@host`); give the API key \
             with llm_api_key_env or llm_api_key_file (the URL is not repeated here)",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(invalid(
            KEY,
            "must not have a query (`?…`) or fragment (`#…`): the daemon appends \
             /chat/completions to it; give the API key with llm_api_key_env or \
             llm_api_key_file (the URL is not repeated here)",
        ));
    }
    // The parser has normalised the host: IPv4 in dotted form, IPv6 in brackets, names in
    // lower case.
    let host = u.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match u.scheme() {
        "https" => Ok(Transport::Https),
        "http" if loopback => Ok(Transport::LoopbackHttp),
        "http" if allow_http => Ok(Transport::Http),
        "http" => Err(invalid(
            KEY,
            "plain http:// to a host that is not loopback sends the prompt and the API key in \
             clear text: use https://, or set analysis.llm_allow_http = true to accept that",
        )),
        _ => Err(invalid(KEY, "must be an https:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rules_only_without_network() {
        let a = AnalysisConfig::default()
            .validate(Path::new("/var/log/qerrors/errors.log"))
            .unwrap();
        assert!(a.enabled && a.builtin_rules);
        assert!(a.llm.is_none());
        assert_eq!(
            a.cache_file.as_deref(),
            Some(Path::new("/var/log/qerrors/advice-cache.json"))
        );
    }

    #[test]
    fn key_comes_from_a_file_and_never_shows_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "sk-very-secret-1234\n").unwrap();
        let c = AnalysisConfig {
            llm_base_url: "http://127.0.0.1:9/v1/".into(),
            llm_api_key_file: f.display().to_string(),
            ..Default::default()
        };
        let a = c.validate(Path::new("x.log")).unwrap();
        let llm = a.llm.as_ref().unwrap();
        assert_eq!(llm.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(
            llm.api_key.as_ref().unwrap().expose(),
            "sk-very-secret-1234"
        );
        assert!(!format!("{a:?}").contains("sk-very-secret"));
    }

    #[test]
    fn a_bad_rules_file_fails_validation() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rules.toml");
        std::fs::write(&f, "[[rule]]\nid = \"x\"\npatterns = ['(']\nsummary = \"s\"\nlikely_cause = \"c\"\nfix_steps = [\"a\"]\nconfidence = 0.5\n").unwrap();
        let e = AnalysisConfig {
            rules_file: f.display().to_string(),
            ..Default::default()
        }
        .validate(Path::new("x.log"))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("analysis.rules_file: ") && e.contains("rule[0] (x): patterns[0]"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |c: AnalysisConfig| c.validate(Path::new("x.log")).unwrap_err().to_string();
        assert!(bad(AnalysisConfig {
            llm_base_url: "ftp://x".into(),
            ..Default::default()
        })
        .starts_with("analysis.llm_base_url"));
        assert!(bad(AnalysisConfig {
            workers: 0,
            ..Default::default()
        })
        .starts_with("analysis.workers"));
        assert!(bad(AnalysisConfig {
            llm_base_url: "http://127.0.0.1:9/v1".into(),
            llm_api_key_env: "QERRORS_TEST_SURELY_UNSET_VAR".into(),
            ..Default::default()
        })
        .starts_with("analysis.llm_api_key_env"));
    }

    fn transport(url: &str, allow_http: bool) -> Result<Transport, String> {
        endpoint(url, allow_http).map_err(|e| e.to_string())
    }

    #[test]
    fn https_is_required_except_on_loopback_or_with_the_opt_in() {
        for (url, want) in [
            ("https://api.example.com/v1", Transport::Https),
            ("https://127.0.0.1:8443/v1", Transport::Https),
            ("http://127.0.0.1:11434/v1", Transport::LoopbackHttp),
            ("http://127.9.8.7/v1", Transport::LoopbackHttp),
            ("http://localhost:11434/v1", Transport::LoopbackHttp),
            ("http://LOCALHOST/v1", Transport::LoopbackHttp),
            ("http://[::1]:8080/v1", Transport::LoopbackHttp),
        ] {
            assert_eq!(transport(url, false), Ok(want), "{url}");
        }
        for url in [
            "http://api.example.com/v1",
            "http://10.0.0.5/v1",
            "http://[::ffff:127.0.0.1]/v1",
            "http://localhost.example.com/v1",
        ] {
            let e = transport(url, false).unwrap_err();
            assert!(
                e.starts_with("analysis.llm_base_url: plain http://")
                    && e.contains("llm_allow_http"),
                "{url}: {e}"
            );
            assert_eq!(transport(url, true), Ok(Transport::Http), "{url}");
        }
        for url in ["ftp://x/v1", "file:///etc/passwd", "unix:/run/x"] {
            assert_eq!(
                transport(url, true).unwrap_err(),
                "analysis.llm_base_url: must be an https:// URL"
            );
        }
    }

    #[test]
    fn credentials_query_and_fragment_are_refused_without_being_repeated() {
        for url in [
            "https://alice:hunter2pass@api.example.com/v1",
            "https://sk-proj-0123456789@api.example.com/v1",
            "https://:hunter2pass@api.example.com/v1",
            "http://alice:hunter2pass@127.0.0.1/v1",
            "https://api.example.com/v1?key=hunter2pass",
            "https://api.example.com/v1#hunter2pass",
            "https://api.example.com:99999999/hunter2pass",
        ] {
            let e = bad_with(AnalysisConfig {
                llm_base_url: url.into(),
                ..Default::default()
            });
            assert!(e.starts_with("analysis.llm_base_url: "), "{url}: {e}");
            for part in ["hunter2pass", "alice", "sk-proj", "api.example.com"] {
                assert!(!e.contains(part), "{url}: {e}");
            }
        }
    }

    fn bad_with(c: AnalysisConfig) -> String {
        c.validate(Path::new("x.log")).unwrap_err().to_string()
    }

    #[test]
    fn a_key_pasted_as_the_variable_name_is_not_repeated() {
        let key = "sk-proj-AbCdEf0123456789AbCdEf0123456789";
        for name in [key, "9LIVES", "MY VAR", "key=value", "AIzaSyA-0123456789"] {
            let e = bad_with(AnalysisConfig {
                llm_base_url: "http://127.0.0.1:9/v1".into(),
                llm_api_key_env: name.into(),
                ..Default::default()
            });
            assert!(
                e.starts_with("analysis.llm_api_key_env: not a valid environment variable name")
                    && e.contains("If it is the API key itself"),
                "{e}"
            );
            assert!(!e.contains(name), "{e}");
        }
        // A well-formed name that is not set: not repeated either (it may be a key that happens
        // to look like a name).
        let name = "AKIAQERRORSTESTUNSETVAR";
        let e = bad_with(AnalysisConfig {
            llm_base_url: "http://127.0.0.1:9/v1".into(),
            llm_api_key_env: name.into(),
            ..Default::default()
        });
        assert!(e.contains("is not set") && !e.contains(name), "{e}");
        assert!(is_env_var_name("OPENAI_API_KEY") && is_env_var_name("_k1"));
    }

    #[test]
    fn key_file_errors_do_not_repeat_the_path_and_a_bad_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("sk-live-hunter2pass");
        let e = bad_with(AnalysisConfig {
            llm_base_url: "http://127.0.0.1:9/v1".into(),
            llm_api_key_file: missing.display().to_string(),
            ..Default::default()
        });
        assert!(
            e.starts_with("analysis.llm_api_key_file: cannot read the file it names: "),
            "{e}"
        );
        assert!(!e.contains("hunter2pass"), "{e}");
        let f = dir.path().join("key");
        std::fs::write(&f, "sk-live hunter2pass\n").unwrap();
        let e = bad_with(AnalysisConfig {
            llm_base_url: "http://127.0.0.1:9/v1".into(),
            llm_api_key_file: f.display().to_string(),
            ..Default::default()
        });
        assert!(
            e.contains("HTTP header") && !e.contains("hunter2pass"),
            "{e}"
        );
    }
}
