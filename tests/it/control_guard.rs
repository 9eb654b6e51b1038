//! The control server cannot be used against the host (issue 15, TCP side): a `Host` that is not
//! this server's gets 421 (DNS rebinding), every response carries security headers, half-sent
//! requests cannot take the daemon's file descriptors (a cap on connections, an idle deadline),
//! a control port someone else holds does not stop the daemon, and a non-loopback `listen` needs
//! an explicit opt-in.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::util::{self, spawn_daemon, Opts, DAEMON};

/// One HTTP/1.1 request with `host` (and the control token, when given); the status code and
/// the whole response.
fn get(addr: &str, path: &str, host: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

#[test]
fn foreign_host_names_get_421_and_every_response_has_security_headers() {
    let mut d = spawn_daemon(Opts::new().env("CONTROL_ALLOWED_HOSTS", "[\"qerrors.internal\"]"));
    let addr = util::control_tcp(&d);
    let token = util::control_token(&d);
    let port = addr.rsplit(':').next().unwrap();
    for host in [
        "attacker.example".to_string(),
        format!("attacker.example:{port}"),
        format!("localhost.attacker.example:{port}"),
    ] {
        for path in ["/recent", "/stats", "/", "/metrics"] {
            let (code, _) = get(&addr, path, &host, Some(&token));
            assert_eq!(code, 421, "{path} with Host {host}");
        }
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "qerrors.internal".to_string(),
    ] {
        let (code, resp) = get(&addr, "/recent", &host, Some(&token));
        assert_eq!(code, 200, "Host {host}: {resp}");
        let lower = resp.to_ascii_lowercase();
        for h in [
            "content-security-policy: default-src 'none'",
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "referrer-policy: no-referrer",
        ] {
            assert!(lower.contains(h), "{h} missing: {resp}");
        }
    }
    d.stop();
}

/// 500 half-sent requests at a file-descriptor limit of 256: the daemon keeps taking (and
/// acking) events, the control socket keeps answering, and once the idle deadline has passed
/// the TCP control server answers again.
#[test]
fn half_sent_requests_cannot_exhaust_descriptors() {
    let mut d = spawn_daemon(
        Opts::new()
            .env("CONTROL_MAX_CONNECTIONS", 16)
            .env("CONTROL_IDLE_TIMEOUT", "4s"),
    );
    let addr = util::control_tcp(&d);
    let sock = util::control_addr(&d);
    let out = Command::new("prlimit")
        .arg(format!("--pid={}", d.pid()))
        .arg("--nofile=256:256")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prlimit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut held = Vec::new();
    for _ in 0..500 {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            let _ = s.write_all(b"GET /stats HTTP/1.1\r\nHost: localhost\r\n");
            held.push(s);
        }
    }
    // Give the daemon time to accept what it will (the idle deadline is 4 s away).
    std::thread::sleep(Duration::from_secs(1));
    // It holds at most the cap of them: its descriptors stay far below the limit.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .unwrap()
        .count();
    assert!(fds < 16 + 80, "{fds} open descriptors while flooded");
    // Ingest is unaffected: every event is acked.
    let lines: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"message":"during the flood {i}","ack":true}}"#))
        .collect();
    let replies = d.send_lines(&lines);
    assert_eq!(
        replies.iter().filter(|r| r["ok"] == true).count(),
        20,
        "{replies:?}"
    );
    // So is the control socket (its own connection slots).
    let during = qerrors::ctl::client::control_json(&sock, "/stats").unwrap();
    assert!(during["events"]["written"].as_u64().is_some(), "{during}");
    // The half-sent requests are closed after the idle timeout; the server answers again.
    util::wait_until("/health answers", Duration::from_secs(30), || {
        let mut s = TcpStream::connect(&addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.starts_with("HTTP/1.1 200").then_some(())
    });
    let stats = qerrors::ctl::client::control_json(&sock, "/stats").unwrap();
    let rejected = stats["control"]["connections_rejected"].as_u64().unwrap();
    assert!(rejected >= 400, "{stats}");
    let (_, metrics) = qerrors::ctl::client::control_get(&addr, "/metrics").unwrap();
    assert!(
        metrics.contains("qerrors_control_connections_rejected_total"),
        "{metrics}"
    );
    drop(held);
    d.stop();
}

#[test]
fn a_taken_control_port_does_not_stop_the_daemon() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    let mut d = spawn_daemon(Opts::new().arg("--control").arg(&taken));
    let replies = d.send_lines(&[r#"{"message":"still taking events","ack":true}"#]);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["ok"], true, "{replies:?}");
    let records = d.stop();
    let notice = util::of_kind(&records, "daemon")
        .into_iter()
        .find(|r| r["msg"] == "control server not started")
        .unwrap_or_else(|| panic!("no notice: {records:?}"));
    assert_eq!(notice["listen"], taken.as_str());
    assert!(
        d.stderr_text().contains("control server not started"),
        "{}",
        d.stderr_text()
    );
    assert_eq!(util::of_kind(&records, "event").len(), 1);
}

#[test]
fn a_listen_address_beyond_loopback_needs_an_explicit_opt_in() {
    let check = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(DAEMON);
        util::scrub_env(&mut cmd);
        cmd.arg("--check-config").envs(env.iter().copied());
        cmd.output().unwrap()
    };
    let out = check(&[("QERRORS_CONTROL_LISTEN", "0.0.0.0:9464")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("control.listen") && err.contains("control.allow_remote"),
        "{err}"
    );
    let out = check(&[
        ("QERRORS_CONTROL_LISTEN", "0.0.0.0:9464"),
        ("QERRORS_CONTROL_ALLOW_REMOTE", "true"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
