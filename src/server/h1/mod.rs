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
//! end is closed after the answer (unless a length-framed body had already arrived whole, which is
//! skipped), never read on.
//!
//! The loop ([`serve`]): wait for a head (`waiting.rs`: the first-byte deadline on a new
//! connection, the idle timeout between requests, parked after [`PARK_AFTER`] with no buffer
//! held), read it within `header_read_timeout` of its first byte, run the gateway's future while
//! reading the body on demand (`body_pump.rs`), write the answer (`writer.rs`: small frames
//! coalesced into one write, a large upstream body spliced, every write under a stall limit), and
//! go round again while both sides keep the connection alive.

mod repeated_request;
pub mod request_body;
pub mod request_head;
pub mod response_head;
pub mod splice;
pub mod upgrade;

mod body_pump;
mod waiting;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::debug;

use crate::proxy::upstream_h1::UpstreamExtras;
use body_pump::{BodyPump, skip_arrived_body};
use request_body::{BodyDecoder, BodySender, H1Body, body_channel};
use request_head::{HeadError, HeadLimits, RequestHead, RequestMemory};
use response_head::Asked;
use splice::SpliceTarget;
use upgrade::PendingUpgrade;
use waiting::{ShutdownWatch, Waiting};
use writer::{Stalling, WRITE_BATCH, Written, refuse, write_response};

/// A keep-alive connection idle this long between requests is parked: its read buffer is freed
/// and only the stream waits for the next request. nginx frees its buffers as soon as a
/// connection goes idle; a second spares a browser still fetching a page's resources the
/// allocation.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// Reads grow the buffer by this much when it is full (hyper's initial read buffer).
pub(crate) const READ_CHUNK: usize = 8 * 1024;

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

/// What answers a connection's requests. They come one after another, each answered before the
/// next is read, so an answer may borrow the handler until it is made: the connection's state is
/// lent to each request instead of cloned for it, which a closure's future cannot do. A closure
/// that makes an answer is a handler too.
pub trait Handler {
    /// The body of the requests the handler takes, made from the one the connection reads.
    type RequestBody;
    type Body: Body<Data = Bytes, Error: std::fmt::Display> + UpstreamExtras;

    fn request_body(&self, body: H1Body) -> Self::RequestBody;

    /// The request comes boxed as it was made, and the answer goes back boxed as the gateway
    /// made it: by value, each one's couple of hundred bytes were copied at every step between,
    /// down to the gateway and up through the body pump to the writer (a dozen `memcpy` calls a
    /// request).
    fn handle(
        &mut self,
        request: Box<Request<Self::RequestBody>>,
    ) -> impl Future<Output = Box<Response<Self::Body>>>;
}

impl<H, F, B> Handler for H
where
    H: FnMut(Request<H1Body>) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes, Error: std::fmt::Display> + UpstreamExtras,
{
    type RequestBody = H1Body;
    type Body = B;

    fn request_body(&self, body: H1Body) -> H1Body {
        body
    }

    fn handle(&mut self, request: Box<Request<H1Body>>) -> impl Future<Output = Box<Response<B>>> {
        let answered = self(*request);
        async move { Box::new(answered.await) }
    }
}

/// Serves HTTP/1.1 on `io` until either side ends the connection. `read` holds bytes already
/// read from it (the protocol sniff).
#[allow(clippy::too_many_arguments)]
pub async fn serve<T, H>(
    mut io: T,
    read: Bytes,
    peer: SocketAddr,
    settings: Http1Settings,
    shutdown: watch::Receiver<bool>,
    events: &dyn ConnectionEvents,
    mut handler: H,
) where
    T: AsyncRead + AsyncWrite + SpliceTarget + Unpin + Send + 'static,
    H: Handler,
{
    let mut buffer = BytesMut::from(read);
    let mut memory = RequestMemory::default();
    let mut out = Vec::new();
    let mut waiting = Waiting::new(peer, settings, shutdown);
    loop {
        let head = match waiting
            .next_head(&mut io, &mut buffer, &mut memory, &mut out, events)
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
        waiting.first = false;
        let asked = Asked {
            head: head.method == http::Method::HEAD,
            version: head.version,
            keep_alive: head.keep_alive,
        };
        let expect_continue = head.expect_continue;
        let decoder = BodyDecoder::new(head.framing);
        let (sender, request, upgrade) = into_request(head, &handler);
        let exchange = Exchange {
            io: &mut io,
            buffer: &mut buffer,
            out: &mut out,
            settings,
            peer,
            asked,
            expect_continue,
            shutdown: &waiting.shutdown,
        };
        // Boxed: the gateway's future and the answer's writing are several KiB, which would
        // otherwise be part of every connection's task for its life, idle ones included.
        // Allocated before the future is made, so that it is built in its box rather than on the
        // stack and then copied in.
        let answered = Box::into_pin(Box::write(
            Box::new_uninit(),
            exchange.run(&mut handler, request, sender, decoder),
        ))
        .await;
        match answered {
            Answered::KeepAlive => {}
            Answered::Close => {
                let _ = Stalling::new(&mut io, settings.idle_timeout)
                    .shutdown()
                    .await;
                return;
            }
            Answered::Switched => {
                // Only a request that asked to switch may; any other 101 ends the connection.
                if let Some(upgrade) = upgrade {
                    upgrade.fulfil(Box::new(io), buffer.freeze());
                }
                return;
            }
            Answered::Gone => return,
        }
        if out.capacity() > WRITE_BATCH * 2 {
            out = Vec::new();
        }
    }
}

