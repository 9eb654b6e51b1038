//! The harness: one `qerrorsd` child per test, each in its own temp dir with its own socket and
//! log, plus small blocking clients (std `UnixStream`, no runtime).
//!
//! Every wait is a bounded poll; the bounds are generous because the suite runs on a loaded
//! 2-core box, and no test asserts on how long something took.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const DAEMON: &str = env!("CARGO_BIN_EXE_qerrorsd");
pub const CTL: &str = env!("CARGO_BIN_EXE_qerrorsctl");

/// Until the daemon listens and has its signal handlers installed.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Until the daemon exits after SIGTERM (its own bounds are 5 s grace + 2 s slack).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Until events show up in the log.
pub const EVENTS_TIMEOUT: Duration = Duration::from_secs(60);
/// Read timeout on client sockets: a reply that takes longer than this is a hang.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Sleep between polls.
pub const POLL: Duration = Duration::from_millis(20);

/// Signals whose handlers must be installed before a test may send them (else the default
/// action kills the daemon). Bit `n - 1` of `SigCgt` in /proc/PID/status.
const READY_SIGNALS: [i32; 2] = [libc::SIGTERM, libc::SIGHUP];

/// How one daemon is started.
#[derive(Debug, Default, Clone)]
pub struct Opts {
    env: Vec<(String, String)>,
    args: Vec<OsString>,
    socket: Option<PathBuf>,
    fifo_log: bool,
    umask: Option<u32>,
}

impl Opts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `QERRORS_<key>`, e.g. `.env("RING_OVERFLOW", "drop_newest")`.
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((format!("QERRORS_{key}"), value.to_string()));
        self
    }

    /// Sets an environment variable as is (e.g. `NOTIFY_SOCKET`).
    pub fn raw_env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Extra command-line arguments (after `--socket` and `--log`).
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Use this socket path instead of one in the daemon's own temp dir.
    pub fn socket(mut self, p: &Path) -> Self {
        self.socket = Some(p.to_path_buf());
        self
    }

    /// Start the daemon under this umask (`sh -c 'umask 000; exec qerrorsd …'`: the PID is
    /// still the daemon's).
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask);
        self
    }

    /// Make the log path a FIFO whose read end the test holds without reading: the writer
    /// thread blocks in `write()` once the pipe buffer (64 KiB) is full. That is a genuinely
    /// stalled sink, unlike a slow one. [`Daemon::unstall`] starts reading.
    pub fn fifo_log(mut self) -> Self {
        self.fifo_log = true;
        self
    }
}

/// A running (or exited) `qerrorsd`. Dropping it kills the child if it still runs.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub log: PathBuf,
    stderr: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
    fifo: Option<File>,
    /// Keeps CPU-exclusive tests from starting while this daemon runs (see [`cpu_exclusive`]).
    _cpu: Option<CpuShare>,
}

/// Spawns a daemon and waits until it is ready.
pub fn spawn_daemon(opts: Opts) -> Daemon {
    let mut d = Daemon::spawn(opts);
    d.wait_ready();
    d
}

impl Daemon {
    /// Spawns without waiting (for daemons expected to fail at startup).
    pub fn spawn(opts: Opts) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("qerrors-it-")
            .tempdir()
            .unwrap();
        let socket = opts
            .socket
            .clone()
            .unwrap_or_else(|| dir.path().join("q.sock"));
        let log = dir.path().join("errors.log");
        let stderr = dir.path().join("daemon.stderr");
        let fifo = opts.fifo_log.then(|| open_fifo_reader(&log));

