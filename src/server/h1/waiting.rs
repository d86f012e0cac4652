//! Waiting for a request head between requests, and reading it: the first-byte, head and idle
//! deadlines, parking, and the server's shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use super::request_head::{RequestMemory, parse_request_head};
use super::{ConnectionEvents, Http1Settings, Next, PARK_AFTER, READ_CHUNK};
use crate::coarse_clock;
use crate::lazy_timer::LazyTimer;

/// Whether the server has started shutting down, as one connection asks before each wait and
/// after each answer. `watch::Receiver::borrow` takes the channel's lock, two locked
/// instructions each time; asking whether the value has changed is one plain load. The server
/// only ever sends `true` (and a closed channel means it is gone), so any change is the
/// shutdown; a connection accepted after it began sees `true` from the start.
pub(super) struct ShutdownWatch {
    receiver: watch::Receiver<bool>,
    begun_before: bool,
    /// Ends once the server starts shutting down. Made once per connection: a wait on the
    /// channel made per request registered with it, and left it, under its lock each time.
    /// Never polled again once it has ended (the connection closes then).
    signal: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    /// Whether `signal` has been polled, and so holds the connection task's waker.
    signal_has_waker: bool,
}

impl ShutdownWatch {
    pub(super) fn new(receiver: watch::Receiver<bool>) -> ShutdownWatch {
        let begun_before = *receiver.borrow();
        let mut signal = receiver.clone();
        ShutdownWatch {
            receiver,
            begun_before,
            // A closed channel means the server is gone: that ends it too.
            signal: Box::pin(async move {
                let _ = signal.changed().await;
            }),
            signal_has_waker: false,
        }
    }

    pub(super) fn has_begun(&self) -> bool {
        self.begun_before || self.receiver.has_changed().unwrap_or(true)
    }

    /// Ends once the shutdown has begun. The channel's wait is polled once, which hands it the
    /// connection task's waker, and after that only once the shutdown has begun (one plain
    /// load): polling it at every wait took the channel's lock and about 250 instructions a
    /// request, for a wake-up it was already set to give. The check is made at each poll, so a
    /// wait begun before the shutdown ends at the wake-up it brings.
    pub(super) fn begun(&mut self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.signal_has_waker && !self.has_begun() {
                return std::task::Poll::Pending;
            }
            self.signal_has_waker = true;
            self.signal.as_mut().poll(cx)
        })
    }
}

/// Waiting for and reading request heads, one after another, for one connection's life.
pub(super) struct Waiting {
    /// The connection's first head: the first byte must come within `header_read_timeout`.
    pub(super) first: bool,
    peer: SocketAddr,
    settings: Http1Settings,
    /// The connection's one timer for its waits, kept from request to request (`lazy_timer`).
    timer: LazyTimer,
    /// The server's shutdown: read here before each wait, and by the exchange for keep-alive.
    pub(super) shutdown: ShutdownWatch,
}

impl Waiting {
    pub(super) fn new(
        peer: SocketAddr,
        settings: Http1Settings,
        shutdown: watch::Receiver<bool>,
    ) -> Waiting {
        Waiting {
            first: true,
            peer,
            settings,
            timer: LazyTimer::new(Instant::now() + settings.header_read_timeout),
            shutdown: ShutdownWatch::new(shutdown),
        }
    }

    pub(super) async fn next_head<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
        buffer: &mut BytesMut,
        memory: &mut RequestMemory,
        out: &mut Vec<u8>,
        events: &dyn ConnectionEvents,
    ) -> Next {
        let settings = &self.settings;
        // The clock is read only once there is something to wait for: a head that is read whole
        // at once (nearly every one) needs neither reading.
        let mut waiting_since = None;
        // Set by the head's first bytes, in the same turn of the loop as they arrive.
        let mut head_deadline = None;
        let mut parked = false;
        // The buffer's length when it last held part of a head: it is parsed again only once the
        // bytes read since may end the head (or fill the limit), as hyper did.
        let mut partial_len = None;
        loop {
            if !buffer.is_empty() {
                let may_be_whole = partial_len.is_none_or(|seen| head_may_end(buffer, seen))
                    || buffer.len() >= settings.head.max_bytes;
                if may_be_whole {
                    match parse_request_head(buffer, settings.head, memory) {
                        Ok(Some(head)) => return Next::Head(head),
                        Ok(None) => {}
                        Err(error) => return Next::Refused(error),
                    }
                }
                partial_len = Some(buffer.len());
                head_deadline.get_or_insert_with(|| Instant::now() + settings.header_read_timeout);
            }
            let deadline = match head_deadline {
                Some(deadline) => deadline,
                None => {
                    // The coarse clock: the wait ends at an idle timeout or `PARK_AFTER`, a second
                    // or more away, and the reading is taken after every request.
                    let since = *waiting_since.get_or_insert_with(coarse_clock::now);
                    // A new connection gets the head timeout for its first byte too.
                    let wait = if self.first {
                        settings.header_read_timeout
                    } else if parked {
                        settings.idle_timeout
                    } else {
                        PARK_AFTER.min(settings.idle_timeout)
                    };
                    since + wait
                }
            };
            if self.shutdown.has_begun() && head_deadline.is_none() {
                return Next::Close;
            }
            // The read first: nearly every wake-up is the next bytes. The deadline still holds
            // whenever the read would wait, and a client that never lets it wait fills the head's
            // size limit.
            tokio::select! {
                biased;
                read = read_head_bytes(io, buffer, parked) => match read {
                    Ok(0) => return Next::Close,
                    Ok(_) => {}
                    Err(error) => {
                        debug!(peer = %self.peer, %error, "connection failed while reading a head");
                        return Next::Close;
                    }
                },
                () = self.timer.wait_until(deadline) => {
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
                            *memory = RequestMemory::default();
                            // The last answer's write buffer (up to 128 KiB) goes too.
                            *out = Vec::new();
                            events.parked();
                        }
                    }
                }
                () = self.shutdown.begun(), if head_deadline.is_none() => return Next::Close,
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
