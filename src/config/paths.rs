//! Where things are when nothing is configured: the one socket rule shared by the daemon,
//! `qerrorsctl` and the client shims (docs/PROTOCOL.md, "Finding the socket"), the default log
//! path, and the environment names every program reads for the same value.
//!
//! The daemon binds, by effective uid: `/run/qerrors.sock` as root, else
//! `$XDG_RUNTIME_DIR/qerrors.sock`, else `/tmp/qerrors-<uid>/qerrors.sock` (a private directory it
//! creates). A client with nothing configured takes the first of `$XDG_RUNTIME_DIR/qerrors.sock`,
//! `/tmp/qerrors-<uid>/qerrors.sock`, `/run/qerrors.sock` that is a socket, else the daemon's
//! default for its own identity.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The socket's file name in every candidate directory.
pub const SOCKET_NAME: &str = "qerrors.sock";
/// The system daemon's socket.
pub const SYSTEM_SOCKET: &str = "/run/qerrors.sock";
/// The system daemon's log.
pub const SYSTEM_LOG: &str = "/var/log/qerrors/errors.log";
/// A non-root daemon's log, relative to its working directory.
pub const USER_LOG: &str = "qerrors-logs/errors.log";

/// Environment names read by more than one program, each with the older name it replaces
/// (still read; the new name wins when both are set).
pub mod env {
    /// The ingest socket (`ingest.socket`): qerrorsd, qerrorsctl, the shims.
    pub const SOCKET: (&str, &str) = ("QERRORS_INGEST_SOCKET", "QERRORS_SOCKET");
    /// The control server address (`control.listen`): qerrorsd, qerrorsctl.
    pub const CONTROL: (&str, &str) = ("QERRORS_CONTROL_LISTEN", "QERRORS_CONTROL");
    /// The error log (`sink.path`): qerrorsd, `qerrorsctl tail`.
    pub const LOG_FILE: (&str, &str) = ("QERRORS_SINK_PATH", "QERRORS_LOG_FILE");
    /// The daemon's own diagnostics filter (stderr / the journal), not the error log.
    pub const LOG_LEVEL: (&str, &str) = ("QERRORS_LOG_LEVEL", "QERRORS_LOG_LEVEL");
    /// Every pair, for the config loader's alias pass.
    pub const ALIASES: [(&str, &str); 3] = [SOCKET, CONTROL, LOG_FILE];

    /// The value of `name`, else of its legacy alias; empty values count as unset.
    pub fn get((name, legacy): (&str, &str)) -> Option<String> {
        [name, legacy]
            .into_iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    }
}

/// The identity and environment the rule depends on; [`Identity::current`] reads the process's.
#[derive(Debug, Clone)]
pub struct Identity {
    pub euid: u32,
    pub xdg_runtime_dir: Option<OsString>,
    /// Base of the per-user fallback directory (`/tmp`).
    pub tmp: PathBuf,
}

impl Identity {
    pub fn current() -> Self {
        Self {
            euid: nix::unistd::geteuid().as_raw(),
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
            tmp: PathBuf::from("/tmp"),
        }
    }

    fn xdg_dir(&self) -> Option<&Path> {
        self.xdg_runtime_dir
            .as_deref()
            .map(Path::new)
            .filter(|d| d.is_absolute())
    }

    /// `/tmp/qerrors-<uid>`: the private directory of a user without `XDG_RUNTIME_DIR`.
    pub fn user_tmp_dir(&self) -> PathBuf {
        self.tmp.join(format!("qerrors-{}", self.euid))
    }

    /// Where a daemon of this identity binds when nothing is configured.
    pub fn daemon_socket(&self) -> PathBuf {
        if self.euid == 0 {
            return PathBuf::from(SYSTEM_SOCKET);
        }
        match self.xdg_dir().filter(|d| d.is_dir()) {
            Some(dir) => dir.join(SOCKET_NAME),
            None => self.user_tmp_dir().join(SOCKET_NAME),
        }
    }

