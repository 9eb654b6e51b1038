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

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("qerrorsd's control server is not reachable at {addr} ({msg}); is the daemon running? (--control / QERRORS_CONTROL_LISTEN)")]
    Unreachable { addr: String, msg: String },
    #[error("{addr}{path}: HTTP {status}: {body}")]
    Status {
        addr: String,
        path: String,
        status: u16,
        body: String,
    },
}

/// `GET http://ADDR/PATH` on the control plane: `(status, body)`; non-2xx statuses are returned,
/// not errors, so callers can show `/ready`'s reason.
pub fn control_get(addr: &str, path: &str) -> Result<(u16, String), ControlError> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let url = format!("http://{addr}{path}");
    let mut resp = agent
        .get(&url)
        .call()
        .map_err(|e| ControlError::Unreachable {
            addr: addr.to_string(),
            msg: e.to_string(),
        })?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| ControlError::Unreachable {
            addr: addr.to_string(),
            msg: e.to_string(),
        })?;
    Ok((status, body))
}

/// [`control_get`] that wants 200 and JSON.
pub fn control_json(addr: &str, path: &str) -> Result<serde_json::Value, ControlError> {
    let (status, body) = control_get(addr, path)?;
    if status != 200 {
        return Err(ControlError::Status {
            addr: addr.to_string(),
            path: path.to_string(),
            status,
            body,
        });
    }
    serde_json::from_str(&body).map_err(|e| ControlError::Unreachable {
        addr: addr.to_string(),
        msg: format!("not JSON: {e}"),
    })
}
