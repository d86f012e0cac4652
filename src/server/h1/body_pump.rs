//! A request's body read off the socket while the gateway works on the answer, and what the
//! connection reads around it: the 100 Continue, a client that leaves, a body left unread.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use http::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::READ_CHUNK;
use super::request_body::{BodyDecoder, BodyReadError, BodySender, Demand};
use super::writer::Stalling;

/// Reads a request's body off the socket as the gateway asks for it.
pub(super) struct BodyPump<'a> {
    sender: &'a BodySender,
    decoder: &'a mut BodyDecoder,
    expect_continue: bool,
    /// How much of the 100 Continue is written: an answer that comes while it is half-written
    /// must first finish it.
    continue_sent: usize,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl<'a> BodyPump<'a> {
    pub(super) fn new(
        sender: &'a BodySender,
        decoder: &'a mut BodyDecoder,
        expect_continue: bool,
    ) -> BodyPump<'a> {
        BodyPump {
            sender,
            decoder,
            expect_continue,
            continue_sent: 0,
        }
    }

    /// Drives `handled` to its answer, reading the body for it meanwhile. `None` when the client
    /// closed the connection first: the answer is dropped unwritten (and logged as 499).
    pub(super) async fn run_beside<T, F, B>(
        mut self,
        mut handled: std::pin::Pin<&mut F>,
        io: &mut T,
        buffer: &mut BytesMut,
        read_limit: usize,
        stall: Duration,
    ) -> Option<Box<Response<B>>>
    where
        T: AsyncRead + AsyncWrite + Unpin,
        F: Future<Output = Box<Response<B>>>,
    {
        if self.decoder.is_done() {
            self.sender.end();
        }
        if !self.decoder.is_done() {
            let answered = tokio::select! {
                biased;
                response = handled.as_mut() => Some(response),
                () = self.pump(io, buffer) => None,
            };
            if let Some(response) = answered {
                if (1..CONTINUE.len()).contains(&self.continue_sent) {
                    // A failure here fails the answer's own write too.
                    let rest = &CONTINUE[self.continue_sent..];
                    let _ = Stalling::new(&mut *io, stall).write_all(rest).await;
                }
                return Some(response);
            }
        }
        tokio::select! {
            biased;
            response = handled.as_mut() => Some(response),
            () = watch_for_close(io, buffer, read_limit) => None,
        }
    }

    /// Hands over frames while they are wanted; returns at the body's end, on an error (told to
    /// the body), or when the gateway drops the body.
    async fn pump<T: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut T, buffer: &mut BytesMut) {
        loop {
            if self.sender.demand().await == Demand::Gone {
                return;
            }
            if self.expect_continue {
                while self.continue_sent < CONTINUE.len() {
                    match io.write(&CONTINUE[self.continue_sent..]).await {
                        Ok(0) => {
                            let error = std::io::Error::from(std::io::ErrorKind::WriteZero);
                            self.sender.send(Err(BodyReadError::Io(error.to_string())));
                            return;
                        }
                        Ok(written) => self.continue_sent += written,
                        Err(error) => {
                            self.sender.send(Err(BodyReadError::Io(error.to_string())));
                            return;
                        }
                    }
                }
                self.expect_continue = false;
                if let Err(error) = io.flush().await {
                    self.sender.send(Err(BodyReadError::Io(error.to_string())));
                    return;
                }
            }
            loop {
                match self.decoder.decode(buffer) {
                    Ok(Some(data)) => {
                        self.sender.send(Ok(data));
                        break;
                    }
                    Ok(None) if self.decoder.is_done() => {
                        self.sender.end();
                        return;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        self.sender.send(Err(BodyReadError::Chunked(error)));
                        return;
                    }
                }
                if buffer.capacity() - buffer.len() < READ_CHUNK / 2 {
                    buffer.reserve(READ_CHUNK * 2);
                }
                match io.read_buf(buffer).await {
                    Ok(0) => {
                        self.sender.send(Err(BodyReadError::Incomplete));
                        return;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        self.sender.send(Err(BodyReadError::Io(error.to_string())));
                        return;
                    }
                }
            }
        }
    }
}

/// The most body bytes skipped to keep a connection whose request body was not read.
const SKIP_AT_MOST: usize = 64 * 1024;

/// Skips what is left of an unread request body framed by its length if it is all in the buffer
/// or the socket already (never waiting for more), up to [`SKIP_AT_MOST`] bytes. A chunked body
/// left unread is never skipped: the gateway refuses chunked framing it does not trust unread
/// (`Transfer-Encoding: gzip, chunked`), and after such a refusal the connection closes, as it
/// did under hyper.
pub(super) async fn skip_arrived_body<T: AsyncRead + Unpin>(
    decoder: &mut BodyDecoder,
    buffer: &mut BytesMut,
    io: &mut T,
) {
    if !matches!(decoder, BodyDecoder::Length(_)) {
        return;
    }
    let mut skipped = 0;
    while !decoder.is_done() && skipped <= SKIP_AT_MOST {
        match decoder.decode(buffer) {
            Ok(Some(data)) => skipped += data.len(),
            Ok(None) if decoder.is_done() => return,
            Ok(None) => {
                if buffer.capacity() - buffer.len() < READ_CHUNK / 2 {
                    buffer.reserve(READ_CHUNK);
                }
                match read_now(io, buffer).await {
                    Some(read) if read > 0 => {}
                    _ => return,
                }
            }
            Err(_) => return,
        }
    }
}

/// One read if bytes are there now; `None` when the read would wait.
async fn read_now<T: AsyncRead + Unpin>(io: &mut T, buffer: &mut BytesMut) -> Option<usize> {
    let mut read = pin!(io.read_buf(buffer));
    std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
        Poll::Ready(Ok(read)) => Poll::Ready(Some(read)),
        Poll::Ready(Err(_)) | Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Reads ahead while the gateway works on an answer, as hyper did: a client that closes the
/// connection is gone, and its request is abandoned rather than answered into a closed socket.
/// Bytes that arrive (a pipelined request) wait in the buffer, up to `read_limit`.
async fn watch_for_close<T: AsyncRead + Unpin>(
    io: &mut T,
    buffer: &mut BytesMut,
    read_limit: usize,
) {
    loop {
        if buffer.len() >= read_limit {
            return std::future::pending().await;
        }
        if buffer.capacity() - buffer.len() < READ_CHUNK / 2 {
            buffer.reserve(READ_CHUNK);
        }
        match io.read_buf(buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
