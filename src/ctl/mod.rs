//! `qerrorsctl`'s commands: one file per command, each with a `run` that prints and returns the
//! exit code; `src/bin/qerrorsctl.rs` only parses the command line and dispatches.
//!
//! - `send` ([`send`]): one event, or NDJSON events from stdin, to the daemon's socket.
//! - `status` ([`status`]): one line of vital signs; exit 0 ready, 1 not ready, 2 down.
//! - `stats` ([`stats`]): all counters as JSON (`/stats`).
//! - `recent` ([`recent`]): the last events from the daemon's history (`/recent`).
//! - `top` ([`top`]): the most frequent fingerprints (`/fingerprints`).
//! - `advice` ([`advice`]): the fix advice for one fingerprint (`/advice/FP`).
//! - `reload` ([`reload`]): SIGHUP to the daemon's pid.
//! - `check-config` ([`check_config`]): validate a configuration file as the daemon does.
//! - `tail` ([`tail`]): follow the log across rotation, with filters (`tail/`).
//!
//! [`client`] is the client side of the protocol and the control-plane HTTP helpers they share
//! (also handy for tests). [`parse_level`] and [`parse_kind`] are the one vocabulary of
//! `--level` (send, recent, tail) and `--kind` (tail).

use std::process::ExitCode;

use crate::event::level::Level;
use crate::event::record::kind;

pub mod advice;
pub mod check_config;
pub mod client;
pub mod recent;
pub mod reload;
pub mod send;
pub mod stats;
pub mod status;
pub mod tail;
pub mod top;

/// `qerrorsctl: MSG` on stderr, exit 2 (the daemon is unreachable or the input is unusable).
pub(crate) fn fail(msg: &str) -> ExitCode {
    eprintln!("qerrorsctl: {msg}");
    ExitCode::from(2)
}

/// `--level` of every command: the names the daemon accepts from clients, any case, with their
/// aliases (`warning`, `err`, `critical`, `crit`, … see `docs/formats.md`), as the canonical
/// level. Anything else is a usage error that lists the names.
pub fn parse_level(s: &str) -> Result<Level, String> {
    Level::normalize(s.trim()).ok_or_else(|| {
        format!(
            "unknown level `{s}`; expected one of {} (or an alias such as warning, err, critical)",
            Level::ALL.map(Level::as_str).join(", ")
        )
    })
}

/// `tail --kind`: one of the record kinds the daemon writes ([`kind::ALL`]), else a usage
/// error that lists them (a misspelt kind would otherwise match nothing, silently).
pub fn parse_kind(s: &str) -> Result<String, String> {
    let k = s.trim().to_ascii_lowercase();
    if kind::ALL.contains(&k.as_str()) {
        Ok(k)
    } else {
        Err(format!(
            "unknown record kind `{s}`; valid kinds: {}",
            kind::ALL.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_level_vocabulary_with_aliases() {
        for (s, l) in [
            ("warn", Level::Warn),
            ("WARNING", Level::Warn),
            ("err", Level::Error),
            ("critical", Level::Fatal),
            ("crit", Level::Fatal),
            ("fatal", Level::Fatal),
            ("Info", Level::Info),
        ] {
            assert_eq!(parse_level(s), Ok(l), "{s}");
        }
        let e = parse_level("loud").unwrap_err();
        assert!(
            e.contains("`loud`") && e.contains("trace, debug, info, warn, error, fatal"),
            "{e}"
        );
    }

    #[test]
    fn kinds_are_the_written_ones() {
        for k in kind::ALL {
            assert_eq!(parse_kind(k).as_deref(), Ok(k));
        }
        assert_eq!(parse_kind("Advice").as_deref(), Ok("advice"));
        let e = parse_kind("adivce").unwrap_err();
        assert!(e.contains("`adivce`"), "{e}");
        assert!(
            e.contains("event, dropped, suppressed, daemon, advice"),
            "{e}"
        );
    }
}
