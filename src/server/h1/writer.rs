//! Writing answers to an HTTP/1 client: the head, then the body as the head framed it (small
//! frames coalesced into one write, a large upstream body spliced socket to socket), every write
//! under a stall limit.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{Response, StatusCode};
use hyper::body::Body;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::debug;

use super::response_head::{Asked, ResponseFraming, encode_response_head, write_chunk_size};
use super::splice::{SpliceTarget, splice_exactly};
use crate::proxy::upstream_h1::{SpliceOffer, Spliceable, UpstreamExtras};

/// Body frames up to this size are copied behind the head (or the frame before) and go out in
/// one write; larger ones are written from where they are, as is the frame that ends a body of
/// known length on plain TCP (see `write_response`).
const COPY_FRAME_UP_TO: usize = 16 * 1024;
/// Copied bytes are written out once this many are waiting.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

/// How an answer left the connection.
pub(super) enum Written {
    KeepAlive,
    Close,
    Switched,
}

/// A client's socket written under a stall limit: a write that the client lets no byte through
/// for `limit` (it stopped reading) fails, and the connection ends, as it did at the idle timeout
/// under hyper. Time spent waiting for the answer's next frame is not counted.
pub(super) struct Stalling<'a, T> {
    io: &'a mut T,
    limit: Duration,
}

impl<'a, T: AsyncWrite + Unpin> Stalling<'a, T> {
    pub(super) fn new(io: &'a mut T, limit: Duration) -> Self {
        Stalling { io, limit }
    }

    pub(super) async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all_buf(bytes).await
    }

    async fn write_all_buf(&mut self, mut buf: impl Buf) -> std::io::Result<()> {
        while buf.has_remaining() {
            let io = &mut *self.io;
            let pieces = &buf;
            let write = std::future::poll_fn(|cx| {
                if io.is_write_vectored() {
                    let mut slices = [std::io::IoSlice::new(&[]); 4];
                    let count = pieces.chunks_vectored(&mut slices);
                    std::pin::Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count])
                } else {
                    std::pin::Pin::new(&mut *io).poll_write(cx, pieces.chunk())
                }
            });
            let written = match Self::limited_by(self.limit, write).await? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                written => written,
            };
            buf.advance(written);
        }
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        Self::limited_by(self.limit, self.io.flush()).await
    }

    pub(super) async fn shutdown(&mut self) -> std::io::Result<()> {
        Self::limited_by(self.limit, self.io.shutdown()).await
    }

    /// `io` under the stall limit. Tried once first: a write the socket takes at once (nearly
    /// all of them) then costs no timer.
    async fn limited_by<R>(
        limit: Duration,
        io: impl Future<Output = std::io::Result<R>>,
    ) -> std::io::Result<R> {
        let mut io = pin!(io);
        if let Poll::Ready(done) =
            std::future::poll_fn(|cx| Poll::Ready(io.as_mut().poll(cx))).await
        {
            return done;
        }
        match tokio::time::timeout(limit, io).await {
            Ok(done) => done,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client took no bytes for {limit:?}"),
            )),
        }
    }
}

impl<T: SpliceTarget + AsyncWrite + Unpin> Stalling<'_, T> {
    /// The client's socket when bytes can be spliced into it.
    fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        self.io.tcp()
    }

    /// Waits, under the stall limit, until every byte written is out on the socket.
    async fn written(&mut self) -> std::io::Result<()> {
        let io = &mut *self.io;
        Self::limited_by(self.limit, std::future::poll_fn(|cx| io.poll_written(cx))).await
    }
}

