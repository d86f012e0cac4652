//! One keep-alive TCP connection to the upstream and the bytes read from it that no exchange has
//! taken yet.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::response_head::ResponseMemory;
use crate::coarse_clock;
use crate::direct_tcp::DirectTcpStream;
use crate::lazy_timer::LazyTimer;
use crate::proxy::pool::Destination;

/// The first read of an exchange asks for this much: a typical head and small body fit.
const FIRST_READ: usize = 16 * 1024;
/// Reads grow (doubling while each fills the space it was given) up to this, for large bodies:
/// fewer system calls per megabyte, and still a bounded buffer per streaming response.
const LARGEST_READ: usize = 512 * 1024;
/// Below this much free space the buffer is grown before a read rather than read into a sliver.
const LEAST_SPARE: usize = 4 * 1024;
/// An idle connection keeps at most this much buffer; more is let go before it waits.
const IDLE_BUFFER: usize = 32 * 1024;

/// A connection to the upstream with its read buffer.
#[derive(Debug)]
pub struct UpstreamConnection {
    pub(super) stream: DirectTcpStream,
    /// Where `stream` goes: the pool keeps the connection for requests to the same place.
    destination: Destination,
    /// Bytes read and not yet handed out. Between exchanges it must be empty: anything in it
    /// would be read as the next exchange's response.
    pub(super) buffer: BytesMut,
    pub(super) read_size: usize,
    /// What the last response head leaves for reading the next (see `parse_response_head`).
    pub(super) memory: ResponseMemory,
    /// The timer for the response timeout, kept from exchange to exchange (`lazy_timer`); made
    /// by the first exchange, and out of the connection while an exchange runs beside it.
    timer: Option<LazyTimer>,
    /// When the connection was opened (the coarse clock), for `pool_max_age`.
    opened: Instant,
    /// Responses read to their end on it, for `pool_max_requests`.
    responses: u32,
}

impl UpstreamConnection {
    /// A connection is boxed once, when it is opened: it then moves by pointer, on every request,
    /// from the pool to the exchange, into the response's body and back to the pool. By value
    /// those moves copied it, and the responses that carry it, several times a request.
    pub fn new(stream: TcpStream, destination: Destination) -> Box<UpstreamConnection> {
        Box::new(UpstreamConnection {
            stream: DirectTcpStream::new(stream),
            destination,
            buffer: BytesMut::new(),
            read_size: FIRST_READ,
            memory: ResponseMemory::default(),
            timer: None,
            opened: coarse_clock::now(),
            responses: 0,
        })
    }

    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    pub fn opened(&self) -> Instant {
        self.opened
    }

    /// How many responses the connection carried to their end.
    pub fn responses(&self) -> u32 {
        self.responses
    }

    /// The connection's timer, taken out for an exchange that must end by `deadline`; given back
    /// with [`UpstreamConnection::give_timer`].
    pub fn take_timer(&mut self, deadline: Instant) -> LazyTimer {
        self.timer
            .take()
            .unwrap_or_else(|| LazyTimer::new(deadline))
    }

    pub fn give_timer(&mut self, timer: LazyTimer) {
        self.timer = Some(timer);
    }

