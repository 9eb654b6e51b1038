//! Who may see what through the control plane (docs/security.md).
//!
//! - **The control socket** (`control.socket`, a Unix socket next to the ingest socket): every
//!   connection is identified by `SO_PEERCRED`. Root, the daemon's own user and members of
//!   `control.admin_group` see everything; anyone else who can connect sees only events whose
//!   `peer.uid` is their own (`control.others = "own"`, journald's model) or none (`"none"`).
//!   Reload (`POST /reload`) is for admins only.
//! - **TCP** (`control.listen`): `/metrics`, `/health` and `/ready` for anyone who reaches the
//!   port (Prometheus); `/metrics` carries no client-written text unless
//!   `control.metrics_services` is on. Every other endpoint needs the token of
//!   `control.token_file` in `Authorization: Bearer …`; the dashboard page itself holds no data
//!   and asks for the token once.

use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::guard::{Guarded, GuardedIo};
use crate::config::{ControlAccess, ControlGuard, Others};

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The TCP listener: identified by the token, if it presents one.
    Tcp,
    /// The control socket: the connecting process's credentials.
    Unix { uid: u32, admin: bool },
}

impl Connected<IncomingStream<'_, Guarded>> for Who {
    fn connect_info(_: IncomingStream<'_, Guarded>) -> Self {
        Who::Tcp
    }
}

impl Connected<IncomingStream<'_, GuardedUnix>> for Who {
    fn connect_info(s: IncomingStream<'_, GuardedUnix>) -> Self {
        *s.remote_addr()
    }
}

/// What a request may see, decided once per request and handed to the handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Every event (admins, a valid token).
    All,
    /// Events whose `peer.uid` is this one.
    Uid(u32),
    /// No event content: counters and health only.
    Nothing,
}

impl Viewer {
    /// Whether an event record (as the log has it) may be shown.
    pub fn may_see(self, record: &serde_json::Value) -> bool {
        match self {
            Viewer::All => true,
            Viewer::Uid(uid) => record["peer"]["uid"].as_u64() == Some(u64::from(uid)),
            Viewer::Nothing => false,
        }
    }
}

/// The access rules in force (fixed at start).
#[derive(Debug, Clone)]
pub struct Access {
    token: Option<Arc<str>>,
    others: Others,
}

impl Access {
    pub fn new(token: Option<String>, others: Others) -> Self {
        Self {
            token: token.map(Into::into),
            others,
        }
    }

    /// The viewer of a request, or the refusal to send instead.
    fn viewer(&self, who: Who, req: &Request) -> Result<Viewer, Box<Response>> {
        let path = req.uri().path();
        let public =
            req.method() == Method::GET && matches!(path, "/metrics" | "/health" | "/ready" | "/");
        match who {
            Who::Unix { admin: true, .. } => Ok(Viewer::All),
            Who::Unix { uid, admin: false } => {
                if req.method() == Method::POST {
                    return Err(Box::new(forbidden(
                        "reload is for root, the daemon's user and control.admin_group",
                    )));
                }
                Ok(match self.others {
                    Others::Own => Viewer::Uid(uid),
                    Others::None => Viewer::Nothing,
                })
            }
            Who::Tcp => {
                if self.token_ok(req) {
                    Ok(Viewer::All)
                } else if public {
                    Ok(Viewer::Nothing)
                } else {
                    Err(Box::new(
                        (
                            StatusCode::UNAUTHORIZED,
                            [(header::WWW_AUTHENTICATE, "Bearer")],
                            "over TCP this endpoint needs the control token \
                         (Authorization: Bearer <token>, the contents of control.token_file); \
                         qerrorsctl uses the control socket instead\n",
                        )
                            .into_response(),
                    ))
                }
            }
        }
    }

    fn token_ok(&self, req: &Request) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        let Some(given) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        constant_time_eq(given.trim().as_bytes(), token.as_bytes())
    }
}

fn forbidden(why: &str) -> Response {
    (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
}

/// Equal, in a time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decides the request's [`Viewer`] (or refuses it) and puts it in the request's extensions.
pub async fn authorize(
    State(access): State<Access>,
    ConnectInfo(who): ConnectInfo<Who>,
    mut req: Request,
    next: Next,
) -> Response {
    match access.viewer(who, &req) {
        Ok(v) => {
            req.extensions_mut().insert(v);
            next.run(req).await
        }
        Err(resp) => *resp,
    }
}

/// The control socket's listener: the same connection cap and deadlines as TCP
/// ([`Guarded`]), and each connection's credentials, taken at accept.
pub struct GuardedUnix {
    inner: UnixListener,
    slots: Arc<Semaphore>,
    idle_timeout: std::time::Duration,
    rejected: Arc<AtomicU64>,
    admins: Admins,
}

impl GuardedUnix {
    pub fn new(
        inner: UnixListener,
        cfg: &ControlGuard,
        rejected: Arc<AtomicU64>,
        admins: Admins,
    ) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(cfg.max_connections.get())),
            idle_timeout: cfg.idle_timeout,
            rejected,
            admins,
        }
    }
}

impl axum::serve::Listener for GuardedUnix {
    type Io = GuardedIo<UnixStream>;
    type Addr = Who;

