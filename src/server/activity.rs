//! Tracks when a connection last did anything, so that idle connections can be closed. hyper's own
//! header timeout covers a slow request head; this covers a connection that simply sits there.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Shared between a connection's IO wrapper, its request handler and its idle watchdog.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    last_io_millis: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether the peer has sent at least one byte.
    has_read: AtomicBool,
    /// Set while an idle HTTP/1 connection is being taken apart to be parked (`connection.rs`):
    /// hyper then ends its side without shutting the stream down, which stays open for the
    /// next request.
    parking: AtomicBool,
    /// Bytes read since the last request head was complete: the start of the next request,
    /// which a connection must not be parked in the middle of (hyper would answer it with
    /// `Connection: close`).
    unanswered_input: AtomicBool,
    /// Whether the last request left the connection in a state hyper keeps alive for certain
    /// (see [`Activity::request_started`]); only such a connection is parked.
    reusable: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            started: Instant::now(),
            last_io_millis: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            has_read: AtomicBool::new(false),
            parking: AtomicBool::new(false),
            unanswered_input: AtomicBool::new(false),
            reusable: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_millis.store(millis, Ordering::Relaxed);
    }

    /// Whether the peer has sent anything at all yet.
    pub fn has_read(&self) -> bool {
        self.has_read.load(Ordering::Relaxed)
    }

    /// Whether the connection is being parked: see [`Activity::set_parking`].
    pub fn is_parking(&self) -> bool {
        self.parking.load(Ordering::Relaxed)
    }

    /// While set, shutting the stream down does nothing, so hyper can be asked to end an idle
    /// connection whose stream is kept.
    pub fn set_parking(&self, parking: bool) {
        self.parking.store(parking, Ordering::Relaxed);
    }

    /// Marks a request as in flight until the returned guard is dropped. `reusable`: the request
    /// was HTTP/1.1 without `Connection: close` and without a body, so the connection is kept
    /// alive after it whatever the answer. After any other (a body the gateway may not read, a
    /// close asked for) hyper may be about to close the connection, which parking would keep.
    pub fn request_started(self: &Arc<Self>, reusable: bool) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.reusable.store(reusable, Ordering::Relaxed);
        self.unanswered_input.store(false, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Waits until the connection has been idle (no request in flight, no IO) for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        self.quiet(limit, None).await;
    }

    /// Waits until the connection has been idle for `idle_limit` ([`Quiet::Idle`]) or, given
    /// `park_after`, idle that long between requests ([`Quiet::Between`]): also no byte of a
    /// next request read yet, and the last request one after which the connection stays open.
    /// One watch for both, because a connection's task polls it on every wake-up (about two per
    /// request).
    pub async fn quiet(&self, idle_limit: Duration, park_after: Option<Duration>) -> Quiet {
        loop {
            let last_io =
                self.started + Duration::from_millis(self.last_io_millis.load(Ordering::Relaxed));
            let now = Instant::now();
            let no_request = self.in_flight.load(Ordering::Relaxed) == 0;
            let idle_deadline = last_io + idle_limit;
            if no_request && now >= idle_deadline {
                return Quiet::Idle;
            }
            let mut next_check = idle_deadline;
            if let Some(park_after) = park_after {
                let between_requests = no_request
                    && !self.unanswered_input.load(Ordering::Relaxed)
                    && self.reusable.load(Ordering::Relaxed);
                let park_deadline = last_io + park_after;
                if between_requests && now >= park_deadline {
                    return Quiet::Between;
                }
                next_check = next_check.min(park_deadline);
            }
            tokio::time::sleep_until(next_check.max(now + Duration::from_millis(100))).await;
        }
    }
}

/// What [`Activity::quiet`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Quiet {
    /// Idle past the idle limit: the connection is closed.
    Idle,
    /// Between requests past the park limit: the connection is parked.
    Between,
}

/// Guard for one request in flight on a connection.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        // The request's body has been read by now (the upstream answered); what comes next is
        // the next request.
        self.0.unanswered_input.store(false, Ordering::Relaxed);
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
            self.activity
                .unanswered_input
                .store(true, Ordering::Relaxed);
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
        if self.activity.is_parking() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
