//! The client side of the wire protocol (PROTOCOL.md), blocking std I/O, and the control-plane
//! HTTP helpers ([`control_get`], [`control_json`]): used by `qerrorsctl`'s commands and handy
//! for tests. Apps in other languages need nothing but a Unix socket.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("qerrorsd is not running: no daemon socket at {0}; start it or pass --socket")]
    NoSocket(PathBuf),
    /// The path exists but is something else (a file, a directory…): never a daemon.
    #[error("{0} is not a socket (it is a {1}); pass the daemon's socket with --socket")]
    NotASocket(PathBuf, &'static str),
    #[error("qerrorsd is not running at {0}: stale socket file (no daemon listening); starting the daemon replaces it")]
    Refused(PathBuf),
    #[error("permission denied on {0}: your user needs to be in the socket's group")]
    Denied(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
}

/// Connects, mapping the usual failures to messages an operator can act on. A refused
/// connection is told apart by what is at the path: a socket nobody listens on (stale) or a
/// file that is no socket at all (the kernel refuses both alike).
pub fn connect(path: &Path) -> Result<UnixStream, ClientError> {
    UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ClientError::NoSocket(path.to_path_buf()),
        io::ErrorKind::ConnectionRefused => match std::fs::metadata(path) {
            Ok(m) if !m.file_type().is_socket() => {
                ClientError::NotASocket(path.to_path_buf(), file_kind(&m.file_type()))
            }
            _ => ClientError::Refused(path.to_path_buf()),
        },
        io::ErrorKind::PermissionDenied => ClientError::Denied(path.to_path_buf()),
        _ => ClientError::Io(path.to_path_buf(), e),
    })
}

/// What a non-socket file is, in words.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else {
        "file of another type"
    }
}

/// Outcome of sending a set of lines.
#[derive(Debug, Default)]
pub struct SendReport {
    pub sent: usize,
    /// `{"ok":true,...}` replies (acks).
    pub acked: Vec<String>,
    /// `{"ok":false,...}` replies, raw.
    pub errors: Vec<String>,
}

/// Sends `lines`, half-closes, and collects replies until the daemon closes the connection or
/// `reply_timeout` passes without a reply.
pub fn send_lines<I, S>(
    path: &Path,
    lines: I,
    reply_timeout: Duration,
) -> Result<SendReport, ClientError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let stream = connect(path)?;
    let io_err = |e| ClientError::Io(path.to_path_buf(), e);
    let mut report = SendReport::default();
    {
        let mut w = io::BufWriter::new(&stream);
        for line in lines {
            let line = line.as_ref();
            w.write_all(line.as_bytes()).map_err(io_err)?;
            if !line.ends_with('\n') {
                w.write_all(b"\n").map_err(io_err)?;
            }
            report.sent += 1;
        }
        w.flush().map_err(io_err)?;
    }
    stream.shutdown(std::net::Shutdown::Write).map_err(io_err)?;
    stream
        .set_read_timeout(Some(reply_timeout))
        .map_err(io_err)?;
    for reply in BufReader::new(&stream).lines() {
        let Ok(reply) = reply else { break };
        if reply.starts_with("{\"ok\":true") {
            report.acked.push(reply);
        } else {
            report.errors.push(reply);
        }
    }
    Ok(report)
}

/// Default control-plane address (`control.listen`).
pub const DEFAULT_CONTROL: &str = "127.0.0.1:9464";

/// Longest wait for one control-plane request.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(20);

/// Where `qerrorsctl` reaches the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The control socket: the daemon identifies the caller by its uid.
    Unix(PathBuf),
    /// The TCP listener; content needs the token.
    Tcp { addr: String, token: Option<String> },
}

impl Control {
    /// `--control`'s value: a path (it has a `/`) is the control socket, anything else a TCP
    /// `address:port`, with the token read from `token_file` when it can be.
    pub fn parse(s: &str, token_file: Option<&Path>) -> Control {
        if s.contains('/') {
            Control::Unix(PathBuf::from(s))
        } else {
            Control::Tcp {
                addr: s.to_string(),
                token: token_file.and_then(read_token),
            }
        }
    }