    async fn accept(&mut self) -> (Self::Io, Who) {
        {
            loop {
                let stream = match self.inner.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed; retrying");
                        tokio::time::sleep(super::guard::ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    self.rejected.fetch_add(1, Relaxed);
                    continue;
                };
                let Ok(cred) = stream.peer_cred() else {
                    continue;
                };
                let admin = self
                    .admins
                    .is_admin(cred.uid(), cred.gid(), cred.pid())
                    .await;
                let who = Who::Unix {
                    uid: cred.uid(),
                    admin,
                };
                return (GuardedIo::new(stream, permit, self.idle_timeout), who);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Who> {
        Ok(Who::Unix {
            uid: nix::unistd::geteuid().as_raw(),
            admin: true,
        })
    }
}

/// Who counts as an admin on the control socket.
#[derive(Debug, Clone)]
pub struct Admins {
    daemon_uid: u32,
    group: Option<u32>,
}

impl Admins {
    /// Root, the daemon's effective uid and the members of `group` (resolved now).
    pub fn new(group: Option<&str>) -> Result<Self, String> {
        let group = match group {
            None => None,
            Some(name) => Some(
                nix::unistd::Group::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| format!("control.admin_group `{name}` does not exist"))?
                    .gid
                    .as_raw(),
            ),
        };
        Ok(Self {
            daemon_uid: nix::unistd::geteuid().as_raw(),
            group,
        })
    }

    /// Whether the process `pid` (uid, primary gid) is an admin: its supplementary groups are
    /// read from `/proc/<pid>/status`, the ones the process really holds.
    pub async fn is_admin(&self, uid: u32, gid: u32, pid: Option<i32>) -> bool {
        if uid == 0 || uid == self.daemon_uid {
            return true;
        }
        let Some(admin_gid) = self.group else {
            return false;
        };
        if gid == admin_gid {
            return true;
        }
        let Some(pid) = pid else {
            return false;
        };
        match tokio::fs::read_to_string(format!("/proc/{pid}/status")).await {
            Ok(status) => supplementary_groups(&status).any(|g| g == admin_gid),
            Err(_) => false,
        }
    }
}

/// The `Groups:` line of a `/proc/<pid>/status`.
fn supplementary_groups(status: &str) -> impl Iterator<Item = u32> + '_ {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
}

/// Reads the control token, creating the file with a random one when it does not exist (mode
/// 0600, or 0640 with `control.admin_group` as its group).
/// `Ok(None)`: TCP serves no content (the file is unusable; the reason is logged).
pub fn load_or_create_token(cfg: &ControlAccess) -> Option<String> {
    let path = cfg.token_file.as_path();
    match read_token(path) {
        Ok(Some(t)) => return Some(t),
        Ok(None) => {}
        Err(e) => {
            tracing::error!(
                "control token {}: {e}; TCP serves only /metrics, /health and /ready",
                path.display()
            );
            return None;
        }
    }
    match create_token(path, cfg.admin_group.as_deref()) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(
                "cannot create the control token {}: {e}; TCP serves only /metrics, /health \
                 and /ready",
                path.display()
            );
            None
        }
    }
}

/// `Ok(None)` when there is no file.
fn read_token(path: &Path) -> Result<Option<String>, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.permissions().mode() & 0o007 != 0 {
        return Err(format!(
            "readable or writable by every user (mode {:o}); chmod o= it",
            meta.permissions().mode() & 0o777
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!("owned by uid {}, neither root nor us", meta.uid()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let token = text.trim();
    if token.len() < 16 {
        return Err("shorter than 16 characters".into());
    }
    Ok(Some(token.to_string()))
}

fn create_token(path: &Path, group: Option<&str>) -> io::Result<String> {
    use rand::RngCore;
    use std::io::Write;
    let mut raw = [0u8; 24];
    rand::rng().fill_bytes(&mut raw);
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    // Readable by the admin group once it owns the file; without one, by the daemon's user
    // (and root) only: the file's group would otherwise be whatever the daemon's is.
    if let Some(g) = group {
        if let Ok(Some(g)) = nix::unistd::Group::from_name(g) {
            nix::unistd::fchown(std::os::fd::AsRawFd::as_raw_fd(&f), None, Some(g.gid))
                .map_err(io::Error::from)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        }
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supplementary_groups_are_read_from_the_status_line() {
        let status = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 27 1001 \nVmRSS:\t1 kB\n";
        assert_eq!(
            supplementary_groups(status).collect::<Vec<_>>(),
            [4, 27, 1001]
        );
        assert_eq!(supplementary_groups("Groups:\n").count(), 0);
        assert_eq!(supplementary_groups("Name: x\n").count(), 0);
    }

    #[test]
    fn token_comparison_needs_every_byte() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abcdef", b"abcde"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn viewer_of_a_record_follows_its_peer_uid() {
        let r = serde_json::json!({"peer": {"uid": 1000}});
        assert!(Viewer::All.may_see(&r));
        assert!(Viewer::Uid(1000).may_see(&r));
        assert!(!Viewer::Uid(1001).may_see(&r));
        assert!(!Viewer::Nothing.may_see(&r));
        assert!(!Viewer::Uid(0).may_see(&serde_json::json!({"message": "no peer"})));
    }

    #[test]
    fn token_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.token");
        let cfg = ControlAccess {
            socket: dir.path().join("c.sock"),
            socket_mode: 0o660,
            socket_group: None,
            admin_group: None,
            others: Others::Own,
            token_file: path.clone(),
            metrics_services: false,
        };
        let t = load_or_create_token(&cfg).unwrap();
        assert_eq!(t.len(), 48);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "no admin group: the daemon's user only");
        assert_eq!(load_or_create_token(&cfg).as_deref(), Some(t.as_str()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            load_or_create_token(&cfg),
            None,
            "a world-readable token is refused"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "short\n").unwrap();
        assert_eq!(load_or_create_token(&cfg), None);
    }
}
