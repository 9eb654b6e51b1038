//! `qerrorsd`: the daemon. Parses the CLI, loads and validates config, initializes logging,
//! opens the log and the socket, then hands over to `app::run`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use qerrors::{app, config};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter};

/// qerrors daemon: reads NDJSON error events from a Unix socket and writes an enriched log.
#[derive(Debug, Parser)]
#[command(
    name = "qerrorsd",
    version = qerrors::VERSION,
    about,
    after_long_help = "\
Clients write one JSON object per line to the socket, e.g.
  echo '{\"message\":\"disk full\",\"level\":\"warn\"}' | socat - UNIX-CONNECT:/run/qerrors.sock
and the daemon appends enriched records to the log (see README / docs/PROTOCOL.md).

Defaults (no config): as root socket /run/qerrors.sock, log /var/log/qerrors/errors.log; else
socket $XDG_RUNTIME_DIR/qerrors.sock (/tmp/qerrors-<uid>/qerrors.sock without XDG_RUNTIME_DIR),
log ./qerrors-logs/errors.log; control server 127.0.0.1:9464. The ready line says which.

Environment (one scheme for qerrorsd, qerrorsctl and the client shims; docs/operations.md):
  QERRORS_<SECTION>_<KEY>  override any config key, e.g. QERRORS_RING_OVERFLOW=drop_newest,
                           QERRORS_INGEST_SOCKET, QERRORS_SINK_PATH, QERRORS_CONTROL_LISTEN
  QERRORS_LOG_LEVEL        the daemon's own diagnostics filter (default info), e.g. debug
  (older names still read: QERRORS_SOCKET, QERRORS_LOG_FILE, QERRORS_CONTROL, QERRORS_LOG)
  LISTEN_FDS/LISTEN_PID    systemd socket activation (the passed socket is used)
  NOTIFY_SOCKET            systemd notifications (READY, RELOADING, STOPPING, WATCHDOG, STATUS)

Signals:
  SIGTERM, SIGINT  drain what clients sent, write everything, remove the socket, exit 0;
                   a second one exits at once
  SIGHUP           reopen the log file and reload the configuration

Exit codes: 0 clean stop, 1 runtime/startup failure, 2 invalid configuration."
)]
struct Cli {
    /// Config file (TOML). Without it the embedded defaults apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Socket path (overrides `ingest.socket`).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Log file path (overrides `sink.path`).
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
    /// Control server address (overrides `control.listen`).
    #[arg(long, value_name = "ADDR")]
    control: Option<String>,
    /// Validate the configuration and exit (0 when valid, 2 with the key path when not).
    #[arg(long)]
    check_config: bool,
    /// Print the embedded default configuration as TOML and exit.
    #[arg(long)]
    print_default_config: bool,
}

fn main() -> ExitCode {
    // Before any thread exists: one malloc arena per core (src/memory/trim.rs).
    qerrors::memory::trim::limit_arenas(
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
    );
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", config::DEFAULT_TOML);
        return ExitCode::SUCCESS;
    }
    let source = app::ConfigSource {
        path: cli.config.clone(),
        overrides: config::Overrides {
            socket: cli.socket,
            log: cli.log,
            control: cli.control,
        },
    };
    let cfg = match source.load() {
        Ok(cfg) => cfg,
        Err(e) => {
            let source = match (&e, &cli.config) {
                (
                    config::ConfigError::Invalid { .. } | config::ConfigError::Sanitize(_),
                    Some(file),
                ) => {
                    format!(" in {}", file.display())
                }
                _ => String::new(),
            };
            eprintln!("qerrorsd: invalid configuration{source}: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!(
            "configuration OK (socket {}, log {})",
            cfg.ingest.socket.display(),
            cfg.sink.path.display()
        );
        return ExitCode::SUCCESS;
    }

    // The daemon's own log: stderr (journald under systemd) through a non-blocking writer, so
    // a slow terminal or journal never stalls a runtime thread.
    // Under memory pressure the filter drops to `warn` (never louder than configured).
    let (writer, _log_guard) = tracing_appender::non_blocking(std::io::stderr());
    let directives =
        config::paths::env::get(config::paths::env::LOG_LEVEL).unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let quiet_under_pressure = filter
        .max_level_hint()
        .is_none_or(|l| l > LevelFilter::WARN);
    let (filter, filter_handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .with_writer(writer)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    let on_pressure: app::PressureHook = Box::new(move |p| {
        if !quiet_under_pressure {
            return;
        }
        let f = match p {
            qerrors::memory::Pressure::Normal => {
                EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"))
            }
            _ => EnvFilter::new("warn"),
        };
        let _ = filter_handle.modify(|cur| *cur = f);
    });

    raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qerrors-rt")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qerrorsd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(app::run_with(cfg, source, Some(on_pressure)));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, plain, on stderr (journald keeps it under systemd), after whatever the
            // logger still holds, so it is the last line: not a second time through tracing.
            drop(_log_guard);
            eprintln!("qerrorsd: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Raises the soft open-files limit to the hard one, so `ingest.max_connections` is reachable
/// even without systemd's `LimitNOFILE=` (each connection is one fd).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "could not raise the open-files limit");
            }
        }
        _ => {}
    }
}
