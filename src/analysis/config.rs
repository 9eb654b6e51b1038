//! `[analysis]`: the raw config section and its validated form.
//!
//! Keys are flat (`llm_base_url`, not `[analysis.llm]`) so every one of them can be set from the
//! environment as `QERRORS_ANALYSIS_<KEY>`. The LLM API key is never a config value: the config
//! names an environment variable or a file that holds it, and the key itself is only kept in a
//! [`Secret`] whose `Debug` prints `[REDACTED]`.

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
    /// POSTs to `<base_url>/chat/completions`. Empty: no LLM, no network.
    pub llm_base_url: String,
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

/// Validated LLM settings (present only when `llm_base_url` is set).
#[derive(Debug, Clone, PartialEq)]
pub struct Llm {
    /// Without a trailing `/`.
    pub base_url: String,
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
        match reqwest::Url::parse(&base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(invalid(
                    "analysis.llm_base_url",
                    format!("`{base_url}` is not an http(s) URL"),
                ))
            }
        }
        if self.llm_model.trim().is_empty() {
            return Err(invalid("analysis.llm_model", "must not be empty"));
        }
        let api_key = if !self.llm_api_key_env.is_empty() {
            match std::env::var(&self.llm_api_key_env) {
                Ok(k) if !k.trim().is_empty() => Some(Secret(k.trim().to_string())),
                _ => {
                    return Err(invalid(
                        "analysis.llm_api_key_env",
                        format!("environment variable {} is not set", self.llm_api_key_env),
                    ))
                }
            }
        } else if !self.llm_api_key_file.is_empty() {
            let text = std::fs::read_to_string(&self.llm_api_key_file).map_err(|e| {
                invalid(
                    "analysis.llm_api_key_file",
                    format!("cannot read {}: {e}", self.llm_api_key_file),
                )
            })?;
            match text.lines().next().map(str::trim) {
                Some(k) if !k.is_empty() => Some(Secret(k.to_string())),
                _ => return Err(invalid("analysis.llm_api_key_file", "the file is empty")),
            }
        } else {
            None
        };
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
            llm_base_url: "http://x".into(),
            llm_api_key_env: "QERRORS_TEST_SURELY_UNSET_VAR".into(),
            ..Default::default()
        })
        .starts_with("analysis.llm_api_key_env"));
    }
}
