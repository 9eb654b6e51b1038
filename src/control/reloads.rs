//! The outcome of the last configuration reload, for `/stats` (`reload`) and so for
//! `qerrorsctl reload`, which waits for `generation` to move after its SIGHUP and reports what
//! happened instead of leaving the operator to read the log.

use std::sync::Mutex;

use serde_json::{json, Value};

/// How the last reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; these keys need a restart to change.
    Applied { restart_required: Vec<String> },
    /// Rejected; the running configuration stays.
    Rejected { error: String },
}

#[derive(Debug, Default)]
struct Last {
    generation: u64,
    outcome: Option<Outcome>,
    at_unix_ms: u64,
}

/// Written by `app` once per SIGHUP, read by the control plane.
#[derive(Debug, Default)]
pub struct Reloads(Mutex<Last>);

impl Reloads {
    pub fn record(&self, outcome: Outcome) {
        let at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.generation += 1;
        last.outcome = Some(outcome);
        last.at_unix_ms = at_unix_ms;
    }

    /// The last outcome, if there was a reload.
    pub fn last(&self) -> Option<Outcome> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .outcome
            .clone()
    }

    /// `{"generation": N, "outcome": "applied"|"rejected"|null, ...}`.
    pub fn to_json(&self) -> Value {
        let last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut v = json!({"generation": last.generation, "at_unix_ms": last.at_unix_ms});
        match &last.outcome {
            None => v["outcome"] = Value::Null,
            Some(Outcome::Applied { restart_required }) => {
                v["outcome"] = "applied".into();
                v["restart_required"] = json!(restart_required);
            }
            Some(Outcome::Rejected { error }) => {
                v["outcome"] = "rejected".into();
                v["error"] = error.as_str().into();
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_moves_the_generation_and_replaces_the_outcome() {
        let r = Reloads::default();
        assert_eq!(r.to_json()["generation"], 0);
        assert!(r.to_json()["outcome"].is_null());
        r.record(Outcome::Rejected {
            error: "ring.capacity_events: must be at least 1".into(),
        });
        let v = r.to_json();
        assert_eq!(
            (v["generation"].as_u64(), v["outcome"].as_str()),
            (Some(1), Some("rejected"))
        );
        assert_eq!(v["error"], "ring.capacity_events: must be at least 1");
        r.record(Outcome::Applied {
            restart_required: vec!["sink".into()],
        });
        let v = r.to_json();
        assert_eq!(
            (v["generation"].as_u64(), v["outcome"].as_str()),
            (Some(2), Some("applied"))
        );
        assert_eq!(v["restart_required"], json!(["sink"]));
        assert!(v.get("error").is_none());
    }
}
