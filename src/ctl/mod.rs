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
//! (also handy for tests).

use std::process::ExitCode;

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
