//! systemd integration: `READY=1` once the listeners are bound and the
//! store is open, `STOPPING=1` when a stop begins, and `WATCHDOG=1` at half
//! the watchdog interval from a task on the serving runtime, only while the
//! store still accepts durable writes. A wedged runtime or a failed disk
//! stops the pings and systemd restarts the service. Without
//! `NOTIFY_SOCKET` (not under systemd) all of this does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd we are ready");
    }
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// Pings the watchdog until `shutdown`, if systemd asked for pings.
pub async fn watchdog(store: Store, shutdown: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval((interval / 2).max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if store.healthy() {
                    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                } else {
                    tracing::error!("store unhealthy: withholding watchdog pings");
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
}
