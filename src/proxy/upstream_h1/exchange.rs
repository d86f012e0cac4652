//! One request and its response head on an upstream connection, inside the guest's own task: no
//! channel and no second task between the request and the upstream's socket.
//!
//! A request body is sent while the response head is awaited, so an upstream that answers early
//! (a 413 before it has read the upload) is heard at once rather than after a write that never
//! finishes; such a connection is not reused, since the upstream has not read the whole request.

use std::future::poll_fn;
use std::io;
use std::pin::{Pin, pin};

use bytes::{Buf, Bytes, BytesMut};
use http::Method;
use hyper::body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::connection::{UpstreamConnection, poll_fill};
use super::request_head::RequestFraming;
use super::response_head::{HeadError, Parsed, ResponseHead, ResponseMemory, parse_response_head};
use crate::proxy::{Body, BoxError};

/// The most interim (1xx) responses read before the final one; an upstream that sends more is
/// not answering.
const MAX_INTERIM: usize = 16;

/// Why an exchange ended without a usable response head.
#[derive(Debug)]
pub enum ExchangeError {
    /// Writing the request failed.
    Write(io::Error),
    /// Reading the response failed.
    Read {
        error: io::Error,
        bytes_received: bool,
    },
    /// The upstream closed the connection before a whole response head arrived.
    Closed { bytes_received: bool },
    /// The response head is not one casegate forwards.
    Head(HeadError),
    /// More interim responses than [`MAX_INTERIM`].
    EndlessInterim,
    /// The client's request body failed (too large, too slow, broken, gone).
    RequestBody(BoxError),
    /// The request body held other than its declared length.
    BodyLength { declared: u64 },
}

impl ExchangeError {
    /// The request could not be written: a kept connection the upstream had closed (its
    /// keep-alive timer) just as the request went out. The upstream cannot have read it whole.
    pub fn is_unsent(&self) -> bool {
        matches!(self, ExchangeError::Write(error) if is_reset(error))
    }

    /// The request was written but the connection ended with no byte of an answer. The upstream
    /// closed before reading it, or read it, acted on it and then failed: the two cannot be told
    /// apart, so only a request that changes nothing may go again.
    pub fn is_unanswered(&self) -> bool {
        match self {
            ExchangeError::Read {
                error,
                bytes_received: false,
            } => is_reset(error),
            ExchangeError::Closed {
                bytes_received: false,
            } => true,
            _ => false,
        }
    }
}

fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Write(_) => f.write_str("sending the request failed"),
            ExchangeError::Read { .. } => f.write_str("reading the response failed"),
            ExchangeError::Closed {
                bytes_received: false,
            } => f.write_str("the upstream closed the connection without answering"),
            ExchangeError::Closed {
                bytes_received: true,
            } => f.write_str("the upstream closed the connection within the response head"),
            ExchangeError::Head(_) => f.write_str("the response head was refused"),
            ExchangeError::EndlessInterim => {
                write!(f, "more than {MAX_INTERIM} interim (1xx) responses")
            }
            ExchangeError::RequestBody(_) => f.write_str("the request body failed"),
            ExchangeError::BodyLength { declared } => {
                write!(
                    f,
                    "the request body did not hold its declared {declared} bytes"
                )
            }
        }
    }
}

impl std::error::Error for ExchangeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExchangeError::Write(error) | ExchangeError::Read { error, .. } => Some(error),
            ExchangeError::Head(error) => Some(error),
            ExchangeError::RequestBody(error) => Some(&**error),
            ExchangeError::Closed { .. }
            | ExchangeError::EndlessInterim
            | ExchangeError::BodyLength { .. } => None,
        }
    }
}

/// The response head, and whether the whole request went out (a connection whose upload was
/// cut short by an early answer is not reused).
pub struct Answered {
    pub head: Box<ResponseHead>,
    pub request_sent: bool,
}

