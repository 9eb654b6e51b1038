//! systemd notification protocol: READY, watchdog pings from the running loop, RELOADING on
//! SIGHUP, STOPPING on SIGTERM, all observed on a test `NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::util::{spawn_daemon, Opts};

fn collect(sock: &UnixDatagram, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut msgs = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !until(&msgs) {
        if let Ok(n) = sock.recv(&mut buf) {
            msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    msgs
}

fn count(msgs: &[String], needle: &str) -> usize {
    msgs.iter()
        .filter(|m| m.lines().any(|l| l == needle))
        .count()
}

#[test]
fn ready_watchdog_reload_and_stopping_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut d = spawn_daemon(
        Opts::new()
            .raw_env("NOTIFY_SOCKET", path.display())
            .raw_env("WATCHDOG_USEC", 200_000),
    );
    let msgs = collect(&sock, |m| {
        count(m, "READY=1") >= 1 && count(m, "WATCHDOG=1") >= 3
    });
    assert!(count(&msgs, "READY=1") >= 1, "{msgs:?}");
    assert!(count(&msgs, "WATCHDOG=1") >= 3, "watchdog pings: {msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("STATUS=")), "{msgs:?}");

    d.signal(libc::SIGHUP);
    let msgs = collect(&sock, |m| {
        count(m, "RELOADING=1") >= 1 && count(m, "READY=1") >= 1
    });
    assert!(count(&msgs, "RELOADING=1") >= 1, "{msgs:?}");
    assert!(
        count(&msgs, "READY=1") >= 1,
        "ready again after the reload: {msgs:?}"
    );

    d.signal(libc::SIGTERM);
    let msgs = collect(&sock, |m| count(m, "STOPPING=1") >= 1);
    assert!(count(&msgs, "STOPPING=1") >= 1, "{msgs:?}");
    assert!(d.wait_exit(Duration::from_secs(30)).success());
}
