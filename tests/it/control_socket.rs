//! Who sees what (issue 15), with real users acting through `setpriv`: on the control socket an
//! unprivileged user sees only its own events and cannot reload, an admin-group member sees
//! everything and can; over TCP nobody sees events without the token; `/metrics` carries no
//! client text by default; `qerrorsctl reload` never signals a pid a control server names; one
//! uid cannot hold every ingest slot; blank lines do not keep a connection alive.
//!
//! Needs root (to create users and groups, and act as them), like `first_hour`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::first_hour::user_path;
use crate::skip::{require, require_tool};
use crate::util::{self, spawn_daemon, Daemon, Opts, CTL};

const SENDERS: &str = "qerrors-it-send";
const ADMINS: &str = "qerrors-it-admin";
/// In the senders' group.
const ALICE: &str = "qerrors-it-alice";
const BOB: &str = "qerrors-it-bob";
/// In the senders' and the admins' group.
const CAROL: &str = "qerrors-it-carol";
/// In no group of ours.
const MALLORY: &str = "qerrors-it-mallory";

fn root_and_tools(test: &str) -> bool {
    require(
        test,
        nix::unistd::geteuid().is_root(),
        "root (to create and act as unprivileged users)",
        "run the suite as root, as CI does: sudo -E cargo test",
    ) && require_tool(test, "setpriv", "apt-get install util-linux")
        && require_tool(test, "curl", "apt-get install curl")
}

fn group(name: &str) {
    if nix::unistd::Group::from_name(name).ok().flatten().is_some() {
        return;
    }
    let out = Command::new("groupadd")
        .args(["--system", name])
        .output()
        .unwrap();
    // A concurrent test may have created it in between.
    assert!(
        nix::unistd::Group::from_name(name).ok().flatten().is_some(),
        "groupadd {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A system account in `groups` (created once, kept).
fn user(name: &str, groups: &[&str]) -> nix::unistd::User {
    for g in groups {
        group(g);
    }
    if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
        return u;
    }
    let mut cmd = Command::new("useradd");
    cmd.args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
    ]);
    if !groups.is_empty() {
        cmd.arg("--groups").arg(groups.join(","));
    }
    let out = cmd.arg(name).output().unwrap();
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("useradd {name}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn users() -> [nix::unistd::User; 4] {
    [
        user(ALICE, &[SENDERS]),
        user(BOB, &[SENDERS]),
        user(CAROL, &[SENDERS, ADMINS]),
        user(MALLORY, &[]),
    ]
}

