//! Validation helpers shared by every config section (`config`, `analysis::config`,
//! `memory::config`): each turns a raw value into a typed one or a [`ConfigError`] that names
//! the key, and the lower bounds they enforce are named here with the reason for each.

use std::num::NonZeroUsize;
use std::time::Duration;

use bytesize::ByteSize;

use super::ConfigError;

/// Shortest accepted `ingest.max_line_bytes`: the smallest useful event line.
pub const MIN_LINE_BYTES: usize = 64;
/// Smallest accepted `ingest.read_buffer_bytes`: below it, per-read overhead dominates.
pub const MIN_READ_BUFFER_BYTES: usize = 512;
/// Smallest accepted `analysis.cache_max_bytes`: room for at least one advice entry.
pub const MIN_CACHE_BYTES: u64 = 1024;
/// Smallest accepted `analysis.llm_max_prompt_bytes`: the instructions alone take most of it.
pub const MIN_PROMPT_BYTES: usize = 256;
/// `analysis.llm_max_response_bytes` is raised to at least this: a valid advice object with a
/// few fix steps needs it.
pub const MIN_RESPONSE_BYTES: usize = 1024;

/// The error for `key`, with its message.
pub fn invalid(key: &'static str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        msg: msg.into(),
    }
}

/// At least 1.
pub fn nonzero(key: &'static str, v: usize) -> Result<NonZeroUsize, ConfigError> {
    NonZeroUsize::new(v).ok_or_else(|| invalid(key, "must be at least 1"))
}

/// Longer than zero.
pub fn positive(key: &'static str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(invalid(key, "must be greater than zero"))
    } else {
        Ok(d)
    }
}

/// In (0, 1].
pub fn fraction(key: &'static str, v: f64) -> Result<f64, ConfigError> {
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(invalid(key, format!("{v} is not in (0, 1]")))
    }
}

/// A byte size of at least `min` bytes (`what` says the bound as a user reads it, `64 bytes`).
pub fn at_least_bytes(
    key: &'static str,
    v: ByteSize,
    min: u64,
    what: &str,
) -> Result<u64, ConfigError> {
    if v.as_u64() < min {
        Err(invalid(key, format!("must be at least {what}")))
    } else {
        Ok(v.as_u64())
    }
}

/// An octal permission mode such as `"0660"`.
pub fn parse_mode(key: &'static str, s: &str) -> Result<u32, ConfigError> {
    let digits = s.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(invalid(
            key,
            format!("`{s}` is not an octal permission mode like \"0660\""),
        )),
    }
}

/// Byte sizes are written back as exact integers (bytesize's display rounds to decimal units,
/// which would not read back as the same value).
pub fn exact_bytes<S: serde::Serializer>(v: &ByteSize, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(v.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_helper_names_its_key() {
        let msg = |e: ConfigError| e.to_string();
        assert_eq!(
            msg(nonzero("a.b", 0).unwrap_err()),
            "a.b: must be at least 1"
        );
        assert_eq!(nonzero("a.b", 3).unwrap().get(), 3);
        assert_eq!(
            msg(positive("a.d", Duration::ZERO).unwrap_err()),
            "a.d: must be greater than zero"
        );
        assert_eq!(
            msg(fraction("a.f", 1.5).unwrap_err()),
            "a.f: 1.5 is not in (0, 1]"
        );
        assert_eq!(fraction("a.f", 1.0).unwrap(), 1.0);
        assert_eq!(
            msg(at_least_bytes("a.s", ByteSize::b(63), 64, "64 bytes").unwrap_err()),
            "a.s: must be at least 64 bytes"
        );
        assert_eq!(
            at_least_bytes("a.s", ByteSize::b(64), 64, "64 bytes").unwrap(),
            64
        );
        assert_eq!(parse_mode("m", "0640").unwrap(), 0o640);
        assert!(parse_mode("m", "0999").is_err());
        assert!(parse_mode("m", "17777").is_err());
    }
}
