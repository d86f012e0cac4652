//! The accept loop: bounded connection count, one task per connection, and a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

use super::connection::{Listening, http_builder, serve_connection};
use crate::config::Limits;
use crate::gateway::Gateway;

/// How long a stopping server waits for connections to finish their requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Accepts connections until `shutdown` turns true, then waits (up to [`SHUTDOWN_GRACE`]) for
/// every open connection to finish its requests in flight and close.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gateway: Arc<Gateway>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let max_connections = limits.max_connections;
    let listening = Arc::new(Listening {
        tls,
        gateway,
        builder: http_builder(&limits),
        limits,
    });
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks so the set does not grow with every connection.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = shutdown.changed() => break,
        };
        let (stream, peer): (_, SocketAddr) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Usually EMFILE/ENFILE: back off instead of spinning on a full descriptor table.
                error!(%error, "accept failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            warn!(%peer, limit = max_connections, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            Arc::clone(&listening),
            Arc::new(slot),
            shutdown.clone(),
        ));
    }
    drop(listener);
    // Every connection saw the same shutdown signal and is finishing gracefully.
    let open = connections.len();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => info!(connections = open, "all connections finished"),
        Err(_) => warn!(
            still_open = connections.len(),
            grace = ?SHUTDOWN_GRACE,
            "connections still open after the shutdown grace; closing them"
        ),
    }
}
