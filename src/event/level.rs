//! The `level` field of an event: how serious the application itself thinks it is.
//!
//! The record always carries one of `trace`, `debug`, `info`, `warn`, `error`, `fatal`
//! ([`Level::as_str`]). Clients may send what their logger writes: [`Level::normalize`] maps the
//! level names of popular loggers in any case (`WARNING` → `warn`, `critical` → `fatal`, slog's
//! `ERROR+2` → `error`) and [`Level::from_number`] the numeric scales (pino/bunyan 10–60, Google
//! Cloud 100–800, Python's `levelno`). Anything else is rejected as `wrong_type` by the parser.
//! A missing `level` means [`Level::Error`], the [`Default`]. The full table is in
//! `docs/formats.md`. The same vocabulary is what `qerrorsctl --level` and `/recent?level=`
//! accept. [`Level::parse`] stays strict: it reads the daemon's own output.
//!
//! Variants are declared from least to most severe, so `Ord` compares severity
//! (`Level::Warn < Level::Error`).

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

    /// Maps a logger's level name, case-insensitively, to a level. Accepts the six names, the
    /// aliases of winston (npm and syslog levels), Python logging, structlog, zap, slog
    /// (`INFO+2`-style offsets are dropped), java.util.logging, log4j/logback and Google Cloud
    /// `severity`. `None` for anything else.
    pub fn normalize(s: &str) -> Option<Level> {
        // Longest accepted name is "informational" (13); slog offsets add a few bytes.
        const MAX_NAME: usize = 16;
        let b = s.as_bytes();
        if b.is_empty() || b.len() > MAX_NAME {
            return None;
        }
        if let Some(l) = Level::parse(s) {
            return Some(l);
        }
        let mut buf = [0u8; MAX_NAME];
        let buf = &mut buf[..b.len()];
        buf.copy_from_slice(b);
        buf.make_ascii_lowercase();
        // slog writes levels between the named ones as `WARN-2`, `ERROR+4`: keep the base.
        let mut name: &[u8] = buf;
        if let Some(i) = name.iter().position(|&c| c == b'+' || c == b'-') {
            if i > 0 && i + 1 < name.len() && name[i + 1..].iter().all(u8::is_ascii_digit) {
                name = &name[..i];
            }
        }
        Some(match name {
            b"trace" | b"finest" | b"finer" | b"silly" | b"all" => Level::Trace,
            b"debug" | b"fine" | b"config" | b"verbose" => Level::Debug,
            b"info" | b"information" | b"informational" | b"notice" | b"http" => Level::Info,
            b"warn" | b"warning" => Level::Warn,
            // GCP `DEFAULT` means "no level assigned": the same as an absent level.
            b"error" | b"err" | b"severe" | b"dpanic" | b"default" => Level::Error,
            b"fatal" | b"critical" | b"crit" | b"panic" | b"alert" | b"emergency" | b"emerg" => {
                Level::Fatal
            }
            _ => return None,
        })
    }

    /// Maps a numeric level. `scale` says whose numbers they are:
    /// - [`NumericScale::Pino`]: pino and bunyan, 10 trace, 20 debug, 30 info, 40 warn,
    ///   50 error, 60 fatal (values in between go to the level below them, custom levels up to
    ///   99 are fatal); Google Cloud's numeric severities 100–800 are accepted too (100 debug,
    ///   200–399 info, 400 warn, 500 error, 600+ fatal);
    /// - [`NumericScale::Python`]: `levelno`, 10 debug, 20 info, 30 warn, 40 error, 50 critical
    ///   (1–9 trace).
    ///
    /// `None` outside those ranges.
    pub fn from_number(n: f64, scale: NumericScale) -> Option<Level> {
        if !n.is_finite() {
            return None;
        }
        let steps = Level::ALL;
        match scale {
            NumericScale::Pino if (10.0..100.0).contains(&n) => {
                Some(steps[((n / 10.0) as usize - 1).min(5)])
            }
            NumericScale::Pino if (100.0..=800.0).contains(&n) => Some(match n as u32 {
                100..=199 => Level::Debug,
                200..=399 => Level::Info,
                400..=499 => Level::Warn,
                500..=599 => Level::Error,
                _ => Level::Fatal,
            }),
            NumericScale::Python if (1.0..10.0).contains(&n) => Some(Level::Trace),
            NumericScale::Python if (10.0..=60.0).contains(&n) => {
                Some(steps[((n / 10.0) as usize).min(5)])
            }
            // 1–4 trace, 5–8 debug, 9–12 info, 13–16 warn, 17–20 error, 21–24 fatal.
            NumericScale::Otel if (1.0..25.0).contains(&n) => {
                Some(steps[((n as usize - 1) / 4).min(5)])
            }
            NumericScale::Monolog if (100.0..=600.0).contains(&n) => Some(match n as u32 {
                100..=199 => Level::Debug,
                200..=299 => Level::Info,
                300..=399 => Level::Warn,
                400..=499 => Level::Error,
                _ => Level::Fatal,
            }),
            // RFC 5424: 0 emergency … 3 error, 4 warning, 5 notice, 6 informational, 7 debug.
            NumericScale::Syslog if (0.0..8.0).contains(&n) && n.fract() == 0.0 => {
                Some(match n as u32 {
                    0..=2 => Level::Fatal,
                    3 => Level::Error,
                    4 => Level::Warn,
                    5 | 6 => Level::Info,
                    _ => Level::Debug,
                })
            }
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

/// Whose numbers a numeric level is on (see [`Level::from_number`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericScale {
    /// `level` as a number: pino and bunyan (10–60), Google Cloud (100–800).
    Pino,
    /// Python logging's `levelno` (10–50).
    Python,
    /// OpenTelemetry `severityNumber` (1–24).
    Otel,
    /// Monolog's `level` (100 debug … 400 error, 500–600 critical to emergency).
    Monolog,
    /// Syslog severities (GELF's `level`: 0 emergency … 7 debug).
    Syslog,
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
    fn normalize_maps_logger_spellings() {
        use Level::*;
        for (s, l) in [
            ("ERROR", Error),
            ("Error", Error),
            ("warning", Warn),
            ("WARNING", Warn),
            ("WARN", Warn),
            ("CRITICAL", Fatal),
            ("critical", Fatal),
            ("panic", Fatal),
            ("EMERGENCY", Fatal),
            ("alert", Fatal),
            ("dpanic", Error),
            ("SEVERE", Error),
            ("NOTICE", Info),
            ("http", Info),
            ("verbose", Debug),
            ("silly", Trace),
            ("FINEST", Trace),
            ("DEFAULT", Error),
            ("ERROR+2", Error),
            ("WARN-1", Warn),
            ("INFO+12", Info),
            ("fatal", Fatal),
        ] {
            assert_eq!(Level::normalize(s), Some(l), "{s}");
        }
        for bad in [
            "",
            "loud",
            "error ",
            " warn",
            "ERROR+",
            "ERROR+x",
            "+2",
            "informationalxxxx",
        ] {
            assert_eq!(Level::normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numeric_scales() {
        use Level::*;
        use NumericScale::*;
        for (n, l) in [
            (10.0, Trace),
            (20.0, Debug),
            (30.0, Info),
            (35.0, Info),
            (40.0, Warn),
            (50.0, Error),
            (60.0, Fatal),
            (99.0, Fatal),
            (100.0, Debug),
            (200.0, Info),
            (300.0, Info),
            (400.0, Warn),
            (500.0, Error),
            (600.0, Fatal),
            (800.0, Fatal),
        ] {
            assert_eq!(Level::from_number(n, Pino), Some(l), "{n}");
        }
        for bad in [0.0, 7.0, 801.0, -10.0, f64::NAN] {
            assert_eq!(Level::from_number(bad, Pino), None, "{bad}");
        }
        for (n, l) in [
            (5.0, Trace),
            (10.0, Debug),
            (20.0, Info),
            (30.0, Warn),
            (40.0, Error),
            (50.0, Fatal),
        ] {
            assert_eq!(Level::from_number(n, Python), Some(l), "{n}");
        }
        assert_eq!(Level::from_number(0.0, Python), None);
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
