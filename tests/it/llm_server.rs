//! A real HTTP/1.1 server on loopback speaking enough of the OpenAI chat-completions API for
//! the analysis tests: keep-alive, one thread per connection, counts accepted connections and
//! requests, keeps request heads and bodies, and misbehaves on demand ([`Mode`]). Plain HTTP, or
//! HTTPS (rustls) with a certificate from a throw-away CA ([`LlmServer::start_https`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
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
    /// This 3xx with `Location: location`.
    Redirect { status: u16, location: String },
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
    mode: Arc<Mutex<Mode>>,
    https: bool,
    stop: Arc<AtomicBool>,
}

pub const MODEL: &str = "test-model";

impl LlmServer {
    pub fn start(mode: Mode) -> LlmServer {
        Self::start_with(mode, None)
    }

    /// HTTPS with `server.crt` / `server.key` from `dir` (made by
    /// [`crate::tls_support::throwaway_ca`]: valid for 127.0.0.1 and localhost). A connection
    /// whose handshake fails (the client does not trust the CA) counts as a connection, never
    /// as a request.
    pub fn start_https(mode: Mode, dir: &Path) -> LlmServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(dir.join("server.crt"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Self::start_with(mode, Some(Arc::new(cfg)))
    }

    fn start_with(mode: Mode, tls: Option<Arc<rustls::ServerConfig>>) -> LlmServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let mode = Arc::new(Mutex::new(mode));
        let stop = Arc::new(AtomicBool::new(false));
        let https = tls.is_some();
        let (s, m, st) = (seen.clone(), mode.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                s.connections.fetch_add(1, SeqCst);
                s.open.fetch_add(1, SeqCst);
                let (s, m, tls) = (s.clone(), m.clone(), tls.clone());
                std::thread::spawn(move || {
                    match tls {
                        None => serve(conn, &s, &m),
                        Some(cfg) => {
                            let tls = rustls::ServerConnection::new(cfg).unwrap();
                            serve(rustls::StreamOwned::new(tls, conn), &s, &m)
                        }
                    }
                    s.open.fetch_sub(1, SeqCst);
                });
            }
        });
        LlmServer {
            addr,
            seen,
            mode,
            https,
            stop,
        }
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/v1", self.addr)
    }

    /// Answers later requests with `mode`.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The request heads received, in order.
    pub fn heads(&self) -> Vec<String> {
        self.seen
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.1.clone())
            .collect()
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

fn serve(conn: impl Read + Write, seen: &Seen, mode: &Mutex<Mode>) {
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
        let location: String;
        let (status, extra, body) = match m {
            Mode::Ok { delay } => {
                std::thread::sleep(delay);
                (200, "", completion(&advice_json(n)))
            }
            Mode::Status(s) => (s, "", "{}".to_string()),
            Mode::TooMany { retry_after_s } => {
                let h = format!("Retry-After: {retry_after_s}\r\n");
                let out = r.get_mut();
                let _ = write!(
                    out,
                    "HTTP/1.1 429 Too Many Requests\r\n{h}Content-Length: 2\r\nContent-Type: application/json\r\n\r\n{{}}"
                )
                .and_then(|()| out.flush());
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
            Mode::Redirect {
                status,
                location: to,
            } => {
                location = format!("Location: {to}\r\n");
                (status, location.as_str(), "{}".to_string())
            }
        };
        let out = r.get_mut();
        let reason = match status {
            200 => "OK",
            300..=399 => "Redirect",
            _ => "Error",
        };
        if write!(
            out,
            "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .and_then(|()| out.flush())
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
