//! The background task: writes accumulated uses every `use_flush_interval` (no fsync: a crash
//! loses at most that interval of use counts, never a create or a revoke) and compacts once the
//! journal has grown past `compact_after_bytes`. At shutdown it writes and fsyncs what is left.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::warn;

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
            while !*shutdown.borrow_and_update() {
                tokio::select! {
                    _ = ticks.tick() => store.maintain().await,
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

    async fn maintain(&self) {
        if let Err(error) = self.write_uses(Durability::Lazy).await {
            warn!(%error, "state: writing use counts failed; keeping them for the next attempt");
        }
        if let Err(error) = self.compact_if_due(unix_now()).await {
            warn!(%error, "state: compaction failed");
        }
    }
}
