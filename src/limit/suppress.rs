//! Suppression accounting: events that passed validation but were held back — by a rate limit,
//! the duplicate policy or memory pressure — are never silently gone. Each is counted per
//! fingerprint and reason; the writer turns the counts into one `suppressed` record per
//! fingerprint and reason at the end of each summary window (PROTOCOL.md).
//!
//! The hot path counts into a per-connection [`SuppressTally`] (no sharing); the connection
//! merges it into the shared [`Suppressions`] once per socket read, like the stats tally.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::event::fingerprint::Fingerprint;

/// Distinct (fingerprint, reason) pairs held per summary window. Past it, counts still add up
/// but go to one aggregate entry per reason (fingerprint `"other"`), so a flood of distinct
/// fingerprints cannot grow memory.
pub const MAX_KEYS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    RateLimit,
    Duplicate,
    Pressure,
}

impl Reason {
    pub const ALL: [Reason; 3] = [Reason::RateLimit, Reason::Duplicate, Reason::Pressure];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RateLimit => "rate_limit",
            Reason::Duplicate => "duplicate",
            Reason::Pressure => "pressure",
        }
    }
}

/// Per-connection counts of the current read.
#[derive(Debug, Default)]
pub struct SuppressTally {
    counts: HashMap<(Fingerprint, Reason), u64>,
}

impl SuppressTally {
    pub fn count(&mut self, fp: Fingerprint, reason: Reason) {
        *self.counts.entry((fp, reason)).or_insert(0) += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// One line of a summary: `count` events of `fingerprint` (None = the aggregate of fingerprints
/// beyond [`MAX_KEYS`]) suppressed for `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub fingerprint: Option<Fingerprint>,
    pub reason: Reason,
    pub count: u64,
}

/// Shared counts since the last summary, plus running totals per reason.
#[derive(Debug, Default)]
pub struct Suppressions {
    window: Mutex<Window>,
    totals: [AtomicU64; 3],
}

#[derive(Debug, Default)]
struct Window {
    by_key: HashMap<(Fingerprint, Reason), u64>,
    overflow: [u64; 3],
}

impl Suppressions {
    /// Moves a connection's tally in (and leaves it empty, keeping its allocation).
    pub fn merge(&self, tally: &mut SuppressTally) {
        if tally.counts.is_empty() {
            return;
        }
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        for ((fp, reason), n) in tally.counts.drain() {
            self.totals[reason as usize].fetch_add(n, Relaxed);
            let full = w.by_key.len() >= MAX_KEYS;
            match w.by_key.get_mut(&(fp, reason)) {
                Some(c) => *c += n,
                None if !full => {
                    w.by_key.insert((fp, reason), n);
                }
                None => w.overflow[reason as usize] += n,
            }
        }
    }

    /// Counts one event directly (for callers without a per-connection tally).
    pub fn add(&self, fp: Fingerprint, reason: Reason, n: u64) {
        let mut t = SuppressTally::default();
        t.counts.insert((fp, reason), n);
        self.merge(&mut t);
    }

    /// Everything counted since the last call, largest counts first.
    pub fn drain(&self) -> Vec<Summary> {
        let (by_key, overflow) = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            (
                std::mem::take(&mut w.by_key),
                std::mem::take(&mut w.overflow),
            )
        };
        let mut out: Vec<Summary> = by_key
            .into_iter()
            .map(|((fp, reason), count)| Summary {
                fingerprint: Some(fp),
                reason,
                count,
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.count));
        for reason in Reason::ALL {
            let count = overflow[reason as usize];
            if count > 0 {
                out.push(Summary {
                    fingerprint: None,
                    reason,
                    count,
                });
            }
        }
        out
    }

    /// Events suppressed for `reason` since start.
    pub fn total(&self, reason: Reason) -> u64 {
        self.totals[reason as usize].load(Relaxed)
    }

    pub fn total_all(&self) -> u64 {
        Reason::ALL.iter().map(|r| self.total(*r)).sum()
    }
}

impl Summary {
    /// The `suppressed` record (PROTOCOL.md).
    pub fn to_json(&self, window_s: f64) -> serde_json::Value {
        let fp = match self.fingerprint {
            Some(fp) => serde_json::Value::String(fp.to_string()),
            None => "other".into(),
        };
        serde_json::json!({
            "kind": crate::event::record::kind::SUPPRESSED,
            "fingerprint": fp,
            "count": self.count,
            "reason": self.reason.as_str(),
            "window_s": window_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_drain_sum_exactly() {
        let s = Suppressions::default();
        let mut t = SuppressTally::default();
        for i in 0..10u128 {
            for _ in 0..=i {
                t.count(Fingerprint(i), Reason::RateLimit);
            }
        }
        t.count(Fingerprint(3), Reason::Duplicate);
        assert_eq!(t.total(), 56);
        s.merge(&mut t);
        assert!(t.is_empty());
        let mut t2 = SuppressTally::default();
        t2.count(Fingerprint(9), Reason::RateLimit);
        s.merge(&mut t2);
        let out = s.drain();
        assert_eq!(out.iter().map(|x| x.count).sum::<u64>(), 57);
        assert_eq!(
            out[0],
            Summary {
                fingerprint: Some(Fingerprint(9)),
                reason: Reason::RateLimit,
                count: 11
            }
        );
        assert_eq!(s.total(Reason::RateLimit), 56);
        assert_eq!(s.total(Reason::Duplicate), 1);
        assert!(s.drain().is_empty(), "drain empties the window");
        assert_eq!(s.total_all(), 57, "totals survive a drain");
    }

    #[test]
    fn distinct_keys_are_bounded() {
        let s = Suppressions::default();
        let n = MAX_KEYS as u128 + 1000;
        for i in 0..n {
            s.add(Fingerprint(i), Reason::Pressure, 2);
        }
        let out = s.drain();
        assert_eq!(out.len(), MAX_KEYS + 1);
        let other = out.last().unwrap();
        assert_eq!(other.fingerprint, None);
        assert_eq!(other.count, 2000);
        assert_eq!(out.iter().map(|x| x.count).sum::<u64>(), 2 * n as u64);
        assert_eq!(other.to_json(1.0)["fingerprint"], "other");
    }
}
