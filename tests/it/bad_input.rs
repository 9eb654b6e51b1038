//! Bad input: every rejected line gets a reply naming its line number, the lines around it are
//! still written, the connection stays usable, and the `dropped` records count each code.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{
    dropped_codes, dropped_count, event_line, of_kind, read_reply, spawn_daemon, stop_record,
    wait_until, Opts, EVENTS_TIMEOUT, REPLY_TIMEOUT,
};

/// One line of a scripted connection and what the daemon must answer.
enum Line {
    Valid(&'static str),
    /// Raw bytes, the reject code, and a word the detail must contain.
    Bad(Vec<u8>, &'static str, &'static str),
    /// Not an event and no reply (a blank keep-alive line), but it counts as a line.
    Blank,
}

fn valid(msg: &'static str) -> Line {
    Line::Valid(msg)
}

fn bad(bytes: impl Into<Vec<u8>>, code: &'static str, detail_has: &'static str) -> Line {
    Line::Bad(bytes.into(), code, detail_has)
}

/// Sends the script on one connection (the last line without its newline), checks every reply
/// and returns (expected messages, expected reject counts by code).
fn run_script(
    d: &crate::util::Daemon,
    script: &[Line],
) -> (Vec<&'static str>, BTreeMap<String, u64>) {
    let mut data = Vec::new();
    let mut expect_replies = Vec::new();
    let mut messages = Vec::new();
    let mut codes = BTreeMap::new();
    for (i, l) in script.iter().enumerate() {
        let n = i + 1;
        match l {
            Line::Valid(m) => {
                data.extend_from_slice(event_line(m, json!({})).as_bytes());
                messages.push(*m);
            }
            Line::Bad(b, code, word) => {
                data.extend_from_slice(b);
                expect_replies.push((n, *code, *word));
                *codes.entry(code.to_string()).or_default() += 1;
            }
            Line::Blank => {}
        }
        if n < script.len() {
            data.push(b'\n');
        }
    }
    let replies = d.send_raw(&data);
    assert_eq!(
        replies.len(),
        expect_replies.len(),
        "one reply per rejected line, none for valid ones: {replies:#?}"
    );
    for (r, (n, code, word)) in replies.iter().zip(&expect_replies) {
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"], *code, "line {n}: {r}");
        assert_eq!(r["line"], *n, "line number of a `{code}` reply: {r}");
        let detail = r["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("detail: {r}"));
        assert!(
            detail.contains(word),
            "line {n}: detail {detail:?} should mention {word:?}"
        );
    }
    (messages, codes)
}

fn written_messages(records: &[Value]) -> Vec<String> {
    of_kind(records, "event")
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn each_kind_of_bad_line_is_rejected_with_its_line_number() {
    let mut d = spawn_daemon(Opts::new().env("INGEST_MAX_LINE_BYTES", 1024));
    let long_valid = event_line(&"x".repeat(5000), json!({}));
    let huge = event_line(&"y".repeat(300_000), json!({}));
    let script = [
        valid("v1"),
        bad(r#"{"message": nope}"#, "invalid_json", "column"),
        valid("v3"),
        bad(
            &b"{\"message\":\"bad \xff\xfe bytes\"}"[..],
            "invalid_utf8",
            "UTF-8",
        ),
        valid("v5"),
        bad(r#"{"message":1}"#, "wrong_type", "message"),
        valid("v7"),
        bad(r#"{"message":"m","level":"loud"}"#, "wrong_type", "level"),
        valid("v9"),
        bad(
            r#"{"message":"m","context":["a","b"]}"#,
            "wrong_type",
            "context",
        ),
        valid("v11"),
        bad(
            r#"{"message":"m","tags":{"a":1,"b":"ok"}}"#,
            "wrong_type",
            "tags",
        ),
        valid("v13"),
        bad(
            r#"{"level":"error","name":"NoMessage"}"#,
            "missing_field",
            "message",
        ),
        valid("v15"),
        bad(long_valid, "line_too_long", "1024"),
        valid("v17"),
        Line::Blank,
        bad("[1,2]", "invalid_json", "object"),
        valid("v20"),
        // Far longer than the read buffer: arrives over many reads, skipped in bounded memory.
        bad(huge, "line_too_long", "max_line_bytes"),
        valid("v22 after the huge line"),
        bad(
            r#"{"message":"m","tags":{"nested":{"a":"b"}}}"#,
            "wrong_type",
            "tags",
        ),
        // The last line, without a newline: still an event.
        valid("v24 final line without newline"),
    ];
    let (messages, codes) = run_script(&d, &script);
    d.wait_for_events(messages.len(), EVENTS_TIMEOUT);
    // The connection stays usable: a second one works too.
    assert!(d.send_lines(&[event_line("after", json!({}))]).is_empty());
    d.wait_for_events(messages.len() + 1, EVENTS_TIMEOUT);
    let records = d.stop();
    let mut expect: Vec<String> = messages.iter().map(|m| m.to_string()).collect();
    expect.push("after".into());
    assert_eq!(written_messages(&records), expect, "valid lines, in order");
    assert_eq!(dropped_codes(&records), codes, "codes in `dropped` records");
    let total: u64 = codes.values().sum();
    assert_eq!(dropped_count(&records, "invalid"), total);
    assert_eq!(stop_record(&records)["rejected"], total);
}

/// `\r\n` endings (and a blank CRLF line) are accepted.
#[test]
fn crlf_line_endings_are_accepted() {
    let mut d = spawn_daemon(Opts::new());
    let replies = d.send_raw(
        b"{\"message\":\"one\"}\r\n{\"message\":\"two\"}\r\n\r\n{\"message\":\"three\"}\r\n",
    );
    assert!(replies.is_empty(), "{replies:?}");
    d.wait_for_events(3, EVENTS_TIMEOUT);
    let records = d.stop();
    assert_eq!(written_messages(&records), ["one", "two", "three"]);
}

#[test]
fn deep_nesting_is_rejected_without_crashing() {
    // Default max line (256 KiB): these lines are ~100-200 KB and reach the parser.
    let mut d = spawn_daemon(Opts::new());
    let open = "[".repeat(100_000);
    let nested_ctx = format!(
        r#"{{"message":"m","context":{{"a":{open}{}}}}}"#,
        "]".repeat(100_000)
    );
    let nested_obj = format!(r#"{{"message":"m","context":{}"#, "{\"k\":".repeat(40_000));
    let script = [
        valid("before"),
        bad(open.clone(), "invalid_json", ""),
        valid("between 1"),
        bad(nested_ctx, "invalid_json", ""),
        valid("between 2"),
        bad(nested_obj, "invalid_json", ""),
        valid("after"),
    ];
    let (messages, codes) = run_script(&d, &script);
    d.wait_for_events(messages.len(), EVENTS_TIMEOUT);
    let records = d.stop();
    assert_eq!(written_messages(&records), messages);
    assert_eq!(dropped_codes(&records), codes);
}

/// A client that goes away mid-line, with an unread reply in its receive queue so the daemon
/// sees ECONNRESET rather than a clean EOF: the complete lines before it are written, and the
/// torn tail is one `invalid_json` line, not an event.
#[test]
fn client_reset_mid_line_keeps_earlier_lines() {
    let mut d = spawn_daemon(Opts::new());
    let s = d.connect();
    let mut w = s.try_clone().unwrap();
    let mut data = Vec::new();
    for i in 0..3 {
        data.extend_from_slice(event_line(&format!("before reset {i}"), json!({})).as_bytes());
        data.push(b'\n');
    }
    data.extend_from_slice(b"not json\n");
    data.extend_from_slice(br#"{"message":"torn li"#);
    w.write_all(&data).unwrap();
    // Wait until the reject reply sits unread in our receive queue.
    wait_until("the reject reply to arrive", REPLY_TIMEOUT, || {
        let mut b = [0u8; 1];
        use std::os::fd::AsRawFd;
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        match nix::sys::socket::recv(s.as_raw_fd(), &mut b, flags) {
            Ok(1) => Some(()),
            _ => None,
        }
    });
    drop(w);
    drop(s); // closing with unread data: the daemon's next read fails with ECONNRESET
    d.wait_for_events(3, EVENTS_TIMEOUT);
    // Still serving.
    assert!(d
        .send_lines(&[event_line("after reset", json!({}))])
        .is_empty());
    d.wait_for_events(4, EVENTS_TIMEOUT);
    let records = d.stop();
    assert_eq!(
        written_messages(&records),
        [
            "before reset 0",
            "before reset 1",
            "before reset 2",
            "after reset"
        ]
    );
    let codes = dropped_codes(&records);
    assert_eq!(
        codes,
        BTreeMap::from([("invalid_json".to_string(), 2)]),
        "`not json` plus the torn final line"
    );
}

const FLOOD_BAD: usize = 100_000;
const FLOOD_VALID: usize = 100;

/// A client that never reads its replies sends 100k bad lines, then valid ones. Its reply
/// buffer fills, but ingest never waits for it: another client's acked event is written while
/// it is still connected, all its valid lines are written, and exactly 100k are rejected.
#[test]
fn a_client_that_never_reads_replies_does_not_block_anyone() {
    let mut d = spawn_daemon(Opts::new());
    let (other_done_tx, other_done_rx) = mpsc::channel::<()>();
    let mut flood = d.connect();
    let flooder = thread::spawn(move || {
        let mut bad = Vec::with_capacity(FLOOD_BAD * 16);
        for i in 0..FLOOD_BAD {
            bad.extend_from_slice(if i % 2 == 0 {
                b"not json\n" as &[u8]
            } else {
                b"{\"message\":1}\n"
            });
        }
        flood.write_all(&bad).unwrap();
        // Wait (bounded) until the other client was served meanwhile.
        other_done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the other client was never served");
        let mut good = Vec::new();
        for i in 0..FLOOD_VALID {
            good.extend_from_slice(event_line(&format!("flood valid {i}"), json!({})).as_bytes());
            good.push(b'\n');
        }
        flood.write_all(&good).unwrap();
        flood.shutdown(std::net::Shutdown::Write).unwrap();
        // Never read: drop with the replies unread.
    });

    // Another client, while the flooder is connected and has not finished.
    let s = d.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"{\"message\":\"other client\",\"ack\":true}\n")
        .unwrap();
    let reply = read_reply(&mut r).expect("EOF instead of an ack");
    assert_eq!(reply["ok"], true, "{reply}");
    other_done_tx.send(()).unwrap();
    drop(w);
    drop(r);
    flooder.join().unwrap();

    d.wait_for_events(FLOOD_VALID + 1, EVENTS_TIMEOUT);
    let records = d.stop();
    let mut msgs = written_messages(&records);
    msgs.sort();
    let mut expect: Vec<String> = (0..FLOOD_VALID)
        .map(|i| format!("flood valid {i}"))
        .collect();
    expect.push("other client".into());
    expect.sort();
    assert_eq!(msgs, expect);
    assert_eq!(stop_record(&records)["rejected"], FLOOD_BAD);
    assert_eq!(
        dropped_codes(&records),
        BTreeMap::from([
            ("invalid_json".to_string(), (FLOOD_BAD / 2) as u64),
            ("wrong_type".to_string(), (FLOOD_BAD / 2) as u64),
        ])
    );
}

/// A started line must be completed within `ingest.read_timeout`: the partial line is refused
/// with `read_timeout` (its line number) and the connection closed; earlier lines are written.
#[test]
fn an_unfinished_line_times_out() {
    let mut d = spawn_daemon(Opts::new().env("INGEST_READ_TIMEOUT", "1s"));
    let mut s = d.connect();
    s.write_all(b"{\"message\":\"done 1\"}\n{\"message\":\"done 2\"}\n{\"message\":\"never fin")
        .unwrap();
    // No half-close: the daemon has to give up on its own.
    let replies = crate::util::read_replies(&mut s);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["error"], "read_timeout");
    assert_eq!(replies[0]["line"], 3);
    d.wait_for_events(2, EVENTS_TIMEOUT);
    let records = d.stop();
    assert_eq!(written_messages(&records), ["done 1", "done 2"]);
    assert_eq!(
        dropped_codes(&records),
        BTreeMap::from([("read_timeout".to_string(), 1)])
    );
}

/// Whatever the daemon accepts it must log as JSON that its own parser (serde_json) reads
/// back; a log consumer must never meet a line it can't parse. Each line here is either
/// rejected with a reply or must come out parseable.
#[test]
fn accepted_oddities_are_logged_as_parseable_json() {
    let mut d = spawn_daemon(Opts::new());
    let lines: [&[u8]; 6] = [
        br#"{"message":"lone surrogate in context","context":{"a":"\ud800"}}"#,
        br#"{"message":"lone surrogate in stack","stack":"at \udfff"}"#,
        br#"{"message":"lone surrogate in tags","tags":{"t":"\ud834"}}"#,
        br#"{"message":"huge number in context","context":{"n":1e400}}"#,
        br#"{"message":"huge number in extra","x":[-1e999]}"#,
        br#"{"message":"lone surrogate in message \ud800"}"#,
    ];
    let mut data = Vec::new();
    for l in lines {
        data.extend_from_slice(l);
        data.push(b'\n');
    }
    let replies = d.send_raw(&data);
    let rejected: Vec<u64> = replies
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    // The connection is finished (EOF seen), so SIGTERM drains every accepted line. (No
    // `wait_for_events`: its parser would trip over the very lines under test.)
    assert!(d.sigterm_and_wait().success());
    let raw = std::fs::read(&d.log).unwrap();
    let bad: Vec<String> = raw
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            serde_json::from_slice::<Value>(l)
                .err()
                .map(|e| format!("{e}: {}", String::from_utf8_lossy(&l[..l.len().min(200)])))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "the daemon wrote {} log lines serde_json can't parse (rejected lines: {rejected:?}):\n{}",
        bad.len(),
        bad.join("\n")
    );
}