        let mut cmd = match opts.umask {
            None => Command::new(DAEMON),
            Some(mask) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("umask {mask:03o} && exec \"$0\" \"$@\""))
                    .arg(DAEMON);
                c
            }
        };
        // Many daemons run at once: each gets a free control port unless the test picks one
        // (the address is in the start record).
        if !opts.args.iter().any(|a| a == "--control") {
            cmd.arg("--control").arg("127.0.0.1:0");
        }
        cmd.arg("--socket")
            .arg(&socket)
            .arg("--log")
            .arg(&log)
            .args(&opts.args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap());
        scrub_env(&mut cmd);
        // The daemon's own log at info: startup failures and warnings end up in `stderr`.
        cmd.env("QERRORS_LOG_LEVEL", "info");
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawning qerrorsd");
        Daemon {
            dir,
            socket,
            log,
            stderr,
            child,
            status: None,
            fifo,
            _cpu: cpu_share(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Polls until the socket file exists and SIGTERM/SIGHUP are caught (they are installed
    /// after the socket is bound, so a test signalling earlier would kill the daemon).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(st) = self.try_status() {
                panic!(
                    "qerrorsd exited during startup ({st}); stderr:\n{}",
                    self.stderr_text()
                );
            }
            if daemon_ready(self.pid(), &self.socket) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "qerrorsd not ready after {STARTUP_TIMEOUT:?}; stderr:\n{}",
                self.stderr_text()
            );
            thread::sleep(POLL);
        }
    }

    /// Exit status if the child has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Sends a signal to the child (only while it has not been reaped, so the PID is ours).
    pub fn signal(&self, sig: i32) {
        assert!(self.status.is_none(), "signal after the daemon was reaped");
        // SAFETY: kill(2) has no memory-safety preconditions; the PID is our unreaped child.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Waits (bounded) for the child to exit; kills it and panics on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(st) = self.status {
            return st;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status() {
                return st;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "qerrorsd did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// SIGTERM, then the exit status.
    pub fn sigterm_and_wait(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(EXIT_TIMEOUT)
    }

    /// SIGTERM and insist on a clean exit; returns every record (strictly parsed).
    pub fn stop(&mut self) -> Vec<Value> {
        let st = self.sigterm_and_wait();
        assert!(
            st.success(),
            "qerrorsd exited with {st} after SIGTERM; stderr:\n{}",
            self.stderr_text()
        );
        self.final_records()
    }

    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The log and its rotated siblings, oldest first: `errors.log.N` … `errors.log.1`,
    /// `errors.log`.
    pub fn log_files(&self) -> Vec<PathBuf> {
        log_files(&self.log)
    }

    /// Every complete record in all log files, oldest first. A last line still being written
    /// is skipped (the daemon is running); every complete line must be valid JSON.
    pub fn all_records(&self) -> Vec<Value> {
        self.log_files()
            .iter()
            .flat_map(|p| parse_records(&fs::read(p).unwrap_or_default(), false))
            .collect()
    }

    /// Records of one `kind`.
    pub fn records(&self, kind: &str) -> Vec<Value> {
        of_kind(&self.all_records(), kind)
    }

    pub fn events(&self) -> Vec<Value> {
        self.records("event")
    }

    /// After exit: every file must end with a newline and every line must parse.
    pub fn final_records(&self) -> Vec<Value> {
        assert!(
            self.status.is_some(),
            "final_records before the daemon exited"
        );
        self.log_files()
            .iter()
            .flat_map(|p| parse_records(&fs::read(p).unwrap(), true))
            .collect()
    }

    /// Polls until at least `n` event records are in the log; returns them.
    pub fn wait_for_events(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.events();
            if ev.len() >= n {
                return ev;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} events in the log after {timeout:?}; stderr:\n{}",
                ev.len(),
                self.stderr_text()
            );
            thread::sleep(POLL);
        }
    }

    /// A client connection with a read timeout (a missing reply fails the test, not hangs it).
    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket.display()));
        s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        s
    }

    /// One connection: writes `data`, half-closes, returns every reply line until EOF.
    pub fn send_raw(&self, data: &[u8]) -> Vec<Value> {
        let mut s = self.connect();
        s.write_all(data).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        read_replies(&mut s)
    }

    /// One connection: each line plus `\n`; returns the replies.
    pub fn send_lines<S: AsRef<str>>(&self, lines: &[S]) -> Vec<Value> {
        self.send_raw(&join_lines(lines))
    }

    /// Starts reading the FIFO log (see [`Opts::fifo_log`]) on a thread.
    pub fn unstall(&mut self) -> FifoDrain {
        let mut f = self
            .fifo
            .take()
            .expect("not a FIFO daemon, or already unstalled");
        let data = Arc::new(Mutex::new(Vec::new()));
        let sink = data.clone();
        // Ends at EOF, i.e. when the daemon (the only writer) exits or is killed by our Drop.
        let handle = thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => panic!("reading the log FIFO: {e}"),
                }
            }
        });
        FifoDrain {
            data,
            handle: Some(handle),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Kill by our child's PID (not reaped yet, so it is still ours).
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            let text = self.stderr_text();
            let tail: String = text
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("--- qerrorsd stderr (last 40 lines) ---\n{tail}\n---");
        }
    }
}

/// What the test has read from a FIFO log so far.
pub struct FifoDrain {
    data: Arc<Mutex<Vec<u8>>>,
    handle: Option<JoinHandle<()>>,
}

impl FifoDrain {
    /// Complete records read so far.
    pub fn records(&self) -> Vec<Value> {
        parse_records(&self.data.lock().unwrap(), false)
    }

