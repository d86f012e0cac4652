//! Moving a large response body from the upstream's socket to the client's inside the kernel
//! (`splice(2)` through a pipe), so that a video's bytes are never copied into casegate and out
//! again: that copy was most of casegate's CPU time on a large download (benches/HISTORY.md).
//!
//! Only plain TCP on both sides can be spliced; a TLS client's bytes must be encrypted by
//! casegate, and take the ordinary path.
//!
//! While it splices, the upstream's socket wakes casegate only once a quarter MiB is waiting
//! ([`WAKE_AT`], by `SO_RCVLOWAT`), not at each burst the upstream sends: a third less of
//! casegate's CPU a GiB (benches/HISTORY.md, stop 65). Fewer bytes still go on within
//! [`HAND_ON_AFTER`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::direct_tcp::DirectTcpStream;

/// A client stream that may be the target of a splice: plain TCP only.
pub trait SpliceTarget {
    fn tcp(&self) -> Option<&TcpStream>;

    /// Ready once everything written through the stream is out on the socket, so that what is
    /// spliced to the socket comes after it (a batched write may still be on its way).
    fn poll_written(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl SpliceTarget for DirectTcpStream {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self.get_ref())
    }

    fn poll_written(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        DirectTcpStream::poll_written(self, cx)
    }
}

impl<T> SpliceTarget for tokio_rustls::server::TlsStream<T> {
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }
}

/// The in-memory streams unit tests serve connections on.
#[cfg(test)]
impl SpliceTarget for tokio::io::DuplexStream {
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }
}

/// The pipe is asked for this much room (the kernel's default is 64 KiB; the system's
/// `pipe-max-size` is 1 MiB unless lowered): fewer system calls per megabyte.
const PIPE_SIZE: usize = 1024 * 1024;

/// A pipe's two ends, closed on drop.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on our own pipe; a refusal leaves the default size.
        let size = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                PIPE_SIZE as libc::c_int,
            )
        };
        let size = usize::try_from(size).unwrap_or(64 * 1024).max(4096);
        Ok(Pipe { read, write, size })
    }
}

/// Moves exactly `length` bytes from `from` to `to`, as the bytes arrive and as the client takes
/// them; a client that takes none for `stall` (it stopped reading) ends it. Counts what reached
/// the client in `moved`, also when it fails part way.
pub async fn splice_exactly(
    from: &TcpStream,
    to: &TcpStream,
    length: u64,
    stall: Duration,
    moved: &mut u64,
) -> io::Result<()> {
    let pipe = Pipe::new()?;
    let mut wake = WakeAt::new(from);
    // The upstream sent nothing for `HAND_ON_AFTER`: its next byte wakes casegate, and no timer
    // ticks while it sends none.
    let mut paused = false;
    let mut left = length;
    let mut in_pipe = 0usize;
    while left > 0 || in_pipe > 0 {
        if left > 0 && in_pipe < pipe.size {
            let body_left = usize::try_from(left).unwrap_or(usize::MAX);
            wake.at(if paused { 1 } else { body_left });
            let want = body_left.min(pipe.size - in_pipe);
            let filled = if in_pipe == 0 {
                // Nothing to hand on: wait for the upstream. An empty pipe has room, so a
                // would-block here means the socket is empty, and its readiness is cleared.
                let waited = if paused {
                    Ok(from.readable().await)
                } else {
                    tokio::time::timeout(HAND_ON_AFTER, from.readable()).await
                };
                match waited {
                    Ok(ready) => {
                        ready?;
                        from.try_io(Interest::READABLE, || {
                            splice(from.as_raw_fd(), pipe.write.as_raw_fd(), want)
                        })
                    }
                    // Fewer than `WAKE_AT` bytes came within `HAND_ON_AFTER`: what did goes on.
                    Err(_) => {
                        let taken = splice(from.as_raw_fd(), pipe.write.as_raw_fd(), want);
                        paused = matches!(&taken, Err(error) if error.kind() == io::ErrorKind::WouldBlock);
                        taken
                    }
                }
            } else {
                // Something to hand on: take only what is already there, without touching the
                // socket's readiness. A would-block may mean the pipe is full (it counts pages,
                // not bytes), and clearing the socket's readiness for that would leave bytes in
                // it unseen until the upstream sent more (a download slowed to a crawl).
                splice(from.as_raw_fd(), pipe.write.as_raw_fd(), want)
            };
            match filled {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upstream closed before the body's end",
                    ));
                }
                Ok(filled) => {
                    paused = false;
                    in_pipe += filled;
                    left -= filled as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
        if in_pipe == 0 {
            continue;
        }
        match tokio::time::timeout(stall, to.writable()).await {
            Ok(ready) => ready?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client took no bytes for {stall:?}"),
                ));
            }
        }
        match to.try_io(Interest::WRITABLE, || {
            splice(pipe.read.as_raw_fd(), to.as_raw_fd(), in_pipe)
        }) {
            Ok(sent) => {
                in_pipe -= sent;
                *moved += sent as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    wake.reset()
}

/// How much of the body the upstream's socket holds before it wakes casegate during a splice:
/// each wake-up moves this much, not a burst of the upstream's at a time.
const WAKE_AT: usize = 256 * 1024;

/// How long bytes fewer than [`WAKE_AT`] may wait in the upstream's socket: a slow upstream's
/// body still reaches the client as it comes, this much later at most. A fast one fills
/// `WAKE_AT` long before.
const HAND_ON_AFTER: Duration = Duration::from_millis(10);

/// The upstream socket's `SO_RCVLOWAT` while a body is spliced from it: the kernel reports it
/// readable once `WAKE_AT` bytes are waiting, or what is left of the body when less, and until
/// then acknowledges what arrives at once (every second segment), so the upstream keeps sending.
/// Put back to 1 (every byte wakes) before the connection can serve another response.
struct WakeAt<'a> {
    socket: &'a TcpStream,
    set: usize,
}