/// `program` as `user` with the groups /etc/group gives it, and a bare environment.
fn as_user(user: &nix::unistd::User, program: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .env_clear()
        .env("PATH", user_path())
        .env("HOME", "/")
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .arg("--")
        .arg(program)
        .args(args)
        .current_dir("/")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A daemon whose sockets belong to the senders' group, in a directory every user can enter.
fn shared_daemon(extra: Opts) -> Daemon {
    let d = spawn_daemon(
        extra
            .env("INGEST_SOCKET_GROUP", SENDERS)
            .env("CONTROL_ADMIN_GROUP", ADMINS),
    );
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn ctl(user: &nix::unistd::User, d: &Daemon, args: &[&str]) -> Output {
    let socket = d.socket.to_str().unwrap();
    let mut all = vec!["--socket", socket];
    all.extend_from_slice(args);
    as_user(user, CTL, &all)
}

fn messages(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["message"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn users_see_their_own_events_admins_see_all_and_tcp_needs_the_token() {
    const TEST: &str =
        "control_socket::users_see_their_own_events_admins_see_all_and_tcp_needs_the_token";
    if !root_and_tools(TEST) {
        return;
    }
    let [alice, bob, carol, mallory] = users();
    let mut d = shared_daemon(Opts::new());
    let control = util::control_addr(&d);
    assert_eq!(
        Path::new(&control),
        d.socket.with_file_name("q-control.sock"),
        "the control socket sits next to the ingest socket"
    );
    let meta = std::fs::metadata(&control).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let senders = nix::unistd::Group::from_name(SENDERS).unwrap().unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::gid(&meta),
        senders.gid.as_raw()
    );

    for (u, msg) in [(&alice, "alice-private-1"), (&bob, "bob-private-1")] {
        let out = ctl(u, &d, &["send", "--wait", "--service", "app", msg]);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert!(d
        .send_lines(&[r#"{"message":"root-private-1"}"#])
        .is_empty());
    d.wait_for_events(3, util::EVENTS_TIMEOUT);

    // Alice: her own event only, everywhere.
    let out = ctl(&alice, &d, &["recent", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(messages(&out), ["alice-private-1"], "{}", text(&out));
    let out = ctl(&alice, &d, &["top", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(messages(&out), ["alice-private-1"], "{}", text(&out));
    // The fleet's fingerprints are every host's events: admins only (refused before anything
    // is looked up, so also with the fleet off, as here).
    let out = ctl(&alice, &d, &["top", "--fleet"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("admin_group only"), "{}", text(&out));
    let out = ctl(&alice, &d, &["stats"]);
    assert!(out.status.success(), "{}", text(&out));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["viewer"]["uid"], alice.uid.as_raw(), "{stats}");
    assert_eq!(stats["top_services"], serde_json::json!([]), "{stats}");
    assert_eq!(stats["events"]["written"], 3, "counters are not content");
    // Bob's fingerprint is not Alice's to ask about.
    let bob_fp = d
        .events()
        .into_iter()
        .find(|e| e["message"] == "bob-private-1")
        .unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let out = ctl(&alice, &d, &["advice", &bob_fp]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("bob-private"), "{}", text(&out));
    // ... and reload is not hers.
    let out = ctl(&alice, &d, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        text(&out)
    );

    // Carol (admin group): everything, and reload.
    let out = ctl(&carol, &d, &["recent", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut all = messages(&out);
    all.sort();
    assert_eq!(
        all,
        ["alice-private-1", "bob-private-1", "root-private-1"],
        "{}",
        text(&out)
    );
    let out = ctl(&carol, &d, &["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("configuration reloaded"),
        "{}",
        text(&out)
    );

    // Mallory (not in the socket's group) cannot connect at all.
    let out = ctl(&mallory, &d, &["--control", &control, "recent"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied on the control socket"),
        "{}",
        text(&out)
    );

    // TCP: no content without the token, for anyone; the token is the admins' to read.
    let tcp = util::control_tcp(&d);
    for path in [
        "/recent",
        "/fingerprints",
        "/stats",
        "/advice/00000000000000000000000000000000",
    ] {
        let out = as_user(
            &alice,
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{tcp}{path}"),
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "401",
            "{path}: {}",
            text(&out)
        );
    }
    let out = as_user(&alice, "curl", &["-s", &format!("http://{tcp}/metrics")]);
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(
        metrics.contains("qerrors_events_written_total 3"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("events_by_service") && !metrics.contains("service="),
        "no client text in /metrics by default: {metrics}"
    );
    let token_file = qerrors::config::token_file_for(&d.socket);
    let stderr = d.stderr_text();
    assert!(
        stderr.contains(&format!("token={}", token_file.display())),
        "the ready line names the token file: {stderr}"
    );
    let meta = std::fs::metadata(&token_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    let admins = nix::unistd::Group::from_name(ADMINS).unwrap().unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::gid(&meta),
        admins.gid.as_raw()
    );
    let token_path = token_file.to_str().unwrap();
    let out = as_user(&alice, "cat", &[token_path]);
    assert!(
        !out.status.success(),
        "alice reads the token: {}",
        text(&out)
    );
    let out = as_user(&carol, "cat", &[token_path]);
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = as_user(
        &carol,
        "curl",
        &[
            "-s",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("http://{tcp}/recent"),
        ],
    );
    let rows: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    // qerrorsctl over TCP with the token (found next to the socket) works for Carol too.
    let out = ctl(&carol, &d, &["--control", &tcp, "recent", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(messages(&out).len(), 3, "{}", text(&out));
    d.stop();
}

#[test]
fn others_none_shows_no_events_to_non_admins() {
    const TEST: &str = "control_socket::others_none_shows_no_events_to_non_admins";
    if !root_and_tools(TEST) {
        return;
    }
    let [alice, _, carol, _] = users();
    let mut d = shared_daemon(Opts::new().env("CONTROL_OTHERS", "none"));
    let out = ctl(&alice, &d, &["send", "--wait", "alice-none-1"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ctl(&alice, &d, &["recent"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("control.others"), "{}", text(&out));
    assert!(!text(&out).contains("alice-none-1"));
    // Health and counters stay available.
    let out = ctl(&alice, &d, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ctl(&carol, &d, &["recent", "--json"]);
    assert_eq!(messages(&out), ["alice-none-1"], "{}", text(&out));
    d.stop();
}

/// A control server that answers every GET with a `/stats` naming `pid` and refuses POST (like
/// whoever squats the control port): `qerrorsctl reload` fails and signals nobody.
#[test]
fn reload_never_signals_a_pid_a_control_server_names() {
    let victim = Command::new("sleep").arg("60").spawn().unwrap();
    for pid in [-1i64, 1, i64::from(victim.id())] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            listener.set_nonblocking(false).unwrap();
            // At most a few requests, then the thread ends.
            for _ in 0..3 {
                let Ok((mut c, _)) = listener.accept() else {
                    return;
                };
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!(r#"{{"pid":{pid},"reload":{{"generation":0}}}}"#);
                let resp = if req.starts_with(b"GET") {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = c.write_all(resp.as_bytes());
                if req.starts_with(b"POST") {
                    return;
                }
            }
        });
        let out = Command::new(CTL)
            .args(["--control", &addr, "reload"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "pid {pid}: {}", text(&out));
        server.join().unwrap();
    }
    // The process the server named is alive.
    let mut victim = victim;
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the named process was signalled"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}

/// One uid at `ingest.max_connections_per_uid`: its next connection is answered
/// `too_many_connections` and closed (counted), other uids still get in, and a freed slot
/// is usable again.
#[test]
fn one_uid_cannot_take_every_connection_slot() {
    const TEST: &str = "control_socket::one_uid_cannot_take_every_connection_slot";
    if !root_and_tools(TEST) {
        return;
    }
    let [alice, ..] = users();
    let mut d = shared_daemon(Opts::new().env("INGEST_MAX_CONNECTIONS_PER_UID", 4));
    // The readiness probe's connection (this uid's too) must be gone before counting to four.
    let control = util::control_addr(&d);
    util::wait_until("no ingest connection open", Duration::from_secs(10), || {
        let s = qerrors::ctl::client::control_json(&control, "/stats").ok()?;
        (s["connections"]["active"] == 0).then_some(())
    });
    let mut held: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    // Every held connection is accepted and registered: one event each, acked.
    for (i, s) in held.iter_mut().enumerate() {
        writeln!(s, r#"{{"message":"held {i}","ack":true}}"#).unwrap();
        let mut line = String::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        BufReader::new(&*s).read_line(&mut line).unwrap();
        assert!(line.starts_with(r#"{"ok":true"#), "{line}");
    }
    let mut fifth = UnixStream::connect(&d.socket).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    fifth.read_to_string(&mut reply).unwrap();
    let v: Value = serde_json::from_str(reply.trim()).unwrap_or_else(|_| panic!("{reply:?}"));
    assert_eq!(v["error"], "too_many_connections", "{v}");
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("max_connections_per_uid"));
    // Another uid is not affected.
    let out = ctl(&alice, &d, &["send", "--wait", "alice gets in"]);
    assert!(out.status.success(), "{}", text(&out));
    // A freed slot is taken again.
    drop(held.pop());
    // Once the daemon has closed it (its slot goes back first), the next one gets in.
    util::wait_until(
        "the dropped connection closed",
        Duration::from_secs(10),
        || {
            let s = qerrors::ctl::client::control_json(&control, "/stats").ok()?;
            (s["connections"]["active"] == 3).then_some(())
        },
    );
    let replies = util::wait_until("a slot frees", Duration::from_secs(10), || {
        let r = d.send_lines(&[r#"{"message":"after a slot freed","ack":true}"#]);
        (r.len() == 1 && r[0]["ok"] == true).then_some(r)
    });
    assert_eq!(replies.len(), 1);
    let stats = qerrors::ctl::client::control_json(&util::control_addr(&d), "/stats").unwrap();
    assert!(
        stats["connections"]["refused_per_uid"].as_u64() >= Some(1),
        "{stats}"
    );
    let (_, metrics) =
        qerrors::ctl::client::control_get(&util::control_addr(&d), "/metrics").unwrap();
    assert!(
        metrics.contains("qerrors_connections_refused_per_uid_total"),
        "{metrics}"
    );
    drop(held);
    let records = d.stop();
    let events = util::of_kind(&records, "event");
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .map(|m| if m.starts_with("held") { "held" } else { m })
        .collect();
    assert_eq!(messages.iter().filter(|m| **m == "held").count(), 4);
    assert!(messages.contains(&"alice gets in"));
}

/// Blank lines are keep-alives for nothing: a client that sends only newlines meets the idle
/// timeout like a silent one.
#[test]
fn blank_lines_do_not_keep_a_connection_open() {
    let mut d = spawn_daemon(Opts::new().env("INGEST_IDLE_TIMEOUT", "2s"));
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let start = Instant::now();
    let mut closed_after = None;
    while start.elapsed() < Duration::from_secs(10) {
        if s.write_all(b"\n").is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(start.elapsed());
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                closed_after = Some(start.elapsed());
                break;
            }
        }
    }
    let after = closed_after.expect("the daemon kept a blank-line client for 10 s");
    assert!(
        after >= Duration::from_millis(1500),
        "closed too early: {after:?}"
    );
    d.stop();
}
