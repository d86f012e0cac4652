//! The accept loop: bounded connection count, one task per connection, and a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{error, warn};

use super::connection::{http_builder, serve_connection};
use crate::config::Limits;
use crate::gateway::Gateway;

/// Accepts connections until `shutdown` turns true, then asks every open connection to finish its
/// requests in flight and close.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gateway: Arc<Gateway>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(http_builder(&limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
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
            warn!(%peer, limit = limits.max_connections, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let connection = serve_connection(
            stream,
            peer,
            tls.clone(),
            Arc::clone(&gateway),
            Arc::clone(&builder),
            Arc::clone(&limits),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            connection.await;
            drop(slot);
        });
    }
}
