//! casegate's own HTTP/1.1 server side: one connection's requests, read, handed to the gateway and
//! answered, in the connection's task.
//!
//! It replaced hyper's HTTP/1 server connection (hyper still serves HTTP/2) for what an edge
//! gateway spends most of its time on: hyper's generic dispatcher, its buffers and its header-map
//! round trips were a quarter of casegate's instructions per guest request, an idle connection had
//! to be taken apart and rebuilt to give its buffers back, and a large body could not leave by
//! any path but hyper's copy. What it must get exactly right is where one request ends and the
//! next begins: [`request_head`] reads heads as strictly as hyper did, [`request_body`] reads a
//! body only as far as its framing says, and a connection whose request body was not read to its
//! end is closed after the answer, never read on.
//!
//! The loop: wait for a head (the first-byte deadline on a new connection, the idle timeout
//! between requests, parked after [`PARK_AFTER`] with no buffer held), read it within
//! `header_read_timeout` of its first byte, run the gateway's future while reading the body on
//! demand, write the answer (coalescing small frames into one write), and go round again while
//! both sides keep the connection alive.

pub mod request_body;
pub mod request_head;
pub mod response_head;
pub mod splice;
pub mod upgrade;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use crate::proxy::upstream_h1::response_head::KnownNames;
use crate::proxy::upstream_h1::{SpliceOffer, Spliceable};
use request_body::{BodyDecoder, BodyReadError, BodySender, Demand, H1Body, body_channel};
use request_head::{HeadError, HeadLimits, RequestHead, parse_request_head};
use response_head::{Asked, ResponseFraming, encode_response_head, write_chunk_size};
use splice::{SpliceTarget, splice_exactly};
use upgrade::PendingUpgrade;

/// A keep-alive connection idle this long between requests is parked: its read buffer is freed
/// and only the stream waits for the next request. nginx frees its buffers as soon as a
/// connection goes idle; a second spares a browser still fetching a page's resources the
/// allocation.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// Reads grow the buffer by this much when it is full (hyper's initial read buffer).
const READ_CHUNK: usize = 8 * 1024;
/// Body frames up to this size are copied behind the head (or the frame before) and go out in
/// one write; larger ones are written from where they are.
const COPY_FRAME_UP_TO: usize = 16 * 1024;
/// Copied bytes are written out once this many are waiting.
const WRITE_BATCH: usize = 64 * 1024;

/// What a connection's loop needs to know, set once per listener.
#[derive(Debug, Clone, Copy)]
pub struct Http1Settings {
    pub head: HeadLimits,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// What the loop tells the rest of the server.
pub trait ConnectionEvents: Send + Sync {
    /// A request head was refused before any request existed (logged and counted by the caller).
    fn refused_head(&self, status: StatusCode);
    /// The connection was parked between requests.
    fn parked(&self);
}

/// Serves HTTP/1.1 on `io` until either side ends the connection. `read` holds bytes already
/// read from it (the protocol sniff).
#[allow(clippy::too_many_arguments)]
pub async fn serve<T, H, F, B>(
    mut io: T,
    read: Bytes,
    peer: SocketAddr,
    settings: Http1Settings,
    mut shutdown: watch::Receiver<bool>,
    events: &dyn ConnectionEvents,
    mut handle: H,
) where
    T: AsyncRead + AsyncWrite + SpliceTarget + Unpin + Send + 'static,
    H: FnMut(Request<H1Body>) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut buffer = BytesMut::from(read);
    let mut names = KnownNames::default();
    let mut out = Vec::new();
    let mut first = true;
    loop {
        let waiting = Waiting {
            first,
            peer,
            settings,
        };
        let head = match waiting
            .next_head(
                &mut io,
                &mut buffer,
                &mut names,
                &mut out,
                &mut shutdown,
                events,
            )
            .await
        {
            Next::Head(head) => head,
            Next::Close => return,
            Next::Refused(error) => {
                debug!(%peer, %error, "request head refused");
                let status = error.status();
                events.refused_head(status);
                refuse(&mut io, status, &mut out, settings.idle_timeout).await;
                return;
            }
        };
        first = false;
        let asked = Asked {
            head: head.method == http::Method::HEAD,
            version: head.version,
            keep_alive: head.keep_alive,
        };
        let expect_continue = head.expect_continue;
        let mut decoder = BodyDecoder::new(head.framing);
        let (sender, request, upgrade) = into_request(head);
        let response = {
            let handled = pin!(handle(request));
            let pump = BodyPump {
                sender: &sender,
                decoder: &mut decoder,
                expect_continue,
                continue_sent: 0,
            };
            pump.run_beside(
                handled,
                &mut io,
                &mut buffer,
                settings.head.max_bytes,
                settings.idle_timeout,
            )
            .await
        };
        let Some(response) = response else {
            debug!(%peer, "client closed the connection before the answer");
            return;
        };
        drop(sender);
        // A body the gateway did not read is skipped when it has already arrived, as hyper did;
        // one still on its way leaves the connection at an unknown place in the client's bytes,
        // and it closes after the answer.
        skip_arrived_body(&mut decoder, &mut buffer, &mut io).await;
        let keep_alive = asked.keep_alive && decoder.is_done() && !*shutdown.borrow();
        let asked = Asked {
            keep_alive,
            ..asked
        };
        match write_response(&mut io, response, asked, &mut out, settings.idle_timeout).await {
            Ok(Written::KeepAlive) => {}
            Ok(Written::Close) => {
                let _ = Stalling::new(&mut io, settings.idle_timeout)
                    .shutdown()
                    .await;
                return;
            }
            Ok(Written::Switched) => {
                // Only a request that asked to switch may; any other 101 ends the connection.
                if let Some(upgrade) = upgrade {
                    upgrade.fulfil(Box::new(io), buffer.freeze());
                }
                return;
            }
            Err(error) => {
                debug!(%peer, %error, "connection failed while answering");
                return;
            }
        }
        if out.capacity() > WRITE_BATCH * 2 {
            out = Vec::new();
        }
    }
}

