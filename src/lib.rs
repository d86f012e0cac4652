//! casegate: an edge gateway that lets a legacy case application share one case, read-only,
//! through a signed link. See README.md for the request path and a map of the code.
//!
//! [`start`] opens the share state store, builds the gateway from a validated [`config::Config`],
//! binds its listener and serves until [`RunningGateway::shutdown`]; the command line and the
//! tests both go through it.

pub mod access_log;
pub mod admin;
// Built when fuzzing too, so that its callers need no cfg of their own; only its registration as
// the global allocator (below) is left out, and with it every use of its allocation path.
#[cfg_attr(fuzzing, allow(dead_code))]
mod allocator;
mod ascii_case;
pub mod build_info;
mod caught_panic;
pub mod clock;
mod coarse_clock;
pub mod config;
mod constant_time;
pub mod demo;
pub mod direct_tcp;
/// Entry points for `fuzz/` and `tests/properties.rs`; not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
mod lazy_timer;
pub mod loopback_congestion;
pub mod mail;
pub mod metrics;
pub mod pages;
pub mod panic_report;
pub mod policy;
pub mod process_log;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod share;
pub mod state;
pub mod verify;
pub mod write_batch;

/// mimalloc rather than glibc's malloc (`allocator` says why and how). Not when fuzzing: the
/// sanitizers need to see every allocation through their own malloc.
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: allocator::Mimalloc = allocator::Mimalloc;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tracing::{error, info};

use crate::access_log::AccessLog;
use crate::admin::AdminApi;
use crate::config::StateBackend;
use crate::gateway::{BuildError, Gateway};
use crate::mail::Mailer;
use crate::reload::{Reloader, Snapshot};
use crate::server::tls::{self, TlsError};
use crate::server::workers::{Listeners, Runtimes};
use crate::state::{OpenError, StateSettings, StateStore};
use crate::verify::{CodeStore, MemoryCodeStore, RedisCodeStore};

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    /// The state store could not be opened (its message names the file).
    State(OpenError),
    /// The task opening the store did not finish (it panicked or the runtime is shutting down).
    StateTask(JoinError),
    Build(BuildError),
    /// The `[mail]` relay's TLS settings could not be built.
    Mail(crate::mail::MailError),
    Tls(TlsError),
    /// The `[log] access` file could not be opened.
    AccessLog(access_log::OpenError),
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A worker's async runtime could not be built.
    Runtime(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The store's own message already says "state:" and names the file.
            StartError::State(error) => write!(f, "{error}"),
            StartError::StateTask(error) => write!(f, "state: opening the store failed: {error}"),
            StartError::Build(error) => write!(f, "{error}"),
            StartError::Mail(error) => write!(f, "mail: {error}"),
            StartError::Tls(error) => write!(f, "TLS: {error}"),
            StartError::AccessLog(error) => write!(f, "{error}"),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Runtime(error) => write!(f, "cannot start a worker's runtime: {error}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::State(error) => Some(error),
            StartError::StateTask(error) => Some(error),
            StartError::Build(error) => Some(error),
            StartError::Mail(error) => Some(error),
            StartError::Tls(error) => Some(error),
            StartError::AccessLog(error) => Some(error),
            StartError::Bind { source, .. } => Some(source),
            StartError::Runtime(error) => Some(error),
        }
    }
}

/// A gateway serving on its listener.
pub struct RunningGateway {
    /// The bound address (the real port when the config asked for port 0).
    pub local_addr: SocketAddr,
    /// The admin API's bound address, when the config has an `[admin]` section.
    pub admin_addr: Option<SocketAddr>,
    store: Arc<StateStore>,
    /// Shared by the listener, the gateway and the admin API's `/metrics`.
    metrics: Arc<metrics::Metrics>,
    access_log: Arc<AccessLog>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// The admin API's accept loop, when it is served.
    admin_task: Option<JoinHandle<()>>,
    maintenance: JoinHandle<()>,
    /// Re-reads the config file; `None` when started from a config without one.
    reloader: Option<Arc<Reloader>>,
}

impl RunningGateway {
    /// The share state the gateway enforces: revocations, share records, uses.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    /// Everything the gateway counts, as `GET /metrics` renders it.
    pub fn metrics(&self) -> &Arc<metrics::Metrics> {
        &self.metrics
    }

