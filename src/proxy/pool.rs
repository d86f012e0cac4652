//! One worker's idle keep-alive connections to the upstream, to reuse.
//!
//! A connection comes back when its response body has been read to its end and nothing followed
//! it ([`super::upstream_h1::body`]), so the list holds idle connections only. Entries that
//! closed, received anything while idle, or sat unused for longer than `pool_idle_timeout` are
//! dropped when the list is looked at and by a periodic sweep, which closes their sockets.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::upstream_h1::UpstreamConnection;
use crate::coarse_clock;

/// Where a connection goes: the upstream's host (without IPv6 brackets) and port. The host is
/// shared, so naming the destination of each exchange copies no text. A connection keeps the one
/// it was opened with (`UpstreamConnection::destination`): a kept connection's exchange then
/// neither clones nor drops it, as the host's count is shared by every worker's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub host: Arc<str>,
    pub port: u16,
}

struct Idle {
    connection: Box<UpstreamConnection>,
    /// When this connection was put back.
    since: Instant,
}

#[derive(Default)]
struct IdleList {
    entries: Vec<Idle>,
    /// The `pool_idle_timeout` of the last snapshot that used the pool, for the sweep.
    idle_timeout: Option<Duration>,
}

/// The idle list of one worker. Cloning shares it.
#[derive(Clone, Default)]
pub struct IdleConnections {
    list: Arc<Mutex<IdleList>>,
}

impl IdleConnections {
    /// A connection to `host:port` that is ready for a request, if there is one. The most
    /// recently returned one is preferred (its socket and buffers are warm). `now` is the
    /// caller's reading of the clock.
    pub fn take(
        &self,
        destination: &Destination,
        idle_timeout: Duration,
        now: Instant,
    ) -> Option<Box<UpstreamConnection>> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.idle_timeout = Some(idle_timeout);
        let mut index = list.entries.len();
        while index > 0 {
            index -= 1;
            let entry = &mut list.entries[index];
            if entry.connection.destination() != destination {
                continue;
            }
            let usable = usable(entry, now, idle_timeout);
            let entry = list.entries.swap_remove(index);
            if usable {
                return Some(entry.connection);
            }
        }
        None
    }

    /// Keeps `connection` for later requests to its destination.
    pub fn put(&self, connection: Box<UpstreamConnection>) {
        let idle = Idle {
            connection,
            // Compared with an idle timeout of seconds: the coarse clock's tick is nothing to it.
            since: coarse_clock::now(),
        };
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.entries.push(idle);
    }

    /// Drops connections that closed or have been idle too long.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(idle_timeout) = list.idle_timeout else {
            return;
        };
        list.entries
            .retain(|entry| usable(entry, now, idle_timeout));
    }

    /// How many idle connections the list holds.
    pub fn len(&self) -> usize {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether the list holds no connection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sweeps every `period` for as long as the worker runs.
    pub async fn sweep_every(self, period: Duration) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.sweep();
        }
    }
}

/// Whether an idle connection may carry the next request.
fn usable(entry: &Idle, now: Instant, idle_timeout: Duration) -> bool {
    now.saturating_duration_since(entry.since) < idle_timeout && entry.connection.is_quiet()
}
