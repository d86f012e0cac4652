//! A TCP stream whose reads and writes are system calls made directly (rustix), not through the C
//! library; tokio still tells when the socket is ready, and still wakes the task.
//!
//! Why: glibc's `recv`, `send` and `writev` are cancellation points. In a process of more than
//! one thread, as casegate is (a worker per core, the access log's writer), each of them brackets
//! its system call with two atomic updates of the thread's cancellation state
//! (`__pthread_enable_asynccancel` and `__pthread_disable_asynccancel`), some 50-80 ns a call on
//! this kind of VM; a single-threaded nginx worker skips them. casegate never cancels a thread,
//! and makes four or five of these calls for every request it forwards. tokio's own `TcpStream`
//! reads and writes through mio and std, which call glibc.
//!
//! What tokio does after a call is kept: a read that leaves room in its buffer, or a write that
//! did not take all its bytes, emptied (or filled) the socket, so tokio forgets the readiness and
//! the next call waits for the kernel's next event instead of asking it for nothing.
//!
//! A stream hands its small writes to the worker's batch (`write_batch`), where there is one,
//! sent with other tasks' writes in one system call, until it leaves the batch
//! ([`LeaveWriteBatch`]). Such a write answers at once, as if the socket had taken the bytes into
//! its buffer; the batch sends them in order, the rest of a partial send too. A flush does not
//! wait for them (they go out within the worker's turn). The next write, a shutdown and
//! [`DirectTcpStream::poll_written`] (before the socket itself is written, by a splice) wait until
//! they are wholly out, and return their error.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::net::{RecvFlags, SendFlags, Shutdown};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::write_batch::{self, Outcome, Slot};

/// A tokio `TcpStream`, read and written with direct system calls.
#[derive(Debug)]
pub struct DirectTcpStream {
    /// Shared only with the worker's batch while one of its writes waits there, which keeps the
    /// socket open until the write is done.
    stream: Arc<TcpStream>,
    writes: Writes,
}

/// How a stream writes, and its last write handed to the worker's batch until it is known to be
/// wholly out.
#[derive(Debug)]
struct Writes {
    batched: bool,
    queued: Option<Arc<Slot>>,
    /// Of a write the batch handed back unsent, how much this stream has written itself since.
    written_back: usize,
}

impl DirectTcpStream {
    /// A stream whose small writes go through the worker's batch, where there is one (outside a
    /// worker, and where io_uring is off, every write is its own system call).
    pub fn new(stream: TcpStream) -> DirectTcpStream {
        DirectTcpStream {
            stream: Arc::new(stream),
            writes: Writes {
                batched: true,
                queued: None,
                written_back: 0,
            },
        }
    }

    /// The stream, for what this type does not do itself (addresses, options, splice).
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// A handle on the socket that does not keep it open, for tests to see when it is let go.
    #[cfg(test)]
    pub(crate) fn socket_handle(&self) -> std::sync::Weak<TcpStream> {
        Arc::downgrade(&self.stream)
    }

    /// Ready once every byte written so far is out on the socket (or with the error that stopped
    /// it): what must come before writing to the socket itself, as a splice does.
    pub fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writes.poll_settled(&self.stream, cx)
    }

    /// A reading and a writing half, to read and write at the same time in one task.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        let writer = WriteHalf {
            stream: &self.stream,
            writes: &mut self.writes,
        };
        (ReadHalf(&self.stream), writer)
    }

    /// Whether tokio has seen nothing arrive to read since the stream's reads last emptied the
    /// socket: no system call, but only as fresh as the runtime's last poll for events (the
    /// kernel's own word is [`DirectTcpStream::nothing_to_read`]). A socket whose last read
    /// filled its buffer was not known to be empty, and counts as having something.
    pub fn seen_nothing_to_read(&self) -> bool {
        // `try_io` calls nothing and answers "would block" when tokio has no readiness recorded,
        // and answers what the call returns otherwise: no waker is registered, and the task's
        // budget is not looked at (a readiness poll by a task that has spent its budget for the
        // turn answers "not yet" whatever the socket holds, which would pass for nothing).
        matches!(
            self.stream.try_io(Interest::READABLE, || Ok(())),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock
        )
    }

    /// Whether nothing at all waits on the socket, asked of the kernel itself: no byte, no
    /// close, no reset (a `MSG_PEEK` of one byte that would block). Any error but "would block"
    /// counts as something waiting.
    pub fn nothing_to_read(&self) -> bool {
        #[cfg(test)]
        KERNEL_ASKED.with(|asked| asked.set(asked.get() + 1));
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(
            rustix::net::recv(
                &self.stream,
                &mut probe[..],
                RecvFlags::PEEK | RecvFlags::DONTWAIT
            ),
            Err(rustix::io::Errno::WOULDBLOCK)
        )
    }
}

