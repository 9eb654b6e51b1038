//! systemd socket activation: the daemon uses the listening socket passed as fd 3 with
//! `LISTEN_FDS`/`LISTEN_PID`, binds nothing itself, and leaves the socket file to systemd.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{self, DAEMON};

#[test]
fn uses_the_socket_passed_by_systemd() {
    let _cpu = crate::util::cpu_share();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("activated.sock");
    let never = dir.path().join("not-here/never-bound.sock");
    let log = dir.path().join("errors.log");
    let listener = UnixListener::bind(&sock).unwrap();
    let fd = listener.as_raw_fd();

    // `sh` sets LISTEN_PID to its own pid, which `exec` hands to qerrorsd unchanged.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --socket "$1" --log "$2" --control 127.0.0.1:0"#)
        .arg(DAEMON)
        .arg(&never)
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    util::scrub_env(&mut cmd);
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener); // the daemon holds its own copy now

    // The client can connect at once (the kernel queues it) and gets its ack once written.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"{\"message\":\"activated\",\"ack\":true}\n")
        .unwrap();
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).unwrap();
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(v["ok"], true, "{reply}");

    let records = util::parse_records(&std::fs::read(&log).unwrap(), true);
    let events = util::of_kind(&records, "event");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["message"], "activated");
    assert_eq!(events[0]["id"], v["id"]);
    assert!(
        !never.exists(),
        "must not bind the configured path when activated"
    );

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = util::wait_child(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(
        sock.exists(),
        "the activated socket file belongs to systemd"
    );
}
