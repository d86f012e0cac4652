//! Serving one accepted connection: optional TLS handshake, then HTTP/1.1 (casegate's own server,
//! `h1`) or HTTP/2 (hyper's), detected by ALPN or the HTTP/2 preface, under the configured
//! timeouts and limits.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use super::activity::{Activity, TrackedIo};
use super::body_pace::{BodyPace, ClientBody};
use super::h1;
use super::head;
use super::lifetime::Lifetime;
use super::preface::{self, Prefixed, Protocol};
use super::slots::ConnectionSlot;
use crate::access_log::{AccessLog, LoggedBody, RequestBody, Unanswered};
use crate::config::Limits;
use crate::direct_tcp::{DirectTcpStream, LeaveWriteBatch};
use crate::gateway::{Answer, Gateway, SessionMemo, boxed_answer};
use crate::loopback_congestion::LoopbackCongestion;
use crate::metrics::ConnectionGauge;
use crate::proxy::client::UpstreamPool;
use crate::proxy::client_address::ClientAddress;
use crate::reload::{Kept, Snapshot, WorkerSnapshot};

/// What the gateway knows about the connection a request arrived on, and whom the request is from.
/// An HTTP/2 request holds a clone of its own for as long as it runs; an HTTP/1 connection's
/// requests, one at a time, borrow the connection's (`Http1Handler`).
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// Resolved for each request from the peer and, when the peer is a trusted proxy, its
    /// `X-Forwarded-For` (`proxy::client_address`). Until then, the peer.
    pub client: ClientAddress,
    pub tls: bool,
    /// The rest, the same for every request of the connection, behind one count: cloned field by
    /// field, they cost a request three more atomic increments and as many decrements.
    pub shared: Arc<SharedByRequests>,
}

/// What a connection's requests share.
#[derive(Debug)]
pub struct SharedByRequests {
    /// The listener's connection slot: a WebSocket tunnel keeps it after hyper lets go of the
    /// connection, so tunnels count against `max_connections` too.
    pub slot: Option<Arc<ConnectionSlot>>,
    /// The worker's pool of upstream connections: requests from this connection go upstream on
    /// connections driven by the same thread.
    pub upstream: UpstreamPool,
    /// The guest cookie this connection presented last, opened (`gateway::session_memo`).
    pub session_memo: Arc<SessionMemo>,
}

/// An HTTP/1 head up to this size is read whole even when `max_header_bytes` is smaller: the
/// smaller limit is then enforced on the parsed head (`head::limit_exceeded`), where the refusal
/// is logged as the request it was. Past it, the head is refused unread (431).
const MIN_HEAD_BUFFER: usize = 8 * 1024;

/// HTTP/2 streams a client may open and cancel before the server has accepted them (rapid
/// reset). A browser cancels a few at a time (a seek in a video); an attack cancels thousands.
pub const H2_MAX_PENDING_ACCEPT_RESETS: usize = 64;
/// HTTP/2 streams the server may reset for a client's protocol errors before it ends the
/// connection.
pub const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// hyper's HTTP/2 connection builder, configured once per listener and cheap to share across its
/// connections. HTTP/2 is chosen by ALPN (TLS) or by the HTTP/2 preface (cleartext,
/// `preface.rs`); everything else is HTTP/1.1, served by `h1`.
pub struct HttpBuilders {
    http2: http2::Builder<TokioExecutor>,
}

pub fn http_builders(limits: &Limits) -> HttpBuilders {
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        // Rapid reset (CVE-2023-44487): streams the client opens and cancels before they are
        // served. Past this many at once the connection gets GOAWAY (ENHANCE_YOUR_CALM).
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        // The mirror image ("MadeYouReset", RUSTSEC-2024-0003): streams the client makes us reset
        // with protocol errors. hyper's default (1024) is also its documented advice; set here so
        // it is a decision, not an accident.
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
        // No keep-alive pings: every ping and its ack is IO, which would keep resetting the idle
        // watchdog, so a client with no stream open could hold its connection forever. The
        // watchdog already closes a dead peer's connection, since a dead peer does no IO.
        .keep_alive_interval(None);
    HttpBuilders { http2 }
}

/// What every connection of one worker shares.
pub struct Listening {
    /// The certificate in force when a connection arrives serves its whole handshake.
    pub tls: Option<Arc<Snapshot<TlsAcceptor>>>,
    /// Read once per request: a reload changes what the next request sees, never one in flight.
    pub gateway: Arc<WorkerSnapshot<Gateway>>,
    pub builders: HttpBuilders,
    pub limits: Limits,
    pub access_log: Arc<AccessLog>,
    /// This worker's upstream connections.
    pub upstream: UpstreamPool,
    /// What connections from this host are switched to (`[server] loopback_congestion_control`).
    pub loopback_congestion: LoopbackCongestion,
}

