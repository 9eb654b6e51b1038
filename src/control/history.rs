//! Error history: the most recent event records, kept as the encoded batches they were written
//! in (shared `Bytes`, no copy), bounded by events and bytes, for the control plane's `/recent`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::control::access::Viewer;

/// Default bounds: enough for a screenful of context at any rate, small next to the ring.
pub const DEFAULT_MAX_EVENTS: usize = 1000;
pub const DEFAULT_MAX_BYTES: usize = 2 << 20;

/// Under `high` memory pressure the history keeps 1/this of its bounds, under `critical`
/// 1/this² (docs/memory.md).
pub const PRESSURE_DIVISOR: usize = 8;

#[derive(Debug)]
pub struct History {
    inner: Mutex<Inner>,
    max_events: usize,
    max_bytes: usize,
    /// Bounds in force: the configured ones, divided under memory pressure.
    cur_events: AtomicUsize,
    cur_bytes: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Batches, oldest first, with their event counts.
    batches: VecDeque<(Bytes, usize)>,
    events: usize,
    bytes: usize,
}

/// Filters of `/recent`.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Minimum level (`warn` keeps warn, error and fatal).
    pub min_level: Option<crate::event::level::Level>,
    pub service: Option<String>,
    /// Whose events the asker may see.
    pub viewer: Viewer,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            min_level: None,
            service: None,
            viewer: Viewer::All,
        }
    }
}

