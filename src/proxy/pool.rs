//! One worker's idle keep-alive connections to the upstream, to reuse.
//!
//! A connection comes back when its response body has been read to its end and nothing followed
//! it ([`super::upstream_h1::body`]), so the list holds idle connections only. Entries that
//! closed, received anything while idle, or sat unused for longer than `pool_idle_timeout` are
//! dropped when the list is looked at and by a periodic sweep, which closes their sockets.
//!
//! A connection is also retired, when it comes back, once it has carried `pool_max_requests`
//! responses or was opened `pool_max_age` ago (nginx's `keepalive_requests` and `keepalive_time`
//! for its upstreams, with the same defaults). Without that, connections opened in one burst
//! stay with whichever of the app's workers accepted them for as long as traffic keeps them
//! busy: 62 of 64 on one of two workers was seen (benches/HISTORY.md, stop 36). Reopened one at a
//! time, they are spread again by the app's accept.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::upstream_h1::UpstreamConnection;
use super::worker_parks::{WorkerParks, waited_between};
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

/// How long, and for how much, an upstream connection is kept (`[upstream] pool_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// Unused for this long, a connection is closed.
    pub idle_timeout: Duration,
    /// After this many responses, a connection is closed rather than kept.
    pub max_requests: u32,
    /// Opened this long ago, a connection is closed rather than kept.
    pub max_age: Duration,
}

struct Idle {
    connection: Box<UpstreamConnection>,
    /// When this connection was put back.
    since: Instant,
    /// How many times the worker had parked when it was put back: once that has moved, tokio's
    /// readiness has seen everything that reached the socket before the worker's last wait.
    parks: Option<u64>,
}

#[derive(Default)]
struct IdleList {
    entries: Vec<Idle>,
    /// The limits of the last snapshot that used the pool, for `put` and the sweep.
    limits: Option<PoolLimits>,
    /// The worker's park count, read on its thread as connections come and go.
    parks: WorkerParks,
}

/// The idle list of one worker. Cloning shares it.
#[derive(Clone, Default)]
pub struct IdleConnections {
    list: Arc<Mutex<IdleList>>,
}

impl IdleConnections {
    /// A connection to `host:port` that is ready for a request, if there is one. One put back
    /// before the worker last waited for events is preferred: tokio's readiness speaks for it,
    /// where any other is asked the kernel about (`MSG_PEEK`, a system call). Under load a worker
    /// runs for a while without waiting, and about half the connections it took were put back
    /// since (0.45 peeks a request in the plain row of `benches/load/compare.sh`, stop 66).
    /// Among those alike, the last in the list (most often the most recently returned, whose
    /// socket and buffers are warm). `now` is the caller's reading of the clock.
    pub fn take(
        &self,
        destination: &Destination,
        limits: PoolLimits,
        now: Instant,
    ) -> Option<Box<UpstreamConnection>> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.limits = Some(limits);
        let parks = list.parks.count();
        loop {
            // The park counts first: they sit in the list, the destination behind a pointer.
            let index = list
                .entries
                .iter()
                .rposition(|entry| {
                    waited_between(entry.parks, parks)
                        && entry.connection.destination() == destination
                })
                .or_else(|| {
                    list.entries
                        .iter()
                        .rposition(|entry| entry.connection.destination() == destination)
                })?;
            let entry = list.entries.swap_remove(index);
            if usable(&entry, now, &limits, parks) {
                return Some(entry.connection);
            }
        }
    }

    /// Keeps `connection` for later requests to its destination, unless it has carried or
    /// lived its fill (then it is dropped, which closes it).
    pub fn put(&self, connection: Box<UpstreamConnection>) {
        // Compared with durations of seconds: the coarse clock's tick is nothing to them.
        let now = coarse_clock::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if list
            .limits
            .is_some_and(|limits| worn_out(&connection, now, &limits))
        {
            // Let go of the list before the connection is dropped: closing it is a system call.
            drop(list);
            return;
        }
        let parks = list.parks.count();
        list.entries.push(Idle {
            connection,
            since: now,
            parks,
        });
    }

    /// Drops connections that closed, have been idle too long or are past their age.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(limits) = list.limits else {
            return;
        };
        let parks = list.parks.count();
        list.entries
            .retain(|entry| usable(entry, now, &limits, parks));
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

