//! The listening socket: taken from systemd (`LISTEN_FDS`/`LISTEN_PID`) or bound by us.
//!
//! Binding refuses to start when another daemon answers on the path, replaces a stale socket
//! file only when nothing answers, and never deletes something that is not a socket.
//!
//! The socket file is never reachable with more than its configured mode, or by another group
//! than the configured one, whatever the umask. `bind()` creates the file with the mode of the
//! socket's own inode minus the umask (Linux `unix_bind_bsd`), so that inode is first narrowed
//! to the owner's bits of `socket_mode` (`fchmod` on the unbound socket); the file is then given
//! its group, and only then its full mode. Rejected alternatives: setting the umask around
//! `bind()` changes it for every thread of the process; binding in a private temp directory and
//! renaming into place leaves the temp path as the socket's name in `/proc/net/unix` and
//! `ss -xl` (the packaging check finds the daemon's socket there).

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::config;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another qerrors daemon is already listening on {0}")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("{path}: {what}: {err}")]
    Io {
        path: PathBuf,
        what: &'static str,
        err: io::Error,
    },
    #[error("socket group `{0}` does not exist")]
    NoSuchGroup(String),
    #[error("systemd socket activation: {0}")]
    Activation(io::Error),
}

/// A listening socket, not yet registered with a runtime.
#[derive(Debug)]
pub struct Socket {
    pub listener: UnixListener,
    /// Set when we created the file (and so remove it at exit); `None` when systemd owns it.
    pub path: Option<PathBuf>,
    /// Where clients connect (for messages).
    pub display: String,
}

/// The ingest socket and the control socket (whose failure does not stop the daemon).
#[derive(Debug)]
pub struct Sockets {
    pub ingest: Socket,
    pub control: Result<Socket, BindError>,
}

impl Socket {
    /// Takes the systemd-activated socket if there is one, else binds `cfg.socket`.
    pub fn open(cfg: &config::Ingest) -> Result<Socket, BindError> {
        let mut fds = listenfd::ListenFd::from_env();
        match activated(&mut fds, 0)? {
            Some(s) => Ok(s),
            None => bind(cfg),
        }
    }

    /// Both sockets: systemd's (the ingest socket first, the control socket second, in the
    /// order of the socket unit's `ListenStream=` lines) or our own.
    pub fn open_with_control(
        cfg: &config::Ingest,
        control: &config::ControlAccess,
    ) -> Result<Sockets, BindError> {
        let mut fds = listenfd::ListenFd::from_env();
        let ingest = match activated(&mut fds, 0)? {
            Some(s) => s,
            None => bind(cfg)?,
        };
        let control = match activated(&mut fds, 1) {
            Ok(Some(s)) => Ok(s),
            Ok(None) => bind_path(
                &control.socket,
                control.socket_mode,
                control.socket_group.as_deref(),
            ),
            Err(e) => Err(e),
        };
        Ok(Sockets { ingest, control })
    }

