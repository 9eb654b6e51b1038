//! Startup: refusing a live socket, replacing a stale one, `--check-config` and its messages,
//! and a failure reported once.

use std::os::unix::net::UnixListener;
use std::process::{Command, Output, Stdio};

use serde_json::json;

use crate::util::{
    event_line, of_kind, scrub_env, spawn_daemon, wait_child, Daemon, Opts, DAEMON, EVENTS_TIMEOUT,
    EXIT_TIMEOUT,
};

#[test]
fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    let mut first = spawn_daemon(Opts::new());
    let mut second = Daemon::spawn(Opts::new().socket(&first.socket));
    let st = second.wait_exit(EXIT_TIMEOUT);
    assert!(!st.success(), "the second daemon started: {st}");
    let err = second.stderr_text();
    assert!(err.contains("already listening"), "stderr: {err}");
    // The first one is untouched: its socket is still there and serving.
    assert!(
        first.socket.exists(),
        "the second daemon removed the first one's socket"
    );
    assert!(first
        .send_lines(&[event_line("still here", json!({}))])
        .is_empty());
    first.wait_for_events(1, EVENTS_TIMEOUT);
    let records = first.stop();
    assert_eq!(of_kind(&records, "event")[0]["message"], "still here");
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "the stale socket file should remain");
    let mut d = spawn_daemon(Opts::new().socket(&path));
    assert!(d
        .send_lines(&[event_line("on a replaced socket", json!({}))])
        .is_empty());
    d.wait_for_events(1, EVENTS_TIMEOUT);
    d.stop();
    assert!(!path.exists(), "socket file not removed at exit");
}

