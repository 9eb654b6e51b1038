//! systemd readiness and watchdog (`Type=notify`): `READY=1` once the socket accepts,
//! `RELOADING=1` around a config reload, `STOPPING=1` on shutdown, a `STATUS=` line with live
//! counts, and `WATCHDOG=1` from a task on the runtime, so a stalled event loop misses its pings
//! and systemd restarts the daemon. Without `NOTIFY_SOCKET` every call is a no-op.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::stats::Stats;

/// How often `STATUS=` is refreshed when there is no watchdog.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

fn send(states: &[NotifyState<'_>]) {
    // A datagram to a local socket; errors (no systemd listening) are not ours to act on.
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("accepting events")]);
}

pub fn reloading() {
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        send(&[NotifyState::Reloading, now]);
    } else {
        send(&[NotifyState::Reloading]);
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pings the watchdog at half its interval (when systemd set `WATCHDOG_USEC` for us) and
/// refreshes `STATUS=`. Runs until aborted.
pub async fn watchdog_and_status(stats: Arc<Stats>) {
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(STATUS_INTERVAL, |w| (w / 2).min(STATUS_INTERVAL));
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let status = format!(
            "{} events written, {} rejected, {} dropped, {} connections",
            stats.written.load(Relaxed),
            stats.rejected_total(),
            stats.dropped_overload.load(Relaxed),
            stats.connections_active.load(Relaxed),
        );
        if watchdog.is_some() {
            send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        } else {
            send(&[NotifyState::Status(&status)]);
        }
    }
}