impl<'a> WakeAt<'a> {
    fn new(socket: &'a TcpStream) -> WakeAt<'a> {
        WakeAt { socket, set: 1 }
    }

    /// Wake at `WAKE_AT` bytes, or at `left` when fewer are left (1: at every byte). A refusal
    /// keeps what was set.
    fn at(&mut self, left: usize) {
        let want = left.clamp(1, WAKE_AT);
        if want != self.set && set_receive_low_water(self.socket, want).is_ok() {
            self.set = want;
        }
    }

    /// Back to waking at every byte. Failing, the connection must not be used again.
    fn reset(self) -> io::Result<()> {
        if self.set == 1 {
            return Ok(());
        }
        set_receive_low_water(self.socket, 1)
    }
}

fn set_receive_low_water(socket: &TcpStream, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket and an int-sized option value that outlives the call.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One non-blocking `splice(2)` of up to `length` bytes.
fn splice(from: RawFd, to: RawFd, length: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the duration of the call (borrowed from live
    // owners); null offsets are what splice takes for sockets and pipes.
    let moved = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            length,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    usize::try_from(moved).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct_tcp::connected_pair as pair;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const STALL: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn exactly_the_length_is_moved_and_what_follows_stays() {
        let (mut upstream_end, from) = pair().await;
        let (to, mut client_end) = pair().await;
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = body.clone();
        let writer = tokio::spawn(async move {
            upstream_end.write_all(&sent).await.unwrap();
            upstream_end.write_all(b"NEXT").await.unwrap();
            upstream_end
        });
        let reader = tokio::spawn(async move {
            let mut received = vec![0u8; 3_000_000];
            client_end.read_exact(&mut received).await.unwrap();
            received
        });
        let mut moved = 0;
        splice_exactly(&from, &to, body.len() as u64, STALL, &mut moved)
            .await
            .unwrap();
        assert_eq!(moved, body.len() as u64);
        assert!(reader.await.unwrap() == body);
        let _upstream_end = writer.await.unwrap();
        let mut next = [0u8; 4];
        let mut from = from;
        from.read_exact(&mut next).await.unwrap();
        assert_eq!(&next, b"NEXT");
    }

    fn receive_low_water(socket: RawFd) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an open socket, an int-sized buffer and its length, both outliving the call.
        let done = unsafe {
            libc::getsockopt(
                socket,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&raw mut value).cast(),
                &raw mut length,
            )
        };
        assert_eq!(done, 0, "{}", io::Error::last_os_error());
        value
    }

    /// Waits, within [`STALL`], until the splice has set `socket` to wake at `bytes`.
    async fn low_water_becomes(
        socket: RawFd,
        bytes: usize,
    ) -> Result<(), tokio::time::error::Elapsed> {
        let bytes = libc::c_int::try_from(bytes).unwrap();
        tokio::time::timeout(STALL, async {
            while receive_low_water(socket) != bytes {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
    }

    /// The upstream's socket wakes casegate at `WAKE_AT` bytes while a body is spliced; the
    /// connection goes back to the pool waking at every byte again, or a small response read
    /// from it next would wait for bytes that never come.
    #[tokio::test]
    async fn the_upstream_socket_wakes_at_every_byte_again_after_a_splice() {
        let (mut upstream_end, from) = pair().await;
        let (to, mut client_end) = pair().await;
        let body = vec![5u8; 3 * WAKE_AT + 1000];
        let sent = body.clone();
        let writer = tokio::spawn(async move {
            upstream_end.write_all(&sent).await.unwrap();
            upstream_end
        });
        let reader = tokio::spawn(async move {
            let mut received = vec![0u8; body.len()];
            client_end.read_exact(&mut received).await.unwrap();
        });
        let mut moved = 0;
        splice_exactly(&from, &to, 3 * WAKE_AT as u64 + 1000, STALL, &mut moved)
            .await
            .unwrap();
        reader.await.unwrap();
        assert_eq!(receive_low_water(from.as_raw_fd()), 1);
        let mut upstream_end = writer.await.unwrap();
        upstream_end.write_all(b"X").await.unwrap();
        let mut from = from;
        let mut next = [0u8; 1];
        tokio::time::timeout(STALL, from.read_exact(&mut next))
            .await
            .expect("one byte wakes the reader")
            .unwrap();
        assert_eq!(&next, b"X");
    }

    /// An upstream that sends part of a large body and pauses: what it sent reaches the client
    /// though it is less than the socket wakes casegate for.
    #[tokio::test]
    async fn a_slow_upstreams_bytes_are_handed_on_as_they_come() {
        let (mut upstream_end, from) = pair().await;
        let (to, mut client_end) = pair().await;
        let length = 4 * WAKE_AT as u64;
        let socket = from.as_raw_fd();
        let splicing = tokio::spawn(async move {
            let mut moved = 0;
            let result = splice_exactly(&from, &to, length, STALL, &mut moved).await;
            (result, moved, from)
        });
        // Once the socket wakes at `WAKE_AT` the splice waits for the upstream, which then
        // sends fewer bytes than that.
        low_water_becomes(socket, WAKE_AT)
            .await
            .expect("the splice starts waiting");
        upstream_end.write_all(&[9u8; 1000]).await.unwrap();
        let mut first = [0u8; 1000];
        tokio::time::timeout(STALL, client_end.read_exact(&mut first))
            .await
            .expect("the first 1000 bytes reach the client before the rest is sent")
            .unwrap();
        assert_eq!(first, [9u8; 1000]);
        // Nothing more comes: the splice waits for the next byte, with no timer ticking.
        low_water_becomes(socket, 1)
            .await
            .expect("a paused upstream's next byte wakes the splice");
        upstream_end
            .write_all(&vec![9u8; 4 * WAKE_AT - 1000])
            .await
            .unwrap();
        let mut rest = vec![0u8; 4 * WAKE_AT - 1000];
        client_end.read_exact(&mut rest).await.unwrap();
        let (result, moved, _from) = splicing.await.unwrap();
        result.unwrap();
        assert_eq!(moved, length);
    }

    #[tokio::test]
    async fn an_upstream_that_closes_early_is_an_error() {
        let (mut upstream_end, from) = pair().await;
        let (to, _client_end) = pair().await;
        upstream_end.write_all(&[7u8; 1000]).await.unwrap();
        drop(upstream_end);
        let mut moved = 0;
        let error = splice_exactly(&from, &to, 5000, STALL, &mut moved)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(moved, 1000);
    }
}
