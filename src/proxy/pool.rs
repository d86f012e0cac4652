//! One worker's keep-alive connections to the upstream: HTTP/1.1 connections opened with hyper's
//! low-level client, driven by tasks on the worker's own runtime, and an idle list to reuse them.
//!
//! A connection goes back on the list when its response body has been read to the end (the
//! [`PooledBody`] carrying the response gives it back), so the list holds idle connections only
//! and taking one does not walk past connections still streaming. A body dropped before its end
//! takes its connection with it: hyper closes a connection whose response was not read out, rather
//! than reuse it. Entries that closed, or sat unused for longer than `pool_idle_timeout`, are
//! dropped when the list is looked at and by a periodic sweep, which closes their sockets.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

use super::Body;

/// Where an idle connection goes: the upstream's host and port as it was connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub host: Box<str>,
    pub port: u16,
}

impl Destination {
    fn is(&self, host: &str, port: u16) -> bool {
        self.port == port && *self.host == *host
    }
}

struct Idle {
    destination: Destination,
    sender: SendRequest<Body>,
    /// When this connection was last seen busy or handed out.
    since: Instant,
}

#[derive(Default)]
struct IdleList {
    entries: Vec<Idle>,
    /// The `pool_idle_timeout` of the last snapshot that used the pool, for the sweep.
    idle_timeout: Option<Duration>,
}

/// The idle list of one worker. Cloning shares it.
#[derive(Clone, Default)]
pub struct IdleConnections {
    list: Arc<Mutex<IdleList>>,
}

impl IdleConnections {
    /// A connection to `host:port` that is ready for a request, if there is one. The most
    /// recently returned one is preferred (its socket and buffers are warm).
    pub fn take(&self, host: &str, port: u16, idle_timeout: Duration) -> Option<SendRequest<Body>> {
        let now = Instant::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.idle_timeout = Some(idle_timeout);
        let mut index = list.entries.len();
        while index > 0 {
            index -= 1;
            let entry = &mut list.entries[index];
            if !entry.destination.is(host, port) {
                continue;
            }
            match state(entry, now, idle_timeout) {
                State::Gone => {
                    list.entries.swap_remove(index);
                }
                State::Busy => entry.since = now,
                State::Ready => return Some(list.entries.swap_remove(index).sender),
            }
        }
        None
    }

    /// Keeps `sender` for later requests to `destination`.
    pub fn put(&self, destination: Destination, sender: SendRequest<Body>) {
        let idle = Idle {
            destination,
            sender,
            since: Instant::now(),
        };
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.entries.push(idle);
    }

    /// Drops connections that closed or have been idle too long.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(idle_timeout) = list.idle_timeout else {
            return;
        };
        list.entries
            .retain_mut(|entry| match state(entry, now, idle_timeout) {
                State::Gone => false,
                State::Busy => {
                    entry.since = now;
                    true
                }
                State::Ready => true,
            });
    }

    /// How many idle connections the list holds.
    pub fn len(&self) -> usize {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether the list holds no connection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sweeps every `period` for as long as the worker runs.
    pub async fn sweep_every(self, period: Duration) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.sweep();
        }
    }
}

enum State {
    /// Closed, or idle for longer than the timeout: drop it.
    Gone,
    /// Given back the moment its response body ended, before hyper's connection task marked it
    /// ready (rare: that task usually runs first): keep it, not usable yet.
    Busy,
    Ready,
}

fn state(entry: &Idle, now: Instant, idle_timeout: Duration) -> State {
    if entry.sender.is_closed() {
        State::Gone
    } else if !entry.sender.is_ready() {
        State::Busy
    } else if now.saturating_duration_since(entry.since) >= idle_timeout {
        State::Gone
    } else {
        State::Ready
    }
}

/// A connection lent to one exchange, to be put back on the idle list once its response is read.
pub struct Lent {
    pub idle: IdleConnections,
    pub destination: Destination,
    pub sender: SendRequest<Body>,
}

/// An upstream response body that gives its connection back to the pool when it ends.
pub struct PooledBody {
    inner: Incoming,
    lent: Option<Lent>,
}

impl PooledBody {
    /// `lent` is `None` for a connection that is not to be reused (switched to a tunnel).
    pub fn new(inner: Incoming, lent: Option<Lent>) -> PooledBody {
        PooledBody { inner, lent }
    }

    fn give_back(&mut self) {
        if let Some(Lent {
            idle,
            destination,
            sender,
        }) = self.lent.take()
        {
            idle.put(destination, sender);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            // A broken exchange: the connection is not worth keeping.
            Some(Err(_)) => self.lent = None,
            // hyper stops asking once `is_end_stream` says so, so the last frame is the moment.
            Some(Ok(_)) if self.inner.is_end_stream() => self.give_back(),
            Some(Ok(_)) => {}
            None => self.give_back(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    /// A body that was empty from the start (304, 204, HEAD, `Content-Length: 0`) is never
    /// polled; one dropped half-read is not given back.
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}
