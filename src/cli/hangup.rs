//! SIGHUP, which `systemctl reload` sends (config/casegate.service's `ExecReload`): re-read the
//! config file and swap it in (see `casegate::reload`). Caught rather than left to its default
//! action, which would end the gateway on the spot, cutting off every request in flight.

use std::sync::Arc;

use casegate::reload::Reloader;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::info;

/// Starts listening for SIGHUP. Call before the gateway starts, so a SIGHUP sent early is
/// caught instead of killing the process; must be called inside the runtime.
pub fn listen() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// Reloads on every SIGHUP from now on. The reloader logs and counts each outcome.
pub fn reload_on_hangup(mut hangups: Signal, reloader: Arc<Reloader>) {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            info!("SIGHUP: reloading the config");
            // Success and failure are both logged by the reloader, with every problem.
            let _ = reloader.reload().await;
        }
    });
}
