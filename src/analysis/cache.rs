//! The advice cache: fingerprint → latest advice, with a TTL per entry and a byte bound
//! (`moka`, weigher = estimated bytes). Saved to a JSON file at shutdown (temp file + rename)
//! and loaded at start, keeping each entry's original expiry, so a restart does not pay for the
//! same advice twice. Under memory pressure it shrinks to a fraction of its bound.
//!
//! The file is the daemon's private state, mode [`FILE_MODE`] (0600) whatever the umask: the
//! advice it holds is in the log as `advice` records for whoever may read the log, and nobody
//! else needs the file. It is written to a fresh temp file (created exclusively, with that
//! mode, synced) and renamed over the old one, so a reader sees the old file or the new one,
//! never a torn or wider one. A file left wider by an older version is narrowed when loaded.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use moka::sync::Cache;
use moka::Expiry;
use serde::{Deserialize, Serialize};

use super::Advice;
use crate::memory::Pressure;

/// Estimated fixed cost of an entry besides its strings (key, Arc, moka's node, timestamps).
const ENTRY_OVERHEAD: u32 = 160;

/// Share of `max_bytes` kept under `High` pressure (1/4) and `Critical` (1/16).
const HIGH_DIVISOR: u64 = 4;
const CRITICAL_DIVISOR: u64 = 16;

/// Format version of the cache file; other versions are ignored (not an error).
const FILE_VERSION: u32 = 1;

/// Mode of the cache file (and of its temp file from the moment it exists): owner only.
pub const FILE_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum CacheFileError {
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{path}: {err}")]
    Json {
        path: String,
        err: serde_json::Error,
    },
}

/// One cached analysis result. `advice: None` records that nothing matched, so the fingerprint
/// is not analysed again before the TTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub fingerprint: String,
    /// `rules`, `llm:<model>`, or `none`.
    pub source: String,
    pub advice: Option<Advice>,
    pub event_id: String,
    pub created_unix_ms: u64,
    pub expires_unix_ms: u64,
}

