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
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::chunked::{ChunkedDecoder, ChunkedError, Decoded};
use super::connection::UpstreamConnection;
use super::response_head::BodyFraming;
use crate::proxy::pool::{Destination, IdleConnections};

/// Where a connection goes back to once its response has been read.
pub struct Home {
    pub idle: IdleConnections,
    pub destination: Destination,
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
    /// `None` once the body is done (the connection went back, or was closed).
    connection: Option<UpstreamConnection>,
    reading: Reading,
    reusable: bool,
    home: Home,
}

impl UpstreamBody {
    /// A body framed as `framing`, whose first bytes may already be in `connection`'s buffer.
    /// `reusable` says whether the head and the request allow the connection to be kept (never
    /// after a switch); `home` is where it is kept.
    pub fn new(
        connection: UpstreamConnection,
        framing: BodyFraming,
        reusable: bool,
        home: Home,
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
        };
        if matches!(body.reading, Reading::Done) && framing != BodyFraming::Switched {
            body.finish();
        }
        body
    }

    /// The connection of a 101 answer, with the bytes that came after the head, for the tunnel.
    pub fn into_switched(mut self) -> Option<UpstreamConnection> {
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
        self.home
            .idle
            .put(self.home.destination.clone(), connection);
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
        loop {
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            let buffer = &mut connection.buffer;
            let step = match &mut this.reading {
                Reading::Done => Step::End,
                Reading::Length { remaining } if !buffer.is_empty() => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(buffer.len());
                    *remaining -= take as u64;
                    Step::Data(buffer.split_to(take).freeze(), *remaining == 0)
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