/// The request the gateway sees, the loop's end of its body, and of its upgrade if it may switch.
fn into_request(head: RequestHead) -> (BodySender, Request<H1Body>, Option<PendingUpgrade>) {
    let (sender, body) = body_channel(head.framing);
    let mut request = Request::new(body);
    *request.method_mut() = head.method;
    *request.uri_mut() = head.uri;
    *request.version_mut() = head.version;
    *request.headers_mut() = head.headers;
    let upgrade = head.wants_upgrade.then(|| {
        let (pending, on_upgrade) = upgrade::pending();
        request.extensions_mut().insert(on_upgrade);
        pending
    });
    (sender, request, upgrade)
}

// The head is what nearly every wait ends with; boxing it would cost an allocation a request.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(RequestHead),
    Refused(HeadError),
    Close,
}

/// Waiting for and reading one request head.
struct Waiting {
    first: bool,
    peer: SocketAddr,
    settings: Http1Settings,
}

impl Waiting {
    async fn next_head<T: AsyncRead + Unpin>(
        &self,
        io: &mut T,
        buffer: &mut BytesMut,
        names: &mut KnownNames,
        out: &mut Vec<u8>,
        shutdown: &mut watch::Receiver<bool>,
        events: &dyn ConnectionEvents,
    ) -> Next {
        let settings = &self.settings;
        let waiting_since = Instant::now();
        // Set by the head's first byte.
        let mut head_deadline = None;
        let mut parked = false;
        // The buffer's length when it last held part of a head: it is parsed again only once the
        // bytes read since may end the head (or fill the limit), as hyper did.
        let mut partial_len = None;
        loop {
            if !buffer.is_empty() {
                head_deadline.get_or_insert_with(|| Instant::now() + settings.header_read_timeout);
                let may_be_whole = partial_len.is_none_or(|seen| head_may_end(buffer, seen))
                    || buffer.len() >= settings.head.max_bytes;
                if may_be_whole {
                    match parse_request_head(buffer, settings.head, names) {
                        Ok(Some(head)) => return Next::Head(head),
                        Ok(None) => {}
                        Err(error) => return Next::Refused(error),
                    }
                }
                partial_len = Some(buffer.len());
            }
            let deadline = match head_deadline {
                Some(deadline) => deadline,
                // A new connection gets the head timeout for its first byte too.
                None if self.first => waiting_since + settings.header_read_timeout,
                None if parked => waiting_since + settings.idle_timeout,
                None => waiting_since + PARK_AFTER.min(settings.idle_timeout),
            };
            if *shutdown.borrow() && head_deadline.is_none() {
                return Next::Close;
            }
            tokio::select! {
                read = read_head_bytes(io, buffer, parked) => match read {
                    Ok(0) => return Next::Close,
                    Ok(_) => {}
                    Err(error) => {
                        debug!(peer = %self.peer, %error, "connection failed while reading a head");
                        return Next::Close;
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    match head_deadline {
                        Some(_) => {
                            debug!(peer = %self.peer, "request head not read in time");
                            return Next::Close;
                        }
                        None if self.first => {
                            debug!(peer = %self.peer, "closing connection that sent nothing");
                            return Next::Close;
                        }
                        None if parked || settings.idle_timeout <= PARK_AFTER => {
                            debug!(peer = %self.peer, "closing idle connection");
                            return Next::Close;
                        }
                        None => {
                            debug!(peer = %self.peer, "parked idle connection");
                            parked = true;
                            *buffer = BytesMut::new();
                            *names = KnownNames::default();
                            // The last answer's write buffer (up to 128 KiB) goes too.
                            *out = Vec::new();
                            events.parked();
                        }
                    }
                }
                changed = shutdown.changed(), if head_deadline.is_none() => {
                    // A closed channel means the server is gone: shut down the same way.
                    let _ = changed;
                    return Next::Close;
                }
            }
        }
    }
}

/// Whether the bytes after the first `seen` of `bytes` may end a head: an empty line (CRLF CRLF,
/// or bare LFs), looked for from just before them (hyper's `is_complete_fast`).
fn head_may_end(bytes: &[u8], seen: usize) -> bool {
    let new = &bytes[seen.saturating_sub(3).min(bytes.len())..];
    new.windows(2).any(|pair| pair == b"\n\n") || new.windows(3).any(|three| three == b"\n\r\n")
}

/// Reads more of a head into `buffer`. A parked connection with nothing buffered waits for its
/// next request's first byte holding no buffer (the read buffer is allocated when it arrives).
async fn read_head_bytes<T: AsyncRead + Unpin>(
    io: &mut T,
    buffer: &mut BytesMut,
    parked: bool,
) -> std::io::Result<usize> {
    if parked && buffer.capacity() == 0 {
        let mut byte = [0u8; 1];
        let read = io.read(&mut byte).await?;
        if read > 0 {
            buffer.reserve(READ_CHUNK);
            buffer.extend_from_slice(&byte[..read]);
        }
        return Ok(read);
    }
    if buffer.capacity() - buffer.len() < READ_CHUNK / 2 {
        buffer.reserve(READ_CHUNK);
    }
    io.read_buf(buffer).await
}

/// Reads a request's body off the socket as the gateway asks for it.
struct BodyPump<'a> {
    sender: &'a BodySender,
    decoder: &'a mut BodyDecoder,
    expect_continue: bool,
    /// How much of the 100 Continue is written: an answer that comes while it is half-written
    /// must first finish it.
    continue_sent: usize,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl BodyPump<'_> {
    /// Drives `handled` to its answer, reading the body for it meanwhile. `None` when the client
    /// closed the connection first: the answer is dropped unwritten (and logged as 499).
    async fn run_beside<T, F, B>(
        mut self,
        mut handled: std::pin::Pin<&mut F>,
        io: &mut T,
        buffer: &mut BytesMut,
        read_limit: usize,
        stall: Duration,
    ) -> Option<Response<B>>
    where
        T: AsyncRead + AsyncWrite + Unpin,
        F: Future<Output = Response<B>>,
    {
        if self.decoder.is_done() {
            self.sender.end();
        }
        if !self.decoder.is_done() {
            let answered = tokio::select! {
                biased;
                response = handled.as_mut() => Some(response),
                () = self.pump(io, buffer) => None,
            };
            if let Some(response) = answered {
                if (1..CONTINUE.len()).contains(&self.continue_sent) {
                    // A failure here fails the answer's own write too.
                    let rest = &CONTINUE[self.continue_sent..];
                    let _ = Stalling::new(&mut *io, stall).write_all(rest).await;
                }
                return Some(response);
            }
        }
        tokio::select! {
            biased;
            response = handled.as_mut() => Some(response),
            () = watch_for_close(io, buffer, read_limit) => None,
        }
    }