    /// Reloads the config file the gateway was started from ([`start_from_file`]).
    pub fn reloader(&self) -> Option<&Arc<Reloader>> {
        self.reloader.as_ref()
    }

    /// The access log, for its count of dropped lines.
    pub fn access_log(&self) -> &Arc<AccessLog> {
        &self.access_log
    }

    /// Stops accepting, asks open connections to finish what is in flight, and returns once the
    /// accept loop has ended and the use records still in memory are written.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        // Revokes in flight finish (their writes are durable) before the store's last flush.
        if let Some(admin_task) = self.admin_task {
            let _ = admin_task.await;
        }
        let _ = self.maintenance.await;
        // Maintenance flushes as it ends; this catches uses recorded by requests that finished
        // after it did.
        if let Err(error) = self.store.flush().await {
            error!(%error, "cannot write the last use records at shutdown");
        }
        // Every connection has ended, so every line it will log is shelved.
        self.access_log.close().await;
    }
}

/// What the store needs from the config. A revocation may be forgotten once every credential it
/// could refuse has expired anyway: links live at most `max_ttl` (plus the tolerated clock skew).
pub fn state_settings(config: &config::Config) -> StateSettings {
    let retention = config.links.max_ttl.saturating_add(config.links.clock_skew);
    StateSettings {
        path: config.state.path.clone(),
        use_flush_interval: config.state.use_flush_interval,
        compact_after_bytes: config.state.compact_after_bytes,
        retention_secs: i64::try_from(retention.as_secs()).unwrap_or(i64::MAX),
    }
}

/// Opens the configured store: replays the embedded journal, or connects to Redis and reads the
/// shared state from it.
async fn open_store(config: &config::Config) -> Result<StateStore, StartError> {
    let settings = state_settings(config);
    match &config.state.backend {
        // Opening replays the journal: blocking file I/O, kept off the async workers.
        StateBackend::Embedded => tokio::task::spawn_blocking(move || StateStore::open(&settings))
            .await
            .map_err(StartError::StateTask)?
            .map_err(StartError::State),
        StateBackend::Redis(redis) => StateStore::open_redis(&settings, redis)
            .await
            .map_err(StartError::State),
    }
}

/// Where verification codes, their rate-limit counters and invitation cooldowns live: beside the
/// shared state when that is Redis (so a code mailed by one replica is accepted by another and
/// limits hold across replicas), else in this process.
async fn open_code_store(config: &config::Config) -> Result<Arc<dyn CodeStore>, StartError> {
    match &config.state.backend {
        StateBackend::Embedded => Ok(Arc::new(MemoryCodeStore::new())),
        StateBackend::Redis(redis) => {
            let connection = state::redis::connect(redis)
                .await
                .map_err(|error| StartError::State(OpenError::Redis(error)))?;
            Ok(Arc::new(RedisCodeStore::new(
                connection,
                redis.key_prefix.clone(),
            )))
        }
    }
}

/// Builds the gateway from a validated config, binds the listener (one `SO_REUSEPORT` socket per
/// worker) and starts serving.
pub async fn start(config: &config::Config) -> Result<RunningGateway, StartError> {
    serve_on(bind_public(config)?, config, None).await
}

/// Like [`start`], for a config read from `path`: SIGHUP and `POST /v1/reload` re-read it.
pub async fn start_from_file(
    config: &config::Config,
    path: &Path,
) -> Result<RunningGateway, StartError> {
    serve_on(bind_public(config)?, config, Some(path)).await
}

/// Like [`start`], on a listener the caller bound (the demo binds first to learn its port); the
/// workers share it.
pub async fn start_on(
    listener: TcpListener,
    config: &config::Config,
) -> Result<RunningGateway, StartError> {
    let addr = config.server.listen;
    let workers = server::workers::worker_count(config.server.workers);
    let listeners =
        Listeners::shared(listener, workers).map_err(|source| StartError::Bind { addr, source })?;
    serve_on(listeners, config, None).await
}

/// The public listener's sockets, one per worker.
fn bind_public(config: &config::Config) -> Result<Listeners, StartError> {
    let addr = config.server.listen;
    let workers = server::workers::worker_count(config.server.workers);
    Listeners::bind(addr, workers).map_err(|source| StartError::Bind { addr, source })
}

