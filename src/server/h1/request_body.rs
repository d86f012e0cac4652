//! A request's body, handed to the gateway while the connection's loop reads it off the socket.
//!
//! The body is read on demand, as hyper's server did: nothing is read until the gateway asks for a
//! frame (so a request refused before its body is never read, and `Expect: 100-continue` is
//! answered only when the body is wanted), one frame is in hand at a time (the socket's flow
//! control, not a queue, holds a fast client back), and the loop that reads it is the connection's
//! own task, so no second task or channel crosses threads. [`BodySender`] is the loop's end,
//! [`H1Body`] the gateway's.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

use super::request_head::RequestFraming;
use crate::proxy::upstream_h1::body::take_counted;
use crate::proxy::upstream_h1::chunked::{ChunkedDecoder, ChunkedError, Decoded};

/// Why a request body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyReadError {
    /// The client closed the connection before the body's end.
    Incomplete,
    /// The chunked framing was broken.
    Chunked(ChunkedError),
    /// The socket failed.
    Io(String),
    /// The connection stopped reading the body (its answer was already sent).
    Abandoned,
}

impl std::fmt::Display for BodyReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyReadError::Incomplete => {
                f.write_str("client closed the connection inside the body")
            }
            BodyReadError::Chunked(error) => write!(f, "request body: {error}"),
            BodyReadError::Io(error) => write!(f, "reading the request body: {error}"),
            BodyReadError::Abandoned => f.write_str("request body no longer read"),
        }
    }
}

impl std::error::Error for BodyReadError {}

/// Where the body's framing stands: how much is left, or the chunked decoder's place.
#[derive(Debug)]
pub enum BodyDecoder {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

impl BodyDecoder {
    pub fn new(framing: RequestFraming) -> BodyDecoder {
        match framing {
            RequestFraming::Empty => BodyDecoder::Done,
            RequestFraming::Length(length) => BodyDecoder::Length(length),
            RequestFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
        }
    }

    /// Whether the body has been read to its end (the connection may then read the next
    /// request).
    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// Body bytes from the front of `buffer`: `Some` data, or `None` when more must be read.
    /// [`BodyDecoder::is_done`] tells when the body has ended.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Bytes>, ChunkedError> {
        match self {
            BodyDecoder::Done => Ok(None),
            BodyDecoder::Length(left) => {
                if buffer.is_empty() {
                    return Ok(None);
                }
                let data = take_counted(buffer, left);
                if *left == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Some(data))
            }
            BodyDecoder::Chunked(decoder) => match decoder.decode(buffer)? {
                Decoded::Data(data) => Ok(Some(data)),
                Decoded::NeedMore => Ok(None),
                Decoded::End => {
                    *self = BodyDecoder::Done;
                    Ok(None)
                }
            },
        }
    }
}

/// The state both ends share. One lock per frame, never contended: both ends run in the
/// connection's task.
#[derive(Debug, Default)]
struct Shared {
    /// The gateway polled for a frame and none was in hand.
    wanted: bool,
    frame: Option<Result<Bytes, BodyReadError>>,
    ended: bool,
    /// The loop stopped before the body's end: the reader gets one error after any frame.
    abandoned: bool,
    /// The gateway dropped its end.
    dropped: bool,
    reader: Option<Waker>,
    loop_waker: Option<Waker>,
}

/// The gateway's end: a request body, frame by frame.
#[derive(Debug)]
pub struct H1Body {
    /// `None` for a request without a body (most of them: every GET), which has nothing to hand
    /// over and so no channel: its allocation and the lock on each end's calls cost a request
    /// more than the rest of its body handling.
    shared: Option<Arc<Mutex<Shared>>>,
    /// Bytes still to come when the length is known.
    remaining: Option<u64>,
}

/// The connection loop's end.
#[derive(Debug)]
pub struct BodySender {
    /// `None` when there is no body (see [`H1Body`]'s).
    shared: Option<Arc<Mutex<Shared>>>,
}

/// A body and the loop's end of it. `framing` sets the size hint.
pub fn body_channel(framing: RequestFraming) -> (BodySender, H1Body) {
    let remaining = match framing {
        RequestFraming::Empty => {
            let body = H1Body {
                shared: None,
                remaining: Some(0),
            };
            return (BodySender { shared: None }, body);
        }
        RequestFraming::Length(length) => Some(length),
        RequestFraming::Chunked => None,
    };
    let shared = Arc::new(Mutex::new(Shared::default()));
    (
        BodySender {
            shared: Some(Arc::clone(&shared)),
        },
        H1Body {
            shared: Some(shared),
            remaining,
        },
    )
}

/// What the gateway's end asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Demand {
    /// A frame is wanted.
    Frame,
    /// The gateway dropped the body: nothing more will be read.
    Gone,
}