    /// Reads more bytes into the buffer: `Ok(0)` when the upstream closed its side.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        poll_fill(
            Pin::new(&mut self.stream),
            &mut self.buffer,
            &mut self.read_size,
            cx,
        )
    }

    /// Whether a connection that has been idle can carry a request: nothing arrived on it while
    /// it waited (no close, no reset, no stray bytes), which would otherwise be read as the next
    /// guest's answer. tokio's readiness answers without a system call, but only for what came
    /// in before the runtime last polled for events: trusted when the worker has waited for
    /// events since the connection was put back (`waited_for_events`, `worker_parks.rs`), which
    /// under load is most reuses, and then only when it says nothing came. Otherwise the kernel
    /// is asked (a non-blocking `MSG_PEEK`): bytes that came in after the last read and before
    /// the runtime looked would pass for quiet. Bytes left in the buffer would be read as the
    /// answer too (a connection goes back only with none: checked here all the same, since the
    /// cost of being wrong is another guest's answer).
    pub fn is_quiet(&self, waited_for_events: bool) -> bool {
        self.buffer.is_empty()
            && ((waited_for_events && self.stream.seen_nothing_to_read())
                || self.stream.nothing_to_read())
    }

    /// Gets the connection ready to wait in the pool after a response read to its end: reads
    /// start small again, a buffer grown by a large body is let go, and the response is counted.
    pub(super) fn rest(&mut self) {
        self.responses = self.responses.saturating_add(1);
        self.read_size = FIRST_READ;
        if self.buffer.capacity() > IDLE_BUFFER {
            self.buffer = BytesMut::new();
        }
    }

    /// The stream and any bytes read past the response head, for a tunnel after a protocol
    /// switch.
    pub fn into_parts(self) -> (DirectTcpStream, BytesMut) {
        (self.stream, self.buffer)
    }
}

/// Reads into `buffer`'s spare room, growing it first when little is left.
pub(super) fn poll_fill(
    reader: Pin<&mut impl AsyncRead>,
    buffer: &mut BytesMut,
    read_size: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buffer.capacity() - buffer.len() < LEAST_SPARE {
        buffer.reserve(*read_size);
    }
    let spare = buffer.spare_capacity_mut();
    let room = spare.len();
    let start = spare.as_ptr().cast::<u8>();
    let mut read = ReadBuf::uninit(spare);
    // tokio's `poll_read` (not `try_read`) also notes that a read which did not fill its room
    // drained the socket, so the next exchange's first read waits for readiness instead of
    // making a system call that can only answer "would block".
    ready!(reader.poll_read(cx, &mut read))?;
    let filled = read.filled().len();
    // A reader may, in principle, put another buffer in the `ReadBuf`; then the bytes are not
    // in ours.
    if read.filled().as_ptr() != start || filled > room {
        return Poll::Ready(Err(io::Error::other("the reader filled another buffer")));
    }
    // SAFETY: the `ReadBuf` still reads into our spare room (checked above) and reports how many
    // bytes at its start it initialised (`filled`), which is where the buffer's length grows to.
    unsafe { buffer.set_len(buffer.len() + filled) };
    if filled == room && *read_size < LARGEST_READ {
        *read_size *= 2;
    }
    Poll::Ready(Ok(filled))
}

#[cfg(test)]
mod tests {
    //! `is_quiet` must see bytes (or a FIN) that reached the socket after the last read even when
    //! the runtime has not polled for events since: tokio's cached readiness does not (the
    //! first version trusted it; found in review). After a wait for events, readiness is trusted,
    //! and must have recorded what came before the wait.

    use std::future::poll_fn;
    use std::io::Write;
    use std::time::Duration;

    use bytes::BytesMut;
    use http::Method;

    use super::*;
    use crate::direct_tcp::kernel_asked;
    use crate::proxy::empty_body;
    use crate::proxy::pool::tests::{connection_to, upstream};
    use crate::proxy::upstream_h1::{RequestFraming, exchange};
    use crate::proxy::worker_parks::wait_for_events;

    /// A connection whose last response was read whole (by a read that did not fill its room,
    /// which clears tokio's readiness), and the upstream's end of it.
    async fn idle_connection() -> (Box<UpstreamConnection>, std::net::TcpStream) {
        let (listener, destination) = upstream();
        let (mut connection, mut peer) = connection_to(&listener, &destination).await;
        peer.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        let read = poll_fn(|cx| connection.poll_fill(cx)).await.unwrap();
        assert_eq!(read, 27);
        connection.buffer = BytesMut::new();
        (connection, peer)
    }

    /// A response nobody asked for (59 bytes): a body longer than its Content-Length written
    /// late, a second answer.
    const STRAY_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nanother's answer";