/// Runs one connection to completion. Never panics; every failure ends this connection only.
///
/// An `async` block rather than an `async fn`, as [`run_http`]: this is every connection's task,
/// and an `async fn` would hold each argument twice in it.
#[allow(clippy::manual_async_fn)]
pub fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listening: Arc<Listening>,
    slot: Arc<ConnectionSlot>,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send {
    async move {
        let _ = stream.set_nodelay(true);
        listening.loopback_congestion.accepted(&stream, peer.ip());
        let acceptor = listening.tls.as_ref().map(|tls| tls.current());
        // Answers join the worker's write batch (`write_batch`), TLS records too: the batch
        // takes each write at once and sends a stream's writes in order. HTTP/2 connections
        // leave it once their protocol is known (`LeaveWriteBatch`).
        let stream = DirectTcpStream::new(stream);
        let slot = Some(slot);
        let gateway = Arc::clone(&listening.gateway);
        let access_log = Arc::clone(&listening.access_log);
        let (builders, limits) = (&listening.builders, &listening.limits);
        let info = ConnectionInfo {
            peer,
            client: ClientAddress::direct(peer.ip()),
            tls: acceptor.is_some(),
            shared: Arc::new(SharedByRequests {
                slot,
                upstream: listening.upstream.clone(),
                session_memo: Arc::default(),
            }),
        };
        let served = Served {
            gateway,
            access_log,
            builders,
            limits,
            shutdown,
        };
        match acceptor {
            None => run_http(stream, None, info, served).await,
            // Boxed: the handshake and a TLS stream (rustls's state) are several KiB, which would
            // otherwise size every connection's task, plain ones included. Allocated before the
            // future is made, so that it is built in its box: made on the stack and moved in, it
            // took 9 KiB of the frame every poll of a connection's task starts with, plain
            // connections' too (its pages are probed at each poll).
            Some(acceptor) => {
                Box::into_pin(Box::write(Box::new_uninit(), async move {
                    let handshake =
                        tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream))
                            .await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            let protocol = match tls_stream.get_ref().1.alpn_protocol() {
                                Some(b"h2") => Protocol::Http2,
                                _ => Protocol::Http1,
                            };
                            run_http(tls_stream, Some(protocol), info, served).await;
                        }
                        Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }))
                .await
            }
        }
    }
}

/// What serving HTTP on a connection needs from its listener.
struct Served<'a> {
    gateway: Arc<WorkerSnapshot<Gateway>>,
    access_log: Arc<AccessLog>,
    builders: &'a HttpBuilders,
    limits: &'a Limits,
    shutdown: watch::Receiver<bool>,
}

