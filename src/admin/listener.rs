//! The admin API's own listener: plain HTTP/1.1 on `admin.listen`, a small connection cap, a
//! header read timeout (which also closes idle keep-alive connections and clients that never send
//! a byte), and a graceful stop on the gateway's shutdown signal.
//!
//! It is separate from the public listener on purpose: the admin port is meant for a loopback or
//! internal address, and nothing about it (TLS, limits, pages) should be shared with what guests see.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, info};

use super::AdminApi;
use crate::server::listener::{drain, next_connection};

/// Admin clients are a few applications and operators, not browsers.
pub const MAX_CONNECTIONS: usize = 64;
/// For the head of every request, and for the wait between keep-alive requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Admin requests are a line, a few headers and a small JSON body; hyper's floor is 8 KiB.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long a stopping listener waits for requests in flight (a revoke waiting on its fsync).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves the admin API on `listener` until `shutdown` turns true, then lets requests in flight
/// finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, api: Arc<AdminApi>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    while let Some((stream, peer, slot)) =
        next_connection(&listener, &slots, &mut connections, &mut shutdown).await
    {
        connections.spawn(serve_connection(
            stream,
            peer,
            Arc::clone(&api),
            slot,
            shutdown.clone(),
        ));
    }
    drop(listener);
    drain("admin", connections, SHUTDOWN_GRACE).await;
    info!("admin API stopped");
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    api: Arc<AdminApi>,
    _slot: OwnedSemaphorePermit,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(request, peer).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    debug!(%peer, %error, "admin connection ended with an error");
                }
                return;
            }
            changed = shutdown.changed(), if !shutting_down => {
                // A closed channel means the gateway is gone: stop the same way.
                let _ = changed;
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
