//! Shared by the `hardening_*` tests: a daemon on a log path of the test's choosing (on a tmpfs,
//! or the log a killed daemon left), a tmpfs mount that is unmounted whatever happens, /proc
//! probes (open fds, resident memory) and an acked sender that records exactly what the daemon
//! confirmed.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::skip::{notice, skip};
use crate::util::{
    event_line, parse_records, scrub_env, DAEMON, EXIT_TIMEOUT, POLL, STARTUP_TIMEOUT,
};

/// Read timeout of the acked sender's reader: long enough for a disk-full outage in a test.
const ACK_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A `qerrorsd` writing to `log` (anywhere), with its socket and stderr in its own temp dir.
/// Dropping it kills the child if it still runs.
pub struct Proc {
    /// Holds the socket and stderr; removed on drop.
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub log: PathBuf,
    stderr: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts a daemon on `log` with `QERRORS_<key>=<value>` settings and waits until ready.
    pub fn spawn(log: &Path, env: &[(&str, &str)]) -> Proc {
        let dir = tempfile::Builder::new()
            .prefix("qerrors-hard-")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("q.sock");
        let stderr = dir.path().join("daemon.stderr");
        let mut cmd = Command::new(DAEMON);
        cmd.arg("--socket")
            .arg(&socket)
            .arg("--log")
            .arg(log)
            // Many daemons run at once: a free control port each.
            .arg("--control")
            .arg("127.0.0.1:0")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap());
        scrub_env(&mut cmd);
        cmd.env("QERRORS_LOG_LEVEL", "info");
        for (k, v) in env {
            cmd.env(format!("QERRORS_{k}"), v);
        }
        let child = cmd.spawn().expect("spawning qerrorsd");
        let mut p = Proc {
            _dir: dir,
            socket,
            log: log.to_path_buf(),
            stderr,
            child,
            status: None,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                self.status = Some(st);
                panic!(
                    "qerrorsd exited during startup ({st}); stderr:\n{}",
                    self.stderr_text()
                );
            }
            if crate::util::daemon_ready(self.pid(), &self.socket) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "qerrorsd not ready; stderr:\n{}",
                self.stderr_text()
            );
            thread::sleep(POLL);
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, a clean exit, then every record of the log (strictly parsed: it must end with a
    /// newline and every line must be JSON).
    pub fn stop(&mut self) -> Vec<Value> {
        assert!(self.status.is_none());
        // SAFETY: kill(2) has no memory-safety preconditions; the PID is our unreaped child.
        assert_eq!(unsafe { libc::kill(self.pid(), libc::SIGTERM) }, 0);
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "qerrorsd did not exit after SIGTERM; stderr:\n{}",
                self.stderr_text()
            );
            thread::sleep(POLL);
        };
        self.status = Some(st);
        assert!(
            st.success(),
            "qerrorsd exited with {st}; stderr:\n{}",
            self.stderr_text()
        );
        parse_records(&fs::read(&self.log).unwrap(), true)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!("--- qerrorsd stderr ---\n{}\n---", self.stderr_text());
        }
    }
}

