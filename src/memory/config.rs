//! `[memory]`: the budget, the pressure thresholds and the per-connection memory caps.

use std::num::NonZeroUsize;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::config::check::{exact_bytes, fraction, invalid};
use crate::config::ConfigError;

/// Budget when `memory.budget` is unset and no cgroup limit applies. It holds the worst case of
/// the default configuration (docs/memory.md) with room to spare, and sits far above the
/// ~40 MiB the daemon uses at full speed.
pub const FALLBACK_BUDGET: u64 = 256 << 20;

/// Longest allowed sampling period: the kernel can fill a small budget fast.
pub const MAX_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// `[memory]` as written in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// The daemon's memory budget (resident set size). 0 = `budget_fraction` of the cgroup's
    /// limit (`memory.max`/`memory.high`, or v1 `memory.limit_in_bytes`), or 256 MiB when
    /// there is none.
    #[serde(
        serialize_with = "exact_bytes",
        deserialize_with = "crate::config::check::byte_size"
    )]
    pub budget: ByteSize,
    /// Share of the cgroup limit used as the budget when `budget` is 0 (0 < x ≤ 1).
    pub budget_fraction: f64,
    /// Share of the budget where pressure becomes `high`: caches shrink, debug/info events are
    /// sampled, the daemon's own log goes quiet.
    pub high_threshold: f64,
    /// Share of the budget where pressure becomes `critical`: the ring's byte budget tightens
    /// and `/ready` fails.
    pub critical_threshold: f64,
    /// A level is left only when usage falls this share of the budget below its threshold.
    pub hysteresis: f64,
    /// How often RSS, the cgroup and PSI are sampled (at most 100ms). While RSS is flat and far
    /// under the budget the governor backs off to once a second; a burst of client data wakes
    /// it at once.
    #[serde(with = "crate::config::check::duration")]
    pub sample_interval: Duration,
    /// Bytes in flight (read but not yet queued for the writer) for all connections of one
    /// peer uid; past it, that peer's connections stop reading until it falls.
    #[serde(
        serialize_with = "exact_bytes",
        deserialize_with = "crate::config::check::byte_size"
    )]
    pub peer_in_flight_bytes: ByteSize,
    /// Bytes in flight for all connections together.
    #[serde(
        serialize_with = "exact_bytes",
        deserialize_with = "crate::config::check::byte_size"
    )]
    pub in_flight_bytes: ByteSize,
    /// Idle and read timeout used instead of `ingest.idle_timeout`/`ingest.read_timeout` (when
    /// shorter) while pressure is high or nearly all connection slots are taken.
    #[serde(with = "crate::config::check::duration")]
    pub pressure_timeout: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            budget: ByteSize::b(0),
            budget_fraction: 0.75,
            high_threshold: 0.80,
            critical_threshold: 0.95,
            hysteresis: 0.05,
            sample_interval: Duration::from_millis(100),
            peer_in_flight_bytes: ByteSize::mib(16),
            in_flight_bytes: ByteSize::mib(32),
            pressure_timeout: Duration::from_secs(10),
        }
    }
}

/// Validated `[memory]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// `None`: derived from the cgroup limit at each sample.
    pub budget: Option<u64>,
    pub budget_fraction: f64,
    pub high_threshold: f64,
    pub critical_threshold: f64,
    pub hysteresis: f64,
    pub sample_interval: Duration,
    pub peer_in_flight_bytes: NonZeroUsize,
    pub in_flight_bytes: NonZeroUsize,
    pub pressure_timeout: Duration,
}

impl MemoryConfig {
    pub fn validate(self) -> Result<Memory, ConfigError> {
        let high = fraction("memory.high_threshold", self.high_threshold)?;
        let critical = fraction("memory.critical_threshold", self.critical_threshold)?;
        if critical <= high {
            return Err(invalid(
                "memory.critical_threshold",
                "must be above memory.high_threshold",
            ));
        }
        if !(0.0..high).contains(&self.hysteresis) {
            return Err(invalid(
                "memory.hysteresis",
                "must be at least 0 and below memory.high_threshold",
            ));
        }
        if self.sample_interval.is_zero() || self.sample_interval > MAX_SAMPLE_INTERVAL {
            return Err(invalid(
                "memory.sample_interval",
                "must be greater than zero and at most 100ms",
            ));
        }
        if self.pressure_timeout.is_zero() {
            return Err(invalid(
                "memory.pressure_timeout",
                "must be greater than zero",
            ));
        }
        let nz = |key, v: ByteSize| {
            NonZeroUsize::new(v.as_u64() as usize).ok_or_else(|| invalid(key, "must be at least 1"))
        };
        Ok(Memory {
            budget: (self.budget.as_u64() > 0).then_some(self.budget.as_u64()),
            budget_fraction: fraction("memory.budget_fraction", self.budget_fraction)?,
            high_threshold: high,
            critical_threshold: critical,
            hysteresis: self.hysteresis,
            sample_interval: self.sample_interval,
            peer_in_flight_bytes: nz("memory.peer_in_flight_bytes", self.peer_in_flight_bytes)?,
            in_flight_bytes: nz("memory.in_flight_bytes", self.in_flight_bytes)?,
            pressure_timeout: self.pressure_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        let m = MemoryConfig::default().validate().unwrap();
        assert_eq!(m.budget, None);
        let err = |c: MemoryConfig| c.validate().unwrap_err().to_string();
        let e = err(MemoryConfig {
            critical_threshold: 0.5,
            ..Default::default()
        });
        assert!(e.starts_with("memory.critical_threshold"), "{e}");
        let e = err(MemoryConfig {
            sample_interval: Duration::from_secs(1),
            ..Default::default()
        });
        assert!(e.starts_with("memory.sample_interval"), "{e}");
        let e = err(MemoryConfig {
            budget_fraction: 1.5,
            ..Default::default()
        });
        assert!(e.starts_with("memory.budget_fraction"), "{e}");
    }
}
