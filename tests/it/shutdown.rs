//! SIGTERM drains: what was acked is in the log, what clients already sent is written, the log
//! ends with the `stop` record, the socket file is gone, and the exit status is 0.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{
    event_line, of_kind, read_replies, read_reply, spawn_daemon, stop_record, wait_until, Opts,
    EVENTS_TIMEOUT,
};

const LOOP_CLIENTS: usize = 4;
/// Bounds on each client's loop (it normally ends at the daemon's EOF).
const LOOP_MAX_EVENTS: usize = 200_000;
const LOOP_MAX_TIME: Duration = Duration::from_secs(90);

/// Per client: what the daemon confirmed, refused, and whether the loop ended at EOF.
#[derive(Default, Debug)]
struct Outcome {
    acked: Vec<String>,
    nacked: Vec<String>,
    sent: usize,
}

#[test]
fn sigterm_while_clients_send_acked_events() {
    let mut d = spawn_daemon(Opts::new());
    let acks = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..LOOP_CLIENTS)
        .map(|c| {
            let s = d.connect();
            let acks = acks.clone();
            thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut out = Outcome::default();
                let start = Instant::now();
                for i in 0..LOOP_MAX_EVENTS {
                    if start.elapsed() > LOOP_MAX_TIME {
                        panic!("client {c}: the daemon never closed the connection");
                    }
                    let line = event_line(&format!("c{c} e{i}"), json!({"ack": true}));
                    // A write may fail once the daemon has closed its side.
                    if w.write_all(format!("{line}\n").as_bytes()).is_err() {
                        break;
                    }
                    out.sent += 1;
                    let Some(reply) = reply_or_reset(&mut r) else {
                        break;
                    };
                    let id = reply["id"].as_str().expect("reply without id").to_string();
                    if reply["ok"] == true {
                        out.acked.push(id);
                        acks.fetch_add(1, Ordering::Relaxed);
                    } else {
                        assert_eq!(reply["error"], "shutting_down", "{reply}");
                        out.nacked.push(id);
                    }
                }
                out
            })
        })
        .collect();
    wait_until("200 acks before SIGTERM", EVENTS_TIMEOUT, || {
        (acks.load(Ordering::Relaxed) >= 200).then_some(())
    });
    let status = d.sigterm_and_wait();
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        d.stderr_text()
    );
    let outcomes: Vec<Outcome> = clients.into_iter().map(|c| c.join().unwrap()).collect();

    assert!(!d.socket.exists(), "socket file not removed");
    let records = d.final_records();
    let stop = stop_record(&records);
    let events = of_kind(&records, "event");
    let logged: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(logged.len(), events.len(), "duplicate ids");
    let mut total_acked = 0;
    for o in &outcomes {
        for id in &o.acked {
            assert!(logged.contains(id.as_str()), "acked {id} is not in the log");
        }
        for id in &o.nacked {
            assert!(!logged.contains(id.as_str()), "refused {id} is in the log");
        }
        total_acked += o.acked.len();
    }
    assert!(total_acked >= 200);
    // Nothing is written that wasn't sent, and the stop record adds up.
    let sent: usize = outcomes.iter().map(|o| o.sent).sum();
    assert!(events.len() <= sent);
    assert_eq!(stop["written"], events.len());
    assert_eq!(
        stop["accepted"].as_u64().unwrap(),
        stop["written"].as_u64().unwrap() + stop["dropped"].as_u64().unwrap()
    );
}

/// One reply line; `None` at EOF or ECONNRESET. The daemon closes a connection at shutdown
/// with the client's last line unread (it was never acked), and on a Unix socket the kernel
/// reports that to the client as a reset once the queued replies have been read.
fn reply_or_reset(r: &mut BufReader<std::os::unix::net::UnixStream>) -> Option<serde_json::Value> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(serde_json::from_str(line.trim_end()).unwrap()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("reading a reply: {e}"),
    }
}

const BURST_CLIENTS: usize = 2;
const BURST: usize = 5000;