/// How one request's exchange left the connection.
enum Answered {
    KeepAlive,
    /// Answered; the connection is to be closed.
    Close,
    /// Answered with a 101: the connection is the upgrade's.
    Switched,
    /// The client left, or the connection failed: nothing more to do.
    Gone,
}

/// One request's exchange on a connection: the gateway's answer, with the body read for it, and
/// the answer written.
struct Exchange<'a, T> {
    io: &'a mut T,
    buffer: &'a mut BytesMut,
    out: &'a mut Vec<u8>,
    settings: Http1Settings,
    peer: SocketAddr,
    asked: Asked,
    expect_continue: bool,
    /// Read once the answer is ready: a server shutting down closes the connection after it.
    shutdown: &'a ShutdownWatch,
}

impl<T: AsyncRead + AsyncWrite + SpliceTarget + Unpin> Exchange<'_, T> {
    async fn run<H: Handler>(
        self,
        handler: &mut H,
        request: Box<Request<H::RequestBody>>,
        sender: BodySender,
        mut decoder: BodyDecoder,
    ) -> Answered {
        let Exchange {
            io,
            buffer,
            out,
            settings,
            peer,
            asked,
            expect_continue,
            shutdown,
        } = self;
        let response = {
            // Made here, inside the exchange's box, rather than passed in and moved there.
            let handled = pin!(handler.handle(request));
            let pump = BodyPump::new(&sender, &mut decoder, expect_continue);
            pump.run_beside(
                handled,
                io,
                buffer,
                settings.head.max_bytes,
                settings.idle_timeout,
            )
            .await
        };
        let Some(response) = response else {
            debug!(%peer, "client closed the connection before the answer");
            return Answered::Gone;
        };
        drop(sender);
        // A body the gateway did not read is skipped when it has already arrived, as hyper did;
        // one still on its way leaves the connection at an unknown place in the client's bytes,
        // and it closes after the answer.
        skip_arrived_body(&mut decoder, buffer, io).await;
        let keep_alive = asked.keep_alive && decoder.is_done() && !shutdown.has_begun();
        let asked = Asked {
            keep_alive,
            ..asked
        };
        match write_response(io, response, asked, out, settings.idle_timeout).await {
            Ok(Written::KeepAlive) => Answered::KeepAlive,
            Ok(Written::Close) => Answered::Close,
            Ok(Written::Switched) => Answered::Switched,
            Err(error) => {
                debug!(%peer, %error, "connection failed while answering");
                Answered::Gone
            }
        }
    }
}

/// The request the gateway sees, the loop's end of its body, and of its upgrade if it may switch.
fn into_request<H: Handler>(
    head: RequestHead,
    handler: &H,
) -> (
    BodySender,
    Box<Request<H::RequestBody>>,
    Option<PendingUpgrade>,
) {
    let (sender, body) = body_channel(head.framing);
    let mut request = Box::new(Request::new(handler.request_body(body)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::Poll;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The limits the tests serve under unless they say otherwise.
    const SETTINGS: Http1Settings = Http1Settings {
        head: HeadLimits {
            max_bytes: 8192,
            max_fields: 100,
        },
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    };

    /// Waiting on a connection from 127.0.0.1, past its first request unless `first`, and the
    /// sender that keeps its shutdown channel open.
    fn waiting(settings: Http1Settings, first: bool) -> (watch::Sender<bool>, Waiting) {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut waiting =
            Waiting::new(SocketAddr::from(([127, 0, 0, 1], 1)), settings, shutdown_rx);
        waiting.first = first;
        (shutdown, waiting)
    }

    struct NoEvents;

    impl ConnectionEvents for NoEvents {
        fn refused_head(&self, _status: StatusCode) {}
        fn parked(&self) {}
    }

    #[tokio::test]
    async fn a_parked_connection_holds_no_buffer_of_its_last_answer() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let (_shutdown, mut waiting) = waiting(SETTINGS, false);
        let mut buffer = BytesMut::new();
        let mut memory = RequestMemory::default();
        // What a coalesced answer of small frames leaves behind.
        let mut out = Vec::with_capacity(WRITE_BATCH * 2);
        let next = waiting.next_head(&mut server, &mut buffer, &mut memory, &mut out, &NoEvents);
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
        let settings = SETTINGS;
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
        let settings = Http1Settings {
            // max_header_bytes' ceiling.
            head: HeadLimits {
                max_bytes: 1024 * 1024,
                ..SETTINGS.head
            },
            header_read_timeout: Duration::from_secs(60),
            ..SETTINGS
        };
        let (_shutdown, mut waiting) = waiting(settings, true);
        let mut buffer = BytesMut::new();
        let mut memory = RequestMemory::default();
        let mut out = Vec::new();
        let next = waiting.next_head(&mut client, &mut buffer, &mut memory, &mut out, &NoEvents);
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
        let (_shutdown, mut waiting) = waiting(SETTINGS, false);
        let mut buffer = BytesMut::new();
        let mut memory = RequestMemory::default();
        let mut out = Vec::new();
        let events = ParkEvents(Arc::clone(&parked));
        let next = waiting.next_head(&mut server, &mut buffer, &mut memory, &mut out, &events);
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
        let written = write_response(
            &mut server,
            Box::new(answer),
            asked,
            &mut out,
            Duration::from_secs(5),
        )
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
