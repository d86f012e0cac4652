//! casegate: an edge gateway that lets a legacy case application share one case, read-only,
//! through a signed link. See README.md for the request path and a map of the code.
//!
//! [`start`] builds the gateway from a validated [`config::Config`], binds its listener and serves
//! until [`RunningGateway::shutdown`]; the command line and the tests both go through it.

pub mod clock;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod pages;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod share;
pub mod state;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::gateway::{BuildError, Gateway};
use crate::server::tls::{self, TlsError};

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    Build(BuildError),
    Tls(TlsError),
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Build(error) => write!(f, "{error}"),
            StartError::Tls(error) => write!(f, "TLS: {error}"),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A gateway serving on its listener.
pub struct RunningGateway {
    /// The bound address (the real port when the config asked for port 0).
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningGateway {
    /// Stops accepting, asks open connections to finish what is in flight, and returns once the
    /// accept loop has ended.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Builds the gateway from a validated config, binds the listener and starts serving.
pub async fn start(config: &config::Config) -> Result<RunningGateway, StartError> {
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    start_on(listener, config).await
}

/// Like [`start`], on a listener the caller bound (the demo binds first to learn its port).
pub async fn start_on(
    listener: TcpListener,
    config: &config::Config,
) -> Result<RunningGateway, StartError> {
    let gateway = Arc::new(Gateway::build(config).map_err(StartError::Build)?);
    let acceptor = match &config.server.tls {
        Some(files) => Some(tls::acceptor(&files.cert, &files.key).map_err(StartError::Tls)?),
        None => None,
    };
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.listen,
        source,
    })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let limits = config.server.limits.clone();
    let task = tokio::spawn(server::serve(
        listener,
        acceptor,
        gateway,
        limits,
        shutdown_rx,
    ));
    info!(%local_addr, tls = config.server.tls.is_some(), "casegate listening");
    Ok(RunningGateway {
        local_addr,
        shutdown,
        task,
    })
}
