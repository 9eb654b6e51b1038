//! The `level` field of an event: how serious the application itself thinks it is.
//!
//! Protocol v1 is strict: exactly one of `trace`, `debug`, `info`, `warn`, `error`, `fatal`,
//! lowercase, no aliases (`warning`, `ERROR`, `critical` are rejected as `wrong_type` by the
//! parser). A missing `level` means [`Level::Error`], the [`Default`].
//!
//! Variants are declared from least to most severe, so `Ord` compares severity
//! (`Level::Warn < Level::Error`).
#![forbid(unsafe_code)]

/// Severity of an event as reported by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Fine-grained diagnostics.
    Trace,
    /// Diagnostics.
    Debug,
    /// Something noteworthy that is not a problem.
    Info,
    /// A problem the application recovered from.
    Warn,
    /// A failed operation (the default when `level` is absent).
    Error,
    /// The application (or a critical part of it) cannot continue.
    Fatal,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// Parses the wire spelling. Only the exact lowercase names are accepted.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "trace" => Some(Level::Trace),
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            "fatal" => Some(Level::Fatal),
            _ => None,
        }
    }

    /// The wire spelling, as written in the enriched record.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

impl Default for Level {
    /// Protocol v1: an event without `level` is an error.
    fn default() -> Self {
        Level::Error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_level() {
        for level in Level::ALL {
            assert_eq!(Level::parse(level.as_str()), Some(level));
        }
    }

    #[test]
    fn parse_is_strict() {
        for bad in [
            "", "ERROR", "Error", "warning", "err", "critical", " error", "error ", "fatal\n",
        ] {
            assert_eq!(Level::parse(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn default_is_error() {
        assert_eq!(Level::default(), Level::Error);
    }

    #[test]
    fn ordered_by_severity() {
        assert!(Level::Trace < Level::Debug);
        assert!(Level::Debug < Level::Info);
        assert!(Level::Info < Level::Warn);
        assert!(Level::Warn < Level::Error);
        assert!(Level::Error < Level::Fatal);
    }
}
