//! The first hour (issue 19): a daemon started by a non-root user with nothing configured and no
//! `XDG_RUNTIME_DIR` (ssh, cron, containers), and that user's apps with nothing configured either:
//! the Node shim, the Python handler and `qerrorsctl send` find the daemon by the one socket rule
//! and every event arrives. Runs as a real unprivileged user (`useradd`, `setpriv`), so it needs
//! root (CI runs the suite as root).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::skip::{require, require_tool};
use crate::util::{self, CTL, DAEMON, EVENTS_TIMEOUT};

const USER: &str = "qerrors-it-user";

/// A system account for these tests (created once, kept: creating it again is a no-op).
pub fn test_user() -> nix::unistd::User {
    if let Ok(Some(u)) = nix::unistd::User::from_name(USER) {
        return u;
    }
    let out = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            USER,
        ])
        .output()
        .expect("running useradd");
    // A concurrent test may have created it in between.
    if let Ok(Some(u)) = nix::unistd::User::from_name(USER) {
        return u;
    }
    panic!("useradd {USER}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The PATH for another user: this one without the entries under root's home (pyenv, cargo),
/// which the user cannot use; the system's node and python3 are what an app would run.
pub fn user_path() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty() && !p.starts_with(&home) && !p.starts_with("/root"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `program args…` as `user`, with an environment that has nothing of qerrors' and no
/// `XDG_RUNTIME_DIR`: only PATH and HOME.
fn as_user(user: &nix::unistd::User, cwd: &Path, program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.env_clear()
        .env("PATH", user_path())
        .env("HOME", cwd)
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--clear-groups")
        .arg("--")
        .arg(program)
        .current_dir(cwd);
    cmd
}

fn output(mut cmd: Command) -> Output {
    let out = cmd.output().expect("spawning");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct UserDaemon {
    child: Child,
    log: PathBuf,
}

impl UserDaemon {
    /// SIGTERM; the log's records and what the daemon wrote on stderr.
    fn stop(&mut self) -> (Vec<Value>, String) {
        use std::io::Read;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr).unwrap();
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "qerrorsd exited with {status}: {stderr}");
        let records = std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (records, stderr)
    }
}

impl Drop for UserDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_user_daemon_without_xdg_runtime_dir_is_found_by_every_client() {
    const TEST: &str = "first_hour::a_user_daemon_without_xdg_runtime_dir_is_found_by_every_client";
    let root = nix::unistd::geteuid().is_root();
    if !require(
        TEST,
        root,
        "root (to create and act as an unprivileged user)",
        "run the suite as root, as CI does: sudo -E cargo test",
    ) || !require_tool(TEST, "node", "apt-get install nodejs")
        || !require_tool(TEST, "python3", "apt-get install python3")
        || !require_tool(TEST, "setpriv", "apt-get install util-linux")
    {
        return;
    }
    let user = test_user();
    let home = tempfile::tempdir().unwrap();
    nix::unistd::chown(home.path(), Some(user.uid), Some(user.gid)).unwrap();
    let expected_socket = PathBuf::from(format!("/tmp/qerrors-{}/qerrors.sock", user.uid));

    let mut cmd = as_user(&user, home.path(), DAEMON);
    cmd.args(["--control", ""])
        .env("QERRORS_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let mut daemon = UserDaemon {
        child,
        log: home.path().join("qerrors-logs/errors.log"),
    };
    util::wait_until("the daemon's socket", Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&expected_socket).ok()
    });
    // The directory is the user's, private.
    let meta = std::fs::metadata(expected_socket.parent().unwrap()).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (user.uid.as_raw(), 0o700)
    );
    assert!(daemon.child.try_wait().unwrap().is_none());

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut node = as_user(&user, home.path(), "node");
    node.arg("-e")
        .arg(
            "const q = require(process.argv[1]);\
             q.qerrors(new Error('first hour from node'));\
             q.client().close(5000).then((st) => console.log(JSON.stringify(st)));",
        )
        .arg(repo.join("clients/node"));
    let out = output(node);
    let node_stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(node_stats["sent"], 1, "{node_stats}");

    let mut py = as_user(&user, home.path(), "python3");
    py.arg("-c")
        .arg(
            "import logging, sys, json\n\
             sys.path.insert(0, sys.argv[1])\n\
             from qerrors_client import QerrorsHandler\n\
             h = QerrorsHandler(service='first-hour-py')\n\
             log = logging.getLogger('first-hour')\n\
             log.addHandler(h)\n\
             log.error('first hour from python')\n\
             h.close(5.0)\n\
             print(json.dumps(h.stats()))\n",
        )
        .arg(repo.join("clients/python"));
    let out = output(py);
    let py_stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(py_stats["sent"], 1, "{py_stats}");

    let mut ctl = as_user(&user, home.path(), CTL);
    ctl.args(["send", "--wait", "first hour from qerrorsctl"]);
    output(ctl);

    util::wait_until("three events written", EVENTS_TIMEOUT, || {
        let text = std::fs::read_to_string(&daemon.log).ok()?;
        (text
            .lines()
            .filter(|l| l.contains("first hour from"))
            .count()
            >= 3)
            .then_some(())
    });
    let (records, stderr) = daemon.stop();
    // The ready line says where to look, with the log's absolute path.
    let ready = stderr
        .lines()
        .find(|l| l.contains("qerrorsd ready"))
        .unwrap_or_else(|| panic!("no ready line: {stderr}"));
    assert!(
        ready.contains(&format!("socket={}", expected_socket.display())),
        "{ready}"
    );
    assert!(
        ready.contains(&format!("log={}", daemon.log.display())),
        "{ready}"
    );
    let mut msgs: Vec<(String, u64)> = util::of_kind(&records, "event")
        .iter()
        .map(|e| {
            (
                e["message"].as_str().unwrap().to_string(),
                e["peer"]["uid"].as_u64().unwrap(),
            )
        })
        .collect();
    msgs.sort();
    let uid = u64::from(user.uid.as_raw());
    assert_eq!(
        msgs,
        [
            ("first hour from node".to_string(), uid),
            ("first hour from python".to_string(), uid),
            ("first hour from qerrorsctl".to_string(), uid),
        ]
    );
    // The daemon removed its socket on the way out.
    assert!(!expected_socket.exists());
}