#[cfg(test)]
thread_local! {
    /// How many times this thread's streams asked the kernel whether anything waits to be read,
    /// for tests of who asks.
    static KERNEL_ASKED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times this thread's streams have asked the kernel so far.
#[cfg(test)]
pub(crate) fn kernel_asked() -> u64 {
    KERNEL_ASKED.with(std::cell::Cell::get)
}

impl Drop for DirectTcpStream {
    fn drop(&mut self) {
        // A write still stalled in the batch is given up with its stream: the flusher is told,
        // so that it lets the socket close now rather than when the peer makes room.
        if self
            .writes
            .queued
            .as_ref()
            .is_some_and(|slot| slot.outcome().is_none())
        {
            write_batch::nudge();
        }
    }
}

/// A client connection's stream, plain or under TLS, that can leave the worker's write batch.
/// HTTP/2 connections do: h2 writes and flushes small frames one after another from one task,
/// and a write waiting for the one before it to leave the batch costs that task a turn (on
/// `compare.sh`'s HTTP/2 row, batched: 9% fewer requests/s and 0.8 us more CPU a request).
pub trait LeaveWriteBatch {
    /// From now on every write is its own system call; a write already in the batch goes first
    /// (the next write waits until it is out).
    fn leave_write_batch(&mut self);
}

impl LeaveWriteBatch for DirectTcpStream {
    fn leave_write_batch(&mut self) {
        self.writes.batched = false;
    }
}

impl LeaveWriteBatch for tokio_rustls::server::TlsStream<DirectTcpStream> {
    fn leave_write_batch(&mut self) {
        self.get_mut().0.leave_write_batch();
    }
}

/// The reading half of [`DirectTcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The writing half of [`DirectTcpStream::split`].
#[derive(Debug)]
pub struct WriteHalf<'a> {
    stream: &'a Arc<TcpStream>,
    writes: &'a mut Writes,
}

