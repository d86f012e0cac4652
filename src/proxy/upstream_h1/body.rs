//! An upstream response body, read from its connection as the client takes it (back-pressure:
//! nothing is read ahead of the client), which gives the connection back to the pool the moment
//! the body ends cleanly.
//!
//! A connection goes back only when every byte the upstream sent belonged to this response:
//! the framing said where it ends, it ended there, and nothing followed. A body dropped early, a
//! broken one, one that ended at the close, or one followed by stray bytes takes its connection
//! with it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::chunked::{ChunkedDecoder, ChunkedError, Decoded};
use super::connection::UpstreamConnection;
use super::response_head::BodyFraming;
use crate::metrics::Metrics;
use crate::proxy::pool::IdleConnections;

/// A length-framed body at least this long is offered to a writer that can move it from socket to
/// socket in the kernel ([`SpliceOffer`]): a video, not a page.
pub const SPLICE_FROM: u64 = 1024 * 1024;

/// Splits off the front of `buffer` as much of a length-framed body as it holds, at most the
/// `remaining` bytes of it, and counts them off. Bodies both ways (upstream responses, client
/// requests) are read with it.
pub(crate) fn take_counted(buffer: &mut BytesMut, remaining: &mut u64) -> Bytes {
    let take = usize::try_from(*remaining)
        .unwrap_or(usize::MAX)
        .min(buffer.len());
    *remaining -= take as u64;
    buffer.split_to(take).freeze()
}

/// Why a response body could not be read to its end.
#[derive(Debug)]
pub enum BodyError {
    Read(io::Error),
    /// The upstream closed before the length it declared, or before the last chunk.
    ClosedEarly,
    Chunked(ChunkedError),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Read(error) => write!(f, "reading the upstream's response body: {error}"),
            BodyError::ClosedEarly => {
                f.write_str("the upstream closed the connection before the body's end")
            }
            BodyError::Chunked(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Read(error) => Some(error),
            BodyError::ClosedEarly | BodyError::Chunked(_) => None,
        }
    }
}