    /// Polls until `n` event records were read.
    pub fn wait_for_events(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = of_kind(&self.records(), "event").len();
            if got >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {got} of {n} events read from the FIFO after {timeout:?}"
            );
            thread::sleep(POLL);
        }
    }

    /// Waits for EOF (call after the daemon exited) and returns every record, strictly parsed.
    pub fn finish(mut self) -> Vec<Value> {
        self.handle.take().unwrap().join().unwrap();
        parse_records(&self.data.lock().unwrap(), true)
    }
}

/// Opens the read end of a new FIFO at `path` without blocking (no writer yet), then makes it
/// blocking so later reads wait for data.
fn open_fifo_reader(path: &Path) -> File {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap();
    let flags = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
    let mut flags = nix::fcntl::OFlag::from_bits_truncate(flags);
    flags.remove(nix::fcntl::OFlag::O_NONBLOCK);
    nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
    f
}

/// Keeps the runner's own `QERRORS_*` or systemd activation variables away from the child.
pub fn scrub_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("QERRORS_") || k.starts_with("LISTEN_") {
            cmd.env_remove(&*k);
        }
    }
}

/// A daemon is ready when its signal handlers are installed and its socket accepts (the file
/// may be a stale one about to be replaced; a probe connection is harmless: it sends nothing).
pub fn daemon_ready(pid: i32, socket: &Path) -> bool {
    socket.exists() && signals_caught(pid, &READY_SIGNALS) && UnixStream::connect(socket).is_ok()
}

/// Whether every signal in `sigs` has a handler in process `pid`.
pub fn signals_caught(pid: i32, sigs: &[i32]) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
    else {
        return false;
    };
    sigs.iter().all(|s| mask & (1u64 << (s - 1)) != 0)
}

pub fn log_files(log: &Path) -> Vec<PathBuf> {
    let dir = log.parent().unwrap();
    let base = log.file_name().unwrap().to_string_lossy().into_owned();
    let mut numbered: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().to_string_lossy().into_owned();
                let n = name.strip_prefix(&base)?.strip_prefix('.')?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect()
        })
        .unwrap_or_default();
    numbered.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    if log.exists() {
        out.push(log.to_path_buf());
    }
    out
}

/// Parses NDJSON. `strict`: the data must end with `\n`; otherwise a trailing partial line is
/// ignored. Every complete line must be a JSON object.
pub fn parse_records(data: &[u8], strict: bool) -> Vec<Value> {
    let complete = match data.iter().rposition(|b| *b == b'\n') {
        Some(i) => &data[..=i],
        None => &data[..0],
    };
    if strict {
        assert_eq!(
            complete.len(),
            data.len(),
            "log does not end with a newline: {:?}",
            String::from_utf8_lossy(&data[complete.len()..])
        );
    }
    complete
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_slice(l).unwrap_or_else(|e| {
                panic!("log line is not JSON ({e}): {}", String::from_utf8_lossy(l))
            });
            assert!(v.is_object(), "log line is not an object: {v}");
            v
        })
        .collect()
}

pub fn of_kind(records: &[Value], kind: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["kind"] == kind)
        .cloned()
        .collect()
}

/// Reads reply lines until EOF; each must be a JSON object.
pub fn read_replies(s: &mut UnixStream) -> Vec<Value> {
    let mut out = Vec::new();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return out,
            Ok(_) => out.push(
                serde_json::from_str(line.trim_end())
                    .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line:?}")),
            ),
            Err(e) => panic!("reading replies: {e} (after {} replies)", out.len()),
        }
    }
}

/// Reads one reply line (blocking up to the socket's read timeout); `None` at EOF.
pub fn read_reply(r: &mut impl BufRead) -> Option<Value> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(
            serde_json::from_str(line.trim_end())
                .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line:?}")),
        ),
        Err(e) => panic!("reading a reply: {e}"),
    }
}

pub fn join_lines<S: AsRef<str>>(lines: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_ref().as_bytes());
        out.push(b'\n');
    }
    out
}

/// The last record, which must be the `stop` daemon record.
pub fn stop_record(records: &[Value]) -> &Value {
    let last = records.last().expect("empty log");
    assert_eq!(
        last["kind"], "daemon",
        "last record is not a daemon record: {last}"
    );
    assert_eq!(
        last["msg"], "stop",
        "last record is not the stop record: {last}"
    );
    last
}

/// Sum of `count` over `dropped` records with this reason.
pub fn dropped_count(records: &[Value], reason: &str) -> u64 {
    records
        .iter()
        .filter(|r| r["kind"] == "dropped" && r["reason"] == reason)
        .map(|r| r["count"].as_u64().expect("dropped.count"))
        .sum()
}