    /// Gives what the upstream just sent or closed time to reach the socket (loopback), without
    /// an await: the runtime's driver does not look meanwhile.
    fn let_it_arrive() {
        std::thread::sleep(Duration::from_millis(50));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stray_response_that_arrived_while_idle_is_seen_before_reuse() {
        let (mut connection, mut peer) = idle_connection().await;
        // While the connection waits in the pool, the upstream writes a response nobody asked for.
        peer.write_all(STRAY_ANSWER).unwrap();
        let_it_arrive();
        let quiet = connection.is_quiet(false);
        if quiet {
            // What the next guest then gets: the stray answer as the answer to its own request.
            let head = b"GET /cases/42/mine HTTP/1.1\r\nhost: app\r\n\r\n";
            let answered = exchange(
                &mut connection,
                head,
                empty_body(),
                RequestFraming::Empty,
                &Method::GET,
            )
            .await
            .unwrap();
            panic!(
                "is_quiet() said quiet with 59 stray bytes in the socket; the next exchange \
                 was answered {} with {:?} before the upstream saw its request",
                answered.head.status, connection.buffer
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_close_that_arrived_while_idle_is_seen_before_reuse() {
        let (connection, peer) = idle_connection().await;
        drop(peer);
        let_it_arrive();
        assert!(
            !connection.is_quiet(false),
            "is_quiet() said quiet on a connection the upstream had closed (FIN in the socket)"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn after_a_wait_for_events_a_quiet_connection_is_judged_without_asking_the_kernel() {
        let (connection, _peer) = idle_connection().await;
        wait_for_events().await;
        let asked = kernel_asked();
        assert!(connection.is_quiet(true));
        assert_eq!(kernel_asked(), asked, "the kernel was asked all the same");
        // Without a wait since, the kernel is asked.
        assert!(connection.is_quiet(false));
        assert_eq!(kernel_asked(), asked + 1);
    }

    /// An idle connection on which stray bytes arrived before the runtime waited for events.
    async fn stray_bytes_before_a_wait() -> (Box<UpstreamConnection>, std::net::TcpStream) {
        let (connection, mut peer) = idle_connection().await;
        peer.write_all(STRAY_ANSWER).unwrap();
        let_it_arrive();
        wait_for_events().await;
        (connection, peer)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stray_bytes_that_came_before_a_wait_for_events_are_seen_after_it() {
        let (connection, _peer) = stray_bytes_before_a_wait().await;
        assert!(
            !connection.stream.seen_nothing_to_read(),
            "the runtime's wait did not record the stray bytes"
        );
        assert!(
            !connection.is_quiet(true),
            "is_quiet(true) said quiet with 59 stray bytes seen before the wait"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stray_bytes_are_seen_after_a_wait_even_by_a_task_out_of_its_budget() {
        let (connection, _peer) = stray_bytes_before_a_wait().await;
        // tokio gives a task a budget of operations a turn; past it, a readiness poll answers
        // "not yet" whatever the socket holds. Spend it on readiness polls of this socket.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let spent = (0..1_000)
            .take_while(|_| {
                connection
                    .stream
                    .get_ref()
                    .poll_read_ready(&mut cx)
                    .is_ready()
            })
            .count();
        assert!(
            spent < 1_000,
            "the budget never ran out: the test proves nothing"
        );
        assert!(
            !connection.stream.seen_nothing_to_read(),
            "out of budget, readiness passed for nothing to read"
        );
        assert!(!connection.is_quiet(true));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_close_that_came_before_a_wait_for_events_is_seen_after_it() {
        let (connection, peer) = idle_connection().await;
        drop(peer);
        let_it_arrive();
        wait_for_events().await;
        assert!(!connection.stream.seen_nothing_to_read());
        assert!(!connection.is_quiet(true));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_open_quiet_connection_is_quiet_unless_bytes_are_left_in_its_buffer() {
        let (mut connection, _peer) = idle_connection().await;
        assert!(connection.is_quiet(false));
        connection.buffer.extend_from_slice(b"H");
        assert!(!connection.is_quiet(false));
    }
}
