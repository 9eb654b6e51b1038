//! Trusted facts about the process on the other end of a connection: pid/uid/gid from the
//! kernel (`SO_PEERCRED`), plus its command name, executable and systemd unit from /proc.
//! Looked up once per connection, on the blocking pool (never on a runtime worker).

use bytes::BytesMut;
use serde::Serialize;
use tokio::net::UnixStream;

use crate::event::sanitize::Sanitizer;
use crate::event::ConnMeta;
use crate::json::put_str;

/// Service name used when neither the event nor /proc gives one.
const UNKNOWN_SERVICE: &str = "unknown";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub pid: Option<i32>,
    pub uid: u32,
    pub gid: u32,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub unit: Option<String>,
}

impl Peer {
    /// Reads the peer's credentials and /proc details.
    pub async fn lookup(stream: &UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        let mut peer = Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            ..Peer::default()
        };
        if let Some(pid) = peer.pid {
            let (comm, exe, unit) = tokio::task::spawn_blocking(move || proc_details(pid))
                .await
                .unwrap_or_default();
            peer.comm = comm;
            peer.exe = exe;
            peer.unit = unit;
        }
        Ok(peer)
    }

    /// The per-connection record fragments. The command name, executable path and unit are
    /// chosen by the client (`prctl(PR_SET_NAME)`, the name it runs under), so they are
    /// redacted like event text; the comm is also the default `service`.
    pub fn meta(&self, sanitizer: &Sanitizer) -> ConnMeta {
        let redact = |v: &Option<String>| {
            v.as_ref()
                .map(|s| sanitizer.redact_text(s).unwrap_or_else(|| s.clone()))
        };
        let clean = Peer {
            comm: redact(&self.comm),
            exe: redact(&self.exe),
            unit: redact(&self.unit),
            ..self.clone()
        };
        let json = serde_json::to_vec(&clean).unwrap_or_else(|_| b"{}".to_vec());
        let name = clean.comm.as_deref().unwrap_or(UNKNOWN_SERVICE);
        let mut service = BytesMut::new();
        put_str(&mut service, name);
        ConnMeta {
            peer_json: json.into_boxed_slice(),
            service_json: service.to_vec().into_boxed_slice(),
            service: name.into(),
            uid: self.uid,
        }
    }
}

/// Blocking /proc reads. Any of them may fail (process gone, hidepid, another namespace).
fn proc_details(pid: i32) -> (Option<String>, Option<String>, Option<String>) {
    let base = format!("/proc/{pid}");
    let comm = std::fs::read_to_string(format!("{base}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
        .filter(|s| !s.is_empty());
    let exe = std::fs::read_link(format!("{base}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let unit = std::fs::read_to_string(format!("{base}/cgroup"))
        .ok()
        .and_then(|s| unit_from_cgroup(&s));
    (comm, exe, unit)
}

/// The systemd unit from /proc/PID/cgroup: the innermost path component that names a unit
/// (`.service`, `.scope`, `.socket`, ...). Prefers the unified (v2) `0::` line.
pub fn unit_from_cgroup(cgroup: &str) -> Option<String> {
    const SUFFIXES: [&str; 4] = [".service", ".scope", ".socket", ".mount"];
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| {
            cgroup
                .lines()
                .find_map(|l| l.split(":name=systemd:").nth(1))
        })?;
    path.split('/')
        .rev()
        .find(|c| SUFFIXES.iter().any(|s| c.ends_with(s)))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_read_from_cgroup_v2_and_v1() {
        assert_eq!(
            unit_from_cgroup("0::/system.slice/checkout.service\n").as_deref(),
            Some("checkout.service")
        );
        assert_eq!(
            unit_from_cgroup(
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope\n"
            )
            .as_deref(),
            Some("vte-spawn-1.scope")
        );
        assert_eq!(
            unit_from_cgroup("12:cpu:/x\n1:name=systemd:/system.slice/nginx.service\n").as_deref(),
            Some("nginx.service")
        );
        assert_eq!(unit_from_cgroup("0::/\n"), None);
    }

    #[test]
    fn meta_encodes_peer_and_default_service() {
        let p = Peer {
            pid: Some(7),
            uid: 1000,
            gid: 100,
            comm: Some("no\"de".into()),
            exe: None,
            unit: None,
        };
        let m = p.meta(&sanitizer());
        let v: serde_json::Value = serde_json::from_slice(&m.peer_json).unwrap();
        assert_eq!(v["pid"], 7);
        assert_eq!(v["comm"], "no\"de");
        let s: String = serde_json::from_slice(&m.service_json).unwrap();
        assert_eq!(s, "no\"de");
    }

    fn sanitizer() -> Sanitizer {
        let keys: Vec<String> = crate::event::sanitize::DEFAULT_KEYS
            .iter()
            .map(|k| k.to_string())
            .collect();
        Sanitizer::new(&keys, &[], false).unwrap()
    }

    #[test]
    fn client_chosen_names_are_redacted() {
        // 15 bytes, what fits in a comm.
        let p = Peer {
            pid: Some(7),
            comm: Some("pwd=Q7hunter2xy".into()),
            exe: Some("/tmp/token=Q7exe/app".into()),
            unit: Some("4222222222222.scope".into()),
            ..Peer::default()
        };
        let m = p.meta(&sanitizer());
        let peer = String::from_utf8(m.peer_json.to_vec()).unwrap();
        for secret in ["Q7hunter2xy", "Q7exe", "4222222222222"] {
            assert!(!peer.contains(secret), "{peer}");
        }
        assert_eq!(&*m.service, "pwd=[REDACTED]");
        let s: String = serde_json::from_slice(&m.service_json).unwrap();
        assert_eq!(s, "pwd=[REDACTED]");
    }
}
