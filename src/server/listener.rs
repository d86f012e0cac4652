//! A worker's accept loop: bounded connection count, one task per connection, and a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::balance::{Balance, Handed, Inbox};
use super::connection::{Listening, http_builders, serve_connection};
use super::slots::{ConnectionSlot, PerAddress};
use super::workers::Shared;
use crate::proxy::client::UpstreamPool;
use crate::reload::WorkerSnapshot;

/// One worker's accept loop: accepts connections until `shutdown` turns true, then waits (up to
/// `[server] shutdown_grace`) for every connection it opened to finish its requests in flight
/// and close. `slots` (`max_connections`) and `per_address` (`max_connections_per_address`) are
/// shared by all workers, so the limits hold for the process, not per thread.
pub async fn serve_worker(
    listener: TcpListener,
    worker: WorkerPlace,
    shared: &Shared,
    slots: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    mut shutdown: watch::Receiver<bool>,
) {
    let WorkerPlace {
        index,
        balance,
        mut inbox,
    } = worker;
    // This worker's small socket writes, sent together (src/write_batch.rs); ends with it.
    // Switched off, io_uring is never even set up.
    let _write_batch = shared.io_uring.then(crate::write_batch::install).flatten();
    let listening = Arc::new(Listening {
        tls: shared.tls.clone(),
        // The worker's own views of what every worker shares: the handles its requests take
        // are counted on lines only this thread writes.
        gateway: Arc::new(WorkerSnapshot::new(Arc::clone(&shared.gateway))),
        builders: http_builders(&shared.limits),
        limits: shared.limits.clone(),
        access_log: Arc::new(shared.access_log.worker_handle()),
        upstream: UpstreamPool::new(
            Arc::clone(shared.gateway.current().metrics()),
            shared.loopback_congestion.clone(),
        ),
        loopback_congestion: shared.loopback_congestion.clone(),
    });
    listening.upstream.spawn_sweeper();
    // The worker's connections wait on a shutdown signal of the worker's own, relayed from the
    // process's: every connection reads and waits on its signal between requests, and a signal
    // shared by every worker would move its lock between the cores on each request.
    let (worker_shutdown, connection_shutdown) = watch::channel(*shutdown.borrow());
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer, slot) = tokio::select! {
            // Handed over by another worker: admitted there, counted here already.
            Some(handed) = inbox.recv() => match TcpStream::from_std(handed.stream) {
                Ok(stream) => (stream, handed.peer, handed.slot),
                Err(error) => {
                    error!(%error, peer = %handed.peer, "cannot take over a connection from another worker; closing it");
                    continue;
                }
            },
            accepted = next_connection(&listener, &slots, &mut connections, &mut shutdown) => {
                let Some((stream, peer, slot)) = accepted else { break };
                let Some(slot) = admit(&listening, &per_address, peer, slot) else {
                    drop(stream);
                    continue;
                };
                let Some((stream, slot)) = keep_or_hand_over(&balance, index, stream, peer, slot) else {
                    continue;
                };
                (stream, peer, slot)
            }
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            Arc::clone(&listening),
            Arc::new(slot),
            connection_shutdown.clone(),
        ));
    }
    worker_shutdown.send_replace(true);
    // Closed before draining, so new connections are refused while old ones finish.
    drop(listener);
    // Every connection saw the same shutdown signal and is finishing gracefully.
    drain("public", connections, shared.shutdown_grace).await;
}

/// A worker's place among the workers: its number, the balance of their connections, and where
/// it receives the connections handed to it.
pub struct WorkerPlace {
    pub index: usize,
    pub balance: Arc<Balance>,
    pub inbox: Inbox,
}

/// The connection's slot with its address's (`max_connections_per_address`) taken too, or
/// `None`, said in the log, when its address has no slot left. A trusted proxy carries many
/// clients and is not capped.
fn admit(
    listening: &Listening,
    per_address: &PerAddress,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
) -> Option<ConnectionSlot> {
    if listening.gateway.current().is_trusted_proxy(peer.ip()) {
        return Some(ConnectionSlot::new(slot, None));
    }
    let Some(address_slot) = per_address.admit(peer.ip()) else {
        if let Some(unlogged) = per_address.refused() {
            let limit = listening.limits.max_connections_per_address;
            warn!(%peer, limit, also_refused_since_last_warning = unlogged, "connection limit per address reached; closing new connection");
        }
        return None;
    };
    Some(ConnectionSlot::new(slot, Some(address_slot)))
}

/// The connection, counted on this worker, when this worker is to serve it; `None` once it is
/// handed to a worker with fewer connections ([`Balance`]). One the other worker no longer takes
/// (it has stopped) is served here; one whose socket cannot leave this reactor is closed, said in
/// the log.
fn keep_or_hand_over(
    balance: &Arc<Balance>,
    index: usize,
    stream: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
) -> Option<(TcpStream, ConnectionSlot)> {
    let serving = balance.serving_worker(index);
    if serving == index {
        return Some((stream, slot.counted_on(balance.count(index))));
    }
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(error) => {
            warn!(%error, %peer, "cannot hand a connection to another worker; closing it");
            return None;
        }
    };
    let handed = Handed {
        stream,
        peer,
        slot: slot.counted_on(balance.count(serving)),
    };
    match balance.hand_to(serving, handed) {
        Ok(()) => None,
        Err(Handed { stream, slot, .. }) => {
            let slot = slot.counted_on(balance.count(index));
            match TcpStream::from_std(stream) {
                Ok(stream) => Some((stream, slot)),
                Err(error) => {
                    warn!(%error, %peer, "cannot take back a connection refused by a stopped worker; closing it");
                    None
                }
            }
        }
    }
}

/// The next accepted connection that gets one of `slots`, or `None` once `shutdown` turns true.
/// A connection over the limit is closed at once, with a warning; connection tasks that have
/// finished are reaped from `connections` while waiting, so the set does not grow forever.
pub async fn next_connection<T: 'static>(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    connections: &mut JoinSet<T>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = shutdown.changed() => return None,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Usually EMFILE/ENFILE: back off instead of spinning on a full descriptor table.
                error!(%error, "accept failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match Arc::clone(slots).try_acquire_owned() {
            Ok(slot) => return Some((stream, peer, slot)),
            Err(_) => {
                let local = listener.local_addr().ok();
                warn!(%peer, ?local, "connection limit reached; closing new connection");
                drop(stream);
            }
        }
    }
}

/// Waits (up to `grace`) for every connection task to end, and says how that went. `listener`
/// ("public", "admin") names whose connections these are in the log.
pub async fn drain<T: 'static>(
    listener: &'static str,
    mut connections: JoinSet<T>,
    grace: Duration,
) {
    let open = connections.len();
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => info!(listener, connections = open, "all connections finished"),
        Err(_) => warn!(
            listener,
            still_open = connections.len(),
            ?grace,
            "connections still open after the shutdown grace; closing them"
        ),
    }
}
