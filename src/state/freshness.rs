//! How current the in-memory revocations are. The embedded store writes them itself, so they
//! are always current. A shared store (Redis) learns other replicas' revocations by listening,
//! so it knows when it last heard from the server: while that is recent the view is fresh; for
//! a while after it is stale but still used (`[state] max_staleness`); past that, guests are
//! refused until the server answers again, because a revocation made meanwhile elsewhere
//! could not be enforced.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How current the revocations the gateway checks are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Heard from the shared store within the last moments (or the store is embedded).
    Fresh,
    /// Not heard from for `age`, still within `max_staleness`: guests are served on the
    /// last-known revocations.
    Stale { age: Duration },
    /// Not heard from for `age`, past `max_staleness`: guests are refused (fail closed).
    TooStale { age: Duration },
}

impl Freshness {
    /// Whether guests may still be served on what is known.
    pub fn serves_guests(self) -> bool {
        !matches!(self, Freshness::TooStale { .. })
    }
}

/// Longest silence that still counts as fresh: the follower hears from the server at least
/// every blocking read (400 ms), so a few of those missed means something is wrong.
const FRESH_WITHIN: Duration = Duration::from_millis(1500);
/// How often the watchdog looks, so a transition is logged within this time.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// When the shared store was last heard from: written by the follower, read on every guest
/// request (one atomic load and a clock read).
pub(crate) struct Heartbeat {
    base: Instant,
    /// Milliseconds after `base`; 0 means never.
    last_heard_ms: AtomicU64,
    fresh_within: Duration,
    max_staleness: Duration,
}

impl Heartbeat {
    pub(crate) fn new(max_staleness: Duration) -> Heartbeat {
        Heartbeat {
            base: Instant::now(),
            last_heard_ms: AtomicU64::new(0),
            // A short max_staleness (tests, or an operator who wants it so) still leaves time
            // to be stale before refusing.
            fresh_within: FRESH_WITHIN.min(max_staleness / 2),
            max_staleness,
        }
    }

    /// The store answered just now.
    pub(crate) fn heard(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Never 0, which means "never heard".
        self.last_heard_ms.store(ms.max(1), Ordering::Release);
    }

    pub(crate) fn freshness(&self, now: Instant) -> Freshness {
        let heard_ms = self.last_heard_ms.load(Ordering::Acquire);
        let now_ms =
            u64::try_from(now.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX);
        let age = if heard_ms == 0 {
            // Never heard: as old as the process's view of the store.
            Duration::from_millis(now_ms).max(self.max_staleness + Duration::from_millis(1))
        } else {
            Duration::from_millis(now_ms.saturating_sub(heard_ms))
        };
        if age <= self.fresh_within {
            Freshness::Fresh
        } else if age <= self.max_staleness {
            Freshness::Stale { age }
        } else {
            Freshness::TooStale { age }
        }
    }

    pub(crate) fn max_staleness(&self) -> Duration {
        self.max_staleness
    }
}

/// Logs each change of freshness once: a warning when the store goes quiet, an error when
/// guests start being refused, and an info line when it answers again. `target` names the
/// store (redacted).
pub(crate) fn spawn_watchdog(heartbeat: Arc<Heartbeat>, target: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(WATCH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Freshness::Fresh;
        loop {
            ticks.tick().await;
            let now = heartbeat.freshness(Instant::now());
            match (last, now) {
                (Freshness::Fresh, Freshness::Stale { age }) => warn!(
                    store = %target,
                    silent_for_ms = age.as_millis(),
                    max_staleness_s = heartbeat.max_staleness().as_secs_f64(),
                    "state: no word from Redis; serving guests on the last-known revocations until max_staleness"
                ),
                (Freshness::Fresh | Freshness::Stale { .. }, Freshness::TooStale { age }) => {
                    error!(
                        store = %target,
                        silent_for_ms = age.as_millis(),
                        "state: Redis silent past max_staleness; refusing guests (503 temporarily_unavailable) until it answers (fail closed)"
                    )
                }
                (Freshness::Stale { .. } | Freshness::TooStale { .. }, Freshness::Fresh) => info!(
                    store = %target,
                    "state: Redis answers again; revocations resynced, serving guests"
                ),
                _ => {}
            }
            last = now;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_goes_from_fresh_to_stale_to_too_stale() {
        let heartbeat = Heartbeat::new(Duration::from_secs(60));
        let start = heartbeat.base;
        assert!(
            matches!(heartbeat.freshness(start), Freshness::TooStale { .. }),
            "never heard is too stale"
        );
        heartbeat.heard();
        let heard = start + Duration::from_millis(heartbeat.last_heard_ms.load(Ordering::Acquire));
        assert_eq!(
            heartbeat.freshness(heard + Duration::from_secs(1)),
            Freshness::Fresh
        );
        assert_eq!(
            heartbeat.freshness(heard + Duration::from_secs(2)),
            Freshness::Stale {
                age: Duration::from_secs(2)
            }
        );
        assert_eq!(
            heartbeat.freshness(heard + Duration::from_secs(60)),
            Freshness::Stale {
                age: Duration::from_secs(60)
            }
        );
        let past = heartbeat.freshness(heard + Duration::from_secs(61));
        assert!(!past.serves_guests(), "{past:?}");
    }

    #[test]
    fn a_short_max_staleness_keeps_a_stale_phase() {
        let heartbeat = Heartbeat::new(Duration::from_secs(1));
        heartbeat.heard();
        let heard =
            heartbeat.base + Duration::from_millis(heartbeat.last_heard_ms.load(Ordering::Acquire));
        assert_eq!(
            heartbeat.freshness(heard + Duration::from_millis(400)),
            Freshness::Fresh
        );
        assert!(matches!(
            heartbeat.freshness(heard + Duration::from_millis(800)),
            Freshness::Stale { .. }
        ));
    }
}