enum Reading {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// What one look at the buffer gave.
enum Step {
    /// Body bytes, and whether they are the last.
    Data(Bytes, bool),
    End,
    NeedMore,
    Fail(BodyError),
}

/// The body of an upstream response.
pub struct UpstreamBody {
    /// `None` once the body is done (the connection went back, or was closed), and while it is
    /// offered.
    connection: Option<Box<UpstreamConnection>>,
    reading: Reading,
    reusable: bool,
    /// Where the connection goes back once the response has been read.
    home: IdleConnections,
    /// A large body's connection, offered until the body is first polled.
    offer: Option<SpliceOffer>,
}

/// A large length-framed body's connection, offered by the answer's body to the HTTP/1 server
/// ([`super::UpstreamExtras::splice_offer`]), which may take it before it polls the body and move
/// the rest of the body straight from the upstream's socket to the client's (`splice(2)`,
/// `server::h1::splice`): the bytes then never enter casegate. The first poll of the body withdraws
/// the offer, so a writer that does not take it reads the body as usual. Also counts the bytes
/// moved, for the access log, and the bytes spliced, for the metrics.
#[derive(Clone)]
pub struct SpliceOffer(Arc<OfferShared>);

struct OfferShared {
    slot: Mutex<Option<Spliceable>>,
    moved: AtomicU64,
    metrics: Arc<Metrics>,
}

/// What a writer that took the offer holds: the connection (its buffer may hold the body's first
/// bytes) and how much of the body is still to come.
pub struct Spliceable {
    connection: Box<UpstreamConnection>,
    /// Body bytes not yet handed on, from the buffer or the socket.
    remaining: u64,
    reusable: bool,
    /// Where the connection goes back once the response has been read.
    home: IdleConnections,
}

impl SpliceOffer {
    /// Takes the body's connection; `None` once the body was polled or the offer taken.
    pub fn take(&self) -> Option<Spliceable> {
        self.0
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Counts body bytes the writer moved itself (written from the connection's buffer, or
    /// spliced).
    pub fn record_moved(&self, bytes: u64) {
        self.0.moved.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts body bytes the writer moved from socket to socket in the kernel.
    pub fn record_spliced(&self, bytes: u64) {
        self.record_moved(bytes);
        self.0.metrics.record_spliced(bytes);
    }

    /// The body bytes the writer moved itself.
    pub fn moved(&self) -> u64 {
        self.0.moved.load(Ordering::Relaxed)
    }
}

impl Spliceable {
    /// The body's bytes that came in with the head (or since), at most the body's length.
    pub fn take_buffered(&mut self) -> Bytes {
        take_counted(&mut self.connection.buffer, &mut self.remaining)
    }

    /// The upstream's socket, where the rest of the body is to be read.
    pub fn upstream(&self) -> &tokio::net::TcpStream {
        self.connection.stream.get_ref()
    }

    /// Body bytes still in the upstream's socket.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// `moved` more of the body's bytes were taken from the socket.
    pub fn took(&mut self, moved: u64) {
        self.remaining = self.remaining.saturating_sub(moved);
    }

    /// The whole body has been moved: the connection goes back to the pool under the same rule
    /// as a body read to its end.
    pub fn finish(mut self) {
        if self.remaining != 0 || !self.reusable || !self.connection.buffer.is_empty() {
            return;
        }
        self.connection.rest();
        self.home.put(self.connection);
    }
}

impl UpstreamBody {
    /// A body framed as `framing`, whose first bytes may already be in `connection`'s buffer.
    /// `reusable` says whether the head and the request allow the connection to be kept (never
    /// after a switch); `home` is where it is kept.
    pub fn new(
        connection: Box<UpstreamConnection>,
        framing: BodyFraming,
        reusable: bool,
        home: IdleConnections,
    ) -> UpstreamBody {
        let reading = match framing {
            BodyFraming::Empty | BodyFraming::Switched => Reading::Done,
            BodyFraming::Length(remaining) => Reading::Length { remaining },
            BodyFraming::Chunked => Reading::Chunked(ChunkedDecoder::new()),
            BodyFraming::UntilClose => Reading::UntilClose,
        };
        let mut body = UpstreamBody {
            connection: Some(connection),
            reading,
            reusable,
            home,
            offer: None,
        };
        if matches!(body.reading, Reading::Done) && framing != BodyFraming::Switched {
            body.finish();
        }
        body
    }

    /// Offers a body of at least [`SPLICE_FROM`] bytes to be moved by its writer (see
    /// [`SpliceOffer`]); `None` for any other. The bytes spliced are counted in `metrics`.
    pub fn offer_splice(&mut self, metrics: &Arc<Metrics>) -> Option<SpliceOffer> {
        let Reading::Length { remaining } = self.reading else {
            return None;
        };
        if !cfg!(target_os = "linux") || remaining < SPLICE_FROM || self.offer.is_some() {
            return None;
        }
        let connection = self.connection.take()?;
        let offer = SpliceOffer(Arc::new(OfferShared {
            slot: Mutex::new(Some(Spliceable {
                connection,
                remaining,
                reusable: self.reusable,
                home: self.home.clone(),
            })),
            moved: AtomicU64::new(0),
            metrics: Arc::clone(metrics),
        }));
        self.offer = Some(offer.clone());
        Some(offer)
    }

    /// Ends an offer at the first poll: the connection comes back, unless the writer took it,
    /// in which case this body has nothing more to give.
    fn withdraw_offer(&mut self) {
        let Some(offer) = self.offer.take() else {
            return;
        };
        match offer.take() {
            Some(spliceable) => self.connection = Some(spliceable.connection),
            None => self.reading = Reading::Done,
        }
    }

    /// The connection of a 101 answer, with the bytes that came after the head, for the tunnel.
    pub fn into_switched(mut self) -> Option<Box<UpstreamConnection>> {
        self.connection.take()
    }

    /// The body ended where its framing said: the connection goes back if nothing forbids it.
    fn finish(&mut self) {
        self.reading = Reading::Done;
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        // Bytes after the end are not this response's, and not a next one's either: nothing
        // was asked. The connection is closed rather than trusted.
        if !self.reusable || !connection.buffer.is_empty() {
            return;
        }
        connection.rest();
        self.home.put(connection);
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.reading = Reading::Done;
        self.connection = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        this.withdraw_offer();
        loop {
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            let buffer = &mut connection.buffer;
            let step = match &mut this.reading {
                Reading::Done => Step::End,
                Reading::Length { remaining } if !buffer.is_empty() => {
                    let data = take_counted(buffer, remaining);
                    Step::Data(data, *remaining == 0)
                }
                Reading::Chunked(decoder) => match decoder.decode(buffer) {
                    Ok(Decoded::Data(data)) => Step::Data(data, false),
                    Ok(Decoded::End) => Step::End,
                    Ok(Decoded::NeedMore) => Step::NeedMore,
                    Err(error) => Step::Fail(BodyError::Chunked(error)),
                },
                Reading::UntilClose if !buffer.is_empty() => {
                    Step::Data(buffer.split().freeze(), false)
                }
                Reading::Length { .. } | Reading::UntilClose => Step::NeedMore,
            };
            match step {
                Step::Data(data, ended) => {
                    if ended {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::End => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Step::Fail(error) => return this.fail(error),
                Step::NeedMore => {}
            }
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(connection.poll_fill(cx)) {
                Ok(0) if matches!(this.reading, Reading::UntilClose) => {
                    // The close is this body's end; the connection goes with it.
                    this.reading = Reading::Done;
                    this.connection = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(BodyError::ClosedEarly),
                Ok(_) => {}
                Err(error) => return this.fail(BodyError::Read(error)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.reading, Reading::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.reading {
            Reading::Length { remaining } => SizeHint::with_exact(remaining),
            Reading::Done => SizeHint::with_exact(0),
            Reading::Chunked(_) | Reading::UntilClose => SizeHint::default(),
        }
    }
}
