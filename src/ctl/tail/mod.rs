//! `qerrorsctl tail`: follows the daemon's log like `tail -F`, with filters and a readable,
//! coloured rendering of each record.
//!
//! Plain polling with std I/O (no inotify): every [`POLL_INTERVAL`] the followed file is read to
//! its end and the path is checked.
//!
//! - **Rotation**: when the path names another file (renamed away, replaced, deleted and
//!   recreated), the old file is read to its end, then the new one from its start. Files the
//!   daemon's own rotation moved through `errors.log.1`, `.2`, … between two polls are found by
//!   their inode and read too, so a burst that rotates several times is still shown whole and
//!   once. The old file stays open (and is read) for [`DRAIN_GRACE`] after it last grew, for a
//!   writer that reopens late (logrotate's `create` before the SIGHUP arrives).
//! - **Truncation** (`copytruncate`): the file is read again from its start.
//! - **Missing file**: waited for.
//! - Only complete lines are printed; a partial last line waits for its newline.
//! - **Bounded memory**: fixed read buffers, a partial line is kept up to [`MAX_LINE`] bytes (a
//!   longer one is skipped), at most [`MAX_DRAINING`] old files are held open.
//!
//! Files:
//!
//! - `mod.rs`: the arguments, the log path, [`run`] (the last records, then following).
//! - `follow.rs`: [`Follower`], reading the file forward across rotation and truncation, and
//!   backwards for the last N records at start.
//! - `print.rs`: [`Filter`] and [`Printer`]: which records are shown, as JSON or as coloured
//!   human lines.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::config;
use crate::event::level::Level;

mod follow;
mod print;

pub use follow::{Follower, DRAIN_GRACE, MAX_DRAINING, MAX_LINE};
pub use print::{format_human, Filter, Printer};

/// How often the file and the path are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Read size.
const CHUNK: usize = 64 << 10;

/// `qerrorsctl tail` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// Log file [default: sink.path as the daemon resolves it ($QERRORS_SINK_PATH, --config,
    /// the default for this user), else the system daemon's /var/log/qerrors/errors.log].
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Read sink.path from this configuration file (as the daemon would, with QERRORS_* env).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start with the last N matching records of the file.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    pub lines: usize,
    /// Minimum level: trace < debug < info < warn < error < fatal (aliases such as warning,
    /// err, critical are accepted, as in `send`).
    #[arg(long, value_name = "LEVEL", value_parser = super::parse_level)]
    pub level: Option<Level>,
    /// Only records of this service.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Only records whose fingerprint starts with this (the 8 characters shown are enough).
    #[arg(long, value_name = "HEX")]
    pub fingerprint: Option<String>,
    /// Only these record kinds: event, dropped, suppressed, daemon, advice (comma-separated or
    /// repeated) [default: all kinds].
    #[arg(long, value_name = "KIND", value_delimiter = ',', value_parser = super::parse_kind)]
    pub kind: Vec<String>,
    /// Print each record's line exactly as in the log.
    #[arg(long)]
    pub json: bool,
    /// Print the last records and exit instead of following.
    #[arg(long)]
    pub no_follow: bool,
}

/// Runs `qerrorsctl tail`: exit 0 when the output is closed (`| head`), 2 on errors.
pub fn cli(args: TailArgs) -> ExitCode {
    let path = match resolve_path(&args, std::env::vars().collect()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("qerrorsctl: {e}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let opts = Options {
        path,
        lines: args.lines,
        follow: !args.no_follow,
        printer: Printer {
            filter: Filter {
                min_level: args.level,
                service: args.service,
                fingerprint: args.fingerprint,
                kinds: args.kind,
            },
            json: args.json,
            color,
        },
        poll: POLL_INTERVAL,
    };
    match run(&opts, &mut stdout.lock(), &mut io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qerrorsctl: {}: {e}", opts.path.display());
            ExitCode::from(2)
        }
    }
}

/// `--log`, then `sink.path` as the daemon resolves it: `--config` (or the embedded defaults)
/// with the `QERRORS_*` environment applied (`QERRORS_SINK_PATH`, or the older
/// `QERRORS_LOG_FILE`). With none of them given and no log at the default of this user, the
/// system daemon's log if there is one: a member of the `qerrors` group runs `qerrorsctl tail`
/// without naming `/var/log/qerrors/errors.log`.
pub fn resolve_path(args: &TailArgs, env: Vec<(String, String)>) -> Result<PathBuf, String> {
    resolve_path_with(args, env, Path::new(config::paths::SYSTEM_LOG))
}

fn resolve_path_with(
    args: &TailArgs,
    env: Vec<(String, String)>,
    system_log: &Path,
) -> Result<PathBuf, String> {
    if let Some(p) = &args.log {
        return Ok(p.clone());
    }
    let from_env = env.iter().any(|(k, v)| {
        [
            config::paths::env::LOG_FILE.0,
            config::paths::env::LOG_FILE.1,
        ]
        .contains(&k.as_str())
            && !v.is_empty()
    });
    let explicit = from_env || args.config.is_some();
    let cfg = config::RawConfig::load(args.config.as_deref(), env)
        .and_then(|raw| raw.validate(&Default::default()))
        .map_err(|e| e.to_string())?;
    let path = cfg.sink.path;
    if !explicit && !path.exists() && system_log.exists() {
        return Ok(system_log.to_path_buf());
    }
    Ok(path)
}

