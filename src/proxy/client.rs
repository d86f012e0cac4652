//! The pooled HTTP/1.1 client that carries requests to the upstream, with the timeouts that turn a
//! dead or slow upstream into a clear answer instead of a hung guest.

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Body;

/// Why a request did not get a response from the upstream.
#[derive(Debug)]
pub enum ForwardError {
    /// Could not connect, or the connection failed before a response arrived.
    Unavailable(hyper_util::client::legacy::Error),
    /// No response headers within `response_timeout`.
    TimedOut(Duration),
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The causes are spelled out because operators read this in the log, where
            // "client error (Connect)" alone does not say "connection refused".
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

/// A keep-alive pool of connections to the upstream.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpConnector, Body>,
    response_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(settings: &ClientSettings) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            // We set Host ourselves (the upstream's authority); never let the client guess.
            .set_host(false)
            .build(connector);
        UpstreamClient {
            client,
            response_timeout: settings.response_timeout,
        }
    }

    /// Sends a request and waits for the response head. The body then streams with back-pressure:
    /// hyper polls the upstream only as fast as the client reads.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, ForwardError> {
        match tokio::time::timeout(self.response_timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(ForwardError::Unavailable(error)),
            Err(_) => Err(ForwardError::TimedOut(self.response_timeout)),
        }
    }
}

/// One worker's upstream connections. Cloning shares the pool. The client in it is built for the
/// settings of the gateway snapshot that sends; a reload that changes them gets a fresh one.
#[derive(Clone, Default)]
pub struct UpstreamPool {
    client: std::sync::Arc<std::sync::Mutex<Option<(ClientSettings, UpstreamClient)>>>,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool").finish_non_exhaustive()
    }
}

impl UpstreamPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `request` on one of this worker's connections (see [`UpstreamClient::send`]).
    pub async fn send(
        &self,
        request: Request<Body>,
        settings: &ClientSettings,
    ) -> Result<Response<Incoming>, ForwardError> {
        let client = {
            let mut held = self
                .client
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match held.as_ref() {
                Some((built_for, client)) if built_for == settings => client.clone(),
                _ => {
                    let client = UpstreamClient::new(settings);
                    *held = Some((settings.clone(), client.clone()));
                    client
                }
            }
        };
        client.send(request).await
    }
}
