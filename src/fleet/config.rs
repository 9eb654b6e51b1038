//! The `[fleet]` configuration: raw serde struct (every field is user documentation) and its
//! validation into the runtime [`Fleet`] settings.
//!
//! Off unless `fleet.redis_url` is set. `redis_url = "limit"` shares the Redis of
//! `limit.redis_url` (and its `redis_cluster` setting). Every key needs a restart to change.
//! `[[fleet.alerts]]` will live here too (issue 16, not built yet).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::limit::rules::{cluster_nodes, BreakerSettings, LimitConfigError};

/// The `redis_url` value that means "the Redis of `limit.redis_url`".
pub const SAME_AS_LIMIT: &str = "limit";

/// Fewest fingerprints the fleet index may be bounded to.
pub const MIN_FINGERPRINTS: usize = 16;

/// Fewest pending fingerprints between syncs (a smaller bound is only useful in tests).
pub const MIN_PENDING: usize = 1;

fn err(key: impl Into<String>, msg: impl Into<String>) -> LimitConfigError {
    LimitConfigError {
        key: key.into(),
        msg: msg.into(),
    }
}

/// `[fleet]`: one registry of every daemon's fingerprints in Redis (docs/fleet.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Redis holding the fleet's fingerprints, e.g. `redis://:password@10.0.0.5:6379/0`;
    /// `"limit"` = the one in `limit.redis_url`; empty = fleet off.
    pub redis_url: String,
    /// `redis_url` names Redis Cluster seed nodes (with `"limit"`: `limit.redis_cluster`).
    pub redis_cluster: bool,
    /// Prefix of every Redis key: `{prefix}:fleet:…`, the braces a Redis Cluster hash tag.
    pub key_prefix: String,
    /// How often each daemon sends its deltas (one round trip each time, only when there are any).
    #[serde(with = "crate::config::check::duration")]
    pub sync_interval: Duration,
    /// Deadline of every Redis call (connect included) of the sync and of `/fleet` reads.
    #[serde(with = "crate::config::check::duration")]
    pub redis_timeout: Duration,
    /// How long a fingerprint the fleet stops seeing stays in Redis.
    #[serde(with = "crate::config::check::duration")]
    pub retention: Duration,
    /// Most fingerprints Redis keeps for the fleet; beyond it the least frequent are removed
    /// (this bounds Redis memory, docs/fleet.md has the formula).
    pub max_fingerprints: usize,
    /// Most fingerprints with deltas waiting for a sync (kept while Redis is down); events of
    /// further fingerprints are counted as dropped (`qerrors_fleet_deltas_dropped_total`).
    pub max_pending: usize,
    pub breaker: BreakerSettings,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            redis_cluster: false,
            key_prefix: "qerrors".into(),
            sync_interval: Duration::from_secs(1),
            redis_timeout: Duration::from_secs(1),
            retention: Duration::from_secs(14 * 86_400),
            max_fingerprints: 20_000,
            max_pending: 10_000,
            breaker: BreakerSettings::default(),
        }
    }
}

/// Validated `[fleet]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// `None`: fleet off.
    pub redis_url: Option<String>,
    pub redis_cluster: bool,
    pub key_prefix: String,
    pub sync_interval: Duration,
    pub redis_timeout: Duration,
    pub retention: Duration,
    pub max_fingerprints: usize,
    pub max_pending: usize,
    pub breaker: BreakerConfig,
}