/// Writes the answer: its head, then its body framed as the head said, each write under the
/// `stall` limit.
pub(super) async fn write_response<T, B>(
    io: &mut T,
    response: Box<Response<B>>,
    asked: Asked,
    out: &mut Vec<u8>,
    stall: Duration,
) -> std::io::Result<Written>
where
    T: AsyncWrite + SpliceTarget + Unpin,
    B: Body<Data = Bytes> + UpstreamExtras,
    B::Error: std::fmt::Display,
{
    let mut io = Stalling::new(io, stall);
    if response.status().is_informational() && response.status() != StatusCode::SWITCHING_PROTOCOLS
    {
        // An interim answer as the final one would leave the client waiting for another: the
        // gateway never makes one (the upstream client reads past them), and hyper turned one
        // into a 500 and closed, as here.
        debug!(status = %response.status(), "an interim status as the answer; 500 instead");
        let mut refusal = Response::new(http_body_util::Empty::<Bytes>::new());
        *refusal.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        let asked = Asked {
            keep_alive: false,
            ..asked
        };
        return Box::pin(write_response(io.io, Box::new(refusal), asked, out, stall)).await;
    }
    let (parts, body) = response.into_parts();
    let mut body = pin!(body);
    let exact = body.size_hint().exact();
    out.clear();
    let status = parts.status;
    let encoded = encode_response_head(
        status,
        &parts.headers,
        body.passed_fields(),
        exact,
        asked,
        out,
    );
    let framing = encoded.framing;
    // A large body from the upstream, to a plain TCP client: moved socket to socket.
    if let ResponseFraming::Length(length) = framing
        && io.tcp().is_some()
        && let Some(offer) = body.splice_offer()
        && let Some(spliceable) = offer.take()
    {
        return splice_response(&mut io, out, spliceable, length, offer, encoded.keep_alive).await;
    }
    drop(parts);
    let mut sent: u64 = 0;
    if framing != ResponseFraming::None {
        loop {
            // Frames ready now join the bytes already waiting; otherwise those go out first.
            let frame =
                match std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
                    Poll::Ready(frame) => frame,
                    Poll::Pending if out.is_empty() => {
                        std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
                    }
                    Poll::Pending => {
                        io.write_all(out).await?;
                        io.flush().await?;
                        out.clear();
                        continue;
                    }
                };
            let data = match frame {
                None => break,
                Some(Err(error)) => {
                    debug!(%error, "response body failed; closing the connection");
                    io.write_all(out).await?;
                    io.flush().await?;
                    return Ok(Written::Close);
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers are not sent on.
                    Err(_) => continue,
                },
            };
            if data.is_empty() {
                continue;
            }
            let mut data = data;
            if let ResponseFraming::Length(length) = framing {
                let room = length - sent;
                if data.len() as u64 > room {
                    debug!(
                        length,
                        "response body longer than its length; cut and closed"
                    );
                    data.truncate(room as usize);
                    io.write_all(out).await?;
                    io.write_all(&data).await?;
                    io.flush().await?;
                    return Ok(Written::Close);
                }
            }
            sent += data.len() as u64;
            if framing == ResponseFraming::Chunked {
                write_chunk_size(out, data.len());
            }
            // The frame that ends a body of known length, to a plain TCP client, goes out with
            // the bytes before it in one `writev` from where it lies: copied behind the head it
            // would be written just the same, after a copy into cache lines not touched since the
            // last answer (a small answer's only copy in casegate). Over TLS the copy stays:
            // rustls gathers a vectored write's pieces into a `Vec` of its own before sealing
            // them, which callgrind counted at 200 instructions a request more than the copy.
            let ends_the_body =
                matches!(framing, ResponseFraming::Length(length) if sent == length);
            if data.len() <= COPY_FRAME_UP_TO && !(ends_the_body && io.tcp().is_some()) {
                out.extend_from_slice(&data);
            } else {
                let mut pieces = Buf::chain(&out[..], data);
                io.write_all_buf(&mut pieces).await?;
                out.clear();
            }
            if framing == ResponseFraming::Chunked {
                out.extend_from_slice(b"\r\n");
            }
            if out.len() >= WRITE_BATCH {
                io.write_all(out).await?;
                out.clear();
            }
        }
        if framing == ResponseFraming::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    io.write_all(out).await?;
    io.flush().await?;
    out.clear();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Written::Switched);
    }
    let complete = match framing {
        ResponseFraming::Length(length) => sent == length,
        ResponseFraming::UntilClose => false,
        _ => true,
    };
    Ok(if complete && encoded.keep_alive {
        Written::KeepAlive
    } else {
        Written::Close
    })
}

/// The answer to a head that could not be read: the status, no body, and the connection closed.
pub(super) async fn refuse<T: AsyncWrite + Unpin>(
    io: &mut T,
    status: StatusCode,
    out: &mut Vec<u8>,
    stall: Duration,
) {
    let mut io = Stalling::new(io, stall);
    out.clear();
    let asked = Asked {
        head: false,
        version: http::Version::HTTP_11,
        keep_alive: false,
    };
    encode_response_head(status, &http::HeaderMap::new(), None, Some(0), asked, out);
    let _ = io.write_all(out).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

/// Writes the head in `out`, the body bytes the upstream's buffer already holds, then moves the
/// rest from the upstream's socket to the client's in the kernel. `length` is the body's, as the
/// head said.
async fn splice_response<T: AsyncWrite + SpliceTarget + Unpin>(
    io: &mut Stalling<'_, T>,
    out: &mut Vec<u8>,
    mut spliceable: Spliceable,
    length: u64,
    offer: &SpliceOffer,
    keep_alive: bool,
) -> std::io::Result<Written> {
    if spliceable.remaining() != length {
        // Not the body the head was written for; never guessed at.
        debug!(
            length,
            "spliced body's length differs from the head's; closing"
        );
        return Ok(Written::Close);
    }
    let buffered = spliceable.take_buffered();
    out.extend_from_slice(&buffered);
    io.write_all(out).await?;
    io.flush().await?;
    // The head goes before the first spliced byte.
    io.written().await?;
    out.clear();
    offer.record_moved(buffered.len() as u64);
    let Some(client) = io.tcp() else {
        return Ok(Written::Close);
    };
    let mut moved = 0;
    let result = splice_exactly(
        spliceable.upstream(),
        client,
        spliceable.remaining(),
        io.limit,
        &mut moved,
    )
    .await;
    offer.record_spliced(moved);
    spliceable.took(moved);
    if let Err(error) = result {
        debug!(%error, "moving the response body failed; closing the connection");
        return Ok(Written::Close);
    }
    spliceable.finish();
    Ok(if keep_alive {
        Written::KeepAlive
    } else {
        Written::Close
    })
}