    /// With nothing given: the control socket next to the ingest socket `ingest` (the same
    /// daemon `send` talks to), else TCP on the default address.
    pub fn discover(ingest: &Path, token_file: Option<&Path>) -> Control {
        let sock = crate::config::control_socket_for(ingest);
        if std::fs::metadata(&sock).is_ok_and(|m| m.file_type().is_socket()) {
            return Control::Unix(sock);
        }
        let default_token = crate::config::token_file_for(ingest);
        Control::Tcp {
            addr: DEFAULT_CONTROL.to_string(),
            token: read_token(token_file.unwrap_or(&default_token)),
        }
    }

    /// For messages: the socket path or the address.
    pub fn describe(&self) -> String {
        match self {
            Control::Unix(p) => p.display().to_string(),
            Control::Tcp { addr, .. } => addr.clone(),
        }
    }

    /// `GET PATH`: `(status, body)`; non-2xx statuses are returned, not errors, so callers
    /// can show `/ready`'s reason.
    pub fn get(&self, path: &str) -> Result<(u16, String), ControlError> {
        self.request("GET", path)
    }

    /// `POST PATH` with no body.
    pub fn post(&self, path: &str) -> Result<(u16, String), ControlError> {
        self.request("POST", path)
    }

    /// [`get`](Self::get) that wants 200 and JSON.
    pub fn json(&self, path: &str) -> Result<serde_json::Value, ControlError> {
        let (status, body) = self.get(path)?;
        if status != 200 {
            return Err(ControlError::Status {
                addr: self.describe(),
                path: path.to_string(),
                status,
                body,
            });
        }
        serde_json::from_str(&body).map_err(|e| ControlError::Unreachable {
            addr: self.describe(),
            msg: format!("not JSON: {e}"),
        })
    }

    fn request(&self, method: &str, path: &str) -> Result<(u16, String), ControlError> {
        let unreachable = |msg: String| ControlError::Unreachable {
            addr: self.describe(),
            msg,
        };
        match self {
            Control::Unix(sock) => unix_request(sock, method, path).map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => ControlError::Denied(sock.clone()),
                _ => unreachable(e.to_string()),
            }),
            Control::Tcp { addr, token } => {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(CONTROL_TIMEOUT))
                    .build()
                    .new_agent();
                let url = format!("http://{addr}{path}");
                let auth = token.as_ref().map(|t| format!("Bearer {t}"));
                let resp = if method == "POST" {
                    let mut r = agent.post(&url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.send_empty()
                } else {
                    let mut r = agent.get(&url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.call()
                };
                let mut resp = resp.map_err(|e| unreachable(e.to_string()))?;
                let status = resp.status().as_u16();
                let body = resp
                    .body_mut()
                    .read_to_string()
                    .map_err(|e| unreachable(e.to_string()))?;
                Ok((status, body))
            }
        }
    }
}

/// The token in `path`, if it can be read (else `None`: TCP then serves no content).
fn read_token(path: &Path) -> Option<String> {
    let t = std::fs::read_to_string(path).ok()?;
    Some(t.trim().to_string()).filter(|t| !t.is_empty())
}

/// One HTTP/1.1 request over the control socket (hyper's client on a one-thread runtime).
fn unix_request(sock: &Path, method: &str, path: &str) -> io::Result<(u16, String)> {
    use http_body_util::BodyExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let other = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    rt.block_on(async {
        let work = async {
            let stream = tokio::net::UnixStream::connect(sock).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| other(&e))?;
            tokio::spawn(conn);
            let req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, "localhost")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .map_err(|e| other(&e))?;
            let resp = sender.send_request(req).await.map_err(|e| other(&e))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| other(&e))?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(CONTROL_TIMEOUT, work)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("qerrorsd's control plane is not reachable at {addr} ({msg}); is the daemon running? (--control / QERRORS_CONTROL_LISTEN)")]
    Unreachable { addr: String, msg: String },
    #[error("permission denied on the control socket {0}: your user needs to be in its group (control.socket_group)")]
    Denied(PathBuf),
    #[error("{addr}{path}: HTTP {status}: {body}")]
    Status {
        addr: String,
        path: String,
        status: u16,
        body: String,
    },
}

/// `GET PATH` on the control plane named by `ctl` (a control socket path or a TCP address;
/// see [`Control::parse`]): `(status, body)`.
pub fn control_get(ctl: &str, path: &str) -> Result<(u16, String), ControlError> {
    Control::parse(ctl, None).get(path)
}

/// [`control_get`] that wants 200 and JSON.
pub fn control_json(ctl: &str, path: &str) -> Result<serde_json::Value, ControlError> {
    Control::parse(ctl, None).json(path)
}