/// Clients send a burst and keep their connections open; SIGTERM right after the writes
/// returned (the bytes are in the daemon's socket buffers): every line is written.
#[test]
fn sigterm_drains_what_clients_already_sent() {
    let mut d = spawn_daemon(Opts::new());
    let mut conns = Vec::new();
    for c in 0..BURST_CLIENTS {
        let s = d.connect();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        // An acked first event proves the connection was accepted (not still in the backlog).
        w.write_all(
            format!(
                "{}\n",
                event_line(&format!("hello {c}"), json!({"ack": true}))
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(read_reply(&mut r).expect("ack")["ok"], true);
        conns.push((w, r));
    }
    let mut writers = Vec::new();
    for (c, (mut w, r)) in conns.into_iter().enumerate() {
        writers.push(thread::spawn(move || {
            let mut data = Vec::new();
            for i in 0..BURST {
                data.extend_from_slice(event_line(&format!("burst {c} {i}"), json!({})).as_bytes());
                data.push(b'\n');
            }
            w.write_all(&data).unwrap();
            (w, r)
        }));
    }
    // All bytes handed to the kernel; connections stay open.
    let conns: Vec<_> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    let status = d.sigterm_and_wait();
    assert!(status.success(), "exit status {status}");
    for (_w, r) in conns {
        let mut s = r.into_inner();
        let replies = read_replies(&mut s);
        assert!(replies.is_empty(), "{replies:?}");
    }
    let records = d.final_records();
    let events = of_kind(&records, "event");
    assert_eq!(
        events.len(),
        BURST_CLIENTS * (BURST + 1),
        "every line sent before SIGTERM"
    );
    let stop = stop_record(&records);
    assert_eq!(stop["written"], BURST_CLIENTS * (BURST + 1));
    assert_eq!(stop["dropped"], 0);
    assert!(!d.socket.exists(), "socket file not removed");
}

/// "A second signal exits at once": with the writer stuck in `write()` on a FIFO nobody reads,
/// the first SIGTERM can't finish draining; once it has been taken (the socket file is
/// removed), a second one ends the process with status 1.
#[test]
fn a_second_sigterm_exits_at_once() {
    let mut d = spawn_daemon(
        Opts::new()
            .fifo_log()
            .env("SINK_FSYNC", "never")
            .env("SINK_ROTATE_BYTES", 0),
    );
    // Far more than the 64 KiB pipe buffer.
    let lines: Vec<String> = (0..2000)
        .map(|i| event_line(&format!("stuck {i} {}", "s".repeat(200)), json!({})))
        .collect();
    assert!(d.send_lines(&lines).is_empty());
    d.signal(libc::SIGTERM);
    wait_until("the first SIGTERM to be taken", EVENTS_TIMEOUT, || {
        (!d.socket.exists()).then_some(())
    });
    assert!(
        d.try_status().is_none(),
        "exited although the sink is stalled"
    );
    d.signal(libc::SIGTERM);
    let st = d.wait_exit(crate::util::EXIT_TIMEOUT);
    assert_eq!(st.code(), Some(1), "{st}");
    assert!(
        d.stderr_text().contains("second signal"),
        "{}",
        d.stderr_text()
    );
}

/// Connections beyond `ingest.max_connections` wait in the listen backlog (the permit is taken
/// before `accept`). A client there has connected and written successfully; at SIGTERM its
/// lines must be drained too — or at least counted — never silently lost.
#[test]
fn sigterm_drains_clients_waiting_in_the_backlog() {
    let mut d = spawn_daemon(Opts::new().env("INGEST_MAX_CONNECTIONS", 1));
    // The one permitted connection, proven accepted by an ack, kept open.
    let a = d.connect();
    let mut aw = a.try_clone().unwrap();
    let mut ar = BufReader::new(a);
    aw.write_all(b"{\"message\":\"holder\",\"ack\":true}\n")
        .unwrap();
    assert_eq!(read_reply(&mut ar).expect("ack")["ok"], true);
    // A second client: connect and write succeed (the kernel queues them), no permit yet.
    let mut b = d.connect();
    let lines: Vec<String> = (0..10)
        .map(|i| event_line(&format!("waiting {i}"), json!({})))
        .collect();
    b.write_all(&crate::util::join_lines(&lines)).unwrap();
    b.shutdown(std::net::Shutdown::Write).unwrap();
    let status = d.sigterm_and_wait();
    assert!(status.success(), "{status}");
    let records = d.final_records();
    let written = of_kind(&records, "event").len() as u64;
    let counted = crate::util::dropped_count(&records, "shutdown")
        + crate::util::dropped_count(&records, "overload");
    assert_eq!(
        written + counted,
        11,
        "the backlogged client's 10 lines were neither written nor counted as dropped"
    );
}
