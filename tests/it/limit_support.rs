//! A real `redis-server` per test (own free port, no persistence), killed by PID, plus a tiny
//! RESP client over std TCP for the test's own checks, and a paced load generator.
//!
//! Without `redis-server` on the machine the Redis tests are skipped ([`crate::skip`]: listed
//! at the end of the run); with `QERRORS_REQUIRE_ALL=1` (set by `.ci/run`) that skip is a
//! failure instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{self, wait_until};

pub const REDIS_SERVER: &str = "redis-server";

/// Until a started redis-server answers PING.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether `redis-server` can run here. Without it: a skip (the test returns), or a panic when
/// `QERRORS_REQUIRE_ALL=1`.
pub fn redis_available(test: &str) -> bool {
    tool_available(test, REDIS_SERVER)
}

/// `redis-cli` too (the cluster test builds its cluster with it; Debian: redis-tools).
pub fn redis_cli_available(test: &str) -> bool {
    redis_available(test) && tool_available(test, "redis-cli")
}

/// Whether `tool --version` (`openssl version`) runs; if not, a skip (a failure with
/// `QERRORS_REQUIRE_ALL=1`).
pub fn tool_available(test: &str, tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg(if tool == "openssl" {
            "version"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let package = match tool {
        "redis-cli" => "redis-tools",
        other => other,
    };
    crate::skip::require(
        test,
        ok,
        &format!("`{tool}`"),
        &format!(
            "Debian/Ubuntu: apt-get install {package}; Fedora: dnf install redis; macOS: brew \
             install redis"
        ),
    )
}

/// A redis-server child on its own port.
pub struct Redis {
    pub port: u16,
    password: Option<String>,
    child: Option<Child>,
    /// With [`Redis::start_tls`]: the TLS port and the files (CA, server key and certificate).
    tls: Option<(u16, tempfile::TempDir)>,
    /// With [`Redis::start_persistent`]: the directory of its append-only file.
    aof: Option<tempfile::TempDir>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    pub fn start(password: Option<&str>) -> Redis {
        let mut r = Redis {
            port: free_port(),
            password: password.map(str::to_string),
            child: None,
            tls: None,
            aof: None,
        };
        r.spawn();
        r
    }

    /// A server whose data survives [`Redis::kill`] and [`Redis::restart`]: an append-only
    /// file fsynced before every reply (`appendfsync always`), so what it acknowledged is there
    /// after a SIGKILL.
    pub fn start_persistent() -> Redis {
        let mut r = Redis {
            port: free_port(),
            password: None,
            child: None,
            tls: None,
            aof: Some(tempfile::tempdir().unwrap()),
        };
        r.spawn();
        r
    }

    /// A server that also listens with TLS on a second port, its certificate (for `localhost`
    /// and 127.0.0.1) signed by a throw-away CA made with `openssl`; clients are not asked for
    /// certificates. The plain port stays for the test's own commands.
    pub fn start_tls() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        crate::tls_support::throwaway_ca(dir.path());
        let mut r = Redis {
            port: free_port(),
            password: None,
            child: None,
            tls: Some((free_port(), dir)),
            aof: None,
        };
        r.spawn();
        r
    }

    /// `rediss://localhost:<tls port>/` (only after [`Redis::start_tls`]).
    pub fn tls_url(&self) -> String {
        let (port, _) = self.tls.as_ref().expect("started with start_tls");
        format!("rediss://localhost:{port}/")
    }

    /// The CA that signed the TLS certificate (only after [`Redis::start_tls`]).
    pub fn tls_ca(&self) -> std::path::PathBuf {
        let (_, dir) = self.tls.as_ref().expect("started with start_tls");
        dir.path().join("ca.crt")
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        if let Some(dir) = &self.aof {
            // Later arguments override the `--appendonly no` above.
            cmd.arg("--dir").arg(dir.path()).args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]);
        }
        if let Some((port, dir)) = &self.tls {
            let f = |n: &str| dir.path().join(n).display().to_string();
            cmd.arg("--tls-port")
                .arg(port.to_string())
                .arg("--tls-cert-file")
                .arg(f("server.crt"))
                .arg("--tls-key-file")
                .arg(f("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(f("ca.crt"))
                .args(["--tls-auth-clients", "no"]);
        }
        self.child = Some(cmd.spawn().expect("spawning redis-server"));
        wait_until("redis-server answers PING", REDIS_START_TIMEOUT, || {
            self.try_cmd(&["PING"]).ok().filter(|r| r == "PONG")
        });
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// SIGKILL by PID, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A new server on the same port (after [`Redis::kill`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill first");
        self.spawn();
    }

    /// One command; the reply flattened to text (integers and bulk strings as is, arrays
    /// joined with `\n`), or the error text.
    pub fn try_cmd(&self, args: &[&str]) -> Result<String, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = Vec::new();
        let mut push = |args: &[&str]| {
            req.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
            }
        };
        if let Some(p) = &self.password {
            push(&["AUTH", p]);
        }
        push(args);
        s.write_all(&req).map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        if self.password.is_some() {
            read_resp(&mut r)?;
        }
        read_resp(&mut r)
    }

    pub fn cmd(&self, args: &[&str]) -> String {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Calls of the sync script so far (EVALSHA plus the EVAL fallback).
    pub fn script_calls(&self) -> u64 {
        let info = self.cmd(&["INFO", "commandstats"]);
        ["cmdstat_evalsha:", "cmdstat_eval:"]
            .iter()
            .filter_map(|p| {
                info.lines()
                    .find_map(|l| l.strip_prefix(p))
                    .and_then(|l| l.strip_prefix("calls="))
                    .and_then(|l| l.split(',').next())
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum()
    }
}

/// A three-master Redis Cluster of redis-server children (no replicas), made with
/// `redis-cli --cluster create`, in a temporary directory.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            // The cluster bus listens on port + 10000: both must be free.
            let port = loop {
                let p = free_port();
                if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
                    break p;
                }
            };
            let conf = dir.path().join(format!("nodes-{port}.conf"));
            let child = Command::new(REDIS_SERVER)
                .arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                .arg("--cluster-config-file")
                .arg(&conf)
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning redis-server");
            let node = Redis {
                port,
                password: None,
                child: Some(child),
                tls: None,
                aof: None,
            };
            wait_until("cluster node answers PING", REDIS_START_TIMEOUT, || {
                node.try_cmd(&["PING"]).ok().filter(|r| r == "PONG")
            });
            nodes.push(node);
        }
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("running redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for n in &nodes {
            wait_until("cluster_state:ok", REDIS_START_TIMEOUT, || {
                n.try_cmd(&["CLUSTER", "INFO"])
                    .ok()
                    .filter(|i| i.contains("cluster_state:ok"))
            });
        }
        RedisCluster { nodes, _dir: dir }
    }

    /// The node owning the slot of keys tagged `{tag}` (the others answer `MOVED`).
    pub fn owner_of(&self, tag: &str) -> &Redis {
        let key = format!("{{{tag}}}:probe");
        self.nodes
            .iter()
            .find(|n| n.try_cmd(&["GET", &key]).is_ok())
            .expect("no node owns the slot")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_resp(r: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim_end();
    let (t, rest) = line.split_at(1.min(line.len()));
    match t {
        "+" | ":" => Ok(rest.to_string()),
        "-" => Err(rest.to_string()),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| line.to_string())?;
            if n < 0 {
                return Ok(String::new());
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            buf.truncate(n as usize);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| line.to_string())?;
            let mut parts = Vec::new();
            for _ in 0..n.max(0) {
                parts.push(read_resp(r)?);
            }
            Ok(parts.join("\n"))
        }
        _ => Err(format!("unexpected reply {line:?}")),
    }
}