    /// Hands over frames while they are wanted; returns at the body's end, on an error (told to
    /// the body), or when the gateway drops the body.
    async fn pump<T: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut T, buffer: &mut BytesMut) {
        loop {
            if self.sender.demand().await == Demand::Gone {
                return;
            }
            if self.expect_continue {
                while self.continue_sent < CONTINUE.len() {
                    match io.write(&CONTINUE[self.continue_sent..]).await {
                        Ok(0) => {
                            let error = std::io::Error::from(std::io::ErrorKind::WriteZero);
                            self.sender.send(Err(BodyReadError::Io(error.to_string())));
                            return;
                        }
                        Ok(written) => self.continue_sent += written,
                        Err(error) => {
                            self.sender.send(Err(BodyReadError::Io(error.to_string())));
                            return;
                        }
                    }
                }
                self.expect_continue = false;
                if let Err(error) = io.flush().await {
                    self.sender.send(Err(BodyReadError::Io(error.to_string())));
                    return;
                }
            }
            loop {
                match self.decoder.decode(buffer) {
                    Ok(Some(data)) => {
                        self.sender.send(Ok(data));
                        break;
                    }
                    Ok(None) if self.decoder.is_done() => {
                        self.sender.end();
                        return;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        self.sender.send(Err(BodyReadError::Chunked(error)));
                        return;
                    }
                }
                if buffer.capacity() - buffer.len() < READ_CHUNK / 2 {
                    buffer.reserve(READ_CHUNK * 2);
                }
                match io.read_buf(buffer).await {
                    Ok(0) => {
                        self.sender.send(Err(BodyReadError::Incomplete));
                        return;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        self.sender.send(Err(BodyReadError::Io(error.to_string())));
                        return;
                    }
                }
            }
        }
    }
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
    offer.record_moved(moved);
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

