//! `docs/getting-started.md` is executed, so it cannot rot: every ```` ```sh ```` block runs in
//! order in one working directory, as an unprivileged user (a `useradd` account when the suite
//! runs as root, else the current user), with the built `qerrorsd` and `qerrorsctl` first on the
//! PATH. Blocks tagged `no-run` (installing, packaging) are skipped; the one tagged `daemon` is
//! started in the background and must print its ready line. Every other block must exit 0, and
//! the events the page sends must be in the log afterwards.
//!
//! Two adjustments, both so the run cannot collide with anything else on the machine:
//! `XDG_RUNTIME_DIR` is a fresh directory of the test's (the page's own rule then puts the socket
//! there), and `QERRORS_CONTROL_LISTEN` a free port (read by the daemon and `qerrorsctl` alike,
//! as the page says), substituted for `127.0.0.1:9464` in the blocks.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::first_hour::test_user;
use crate::skip::require_tool;
use crate::util::{self, DAEMON};

const DOC: &str = include_str!("../../docs/getting-started.md");
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Block {
    tags: Vec<String>,
    text: String,
    line: usize,
}

/// The fenced blocks whose info string starts with `sh`.
fn sh_blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let is_sh = words.next() == Some("sh");
        let tags: Vec<String> = words.map(str::to_string).collect();
        let mut text = String::new();
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            text.push_str(l);
            text.push('\n');
        }
        if is_sh {
            out.push(Block {
                tags,
                text,
                line: n + 1,
            });
        }
    }
    out
}

/// Who runs the page: uid/gid to switch to (as root), or `None` (already unprivileged).
type Who = Option<(u32, u32)>;

fn shell(who: Who, work: &Path, env: &[(&str, String)], script: &str) -> Command {
    let mut cmd = match who {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg("bash");
            c
        }
        None => Command::new("bash"),
    };
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(work);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_getting_started_page_works_as_written() {
    const TEST: &str = "getting_started::the_getting_started_page_works_as_written";
    if !require_tool(TEST, "node", "apt-get install nodejs")
        || !require_tool(TEST, "python3", "apt-get install python3")
        || !require_tool(TEST, "curl", "apt-get install curl")
    {
        return;
    }
    let blocks = sh_blocks(DOC);
    assert!(blocks.len() >= 6, "{blocks:?}");

    let work = tempfile::tempdir().unwrap();
    let who: Who = if nix::unistd::geteuid().is_root() {
        let u = test_user();
        Some((u.uid.as_raw(), u.gid.as_raw()))
    } else {
        None
    };
    // The page runs "from the repository's directory": the clients are where it says.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::os::unix::fs::symlink(repo.join("clients"), work.path().join("clients")).unwrap();
    let run_dir = work.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    if let Some((uid, gid)) = who {
        for d in [work.path(), run_dir.as_path()] {
            nix::unistd::chown(
                d,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .unwrap();
        }
    }
    let bin_dir = Path::new(DAEMON).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        if who.is_some() {
            crate::first_hour::user_path()
        } else {
            std::env::var("PATH").unwrap_or_default()
        }
    );
    let control = format!("127.0.0.1:{}", free_port());
    let env = [
        ("PATH", path),
        ("HOME", work.path().display().to_string()),
        ("XDG_RUNTIME_DIR", run_dir.display().to_string()),
        ("QERRORS_CONTROL_LISTEN", control.clone()),
        ("QERRORS_LOG_LEVEL", "info".to_string()),
    ];
    let stderr_file = work.path().join("daemon.stderr");

    let mut daemon: Option<Background> = None;
    let mut ran = 0;
    for block in &blocks {
        if block.tags.iter().any(|t| t == "no-run") {
            continue;
        }
        let script = block.text.replace("127.0.0.1:9464", &control);
        if block.tags.iter().any(|t| t == "daemon") {
            assert_eq!(
                script.trim().lines().count(),
                1,
                "line {}: the daemon block is one command",
                block.line
            );
            let mut cmd = shell(who, work.path(), &env, &format!("exec {}", script.trim()));
            cmd.stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr_file).unwrap());
            daemon = Some(Background(cmd.spawn().unwrap()));
            util::wait_until("the daemon's ready line", BLOCK_TIMEOUT, || {
                let text = std::fs::read_to_string(&stderr_file).ok()?;
                text.contains("qerrorsd ready").then_some(())
            });
            continue;
        }
        let mut child = shell(who, work.path(), &env, &script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + BLOCK_TIMEOUT;
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "line {}: still running after {BLOCK_TIMEOUT:?}:\n{script}",
                block.line
            );
            std::thread::sleep(util::POLL);
        }
        let (mut out, mut err) = (String::new(), String::new());
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "docs/getting-started.md line {}: {status}\n{script}\nstdout: {out}\nstderr: {err}",
            block.line
        );
        ran += 1;
    }
    assert!(ran >= 5, "only {ran} blocks ran");
    let mut daemon = daemon.expect("the page starts a daemon");

    // Stop it as the page says (Ctrl-C), then check the log has what the page sent.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = daemon.0.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    assert!(status.success(), "qerrorsd: {status}: {stderr}");
    let log: PathBuf = work.path().join("qerrors-logs/errors.log");
    assert!(
        stderr.contains(&format!("log={}", log.display())),
        "the ready line names the log: {stderr}"
    );
    let records: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events = util::of_kind(&records, "event");
    let mut seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["service"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or(""),
            )
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            ("backup", "disk almost full"),
            ("billing", "invoice total failed"),
            (
                "checkout",
                "Cannot read properties of undefined (reading 'id')"
            ),
            ("web", "session store unreachable"),
        ],
        "{events:#?}"
    );
    let py = events.iter().find(|e| e["service"] == "billing").unwrap();
    assert_eq!(py["name"], "ZeroDivisionError", "{py}");
    assert!(
        py["stack"]
            .as_str()
            .is_some_and(|s| s.contains("ZeroDivisionError: division by zero")),
        "{py}"
    );
}
