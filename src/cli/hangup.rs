//! SIGHUP, which `systemctl reload` sends (config/casegate.service's `ExecReload`). Hot reload is
//! not built yet, so the signal is caught and answered with a warning in the log: left to its
//! default action it would end the gateway on the spot, cutting off every request in flight.

use tokio::signal::unix::{SignalKind, signal};
use tracing::warn;

/// From now on, logs each SIGHUP instead of dying of it. Must be called inside the runtime.
pub fn warn_on_reload_requests() -> std::io::Result<()> {
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            warn!(
                "SIGHUP: reloading is not supported yet; the config was NOT re-read. \
                 Restart casegate to apply changes"
            );
        }
    });
    Ok(())
}
