//! `qerrorsctl check-config`: validates a configuration file (or the embedded defaults with the
//! `QERRORS_*` environment) exactly as the daemon does.

use std::path::Path;
use std::process::ExitCode;

use super::fail;
use crate::config;

/// Exit 0 with the socket and log paths when valid, 2 naming the key when not.
pub fn run(path: Option<&Path>) -> ExitCode {
    match config::RawConfig::load(path, std::env::vars())
        .and_then(|raw| raw.validate(&config::Overrides::default()))
    {
        Ok(c) => {
            println!(
                "configuration OK (socket {}, log {})",
                c.ingest.socket.display(),
                c.sink.path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("invalid configuration: {e}")),
    }
}
