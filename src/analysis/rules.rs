//! Built-in rules: a data-driven rule set (`rules/builtin.toml`, embedded) plus an optional
//! user file in the same format, matched against an event's name, message and stack.
//!
//! All patterns of all rules are compiled into one [`RegexSet`], so matching an event is a
//! single pass whatever the number of rules; the first matching rule in file order wins (user
//! rules come before built-in ones, so they can override them).

use std::collections::HashMap;
use std::path::Path;

use regex::RegexSet;
use serde::Deserialize;

use super::Advice;

/// The rule set shipped with the daemon.
pub const BUILTIN: &str = include_str!("../../rules/builtin.toml");

/// Most rules accepted from one file (a bound on compile time and memory).
pub const MAX_RULES: usize = 2000;

/// Compiled regex size limit for the whole set (bytes), well above what the built-ins need.
const REGEX_SIZE_LIMIT: usize = 64 << 20;
/// Lazy-DFA cache per matching thread (regex's default is a few MiB). Rules run once per new
/// fingerprint, so a small cache, rebuilt more often, costs nothing noticeable and keeps the
/// per-thread memory small.
const REGEX_CACHE_LIMIT: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{source_name}: {msg}")]
    Invalid { source_name: String, msg: String },
    #[error("{source_name}: cannot read: {err}")]
    Read {
        source_name: String,
        err: std::io::Error,
    },
}

/// One rule as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Stable identifier, written in the advice as `rule`.
    pub id: String,
    /// Error names matched exactly (ASCII case-insensitive).
    #[serde(default)]
    pub names: Vec<String>,
    /// Regexes tried on `name\nmessage\nstack`.
    #[serde(default)]
    pub patterns: Vec<String>,
    pub summary: String,
    pub likely_cause: String,
    pub fix_steps: Vec<String>,
    /// 0–1.
    pub confidence: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleConfig>,
}

/// A compiled rule set.
#[derive(Debug)]
pub struct Rules {
    rules: Vec<RuleConfig>,
    /// Lowercased name → first rule with it.
    names: HashMap<String, usize>,
    set: RegexSet,
    /// Pattern index in `set` → rule index.
    owner: Vec<usize>,
}