impl FleetConfig {
    /// Validates; `limit` is the validated `[limit]` (`redis_url = "limit"` borrows its Redis).
    pub fn validate(
        self,
        limit: &crate::limit::rules::Settings,
    ) -> Result<Fleet, LimitConfigError> {
        let (redis_url, redis_cluster) = match self.redis_url.trim() {
            "" => (None, false),
            SAME_AS_LIMIT => match &limit.redis_url {
                Some(u) => (Some(u.clone()), limit.redis_cluster),
                None => {
                    return Err(err(
                        "fleet.redis_url",
                        "\"limit\" names limit.redis_url, which is empty",
                    ))
                }
            },
            url if self.redis_cluster => {
                redis::cluster::ClusterClient::new(cluster_nodes(url)).map_err(|e| {
                    err(
                        "fleet.redis_url",
                        format!("not a list of Redis Cluster node URLs: {e}"),
                    )
                })?;
                (Some(url.to_string()), true)
            }
            url => {
                if url.contains(',') {
                    return Err(err(
                        "fleet.redis_url",
                        "one URL (several are Redis Cluster seed nodes: set fleet.redis_cluster = true)",
                    ));
                }
                redis::Client::open(url)
                    .map_err(|e| err("fleet.redis_url", format!("not a Redis URL: {e}")))?;
                (Some(url.to_string()), false)
            }
        };
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}']) {
            return Err(err(
                "fleet.key_prefix",
                "must be non-empty and without braces (they are added as the hash tag)",
            ));
        }
        if self.sync_interval < Duration::from_millis(10) {
            return Err(err("fleet.sync_interval", "must be at least 10ms"));
        }
        if self.redis_timeout.is_zero() {
            return Err(err("fleet.redis_timeout", "must be greater than zero"));
        }
        if self.retention < Duration::from_secs(3600) {
            return Err(err(
                "fleet.retention",
                "must be at least 1h (the per-minute counts cover the last hour)",
            ));
        }
        if self.max_fingerprints < MIN_FINGERPRINTS {
            return Err(err(
                "fleet.max_fingerprints",
                format!("must be at least {MIN_FINGERPRINTS}"),
            ));
        }
        if self.max_pending < MIN_PENDING {
            return Err(err("fleet.max_pending", "must be at least 1"));
        }
        let breaker = self.breaker.validate("fleet.breaker")?;
        Ok(Fleet {
            redis_url,
            redis_cluster,
            key_prefix: self.key_prefix,
            sync_interval: self.sync_interval,
            redis_timeout: self.redis_timeout,
            retention: self.retention,
            max_fingerprints: self.max_fingerprints,
            max_pending: self.max_pending,
            breaker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, limit_url: &str) -> Result<Fleet, LimitConfigError> {
        let limit = crate::limit::rules::LimitConfig {
            redis_url: limit_url.into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        toml::from_str::<FleetConfig>(text)
            .unwrap()
            .validate(&limit)
    }

    #[test]
    fn off_by_default_and_limit_shares_its_redis() {
        let f = parse("", "").unwrap();
        assert_eq!(f.redis_url, None);
        assert_eq!(f.sync_interval, Duration::from_secs(1));
        assert_eq!(f.retention, Duration::from_secs(14 * 86_400));
        let f = parse(r#"redis_url = "limit""#, "redis://10.0.0.5/").unwrap();
        assert_eq!(f.redis_url.as_deref(), Some("redis://10.0.0.5/"));
        let e = parse(r#"redis_url = "limit""#, "").unwrap_err();
        assert_eq!(e.key, "fleet.redis_url");
        let f = parse(r#"redis_url = "redis://127.0.0.1:7000/""#, "").unwrap();
        assert_eq!(f.redis_url.as_deref(), Some("redis://127.0.0.1:7000/"));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            (r#"redis_url = "nope://x""#, "fleet.redis_url"),
            (r#"key_prefix = "{a}""#, "fleet.key_prefix"),
            (r#"sync_interval = "1ms""#, "fleet.sync_interval"),
            (r#"retention = "10m""#, "fleet.retention"),
            ("max_fingerprints = 3", "fleet.max_fingerprints"),
            ("max_pending = 0", "fleet.max_pending"),
            (
                "breaker = { failure_rate = 2.0 }",
                "fleet.breaker.failure_rate",
            ),
        ] {
            assert_eq!(parse(text, "").unwrap_err().key, key, "{text}");
        }
    }
}