/// Writes `head` and `body` on `connection` and reads the final response head, which is removed
/// from the connection's buffer; body bytes that came with it stay there.
pub async fn exchange(
    connection: &mut UpstreamConnection,
    head: &[u8],
    body: Body,
    framing: RequestFraming,
    method: &Method,
) -> Result<Answered, ExchangeError> {
    debug_assert!(
        connection.buffer.is_empty(),
        "a pooled connection had bytes"
    );
    let UpstreamConnection {
        stream,
        buffer,
        read_size,
        memory,
        ..
    } = connection;
    let (mut reader, mut writer) = stream.split();
    if framing == RequestFraming::Empty {
        writer.write_all(head).await.map_err(ExchangeError::Write)?;
        let head = read_head(&mut reader, buffer, read_size, memory, method).await?;
        return Ok(Answered {
            head,
            request_sent: true,
        });
    }
    let mut answer = pin!(read_head(&mut reader, buffer, read_size, memory, method));
    let upload = upload(&mut writer, head, body, framing);
    tokio::select! {
        biased;
        head = &mut answer => Ok(Answered { head: head?, request_sent: false }),
        sent = upload => {
            sent?;
            Ok(Answered { head: answer.await?, request_sent: true })
        }
    }
}

async fn read_head(
    reader: &mut (impl AsyncRead + Unpin),
    buffer: &mut BytesMut,
    read_size: &mut usize,
    memory: &mut ResponseMemory,
    method: &Method,
) -> Result<Box<ResponseHead>, ExchangeError> {
    let mut interim = 0;
    let mut received = false;
    loop {
        if !buffer.is_empty() {
            match parse_response_head(buffer, method, memory).map_err(ExchangeError::Head)? {
                Parsed::Final(head) => return Ok(head),
                Parsed::Interim => {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(ExchangeError::EndlessInterim);
                    }
                    continue;
                }
                Parsed::Partial => {}
            }
        }
        let read = poll_fn(|cx| poll_fill(Pin::new(&mut *reader), buffer, read_size, cx))
            .await
            .map_err(|error| ExchangeError::Read {
                error,
                bytes_received: received,
            })?;
        if read == 0 {
            return Err(ExchangeError::Closed {
                bytes_received: received,
            });
        }
        received = true;
    }
}

/// Sends the head and then the body in the chosen framing, holding a declared length to its
/// word.
async fn upload(
    writer: &mut (impl AsyncWrite + Unpin),
    head: &[u8],
    mut body: Body,
    framing: RequestFraming,
) -> Result<(), ExchangeError> {
    writer.write_all(head).await.map_err(ExchangeError::Write)?;
    let mut sent: u64 = 0;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(ExchangeError::RequestBody)?;
        // Trailers from the client are not forwarded.
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        if !data.has_remaining() {
            continue;
        }
        sent += data.remaining() as u64;
        match framing {
            RequestFraming::Length(declared) if sent > declared => {
                return Err(ExchangeError::BodyLength { declared });
            }
            RequestFraming::Chunked => {
                let size = format!("{:x}\r\n", data.remaining());
                writer
                    .write_all(size.as_bytes())
                    .await
                    .map_err(ExchangeError::Write)?;
                write_data(writer, &mut data).await?;
                writer
                    .write_all(b"\r\n")
                    .await
                    .map_err(ExchangeError::Write)?;
            }
            _ => write_data(writer, &mut data).await?,
        }
    }
    match framing {
        RequestFraming::Length(declared) if sent != declared => {
            Err(ExchangeError::BodyLength { declared })
        }
        RequestFraming::Chunked => writer
            .write_all(b"0\r\n\r\n")
            .await
            .map_err(ExchangeError::Write),
        _ => Ok(()),
    }
}

async fn write_data(
    writer: &mut (impl AsyncWrite + Unpin),
    data: &mut Bytes,
) -> Result<(), ExchangeError> {
    writer
        .write_all_buf(data)
        .await
        .map_err(ExchangeError::Write)
}
