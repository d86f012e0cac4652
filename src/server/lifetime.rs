//! What ends a connection besides its peer (no first byte in time, idleness, shutdown) and what
//! parks an idle HTTP/1 one: hyper lets go of it between requests, so that a keep-alive connection
//! waiting for its next request holds its stream and little else (issue 7's idle memory).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use tracing::debug;

use super::activity::{Activity, Quiet, TrackedIo};
use super::head;
use super::preface::Prefixed;
use crate::config::Limits;
use crate::gateway::SessionMemo;
use crate::proxy::hop::options_of;

/// An HTTP/1 connection idle this long is parked: hyper's 16 KiB of buffers and its state are
/// freed, and only the stream waits for the next request. nginx frees its buffers as soon as a
/// keep-alive connection goes idle; a second spares a browser that is still fetching a page's
/// resources the rebuild, which costs an extra read.
const PARK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether hyper keeps the connection open after this request whatever the answer: HTTP/1.1,
/// no `Connection: close`, and no body (one the gateway refuses unread ends the connection).
///
/// One pass over the request's headers (a handful) rather than a lookup of each of the three
/// names, each of which hashed it, on every request.
pub(super) fn keeps_alive<B>(request: &http::Request<B>) -> bool {
    use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    if request.version() != http::Version::HTTP_11 {
        return false;
    }
    let mut length_seen = false;
    for (name, value) in request.headers() {
        if name == TRANSFER_ENCODING {
            return false;
        }
        // Only the first `Content-Length` counts (as `HeaderMap::get` reads it); hyper refuses
        // a request whose lengths disagree before it gets here.
        if name == CONTENT_LENGTH && !length_seen {
            length_seen = true;
            if value.as_bytes() != b"0" {
                return false;
            }
        }
        if name == CONNECTION
            && options_of(value).any(|option| option.eq_ignore_ascii_case(b"close"))
        {
            return false;
        }
    }
    true
}

/// What a parked connection keeps of hyper's: its stream, the bytes read past the last request
/// (pipelined, to go back in front of the stream) and the service. Not inline in `serve_http1`:
/// there hyper's whole `Parts` would keep its room in every parked connection's task.
fn take_apart<T, S>(
    parts: http1::Parts<TokioIo<Prefixed<TrackedIo<T>>>, S>,
) -> (TrackedIo<T>, Option<Bytes>, S) {
    let (stream, unread) = parts.io.into_inner().into_parts();
    // hyper hands its read buffer back even when empty, and an empty `Bytes` still holds the
    // buffer's 8 KiB: only what is left in it is kept.
    let leftover: Vec<Vec<u8>> = [unread, parts.read_buf]
        .into_iter()
        .filter(|bytes| !bytes.is_empty())
        .map(|bytes| bytes.to_vec())
        .collect();
    let leftover = (!leftover.is_empty()).then(|| Bytes::from(leftover.concat()));
    (stream, leftover, parts.service)
}

/// How a driven connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// Closed, failed, timed out, or switched protocols: nothing left to serve.
    Closed,
    /// hyper let go of an idle HTTP/1 connection whose stream stays open.
    Parked,
}

/// What ends a connection besides its peer: no first byte in time, idleness, shutdown.
pub(super) struct Lifetime<'a> {
    pub(super) activity: &'a Arc<Activity>,
    pub(super) limits: &'a Limits,
    pub(super) peer: SocketAddr,
    pub(super) shutdown: watch::Receiver<bool>,
    /// Until the first request: the first-byte deadline applies.
    pub(super) first_round: bool,
    /// Forgotten when the connection parks: a parked connection holds its stream and no session.
    pub(super) session_memo: &'a SessionMemo,
    /// Told the status of a request head hyper refused itself (`head::refused_by_hyper`), which
    /// no service saw, so that it is logged and counted all the same.
    pub(super) on_refused_head: &'a (dyn Fn(http::StatusCode) + Send + Sync),
}

