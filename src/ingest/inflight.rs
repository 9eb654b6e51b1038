//! Per-connection memory accounting: bytes in flight — read from a socket but not yet handed to
//! the ring (a partial line, a batch waiting for ring space) — per connection, per peer uid and
//! in total, with a cap per peer and a cap overall (`memory.peer_in_flight_bytes`,
//! `memory.in_flight_bytes`). A connection over either cap stops reading until it falls; its
//! client blocks in its kernel buffer, and one that never finishes its line meets the read
//! timeout. Visible in `/stats` (`ingest.in_flight`: the total, the top peers and the top
//! connections).
//!
//! The hot path touches two atomics per socket read; the peer map is locked only when a
//! connection opens or closes, and holds one entry per peer uid with an open connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Bytes in flight of one peer uid.
#[derive(Debug)]
pub struct PeerLoad {
    pub uid: u32,
    bytes: AtomicUsize,
    conns: AtomicUsize,
}

/// One open connection's bytes in flight, for `/stats`.
#[derive(Debug)]
struct ConnEntry {
    uid: u32,
    pid: Option<i32>,
    bytes: Arc<AtomicUsize>,
}

/// The daemon-wide account.
#[derive(Debug)]
pub struct InFlight {
    total: AtomicUsize,
    total_cap: usize,
    peer_cap: usize,
    peers: Mutex<HashMap<u32, Arc<PeerLoad>>>,
    /// Open connections by id (locked only when one opens or closes, and by `/stats`).
    conns: Mutex<HashMap<u64, ConnEntry>>,
    next_conn: AtomicU64,
    /// Times a connection had to wait for in-flight room, since start.
    pub waits: AtomicU64,
}

