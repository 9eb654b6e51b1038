//! `qerrorsctl`: the operator's and scripter's command line for qerrorsd. Parses the CLI and
//! hands each command to its module under `qerrors::ctl` (one file per command).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use qerrors::config;
use qerrors::ctl::{self, client};
use qerrors::event::level::Level;

#[derive(Debug, Parser)]
#[command(name = "qerrorsctl", version = qerrors::VERSION, about = "Talk to the qerrors daemon")]
struct Cli {
    /// Daemon socket [default: $QERRORS_INGEST_SOCKET, else the first socket among
    /// $XDG_RUNTIME_DIR/qerrors.sock, /tmp/qerrors-$UID/qerrors.sock, /run/qerrors.sock].
    #[arg(
        long,
        global = true,
        env = "QERRORS_INGEST_SOCKET",
        value_name = "PATH"
    )]
    socket: Option<PathBuf>,
    /// Control plane: a control socket path, or a TCP ADDR:PORT [default:
    /// $QERRORS_CONTROL_LISTEN, else the control socket next to the daemon socket
    /// (DIR/NAME-control.sock), else 127.0.0.1:9464].
    #[arg(
        long,
        global = true,
        env = "QERRORS_CONTROL_LISTEN",
        value_name = "PATH|ADDR"
    )]
    control: Option<String>,
    /// Token for TCP content endpoints [default: DIR/NAME-control.token next to the daemon
    /// socket, when readable].
    #[arg(
        long,
        global = true,
        env = "QERRORS_CONTROL_TOKEN_FILE",
        value_name = "PATH"
    )]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send one error event, or NDJSON events from stdin (`-` or no MESSAGE with piped input).
    Send(ctl::send::SendArgs),
    /// Is the daemon up and ready? One line of vital signs; exit 0 ready, 1 not ready, 2 down.
    Status,
    /// All counters as JSON (`/stats`).
    Stats,
    /// The last events from the daemon's error history.
    Recent {
        /// How many (only `-n`: clap would name a long form `--n`).
        #[arg(short = 'n', value_name = "N", default_value_t = 20)]
        n: usize,
        /// Minimum level (warn shows warn, error, fatal); aliases as in `send`.
        #[arg(long, value_parser = ctl::parse_level)]
        level: Option<Level>,
        #[arg(long)]
        service: Option<String>,
        /// Print the records as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// The most frequent fingerprints.
    Top {
        /// How many fingerprints.
        #[arg(short = 'n', value_name = "N", default_value_t = 10)]
        n: usize,
        #[arg(long)]
        json: bool,
        /// Across the fleet (every daemon sharing `fleet.redis_url`), from Redis.
        #[arg(long)]
        fleet: bool,
    },
    /// The fix advice for one fingerprint (from `qerrorsctl top` or a record's `fingerprint`).
    Advice {
        /// The 32 hex digits, or a unique prefix of a fingerprint in `top` (like its `fp` column).
        fingerprint: String,
        /// Print the advice as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the daemon to reload its configuration and reopen its log; exit 1 with the reason
    /// when the new configuration is rejected.
    Reload,
    /// Validate a configuration file the way the daemon does; exit 2 naming the key if invalid.
    CheckConfig {
        /// The file (default: embedded defaults + QERRORS_* environment).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// Follow the log like `tail -F` (survives rotation), with filters; `--json` for raw lines.
    Tail(ctl::tail::TailArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The legacy names (QERRORS_SOCKET, QERRORS_CONTROL) still count when the new ones are unset.
    let socket = config::paths::client_socket(cli.socket);
    let token_file = cli.token_file.as_deref();
    let control = match cli
        .control
        .or_else(|| config::paths::env::get(config::paths::env::CONTROL))
    {
        Some(c) => {
            let default_token = config::token_file_for(&socket);
            client::Control::parse(&c, Some(token_file.unwrap_or(&default_token)))
        }
        None => client::Control::discover(&socket, token_file),
    };
    let control = &control;
    match cli.cmd {
        Cmd::Tail(args) => ctl::tail::cli(args),
        Cmd::Status => ctl::status::run(control),
        Cmd::Stats => ctl::stats::run(control),
        Cmd::Recent {
            n,
            level,
            service,
            json,
        } => ctl::recent::run(control, n, level, service, json),
        Cmd::Top { n, json, fleet } => ctl::top::run(control, n, json, fleet),
        Cmd::Advice { fingerprint, json } => ctl::advice::run(control, &fingerprint, json),
        Cmd::Reload => ctl::reload::run(control),
        Cmd::CheckConfig { config: path } => ctl::check_config::run(path.as_deref()),
        Cmd::Send(args) => ctl::send::run(&socket, args),
    }
}