/// Whether an idle connection may carry the next request. The limits are looked at again here,
/// not only in `put`: a reload may have lowered them while the connection waited. `parks` is the
/// worker's park count now.
fn usable(entry: &Idle, now: Instant, limits: &PoolLimits, parks: Option<u64>) -> bool {
    now.saturating_duration_since(entry.since) < limits.idle_timeout
        && !worn_out(&entry.connection, now, limits)
        && entry
            .connection
            .is_quiet(waited_between(entry.parks, parks))
}

/// Whether a connection has carried `max_requests` responses or lived `max_age`.
fn worn_out(connection: &UpstreamConnection, now: Instant, limits: &PoolLimits) -> bool {
    connection.responses() >= limits.max_requests
        || now.saturating_duration_since(connection.opened()) >= limits.max_age
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;
    use crate::direct_tcp::kernel_asked;
    use crate::proxy::worker_parks::wait_for_events;

    const LIMITS: PoolLimits = PoolLimits {
        idle_timeout: Duration::from_secs(60),
        max_requests: 100,
        max_age: Duration::from_secs(3600),
    };

    /// A listening socket standing for the upstream, and its address as a destination.
    pub(crate) fn upstream() -> (std::net::TcpListener, Destination) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let destination = Destination {
            host: "127.0.0.1".into(),
            port: listener.local_addr().unwrap().port(),
        };
        (listener, destination)
    }

    /// A new connection to the upstream, and the upstream's end of it.
    pub(crate) async fn connection_to(
        listener: &std::net::TcpListener,
        destination: &Destination,
    ) -> (Box<UpstreamConnection>, std::net::TcpStream) {
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().unwrap();
        (UpstreamConnection::new(stream, destination.clone()), peer)
    }

    /// A pool holding one open connection, and the upstream's end of it.
    async fn pool_with_a_connection() -> (IdleConnections, Destination, std::net::TcpStream) {
        let (listener, destination) = upstream();
        let (connection, peer) = connection_to(&listener, &destination).await;
        let idle = IdleConnections::default();
        idle.put(connection);
        (idle, destination, peer)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_kernel_is_asked_about_a_connection_only_before_the_worker_has_waited() {
        let (idle, destination, _peer) = pool_with_a_connection().await;
        // Taken again before the worker ran out of work: tokio's readiness may be behind.
        let asked = kernel_asked();
        let connection = idle.take(&destination, LIMITS, Instant::now());
        assert_eq!(kernel_asked(), asked + 1);
        idle.put(connection.expect("a quiet connection is reused"));
        // After a wait for events, tokio's readiness has seen what came before it.
        wait_for_events().await;
        let asked = kernel_asked();
        assert!(idle.take(&destination, LIMITS, Instant::now()).is_some());
        assert_eq!(kernel_asked(), asked, "the kernel was asked after a wait");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_put_back_before_the_worker_waited_is_taken_before_a_later_one() {
        let (listener, destination) = upstream();
        let idle = IdleConnections::default();
        let (seen, seen_peer) = connection_to(&listener, &destination).await;
        idle.put(seen);
        wait_for_events().await;
        // Put back since the wait, last in the list: tokio's readiness may be behind for it.
        let (recent, _recent_peer) = connection_to(&listener, &destination).await;
        idle.put(recent);
        let asked = kernel_asked();
        let taken = idle
            .take(&destination, LIMITS, Instant::now())
            .expect("a quiet connection is reused");
        assert_eq!(
            kernel_asked(),
            asked,
            "the kernel was asked about a connection"
        );
        assert_eq!(
            taken.into_parts().0.get_ref().local_addr().unwrap(),
            seen_peer.peer_addr().unwrap(),
            "the connection put back after the wait was taken first"
        );
        // Only the later one is left, and the kernel is asked about it.
        assert!(idle.take(&destination, LIMITS, Instant::now()).is_some());
        assert_eq!(kernel_asked(), asked + 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stray_bytes_on_an_idle_connection_keep_it_from_reuse_either_way() {
        for wait in [false, true] {
            let (idle, destination, mut peer) = pool_with_a_connection().await;
            peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                .unwrap();
            std::thread::sleep(Duration::from_millis(50));
            if wait {
                wait_for_events().await;
            }
            assert!(
                idle.take(&destination, LIMITS, Instant::now()).is_none(),
                "a connection with stray bytes was reused (after a wait: {wait})"
            );
            assert!(idle.is_empty(), "the connection was not dropped");
        }
    }
}
