//! Memory governance: the pressure level every bounded structure listens to.
//!
//! The governor (sampling RSS, the cgroup limit and PSI) publishes a [`Pressure`] level on a
//! `tokio::sync::watch` channel; components take a [`PressureRx`] in their constructors and
//! shrink when it rises (DESIGN.md, "Degradation order under pressure").
#![forbid(unsafe_code)]

use tokio::sync::watch;

/// How close the daemon is to its memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Pressure {
    /// Under the lower threshold: full-size caches and queues.
    #[default]
    Normal,
    /// Over the lower threshold: caches shrink, debug/info events are sampled, analysis of new
    /// fingerprints pauses.
    High,
    /// Over the higher threshold: queues tighten too and `/ready` fails.
    Critical,
}

impl Pressure {
    pub const ALL: [Pressure; 3] = [Pressure::Normal, Pressure::High, Pressure::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Pressure::Normal => "normal",
            Pressure::High => "high",
            Pressure::Critical => "critical",
        }
    }
}

pub type PressureTx = watch::Sender<Pressure>;
pub type PressureRx = watch::Receiver<Pressure>;

/// A pressure channel starting at `Normal`.
pub fn channel() -> (PressureTx, PressureRx) {
    watch::channel(Pressure::Normal)
}