/// What a load thread did.
#[derive(Debug, Default, Clone)]
pub struct Sent {
    pub lines: u64,
}

/// Sends `per_sec` events (batches every 10 ms) over one connection until `stop`; replies are
/// not requested. The events cycle through `kinds` fingerprints (client-set).
pub fn paced_load(
    socket: std::path::PathBuf,
    per_sec: u64,
    kinds: u64,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Sent> {
    thread::spawn(move || {
        let mut s = UnixStream::connect(&socket).unwrap();
        let start = Instant::now();
        let mut sent = 0u64;
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * per_sec as f64) as u64;
            buf.clear();
            while sent < due {
                let k = sent % kinds.max(1);
                buf.extend_from_slice(
                    format!(
                        "{{\"message\":\"load {sent}\",\"fingerprint\":\"kind-{k}\",\"service\":\"load\"}}\n"
                    )
                    .as_bytes(),
                );
                sent += 1;
            }
            if !buf.is_empty() {
                s.write_all(&buf).unwrap();
            }
            thread::sleep(Duration::from_millis(10));
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        // Wait for the daemon to close its side: every line has been processed.
        let mut rest = Vec::new();
        s.set_read_timeout(Some(util::REPLY_TIMEOUT)).unwrap();
        let _ = s.read_to_end(&mut rest);
        Sent { lines: sent }
    })
}

/// Latency probe: one event with `ack` every `gap`, waiting for its reply (`ok` or
/// `rate_limited`) before the next; records (send time, reply latency, reply).
pub fn probe(
    socket: std::path::PathBuf,
    gap: Duration,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Vec<(Instant, Duration, Value)>> {
    thread::spawn(move || {
        let s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(util::REPLY_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut out = Vec::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let line = format!(
                "{{\"message\":\"probe {i}\",\"fingerprint\":\"probe\",\"service\":\"probe\",\"ack\":true}}\n"
            );
            i += 1;
            let t = Instant::now();
            w.write_all(line.as_bytes()).unwrap();
            let reply = util::read_reply(&mut r).expect("probe reply");
            out.push((t, t.elapsed(), reply));
            thread::sleep(gap);
        }
        out
    })
}

/// The p99 of some latencies.
pub fn p99(mut v: Vec<Duration>) -> Duration {
    assert!(!v.is_empty(), "no samples");
    v.sort();
    v[((v.len() as f64) * 0.99) as usize].min(v[v.len() - 1])
}

/// Sum of `count` over `suppressed` records, optionally of one reason.
pub fn suppressed_count(records: &[Value], reason: Option<&str>) -> u64 {
    records
        .iter()
        .filter(|r| r["kind"] == "suppressed")
        .filter(|r| reason.is_none_or(|x| r["reason"] == x))
        .map(|r| r["count"].as_u64().expect("suppressed.count"))
        .sum()
}

/// `daemon` records about breaker transitions into `to`.
pub fn transitions_to(records: &[Value], to: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["kind"] == "daemon" && r["msg"] == "breaker transition" && r["to"] == to)
        .cloned()
        .collect()
}