/// Runs `call` when tokio says `stream` is ready for `interest`, until it neither would block nor
/// was interrupted. `call` answers the bytes moved and whether they were fewer than it asked for;
/// then, as tokio does, the readiness is forgotten: a partial read drained the socket, a partial
/// write filled it. (`try_io` forgets it only when its closure says "would block", so the closure
/// says so after such a call, and the count it made is kept aside.)
fn poll_ready_then(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    interest: Interest,
    mut call: impl FnMut() -> rustix::io::Result<(usize, bool)>,
) -> Poll<io::Result<usize>> {
    loop {
        if interest.is_readable() {
            ready!(stream.poll_read_ready(cx))?;
        } else {
            ready!(stream.poll_write_ready(cx))?;
        }
        let mut partial = None;
        let outcome = stream.try_io(interest, || match call() {
            Ok((moved, true)) if moved > 0 => {
                partial = Some(moved);
                Err(io::ErrorKind::WouldBlock.into())
            }
            Ok((moved, _)) => Ok(moved),
            Err(errno) => Err(io::Error::from(errno)),
        });
        match outcome {
            Ok(moved) => return Poll::Ready(Ok(moved)),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if let Some(moved) = partial {
                    return Poll::Ready(Ok(moved));
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Poll::Ready(Err(error)),
        }
    }
}

fn poll_read(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: `recv` only writes the bytes it reports, and only those are marked initialised
    // below; nothing uninitialised is read.
    let unfilled = unsafe { buf.unfilled_mut() };
    let room = unfilled.len();
    let read = ready!(poll_ready_then(stream, cx, Interest::READABLE, || {
        let (_, read) = rustix::net::recv(stream, &mut unfilled[..], RecvFlags::empty())?;
        Ok((read, read < room))
    }))?;
    // SAFETY: the kernel wrote `read` bytes at the start of the unfilled part.
    unsafe { buf.assume_init(read) };
    buf.advance(read);
    Poll::Ready(Ok(()))
}

/// One write of `bytes` made directly, when tokio says the socket has room; also the batch's, for
/// the rest of a write a full socket did not take.
pub(crate) fn poll_send(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    bytes: &[u8],
) -> Poll<io::Result<usize>> {
    poll_ready_then(stream, cx, Interest::WRITABLE, || {
        // NOSIGNAL: a peer that closed is an error to handle, not a SIGPIPE.
        let sent = rustix::net::send(stream, bytes, SendFlags::NOSIGNAL)?;
        Ok((sent, sent < bytes.len()))
    })
}

fn poll_write_vectored_direct(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    slices: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let total: usize = slices.iter().map(|slice| slice.len()).sum();
    poll_ready_then(stream, cx, Interest::WRITABLE, || {
        // writev, as mio's vectored write: Rust's runtime ignores SIGPIPE for the process.
        let sent = rustix::io::writev(stream, slices)?;
        Ok((sent, sent < total))
    })
}

impl Writes {
    /// A write of `slices`: once the last batched write is wholly out, handed to the worker's
    /// batch when this stream takes part and the write is small (answered at once), else made
    /// directly.
    fn poll_write(
        &mut self,
        stream: &Arc<TcpStream>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_settled(stream, cx))?;
        if self.batched
            && let Some(slot) = write_batch::queue(stream, slices)
        {
            let taken = slot.bytes().len();
            self.queued = Some(slot);
            return Poll::Ready(Ok(taken));
        }
        match slices {
            [one] => poll_send(stream, cx, one),
            _ => poll_write_vectored_direct(stream, cx, slices),
        }
    }

    /// A flush: the batch sends what it holds within the worker's turn, so only a write it has
    /// already given back (unsent, or failed) is dealt with here.
    fn poll_flush(
        &mut self,
        stream: &Arc<TcpStream>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        match &self.queued {
            Some(slot) if slot.outcome().is_none() => Poll::Ready(Ok(())),
            _ => self.poll_settled(stream, cx),
        }
    }

    /// Ready once the last batched write is wholly out: sent by the batch, or its unsent rest
    /// written here; with its error if it failed.
    fn poll_settled(
        &mut self,
        stream: &Arc<TcpStream>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(slot) = &self.queued else {
            return Poll::Ready(Ok(()));
        };
        let Some(outcome) = slot.outcome_or_wait(cx.waker()) else {
            return Poll::Pending;
        };
        let settled = match outcome {
            Outcome::Done => Ok(()),
            Outcome::Failed(errno) => Err(io::Error::from_raw_os_error(errno)),
            // The batch stopped: the rest is written directly, from where it stopped. tokio's
            // readiness is left as it was: a direct write that finds the socket full forgets it
            // with the event it saw.
            Outcome::Unsent(from) => loop {
                let rest = slot
                    .bytes()
                    .get(from + self.written_back..)
                    .unwrap_or_default();
                if rest.is_empty() {
                    break Ok(());
                }
                match ready!(poll_send(stream, cx, rest)) {
                    Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                    Ok(sent) => self.written_back += sent,
                    Err(error) => break Err(error),
                }
            },
        };
        self.queued = None;
        self.written_back = 0;
        Poll::Ready(settled)
    }
}