impl InFlight {
    pub fn new(total_cap: usize, peer_cap: usize) -> Self {
        Self {
            total: AtomicUsize::new(0),
            total_cap: total_cap.max(1),
            peer_cap: peer_cap.max(1),
            peers: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<PeerLoad>>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ConnEntry>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the account of a new connection of peer `uid` (process `pid`, if known).
    pub fn register(self: &Arc<Self>, uid: u32, pid: Option<i32>) -> ConnLoad {
        match self.try_register(uid, pid, usize::MAX) {
            Ok(c) => c,
            Err(_) => unreachable!("no connection cap"),
        }
    }

    /// [`register`](Self::register), unless `uid` already holds `max_conns` connections:
    /// then `Err(connections it holds)` and nothing is opened.
    pub fn try_register(
        self: &Arc<Self>,
        uid: u32,
        pid: Option<i32>,
        max_conns: usize,
    ) -> Result<ConnLoad, usize> {
        let peer = {
            let mut peers = self.lock();
            let peer = peers.entry(uid).or_insert_with(|| {
                Arc::new(PeerLoad {
                    uid,
                    bytes: AtomicUsize::new(0),
                    conns: AtomicUsize::new(0),
                })
            });
            // Counted under the lock, so two connections cannot both take the last slot.
            let held = peer.conns.load(Relaxed);
            if held >= max_conns {
                if held == 0 {
                    peers.remove(&uid);
                }
                return Err(held);
            }
            peer.conns.fetch_add(1, Relaxed);
            peer.clone()
        };
        let id = self.next_conn.fetch_add(1, Relaxed);
        let bytes = Arc::new(AtomicUsize::new(0));
        self.lock_conns().insert(
            id,
            ConnEntry {
                uid,
                pid,
                bytes: bytes.clone(),
            },
        );
        Ok(ConnLoad {
            account: self.clone(),
            peer,
            held: 0,
            id,
            bytes,
        })
    }

    /// The `n` connections with the most bytes in flight (more than 0): `(uid, pid, bytes)`.
    pub fn top_connections(&self, n: usize) -> Vec<(u32, Option<i32>, usize)> {
        let mut v: Vec<(u32, Option<i32>, usize)> = self
            .lock_conns()
            .values()
            .map(|c| (c.uid, c.pid, c.bytes.load(Relaxed)))
            .filter(|c| c.2 > 0)
            .collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    pub fn total(&self) -> usize {
        self.total.load(Relaxed)
    }

    /// The `n` peers with the most bytes in flight: `(uid, bytes, connections)`.
    pub fn top(&self, n: usize) -> Vec<(u32, usize, usize)> {
        let mut v: Vec<(u32, usize, usize)> = self
            .lock()
            .values()
            .map(|p| (p.uid, p.bytes.load(Relaxed), p.conns.load(Relaxed)))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "bytes": self.total(),
            "cap_bytes": self.total_cap,
            "peer_cap_bytes": self.peer_cap,
            "waits": self.waits.load(Relaxed),
            "top_peers": self.top(10).into_iter()
                .map(|(uid, bytes, conns)| serde_json::json!({"uid": uid, "bytes": bytes, "connections": conns}))
                .collect::<Vec<_>>(),
            "top_connections": self.top_connections(10).into_iter()
                .map(|(uid, pid, bytes)| serde_json::json!({"uid": uid, "pid": pid, "bytes": bytes}))
                .collect::<Vec<_>>(),
        })
    }
}

/// One connection's share; gives it back when dropped.
#[derive(Debug)]
pub struct ConnLoad {
    account: Arc<InFlight>,
    peer: Arc<PeerLoad>,
    held: usize,
    id: u64,
    /// `held`, readable by `/stats`.
    bytes: Arc<AtomicUsize>,
}

impl ConnLoad {
    /// Sets what this connection holds now.
    pub fn set(&mut self, bytes: usize) {
        if bytes > self.held {
            let d = bytes - self.held;
            self.peer.bytes.fetch_add(d, Relaxed);
            self.account.total.fetch_add(d, Relaxed);
        } else if bytes < self.held {
            let d = self.held - bytes;
            self.peer.bytes.fetch_sub(d, Relaxed);
            self.account.total.fetch_sub(d, Relaxed);
        }
        self.held = bytes;
        self.bytes.store(bytes, Relaxed);
    }

    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether this connection may read more: its peer and the daemon are under their caps.
    pub fn may_read(&self) -> bool {
        self.peer.bytes.load(Relaxed) < self.account.peer_cap
            && self.account.total.load(Relaxed) < self.account.total_cap
    }
}

impl Drop for ConnLoad {
    fn drop(&mut self) {
        self.set(0);
        self.account.lock_conns().remove(&self.id);
        let mut peers = self.account.lock();
        if self.peer.conns.fetch_sub(1, Relaxed) == 1 {
            // Registration also happens under the lock, so nobody revived it meanwhile.
            peers.remove(&self.peer.uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_per_peer_and_total_and_forgets_closed_peers() {
        let acc = Arc::new(InFlight::new(1000, 300));
        let mut a1 = acc.register(1, Some(11));
        let mut a2 = acc.register(1, Some(12));
        let mut b = acc.register(2, None);
        a1.set(200);
        a2.set(100);
        b.set(50);
        assert_eq!(acc.total(), 350);
        assert_eq!(
            acc.top_connections(2),
            [(1, Some(11), 200), (1, Some(12), 100)]
        );
        assert!(!a1.may_read(), "peer 1 is at its cap");
        assert!(b.may_read());
        assert_eq!(acc.top(5), [(1, 300, 2), (2, 50, 1)]);
        a2.set(0);
        assert!(a1.may_read());
        b.set(900);
        assert!(!a1.may_read(), "the total cap holds everyone");
        drop(b);
        assert_eq!(acc.total(), 200);
        assert_eq!(
            acc.top_connections(5),
            [(1, Some(11), 200)],
            "a2 holds nothing"
        );
        drop(a1);
        drop(a2);
        assert_eq!(acc.total(), 0);
        assert!(acc.top(5).is_empty());
        assert!(acc.top_connections(5).is_empty());
        assert!(
            acc.lock_conns().is_empty(),
            "closed connections are forgotten"
        );
    }

    #[test]
    fn a_uid_at_its_connection_cap_is_refused_and_others_are_not() {
        let acc = Arc::new(InFlight::new(1000, 300));
        let a1 = acc.try_register(7, None, 2).unwrap();
        let _a2 = acc.try_register(7, None, 2).unwrap();
        assert_eq!(acc.try_register(7, None, 2).err(), Some(2));
        let _b = acc
            .try_register(8, None, 2)
            .expect("another uid has its own slots");
        drop(a1);
        let _a3 = acc.try_register(7, None, 2).expect("a slot came back");
        assert_eq!(acc.try_register(9, None, 0).err(), Some(0));
        assert!(
            !acc.top(10).iter().any(|p| p.0 == 9),
            "a refused uid leaves no entry"
        );
    }
}