/// Serves HTTP on `io`: the given protocol (from ALPN), or on cleartext the one its first bytes
/// announce.
///
/// An `async` block rather than an `async fn`: an `async fn` moves each argument into a local of
/// its own, and `info` would then take its room twice in every connection's task.
#[allow(clippy::manual_async_fn)]
fn run_http<'a, T>(
    io: T,
    protocol: Option<Protocol>,
    info: ConnectionInfo,
    served: Served<'a>,
) -> impl Future<Output = ()> + Send + 'a
where
    T: AsyncRead + AsyncWrite + h1::splice::SpliceTarget + LeaveWriteBatch + Unpin + Send + 'static,
{
    async move {
        let Served {
            gateway,
            access_log,
            builders,
            limits,
            shutdown,
        } = served;
        let (protocol, read, io) = match protocol {
            Some(protocol) => (protocol, Bytes::new(), io),
            None => {
                match tokio::time::timeout(limits.header_read_timeout, preface::sniff(io)).await {
                    Ok(Ok((protocol, io))) => {
                        let (io, read) = io.into_parts();
                        (protocol, read, io)
                    }
                    Ok(Err(error)) => {
                        debug!(peer = %info.peer, %error, "connection failed before its first request");
                        return;
                    }
                    Err(_) => {
                        debug!(peer = %info.peer, "closing connection that sent nothing");
                        return;
                    }
                }
            }
        };
        let peer = info.peer;
        let session_memo = Arc::clone(&info.shared.session_memo);
        let events = Events {
            peer,
            client: info.client.ip,
            access_log: Arc::clone(&access_log),
            metrics: Arc::clone(gateway.current().metrics()),
            session_memo: Arc::clone(&session_memo),
        };
        let handler = RequestHandler {
            // Dropped with the handler, however the connection ended.
            gauge: ConnectionGauge::new(Arc::clone(gateway.current().metrics())),
            gateway,
            access_log,
            info,
            limits: RequestLimits {
                max_header_bytes: limits.max_header_bytes,
                max_headers: limits.max_headers,
                pace: BodyPace {
                    grace: limits.body_read_timeout,
                    min_bytes_per_second: limits.body_min_rate,
                },
            },
        };
        match protocol {
            Protocol::Http1 => {
                let settings = h1::Http1Settings {
                    head: h1::request_head::HeadLimits {
                        max_bytes: limits.max_header_bytes.max(MIN_HEAD_BUFFER),
                        max_fields: limits.max_headers,
                    },
                    header_read_timeout: limits.header_read_timeout,
                    idle_timeout: limits.idle_timeout,
                };
                let handler = Http1Handler {
                    gateway: handler.gateway.keep(),
                    peer_client: None,
                    handler,
                };
                h1::serve(io, read, peer, settings, shutdown, &events, handler).await;
            }
            Protocol::Http2 => {
                let mut io = io;
                io.leave_write_batch();
                let activity = Activity::new();
                if !read.is_empty() {
                    activity.saw_input();
                }
                let io = TrackedIo::new(Prefixed::new(io, read), Arc::clone(&activity));
                let service_activity = Arc::clone(&activity);
                let handler = &handler;
                let service = service_fn(move |request: Request<Incoming>| {
                    let in_flight = service_activity.request_started();
                    let handled = handler.handle(request);
                    async move {
                        let response = handled.await;
                        drop(in_flight);
                        Ok::<_, Infallible>(response)
                    }
                });
                let mut lifetime = Lifetime {
                    activity: &activity,
                    limits,
                    peer,
                    shutdown,
                    first_round: true,
                };
                // Boxed like the TLS handshake: h2's connection state is large and only HTTP/2
                // connections should pay for it.
                let mut connection =
                    Box::pin(builders.http2.serve_connection(TokioIo::new(io), service));
                let connection = connection.as_mut();
                lifetime
                    .drive(connection, |connection| connection.graceful_shutdown())
                    .await;
            }
        }
    }
}

/// What serving one request needs, for either protocol: the gateway's decision and answer, the
/// access log's record around it, and the limits hyper's HTTP/2 side does not check itself.
struct RequestHandler {
    gateway: Arc<WorkerSnapshot<Gateway>>,
    access_log: Arc<AccessLog>,
    info: ConnectionInfo,
    gauge: ConnectionGauge,
    limits: RequestLimits,
}

/// The limits a request is held to here: hyper's HTTP/2 side does not check the head's, and
/// neither protocol paces the body.
#[derive(Clone, Copy)]
struct RequestLimits {
    max_header_bytes: usize,
    max_headers: usize,
    pace: BodyPace,
}

impl RequestHandler {
    /// An answer for a request of an HTTP/2 connection, whose streams run at once: the future
    /// owns what it uses.
    fn handle(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<LoggedBody>> + Send + 'static {
        let pace = self.limits.pace;
        let request =
            Box::new(request.map(|body| RequestBody::paced(ClientBody::Http2(body), pace)));
        let gateway = self.gateway.current();
        let access_log = Arc::clone(&self.access_log);
        let mut info = self.info.clone();
        if let Some(client) = resolved_client(&gateway, &info, &request) {
            info.client = client;
        }
        self.gauge.saw_request(request.version());
        let limits = self.limits;
        // hyper takes the answer by value.
        async move { *answer(&gateway, &access_log, &info, limits, request).await }
    }
}

