//! Tracks when an HTTP/2 connection (or a tunnel) last did anything, so that idle ones can be
//! closed. HTTP/1 connections keep their own time in `h1`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::coarse_clock;

/// Shared between a connection's IO wrapper, its request handler and its idle watchdog.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    last_io_millis: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether the peer has sent at least one byte.
    has_read: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            started: Instant::now(),
            last_io_millis: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            has_read: AtomicBool::new(false),
        })
    }

    /// On every read and write: from the coarse clock, as an idle timeout needs no finer.
    fn touch(&self) {
        let since_start = coarse_clock::now().saturating_duration_since(self.started);
        let millis = u64::try_from(since_start.as_millis()).unwrap_or(u64::MAX);
        self.last_io_millis.store(millis, Ordering::Relaxed);
    }

    /// Whether the peer has sent anything at all yet.
    pub fn has_read(&self) -> bool {
        self.has_read.load(Ordering::Relaxed)
    }

    /// Bytes were read before the stream was wrapped (the protocol sniff).
    pub fn saw_input(&self) {
        self.has_read.store(true, Ordering::Relaxed);
    }

    /// Marks a request as in flight until the returned guard is dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Waits until the connection has been idle (no request in flight, no IO) for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let last_io =
                self.started + Duration::from_millis(self.last_io_millis.load(Ordering::Relaxed));
            let now = Instant::now();
            let no_request = self.in_flight.load(Ordering::Relaxed) == 0;
            let idle_deadline = last_io + limit;
            if no_request && now >= idle_deadline {
                return;
            }
            tokio::time::sleep_until(idle_deadline.max(now + Duration::from_millis(100))).await;
        }
    }
}

/// Guard for one request in flight on a connection.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// An IO stream that records activity on every successful read or write.
pub struct TrackedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> TrackedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        activity.touch();
        TrackedIo { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
            self.activity.has_read.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