/// The socket under the stream and under its reading half, where the reads below go.
trait Socket {
    fn socket(&self) -> &TcpStream;

    /// Called before each read.
    fn before_read(&mut self) {}
}

impl Socket for DirectTcpStream {
    fn socket(&self) -> &TcpStream {
        &self.stream
    }

    /// A batched write known to be wholly out is let go of here: a keep-alive connection then
    /// waits for its next request without holding a copy of its last answer.
    fn before_read(&mut self) {
        if self
            .writes
            .queued
            .as_ref()
            .is_some_and(|slot| slot.outcome() == Some(Outcome::Done))
        {
            self.writes.queued = None;
        }
    }
}

impl Socket for ReadHalf<'_> {
    fn socket(&self) -> &TcpStream {
        self.0
    }
}

/// The socket and its write state, under the stream and under its writing half, where the
/// writes below go.
trait Writer {
    fn parts(&mut self) -> (&Arc<TcpStream>, &mut Writes);
}

impl Writer for DirectTcpStream {
    fn parts(&mut self) -> (&Arc<TcpStream>, &mut Writes) {
        (&self.stream, &mut self.writes)
    }
}

impl Writer for WriteHalf<'_> {
    fn parts(&mut self) -> (&Arc<TcpStream>, &mut Writes) {
        (self.stream, &mut *self.writes)
    }
}

/// `AsyncRead` for the stream and its reading half.
macro_rules! direct_reads {
    ($type:ty) => {
        impl AsyncRead for $type {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                this.before_read();
                poll_read(this.socket(), cx, buf)
            }
        }
    };
}

/// `AsyncWrite` for the stream and its writing half.
macro_rules! direct_writes {
    ($type:ty) => {
        impl AsyncWrite for $type {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bytes: &[u8],
            ) -> Poll<io::Result<usize>> {
                let (stream, writes) = self.get_mut().parts();
                writes.poll_write(stream, cx, &[IoSlice::new(bytes)])
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                slices: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let (stream, writes) = self.get_mut().parts();
                writes.poll_write(stream, cx, slices)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            /// Nothing is buffered here but a write in the worker's batch, sent within the
            /// worker's next turn.
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let (stream, writes) = self.get_mut().parts();
                writes.poll_flush(stream, cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let (stream, writes) = self.get_mut().parts();
                ready!(writes.poll_settled(stream, cx))?;
                let shut = rustix::net::shutdown(&**stream, Shutdown::Write);
                Poll::Ready(shut.map_err(io::Error::from))
            }
        }
    };
}

