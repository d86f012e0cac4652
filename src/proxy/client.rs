//! The upstream client: sends a request on one of the worker's keep-alive HTTP/1.1 connections
//! (opening one when none is ready), with the timeouts that turn a dead or slow upstream into a
//! clear answer instead of a hung guest.
//!
//! Each worker has its own [`UpstreamPool`]; an exchange runs in the task of the request it
//! serves ([`super::upstream_h1`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use tokio::time::Instant;
use tracing::debug;

use super::pool::{Destination, IdleConnections, PoolLimits};
use super::upstream_h1::response_head::ResponseHead;
use super::upstream_h1::{
    Answered, ExchangeError, RequestFraming, UpstreamBody, UpstreamConnection, exchange,
};
use super::{Body, empty_body};
use crate::loopback_congestion::LoopbackCongestion;
use crate::metrics::Metrics;

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
    Exchange(ExchangeError),
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
    pub pool: PoolLimits,
}

/// How often a worker drops idle upstream connections that closed or outlived
/// `pool_idle_timeout` or `pool_max_age`.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// One worker's keep-alive connections to the upstream. Cloning shares them.
#[derive(Clone)]
pub struct UpstreamPool {
    idle: IdleConnections,
    /// Where the connections it opens are counted (`casegate_upstream_connections_opened_total`).
    metrics: Arc<Metrics>,
    /// What a connection to an upstream on this host is switched to.
    loopback_congestion: LoopbackCongestion,
}

impl fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("connections", &self.connections())
            .finish()
    }
}

impl UpstreamPool {
    pub fn new(metrics: Arc<Metrics>, loopback_congestion: LoopbackCongestion) -> Self {
        UpstreamPool {
            idle: IdleConnections::default(),
            metrics,
            loopback_congestion,
        }
    }

    /// Drops stale idle connections periodically; runs until the worker's runtime ends.
    pub fn spawn_sweeper(&self) {
        tokio::spawn(self.idle.clone().sweep_every(SWEEP_PERIOD));
    }

    /// How many idle upstream connections the pool holds now.
    pub fn connections(&self) -> usize {
        self.idle.len()
    }

    /// Sends a request to `destination` and waits for the response head, within
    /// `response_timeout` of `sent` (connecting included). `sent` is the caller's own reading of
    /// the clock, which it also times the upstream by: one reading serves both. The request head
    /// is written already, in origin form with the upstream's `Host` (`proxy::request`). The
    /// response body then streams with back-pressure: the upstream is read only as fast as the
    /// client takes it.
    pub async fn send(
        &self,
        request: &Outgoing,
        body: Body,
        destination: &Destination,
        settings: &ClientSettings,
        sent: Instant,
    ) -> Result<UpstreamAnswer, ForwardError> {
        let deadline = sent + settings.response_timeout;
        self.exchange(request, body, destination, settings, sent, deadline)
            .await
            .map_err(|failed| match failed {
                Failed::Unavailable(error) => ForwardError::Unavailable(error),
                Failed::TimedOut => ForwardError::TimedOut(settings.response_timeout),
            })
    }

