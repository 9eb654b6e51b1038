//! `qerrorsctl`: the operator's and scripter's command line for qerrorsd.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use qerrors::{client, config};

#[derive(Debug, Parser)]
#[command(name = "qerrorsctl", version = qerrors::VERSION, about = "Talk to the qerrors daemon")]
struct Cli {
    /// Daemon socket (default: as the daemon's, see PROTOCOL.md; env QERRORS_SOCKET).
    #[arg(long, global = true, env = "QERRORS_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Control server address (env QERRORS_CONTROL).
    #[arg(long, global = true, env = "QERRORS_CONTROL", value_name = "ADDR", default_value = client::DEFAULT_CONTROL)]
    control: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send one error event, or NDJSON events from stdin (`-` or no MESSAGE with piped input).
    Send {
        /// The error message; `-` reads NDJSON lines from stdin instead.
        message: Option<String>,
        /// trace, debug, info, warn, error or fatal.
        #[arg(long, default_value = "error")]
        level: String,
        /// Error class/type, e.g. TypeError.
        #[arg(long)]
        name: Option<String>,
        /// Service name (default: the daemon uses this process's name).
        #[arg(long)]
        service: Option<String>,
        /// Stack trace text.
        #[arg(long)]
        stack: Option<String>,
        /// Context object as JSON, e.g. '{"path":"/api"}'.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
        /// A tag, repeatable: --tag region=eu.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Wait until each event is written to the log (asks for acks) and print the ids.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait for replies.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Is the daemon up and ready? One line of vital signs; exit 0 ready, 1 not ready, 2 down.
    Status,
    /// All counters as JSON (`/stats`).
    Stats,
    /// The last events from the daemon's error history.
    Recent {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        n: usize,
        /// Minimum level (warn shows warn, error, fatal).
        #[arg(long)]
        level: Option<String>,
        #[arg(long)]
        service: Option<String>,
        /// Print the records as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// The most frequent fingerprints.
    Top {
        #[arg(short = 'n', long, default_value_t = 10)]
        n: usize,
        #[arg(long)]
        json: bool,
    },
    /// The fix advice for one fingerprint (from `qerrorsctl top` or a record's `fingerprint`).
    Advice {
        /// The 32 hex digits, or a unique prefix of a fingerprint in `top` (like its `fp` column).
        fingerprint: String,
        /// Print the advice as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the daemon to reload its configuration and reopen its log (SIGHUP).
    Reload,
    /// Validate a configuration file the way the daemon does; exit 2 naming the key if invalid.
    CheckConfig {
        /// The file (default: embedded defaults + QERRORS_* environment).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// Follow the log like `tail -F` (survives rotation), with filters; `--json` for raw lines.
    Tail(qerrors::tail::TailArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli.socket.unwrap_or_else(config::default_socket_path);
    let ctl = cli.control.as_str();
    match cli.cmd {
        Cmd::Tail(args) => qerrors::tail::cli(args),
        Cmd::Status => status(ctl),
        Cmd::Stats => match client::control_json(ctl, "/stats") {
            Ok(v) => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        },
        Cmd::Recent {
            n,
            level,
            service,
            json,
        } => recent(ctl, n, level, service, json),
        Cmd::Top { n, json } => top(ctl, n, json),
        Cmd::Advice { fingerprint, json } => advice(ctl, &fingerprint, json),
        Cmd::Reload => reload(ctl),
        Cmd::CheckConfig { config: path } => {
            match config::RawConfig::load(path.as_deref(), std::env::vars())
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
        Cmd::Send {
            message,
            level,
            name,
            service,
            stack,
            context,
            tags,
            wait,
            timeout,
        } => {
            let lines = match message.as_deref() {
                Some("-") | None if !std::io::stdin().is_terminal() || message.is_some() => {
                    match read_stdin(wait) {
                        Ok(l) => l,
                        Err(e) => return fail(&e),
                    }
                }
                None => {
                    return fail("nothing to send: give a MESSAGE or pipe NDJSON into `send -`")
                }
                Some(m) => {
                    let mut ev = serde_json::Map::new();
                    ev.insert("message".into(), m.into());
                    ev.insert("level".into(), level.into());
                    if let Some(n) = name {
                        ev.insert("name".into(), n.into());
                    }
                    if let Some(s) = service {
                        ev.insert("service".into(), s.into());
                    }
                    if let Some(s) = stack {
                        ev.insert("stack".into(), s.into());
                    }
                    if let Some(c) = context {
                        match serde_json::from_str::<serde_json::Value>(&c) {
                            Ok(v) => {
                                ev.insert("context".into(), v);
                            }
                            Err(e) => return fail(&format!("--context is not JSON: {e}")),
                        }
                    }
                    if !tags.is_empty() {
                        let mut t = serde_json::Map::new();
                        for kv in &tags {
                            let Some((k, v)) = kv.split_once('=') else {
                                return fail(&format!("--tag {kv}: expected KEY=VALUE"));
                            };
                            t.insert(k.into(), v.into());
                        }
                        ev.insert("tags".into(), t.into());
                    }
                    if wait {
                        ev.insert("ack".into(), true.into());
                    }
                    vec![serde_json::Value::Object(ev).to_string()]
                }
            };
            match client::send_lines(&socket, &lines, Duration::from_secs(timeout)) {
                Ok(rep) => {
                    for e in &rep.errors {
                        eprintln!("rejected: {e}");
                    }
                    if wait {
                        for a in &rep.acked {
                            println!("{a}");
                        }
                        if rep.acked.len() + rep.errors.len() < rep.sent {
                            eprintln!(
                                "qerrorsctl: {} of {} events not confirmed within {timeout}s",
                                rep.sent - rep.acked.len() - rep.errors.len(),
                                rep.sent
                            );
                            return ExitCode::from(1);
                        }
                    }
                    if rep.errors.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => fail(&e.to_string()),
            }
        }
    }
}

/// NDJSON from stdin; with `--wait`, each object line gets `"ack":true`.
fn read_stdin(wait: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        if wait {
            if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str(&line) {
                m.insert("ack".into(), true.into());
                out.push(serde_json::Value::Object(m).to_string());
                continue;
            }
        }
        out.push(line);
    }
    Ok(out)
}

fn status(ctl: &str) -> ExitCode {
    let stats = match client::control_json(ctl, "/stats") {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let (ready_status, ready_body) = match client::control_get(ctl, "/ready") {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let ev = &stats["events"];
    println!(
        "qerrorsd {} (pid {}) up {}s: {}; {} written, {} rejected, {} dropped; ring {}/{} events; {} connections; rss {:.1} MiB",
        stats["version"].as_str().unwrap_or("?"),
        stats["pid"],
        stats["uptime_s"],
        ready_body.trim(),
        ev["written"],
        ev["rejected_total"],
        ev["dropped"]["overload"],
        stats["ring"]["events"],
        stats["ring"]["capacity_events"],
        stats["connections"]["active"],
        stats["memory"]["rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
    );
    if ready_status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn recent(
    ctl: &str,
    n: usize,
    level: Option<String>,
    service: Option<String>,
    json: bool,
) -> ExitCode {
    let mut q = format!("/recent?n={n}");
    if let Some(l) = level {
        q.push_str(&format!("&level={}", urlencode(&l)));
    }
    if let Some(s) = service {
        q.push_str(&format!("&service={}", urlencode(&s)));
    }
    let rows = match client::control_json(ctl, &q) {
        Ok(serde_json::Value::Array(rows)) => rows,
        Ok(other) => return fail(&format!("unexpected reply: {other}")),
        Err(e) => return fail(&e.to_string()),
    };
    for r in rows {
        if json {
            println!("{r}");
        } else {
            let fp = r["fingerprint"].as_str().unwrap_or("");
            println!(
                "{} {:5} {} {}{} [{}] x{}",
                r["received"].as_str().unwrap_or(""),
                r["level"].as_str().unwrap_or(""),
                r["service"].as_str().unwrap_or(""),
                r["name"]
                    .as_str()
                    .map(|n| format!("{n}: "))
                    .unwrap_or_default(),
                r["message"].as_str().unwrap_or(""),
                &fp[..fp.len().min(8)],
                r["occurrence"],
            );
        }
    }
    ExitCode::SUCCESS
}

fn top(ctl: &str, n: usize, json: bool) -> ExitCode {
    let rows = match client::control_json(ctl, &format!("/fingerprints?top={n}")) {
        Ok(serde_json::Value::Array(rows)) => rows,
        Ok(other) => return fail(&format!("unexpected reply: {other}")),
        Err(e) => return fail(&e.to_string()),
    };
    if json {
        for r in rows {
            println!("{r}");
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "{:>8}  {:8}  {:12}  {:8}  {:16}  what",
        "count", "fp", "class", "severity", "service"
    );
    for r in rows {
        let fp = r["fingerprint"].as_str().unwrap_or("");
        println!(
            "{:>8}  {:8}  {:12}  {:8}  {:16}  {}{}",
            r["count"],
            &fp[..fp.len().min(8)],
            r["class"].as_str().unwrap_or(""),
            r["severity"].as_str().unwrap_or(""),
            r["service"].as_str().unwrap_or(""),
            r["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(|n| format!("{n}: "))
                .unwrap_or_default(),
            r["message"].as_str().unwrap_or(""),
        );
        if let Some(summary) = r["advice"]["advice"]["summary"].as_str() {
            println!("{:>8}  advice: {summary}", "");
        }
    }
    ExitCode::SUCCESS
}

/// SIGHUP to the daemon's pid as reported by its control server.
fn reload(ctl: &str) -> ExitCode {
    let stats = match client::control_json(ctl, "/stats") {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let Some(pid) = stats["pid"].as_i64().and_then(|p| i32::try_from(p).ok()) else {
        return fail("the daemon did not report its pid");
    };
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    ) {
        Ok(()) => {
            println!("sent SIGHUP to qerrorsd (pid {pid}); see its log for the outcome");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!(
            "cannot signal pid {pid}: {e} (run as the daemon's user or root)"
        )),
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("qerrorsctl: {msg}");
    ExitCode::from(2)
}

/// `qerrorsctl advice FP`: exit 0 with the advice, 1 when there is none, 2 when unreachable.
fn advice(ctl: &str, fp: &str, json: bool) -> ExitCode {
    let mut fp = fp.trim().to_ascii_lowercase();
    if fp.len() < 32 {
        // A prefix, as `top` prints: resolve it against the tracked fingerprints.
        let rows = match client::control_json(ctl, "/fingerprints?top=1000") {
            Ok(serde_json::Value::Array(rows)) => rows,
            Ok(other) => return fail(&format!("unexpected reply: {other}")),
            Err(e) => return fail(&e.to_string()),
        };
        let found: Vec<&str> = rows
            .iter()
            .filter_map(|r| r["fingerprint"].as_str())
            .filter(|f| !fp.is_empty() && f.starts_with(fp.as_str()))
            .collect();
        match found.as_slice() {
            [one] => fp = one.to_string(),
            [] => {
                eprintln!("qerrorsctl: no tracked fingerprint starts with `{fp}`");
                return ExitCode::from(1);
            }
            _ => {
                eprintln!(
                    "qerrorsctl: `{fp}` is ambiguous ({} fingerprints); give more digits",
                    found.len()
                );
                return ExitCode::from(1);
            }
        }
    }
    let (status, body) = match client::control_get(ctl, &format!("/advice/{fp}")) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    if status != 200 {
        eprintln!("qerrorsctl: {}", body.trim_end());
        return ExitCode::from(1);
    }
    let v: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return fail(&format!("not JSON: {e}")),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let a = &v["advice"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    println!("fingerprint  {}", s(&v["fingerprint"]));
    println!(
        "source       {}{}",
        s(&v["source"]),
        a["rule"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    println!(
        "confidence   {:.2}",
        a["confidence"].as_f64().unwrap_or_default()
    );
    println!("summary      {}", s(&a["summary"]));
    println!("likely cause {}", s(&a["likely_cause"]));
    println!("fix:");
    for (i, step) in a["fix_steps"].as_array().into_iter().flatten().enumerate() {
        println!("  {}. {}", i + 1, s(step));
    }
    println!(
        "event        {}   (expires {})",
        s(&v["event_id"]),
        s(&v["expires"])
    );
    ExitCode::SUCCESS
}
