//! The runtime shape of the public listener: one thread per worker, each with its own
//! current-thread tokio runtime, its own listening socket and its own upstream pool, so that a
//! request and its upstream exchange run on one thread, in the client connection's task. A
//! multi-thread runtime hands requests between threads and pays for it in futex wake-ups and
//! context switches.
//!
//! What the workers share is what must be global: the gateway snapshot (hot reload), the TLS
//! acceptor snapshot, the connection limit, metrics and the access log. Each worker accepts,
//! serves and drains its own connections, except that a worker with more than another hands new
//! ones over ([`super::balance`]); [`serve`] returns when all of them have.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

use crate::loopback_congestion::LoopbackCongestion;

use super::balance::Balance;
use super::listener::{WorkerPlace, serve_worker};
use super::slots::PerAddress;
use crate::access_log::AccessLog;
use crate::config::Limits;
use crate::gateway::Gateway;
use crate::reload::Snapshot;

/// Pending connections each listening socket queues before the kernel refuses more (tokio's
/// own `TcpListener::bind` uses the same).
const BACKLOG: u32 = 1024;

/// How long a stopped worker's runtime waits for blocking work it started to finish.
const RUNTIME_STOP: Duration = Duration::from_secs(1);

/// `[server] workers`, or one per available core.
pub fn worker_count(configured: Option<NonZeroUsize>) -> NonZeroUsize {
    configured
        .or_else(|| std::thread::available_parallelism().ok())
        .unwrap_or(NonZeroUsize::MIN)
}

/// The listening sockets of the public listener, one per worker, not yet tied to a runtime.
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
}

impl Listeners {
    /// Binds `count` sockets to `addr` with `SO_REUSEPORT`, so that the kernel spreads new
    /// connections over the workers. With port 0 the claim below picks the port and the workers'
    /// sockets bind to it. Must be called inside a tokio runtime (the sockets pass through its reactor).
    ///
    /// `SO_REUSEPORT` would also let a second process of the same user join the port (a second
    /// casegate given the same `listen`), and the kernel would then hand it part of the guests,
    /// with its own state: revocations made on one would not be seen on the other. So the
    /// address is first claimed by a socket without it, which fails if anything listens there,
    /// and only then is the worker group bound (see [`claim_alone`]).
    pub fn bind(addr: SocketAddr, count: NonZeroUsize) -> io::Result<Listeners> {
        let local_addr = claim_alone(addr)?;
        let mut sockets = Vec::with_capacity(count.get());
        for _ in 0..count.get() {
            sockets.push(bind_reuseport(local_addr)?.into_std()?);
        }
        Ok(Listeners {
            sockets,
            local_addr,
        })
    }

    /// Shares one socket the caller bound between `count` workers: each gets a duplicate of the
    /// descriptor, and whichever worker is free accepts the next connection.
    pub fn shared(listener: TcpListener, count: NonZeroUsize) -> io::Result<Listeners> {
        let local_addr = listener.local_addr()?;
        let first = listener.into_std()?;
        let mut sockets = Vec::with_capacity(count.get());
        for _ in 1..count.get() {
            sockets.push(first.try_clone()?);
        }
        sockets.push(first);
        Ok(Listeners {
            sockets,
            local_addr,
        })
    }

    /// The workers' sockets.
    pub fn sockets(&self) -> &[std::net::TcpListener] {
        &self.sockets
    }