    async fn exchange(
        &self,
        request: &Outgoing,
        body: Body,
        destination: &Destination,
        settings: &ClientSettings,
        sent: Instant,
        deadline: Instant,
    ) -> Result<UpstreamAnswer, Failed> {
        let Outgoing {
            method,
            head,
            framing,
        } = request;
        let framing = *framing;
        // Only a request without a body can be sent twice: the body has been read once.
        let may_resend = |error: &ExchangeError| {
            framing == RequestFraming::Empty
                && ((error.is_unsent() && is_idempotent(method))
                    || (error.is_unanswered() && is_safe(method)))
        };
        // Connecting is rare (a kept connection is nearly always ready) and gets a timer of its
        // own; an exchange runs on its connection's kept timer (`exchange_by`).
        let connect_by_deadline = || async {
            let connecting = connect(
                destination,
                settings.connect_timeout,
                &self.loopback_congestion,
            );
            match tokio::time::timeout_at(deadline, connecting).await {
                Ok(Ok(connected)) => {
                    self.metrics.record_upstream_connection_opened();
                    Ok(connected)
                }
                Ok(Err(refused)) => Err(Failed::Unavailable(refused)),
                Err(_) => Err(Failed::TimedOut),
            }
        };
        let kept = self.idle.take(destination, settings.pool, sent);
        let (mut connection, reused) = match kept {
            Some(connection) => (connection, true),
            None => (connect_by_deadline().await?, false),
        };
        let answered =
            match exchange_by(deadline, &mut connection, head, body, framing, method).await? {
                Ok(answered) => answered,
                // A kept connection the upstream closed as the request went out (its keep-alive
                // timer): a fresh connection may carry the request if sending it again cannot do
                // twice what the upstream did once.
                Err(error) if reused && may_resend(&error) => {
                    debug!(%error, "kept upstream connection closed; reconnecting");
                    connection = connect_by_deadline().await?;
                    exchange_by(
                        deadline,
                        &mut connection,
                        head,
                        empty_body(),
                        framing,
                        method,
                    )
                    .await?
                    .map_err(|error| Failed::Unavailable(Unavailable::Exchange(error)))?
                }
                Err(error) => return Err(Failed::Unavailable(Unavailable::Exchange(error))),
            };
        let Answered { head, request_sent } = answered;
        // A connection goes back for reuse once its body has been read, if its framing and the
        // whole request allow (a switched one never: it belongs to the tunnel).
        // An error answer to a request with a body may have come before the upstream read the
        // body (a 413 while the upload still fit in the socket's buffer): an upstream that then
        // keeps the connection would read the rest of the body as a request. Not worth the risk.
        let carried_body = matches!(
            framing,
            RequestFraming::Length(1..) | RequestFraming::Chunked
        );
        let refused_early = carried_body && head.status.as_u16() >= 400;
        let body = UpstreamBody::new(
            connection,
            head.framing,
            head.reusable && request_sent && !refused_early,
            self.idle.clone(),
        );
        Ok(UpstreamAnswer { head, body })
    }
}

/// The upstream's answer: its head as it was parsed, the fields casegate reads or changes in its
/// map and the others beside it as they came ([`ResponseHead::passed`]), and its body. The head
/// stays in the box the parser made until the gateway has cleaned it: a response made here, to
/// be taken apart there, was copied whole at each step up (five `memcpy` calls a request).
pub struct UpstreamAnswer {
    pub head: Box<ResponseHead>,
    pub body: UpstreamBody,
}

/// Why [`UpstreamPool::exchange`] gave no response.
enum Failed {
    Unavailable(Unavailable),
    /// The deadline (`response_timeout`) came first.
    TimedOut,
}

/// `exchange` on `connection`, given up at `deadline` (`Err`) on the connection's kept timer,
/// which a request would otherwise put into tokio's timer wheel and take out again
/// (`lazy_timer`). The exchange is polled first, as `tokio::time::timeout` polls its future.
async fn exchange_by(
    deadline: Instant,
    connection: &mut UpstreamConnection,
    head: &[u8],
    body: Body,
    framing: RequestFraming,
    method: &Method,
) -> Result<Result<Answered, ExchangeError>, Failed> {
    let mut timer = connection.take_timer(deadline);
    let outcome = tokio::select! {
        biased;
        answered = exchange(connection, head, body, framing, method) => Ok(answered),
        () = timer.wait_until(deadline) => Err(Failed::TimedOut),
    };
    connection.give_timer(timer);
    outcome
}

/// A request for the upstream, its head written ([`super::request`]).
pub struct Outgoing {
    pub method: Method,
    pub head: Vec<u8>,
    pub framing: RequestFraming,
}