/// The most body bytes skipped to keep a connection whose request body was not read.
const SKIP_AT_MOST: usize = 64 * 1024;

/// Skips what is left of an unread request body framed by its length if it is all in the buffer
/// or the socket already (never waiting for more), up to [`SKIP_AT_MOST`] bytes. A chunked body
/// left unread is never skipped: the gateway refuses chunked framing it does not trust unread
/// (`Transfer-Encoding: gzip, chunked`), and after such a refusal the connection closes, as it
/// did under hyper.
async fn skip_arrived_body<T: AsyncRead + Unpin>(
    decoder: &mut BodyDecoder,
    buffer: &mut BytesMut,
    io: &mut T,
) {
    if !matches!(decoder, BodyDecoder::Length(_)) {
        return;
    }
    let mut skipped = 0;
    while !decoder.is_done() && skipped <= SKIP_AT_MOST {
        match decoder.decode(buffer) {
            Ok(Some(data)) => skipped += data.len(),
            Ok(None) if decoder.is_done() => return,
            Ok(None) => {
                if buffer.capacity() - buffer.len() < READ_CHUNK / 2 {
                    buffer.reserve(READ_CHUNK);
                }
                match read_now(io, buffer).await {
                    Some(read) if read > 0 => {}
                    _ => return,
                }
            }
            Err(_) => return,
        }
    }
}

