//! Error history: the most recent event records, kept as the encoded batches they were written
//! in (shared `Bytes`, no copy), bounded by events and bytes, for the control plane's `/recent`.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

/// Default bounds: enough for a screenful of context at any rate, small next to the ring.
pub const DEFAULT_MAX_EVENTS: usize = 1000;
pub const DEFAULT_MAX_BYTES: usize = 2 << 20;

#[derive(Debug)]
pub struct History {
    inner: Mutex<Inner>,
    max_events: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Batches, oldest first, with their event counts.
    batches: VecDeque<(Bytes, usize)>,
    events: usize,
    bytes: usize,
}

/// Filters of `/recent`.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Minimum level (`warn` keeps warn, error and fatal).
    pub min_level: Option<crate::event::level::Level>,
    pub service: Option<String>,
}

impl History {
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
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
        while g.batches.len() > 1 && (g.events > self.max_events || g.bytes > self.max_bytes) {
            if let Some((b, n)) = g.batches.pop_front() {
                g.events -= n;
                g.bytes -= b.len();
            }
        }
    }

    /// The newest `n` event records that pass `filter`, oldest first.
    pub fn recent(&self, n: usize, filter: &Filter) -> Vec<serde_json::Value> {
        let batches: Vec<Bytes> = self.lock().batches.iter().map(|(b, _)| b.clone()).collect();
        let mut out = Vec::new();
        'outer: for batch in batches.iter().rev() {
            for line in batch.split(|b| *b == b'\n').rev() {
                if out.len() >= n {
                    break 'outer;
                }
                if line.is_empty() {
                    continue;
                }
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
                    continue;
                };
                if v["kind"] != "event" || !passes(&v, filter) {
                    continue;
                }
                out.push(v);
            }
        }
        out.reverse();
        out
    }

    /// `(events, bytes)` held.
    pub fn size(&self) -> (usize, usize) {
        let g = self.lock();
        (g.events, g.bytes)
    }
}

fn passes(v: &serde_json::Value, f: &Filter) -> bool {
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
    fn byte_bound_keeps_at_least_the_newest_batch() {
        let h = History::new(1000, 10);
        h.push(batch(&[("error", "a")]), 1);
        h.push(batch(&[("warn", "a")]), 1);
        assert_eq!(h.size().0, 1);
        assert_eq!(h.recent(5, &Filter::default())[0]["level"], "warn");
    }
}
