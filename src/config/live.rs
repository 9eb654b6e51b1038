//! What a reload (SIGHUP) may change while running, and what needs a restart.
//!
//! One table, [`RESTART_ONLY`], drives both [`restart_required`] (the keys the `config reloaded`
//! record names) and [`merge_live`] (the config in force after a reload: restart-only keys keep
//! their running values). [`LIVE`] lists the keys applied at once. A test checks that every key
//! of the config is in exactly one of the two lists, so a new key cannot be forgotten.

use super::Config;

/// One restart-only key (or group of keys), as `restart_required` names it.
pub struct RestartOnly {
    /// The name written in `restart_required`.
    pub name: &'static str,
    /// The raw config keys it covers: `section.key`, or `section` for the whole section.
    pub covers: &'static [&'static str],
    /// Whether the new config changes it.
    changed: fn(old: &Config, new: &Config) -> bool,
    /// Puts the running value back into the new config.
    keep: fn(running: &Config, into: &mut Config),
}

/// An entry for one field of [`Config`], named by its key path (or covering another raw key).
macro_rules! field {
    ($name:literal, $($field:ident).+) => {
        field!($name covering $name, $($field).+)
    };
    ($name:literal covering $raw:literal, $($field:ident).+) => {
        RestartOnly {
            name: $name,
            covers: &[$raw],
            changed: |o, n| o.$($field).+ != n.$($field).+,
            keep: |o, c| c.$($field).+ = Clone::clone(&o.$($field).+),
        }
    };
}

/// Keys whose new value only takes effect after a restart (see `docs/operations.md`): the
/// socket, capacities fixed at start, the writer's settings, the control address, the Redis
/// connection of shared limits, analysis and the memory governor's settings.
pub const RESTART_ONLY: &[RestartOnly] = &[
    field!("ingest.socket", ingest.socket),
    field!("ingest.socket_mode", ingest.socket_mode),
    field!("ingest.socket_group", ingest.socket_group),
    field!("ingest.max_connections", ingest.max_connections),
    field!("event.max_fingerprints", event.max_fingerprints),
    field!("event.occurrence_window", event.occurrence_window),
    field!("ring.capacity_events", ring.capacity_events),
    field!("ring.capacity_bytes", ring.capacity_bytes),
    field!("sink", sink),
    field!("control.listen", control),
    RestartOnly {
        name: "control (allowed_hosts, max_connections, idle_timeout, allow_remote)",
        covers: &[
            "control.allowed_hosts",
            "control.max_connections",
            "control.idle_timeout",
            "control.allow_remote",
        ],
        changed: |o, n| o.control_guard != n.control_guard,
        keep: |o, c| c.control_guard = o.control_guard.clone(),
    },
    RestartOnly {
        name: "control (socket, socket_mode, socket_group, admin_group, others, token_file, \
               metrics_services)",
        covers: &[
            "control.socket",
            "control.socket_mode",
            "control.socket_group",
            "control.admin_group",
            "control.others",
            "control.token_file",
            "control.metrics_services",
        ],
        changed: |o, n| o.control_access != n.control_access,
        keep: |o, c| c.control_access = o.control_access.clone(),
    },
    field!(
        "ingest.max_connections_per_uid",
        ingest.max_connections_per_uid
    ),
    field!("analysis", analysis),
    field!("memory", memory),
    field!("fleet", fleet),
    RestartOnly {
        name: "limit (redis_url, redis_cluster, key_prefix, sync_interval, redis_timeout, \
               max_keys, breaker)",
        covers: &[
            "limit.redis_url",
            "limit.redis_cluster",
            "limit.key_prefix",
            "limit.sync_interval",
            "limit.redis_timeout",
            "limit.max_keys",
            "limit.breaker",
        ],
        changed: |o, n| !o.limit.same_connection(&n.limit),
        keep: |o, c| c.limit = o.limit.with_rules_of(&c.limit),
    },
];

/// Keys a reload applies at once: the ingest timeouts and bounds read per connection, the host
/// and sanitizer rules (a new pipeline), the ring's overflow policy and the limit rules.
pub const LIVE: &[&str] = &[
    "ingest.max_line_bytes",
    "ingest.read_buffer_bytes",
    "ingest.idle_timeout",
    "ingest.read_timeout",
    "ingest.reply_buffer_bytes",
    "ingest.shutdown_grace",
    "event.host",
    "sanitize",
    "ring.overflow",
    "limit.local_share",
    "limit.duplicates",
    "limit.rules",
];

/// The names of the restart-only keys that `new` changes.
pub fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    RESTART_ONLY
        .iter()
        .filter(|k| (k.changed)(old, new))
        .map(|k| k.name)
        .collect()
}

/// The configuration in force after a reload: `new`, except that every restart-only key keeps
/// its running value from `old`.
pub fn merge_live(old: &Config, new: Config) -> Config {
    let mut c = new;
    for k in RESTART_ONLY {
        (k.keep)(old, &mut c);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, RawConfig};

    /// Every `section.key` of the raw config (a nested table counts as one key).
    fn raw_keys() -> Vec<String> {
        let v = toml::Value::try_from(RawConfig::default()).unwrap();
        let mut keys = Vec::new();
        for (section, table) in v.as_table().unwrap() {
            for key in table.as_table().unwrap().keys() {
                keys.push(format!("{section}.{key}"));
            }
        }
        // Keys serde skips when they are unset (`ingest.socket`, `sink.path`).
        for k in ["ingest.socket", "sink.path"] {
            if !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        }
        keys
    }

    fn covers(entry: &str, key: &str) -> bool {
        key == entry || key.starts_with(&format!("{entry}."))
    }

    #[test]
    fn every_key_is_live_or_restart_only_exactly_once() {
        let keys = raw_keys();
        assert!(keys.len() > 40, "{keys:?}");
        for key in &keys {
            let restart = RESTART_ONLY
                .iter()
                .flat_map(|k| k.covers.iter())
                .filter(|e| covers(e, key))
                .count();
            let live = LIVE.iter().filter(|e| covers(e, key)).count();
            assert_eq!(
                restart + live,
                1,
                "{key}: restart-only {restart}×, live {live}×"
            );
        }
        // And nothing in the lists that is not a key (a renamed key must be renamed here too).
        let all = RESTART_ONLY
            .iter()
            .flat_map(|k| k.covers.iter())
            .chain(LIVE);
        for entry in all {
            assert!(
                keys.iter().any(|k| covers(entry, k)),
                "{entry} is not a config key"
            );
        }
    }

    #[test]
    fn every_restart_only_key_is_named_and_kept() {
        let base = || {
            RawConfig::default()
                .validate(&Overrides::default())
                .unwrap()
        };
        let old = base();
        let mut new = base();
        new.ingest.socket = "/elsewhere.sock".into();
        new.ring.capacity_bytes = std::num::NonZeroUsize::new(1 << 30).unwrap();
        new.control = None;
        let names = restart_required(&old, &new);
        assert_eq!(
            names,
            ["ingest.socket", "ring.capacity_bytes", "control.listen"]
        );
        let applied = merge_live(&old, new);
        assert!(restart_required(&old, &applied).is_empty());
        assert_eq!(applied.ingest.socket, old.ingest.socket);
    }
}
