//! The `[limit]` configuration: raw serde structs (every field is user documentation) and their
//! validation into the runtime [`Settings`] and [`RuleSet`].
//!
//! SIGHUP may change the rules, the duplicate policy and `local_share` (the limiter's state is
//! reset when they change); the Redis connection settings, `sync_interval`, `max_keys` and the
//! breaker need a restart (see [`Settings::same_connection`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;

/// Shortest accepted rule window. Windows are counted in nanoseconds of wall-clock time;
/// below a millisecond the per-window bookkeeping would cost more than it limits.
pub const MIN_WINDOW: Duration = Duration::from_millis(1);

/// Longest rule name (it is part of every Redis key).
pub const MAX_NAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{key}: {msg}")]
pub struct LimitConfigError {
    pub key: String,
    pub msg: String,
}

fn err(key: impl Into<String>, msg: impl Into<String>) -> LimitConfigError {
    LimitConfigError {
        key: key.into(),
        msg: msg.into(),
    }
}

/// What a rule counts events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// One budget per fingerprint (per bug).
    Fingerprint,
    /// One budget per `service` (the event's, else the peer's process name).
    Service,
    /// One budget per peer uid (from SO_PEERCRED; cannot be forged by the client).
    Uid,
    /// One budget for everything.
    Global,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Fingerprint => "fingerprint",
            KeyKind::Service => "service",
            KeyKind::Uid => "uid",
            KeyKind::Global => "global",
        }
    }
}

/// `[[limit.rules]]`: one limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name of the rule, part of its Redis keys (letters, digits, `-`, `_`); default: the key
    /// kind. Daemons sharing a limit must use the same name, rate and window for it.
    #[serde(default)]
    pub name: String,
    /// `fingerprint`, `service`, `uid` or `global`.
    pub key: KeyKind,
    /// Events admitted per `window` (sustained).
    pub rate: u64,
    /// The period `rate` applies to.
    #[serde(with = "crate::config::check::duration", default = "default_window")]
    pub window: Duration,
    /// Most events admitted at once by the local limiter; 0 = `rate`.
    #[serde(default)]
    pub burst: u64,
    /// Share this limit through Redis (when `limit.redis_url` is set); false keeps it per daemon.
    #[serde(default = "yes")]
    pub shared: bool,
}

fn default_window() -> Duration {
    Duration::from_secs(1)
}

fn yes() -> bool {
    true
}

/// `[limit.duplicates]`: after `max` copies of one fingerprint in `window`, further copies are
/// suppressed (counted in `suppressed` records with reason `duplicate`). Local to each daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DuplicatesConfig {
    /// Copies of one fingerprint written per window; 0 turns the policy off.
    pub max: u64,
    /// The window, aligned to wall-clock multiples of its length.
    #[serde(with = "crate::config::check::duration")]
    pub window: Duration,
}

impl Default for DuplicatesConfig {
    fn default() -> Self {
        Self {
            max: 0,
            window: Duration::from_secs(60),
        }
    }
}

/// `[limit.breaker]`: the circuit breaker around Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Rolling window the failure rate is computed over (10 fixed buckets).
    #[serde(with = "crate::config::check::duration")]
    pub window: Duration,
    /// Fewest calls in the window before the failure rate may open the breaker.
    pub min_calls: u32,
    /// Failure rate (0–1] that opens the breaker.
    pub failure_rate: f64,
    /// Consecutive timed-out calls that open the breaker at once; 0 = off.
    pub max_timeouts: u32,
    /// Consecutive failed calls (refused, reset, error reply, timeout) that open the breaker at
    /// once, however healthy the window was; 0 = off.
    pub max_failures: u32,
    /// Time the breaker stays open before a probe call.
    #[serde(with = "crate::config::check::duration")]
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        let d = BreakerConfig::default();
        Self {
            window: d.window,
            min_calls: d.min_calls,
            failure_rate: d.failure_rate,
            max_timeouts: d.max_timeouts,
            max_failures: 3,
            cool_down: d.cool_down,
        }
    }
}

impl BreakerSettings {
    /// Validates into a [`BreakerConfig`]; `prefix` names the section in errors.
    pub fn validate(&self, prefix: &str) -> Result<BreakerConfig, LimitConfigError> {
        if self.window < Duration::from_millis(10) {
            return Err(err(format!("{prefix}.window"), "must be at least 10ms"));
        }
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return Err(err(format!("{prefix}.failure_rate"), "must be in (0, 1]"));
        }
        if self.cool_down.is_zero() {
            return Err(err(
                format!("{prefix}.cool_down"),
                "must be greater than zero",
            ));
        }
        Ok(BreakerConfig {
            window: self.window,
            min_calls: self.min_calls.max(1),
            failure_rate: self.failure_rate,
            max_timeouts: self.max_timeouts,
            max_failures: self.max_failures,
            cool_down: self.cool_down,
            probes: 1,
        })
    }
}