/// What [`run`] does.
#[derive(Debug, Clone)]
pub struct Options {
    pub path: PathBuf,
    /// Matching records shown from the end of the file at start.
    pub lines: usize,
    /// Keep following (`tail -F`) instead of exiting after the first `lines`.
    pub follow: bool,
    pub printer: Printer,
    pub poll: Duration,
}

/// Prints the last `lines` matching records, then (when following) every new one, forever.
/// Returns only on an error (`BrokenPipe` once the reader went away) or, without `follow`,
/// after the first records. Notes about rotation go to `notes`.
pub fn run(opts: &Options, out: &mut dyn Write, notes: &mut dyn Write) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(CHUNK, out);
    let mut scratch = Vec::new();
    let mut follower = Follower::new(&opts.path);
    let printer = &opts.printer;
    match follower.start(opts.lines, &mut |l| printer.accepts(l))? {
        Some(lines) => {
            for l in &lines {
                scratch.clear();
                printer.render(l, &mut scratch);
                out.write_all(&scratch)?;
            }
            out.flush()?;
        }
        None if !opts.follow => {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        }
        None => writeln!(
            notes,
            "qerrorsctl: waiting for {} to appear",
            opts.path.display()
        )?,
    }
    if !opts.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(opts.poll);
        follower.poll(&mut |l| {
            scratch.clear();
            if printer.render(l, &mut scratch) {
                out.write_all(&scratch)?;
            }
            Ok(())
        })?;
        out.flush()?;
        for n in follower.take_notes() {
            writeln!(notes, "qerrorsctl: {n}")?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::path::Path;

    /// An `event` record (shared with the tests of the submodules).
    pub(super) fn ev(level: &str, service: &str, fp: &str) -> Value {
        json!({"kind":"event","received":"2026-11-28T16:49:03.123456Z","level":level,
               "service":service,"name":"TypeError","message":"boom","fingerprint":fp,
               "occurrence":3})
    }

    /// `content` as `errors.log` in a new temporary directory (shared with `follow`'s tests).
    pub(super) fn tmpfile(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("errors.log");
        std::fs::write(&p, content).unwrap();
        (dir, p)
    }

    #[test]
    fn log_path_precedence() {
        let args = |log: Option<&str>, config: Option<&Path>| TailArgs {
            log: log.map(PathBuf::from),
            config: config.map(Path::to_path_buf),
            lines: 10,
            level: None,
            service: None,
            fingerprint: None,
            kind: vec![],
            json: false,
            no_follow: false,
        };
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("c.toml");
        std::fs::write(&cfg, "[sink]\npath = \"/tmp/from-config.log\"\n").unwrap();
        let lf = [("QERRORS_LOG_FILE", "/tmp/from-env.log")];
        let system = d.path().join("system.log");
        let r = |a: &TailArgs, e: &[(&str, &str)]| resolve_path_with(a, env(e), &system).unwrap();
        assert_eq!(
            r(&args(Some("/x.log"), Some(&cfg)), &lf),
            Path::new("/x.log")
        );
        assert_eq!(r(&args(None, None), &lf), Path::new("/tmp/from-env.log"));
        // the environment wins over the file, as in the daemon
        assert_eq!(
            r(&args(None, Some(&cfg)), &lf),
            Path::new("/tmp/from-env.log")
        );
        assert_eq!(
            r(&args(None, Some(&cfg)), &[]),
            Path::new("/tmp/from-config.log")
        );
        // the new name wins over the old one
        assert_eq!(
            r(
                &args(None, None),
                &[
                    ("QERRORS_LOG_FILE", "/tmp/old.log"),
                    ("QERRORS_SINK_PATH", "/tmp/new.log")
                ]
            ),
            Path::new("/tmp/new.log")
        );
        assert_eq!(
            r(&args(None, None), &[("QERRORS_SINK_PATH", "/tmp/sink.log")]),
            Path::new("/tmp/sink.log")
        );
        // nothing given: this user's default, or the system log when only that exists
        let default = config::default_log_path();
        if !default.exists() {
            assert_eq!(r(&args(None, None), &[]), default);
            std::fs::write(&system, b"").unwrap();
            assert_eq!(r(&args(None, None), &[]), system);
            // but never instead of a path that was asked for
            assert_eq!(
                r(&args(None, Some(&cfg)), &[]),
                Path::new("/tmp/from-config.log")
            );
        }
        assert!(resolve_path(&args(None, Some(&d.path().join("none.toml"))), vec![]).is_err());
    }

    #[test]
    fn run_without_follow_prints_the_last_matching_records() {
        let lines = [
            ev("info", "a", "11"),
            ev("error", "b", "22"),
            json!({"kind":"daemon","msg":"start"}),
            ev("warn", "a", "33"),
        ];
        let content: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let (_d, p) = tmpfile(content.as_bytes());
        let opts = Options {
            path: p.clone(),
            lines: 1,
            follow: false,
            printer: Printer {
                json: true,
                filter: Filter {
                    service: Some("a".into()),
                    ..Filter::default()
                },
                color: false,
            },
            poll: POLL_INTERVAL,
        };
        let mut out = Vec::new();
        run(&opts, &mut out, &mut io::sink()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{}\n", lines[3]));
        let missing = Options {
            path: p.with_extension("nope"),
            ..opts
        };
        assert!(run(&missing, &mut Vec::new(), &mut io::sink()).is_err());
    }
}
