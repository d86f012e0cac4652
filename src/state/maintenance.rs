//! The background task: writes accumulated uses every `use_flush_interval` (no fsync: a crash
//! loses at most that interval of use counts, never a create or a revoke) and compacts once the
//! journal has grown past `compact_after_bytes`. At shutdown it writes and fsyncs what is left.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use super::StateStore;
use super::backend::Durability;
use crate::clock::unix_now;

impl StateStore {
    /// Starts the background task: periodic use flush and compaction. Ends when `shutdown` turns
    /// true (or its sender is dropped), after a final flush.
    pub fn spawn_maintenance(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(store.settings.use_flush_interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            // The first tick fires at once; nothing is pending yet.
            ticks.tick().await;
            let mut use_writes = Outage::default();
            while !*shutdown.borrow_and_update() {
                tokio::select! {
                    _ = ticks.tick() => store.maintain(&mut use_writes).await,
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
            }
            if let Err(error) = store.flush().await {
                warn!(%error, "state: final flush of use counts failed; they are lost");
            }
        })
    }

    async fn maintain(&self, use_writes: &mut Outage) {
        match self.write_uses(Durability::Lazy).await {
            Err(error) if use_writes.failed() => warn!(
                %error,
                "state: writing use counts failed; keeping them and retrying every flush interval (logged again once it works)"
            ),
            Err(_) => {}
            Ok(()) if use_writes.succeeded() => info!("state: use counts written again"),
            Ok(()) => {}
        }
        if let Err(error) = self.compact_if_due(unix_now()).await {
            warn!(%error, "state: compaction failed");
        }
    }
}

/// Whether a repeated operation is failing, so that an outage is logged when it starts and when it
/// ends rather than at every attempt (a Redis outage would otherwise warn every flush interval).
#[derive(Debug, Default)]
struct Outage {
    failing: bool,
}

impl Outage {
    /// Records a failure; true when it starts an outage.
    fn failed(&mut self) -> bool {
        !std::mem::replace(&mut self.failing, true)
    }

    /// Records a success; true when it ends an outage.
    fn succeeded(&mut self) -> bool {
        std::mem::replace(&mut self.failing, false)
    }
}

#[cfg(test)]
mod tests {
    use super::Outage;

    #[test]
    fn an_outage_is_reported_when_it_starts_and_when_it_ends_only() {
        let mut outage = Outage::default();
        assert!(!outage.succeeded(), "nothing to report while all is well");
        assert!(outage.failed(), "the first failure starts the outage");
        assert!(
            !outage.failed() && !outage.failed(),
            "later failures are the same outage"
        );
        assert!(outage.succeeded(), "the first success ends it");
        assert!(!outage.succeeded());
        assert!(outage.failed(), "a new outage is reported again");
    }
}
