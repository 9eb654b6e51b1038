//! Bounded random input through the socket (in place of a fuzzer, which does not run on the
//! stable toolchain here): random bytes, mutated valid events and random JSON objects, written
//! with random split points over several connections. The daemon must not crash, must account
//! for every line exactly (written + rejected = non-blank lines sent), must log only valid JSON,
//! and must still serve a well-behaved client afterwards.
//!
//! The input is deterministic; set `QERRORS_STRESS_SEED` to try another seed (it is printed).

use std::io::Write;
use std::thread;

use serde_json::json;

use crate::util::{event_line, of_kind, read_replies, spawn_daemon, stop_record, Opts};

const CONNECTIONS: usize = 8;
const LINES_PER_CONNECTION: usize = 4000;
const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// xorshift64*: small, deterministic, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Fragments that stress the parser, the sanitizer and the fingerprinting.
const TOKENS: &[&str] = &[
    "\"",
    "\\",
    "\\\"",
    "\\u0000",
    "\\ud800",
    "\\udc00\\ud800",
    "\\u00e9",
    "é",
    "😀",
    "\u{0}",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "-0",
    "1e999999",
    "123456789012345678901234567890",
    "password=hunter2",
    "Bearer abc.def",
    "postgres://u:p@db/x",
    "eyJhbGciOi.eyJzdWIi.sig",
    "AKIAABCDEFGHIJKLMNOP",
    "\\n    at f (/a/b.js:1:2)",
    "0x1f",
    "\r",
    "\t",
    " ",
];

const KEYS: &[&str] = &[
    "message",
    "level",
    "name",
    "stack",
    "service",
    "ts",
    "context",
    "tags",
    "fingerprint",
    "ack",
    "peer",
    "extra",
    "",
];

fn random_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    match rng.below(if depth > 3 { 5 } else { 8 }) {
        0 => json!(null),
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!((rng.next() as f64) / 7.0),
        4 => {
            let n = rng.below(4);
            let s: String = (0..n).map(|_| *rng.pick(TOKENS)).collect();
            json!(s)
        }
        5 => json!([random_value(rng, depth + 1), random_value(rng, depth + 1)]),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                m.insert(rng.pick(KEYS).to_string(), random_value(rng, depth + 1));
            }
            serde_json::Value::Object(m)
        }
    }
}

/// One line, without its newline (it may contain `\r`).
fn random_line(rng: &mut Rng) -> Vec<u8> {
    match rng.below(4) {
        // Raw bytes, anything but a newline.
        0 => (0..rng.below(200))
            .map(|_| match rng.next() as u8 {
                b'\n' => b' ',
                b => b,
            })
            .collect(),
        // A valid event, then mutated.
        1 => {
            let mut l = event_line(
                &format!("err {} {}", rng.next(), rng.pick(TOKENS)),
                json!({"level": *rng.pick(&["error", "warn", "bogus"]),
                       "context": random_value(rng, 1),
                       "stack": "Error: x\n    at f (/srv/app/a.js:10:5)"}),
            )
            .into_bytes();
            for _ in 0..rng.below(4) {
                let at = rng.below(l.len() + 1);
                match rng.below(3) {
                    0 => l.truncate(at),
                    1 => {
                        let t = rng.pick(TOKENS).as_bytes().to_vec();
                        l.splice(at..at, t);
                    }
                    _ => {
                        if at < l.len() {
                            l[at] ^= 1 << rng.below(8);
                        }
                    }
                }
            }
            l.retain(|b| *b != b'\n');
            l
        }
        // A random object, often with the fields the daemon knows.
        2 => {
            let mut m = serde_json::Map::new();
            if rng.below(3) > 0 {
                m.insert("message".into(), random_value(rng, 2));
            }
            for _ in 0..rng.below(5) {
                m.insert(rng.pick(KEYS).to_string(), random_value(rng, 1));
            }
            serde_json::Value::Object(m)
                .to_string()
                .into_bytes()
                .into_iter()
                .filter(|b| *b != b'\n')
                .collect()
        }
        // Keep-alives and whitespace.
        _ => rng
            .pick(&[&b""[..], b" ", b"\r", b"\t \r", b"\x0b"])
            .to_vec(),
    }
}

/// Lines the daemon counts (written or rejected): blank ones, after a trailing `\r` is
/// stripped, are keep-alives and count as nothing. Mirrors ingest's framing.
fn counted_lines(stream: &[u8]) -> usize {
    let mut parts: Vec<&[u8]> = stream.split(|b| *b == b'\n').collect();
    if stream.ends_with(b"\n") {
        parts.pop(); // nothing after the last newline
    }
    parts
        .iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count()
}

#[test]
fn random_input_through_the_socket_is_survived_and_counted_exactly() {
    let _cpu = crate::util::cpu_share();
    let seed = std::env::var("QERRORS_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    eprintln!("random input stress: QERRORS_STRESS_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let mut d = spawn_daemon(Opts::new());

    let mut expected = 0;
    let mut streams = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut stream = Vec::new();
        for i in 0..LINES_PER_CONNECTION {
            stream.extend_from_slice(&random_line(&mut rng));
            // The last line may end without a newline: it still counts at EOF.
            if i + 1 < LINES_PER_CONNECTION || rng.below(2) == 0 {
                stream.push(b'\n');
            }
        }
        expected += counted_lines(&stream);
        let splits: Vec<usize> = (0..64).map(|_| 1 + rng.below(4096)).collect();
        streams.push((stream, splits));
    }

    let clients: Vec<_> = streams
        .into_iter()
        .map(|(stream, splits)| {
            let mut s = d.connect();
            thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                // Read replies meanwhile so they are not what limits the test.
                let reader = thread::spawn(move || read_replies(&mut r));
                let mut rest = &stream[..];
                let mut k = 0;
                while !rest.is_empty() {
                    let n = splits[k % splits.len()].min(rest.len());
                    s.write_all(&rest[..n]).unwrap();
                    rest = &rest[n..];
                    k += 1;
                }
                s.shutdown(std::net::Shutdown::Write).unwrap();
                reader.join().unwrap() // every reply line parsed as JSON
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }

    // Still serving.
    let replies = d.send_lines(&[event_line("after the storm", json!({"ack": true}))]);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["ok"], true, "{}", replies[0]);

    let records = d.stop(); // strict: every logged line is JSON
    let stop = stop_record(&records);
    let written = stop["written"].as_u64().unwrap() as usize;
    let rejected = stop["rejected"].as_u64().unwrap() as usize;
    assert_eq!(
        written + rejected,
        expected + 1,
        "lines written {written} + rejected {rejected} != counted lines sent {expected} + 1"
    );
    let events = of_kind(&records, "event");
    assert_eq!(events.len(), written);
    assert!(written > 1 && rejected > 0, "the mix has both kinds");
    for e in &events {
        assert!(e["message"].is_string(), "{e}");
        let fp = e["fingerprint"].as_str().unwrap();
        assert!(
            fp.len() == 32 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
            "{e}"
        );
    }
}