impl Lifetime<'_> {
    /// Serves HTTP/1 requests on `io`, parking the connection whenever it idles for
    /// [`PARK_AFTER`] and rebuilding hyper's side when the next request's first byte arrives.
    pub(super) async fn serve_http1<T, S, B>(
        &mut self,
        http1: &http1::Builder,
        mut io: Prefixed<TrackedIo<T>>,
        mut service: S,
    ) where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B> + Unpin,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        loop {
            // Boxed, so that a parked connection's task does not keep room for hyper's state.
            let mut connection = Box::new(
                http1
                    .serve_connection(TokioIo::new(io), service)
                    .with_upgrades(),
            );
            let ended = self
                .drive(
                    Pin::new(&mut *connection),
                    |connection| connection.graceful_shutdown(),
                    true,
                )
                .await;
            self.activity.set_parking(false);
            // `None` once upgraded: the tunnel has the stream.
            let parts = match (ended, connection.into_parts()) {
                (Ended::Parked, Some(parts)) => parts,
                _ => return,
            };
            debug!(peer = %self.peer, "parked idle connection");
            self.session_memo.forget();
            super::trim::connection_parked();
            let (mut stream, leftover, parked_service) = take_apart(parts);
            service = parked_service;
            let prefix = match leftover {
                Some(leftover) => leftover,
                // Nothing waiting: the connection waits here holding nothing but the stream.
                None => match self.next_byte(&mut stream).await {
                    Some(byte) => Bytes::copy_from_slice(&[byte]),
                    None => return,
                },
            };
            io = Prefixed::new(stream, prefix);
        }
    }

    pub(super) async fn drive<C>(
        &mut self,
        mut connection: Pin<&mut C>,
        graceful_shutdown: impl Fn(Pin<&mut C>),
        may_park: bool,
    ) -> Ended
    where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let (activity, limits, peer) = (self.activity, self.limits, self.peer);
        // hyper's header timer starts only once it knows the protocol; a peer that never sends
        // a byte gets the same deadline from here instead of living until the idle timeout.
        let first_byte_deadline = tokio::time::sleep(limits.header_read_timeout);
        tokio::pin!(first_byte_deadline);
        let mut first_byte_checked = !self.first_round;
        self.first_round = false;
        let mut shutting_down = false;
        let mut parking = false;
        loop {
            tokio::select! {
                () = &mut first_byte_deadline, if !first_byte_checked => {
                    first_byte_checked = true;
                    if !activity.has_read() {
                        debug!(peer = %peer, "closing connection that sent nothing");
                        return Ended::Closed;
                    }
                }
                result = connection.as_mut() => {
                    return match result {
                        Ok(()) if parking => Ended::Parked,
                        Ok(()) => Ended::Closed,
                        Err(error) => {
                            debug!(peer = %peer, %error, "connection ended with an error");
                            if let Some(status) = head::refused_by_hyper(&error) {
                                (self.on_refused_head)(status);
                            }
                            Ended::Closed
                        }
                    };
                }
                quiet = activity.quiet(limits.idle_timeout, (may_park && !parking).then_some(PARK_AFTER)), if !shutting_down => {
                    if quiet == Quiet::Idle {
                        debug!(peer = %peer, "closing idle connection");
                        return Ended::Closed;
                    }
                    parking = true;
                    activity.set_parking(true);
                    graceful_shutdown(connection.as_mut());
                }
                changed = self.shutdown.changed(), if !shutting_down => {
                    // A closed channel means the server is gone: shut down the same way.
                    let _ = changed;
                    shutting_down = true;
                    if parking {
                        // hyper is already ending the connection; let it shut the stream.
                        parking = false;
                        activity.set_parking(false);
                    } else {
                        graceful_shutdown(connection.as_mut());
                    }
                }
            }
        }
    }

    /// Waits on a parked connection for the first byte of its next request; `None` when the peer
    /// closes, errs, idles past `idle_timeout`, or the server shuts down first.
    async fn next_byte<T: AsyncRead + Unpin>(&mut self, stream: &mut TrackedIo<T>) -> Option<u8> {
        if *self.shutdown.borrow() {
            return None;
        }
        let mut byte = [0u8; 1];
        tokio::select! {
            read = stream.read(&mut byte) => match read {
                Ok(1) => Some(byte[0]),
                Ok(_) => None,
                Err(error) => {
                    debug!(peer = %self.peer, %error, "parked connection failed");
                    None
                }
            },
            () = self.activity.idle_for(self.limits.idle_timeout) => {
                debug!(peer = %self.peer, "closing idle connection");
                None
            }
            _ = self.shutdown.changed() => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: http::Version, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::get("/").version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn only_an_http11_request_without_close_or_a_body_keeps_the_connection() {
        use http::Version;
        let keeps = |version, headers: &[(&str, &str)]| keeps_alive(&request(version, headers));
        assert!(keeps(Version::HTTP_11, &[("accept", "*/*")]));
        assert!(keeps(Version::HTTP_11, &[("connection", "Keep-Alive")]));
        assert!(keeps(Version::HTTP_11, &[("content-length", "0")]));
        assert!(keeps(
            Version::HTTP_11,
            &[("connection", "closed"), ("x-close", "close")]
        ));
        assert!(!keeps(Version::HTTP_10, &[]));
        assert!(!keeps(Version::HTTP_2, &[]));
        assert!(!keeps(
            Version::HTTP_11,
            &[("connection", "keep-alive, Close")]
        ));
        assert!(!keeps(
            Version::HTTP_11,
            &[("connection", "keep-alive"), ("connection", " close ")]
        ));
        assert!(!keeps(Version::HTTP_11, &[("content-length", "5")]));
        assert!(!keeps(
            Version::HTTP_11,
            &[("transfer-encoding", "chunked")]
        ));
    }
}
