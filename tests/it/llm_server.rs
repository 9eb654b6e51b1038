//! A real HTTP/1.1 server on loopback speaking enough of the OpenAI chat-completions API for
//! the analysis tests: keep-alive, one thread per connection, counts accepted connections and
//! requests, keeps request heads and bodies, and misbehaves on demand ([`Mode`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Mode {
    /// 200 with valid advice, after `delay`.
    Ok { delay: Duration },
    /// This status, empty JSON body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooMany { retry_after_s: u64 },
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with a completion whose content breaks the advice schema.
    SchemaViolation,
    /// Reads the request and never answers.
    Hang,
}

#[derive(Default)]
pub struct Seen {
    pub connections: AtomicUsize,
    pub open: AtomicUsize,
    pub requests: AtomicUsize,
    /// (when, head, body) per request.
    pub log: Mutex<Vec<(Instant, String, String)>>,
}

pub struct LlmServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
}

pub const MODEL: &str = "test-model";

impl LlmServer {
    pub fn start(mode: Mode) -> LlmServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let mode = Arc::new(Mutex::new(mode));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, m, st) = (seen.clone(), mode.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                s.connections.fetch_add(1, SeqCst);
                s.open.fetch_add(1, SeqCst);
                let (s, m) = (s.clone(), m.clone());
                std::thread::spawn(move || {
                    serve(conn, &s, &m);
                    s.open.fetch_sub(1, SeqCst);
                });
            }
        });
        LlmServer { addr, seen, stop }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.seen.requests.load(SeqCst)
    }

    pub fn bodies(&self) -> Vec<String> {
        self.seen
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.2.clone())
            .collect()
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A port nothing listens on (bound, then released).
pub fn refused_base_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/v1")
}

fn serve(conn: TcpStream, seen: &Seen, mode: &Mutex<Mode>) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push_str(&line);
        }
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let n = seen.requests.fetch_add(1, SeqCst) + 1;
        seen.log.lock().unwrap().push((
            Instant::now(),
            head,
            String::from_utf8_lossy(&body).into_owned(),
        ));
        let m = mode.lock().unwrap().clone();
        let (status, extra, body) = match m {
            Mode::Ok { delay } => {
                std::thread::sleep(delay);
                (200, "", completion(&advice_json(n)))
            }
            Mode::Status(s) => (s, "", "{}".to_string()),
            Mode::TooMany { retry_after_s } => {
                let h = format!("Retry-After: {retry_after_s}\r\n");
                let _ = write!(
                    out,
                    "HTTP/1.1 429 Too Many Requests\r\n{h}Content-Length: 2\r\nContent-Type: application/json\r\n\r\n{{}}"
                );
                continue;
            }
            Mode::Malformed => (200, "", "{\"choices\": [ not json".to_string()),
            Mode::SchemaViolation => (
                200,
                "",
                completion(
                    r#"{"summary":"","likely_cause":"x","fix_steps":"do it","confidence":7}"#,
                ),
            ),
            Mode::Hang => {
                // Wait for the client to give up and close.
                let mut sink = [0u8; 1024];
                while matches!(r.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
        };
        let reason = if status == 200 { "OK" } else { "Error" };
        if write!(
            out,
            "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .is_err()
        {
            return;
        }
    }
}

pub fn advice_json(n: usize) -> String {
    serde_json::json!({
        "summary": format!("LLM advice #{n}"),
        "likely_cause": "The database is not listening.",
        "fix_steps": ["Start the database.", "Check the port."],
        "confidence": 0.9,
    })
    .to_string()
}

fn completion(content: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    })
    .to_string()
}