impl Rules {
    /// Parses rule files (`(source name, text)`), earlier files first in priority.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Rules, RulesError> {
        let mut rules: Vec<RuleConfig> = Vec::new();
        for (source_name, text) in sources {
            let err = |msg: String| RulesError::Invalid {
                source_name: source_name.clone(),
                msg,
            };
            let file: RuleFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
            if file.rule.len() > MAX_RULES {
                return Err(err(format!("more than {MAX_RULES} rules")));
            }
            for (i, r) in file.rule.iter().enumerate() {
                let bad = |m: &str| err(format!("rule[{i}] ({}): {m}", r.id));
                if r.id.trim().is_empty() {
                    return Err(bad("id must not be empty"));
                }
                if r.names.is_empty() && r.patterns.is_empty() {
                    return Err(bad("needs at least one of names, patterns"));
                }
                if r.summary.trim().is_empty() || r.likely_cause.trim().is_empty() {
                    return Err(bad("summary and likely_cause must not be empty"));
                }
                if r.fix_steps.is_empty() {
                    return Err(bad("fix_steps must not be empty"));
                }
                if !(0.0..=1.0).contains(&r.confidence) {
                    return Err(bad("confidence must be between 0 and 1"));
                }
                for (j, p) in r.patterns.iter().enumerate() {
                    if let Err(e) = regex::Regex::new(p) {
                        return Err(bad(&format!("patterns[{j}]: {e}")));
                    }
                }
            }
            rules.extend(file.rule);
        }
        let mut names = HashMap::new();
        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for n in &r.names {
                names.entry(n.to_ascii_lowercase()).or_insert(i);
            }
            for p in &r.patterns {
                patterns.push(p.as_str());
                owner.push(i);
            }
        }
        let set = regex::RegexSetBuilder::new(patterns)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_CACHE_LIMIT)
            .build()
            .map_err(|e| RulesError::Invalid {
                source_name: "rules".into(),
                msg: e.to_string(),
            })?;
        Ok(Rules {
            rules,
            names,
            set,
            owner,
        })
    }

    /// The built-in set (if `builtin`) after the rules in `user_file` (if any).
    pub fn load(builtin: bool, user_file: Option<&Path>) -> Result<Rules, RulesError> {
        let mut sources = Vec::new();
        if let Some(p) = user_file {
            let text = std::fs::read_to_string(p).map_err(|err| RulesError::Read {
                source_name: p.display().to_string(),
                err,
            })?;
            sources.push((p.display().to_string(), text));
        }
        if builtin {
            sources.push(("built-in rules".to_string(), BUILTIN.to_string()));
        }
        Self::from_sources(&sources)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// The first rule matching the event, as advice.
    pub fn advise(&self, name: Option<&str>, message: &str, stack: Option<&str>) -> Option<Advice> {
        let by_name = name.and_then(|n| self.names.get(&n.to_ascii_lowercase()).copied());
        let mut text = String::with_capacity(
            name.map_or(0, str::len) + message.len() + stack.map_or(0, str::len) + 2,
        );
        text.push_str(name.unwrap_or(""));
        text.push('\n');
        text.push_str(message);
        text.push('\n');
        text.push_str(stack.unwrap_or(""));
        let by_pattern = self.set.matches(&text).iter().map(|p| self.owner[p]).min();
        let idx = match (by_name, by_pattern) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let r = &self.rules[idx];
        Some(Advice {
            summary: r.summary.clone(),
            likely_cause: r.likely_cause.clone(),
            fix_steps: r.fix_steps.clone(),
            confidence: r.confidence,
            rule: Some(r.id.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Rules {
        Rules::load(true, None).unwrap()
    }

    /// One sample event per built-in rule: (name, message, stack, expected rule id).
    const SAMPLES: &[(Option<&str>, &str, Option<&str>, &str)] = &[
        (Some("Error"), "connect ECONNREFUSED 127.0.0.1:5432", None, "net-connection-refused"),
        (None, "dial tcp 10.0.0.5:6379: connect: connection refused", None, "net-connection-refused"),
        (Some("Error"), "read ECONNRESET", None, "net-connection-reset"),
        (Some("Error"), "socket hang up", None, "net-connection-reset"),
        (Some("Error"), "connect ETIMEDOUT 10.1.2.3:443", None, "net-timeout"),
        (None, "Get \"http://api/x\": context deadline exceeded", None, "net-timeout"),
        (Some("Error"), "getaddrinfo ENOTFOUND db.internal", None, "net-dns"),
        (Some("gaierror"), "[Errno -3] Temporary failure in name resolution", None, "net-dns"),
        (Some("Error"), "listen EADDRINUSE: address already in use :::3000", None, "net-address-in-use"),
        (Some("BrokenPipeError"), "[Errno 32] Broken pipe", None, "net-broken-pipe"),
        (None, "connect: no route to host", None, "net-host-unreachable"),
        (Some("Error"), "ENOENT: no such file or directory, open '/app/config.json'", None, "fs-not-found"),
        (Some("FileNotFoundError"), "[Errno 2] No such file or directory: 'x.csv'", None, "fs-not-found"),
        (Some("Error"), "EACCES: permission denied, open '/var/log/app.log'", None, "fs-permission-denied"),
        (Some("PermissionError"), "[Errno 13] Permission denied: '/data'", None, "fs-permission-denied"),
        (Some("Error"), "EMFILE: too many open files, open 'x'", None, "fs-too-many-open-files"),
        (Some("Error"), "ENOSPC: no space left on device, write", None, "fs-no-space"),
        (Some("OSError"), "[Errno 30] Read-only file system: '/app/cache'", None, "fs-read-only"),
        (None, "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory", None, "mem-js-heap"),
        (Some("java.lang.OutOfMemoryError"), "Java heap space", None, "mem-java-oom"),
        (Some("MemoryError"), "", None, "mem-python"),
        (None, "memory allocation of 1073741824 bytes failed", None, "mem-oom-generic"),
        (Some("RangeError"), "Maximum call stack size exceeded", None, "stack-overflow"),
        (Some("RecursionError"), "maximum recursion depth exceeded while calling a Python object", None, "stack-overflow"),
        (Some("TypeError"), "Cannot read properties of undefined (reading 'id')", None, "js-undefined-property"),
        (Some("TypeError"), "user.getName is not a function", None, "js-not-a-function"),
        (Some("ReferenceError"), "fetch is not defined", None, "js-reference-error"),
        (None, "UnhandledPromiseRejection: This error originated either by throwing inside of an async function", None, "js-unhandled-rejection"),
        (Some("Error"), "Cannot find module 'express'", None, "js-module-not-found"),
        (Some("ModuleNotFoundError"), "No module named 'requests'", None, "py-module-not-found"),
        (Some("ImportError"), "cannot import name 'x' from partially initialized module 'y'", None, "py-module-not-found"),
        (Some("KeyError"), "'user_id'", None, "py-key-error"),
        (Some("AttributeError"), "'NoneType' object has no attribute 'group'", None, "py-attribute-none"),
        (Some("AttributeError"), "'dict' object has no attribute 'foo'", None, "py-attribute-error"),
        (Some("TypeError"), "unsupported operand type(s) for +: 'int' and 'str'", None, "py-type-error"),
        (Some("ValueError"), "invalid literal for int() with base 10: 'abc'", None, "py-value-error"),
        (Some("java.lang.NullPointerException"), "Cannot invoke \"String.length()\" because \"s\" is null", None, "java-npe"),
        (Some("java.lang.NoClassDefFoundError"), "org/slf4j/LoggerFactory", None, "java-class-not-found"),
        (Some("java.util.ConcurrentModificationException"), "", None, "java-concurrent-modification"),
        (None, "panic: runtime error: invalid memory address or nil pointer dereference", None, "go-nil-pointer"),
        (None, "panic: runtime error: index out of range [3] with length 3", None, "go-index-out-of-range"),
        (None, "fatal error: concurrent map writes", None, "go-concurrent-map"),
        (None, "fatal error: all goroutines are asleep - deadlock!", None, "go-deadlock"),
        (None, "thread 'main' panicked at src/main.rs:4:5: called `Option::unwrap()` on a `None` value", None, "rust-unwrap-none"),
        (None, "thread 'main' panicked at src/lib.rs:9:13: index out of bounds: the len is 3 but the index is 7", None, "rust-index-out-of-bounds"),
        (Some("OperationalError"), "deadlock detected", None, "thread-deadlock"),
        (Some("UniqueViolation"), "duplicate key value violates unique constraint \"users_email_key\"", None, "db-unique-violation"),
        (Some("MongoServerError"), "E11000 duplicate key error collection: app.users index: email_1", None, "db-unique-violation"),
        (None, "insert or update on table \"orders\" violates foreign key constraint \"orders_user_id_fkey\"", None, "db-foreign-key"),
        (None, "FATAL: sorry, too many clients already", None, "db-too-many-connections"),
        (None, "relation \"users\" does not exist", None, "db-relation-missing"),
        (None, "password authentication failed for user \"app\"", None, "db-auth-failed"),
        (None, "could not serialize access due to concurrent update", None, "db-serialization-failure"),
        (Some("ResponseError"), "OOM command not allowed when used memory > 'maxmemory'", None, "redis-error"),
        (Some("HTTPError"), "Request failed with status code 429", None, "http-429"),
        (Some("AxiosError"), "Request failed with status code 503", None, "http-upstream-5xx"),
        (None, "upstream returned 500 Internal Server Error", None, "http-500"),
        (None, "request failed: 401 Unauthorized", None, "http-401-403"),
        (None, "GET /v2/items/7 returned 404 Not Found", None, "http-404-upstream"),
        (None, "PayloadTooLargeError: request entity too large", None, "http-payload-too-large"),
        (None, "upload failed: HTTP 413", None, "http-payload-too-large"),
        (None, "upstream answered status=502", None, "http-upstream-5xx"),
        (None, "ERROR: SQLSTATE[40001]: Serialization failure", None, "db-serialization-failure"),
        (Some("Error"), "certificate has expired", None, "tls-certificate"),
        (None, "x509: certificate signed by unknown authority", None, "tls-certificate"),
        (Some("SyntaxError"), "Unexpected token < in JSON at position 0", None, "json-parse"),
        (None, "time data '2024/01/02' does not match format '%Y-%m-%d'", None, "date-parse"),
        (None, "worker exited with code 137", None, "process-killed"),
        (None, "environment variable DATABASE_URL is not set", None, "config-missing-env"),
        (Some("ZeroDivisionError"), "division by zero", None, "division-by-zero"),
        (Some("Error"), "EIO: i/o error, read", None, "disk-io-error"),
    ];

    #[test]
    fn every_builtin_rule_has_a_sample_that_picks_it() {
        let rules = builtin();
        assert!(rules.len() >= 40, "{} rules", rules.len());
        let mut wrong = Vec::new();
        for (name, msg, stack, want) in SAMPLES {
            let got = rules.advise(*name, msg, *stack).map(|a| a.rule.unwrap());
            if got.as_deref() != Some(*want) {
                wrong.push(format!("{name:?} {msg:?}: want {want}, got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        for id in rules.ids() {
            assert!(
                SAMPLES.iter().any(|s| s.3 == id),
                "rule {id} has no sample in SAMPLES"
            );
        }
    }

    #[test]
    fn ids_are_unique_and_advice_is_complete() {
        let rules = builtin();
        let mut seen = std::collections::HashSet::new();
        for r in &rules.rules {
            assert!(seen.insert(r.id.clone()), "duplicate id {}", r.id);
            assert!(r.summary.len() <= 300 && r.fix_steps.len() <= 6, "{}", r.id);
        }
    }

    #[test]
    fn unknown_errors_get_no_advice() {
        let rules = builtin();
        assert!(rules
            .advise(Some("WidgetError"), "the widget is blue", None)
            .is_none());
    }

    #[test]
    fn stack_and_name_match_too() {
        let rules = builtin();
        let a = rules
            .advise(
                Some("Error"),
                "boom",
                Some("at x (node:net:1)\nECONNREFUSED"),
            )
            .unwrap();
        assert_eq!(a.rule.as_deref(), Some("net-connection-refused"));
        let a = rules.advise(Some("keyerror"), "x", None).unwrap();
        assert_eq!(a.rule.as_deref(), Some("py-key-error"));
    }

    #[test]
    fn user_rules_come_first_and_bad_ones_name_the_rule() {
        let user = r#"
[[rule]]
id = "my-refused"
patterns = ['ECONNREFUSED']
summary = "Ours."
likely_cause = "Our proxy."
fix_steps = ["Restart our proxy."]
confidence = 0.5
"#;
        let rules = Rules::from_sources(&[
            ("user".into(), user.into()),
            ("builtin".into(), BUILTIN.into()),
        ])
        .unwrap();
        let a = rules.advise(None, "connect ECONNREFUSED", None).unwrap();
        assert_eq!(a.rule.as_deref(), Some("my-refused"));

        let bad = user.replace("['ECONNREFUSED']", "['(']");
        let e = Rules::from_sources(&[("user.toml".into(), bad)]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("user.toml: rule[0] (my-refused): patterns[0]"),
            "{e}"
        );
        let bad = user.replace("0.5", "2.0");
        assert!(Rules::from_sources(&[("u".into(), bad)]).is_err());
    }
}