impl BodySender {
    /// Waits until the gateway wants a frame, or has dropped the body.
    pub fn poll_demand(&self, cx: &mut Context<'_>) -> Poll<Demand> {
        let Some(mut shared) = lock(&self.shared) else {
            return Poll::Ready(Demand::Gone);
        };
        if shared.dropped {
            return Poll::Ready(Demand::Gone);
        }
        if shared.wanted && shared.frame.is_none() {
            return Poll::Ready(Demand::Frame);
        }
        shared.loop_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub async fn demand(&self) -> Demand {
        std::future::poll_fn(|cx| self.poll_demand(cx)).await
    }

    /// Hands over data or an error.
    pub fn send(&self, frame: Result<Bytes, BodyReadError>) {
        let Some(mut shared) = lock(&self.shared) else {
            return;
        };
        shared.wanted = false;
        shared.frame = Some(frame);
        if let Some(reader) = shared.reader.take() {
            reader.wake();
        }
    }

    /// The body ended.
    pub fn end(&self) {
        let Some(mut shared) = lock(&self.shared) else {
            return;
        };
        shared.ended = true;
        if let Some(reader) = shared.reader.take() {
            reader.wake();
        }
    }
}

impl Drop for BodySender {
    /// A body whose loop stopped reading it before its end tells its reader so, rather than
    /// leaving it waiting for ever.
    fn drop(&mut self) {
        let Some(mut shared) = lock(&self.shared) else {
            return;
        };
        if !shared.ended {
            shared.abandoned = true;
            shared.ended = true;
        }
        if let Some(reader) = shared.reader.take() {
            reader.wake();
        }
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BodyReadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyReadError>>> {
        let this = &mut *self;
        let Some(mut shared) = lock(&this.shared) else {
            return Poll::Ready(None);
        };
        if let Some(frame) = shared.frame.take() {
            if let (Ok(data), Some(remaining)) = (&frame, this.remaining.as_mut()) {
                *remaining = remaining.saturating_sub(data.len() as u64);
            }
            return Poll::Ready(Some(frame.map(Frame::data)));
        }
        if shared.abandoned {
            shared.abandoned = false;
            return Poll::Ready(Some(Err(BodyReadError::Abandoned)));
        }
        if shared.ended {
            return Poll::Ready(None);
        }
        shared.wanted = true;
        shared.reader = Some(cx.waker().clone());
        if let Some(waker) = shared.loop_waker.take() {
            waker.wake();
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let Some(shared) = lock(&self.shared) else {
            return true;
        };
        shared.ended && shared.frame.is_none() && !shared.abandoned
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}

impl Drop for H1Body {
    fn drop(&mut self) {
        let Some(mut shared) = lock(&self.shared) else {
            return;
        };
        shared.dropped = true;
        if let Some(waker) = shared.loop_waker.take() {
            waker.wake();
        }
    }
}

/// The channel's state, locked; `None` when the request has no body, and so no channel. The lock
/// is never held across a poll or a wake of the other end's code, so a poisoned one (a panic
/// elsewhere while holding it) still holds consistent state.
fn lock(shared: &Option<Arc<Mutex<Shared>>>) -> Option<std::sync::MutexGuard<'_, Shared>> {
    shared.as_ref().map(|shared| {
        shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn a_length_is_decoded_to_its_end_and_no_further() {
        let mut decoder = BodyDecoder::new(RequestFraming::Length(5));
        let mut buffer = BytesMut::from(&b"hel"[..]);
        assert_eq!(decoder.decode(&mut buffer).unwrap().unwrap(), "hel");
        assert!(!decoder.is_done());
        let mut buffer = BytesMut::from(&b"loGET /"[..]);
        assert_eq!(decoder.decode(&mut buffer).unwrap().unwrap(), "lo");
        assert!(decoder.is_done());
        assert_eq!(&buffer[..], b"GET /");
    }

    #[test]
    fn chunked_ends_at_the_last_chunk() {
        let mut decoder = BodyDecoder::new(RequestFraming::Chunked);
        let mut buffer = BytesMut::from(&b"5\r\nhello\r\n0\r\n\r\nNEXT"[..]);
        assert_eq!(decoder.decode(&mut buffer).unwrap().unwrap(), "hello");
        assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
        assert!(decoder.is_done());
        assert_eq!(&buffer[..], b"NEXT");
    }

    #[tokio::test]
    async fn frames_are_read_only_when_wanted() {
        let (sender, body) = body_channel(RequestFraming::Length(4));
        assert_eq!(body.size_hint().exact(), Some(4));
        let reader = tokio::spawn(async move { body.collect().await.map(|c| c.to_bytes()) });
        assert_eq!(sender.demand().await, Demand::Frame);
        sender.send(Ok(Bytes::from_static(b"ab")));
        assert_eq!(sender.demand().await, Demand::Frame);
        sender.send(Ok(Bytes::from_static(b"cd")));
        assert_eq!(sender.demand().await, Demand::Frame);
        sender.end();
        assert_eq!(reader.await.unwrap().unwrap(), "abcd");
        assert_eq!(sender.demand().await, Demand::Gone);
    }

    #[tokio::test]
    async fn a_body_the_loop_gave_up_on_is_an_error_not_a_wait() {
        let (sender, mut body) = body_channel(RequestFraming::Chunked);
        drop(sender);
        let frame = body.frame().await.unwrap();
        assert_eq!(frame.unwrap_err(), BodyReadError::Abandoned);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_request_without_a_body_has_ended_before_anyone_asks() {
        let (sender, mut body) = body_channel(RequestFraming::Empty);
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.frame().await.is_none());
        // The loop is never asked for a frame, whatever it does with its end.
        assert_eq!(sender.demand().await, Demand::Gone);
        sender.send(Ok(Bytes::from_static(b"stray")));
        sender.end();
        assert!(body.frame().await.is_none());
    }
}