/// Per-code sums over the `codes` of `dropped` records.
pub fn dropped_codes(records: &[Value]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records.iter().filter(|r| r["kind"] == "dropped") {
        if let Some(codes) = r["codes"].as_object() {
            for (k, v) in codes {
                *out.entry(k.clone()).or_default() += v.as_u64().expect("code count");
            }
        }
    }
    out
}

/// `{"message": msg}` plus `fields`, as a line.
pub fn event_line(msg: &str, fields: Value) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("message".into(), msg.into());
    if let Value::Object(m) = fields {
        obj.extend(m);
    }
    Value::Object(obj).to_string()
}

/// Asserts a 26-character Crockford base32 ULID.
pub fn assert_ulid(id: &Value) {
    let s = id
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {id}"));
    assert_eq!(s.len(), 26, "id {s:?}");
    assert!(
        s.bytes()
            .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b)),
        "id {s:?} is not Crockford base32"
    );
    assert!(s.as_bytes()[0] <= b'7', "id {s:?} overflows 128 bits");
}

/// Parses an RFC 3339 timestamp.
pub fn rfc3339(v: &Value) -> time::OffsetDateTime {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp string: {v}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
}

/// Polls `f` until it returns `Some`, bounded.
/// CPU-exclusive tests (the 1M-event memory flood, the shared-limit accuracy and Redis outage
/// measurements) run alone: on 2 cores a flood next to a 10 s rate measurement or a shutdown
/// drain makes the result say something about the host rather than the code. Every other daemon
/// holds a share ([`Daemon`] takes one when spawned); an exclusive test waits until no share is
/// held and blocks new shares while it runs. Shares never wait for a merely *waiting* exclusive
/// test, so a test holding two daemons cannot deadlock.
struct CpuGate {
    shares: usize,
    exclusive: bool,
}

static CPU_GATE: std::sync::Mutex<CpuGate> = std::sync::Mutex::new(CpuGate {
    shares: 0,
    exclusive: false,
});
static CPU_CHANGED: std::sync::Condvar = std::sync::Condvar::new();

thread_local! {
    static HOLDS_EXCLUSIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn gate() -> std::sync::MutexGuard<'static, CpuGate> {
    CPU_GATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A daemon's share of the CPU gate.
pub struct CpuShare;

impl Drop for CpuShare {
    fn drop(&mut self) {
        gate().shares -= 1;
        CPU_CHANGED.notify_all();
    }
}

/// A share of the CPU gate for a test that burns CPU without a [`Daemon`] (property tests,
/// hand-spawned daemons). `None` on the thread that holds the exclusive guard.
pub fn cpu_share() -> Option<CpuShare> {
    if HOLDS_EXCLUSIVE.with(|h| h.get()) {
        return None;
    }
    let mut g = gate();
    while g.exclusive {
        g = CPU_CHANGED.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    g.shares += 1;
    Some(CpuShare)
}

pub struct CpuExclusive;

impl Drop for CpuExclusive {
    fn drop(&mut self) {
        HOLDS_EXCLUSIVE.with(|h| h.set(false));
        gate().exclusive = false;
        CPU_CHANGED.notify_all();
    }
}

/// Waits until no other test runs a daemon (and no other exclusive test runs), then keeps new
/// daemons of other tests from starting until the guard is dropped.
pub fn cpu_exclusive() -> CpuExclusive {
    let mut g = gate();
    while g.exclusive || g.shares > 0 {
        g = CPU_CHANGED.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    g.exclusive = true;
    HOLDS_EXCLUSIVE.with(|h| h.set(true));
    CpuExclusive
}

fn start_record(d: &Daemon) -> Value {
    wait_until("start record", Duration::from_secs(60), || {
        d.records("daemon")
            .into_iter()
            .find(|r| r["msg"] == "start")
    })
}

/// The control socket, from the daemon's `start` record: what `control_get`/`control_json`
/// and `qerrorsctl --control` take. The tests run as root, who sees everything there.
pub fn control_addr(d: &Daemon) -> String {
    start_record(d)["control_socket"]
        .as_str()
        .expect("control socket")
        .to_string()
}

/// The TCP control server's address, from the daemon's `start` record.
pub fn control_tcp(d: &Daemon) -> String {
    start_record(d)["control"]
        .as_str()
        .expect("control address")
        .to_string()
}

/// The control token the daemon created next to its socket.
pub fn control_token(d: &Daemon) -> String {
    // Made before the start record is written.
    start_record(d);
    let path = qerrors::config::token_file_for(&d.socket);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        thread::sleep(POLL);
    }
}

/// The test process's command name as the kernel reports it (what the daemon reads).
pub fn own_comm() -> String {
    fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

/// Waits for a child started outside [`Daemon`]; kills it and panics after `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not exit within {timeout:?}");
        }
        thread::sleep(POLL);
    }
}