/// `limit.local_share`: the fraction of each shared limit a daemon enforces alone while Redis is
/// unreachable. `"auto"`: one over the number of daemons Redis counted in the busiest shared
/// window of the last successful sync (so N daemons together stay near the limit), 1 until a
/// sync has told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LocalShare {
    Fixed(f64),
    Auto,
}

impl LocalShare {
    /// The fraction in force with `daemons` seen (0 = not known yet).
    pub fn fraction(self, daemons: u64) -> f64 {
        match self {
            LocalShare::Fixed(f) => f,
            LocalShare::Auto => 1.0 / daemons.max(1) as f64,
        }
    }
}

impl Serialize for LocalShare {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LocalShare::Fixed(f) => s.serialize_f64(*f),
            LocalShare::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for LocalShare {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = LocalShare;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a fraction in (0, 1] or "auto""#)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<LocalShare, E> {
                Ok(LocalShare::Fixed(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LocalShare, E> {
                Ok(LocalShare::Fixed(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LocalShare, E> {
                Ok(LocalShare::Fixed(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LocalShare, E> {
                match v {
                    "auto" => Ok(LocalShare::Auto),
                    // Environment overrides arrive as text.
                    _ => v
                        .parse()
                        .map(LocalShare::Fixed)
                        .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `[limit]`: rate limits, the duplicate policy and Redis sharing (docs/rate-limiting.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitConfig {
    /// Redis shared by the daemons that enforce one limit together, e.g.
    /// `redis://:password@10.0.0.5:6379/0`; empty = every daemon limits on its own. With
    /// `redis_cluster`, one or more seed nodes of the cluster, separated by commas.
    pub redis_url: String,
    /// `redis_url` names Redis Cluster nodes: the daemon learns the cluster's slots and follows
    /// `MOVED`/`ASK` redirections.
    pub redis_cluster: bool,
    /// Prefix of every Redis key; keys are `{prefix}:rule:key:window`, the braces are a Redis
    /// Cluster hash tag so one sync is one call to one node.
    pub key_prefix: String,
    /// How often each daemon syncs its counts with Redis (one round trip each time).
    #[serde(with = "crate::config::check::duration")]
    pub sync_interval: Duration,
    /// Deadline of every Redis call (connect included); a slower call counts as a timeout.
    #[serde(with = "crate::config::check::duration")]
    pub redis_timeout: Duration,
    /// Fraction (0–1] of each shared limit this daemon enforces alone while Redis is
    /// unreachable, e.g. 0.25 with four daemons; `"auto"` (the default): 1 / the daemons Redis
    /// last counted.
    pub local_share: LocalShare,
    /// Keys (rule × fingerprint/service/uid) whose state is kept; the least recently used are
    /// evicted beyond it, and the bound shrinks under memory pressure.
    pub max_keys: usize,
    pub duplicates: DuplicatesConfig,
    pub breaker: BreakerSettings,
    pub rules: Vec<RuleConfig>,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            redis_cluster: false,
            key_prefix: "qerrors".into(),
            sync_interval: Duration::from_millis(50),
            redis_timeout: Duration::from_millis(200),
            local_share: LocalShare::Auto,
            max_keys: 100_000,
            duplicates: DuplicatesConfig::default(),
            breaker: BreakerSettings::default(),
            rules: Vec::new(),
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub key: KeyKind,
    pub rate: u64,
    pub window: Duration,
    pub burst: u64,
    pub shared: bool,
}

impl Rule {
    pub fn window_ns(&self) -> u64 {
        self.window.as_nanos().min(u128::from(u64::MAX)) as u64
    }
}

/// The settings SIGHUP may change.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// `(max, window)`; `None` = off.
    pub duplicates: Option<(u64, Duration)>,
    pub local_share: LocalShare,
}

impl RuleSet {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.duplicates.is_none()
    }
}

/// Validated `[limit]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `None`: no Redis, limits are per daemon.
    pub redis_url: Option<String>,
    /// `redis_url` lists Redis Cluster seed nodes.
    pub redis_cluster: bool,
    pub key_prefix: String,
    pub sync_interval: Duration,
    pub redis_timeout: Duration,
    pub max_keys: usize,
    pub breaker: BreakerConfig,
    pub rules: RuleSet,
}

impl LimitConfig {
    pub fn validate(self) -> Result<Settings, LimitConfigError> {
        let redis_url = match self.redis_url.trim() {
            "" => None,
            url if self.redis_cluster => {
                redis::cluster::ClusterClient::new(cluster_nodes(url)).map_err(|e| {
                    err(
                        "limit.redis_url",
                        format!("not a list of Redis Cluster node URLs: {e}"),
                    )
                })?;
                Some(url.to_string())
            }
            url => {
                if url.contains(',') {
                    return Err(err(
                        "limit.redis_url",
                        "one URL (several are Redis Cluster seed nodes: set limit.redis_cluster = true)",
                    ));
                }
                redis::Client::open(url)
                    .map_err(|e| err("limit.redis_url", format!("not a Redis URL: {e}")))?;
                Some(url.to_string())
            }
        };
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}']) {
            return Err(err(
                "limit.key_prefix",
                "must be non-empty and without braces (they are added as the hash tag)",
            ));
        }
        if self.sync_interval < Duration::from_millis(1) {
            return Err(err("limit.sync_interval", "must be at least 1ms"));
        }
        if self.redis_timeout.is_zero() {
            return Err(err("limit.redis_timeout", "must be greater than zero"));
        }
        if let LocalShare::Fixed(f) = self.local_share {
            if !(f > 0.0 && f <= 1.0) {
                return Err(err("limit.local_share", r#"must be in (0, 1] or "auto""#));
            }
        }
        if self.max_keys < 16 {
            return Err(err("limit.max_keys", "must be at least 16"));
        }
        let breaker = self.breaker.validate("limit.breaker")?;
        let duplicates = match self.duplicates.max {
            0 => None,
            max => {
                if self.duplicates.window < MIN_WINDOW {
                    return Err(err("limit.duplicates.window", "must be at least 1ms"));
                }
                Some((max, self.duplicates.window))
            }
        };
        let mut rules = Vec::with_capacity(self.rules.len());
        if self.rules.len() > usize::from(u16::MAX - 1) {
            return Err(err("limit.rules", "too many rules"));
        }
        for (i, r) in self.rules.into_iter().enumerate() {
            let key = |k: &str| format!("limit.rules[{i}].{k}");
            let name = if r.name.is_empty() {
                r.key.as_str().to_string()
            } else {
                r.name
            };
            if name.len() > MAX_NAME_LEN
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(err(
                    key("name"),
                    format!("`{name}`: up to {MAX_NAME_LEN} letters, digits, `-` or `_`"),
                ));
            }
            if rules.iter().any(|o: &Rule| o.name == name) {
                return Err(err(
                    key("name"),
                    format!("`{name}` is used by an earlier rule; give each rule its own name"),
                ));
            }
            if r.rate == 0 || r.rate > u64::from(u32::MAX) {
                return Err(err(key("rate"), "must be between 1 and 4294967295"));
            }
            if r.window < MIN_WINDOW {
                return Err(err(key("window"), "must be at least 1ms"));
            }
            rules.push(Rule {
                name,
                key: r.key,
                rate: r.rate,
                window: r.window,
                burst: if r.burst == 0 { r.rate } else { r.burst },
                shared: r.shared,
            });
        }
        Ok(Settings {
            redis_url,
            redis_cluster: self.redis_cluster,
            key_prefix: self.key_prefix,
            sync_interval: self.sync_interval,
            redis_timeout: self.redis_timeout,
            max_keys: self.max_keys,
            breaker,
            rules: RuleSet {
                rules,
                duplicates,
                local_share: self.local_share,
            },
        })
    }
}

/// The seed nodes of `limit.redis_url` with `redis_cluster`: comma-separated URLs.
pub fn cluster_nodes(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

impl Settings {
    /// Whether `other` talks to Redis the same way (URL, cluster mode, keys, sync, timeout, key
    /// bound, breaker): these need a restart to change (`config::live`).
    pub fn same_connection(&self, other: &Settings) -> bool {
        self.redis_url == other.redis_url
            && self.redis_cluster == other.redis_cluster
            && self.key_prefix == other.key_prefix
            && self.sync_interval == other.sync_interval
            && self.redis_timeout == other.redis_timeout
            && self.max_keys == other.max_keys
            && self.breaker == other.breaker
    }

    /// These settings with `new`'s rules (what a reload applies live).
    pub fn with_rules_of(&self, new: &Settings) -> Settings {
        Settings {
            rules: new.rules.clone(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, LimitConfigError> {
        let raw: LimitConfig = toml::from_str(text).unwrap();
        raw.validate()
    }

    #[test]
    fn defaults_have_no_rules_and_no_redis() {
        let s = LimitConfig::default().validate().unwrap();
        assert!(s.rules.is_empty());
        assert_eq!(s.redis_url, None);
        assert_eq!(s.sync_interval, Duration::from_millis(50));
    }

    #[test]
    fn rules_parse_with_defaults() {
        let s = parse(
            r#"
            redis_url = "redis://127.0.0.1:6379"
            [duplicates]
            max = 3
            [[rules]]
            key = "fingerprint"
            rate = 10
            [[rules]]
            name = "all"
            key = "global"
            rate = 1000
            window = "1m"
            burst = 50
            shared = false
            "#,
        )
        .unwrap();
        assert_eq!(s.rules.rules.len(), 2);
        assert_eq!(s.rules.rules[0].name, "fingerprint");
        assert_eq!(s.rules.rules[0].burst, 10);
        assert_eq!(s.rules.rules[0].window, Duration::from_secs(1));
        assert!(s.rules.rules[0].shared);
        assert_eq!(s.rules.rules[1].burst, 50);
        assert!(!s.rules.rules[1].shared);
        assert_eq!(s.rules.duplicates, Some((3, Duration::from_secs(60))));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = parse("[[rules]]\nkey = \"uid\"\nrate = 0\n").unwrap_err();
        assert_eq!(e.key, "limit.rules[0].rate");
        let e = parse("[[rules]]\nkey = \"uid\"\nrate = 1\n[[rules]]\nkey = \"uid\"\nrate = 2\n")
            .unwrap_err();
        assert_eq!(e.key, "limit.rules[1].name");
        let e = parse("local_share = 0.0").unwrap_err();
        assert_eq!(e.key, "limit.local_share");
        let e = toml::from_str::<LimitConfig>("local_share = \"most\"").unwrap_err();
        assert!(e.to_string().contains(r#""auto""#), "{e}");
        assert_eq!(
            parse("local_share = \"auto\"").unwrap().rules.local_share,
            LocalShare::Auto
        );
        assert_eq!(
            parse("local_share = 1").unwrap().rules.local_share,
            LocalShare::Fixed(1.0)
        );
        let e = parse("redis_url = \"http://x\"").unwrap_err();
        assert_eq!(e.key, "limit.redis_url");
        let e = parse("key_prefix = \"{q}\"").unwrap_err();
        assert_eq!(e.key, "limit.key_prefix");
        let e = parse("[[rules]]\nname = \"a b\"\nkey = \"uid\"\nrate = 1\n").unwrap_err();
        assert_eq!(e.key, "limit.rules[0].name");
    }

    #[test]
    fn cluster_seed_lists() {
        let s = parse(
            "redis_cluster = true\nredis_url = \"redis://10.0.0.5:6379, redis://10.0.0.6:6379\"",
        )
        .unwrap();
        assert!(s.redis_cluster);
        assert_eq!(
            cluster_nodes(s.redis_url.as_deref().unwrap()),
            ["redis://10.0.0.5:6379", "redis://10.0.0.6:6379"]
        );
        // Several URLs without redis_cluster, or a bad one in the list: named errors.
        let e = parse("redis_url = \"redis://a:1,redis://b:2\"").unwrap_err();
        assert_eq!(e.key, "limit.redis_url");
        assert!(e.to_string().contains("redis_cluster"), "{e}");
        let e = parse("redis_cluster = true\nredis_url = \"redis://a:1,http://b\"").unwrap_err();
        assert_eq!(e.key, "limit.redis_url");
    }

    #[test]
    fn reload_keeps_restart_only_keys() {
        let old = LimitConfig::default().validate().unwrap();
        let new = parse(
            "redis_url = \"redis://h:1\"\nlocal_share = 0.5\n[[rules]]\nkey = \"global\"\nrate = 5\n",
        )
        .unwrap();
        assert!(!old.same_connection(&new));
        let merged = old.with_rules_of(&new);
        assert_eq!(merged.redis_url, None);
        assert_eq!(merged.rules.local_share, LocalShare::Fixed(0.5));
        assert_eq!(merged.rules.rules.len(), 1);
        assert!(old.same_connection(&merged));
    }
}