    /// The places a client looks, in order.
    pub fn client_candidates(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .xdg_dir()
            .map(|d| d.join(SOCKET_NAME))
            .into_iter()
            .collect();
        out.push(self.user_tmp_dir().join(SOCKET_NAME));
        out.push(PathBuf::from(SYSTEM_SOCKET));
        out
    }

    /// The places a client may use: [`Identity::client_candidates`] that are sockets, without
    /// the `/tmp` one unless its directory is this user's own ([`is_private_dir`]): another
    /// user could have made `/tmp/qerrors-<uid>` first to receive someone else's events.
    pub fn usable_candidates(&self) -> Vec<PathBuf> {
        let tmp_dir = self.user_tmp_dir();
        self.client_candidates()
            .into_iter()
            .filter(|p| {
                p.parent() != Some(tmp_dir.as_path()) || is_private_dir(&tmp_dir, self.euid)
            })
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket()))
            .collect()
    }

    /// The first usable candidate that accepts a connection (a socket file left by a daemon
    /// that died does not hide a live one further down the list), else the first usable
    /// candidate, else [`Identity::daemon_socket`].
    pub fn find_socket(&self) -> PathBuf {
        let usable = self.usable_candidates();
        usable
            .iter()
            .find(|p| std::os::unix::net::UnixStream::connect(p).is_ok())
            .or(usable.first())
            .cloned()
            .unwrap_or_else(|| self.daemon_socket())
    }
}

/// Where this process's daemon binds when nothing is configured.
pub fn default_socket_path() -> PathBuf {
    Identity::current().daemon_socket()
}

/// The socket a client uses: `explicit`, else `QERRORS_INGEST_SOCKET` (or the legacy
/// `QERRORS_SOCKET`), else the first candidate that is a socket.
pub fn client_socket(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| env::get(env::SOCKET).map(PathBuf::from))
        .unwrap_or_else(|| Identity::current().find_socket())
}

pub fn default_log_path() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        PathBuf::from(SYSTEM_LOG)
    } else {
        PathBuf::from(USER_LOG)
    }
}

/// Whether `dir` is a real directory (not a symlink) owned by `euid` that nobody else can write.
pub fn is_private_dir(dir: &Path, euid: u32) -> bool {
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.file_type().is_dir() && m.uid() == euid && m.mode() & 0o022 == 0)
}