direct_reads!(DirectTcpStream);
direct_reads!(ReadHalf<'_>);
direct_writes!(DirectTcpStream);
direct_writes!(WriteHalf<'_>);

/// A connected pair on loopback, for tests: ours, and a blocking std peer whose reads give up
/// after `read_timeout`.
#[cfg(test)]
pub(crate) async fn loopback_pair(
    read_timeout: std::time::Duration,
) -> (DirectTcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(read_timeout)).unwrap();
    (DirectTcpStream::new(connected), peer)
}

/// A connected pair on loopback, for tests: the connecting end and the accepted one, both tokio's.
#[cfg(test)]
pub(crate) async fn connected_pair() -> (TcpStream, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    connected_on(&listener).await
}

/// A connection to `listener` (on this host), for tests: the connecting end and the accepted one.
#[cfg(test)]
pub(crate) async fn connected_on(listener: &tokio::net::TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (connected.unwrap(), accepted.unwrap().0)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A connected pair on loopback: ours (outside a worker, so every write is direct), and a
    /// blocking std stream as the peer.
    async fn pair() -> (DirectTcpStream, std::net::TcpStream) {
        loopback_pair(Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn reads_what_the_peer_sent_then_the_end() {
        let (mut ours, mut peer) = pair().await;
        peer.write_all(b"first").unwrap();
        let mut buf = [0u8; 64];
        let read = ours.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..read], b"first");
        // The partial read above forgot the readiness; the next bytes must still wake the read.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            peer.write_all(b"second").unwrap();
            peer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), ours.read_to_end(&mut rest))
            .await
            .expect("a read waiting after a drained socket was never woken")
            .unwrap();
        assert_eq!(rest, b"second");
        writer.join().unwrap();
    }

    #[tokio::test]
    async fn a_read_into_a_full_buffer_takes_what_fits_and_leaves_the_rest() {
        let (mut ours, mut peer) = pair().await;
        peer.write_all(b"0123456789").unwrap();
        let mut small = [0u8; 4];
        ours.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"0123");
        let mut rest = [0u8; 6];
        ours.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"456789");
    }

    #[tokio::test]
    async fn writes_plain_and_vectored_and_shuts_down() {
        let (mut ours, mut peer) = pair().await;
        ours.write_all(b"plain ").await.unwrap();
        let slices = [IoSlice::new(b"vec"), IoSlice::new(b"tored")];
        let sent = ours.write_vectored(&slices).await.unwrap();
        assert_eq!(sent, 8, "a loopback socket with room takes every slice");
        ours.shutdown().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"plain vectored");
    }

    /// Megabytes through a small socket buffer: writes that fill the socket must wait for room
    /// and be woken when the peer reads, and no byte may be lost or doubled on the way.
    #[tokio::test]
    async fn a_large_transfer_survives_full_and_empty_sockets_both_ways() {
        let (mut ours, mut peer) = pair().await;
        rustix::net::sockopt::set_socket_send_buffer_size(ours.get_ref(), 4096).unwrap();
        let payload: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let echo = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut chunk = [0u8; 7000];
            while got.len() < expected.len() {
                let read = peer.read(&mut chunk).unwrap();
                assert!(read > 0, "the stream ended early");
                got.extend_from_slice(&chunk[..read]);
                peer.write_all(&chunk[..read]).unwrap();
            }
            assert_eq!(got, expected, "the bytes written arrived changed");
        });
        let (mut reader, mut writer) = ours.split();
        let mut echoed = vec![0u8; payload.len()];
        let (wrote, read) = tokio::join!(
            async {
                for piece in payload.chunks(10_000) {
                    let (front, back) = piece.split_at(piece.len() / 3);
                    let mut owned = [IoSlice::new(front), IoSlice::new(back)];
                    let mut slices = &mut owned[..];
                    while !slices.is_empty() {
                        let sent = writer.write_vectored(slices).await?;
                        assert!(sent > 0, "a vectored write took nothing");
                        IoSlice::advance_slices(&mut slices, sent);
                    }
                }
                io::Result::Ok(())
            },
            reader.read_exact(&mut echoed),
        );
        wrote.unwrap();
        read.unwrap();
        assert!(echoed == payload, "the echoed bytes differ from those sent");
        echo.join().unwrap();
    }

    #[tokio::test]
    async fn nothing_to_read_sees_bytes_and_a_close() {
        let (ours, mut peer) = pair().await;
        assert!(
            ours.nothing_to_read(),
            "a fresh connection has nothing to read"
        );
        peer.write_all(b"x").unwrap();
        let seen = wait_until(|| !ours.nothing_to_read()).await;
        assert!(seen, "a byte from the peer was not seen");

        let (ours, peer) = pair().await;
        drop(peer);
        let seen = wait_until(|| !ours.nothing_to_read()).await;
        assert!(seen, "the peer's close was not seen");
    }

    /// Whether `condition` holds within a second (loopback delivers within microseconds, but
    /// the test does not bet on it).
    async fn wait_until(condition: impl Fn() -> bool) -> bool {
        for _ in 0..100 {
            if condition() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}