/// The gateway's answer to one request for either protocol, with the access log's record around
/// it and the limits hyper's HTTP/2 side does not check itself.
async fn answer(
    gateway: &Gateway,
    access_log: &Arc<AccessLog>,
    info: &ConnectionInfo,
    limits: RequestLimits,
    mut request: Box<Request<RequestBody>>,
) -> Box<Answer> {
    let RequestLimits {
        max_header_bytes,
        max_headers,
        ..
    } = limits;
    // The one place every request passes: the access log's record starts and ends
    // here. Until the answer exists it is held by `Unanswered`, which logs and counts
    // the request if the connection ends first (the connection then drops this future).
    let mut unanswered = Unanswered::new(
        access_log.begin(info.client.ip, request.method()),
        access_log,
        gateway.metrics(),
    );
    let over = head::limit_exceeded(&request, max_header_bytes, max_headers);
    let mut answer = if let Some((setting, limit)) = over {
        info!(peer = %info.peer, client = %info.client.ip, setting, limit, "request head over a limit");
        gateway.metrics().record_refused_head();
        unanswered.record().set_refused(
            crate::metrics::Decision::BadRequest.as_str(),
            crate::pages::Page::BadRequest.code(),
        );
        boxed_answer(head::too_large())
    } else {
        let record = unanswered.record();
        request.body_mut().count_into(record);
        // Boxed: the request path's state machine is 3 KiB, which would otherwise sit in
        // every connection's task for its life (benches/HISTORY.md). Allocated
        // before the future is made, so that it is built in its box rather than on the
        // stack and then copied in (3 KiB, every request).
        let handled = Box::into_pin(Box::write(
            Box::new_uninit(),
            gateway.handle(request, info, record),
        ));
        handled.await
    };
    let mut record = unanswered.answered();
    // Every answer, refusals and pages included: the first one a browser sees over https
    // is what pins the host to https, whichever it is.
    if let Some(hsts) = gateway.hsts(info.tls) {
        answer
            .headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    record.set_status(answer.status());
    answer.body_mut().log_into(record, access_log);
    answer
}

/// The client a request is from when the peer is a trusted proxy (`X-Forwarded-For`); `None`
/// from any other peer, whose client is the peer, as the connection's `info` already says (its
/// X-Forwarded-For value made once per connection, not per request).
fn resolved_client<B>(
    gateway: &Gateway,
    info: &ConnectionInfo,
    request: &Request<B>,
) -> Option<ClientAddress> {
    gateway
        .is_trusted_proxy(info.peer.ip())
        .then(|| gateway.client_address(info.peer.ip(), request.headers()))
}

/// An HTTP/1 connection's handler. Its requests come one at a time, so each borrows what the
/// connection keeps (the gateway's snapshot, the connection's facts) where an HTTP/2 stream's
/// future takes counts on them: the worker's snapshot lock, and counts on the snapshot, on what
/// the connection's requests share and on its `X-Forwarded-For` value, each taken and given
/// back, eight locked instructions a request.
struct Http1Handler {
    handler: RequestHandler,
    /// Brought up to date at each request. Between requests it keeps the config the last one
    /// used: after a reload, idle connections hold the old one (one copy, shared) until their
    /// next request or their close, `idle_timeout` at most; nothing is judged by it meanwhile.
    gateway: Kept<Gateway>,
    /// The connection's own client, the peer, set aside while `handler.info.client` holds one a
    /// trusted proxy named, to go back to if a reload stops trusting it.
    peer_client: Option<ClientAddress>,
}

impl h1::Handler for Http1Handler {
    type RequestBody = RequestBody;
    type Body = LoggedBody;

    fn request_body(&self, body: h1::request_body::H1Body) -> RequestBody {
        RequestBody::paced(ClientBody::Http1(body), self.handler.limits.pace)
    }

    fn handle(&mut self, request: Box<Request<RequestBody>>) -> impl Future<Output = Box<Answer>> {
        let handler = &mut self.handler;
        let gateway = handler.gateway.refresh(&mut self.gateway);
        match resolved_client(gateway, &handler.info, &request) {
            Some(client) => {
                let replaced = std::mem::replace(&mut handler.info.client, client);
                self.peer_client.get_or_insert(replaced);
            }
            None => {
                if let Some(own) = self.peer_client.take() {
                    handler.info.client = own;
                }
            }
        }
        handler.gauge.saw_request(request.version());
        answer(
            gateway,
            &handler.access_log,
            &handler.info,
            handler.limits,
            request,
        )
    }
}

/// What an HTTP/1 connection's loop reports: heads refused before any request existed are
/// logged and counted here, and a parked connection forgets its session and lets its memory go.
struct Events {
    peer: SocketAddr,
    client: std::net::IpAddr,
    access_log: Arc<AccessLog>,
    metrics: Arc<crate::metrics::Metrics>,
    session_memo: Arc<SessionMemo>,
}

impl h1::ConnectionEvents for Events {
    fn refused_head(&self, status: http::StatusCode) {
        info!(peer = %self.peer, client = %self.client, status = status.as_u16(), "request head refused by the HTTP parser");
        self.metrics.record_refused_head();
        self.access_log.submit_unreadable(
            self.client,
            status,
            crate::pages::Page::BadRequest.code(),
        );
    }

    fn parked(&self) {
        self.session_memo.forget();
        super::trim::connection_parked();
    }
}