/// RFC 9110 section 9.2.1: methods that ask only to read.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// RFC 9110 section 9.2.2: methods a client may repeat without changing what the first try did.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Opens a connection to the upstream (one on this host with `[server]
/// loopback_congestion_control` from its first packet).
async fn connect(
    destination: &Destination,
    limit: Duration,
    loopback_congestion: &LoopbackCongestion,
) -> Result<Box<UpstreamConnection>, Unavailable> {
    let (host, port) = (&*destination.host, destination.port);
    let stream = match tokio::time::timeout(limit, loopback_congestion.connect((host, port))).await
    {
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
    Ok(UpstreamConnection::new(stream, destination.clone()))
}

#[cfg(test)]
mod retry_tests {
    //! A kept connection that ends with no answer after the request was written cannot be told
    //! from one where the upstream read the whole request, acted on it, then failed (a crash, a
    //! worker recycled, a timeout in the app server): only a request that changes nothing is sent
    //! again. (Found in review: the first version of the client carried a DELETE out twice.)

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use http::Method;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::proxy::empty_body;
    use http_body_util::BodyExt;

    /// An empty pool for the upstream on 127.0.0.1:`port`, with short timeouts.
    fn pool_for(port: u16) -> (UpstreamPool, Destination, ClientSettings) {
        let destination = Destination {
            host: "127.0.0.1".into(),
            port,
        };
        let settings = ClientSettings {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            pool: PoolLimits {
                idle_timeout: Duration::from_secs(30),
                max_requests: 1000,
                max_age: Duration::from_secs(3600),
            },
        };
        (
            UpstreamPool::new(Arc::new(Metrics::new()), LoopbackCongestion::system()),
            destination,
            settings,
        )
    }

    /// Reads one request head (bodiless requests only) from `stream`.
    async fn read_head(stream: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_the_upstream_read_whole_is_not_sent_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let deletes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&deletes);
        tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                connection += 1;
                let counted = Arc::clone(&counted);
                let first = connection == 1;
                tokio::spawn(async move {
                    while let Some(head) = read_head(&mut stream).await {
                        if head.starts_with("DELETE ") {
                            counted.fetch_add(1, Ordering::SeqCst);
                            if first {
                                // Acted on, then the connection is lost before the answer.
                                return;
                            }
                        }
                        let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                    }
                });
            }
        });
        let (pool, destination, settings) = pool_for(port);
        let request = |method: Method, target: &str| Outgoing {
            head: format!("{method} {target} HTTP/1.1\r\nhost: app\r\n\r\n").into_bytes(),
            method,
            framing: RequestFraming::Empty,
        };
        // A first exchange leaves a kept connection in the pool.
        let first = pool
            .send(
                &request(Method::GET, "/cases/42"),
                empty_body(),
                &destination,
                &settings,
                Instant::now(),
            )
            .await
            .unwrap()
            .body;
        first.collect().await.unwrap();
        assert_eq!(pool.connections(), 1);
        let _ = pool
            .send(
                &request(Method::DELETE, "/cases/42/attachments/7"),
                empty_body(),
                &destination,
                &settings,
                Instant::now(),
            )
            .await;
        assert_eq!(
            deletes.load(Ordering::SeqCst),
            1,
            "the upstream received the DELETE on the kept connection, acted on it, and casegate \
             sent it again on a new one"
        );
    }

    /// An error answer to a request with a body may have come before the upstream read the
    /// body; the connection is not kept, so the body's bytes can never be read as a request.
    /// A success after the body was read keeps it.
    #[tokio::test(flavor = "current_thread")]
    async fn an_error_answer_to_a_request_with_a_body_does_not_keep_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    while let Some(head) = read_head(&mut stream).await {
                        let answer: &[u8] = if head.contains("/refuse") {
                            // Answered on the head alone; the body stays unread in the socket.
                            b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n\r\n"
                        } else {
                            let mut body = [0u8; 5];
                            if stream.read_exact(&mut body).await.is_err() {
                                return;
                            }
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                        };
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let (pool, destination, settings) = pool_for(port);
        let post = |target: &str| Outgoing {
            head: format!("POST {target} HTTP/1.1\r\nhost: app\r\ncontent-length: 5\r\n\r\n")
                .into_bytes(),
            method: Method::POST,
            framing: RequestFraming::Length(5),
        };
        let body = || {
            http_body_util::Full::new(bytes::Bytes::from_static(b"hello"))
                .map_err(|never| match never {})
                .boxed()
        };
        for (target, status, kept) in [("/cases/42/ok", 200, 1), ("/cases/42/refuse", 413, 0)] {
            let answer = pool
                .send(
                    &post(target),
                    body(),
                    &destination,
                    &settings,
                    Instant::now(),
                )
                .await
                .unwrap();
            assert_eq!(answer.head.status, status, "{target}");
            answer.body.collect().await.unwrap();
            assert_eq!(pool.connections(), kept, "{target}");
        }
    }
}