/// A tmpfs of a fixed size, mounted for one test and unmounted on drop (also when the test
/// fails). Needs root; elsewhere [`Tmpfs::mount`] skips the test ([`crate::skip`]).
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(test: &str, size: u64) -> Option<Tmpfs> {
        if !nix::unistd::geteuid().is_root() {
            skip(
                test,
                "root (to mount a tmpfs)",
                "run `sudo -E cargo test` to include it; CI runs the suite as root",
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("qerrors-tmpfs-")
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { path, _dir: dir }),
            Ok(o) => {
                skip(
                    test,
                    "a working `mount -t tmpfs`",
                    &format!(
                        "it failed even as root ({}: {}); a container needs CAP_SYS_ADMIN",
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                );
                None
            }
            Err(e) => {
                skip(
                    test,
                    "`mount`",
                    &format!("cannot run it ({e}); apt-get install mount"),
                );
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it (a daemon that could not be killed?): detach it at least.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Open file descriptors of a process.
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// The daemon's open fds at rest, to compare with after a test: one connection round trip
/// first (a blank line, which counts as nothing), so whatever the daemon opens lazily is open,
/// then the count once it has stayed the same for a while.
pub fn baseline_fds(socket: &Path, pid: i32) -> usize {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(b"\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut rest).unwrap();
    drop(s);
    const STABLE_POLLS: usize = 10;
    let (mut last, mut same) = (fd_count(pid), 0);
    for _ in 0..500 {
        thread::sleep(POLL);
        let now = fd_count(pid);
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same >= STABLE_POLLS {
            break;
        }
    }
    last
}

/// What each open fd of a process is (for failure messages).
pub fn fd_list(pid: i32) -> String {
    let mut out: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = fs::read_link(e.path()).ok()?;
            Some(format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    out.sort();
    out.join("\n")
}

/// Waits (bounded) until the process has at most `n` open fds.
pub fn wait_fds_at_most(pid: i32, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while fd_count(pid) > n {
        assert!(
            Instant::now() < deadline,
            "qerrorsd's open fds did not fall back to {n}:\n{}",
            fd_list(pid)
        );
        thread::sleep(POLL);
    }
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// `n` acked events tagged `{prefix}-{i}`, one per line.
pub fn acked_lines(prefix: &str, n: usize, pad: usize) -> Vec<String> {
    let pad = "p".repeat(pad);
    (0..n)
        .map(|i| {
            event_line(
                &format!("{prefix} {i} {pad}"),
                json!({"ack": true, "tags": {"k": format!("{prefix}-{i}")}}),
            )
        })
        .collect()
}

/// One connection sending lines (in chunks of `chunk`) on one thread and reading replies on
/// another: [`AckedSender::written`] counts lines handed to the kernel, acks are collected.
/// Both threads end on their own when the daemon goes away.
///
/// Replies are best-effort: a connection's replies beyond `ingest.reply_buffer_bytes` that the
/// client has not read yet are dropped. A test that counts acks exactly either keeps at most a
/// window of lines unanswered ([`AckedSender::windowed`]) or raises that buffer.
pub struct AckedSender {
    written: Arc<AtomicUsize>,
    acked: Arc<Mutex<Vec<String>>>,
    other: Arc<Mutex<Vec<Value>>>,
    writer: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
}

impl AckedSender {
    pub fn start(socket: &Path, lines: Vec<String>, chunk: usize) -> AckedSender {
        Self::windowed(socket, lines, chunk, usize::MAX)
    }

    /// Sends a chunk only while at most `window` lines are still unanswered.
    pub fn windowed(socket: &Path, lines: Vec<String>, chunk: usize, window: usize) -> AckedSender {
        let s = UnixStream::connect(socket).unwrap();
        s.set_read_timeout(Some(ACK_READ_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let written = Arc::new(AtomicUsize::new(0));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let other = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(AtomicUsize::new(0));
        let (wc, rc) = (written.clone(), replies.clone());
        let writer = thread::spawn(move || {
            for part in lines.chunks(chunk) {
                let deadline = Instant::now() + ACK_READ_TIMEOUT;
                while wc.load(Ordering::SeqCst) - rc.load(Ordering::SeqCst) > window {
                    if Instant::now() > deadline {
                        return; // replies stopped coming; the test's counts will say so
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                let mut buf = Vec::new();
                for l in part {
                    buf.extend_from_slice(l.as_bytes());
                    buf.push(b'\n');
                }
                if w.write_all(&buf).is_err() {
                    return; // the daemon is gone (killed)
                }
                wc.fetch_add(part.len(), Ordering::SeqCst);
            }
            let _ = w.shutdown(std::net::Shutdown::Write);
        });
        let (a, o) = (acked.clone(), other.clone());
        let reader = thread::spawn(move || {
            let mut r = BufReader::new(s);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let Ok(v) = serde_json::from_str::<Value>(line.trim_end()) else {
                    return; // a reply torn by a kill
                };
                replies.fetch_add(1, Ordering::SeqCst);
                match (v["ok"].as_bool(), v["id"].as_str()) {
                    (Some(true), Some(id)) => a.lock().unwrap().push(id.to_string()),
                    _ => o.lock().unwrap().push(v),
                }
            }
        });
        AckedSender {
            written,
            acked,
            other,
            writer: Some(writer),
            reader: Some(reader),
        }
    }

    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    pub fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap().clone()
    }

    /// Waits for both threads; returns (acked ids, every other reply).
    pub fn join(mut self) -> (Vec<String>, Vec<Value>) {
        self.writer.take().unwrap().join().unwrap();
        self.reader.take().unwrap().join().unwrap();
        let acked = self.acked.lock().unwrap().clone();
        let other = self.other.lock().unwrap().clone();
        (acked, other)
    }
}

/// Ids of the event records.
pub fn event_ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["kind"] == "event")
        .map(|r| r["id"].as_str().expect("event id").to_string())
        .collect()
}

/// Asserts the ids are distinct and returns them as a set.
pub fn unique(ids: &[String], what: &str) -> HashSet<String> {
    let set: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "{what}: an id appears twice");
    set
}

/// `daemon` records with this message.
pub fn daemon_msgs<'a>(records: &'a [Value], msg: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["kind"] == "daemon" && r["msg"] == msg)
        .collect()
}

/// Raises this process's soft fd limit to its hard limit (the daemons it starts inherit it) and
/// returns the limit now in force. Tests with many connections scale to it.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim = want;
            }
        }
    }
    lim.rlim_cur
}

/// How many connections a test may open at once when it wants `want`: the fd limit is shared
/// by the test's own sockets, the daemon's accepted ones and every other test running in
/// parallel. Says loudly when it has to scale down.
pub fn connections_allowed(test: &str, want: usize) -> usize {
    let limit = raise_fd_limit() as usize;
    let allowed = want.min(limit.saturating_sub(512) / 2).max(16);
    if allowed < want {
        notice(&format!(
            "{test}: the fd limit is {limit}; using {allowed} connections instead of {want}"
        ));
    }
    allowed
}

/// `reopened log file` records with this reason (`missing`, `replaced`, `sighup`).
pub fn reopens<'a>(records: &'a [Value], reason: &str) -> Vec<&'a Value> {
    daemon_msgs(records, "reopened log file")
        .into_iter()
        .filter(|r| r["reason"] == reason)
        .collect()
}