/// One read if bytes are there now; `None` when the read would wait.
async fn read_now<T: AsyncRead + Unpin>(io: &mut T, buffer: &mut BytesMut) -> Option<usize> {
    let mut read = pin!(io.read_buf(buffer));
    std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
        Poll::Ready(Ok(read)) => Poll::Ready(Some(read)),
        Poll::Ready(Err(_)) | Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Reads ahead while the gateway works on an answer, as hyper did: a client that closes the
/// connection is gone, and its request is abandoned rather than answered into a closed socket.
/// Bytes that arrive (a pipelined request) wait in the buffer, up to `read_limit`.
async fn watch_for_close<T: AsyncRead + Unpin>(
    io: &mut T,
    buffer: &mut BytesMut,
    read_limit: usize,
) {
    loop {
        if buffer.len() >= read_limit {
            return std::future::pending().await;
        }
        if buffer.capacity() - buffer.len() < READ_CHUNK / 2 {
            buffer.reserve(READ_CHUNK);
        }
        match io.read_buf(buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// How an answer left the connection.
enum Written {
    KeepAlive,
    Close,
    Switched,
}

/// A client's socket written under a stall limit: a write that the client lets no byte through
/// for `limit` (it stopped reading) fails, and the connection ends, as it did at the idle timeout
/// under hyper. Time spent waiting for the answer's next frame is not counted.
struct Stalling<'a, T> {
    io: &'a mut T,
    limit: Duration,
}

impl<'a, T: AsyncWrite + Unpin> Stalling<'a, T> {
    fn new(io: &'a mut T, limit: Duration) -> Self {
        Stalling { io, limit }
    }

    fn stalled(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the client took no bytes for {:?}", self.limit),
        )
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
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
            let written = match tokio::time::timeout(self.limit, write).await {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(written) => written?,
                Err(_) => return Err(self.stalled()),
            };
            buf.advance(written);
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match tokio::time::timeout(self.limit, self.io.flush()).await {
            Ok(flushed) => flushed,
            Err(_) => Err(self.stalled()),
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match tokio::time::timeout(self.limit, self.io.shutdown()).await {
            Ok(shut) => shut,
            Err(_) => Err(self.stalled()),
        }
    }
}

impl<T: SpliceTarget> Stalling<'_, T> {
    /// The client's socket when bytes can be spliced into it.
    fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        self.io.tcp()
    }
}

/// Writes the answer: its head, then its body framed as the head said, each write under the
/// `stall` limit.
async fn write_response<T, B>(
    io: &mut T,
    response: Response<B>,
    asked: Asked,
    out: &mut Vec<u8>,
    stall: Duration,
) -> std::io::Result<Written>
where
    T: AsyncWrite + SpliceTarget + Unpin,
    B: Body<Data = Bytes>,
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
        return Box::pin(write_response(io.io, refusal, asked, out, stall)).await;
    }
    let (parts, body) = response.into_parts();
    let mut body = pin!(body);
    let exact = body.size_hint().exact();
    out.clear();
    let status = parts.status;
    let encoded = encode_response_head(status, &parts.headers, exact, asked, out);
    let framing = encoded.framing;
    // A large body from the upstream, to a plain TCP client: moved socket to socket.
    if let ResponseFraming::Length(length) = framing
        && io.tcp().is_some()
        && let Some(offer) = parts.extensions.get::<SpliceOffer>()
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
            if data.len() <= COPY_FRAME_UP_TO {
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
async fn refuse<T: AsyncWrite + Unpin>(
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
    encode_response_head(status, &http::HeaderMap::new(), Some(0), asked, out);
    let _ = io.write_all(out).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    struct NoEvents;

    impl ConnectionEvents for NoEvents {
        fn refused_head(&self, _status: StatusCode) {}
        fn parked(&self) {}
    }

    #[tokio::test]
    async fn a_parked_connection_holds_no_buffer_of_its_last_answer() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let waiting = Waiting {
            first: false,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            settings: Http1Settings {
                head: HeadLimits {
                    max_bytes: 8192,
                    max_fields: 100,
                },
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
            },
        };
        let mut buffer = BytesMut::new();
        let mut names = KnownNames::default();
        // What a coalesced answer of small frames leaves behind.
        let mut out = Vec::with_capacity(WRITE_BATCH * 2);
        let (_shutdown, mut shutdown_rx) = watch::channel(false);
        let next = waiting.next_head(
            &mut server,
            &mut buffer,
            &mut names,
            &mut out,
            &mut shutdown_rx,
            &NoEvents,
        );
        let later = async {
            tokio::time::sleep(PARK_AFTER * 2).await;
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        };
        let (next, ()) = tokio::join!(next, later);
        assert!(matches!(next, Next::Head(_)));
        assert_eq!(out.capacity(), 0, "the write buffer outlived the parking");
    }

    #[tokio::test]
    async fn an_answer_that_cuts_a_100_continue_short_follows_a_whole_one() {
        // A 10-byte pipe the client does not read yet: the 100 Continue goes out in pieces.
        let (mut client, server) = tokio::io::duplex(10);
        let settings = Http1Settings {
            head: HeadLimits {
                max_bytes: 8192,
                max_fields: 100,
            },
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        };
        let (_shutdown, shutdown_rx) = watch::channel(false);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let served = serve(
            server,
            Bytes::new(),
            peer,
            settings,
            shutdown_rx,
            &NoEvents,
            |request: Request<H1Body>| async move {
                use http_body_util::BodyExt;
                // Wants the body, then answers without it (as a body too slow to come is).
                let mut body = request.into_body();
                let _ = tokio::time::timeout(Duration::from_millis(200), body.frame()).await;
                Response::new(http_body_util::Empty::<Bytes>::new())
            },
        );
        let client_side = async {
            let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
            client.write_all(head).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            String::from_utf8(received).unwrap()
        };
        let ((), received) = tokio::join!(served, client_side);
        let answer = received
            .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
            .unwrap_or(&received);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{received:?}");
    }

    /// A client sending its head a few bytes at a time (every other read would wait).
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        piece: usize,
        wait: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = &mut *self;
            this.wait = !this.wait;
            if this.wait || this.at == this.bytes.len() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let end = (this.at + this.piece)
                .min(this.bytes.len())
                .min(this.at + buf.remaining());
            buf.put_slice(&this.bytes[this.at..end]);
            this.at = end;
            Poll::Ready(Ok(()))
        }
    }

    /// A head is parsed again only once an empty line may have arrived (hyper's check), not
    /// on every read: a big head trickled in small pieces costs its length, not its square.
    #[tokio::test]
    async fn a_big_head_trickled_in_small_pieces_is_read_in_linear_time() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for field in 0..60 {
            head.extend_from_slice(format!("x-{field}: {}\r\n", "a".repeat(16_000)).as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let mut client = Trickle {
            bytes: head,
            at: 0,
            piece: 128,
            wait: false,
        };
        let waiting = Waiting {
            first: true,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            settings: Http1Settings {
                // max_header_bytes' ceiling.
                head: HeadLimits {
                    max_bytes: 1024 * 1024,
                    max_fields: 100,
                },
                header_read_timeout: Duration::from_secs(60),
                idle_timeout: Duration::from_secs(60),
            },
        };
        let mut buffer = BytesMut::new();
        let mut names = KnownNames::default();
        let mut out = Vec::new();
        let (_shutdown, mut shutdown_rx) = watch::channel(false);
        let next = waiting.next_head(
            &mut client,
            &mut buffer,
            &mut names,
            &mut out,
            &mut shutdown_rx,
            &NoEvents,
        );
        let next = tokio::time::timeout(Duration::from_secs(10), next)
            .await
            .expect("a 1 MiB head in 128-byte pieces took more than 10 s to read");
        assert!(matches!(next, Next::Head(_)));
    }

    /// The stream, noting the room offered to the first read after the connection parked.
    struct Offered<T> {
        io: T,
        parked: Arc<AtomicBool>,
        first_read_after_parking: Arc<Mutex<Option<usize>>>,
    }

    impl<T: AsyncRead + Unpin> AsyncRead for Offered<T> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.parked.load(Ordering::SeqCst) {
                let mut first = self.first_read_after_parking.lock().unwrap();
                first.get_or_insert(buf.remaining());
            }
            std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    struct ParkEvents(Arc<AtomicBool>);

    impl ConnectionEvents for ParkEvents {
        fn refused_head(&self, _status: StatusCode) {}
        fn parked(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_parked_connection_waits_for_its_next_request_without_a_read_buffer() {
        let (mut client, server) = tokio::io::duplex(1024);
        let parked = Arc::new(AtomicBool::new(false));
        let offered = Arc::new(Mutex::new(None));
        let mut server = Offered {
            io: server,
            parked: Arc::clone(&parked),
            first_read_after_parking: Arc::clone(&offered),
        };
        let waiting = Waiting {
            first: false,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            settings: Http1Settings {
                head: HeadLimits {
                    max_bytes: 8192,
                    max_fields: 100,
                },
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
            },
        };
        let mut buffer = BytesMut::new();
        let mut names = KnownNames::default();
        let mut out = Vec::new();
        let (_shutdown, mut shutdown_rx) = watch::channel(false);
        let events = ParkEvents(Arc::clone(&parked));
        let next = waiting.next_head(
            &mut server,
            &mut buffer,
            &mut names,
            &mut out,
            &mut shutdown_rx,
            &events,
        );
        let later = async {
            tokio::time::sleep(PARK_AFTER * 2).await;
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        };
        let (next, ()) = tokio::join!(next, later);
        assert!(matches!(next, Next::Head(_)));
        assert!(parked.load(Ordering::SeqCst));
        let offered = offered.lock().unwrap().expect("read after parking");
        assert!(
            offered <= 16,
            "a parked connection waits with a {offered}-byte read buffer"
        );
    }

    #[tokio::test]
    async fn an_interim_status_as_the_answer_is_a_500_and_the_end_of_the_connection() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let mut answer = Response::new(http_body_util::Empty::<Bytes>::new());
        *answer.status_mut() = StatusCode::EARLY_HINTS;
        let asked = Asked {
            head: false,
            version: http::Version::HTTP_11,
            keep_alive: true,
        };
        let mut out = Vec::new();
        let written = write_response(&mut server, answer, asked, &mut out, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(written, Written::Close));
        drop(server);
        let mut sent = String::new();
        client.read_to_string(&mut sent).await.unwrap();
        assert!(
            sent.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{sent}"
        );
        assert!(sent.contains("connection: close\r\n"), "{sent}");
        assert!(!sent.contains("103"), "{sent}");
    }
}