    /// The bound address (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// A socket of `addr`'s family with `SO_REUSEADDR`, which only lets a restart bind over its
/// predecessor's connections in TIME_WAIT, never over a listening socket.
fn reusing_address(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// Binds `addr` without `SO_REUSEPORT` for a moment, and answers the address
/// (the port the kernel chose for port 0). Fails with `AddrInUse`, naming the reason, when
/// anything already listens there, a group of `SO_REUSEPORT` sockets included. Between this
/// socket closing and the workers' binding, a second process starting in the same instant could
/// still slip in; a process already running cannot.
fn claim_alone(addr: SocketAddr) -> io::Result<SocketAddr> {
    // Not SO_REUSEPORT.
    let socket = reusing_address(addr)?;
    let in_use = |error: io::Error| match error.kind() {
        io::ErrorKind::AddrInUse => io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is already listening there (another casegate with the same \
             `listen`?); casegate does not share its port",
        ),
        _ => error,
    };
    // Binding alone meets the conflict; listening would accept connections only to reset them.
    socket.bind(addr).map_err(in_use)?;
    socket.local_addr()
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = reusing_address(addr)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The workers' runtimes, built before anything is spawned so that a failure stops the start.
pub struct Runtimes(Vec<Runtime>);

impl Drop for Runtimes {
    /// A start that fails after building them drops them inside the caller's async context,
    /// where a runtime's ordinary drop (it waits for its blocking threads) would panic.
    fn drop(&mut self) {
        for runtime in self.0.drain(..) {
            runtime.shutdown_background();
        }
    }
}

impl Runtimes {
    pub fn build(count: usize) -> io::Result<Runtimes> {
        (0..count)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            })
            .collect::<io::Result<Vec<_>>>()
            .map(Runtimes)
    }
}

/// What every worker shares.
pub struct Shared {
    pub tls: Option<Arc<Snapshot<TlsAcceptor>>>,
    pub gateway: Arc<Snapshot<Gateway>>,
    pub access_log: Arc<AccessLog>,
    pub limits: Limits,
    pub shutdown_grace: Duration,
    /// `[server] io_uring`: whether workers batch their small writes (`src/write_batch.rs`).
    pub io_uring: bool,
    /// `[server] loopback_congestion_control`, for the workers' connections with this host.
    pub loopback_congestion: LoopbackCongestion,
}

/// Starts one thread per listener and returns once every worker has stopped: after `shutdown`
/// turns true (or its sender is dropped), each stops accepting and drains its connections
/// within `shutdown_grace`, all at the same time.
pub async fn serve(
    listeners: Listeners,
    runtimes: Runtimes,
    shared: Shared,
    shutdown: watch::Receiver<bool>,
) {
    let shared = Arc::new(shared);
    // max_connections holds across workers: one pool of slots.
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections));
    let per_address = Arc::new(PerAddress::new(shared.limits.max_connections_per_address));
    let mut stopped = Vec::new();
    let mut runtimes = runtimes;
    let runtimes = std::mem::take(&mut runtimes.0);
    let (balance, inboxes) = Balance::new(listeners.sockets.len().min(runtimes.len()));
    shared
        .gateway
        .current()
        .metrics()
        .count_worker_connections_from(balance.clone());
    let workers = listeners.sockets.into_iter().zip(runtimes).zip(inboxes);
    for (index, ((socket, runtime), inbox)) in workers.enumerate() {
        let place = WorkerPlace {
            index,
            balance: Arc::clone(&balance),
            inbox,
        };
        let (done, worker_stopped) = oneshot::channel::<()>();
        let (shared, slots, per_address, shutdown) = (
            Arc::clone(&shared),
            Arc::clone(&slots),
            Arc::clone(&per_address),
            shutdown.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("casegate-worker-{index}"))
            .spawn(move || {
                let recent_blocks = crate::allocator::keep_recent_blocks();
                runtime.block_on(async move {
                    match TcpListener::from_std(socket) {
                        Ok(listener) => {
                            serve_worker(listener, place, &shared, slots, per_address, shutdown)
                                .await
                        }
                        Err(error) => error!(%error, worker = index, "worker cannot listen"),
                    }
                });
                // Upstream connections and tunnels still open end with the runtime.
                runtime.shutdown_timeout(RUNTIME_STOP);
                drop(recent_blocks);
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => stopped.push(worker_stopped),
            Err(error) => error!(%error, worker = index, "cannot start a worker thread"),
        }
    }
    // Says what `[server] workers` (or its default, the core count) came to on this host.
    info!(workers = stopped.len(), "workers serving");
    for worker in stopped {
        // An error means the worker's thread ended without saying so (a panic): stopped too.
        let _ = worker.await;
    }
}
