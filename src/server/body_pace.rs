//! The request body's pace: every body gets `body_read_timeout` to arrive, plus one second per
//! `body_min_rate` bytes received. A client that trickles a body a byte at a time (the slow-body
//! variant of slowloris) keeps IO moving, so neither the idle watchdog nor hyper's header timer
//! sees it; this deadline does, and ends the request (and with it the connection's slot).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::h1::request_body::{BodyReadError, H1Body};

/// How fast a request body must arrive (`[server.limits] body_read_timeout` and `body_min_rate`).
#[derive(Clone, Copy, Debug)]
pub struct BodyPace {
    pub grace: Duration,
    pub min_bytes_per_second: u64,
}

impl BodyPace {
    /// When a body of which `received` bytes arrived since `started` is too late.
    fn deadline(self, started: Instant, received: u64) -> Instant {
        let earned = Duration::from_secs_f64(received as f64 / self.min_bytes_per_second as f64);
        started + self.grace + earned
    }
}

/// A client's request body: read by casegate's HTTP/1 server, or by hyper's HTTP/2 one.
#[derive(Debug)]
pub enum ClientBody {
    Http1(H1Body),
    Http2(Incoming),
}

/// Why a client's body could not be read, as its server said.
#[derive(Debug)]
pub enum ReadError {
    Http1(BodyReadError),
    Http2(hyper::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Http1(error) => error.fmt(f),
            ReadError::Http2(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Http1(error) => Some(error),
            ReadError::Http2(error) => Some(error),
        }
    }
}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = ReadError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ReadError>>> {
        match self.get_mut() {
            ClientBody::Http1(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(ReadError::Http1))),
            ClientBody::Http2(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(ReadError::Http2))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Http1(body) => body.is_end_stream(),
            ClientBody::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Http1(body) => body.size_hint(),
            ClientBody::Http2(body) => body.size_hint(),
        }
    }
}

/// Why a paced body failed: its server's error, or the client was too slow.
#[derive(Debug)]
pub enum PacedBodyError {
    Read(ReadError),
    TooSlow { received: u64, after: Duration },
}

impl fmt::Display for PacedBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacedBodyError::Read(error) => write!(f, "{error}"),
            PacedBodyError::TooSlow { received, after } => write!(
                f,
                "request body too slow: {received} bytes in {after:?} (body_read_timeout, body_min_rate)"
            ),
        }
    }
}

impl std::error::Error for PacedBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PacedBodyError::Read(error) => Some(error),
            PacedBodyError::TooSlow { .. } => None,
        }
    }
}

/// A client's request body under a [`BodyPace`]. The clock starts when the gateway first asks for
/// the body, so time the gateway itself spends (authorising, connecting upstream) is not charged
/// to the client.
#[derive(Debug)]
pub struct PacedBody {
    inner: ClientBody,
    pace: BodyPace,
    started: Option<Instant>,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl PacedBody {
    pub fn new(inner: ClientBody, pace: BodyPace) -> PacedBody {
        PacedBody {
            inner,
            pace,
            started: None,
            received: 0,
            timer: None,
        }
    }
}

impl HttpBody for PacedBody {
    type Data = Bytes;
    type Error = PacedBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, PacedBodyError>>> {
        let this = &mut *self;
        let started = *this.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    // Re-armed on the next Pending with the deadline the new bytes earned.
                    this.timer = None;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(PacedBodyError::Read(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.pace.deadline(started, this.received);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(PacedBodyError::TooSlow {
                        received: this.received,
                        after: started.elapsed(),
                    }))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error` (or anything it wraps) is a body that arrived too slowly.
pub fn is_too_slow(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(cause) = current {
        if matches!(
            cause.downcast_ref::<PacedBodyError>(),
            Some(PacedBodyError::TooSlow { .. })
        ) {
            return true;
        }
        current = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_byte_received_earns_time_at_the_minimum_rate() {
        let pace = BodyPace {
            grace: Duration::from_secs(10),
            min_bytes_per_second: 1000,
        };
        let start = Instant::now();
        assert_eq!(pace.deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(pace.deadline(start, 5000), start + Duration::from_secs(15));
        assert_eq!(
            pace.deadline(start, 500),
            start + Duration::from_millis(10_500)
        );
    }
}
