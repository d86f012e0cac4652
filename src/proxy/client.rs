//! The upstream client: sends a request on one of the worker's keep-alive HTTP/1.1 connections
//! (opening one when none is ready), with the timeouts that turn a dead or slow upstream into a
//! clear answer instead of a hung guest.
//!
//! Each worker has its own [`UpstreamPool`]; the connections' tasks run on the worker's runtime,
//! next to the requests that use them.

use std::fmt;
use std::time::Duration;

use http::{Request, Response};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use super::Body;
use super::pool::{Destination, IdleConnections, Lent, PooledBody};

/// Why a request did not get a response from the upstream.
#[derive(Debug)]
pub enum ForwardError {
    /// Could not connect, or the connection failed before a response arrived.
    Unavailable(Unavailable),
    /// No response headers within `response_timeout`.
    TimedOut(Duration),
}

/// What went wrong on the way to the upstream.
#[derive(Debug)]
pub enum Unavailable {
    /// The TCP connection could not be opened.
    Connect {
        host: Box<str>,
        port: u16,
        source: std::io::Error,
    },
    /// The TCP connection did not open within `connect_timeout`.
    ConnectTimedOut {
        host: Box<str>,
        port: u16,
        limit: Duration,
    },
    /// The HTTP exchange failed (the connection closed, the request body failed, ...).
    Exchange(hyper::Error),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Connect { host, port, .. } => write!(f, "cannot connect to {host}:{port}"),
            Unavailable::ConnectTimedOut { host, port, limit } => {
                write!(f, "connecting to {host}:{port} took longer than {limit:?}")
            }
            Unavailable::Exchange(_) => f.write_str("the exchange with the upstream failed"),
        }
    }
}

impl std::error::Error for Unavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Unavailable::Connect { source, .. } => Some(source),
            Unavailable::ConnectTimedOut { .. } => None,
            Unavailable::Exchange(error) => Some(error),
        }
    }
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The causes are spelled out because operators read this in the log, where
            // "connection error" alone does not say "connection refused".
            ForwardError::Unavailable(error) => {
                write!(f, "upstream unavailable: {error}")?;
                let mut source = std::error::Error::source(error);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            ForwardError::TimedOut(limit) => {
                write!(f, "upstream sent no response within {limit:?}")
            }
        }
    }
}

impl std::error::Error for ForwardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ForwardError::Unavailable(error) => Some(error),
            ForwardError::TimedOut(_) => None,
        }
    }
}

/// Timeouts and pool settings for the upstream client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
}

/// How often a worker drops idle upstream connections that closed or outlived
/// `pool_idle_timeout`.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// One worker's keep-alive connections to the upstream. Cloning shares them.
#[derive(Clone, Default)]
pub struct UpstreamPool {
    idle: IdleConnections,
}

impl fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("connections", &self.connections())
            .finish()
    }
}

impl UpstreamPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops stale idle connections periodically; runs until the worker's runtime ends.
    pub fn spawn_sweeper(&self) {
        tokio::spawn(self.idle.clone().sweep_every(SWEEP_PERIOD));
    }

    /// How many upstream connections the pool holds now (in use or idle).
    pub fn connections(&self) -> usize {
        self.idle.len()
    }

    /// Sends a request to `host:port` and waits for the response head, within `response_timeout`
    /// (connecting included). The request is already in origin form with the upstream's `Host`
    /// (`proxy::request` rewrites it so). The body then streams with
    /// back-pressure: hyper reads the upstream only as fast as the client takes it.
    pub async fn send(
        &self,
        request: Request<Body>,
        host: &str,
        port: u16,
        settings: &ClientSettings,
    ) -> Result<Response<PooledBody>, ForwardError> {
        match tokio::time::timeout(
            settings.response_timeout,
            self.exchange(request, host, port, settings),
        )
        .await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(ForwardError::Unavailable(error)),
            Err(_) => Err(ForwardError::TimedOut(settings.response_timeout)),
        }
    }

    async fn exchange(
        &self,
        request: Request<Body>,
        host: &str,
        port: u16,
        settings: &ClientSettings,
    ) -> Result<Response<PooledBody>, Unavailable> {
        let (mut sender, reused) = match self.idle.take(host, port, settings.pool_idle_timeout) {
            Some(sender) => (sender, true),
            None => (connect(host, port, settings.connect_timeout).await?, false),
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            // A kept connection the upstream closed just before the request went out: nothing
            // was sent, so a fresh connection may carry it.
            Err(mut error) if reused && error.message().is_some() => {
                let request = error.take_message().expect("checked above");
                debug!(error = %error.error(), "kept upstream connection closed; reconnecting");
                sender = connect(host, port, settings.connect_timeout).await?;
                sender
                    .send_request(request)
                    .await
                    .map_err(Unavailable::Exchange)?
            }
            Err(error) => return Err(Unavailable::Exchange(error.into_error())),
        };
        // A switched connection belongs to the tunnel now; any other goes back for reuse once its
        // body has been read.
        let lent = (response.status() != http::StatusCode::SWITCHING_PROTOCOLS).then(|| Lent {
            idle: self.idle.clone(),
            destination: Destination {
                host: host.into(),
                port,
            },
            sender,
        });
        Ok(response.map(|body| PooledBody::new(body, lent)))
    }
}

/// Opens a connection and starts its task on the current (the worker's) runtime.
async fn connect(
    host: &str,
    port: u16,
    limit: Duration,
) -> Result<http1::SendRequest<Body>, Unavailable> {
    let stream = match tokio::time::timeout(limit, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            return Err(Unavailable::Connect {
                host: host.into(),
                port,
                source,
            });
        }
        Err(_) => {
            return Err(Unavailable::ConnectTimedOut {
                host: host.into(),
                port,
                limit,
            });
        }
    };
    // Small requests and responses go out at once instead of waiting for Nagle's timer.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Unavailable::Exchange)?;
    tokio::spawn(async move {
        // Upgrades: a WebSocket handshake's connection is handed to the tunnel.
        if let Err(error) = connection.with_upgrades().await {
            debug!(%error, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}