impl Entry {
    fn weight(&self) -> u32 {
        let a = self.advice.as_ref().map_or(0, |a| {
            a.summary.len()
                + a.likely_cause.len()
                + a.fix_steps.iter().map(|s| s.len() + 24).sum::<usize>()
                + a.rule.as_ref().map_or(0, String::len)
        });
        let n = a + self.fingerprint.len() + self.source.len() + self.event_id.len();
        u32::try_from(n)
            .unwrap_or(u32::MAX)
            .saturating_add(ENTRY_OVERHEAD)
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: Vec<Entry>,
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Each entry lives until its own `expires_unix_ms`.
struct ByEntry;

impl Expiry<u128, Arc<Entry>> for ByEntry {
    fn expire_after_create(&self, _: &u128, v: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(remaining(v))
    }

    fn expire_after_update(
        &self,
        _: &u128,
        v: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(v))
    }
}

fn remaining(v: &Entry) -> Duration {
    Duration::from_millis(v.expires_unix_ms.saturating_sub(unix_ms(SystemTime::now())))
}

pub struct AdviceCache {
    cache: Cache<u128, Arc<Entry>>,
    max_bytes: u64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Entries removed to shrink under memory pressure.
    pub shrunk: AtomicU64,
}

impl AdviceCache {
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &u128, v: &Arc<Entry>| v.weight())
            .expire_after(ByEntry)
            .build();
        Self {
            cache,
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            shrunk: AtomicU64::new(0),
        }
    }

    /// Looks up without counting.
    pub fn peek(&self, fp: u128) -> Option<Arc<Entry>> {
        self.cache.get(&fp)
    }

    /// Until when (Unix ms) advice for `fp` stays cached, counting a hit or a miss. Asked at
    /// most about once a second per fingerprint (see [`super::AnalysisHandle::offer_seen`]), so
    /// a `get` (it reads the entry's expiry) is cheap enough.
    pub fn fresh_until_ms(&self, fp: u128) -> Option<u64> {
        match self.cache.get(&fp) {
            Some(e) => {
                self.hits.fetch_add(1, Relaxed);
                Some(e.expires_unix_ms)
            }
            None => {
                self.misses.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Some entry (for benches and diagnostics).
    pub fn peek_any(&self) -> Option<Arc<Entry>> {
        self.cache.iter().next().map(|(_, v)| v)
    }

    pub fn insert(&self, fp: u128, e: Entry) {
        self.cache.insert(fp, Arc::new(e));
    }

    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }

    pub fn bytes(&self) -> u64 {
        self.cache.weighted_size()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The byte bound in force under `p`.
    pub fn bound(&self, p: Pressure) -> u64 {
        match p {
            Pressure::Normal => self.max_bytes,
            Pressure::High => self.max_bytes / HIGH_DIVISOR,
            Pressure::Critical => self.max_bytes / CRITICAL_DIVISOR,
        }
    }

    /// Evicts entries (in the cache's iteration order) until at most `target` bytes remain.
    pub fn shrink_to(&self, target: u64) {
        self.cache.run_pending_tasks();
        let mut size = self.cache.weighted_size();
        if size <= target {
            return;
        }
        for (k, v) in self.cache.iter() {
            if size <= target {
                break;
            }
            self.cache.invalidate(&*k);
            size = size.saturating_sub(u64::from(v.weight()));
            self.shrunk.fetch_add(1, Relaxed);
        }
        self.cache.run_pending_tasks();
    }

    /// Writes every live entry to `path` atomically (temp file + rename). Blocking.
    pub fn save(&self, path: &Path) -> Result<usize, CacheFileError> {
        let now = unix_ms(SystemTime::now());
        let entries: Vec<Entry> = self
            .cache
            .iter()
            .filter(|(_, v)| v.expires_unix_ms > now)
            .map(|(_, v)| (*v).clone())
            .collect();
        let n = entries.len();
        let io = |err| CacheFileError::Io {
            path: path.display().to_string(),
            err,
        };
        let text = serde_json::to_vec(&CacheFile {
            version: FILE_VERSION,
            entries,
        })
        .map_err(|err| CacheFileError::Json {
            path: path.display().to_string(),
            err,
        })?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        // One left by a crash (or put there by someone else) is replaced, never written through:
        // `create_new` does not follow a symlink and fails on anything that still exists.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(&text)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(n)
    }

    /// Loads entries saved by [`AdviceCache::save`], skipping expired ones. A missing file is
    /// an empty cache. Blocking.
    pub fn load(&self, path: &Path) -> Result<usize, CacheFileError> {
        let io = |err| CacheFileError::Io {
            path: path.display().to_string(),
            err,
        };
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(io(err)),
        };
        // Saved 0644 by an older version: narrowed now rather than at the next save. Best
        // effort (a file we do not own keeps its mode; the next save replaces it).
        if file
            .metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o7777 & !FILE_MODE != 0)
        {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE));
        }
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut text).map_err(io)?;
        let file: CacheFile =
            serde_json::from_slice(&text).map_err(|err| CacheFileError::Json {
                path: path.display().to_string(),
                err,
            })?;
        if file.version != FILE_VERSION {
            return Ok(0);
        }
        let now = unix_ms(SystemTime::now());
        let mut n = 0;
        for e in file.entries {
            let Ok(fp) = u128::from_str_radix(&e.fingerprint, 16) else {
                continue;
            };
            if e.expires_unix_ms > now {
                self.insert(fp, e);
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fp: u128, ttl: Duration) -> Entry {
        let now = unix_ms(SystemTime::now());
        Entry {
            fingerprint: format!("{fp:032x}"),
            source: "rules".into(),
            advice: Some(Advice {
                summary: "s".repeat(100),
                likely_cause: "c".into(),
                fix_steps: vec!["a".into()],
                confidence: 0.5,
                rule: Some("r".into()),
            }),
            event_id: "01J".into(),
            created_unix_ms: now,
            expires_unix_ms: now + ttl.as_millis() as u64,
        }
    }

    #[test]
    fn hits_misses_and_expiry() {
        let c = AdviceCache::new(1 << 20);
        assert_eq!(c.fresh_until_ms(1), None);
        let e = entry(1, Duration::from_millis(150));
        let expires = e.expires_unix_ms;
        c.insert(1, e);
        assert_eq!(c.fresh_until_ms(1), Some(expires));
        assert_eq!((c.hits.load(Relaxed), c.misses.load(Relaxed)), (1, 1));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(c.fresh_until_ms(1), None);
    }

    #[test]
    fn bounded_by_bytes_and_shrinks_under_pressure() {
        let c = AdviceCache::new(64 * 1024);
        for i in 0..2000 {
            c.insert(i, entry(i, Duration::from_secs(60)));
        }
        c.cache.run_pending_tasks();
        assert!(c.bytes() <= 64 * 1024, "{}", c.bytes());
        let target = c.bound(Pressure::Critical);
        c.shrink_to(target);
        assert!(c.bytes() <= target, "{} > {target}", c.bytes());
        assert!(c.shrunk.load(Relaxed) > 0);
    }

    #[test]
    fn save_and_load_keep_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        let c = AdviceCache::new(1 << 20);
        c.insert(7, entry(7, Duration::from_secs(60)));
        c.insert(8, entry(8, Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.save(&p).unwrap(), 1);
        let d = AdviceCache::new(1 << 20);
        assert_eq!(d.load(&p).unwrap(), 1);
        assert_eq!(
            d.peek(7).unwrap().expires_unix_ms,
            c.peek(7).unwrap().expires_unix_ms
        );
        assert!(d.peek(8).is_none());
        assert_eq!(
            AdviceCache::new(1024)
                .load(&dir.path().join("none"))
                .unwrap(),
            0
        );
        std::fs::write(&p, "{").unwrap();
        assert!(d.load(&p).is_err());
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_file_is_0600_whatever_was_there_and_no_temp_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("advice-cache.json");
        let c = AdviceCache::new(1 << 20);
        c.insert(7, entry(7, Duration::from_secs(60)));
        // An old file saved 0644, and a temp file that is a symlink to something precious.
        std::fs::write(&p, "{}").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let precious = dir.path().join("precious");
        std::fs::write(&precious, "keep").unwrap();
        std::os::unix::fs::symlink(&precious, dir.path().join("advice-cache.json.tmp")).unwrap();
        assert!(c.load(&p).is_err());
        assert_eq!(mode(&p), FILE_MODE, "narrowed when loaded");
        assert_eq!(c.save(&p).unwrap(), 1);
        assert_eq!(mode(&p), FILE_MODE);
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["advice-cache.json", "precious"]);
        assert_eq!(AdviceCache::new(1 << 20).load(&p).unwrap(), 1);
    }
}