/// Makes `dir` the private directory of `euid`: creates it mode 0700, or accepts an existing one
/// only if it is a real directory (not a symlink) owned by `euid` that nobody else can write.
/// Another user could have made `/tmp/qerrors-<uid>` first; this is what stops them.
pub fn ensure_private_dir(dir: &Path, euid: u32) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("refusing to use {}: {why}", dir.display()),
        ))
    };
    if !meta.file_type().is_dir() {
        return refuse("not a directory".into());
    }
    if meta.uid() != euid {
        return refuse(format!("owned by uid {}, not {euid}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "writable by others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(euid: u32, xdg: Option<&Path>, tmp: &Path) -> Identity {
        Identity {
            euid,
            xdg_runtime_dir: xdg.map(|p| p.as_os_str().to_owned()),
            tmp: tmp.to_path_buf(),
        }
    }

    #[test]
    fn daemon_default_by_identity() {
        let d = tempfile::tempdir().unwrap();
        let root = id(0, Some(d.path()), d.path());
        assert_eq!(root.daemon_socket(), Path::new("/run/qerrors.sock"));
        let user = id(1234, Some(d.path()), d.path());
        assert_eq!(user.daemon_socket(), d.path().join("qerrors.sock"));
        // unset, relative or missing XDG_RUNTIME_DIR: the private /tmp directory
        for xdg in [
            None,
            Some(Path::new("rel/dir")),
            Some(&d.path().join("gone")),
        ] {
            let user = id(1234, xdg, d.path());
            assert_eq!(
                user.daemon_socket(),
                d.path().join("qerrors-1234/qerrors.sock"),
                "{xdg:?}"
            );
        }
    }

    #[test]
    fn client_takes_the_first_candidate_that_is_a_socket() {
        let xdg = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let who = id(me, Some(xdg.path()), tmp.path());
        assert_eq!(
            who.client_candidates(),
            [
                xdg.path().join("qerrors.sock"),
                tmp.path().join(format!("qerrors-{me}/qerrors.sock")),
                PathBuf::from("/run/qerrors.sock"),
            ]
        );
        // /run/qerrors.sock may exist on this machine: only the first two are under test here.
        let user_dir = who.user_tmp_dir();
        ensure_private_dir(&user_dir, me).unwrap();
        let in_tmp = user_dir.join("qerrors.sock");
        let _l1 = std::os::unix::net::UnixListener::bind(&in_tmp).unwrap();
        assert_eq!(who.find_socket(), in_tmp);
        // a regular file at the first candidate is not a socket: skipped
        std::fs::write(xdg.path().join("qerrors.sock"), b"").unwrap();
        assert_eq!(who.find_socket(), in_tmp);
        std::fs::remove_file(xdg.path().join("qerrors.sock")).unwrap();
        let _l2 = std::os::unix::net::UnixListener::bind(xdg.path().join("qerrors.sock")).unwrap();
        assert_eq!(who.find_socket(), xdg.path().join("qerrors.sock"));
    }

    #[test]
    fn a_tmp_directory_of_another_user_is_never_used_and_a_dead_socket_does_not_hide_a_live_one() {
        use std::os::unix::fs::PermissionsExt;
        let xdg = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        // an identity whose uid does not own the /tmp directory: as if another user made it
        let other = id(me + 1, Some(xdg.path()), tmp.path());
        std::fs::create_dir(other.user_tmp_dir()).unwrap();
        std::fs::set_permissions(other.user_tmp_dir(), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let squat = other.user_tmp_dir().join("qerrors.sock");
        let _l = std::os::unix::net::UnixListener::bind(&squat).unwrap();
        assert!(!other.usable_candidates().contains(&squat));
        assert_ne!(other.find_socket(), squat);

        // our own directory, but group-writable: refused too
        let who = id(me, Some(xdg.path()), tmp.path());
        ensure_private_dir(&who.user_tmp_dir(), me).unwrap();
        let live = who.user_tmp_dir().join("qerrors.sock");
        let _live = std::os::unix::net::UnixListener::bind(&live).unwrap();
        assert_eq!(who.find_socket(), live);
        std::fs::set_permissions(who.user_tmp_dir(), std::fs::Permissions::from_mode(0o770))
            .unwrap();
        assert!(!who.usable_candidates().contains(&live));
        std::fs::set_permissions(who.user_tmp_dir(), std::fs::Permissions::from_mode(0o700))
            .unwrap();

        // a dead daemon's socket file first in the list: the live one after it is chosen
        let dead = xdg.path().join("qerrors.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        assert_eq!(who.usable_candidates().first(), Some(&dead));
        assert_eq!(who.find_socket(), live);
    }

    #[test]
    fn private_dir_is_created_0700_and_foreign_ones_are_refused() {
        let me = nix::unistd::geteuid().as_raw();
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("qerrors-x");
        ensure_private_dir(&dir, me).unwrap();
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        ensure_private_dir(&dir, me).unwrap(); // idempotent
        let err = ensure_private_dir(&dir, me + 1).unwrap_err().to_string();
        assert!(err.contains("owned by uid"), "{err}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = ensure_private_dir(&dir, me).unwrap_err().to_string();
        assert!(err.contains("writable by others"), "{err}");
        let link = base.path().join("link");
        std::os::unix::fs::symlink(base.path(), &link).unwrap();
        let err = ensure_private_dir(&link, me).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
