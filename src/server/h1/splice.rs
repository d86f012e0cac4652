//! Moving a large response body from the upstream's socket to the client's inside the kernel
//! (`splice(2)` through a pipe), so that a video's bytes are never copied into casegate and out
//! again: that copy was most of casegate's CPU time on a large download (benches/HISTORY.md).
//!
//! Only plain TCP on both sides can be spliced; a TLS client's bytes must be encrypted by
//! casegate, and take the ordinary path.

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
    let mut left = length;
    let mut in_pipe = 0usize;
    while left > 0 || in_pipe > 0 {
        if left > 0 && in_pipe < pipe.size {
            let want = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(pipe.size - in_pipe);
            let filled = if in_pipe == 0 {
                // Nothing to hand on: wait for the upstream. An empty pipe has room, so a
                // would-block here means the socket is empty, and its readiness is cleared.
                from.readable().await?;
                from.try_io(Interest::READABLE, || {
                    splice(from.as_raw_fd(), pipe.write.as_raw_fd(), want)
                })
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
    Ok(())
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
