//! Validation helpers shared by every config section (`config`, `analysis::config`,
//! `memory::config`, `limit::rules`): each turns a raw value into a typed one or a
//! [`ConfigError`] that names the key, and the lower bounds they enforce are named here with the
//! reason for each.
//!
//! Byte sizes and durations are read by [`byte_size`] and [`duration`] rather than by the
//! `bytesize` and `humantime_serde` deserializers, whose errors (`expected integer overflow`
//! for `-5`, `expected a duration` for `"-5s"`) do not say what is wrong. toml adds the key
//! path to these messages and [`toml_message`] puts it first.

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

/// `deserialize_with` for every byte size: an integer (bytes) or a string (`"64 KiB"`,
/// `"1mb"`, `"4096"`); negative values and unparsable strings get messages that say so.
pub fn byte_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
    d.deserialize_any(ByteSizeVisitor)
}

struct ByteSizeVisitor;

impl serde::de::Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a size: bytes as an integer, or a string such as \"64 KiB\"")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize::b(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize::b)
            .map_err(|_| E::custom(format!("size must not be negative (got {v})")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ByteSize, E> {
        if v < 0.0 {
            return Err(E::custom(format!("size must not be negative (got {v})")));
        }
        Err(E::custom(format!(
            "a size is a whole number of bytes or a string such as \"1.5 MiB\" (got {v})"
        )))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
        let t = v.trim();
        if t.starts_with('-') {
            return Err(E::custom(format!(
                "size must not be negative (got \"{v}\")"
            )));
        }
        t.parse().map_err(|_| {
            E::custom(format!(
                "`{v}` is not a size; write bytes (4096) or a number and unit (\"64 KiB\", \"1 MiB\")"
            ))
        })
    }
}

/// `with` for every duration: `serialize` writes humantime (`"5s"`, `"1m 30s"`), `deserialize`
/// reads it and says what is wrong with a negative or unitless value.
pub mod duration {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(d, s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Visitor)
    }

    struct Visitor;

    impl serde::de::Visitor<'_> for Visitor {
        type Value = Duration;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration such as \"5s\", \"250ms\" or \"1h 30m\"")
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
            if v < 0 {
                return Err(E::custom(format!(
                    "duration must not be negative (got {v})"
                )));
            }
            Err(unitless(v))
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
            Err(unitless(v))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
            if v < 0.0 {
                return Err(E::custom(format!(
                    "duration must not be negative (got {v})"
                )));
            }
            Err(unitless(v))
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
            let t = v.trim();
            if t.starts_with('-') {
                return Err(E::custom(format!(
                    "duration must not be negative (got \"{v}\")"
                )));
            }
            humantime::parse_duration(t).map_err(|e| {
                E::custom(format!(
                    "`{v}` is not a duration such as \"5s\", \"250ms\" or \"1h 30m\" ({e})"
                ))
            })
        }
    }

    fn unitless<E: serde::de::Error>(v: impl std::fmt::Display) -> E {
        E::custom(format!(
            "a duration needs a unit: write \"{v}s\" or \"{v}ms\" (got {v})"
        ))
    }
}

/// A toml deserialization error as `key.path: message`: toml appends the key as a last line
/// (`in `ingest.max_line_bytes``) when the error has no position in a text, which is the case
/// for every value error here (the text is parsed into a table first). Syntax errors, which
/// carry their position and a snippet of the file, are kept as they are.
pub fn toml_message(err: &toml::de::Error) -> String {
    let text = err.to_string();
    let text = text.trim_end();
    if err.span().is_none() {
        if let Some((msg, last)) = text.rsplit_once('\n') {
            if let Some(key) = last.strip_prefix("in `").and_then(|k| k.strip_suffix('`')) {
                return format!("{key}: {}", msg.trim_end());
            }
        }
    }
    text.to_string()
}

/// A TOML syntax error as position and message, without toml's excerpt of the line (see
/// [`ConfigError::Syntax`]). Line and column count from 1; the column in characters.
pub fn syntax_error(source_name: String, text: &str, err: &toml::de::Error) -> ConfigError {
    let at = err.span().map_or(0, |s| s.start).min(text.len());
    let before = text.get(..at).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    let msg = err.message().trim_end().replace('\n', "; ");
    ConfigError::Syntax {
        source_name,
        line,
        column,
        msg,
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

    #[derive(Debug, serde::Deserialize)]
    struct Section {
        #[serde(default, deserialize_with = "byte_size")]
        size: ByteSize,
        #[serde(default, with = "duration")]
        wait: Duration,
    }

    #[derive(Debug, serde::Deserialize)]
    struct File {
        s: Section,
    }

    /// `text` read the way `RawConfig::load` reads a file: into a table, then into the type.
    fn read(text: &str) -> Result<Section, String> {
        let table: toml::Table = toml::from_str(text).unwrap();
        toml::Value::Table(table)
            .try_into::<File>()
            .map(|f| f.s)
            .map_err(|e| toml_message(&e))
    }

    #[test]
    fn sizes_and_durations_read_and_explain_what_is_wrong() {
        let ok = read("[s]\nsize = \"64 KiB\"\nwait = \"1m 30s\"\n").unwrap();
        assert_eq!(
            (ok.size, ok.wait),
            (ByteSize::kib(64), Duration::from_secs(90))
        );
        assert_eq!(read("[s]\nsize = 4096\n").unwrap().size, ByteSize::b(4096));
        assert_eq!(
            read("[s]\nsize = \"4096\"\n").unwrap().size,
            ByteSize::b(4096)
        );
        for (text, want) in [
            ("size = -5", "s.size: size must not be negative (got -5)"),
            ("size = \"-5\"", "s.size: size must not be negative (got \"-5\")"),
            ("size = \"-1 MiB\"", "s.size: size must not be negative (got \"-1 MiB\")"),
            ("size = -1.5", "s.size: size must not be negative (got -1.5)"),
            ("size = \"lots\"", "s.size: `lots` is not a size; write bytes (4096) or a number and unit (\"64 KiB\", \"1 MiB\")"),
            ("wait = \"-5s\"", "s.wait: duration must not be negative (got \"-5s\")"),
            ("wait = -5", "s.wait: duration must not be negative (got -5)"),
            ("wait = 5", "s.wait: a duration needs a unit: write \"5s\" or \"5ms\" (got 5)"),
            ("wait = true", "s.wait: invalid type: boolean `true`, expected a duration such as \"5s\", \"250ms\" or \"1h 30m\""),
        ] {
            assert_eq!(read(&format!("[s]\n{text}\n")).unwrap_err(), want, "{text}");
        }
        assert!(read("[s]\nwait = \"soon\"\n")
            .unwrap_err()
            .starts_with("s.wait: `soon` is not a duration"));
    }

    #[test]
    fn a_syntax_error_gives_the_position_but_not_the_line() {
        let text =
            "[analysis]\nllm_base_url = \"https://x/v1\"\nllm_api_key_env = sk-proj-Secret123\n";
        let err = toml::from_str::<toml::Table>(text).unwrap_err();
        // toml's own text quotes the line.
        assert!(err.to_string().contains("sk-proj-Secret123"));
        let e = syntax_error("f.toml".into(), text, &err).to_string();
        assert!(e.starts_with("f.toml: line 3, column 19: "), "{e}");
        assert!(!e.contains("Secret123") && !e.contains('\n'), "{e}");
    }
}