#[test]
fn a_regular_file_at_the_socket_path_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious");
    std::fs::write(&path, "data").unwrap();
    let mut d = Daemon::spawn(Opts::new().socket(&path));
    let st = d.wait_exit(EXIT_TIMEOUT);
    assert!(!st.success());
    assert!(
        d.stderr_text().contains("not a socket"),
        "{}",
        d.stderr_text()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

fn qerrorsd(args: &[&str], dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(DAEMON);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    scrub_env(&mut cmd);
    cmd.output().unwrap()
}

#[test]
fn check_config_rejects_a_bad_file_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[ring]\ncapacity_events = 0\n", "ring.capacity_events"),
        ("[sink]\nrotate_byts = 5\n", "rotate_byts"),
        ("[ring]\noverflow = \"sometimes\"\n", "ring.overflow"),
        (
            "[ingest]\nmax_line_bytes = \"lots\"\n",
            "ingest.max_line_bytes",
        ),
        ("[sink]\nfile_mode = \"rwx\"\n", "sink.file_mode"),
        (
            "[ingest]\nmax_line_bytes = 1024\n[ring]\ncapacity_bytes = 512\n",
            "ring.capacity_bytes",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let out = qerrorsd(
            &["--check-config", "--config", f.to_str().unwrap()],
            dir.path(),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {err}");
        assert!(
            err.contains(key),
            "{text:?}: stderr should name {key:?}: {err}"
        );
    }
}

#[test]
fn negative_sizes_and_durations_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let check = |env: &[(&str, &str)], file: Option<&str>| {
        let mut cmd = Command::new(DAEMON);
        cmd.arg("--check-config").current_dir(dir.path());
        scrub_env(&mut cmd);
        if let Some(text) = file {
            let f = dir.path().join("neg.toml");
            std::fs::write(&f, text).unwrap();
            cmd.arg("--config").arg(&f);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?} {file:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let size = "ingest.max_line_bytes: size must not be negative (got";
    for (env, file) in [
        (&[("QERRORS_INGEST_MAX_LINE_BYTES", "-5")][..], None),
        (&[("QERRORS_INGEST_MAX_LINE_BYTES", "-5 KiB")], None),
        (&[], Some("[ingest]\nmax_line_bytes = -5\n")),
        (&[], Some("[ingest]\nmax_line_bytes = \"-5\"\n")),
    ] {
        let err = check(env, file);
        assert!(err.contains(size), "{env:?} {file:?}: {err}");
        assert!(!err.contains("overflow"), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    let err = check(&[("QERRORS_INGEST_IDLE_TIMEOUT", "-5s")], None);
    assert!(
        err.contains("ingest.idle_timeout: duration must not be negative (got \"-5s\")"),
        "{err}"
    );
    let err = check(&[], Some("[memory]\npressure_timeout = -5\n"));
    assert!(
        err.contains("memory.pressure_timeout: duration must not be negative (got -5)"),
        "{err}"
    );
}

#[test]
fn a_startup_failure_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (sock, log) = (dir.path().join("q.sock"), dir.path().join("errors.log"));
    // A socket, then a log, whose directory is a regular file: neither can be created.
    for (socket, log, what) in [
        (file.join("q.sock"), log, "opening the ingest socket"),
        (sock, file.join("errors.log"), "opening log file"),
    ] {
        let stderr = dir.path().join("stderr");
        let mut cmd = Command::new(DAEMON);
        scrub_env(&mut cmd);
        let mut child = cmd
            .args(["--control", "127.0.0.1:0", "--socket"])
            .arg(&socket)
            .arg("--log")
            .arg(&log)
            .env("QERRORS_LOG", "info")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let st = wait_child(&mut child, EXIT_TIMEOUT);
        let err = std::fs::read_to_string(&stderr).unwrap();
        assert_eq!(st.code(), Some(1), "{err}");
        assert_eq!(err.matches(what).count(), 1, "printed once: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("qerrorsd: {what}")),
            "the last line: {err}"
        );
    }
}

#[test]
fn printed_default_config_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = qerrorsd(&["--print-default-config"], dir.path());
    assert!(out.status.success());
    let f = dir.path().join("default.toml");
    std::fs::write(&f, &out.stdout).unwrap();
    let out = qerrorsd(
        &["--check-config", "--config", f.to_str().unwrap()],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--print-default-config` prints the documented example: its comments, and sizes exactly as
/// the defaults are (8388608, not a rounded "8.4 MB").
#[test]
fn printed_default_config_is_the_documented_example() {
    let dir = tempfile::tempdir().unwrap();
    let out = qerrorsd(&["--print-default-config"], dir.path());
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
            .unwrap();
    assert_eq!(printed, example);
    assert!(
        printed.contains("\ncache_max_bytes = 8388608\n"),
        "{printed}"
    );
    assert!(
        printed.contains("\nllm_max_prompt_bytes = 4096\n"),
        "{printed}"
    );
    assert!(!printed.contains(" MB\""), "a rounded size: {printed}");
    assert!(printed.lines().filter(|l| l.starts_with('#')).count() > 50);
}

/// The printed defaults are the defaults: a daemon run with them behaves like one run without
/// a file. Probe `ingest.max_line_bytes` (256 KiB): a line of exactly that size is accepted.
#[test]
fn printed_default_config_is_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = qerrorsd(&["--print-default-config"], dir.path());
    let f = dir.path().join("default.toml");
    std::fs::write(&f, &out.stdout).unwrap();
    let line = {
        let base = event_line("", json!({}));
        event_line(&"x".repeat(256 * 1024 - base.len()), json!({}))
    };
    assert_eq!(line.len(), 256 * 1024);
    for config in [None, Some(&f)] {
        let mut opts = Opts::new();
        if let Some(f) = config {
            opts = opts.arg("--config").arg(f);
        }
        let mut d = spawn_daemon(opts);
        let replies = d.send_lines(&[&line]);
        assert!(
            replies.is_empty(),
            "config {config:?}: a line of exactly the default max_line_bytes was rejected: {replies:?}"
        );
        d.wait_for_events(1, EVENTS_TIMEOUT);
        d.stop();
    }
}

#[test]
fn version_carries_the_git_description_and_help_documents_signals() {
    let out = std::process::Command::new(crate::util::DAEMON)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.starts_with(&format!("qerrorsd {} (", env!("CARGO_PKG_VERSION")))
            && text.trim_end().ends_with(')'),
        "{text}"
    );
    let help = std::process::Command::new(crate::util::DAEMON)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "SIGHUP",
        "QERRORS_<SECTION>_<KEY>",
        "--check-config",
        "LISTEN_FDS",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}

/// Under umask 000 every file keeps its own mode: the socket ends up 0660 and is never seen
/// wider on the way, the log is 0640, the advice cache 0600, and no temp file is left next to
/// them. The watcher polls the path from before the daemon starts until it is ready; a
/// bind-then-chmod shows 0777 for microseconds, which it catches in most runs, not all
/// (`ingest::listener::tests::the_file_is_born_with_the_owner_bits_only` checks the mechanism
/// itself every time).
#[test]
fn umask_000_widens_nothing() {
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("q.sock");
    let mode = |p: &std::path::Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, sock) = (stop.clone(), sock.clone());
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            // Until told to stop and the socket was seen at least once (on a busy machine this
            // thread may not have run before the daemon was ready).
            while !stop.load(Ordering::Relaxed) || seen.is_empty() {
                if let Some(m) = mode(&sock) {
                    seen.insert(m);
                }
                std::thread::yield_now();
            }
            seen
        })
    };
    let mut d = spawn_daemon(Opts::new().socket(&sock).umask(0o000));
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    for m in &seen {
        assert_eq!(m & !0o660, 0, "the socket was seen with mode {m:o}");
    }
    assert_eq!(mode(&sock), Some(0o660));
    assert_eq!(mode(&d.log), Some(0o640));
    assert!(d
        .send_lines(&[event_line(
            "connect ECONNREFUSED 127.0.0.1:5432",
            json!({"name": "Error"})
        )])
        .is_empty());
    d.wait_for_events(1, EVENTS_TIMEOUT);
    d.stop();
    assert_eq!(mode(&d.dir.path().join("advice-cache.json")), Some(0o600));
    let names: Vec<String> = std::fs::read_dir(d.dir.path())
        .unwrap()
        .chain(std::fs::read_dir(sock_dir.path()).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".tmp") && !n.starts_with('.')),
        "{names:?}"
    );
}
