//! One keep-alive TCP connection to the upstream and the bytes read from it that no exchange has
//! taken yet.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

use super::response_head::KnownNames;

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
    pub(super) stream: TcpStream,
    /// Bytes read and not yet handed out. Between exchanges it must be empty: anything in it
    /// would be read as the next exchange's response.
    pub(super) buffer: BytesMut,
    pub(super) read_size: usize,
    /// The field names of the last response, in order (see `parse_response_head`).
    pub(super) names: KnownNames,
}

impl UpstreamConnection {
    pub fn new(stream: TcpStream) -> UpstreamConnection {
        UpstreamConnection {
            stream,
            buffer: BytesMut::new(),
            read_size: FIRST_READ,
            names: KnownNames::default(),
        }
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
    /// it waited (no close, no reset, no stray bytes). It is asked without blocking and, when
    /// no readiness came in since the last read, without a system call.
    pub fn is_quiet(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readiness may be left over from the last response's read: look once.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Gets the connection ready to wait in the pool: reads start small again, and a buffer
    /// grown by a large body is let go.
    pub(super) fn rest(&mut self) {
        self.read_size = FIRST_READ;
        if self.buffer.capacity() > IDLE_BUFFER {
            self.buffer = BytesMut::new();
        }
    }

    /// The socket and any bytes read past the response head, for a tunnel after a protocol
    /// switch.
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
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
    let mut read = ReadBuf::uninit(spare);
    // tokio's `poll_read` (not `try_read`) also notes that a read which did not fill its room
    // drained the socket, so the next exchange's first read waits for readiness instead of
    // making a system call that can only answer "would block".
    ready!(reader.poll_read(cx, &mut read))?;
    let filled = read.filled().len();
    // SAFETY: `ReadBuf` reports how many bytes of the spare room it initialised (`filled`),
    // all of them at its start, which is where the buffer's length grows to.
    unsafe { buffer.set_len(buffer.len() + filled) };
    if filled == room && *read_size < LARGEST_READ {
        *read_size *= 2;
    }
    Poll::Ready(Ok(filled))
}
