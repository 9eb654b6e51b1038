//! Reading what the kernel knows about our memory: RSS from `/proc/self/statm`, the cgroup's
//! limit and usage (v2 `memory.max`/`memory.high`/`memory.current`, v1
//! `memory.limit_in_bytes`/`memory.usage_in_bytes`) and pressure stall information (the
//! cgroup's `memory.pressure`, else `/proc/pressure/memory`).
//!
//! Paths are found once; each sample is a few small reads of pseudo-files into a reused buffer,
//! on the governor's own thread (never a runtime worker).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// cgroup v1 reports "no limit" as a huge page-aligned number; anything above this is none.
const V1_NO_LIMIT: u64 = 1 << 60;

/// One observation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub rss: u64,
    /// The tightest of the cgroup's limits, if any.
    pub cgroup_limit: Option<u64>,
    pub cgroup_usage: Option<u64>,
    /// PSI memory `some avg10`: % of the last 10 s some task stalled waiting for memory.
    pub psi_some_avg10: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Cgroup {
    V2(PathBuf),
    V1(PathBuf),
}

/// Knows where to look; reuses one buffer.
#[derive(Debug)]
pub struct Sampler {
    page_size: u64,
    cgroup: Option<Cgroup>,
    psi: Option<PathBuf>,
    buf: String,
}

impl Sampler {
    /// Finds this process's cgroup (v2 first, then v1's memory controller) and PSI file.
    pub fn detect() -> Self {
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |p| p.max(1) as u64);
        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let cgroup = find_cgroup(&proc_cgroup, Path::new("/sys/fs/cgroup"));
        let psi = match &cgroup {
            Some(Cgroup::V2(dir)) if dir.join("memory.pressure").exists() => {
                Some(dir.join("memory.pressure"))
            }
            _ => Some(PathBuf::from("/proc/pressure/memory")).filter(|p| p.exists()),
        };
        Self {
            page_size,
            cgroup,
            psi,
            buf: String::with_capacity(512),
        }
    }

    /// Where the numbers come from, for the start record and `/stats`.
    pub fn describe(&self) -> String {
        match &self.cgroup {
            Some(Cgroup::V2(d)) => format!("cgroup v2 {}", d.display()),
            Some(Cgroup::V1(d)) => format!("cgroup v1 {}", d.display()),
            None => "no cgroup".into(),
        }
    }

    pub fn sample(&mut self) -> Sample {
        let rss = self
            .read_first_field(Path::new("/proc/self/statm"), 1)
            .map_or(0, |pages| pages * self.page_size);
        let (cgroup_limit, cgroup_usage) = match self.cgroup.clone() {
            Some(Cgroup::V2(dir)) => {
                let max = self.read_number(&dir.join("memory.max"));
                let high = self.read_number(&dir.join("memory.high"));
                let limit = match (max, high) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (limit, self.read_number(&dir.join("memory.current")))
            }
            Some(Cgroup::V1(dir)) => (
                self.read_number(&dir.join("memory.limit_in_bytes"))
                    .filter(|l| *l < V1_NO_LIMIT),
                self.read_number(&dir.join("memory.usage_in_bytes")),
            ),
            None => (None, None),
        };
        let psi_some_avg10 = match self.psi.clone() {
            Some(p) => self
                .read(&p)
                .then(|| parse_psi_some_avg10(&self.buf))
                .flatten(),
            None => None,
        };
        Sample {
            rss,
            cgroup_limit,
            cgroup_usage,
            psi_some_avg10,
        }
    }

    fn read(&mut self, path: &Path) -> bool {
        self.buf.clear();
        File::open(path)
            .and_then(|mut f| f.read_to_string(&mut self.buf))
            .is_ok()
    }

    /// A file holding one number (`max` = no limit).
    fn read_number(&mut self, path: &Path) -> Option<u64> {
        self.read_first_field(path, 0)
    }

    fn read_first_field(&mut self, path: &Path, field: usize) -> Option<u64> {
        if !self.read(path) {
            return None;
        }
        self.buf.split_whitespace().nth(field)?.parse().ok()
    }
}

/// The memory cgroup of this process from `/proc/self/cgroup` text, under `root`
/// (`/sys/fs/cgroup`). Inside a cgroup namespace the listed path may not exist under the mount;
/// then the mount's root is ours.
fn find_cgroup(proc_cgroup: &str, root: &Path) -> Option<Cgroup> {
    let join = |base: PathBuf, rel: &str| {
        let dir = base.join(rel.trim_start_matches('/'));
        if dir.is_dir() {
            dir
        } else {
            base
        }
    };
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            let dir = join(root.join("memory"), path);
            if dir.join("memory.limit_in_bytes").exists() {
                return Some(Cgroup::V1(dir));
            }
        }
    }
    for line in proc_cgroup.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            let dir = join(root.to_path_buf(), path);
            if dir.join("memory.max").exists() || dir.join("memory.current").exists() {
                return Some(Cgroup::V2(dir));
            }
        }
    }
    None
}

/// `some avg10=1.23 avg60=… total=…` → 1.23.
fn parse_psi_some_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("avg10="))?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_some_avg10_is_parsed() {
        let t = "some avg10=12.50 avg60=3.00 avg300=0.10 total=123\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=9\n";
        assert_eq!(parse_psi_some_avg10(t), Some(12.5));
        assert_eq!(parse_psi_some_avg10("garbage"), None);
    }

    #[test]
    fn finds_v2_and_v1_cgroups_in_a_fake_tree() {
        let root = tempfile::tempdir().unwrap();
        let v2 = root.path().join("system.slice/qerrors.service");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("memory.max"), "100000000\n").unwrap();
        assert_eq!(
            find_cgroup("0::/system.slice/qerrors.service\n", root.path()),
            Some(Cgroup::V2(v2))
        );
        let v1 = root.path().join("memory/app");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(
            find_cgroup("4:memory:/app\n0::/\n", root.path()),
            Some(Cgroup::V1(v1))
        );
        assert_eq!(
            find_cgroup("0::/nowhere\n", Path::new("/nonexistent")),
            None
        );
    }

    #[test]
    fn samples_this_process() {
        let mut s = Sampler::detect();
        let a = s.sample();
        assert!(a.rss > 1 << 20, "rss {}", a.rss);
        assert!(!s.describe().is_empty());
    }
}