async fn serve_on(
    listeners: Listeners,
    config: &config::Config,
    config_path: Option<&Path>,
) -> Result<RunningGateway, StartError> {
    let runtimes = Runtimes::build(server::workers::worker_count(config.server.workers).get())
        .map_err(StartError::Runtime)?;
    let store = Arc::new(open_store(config).await?);
    let mailer = match &config.mail {
        Some(mail) => Some(Mailer::new(mail).map_err(StartError::Mail)?),
        None => None,
    };
    let metrics = Arc::new(metrics::Metrics::new());
    let codes = open_code_store(config).await?;
    let gateway = Gateway::build_with_codes(
        config,
        Arc::clone(&store),
        mailer.clone(),
        Arc::clone(&metrics),
        codes,
    )
    .map_err(StartError::Build)?;
    let gateway = Arc::new(Snapshot::new(Arc::new(gateway)));
    let acceptor = match &config.server.tls {
        Some(files) => Some(Arc::new(Snapshot::new(Arc::new(
            tls::acceptor(&files.cert, &files.key).map_err(StartError::Tls)?,
        )))),
        None => None,
    };
    let reloader = config_path.map(|path| {
        Arc::new(Reloader::new(
            path.to_path_buf(),
            config,
            Arc::clone(&gateway),
            acceptor.clone(),
        ))
    });
    let access_log = Arc::new(AccessLog::open(&config.log).map_err(StartError::AccessLog)?);
    metrics.count_access_log_drops_from(access_log.dropped_counter());
    let local_addr = listeners.local_addr();
    // Bound before anything is spawned, so a taken admin port stops the start with nothing running.
    let admin = match &config.admin {
        Some(admin) => Some(bind_admin(admin, &gateway, &store, reloader.clone()).await?),
        None => None,
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let maintenance = store.spawn_maintenance(shutdown_rx.clone());
    let admin_addr = admin.as_ref().map(|(_, _, addr)| *addr);
    let admin_task = admin.map(|(listener, api, addr)| {
        info!(%addr, clients = api.client_count(), "admin API listening");
        tokio::spawn(admin::serve(listener, api, shutdown_rx.clone()))
    });
    let shared = server::workers::Shared {
        tls: acceptor,
        gateway,
        access_log: Arc::clone(&access_log),
        limits: config.server.limits.clone(),
        shutdown_grace: config.server.shutdown_grace,
        io_uring: config.server.io_uring,
        // Before the first connection is accepted: see `loopback_congestion`.
        loopback_congestion: config
            .server
            .loopback_congestion
            .prepare_listeners(listeners.sockets()),
    };
    if let Some(algorithm) = config.server.loopback_congestion.algorithm() {
        info!(
            algorithm,
            "connections with this host (127.0.0.1, ::1) use their own congestion control \
             ([server] loopback_congestion_control): the host's may pace them, for no network"
        );
    }
    if !config.server.io_uring {
        info!(
            "io_uring switched off ([server] io_uring = false): each socket write is its own system call"
        );
    }
    let task = tokio::spawn(server::serve(listeners, runtimes, shared, shutdown_rx));
    let state = match &config.state.backend {
        StateBackend::Embedded => config.state.path.display().to_string(),
        StateBackend::Redis(redis) => redis.url.redacted().to_owned(),
    };
    info!(%local_addr, tls = config.server.tls.is_some(), %state, mail = mailer.as_ref().map(Mailer::destination), version = build_info::VERSION, build = build_info::BUILD, commit = build_info::COMMIT, "casegate listening");
    Ok(RunningGateway {
        local_addr,
        admin_addr,
        store,
        metrics,
        access_log,
        shutdown,
        task,
        admin_task,
        maintenance,
        reloader,
    })
}

/// Binds the admin API's listener and builds the API over the gateway's snapshot and store.
async fn bind_admin(
    admin: &config::Admin,
    gateway: &Arc<Snapshot<Gateway>>,
    store: &Arc<StateStore>,
    reloader: Option<Arc<Reloader>>,
) -> Result<(TcpListener, Arc<AdminApi>, SocketAddr), StartError> {
    let addr = admin.listen;
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let api = AdminApi::new(Arc::clone(gateway), Arc::clone(store), admin, reloader);
    Ok((listener, Arc::new(api), local_addr))
}