    /// Removes the socket file if we created it.
    pub fn remove_file(&self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The `index`th socket systemd passed, if it passed one.
fn activated(fds: &mut listenfd::ListenFd, index: usize) -> Result<Option<Socket>, BindError> {
    if fds.len() <= index {
        return Ok(None);
    }
    let Some(l) = fds
        .take_unix_listener(index)
        .map_err(BindError::Activation)?
    else {
        return Ok(None);
    };
    l.set_nonblocking(true).map_err(BindError::Activation)?;
    let display = l
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
        .unwrap_or_else(|| "systemd socket".into());
    Ok(Some(Socket {
        listener: l,
        path: None,
        display,
    }))
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> BindError + 'a {
    move |err| BindError::Io {
        path: path.to_path_buf(),
        what,
        err,
    }
}

fn bind(cfg: &config::Ingest) -> Result<Socket, BindError> {
    bind_path(&cfg.socket, cfg.socket_mode, cfg.socket_group.as_deref())
}

/// Binds a socket at `path` with `mode` and `group` (see the module docs).
fn bind_path(path: &Path, mode: u32, group: Option<&str>) -> Result<Socket, BindError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err(BindError::InUse(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(io_err(path, "removing stale socket"))?;
            }
            Err(e) => return Err(io_err(path, "probing existing socket")(e)),
        },
        Ok(_) => return Err(BindError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path, "inspecting")(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let me = config::paths::Identity::current();
        if dir == me.user_tmp_dir() {
            // The default of a user without XDG_RUNTIME_DIR: private, and nobody else's.
            config::paths::ensure_private_dir(dir, me.euid)
                .map_err(io_err(dir, "preparing private directory"))?;
        } else {
            std::fs::create_dir_all(dir).map_err(io_err(dir, "creating directory"))?;
        }
    }
    let listener = bind_owner_only(path, mode).map_err(io_err(path, "binding"))?;
    // From here on the file is ours: remove it again if a later step fails.
    let socket = Socket {
        listener,
        path: Some(path.to_path_buf()),
        display: path.display().to_string(),
    };
    // Group first, mode second: until the chmod only the owner can connect, so the file's
    // group before the chown (the daemon's) never matters.
    let finish = || -> Result<(), BindError> {
        if let Some(group) = group {
            let gid = nix::unistd::Group::from_name(group)
                .ok()
                .flatten()
                .ok_or_else(|| BindError::NoSuchGroup(group.to_string()))?
                .gid;
            nix::unistd::chown(path, None, Some(gid))
                .map_err(|e| io_err(path, "setting group")(io::Error::from(e)))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io_err(path, "setting mode"))?;
        Ok(())
    };
    if let Err(e) = finish() {
        socket.remove_file();
        return Err(e);
    }
    Ok(socket)
}

/// A non-blocking listening socket at `path` whose file is created with at most the owner's
/// bits of `mode` (see the module docs), as `UnixListener::bind` would otherwise make it.
fn bind_owner_only(path: &Path, mode: u32) -> io::Result<UnixListener> {
    use nix::sys::socket::{self as so, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    let fd = so::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    nix::sys::stat::fchmod(
        fd.as_raw_fd(),
        nix::sys::stat::Mode::from_bits_truncate(mode & 0o700),
    )?;
    so::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    // As std's `UnixListener::bind` on Linux: the kernel's maximum (net.core.somaxconn).
    so::listen(&fd, Backlog::MAXALLOWABLE)?;
    Ok(UnixListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(path: PathBuf) -> config::Ingest {
        let mut c = config::RawConfig::default()
            .validate(&config::Overrides {
                socket: Some(path),
                ..Default::default()
            })
            .unwrap()
            .ingest;
        c.socket_mode = 0o600;
        c
    }

    #[test]
    fn binds_sets_mode_and_refuses_a_live_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/q.sock");
        let s = bind(&cfg(path.clone())).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert!(matches!(bind(&cfg(path.clone())), Err(BindError::InUse(_))));
        // dropping the listener leaves a stale file that is replaced
        drop(s);
        assert!(path.exists());
        let s2 = bind(&cfg(path.clone())).unwrap();
        s2.remove_file();
        assert!(!path.exists());
    }

    #[test]
    fn the_file_is_born_with_the_owner_bits_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sock");
        // Before any chmod: what `bind()` itself made. Without the fchmod it would be 0777
        // minus the umask (0755 under the usual 022).
        let l = bind_owner_only(&path, 0o660).unwrap();
        let mode = std::fs::symlink_metadata(&path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode & !0o600, 0, "{mode:o}");
        UnixStream::connect(&path).unwrap();
        drop(l);
        std::fs::remove_file(&path).unwrap();
        let l = bind_owner_only(&path, 0o066).unwrap();
        let mode = std::fs::symlink_metadata(&path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0, "{mode:o}");
        drop(l);
    }

    #[test]
    fn never_replaces_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sock");
        std::fs::write(&path, "precious").unwrap();
        assert!(matches!(
            bind(&cfg(path.clone())),
            Err(BindError::NotASocket(_))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn unknown_group_is_an_error_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sock");
        let mut c = cfg(path.clone());
        c.socket_group = Some("no-such-group-qerrors".into());
        assert!(matches!(bind(&c), Err(BindError::NoSuchGroup(_))));
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