impl History {
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
            cur_events: AtomicUsize::new(max_events.max(1)),
            cur_bytes: AtomicUsize::new(max_bytes.max(1)),
        }
    }

    /// Follows the memory pressure level: shrinks the bounds (and what is held, at once) under
    /// pressure, restores them when it is over.
    pub fn set_pressure(&self, p: crate::memory::Pressure) {
        let div = match p {
            crate::memory::Pressure::Normal => 1,
            crate::memory::Pressure::High => PRESSURE_DIVISOR,
            crate::memory::Pressure::Critical => PRESSURE_DIVISOR * PRESSURE_DIVISOR,
        };
        self.cur_events
            .store((self.max_events / div).max(1), Relaxed);
        self.cur_bytes.store((self.max_bytes / div).max(1), Relaxed);
        let mut g = self.lock();
        self.trim(&mut g);
    }

    /// Drops the oldest batches beyond the bounds in force (always keeps the newest one).
    fn trim(&self, g: &mut Inner) {
        let (max_e, max_b) = (self.cur_events.load(Relaxed), self.cur_bytes.load(Relaxed));
        while g.batches.len() > 1 && (g.events > max_e || g.bytes > max_b) {
            if let Some((b, n)) = g.batches.pop_front() {
                g.events -= n;
                g.bytes -= b.len();
            }
        }
        if g.batches.capacity() > 4 * g.batches.len().max(16) {
            g.batches.shrink_to_fit();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Remembers a batch of event records; drops the oldest batches beyond the bounds (but
    /// always keeps the newest one).
    pub fn push(&self, batch: Bytes, events: usize) {
        let mut g = self.lock();
        g.events += events;
        g.bytes += batch.len();
        g.batches.push_back((batch, events));
        self.trim(&mut g);
    }

    /// The newest `n` event records that pass `filter`, oldest first.
    pub fn recent(&self, n: usize, filter: &Filter) -> Vec<Value> {
        let mut out = Vec::new();
        self.each_newest_first(|v| {
            if passes(&v, filter) {
                out.push(v);
            }
            out.len() < n
        });
        out.reverse();
        out
    }

    /// Calls `f` with each event record, newest first, while it returns `true`.
    fn each_newest_first(&self, mut f: impl FnMut(Value) -> bool) {
        let batches: Vec<Bytes> = self.lock().batches.iter().map(|(b, _)| b.clone()).collect();
        for batch in batches.iter().rev() {
            for line in batch.split(|b| *b == b'\n').rev() {
                if line.is_empty() {
                    continue;
                }
                let Ok(v) = serde_json::from_slice::<Value>(line) else {
                    continue;
                };
                if v["kind"] != "event" {
                    continue;
                }
                if !f(v) {
                    return;
                }
            }
        }
    }

    /// `/fingerprints` for a viewer who may not see every event: the fingerprints of the
    /// events it may see in the history, counted over the history (most frequent first, at
    /// most `n`), each with its newest event's fields.
    pub fn own_fingerprints(&self, n: usize, viewer: Viewer) -> Vec<Value> {
        let mut rows: Vec<(String, u64, Value, Value)> = Vec::new();
        let mut index = std::collections::HashMap::new();
        self.each_newest_first(|v| {
            if !viewer.may_see(&v) {
                return true;
            }
            let Some(fp) = v["fingerprint"].as_str().map(str::to_string) else {
                return true;
            };
            let ts = v["received"].clone();
            match index.get(&fp) {
                Some(&i) => {
                    let row: &mut (String, u64, Value, Value) = &mut rows[i];
                    row.1 += 1;
                    row.3 = ts; // first seen: older as we go
                }
                None => {
                    index.insert(fp.clone(), rows.len());
                    rows.push((fp, 1, v, ts));
                }
            }
            true
        });
        rows.sort_by_key(|r| std::cmp::Reverse(r.1));
        rows.truncate(n);
        rows.into_iter()
            .map(|(fp, count, v, first)| {
                json!({
                    "fingerprint": fp,
                    "count": count,
                    "first_seen": first,
                    "last_seen": v["received"],
                    "class": v["class"],
                    "severity": v["severity"],
                    "level": v["level"],
                    "service": v["service"],
                    "services": [v["service"]],
                    "services_more": false,
                    "name": v["name"],
                    "message": v["message"],
                    "scope": "your events in the recent history",
                })
            })
            .collect()
    }

    /// Whether the history holds an event with fingerprint `fp` that `viewer` may see.
    pub fn has_fingerprint(&self, fp: &str, viewer: Viewer) -> bool {
        let mut found = false;
        self.each_newest_first(|v| {
            found = v["fingerprint"] == fp && viewer.may_see(&v);
            !found
        });
        found
    }

    /// `(events, bytes)` held.
    pub fn size(&self) -> (usize, usize) {
        let g = self.lock();
        (g.events, g.bytes)
    }
}

fn passes(v: &Value, f: &Filter) -> bool {
    if !f.viewer.may_see(v) {
        return false;
    }
    if let Some(min) = f.min_level {
        let level = v["level"]
            .as_str()
            .and_then(crate::event::level::Level::parse);
        if level.is_none_or(|l| l < min) {
            return false;
        }
    }
    if let Some(svc) = &f.service {
        if v["service"].as_str() != Some(svc.as_str()) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::level::Level;

    fn batch(levels: &[(&str, &str)]) -> Bytes {
        let mut s = String::new();
        for (i, (level, svc)) in levels.iter().enumerate() {
            s.push_str(&format!(
                "{{\"kind\":\"event\",\"level\":\"{level}\",\"service\":\"{svc}\",\"message\":\"m{i}\"}}\n"
            ));
        }
        Bytes::from(s)
    }

    #[test]
    fn keeps_the_newest_within_bounds_and_filters() {
        let h = History::new(4, 1 << 20);
        h.push(batch(&[("error", "a"), ("info", "a")]), 2);
        h.push(batch(&[("warn", "b"), ("fatal", "a")]), 2);
        h.push(batch(&[("debug", "b"), ("error", "b")]), 2);
        assert_eq!(h.size().0, 4, "the oldest batch went");
        let all = h.recent(10, &Filter::default());
        let levels: Vec<&str> = all.iter().map(|v| v["level"].as_str().unwrap()).collect();
        assert_eq!(levels, ["warn", "fatal", "debug", "error"]);
        let warn_up = h.recent(
            10,
            &Filter {
                min_level: Some(Level::Warn),
                service: Some("b".into()),
                viewer: Viewer::All,
            },
        );
        let levels: Vec<&str> = warn_up
            .iter()
            .map(|v| v["level"].as_str().unwrap())
            .collect();
        assert_eq!(levels, ["warn", "error"]);
        assert_eq!(h.recent(1, &Filter::default())[0]["level"], "error");
    }

    #[test]
    fn pressure_shrinks_the_bounds_and_normal_restores_them() {
        use crate::memory::Pressure;
        let h = History::new(128, 1 << 20);
        for _ in 0..64 {
            h.push(batch(&[("error", "a"), ("info", "a")]), 2);
        }
        assert_eq!(h.size().0, 128);
        h.set_pressure(Pressure::High);
        assert_eq!(h.size().0, 16, "shrunk at once");
        h.set_pressure(Pressure::Critical);
        assert_eq!(h.size().0, 2);
        h.set_pressure(Pressure::Normal);
        for _ in 0..64 {
            h.push(batch(&[("error", "a"), ("info", "a")]), 2);
        }
        assert_eq!(h.size().0, 128);
    }

    #[test]
    fn a_uid_viewer_sees_its_own_events_and_fingerprints_only() {
        let h = History::new(100, 1 << 20);
        let ev = |uid: u32, fp: &str, msg: &str, t: &str| {
            format!(
                "{{\"kind\":\"event\",\"received\":\"{t}\",\"level\":\"error\",\"service\":\"s\",\
                 \"message\":\"{msg}\",\"fingerprint\":\"{fp}\",\"peer\":{{\"uid\":{uid}}}}}\n"
            )
        };
        let batch = [
            ev(1000, "aa", "mine 1", "t1"),
            ev(1001, "bb", "theirs", "t2"),
            ev(1000, "aa", "mine 2", "t3"),
            ev(1000, "cc", "mine 3", "t4"),
            ev(1001, "cc", "theirs too", "t5"),
        ]
        .concat();
        h.push(Bytes::from(batch), 5);
        let mine = Filter {
            viewer: Viewer::Uid(1000),
            ..Filter::default()
        };
        let msgs: Vec<String> = h
            .recent(10, &mine)
            .iter()
            .map(|v| v["message"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(msgs, ["mine 1", "mine 2", "mine 3"]);
        let fps = h.own_fingerprints(10, Viewer::Uid(1000));
        assert_eq!(fps.len(), 2, "{fps:?}");
        assert_eq!(fps[0]["fingerprint"], "aa");
        assert_eq!(fps[0]["count"], 2);
        assert_eq!(fps[0]["first_seen"], "t1");
        assert_eq!(fps[0]["last_seen"], "t3");
        assert_eq!(fps[0]["message"], "mine 2", "the newest of one's own");
        assert_eq!(fps[1]["count"], 1, "cc counts only this uid's event");
        assert_eq!(fps[1]["message"], "mine 3");
        assert!(h.has_fingerprint("aa", Viewer::Uid(1000)));
        assert!(!h.has_fingerprint("bb", Viewer::Uid(1000)));
        assert!(h.has_fingerprint("bb", Viewer::All));
        assert!(!h.has_fingerprint("aa", Viewer::Nothing));
        assert!(h
            .recent(
                10,
                &Filter {
                    viewer: Viewer::Nothing,
                    ..Filter::default()
                }
            )
            .is_empty());
    }

    #[test]
    fn byte_bound_keeps_at_least_the_newest_batch() {
        let h = History::new(1000, 10);
        h.push(batch(&[("error", "a")]), 1);
        h.push(batch(&[("warn", "a")]), 1);
        assert_eq!(h.size().0, 1);
        assert_eq!(h.recent(5, &Filter::default())[0]["level"], "warn");
    }
}
