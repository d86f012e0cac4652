//! Waiting for a request head between requests, and reading it: the first-byte, head and idle
//! deadlines, parking, and the server's shutdown.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use super::request_head::parse_request_head;
use super::{ConnectionEvents, Http1Settings, Next, PARK_AFTER, READ_CHUNK};
use crate::proxy::upstream_h1::response_head::KnownNames;

/// Waiting for and reading one request head.
pub(super) struct Waiting {
    /// The connection's first head: the first byte must come within `header_read_timeout`.
    pub(super) first: bool,
    pub(super) peer: SocketAddr,
    pub(super) settings: Http1Settings,
}

impl Waiting {
    pub(super) async fn next_head<T: AsyncRead + Unpin>(
        &self,
        io: &mut T,
        buffer: &mut BytesMut,
        names: &mut KnownNames,
        out: &mut Vec<u8>,
        shutdown: &mut watch::Receiver<bool>,
        events: &dyn ConnectionEvents,
    ) -> Next {
        let settings = &self.settings;
        let waiting_since = Instant::now();
        // Set by the head's first byte.
        let mut head_deadline = None;
        let mut parked = false;
        // The buffer's length when it last held part of a head: it is parsed again only once the
        // bytes read since may end the head (or fill the limit), as hyper did.
        let mut partial_len = None;
        loop {
            if !buffer.is_empty() {
                head_deadline.get_or_insert_with(|| Instant::now() + settings.header_read_timeout);
                let may_be_whole = partial_len.is_none_or(|seen| head_may_end(buffer, seen))
                    || buffer.len() >= settings.head.max_bytes;
                if may_be_whole {
                    match parse_request_head(buffer, settings.head, names) {
                        Ok(Some(head)) => return Next::Head(head),
                        Ok(None) => {}
                        Err(error) => return Next::Refused(error),
                    }
                }
                partial_len = Some(buffer.len());
            }
            let deadline = match head_deadline {
                Some(deadline) => deadline,
                // A new connection gets the head timeout for its first byte too.
                None if self.first => waiting_since + settings.header_read_timeout,
                None if parked => waiting_since + settings.idle_timeout,
                None => waiting_since + PARK_AFTER.min(settings.idle_timeout),
            };
            if *shutdown.borrow() && head_deadline.is_none() {
                return Next::Close;
            }
            tokio::select! {
                read = read_head_bytes(io, buffer, parked) => match read {
                    Ok(0) => return Next::Close,
                    Ok(_) => {}
                    Err(error) => {
                        debug!(peer = %self.peer, %error, "connection failed while reading a head");
                        return Next::Close;
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    match head_deadline {
                        Some(_) => {
                            debug!(peer = %self.peer, "request head not read in time");
                            return Next::Close;
                        }
                        None if self.first => {
                            debug!(peer = %self.peer, "closing connection that sent nothing");
                            return Next::Close;
                        }
                        None if parked || settings.idle_timeout <= PARK_AFTER => {
                            debug!(peer = %self.peer, "closing idle connection");
                            return Next::Close;
                        }
                        None => {
                            debug!(peer = %self.peer, "parked idle connection");
                            parked = true;
                            *buffer = BytesMut::new();
                            *names = KnownNames::default();
                            // The last answer's write buffer (up to 128 KiB) goes too.
                            *out = Vec::new();
                            events.parked();
                        }
                    }
                }
                changed = shutdown.changed(), if head_deadline.is_none() => {
                    // A closed channel means the server is gone: shut down the same way.
                    let _ = changed;
                    return Next::Close;
                }
            }
        }
    }
}

/// Whether the bytes after the first `seen` of `bytes` may end a head: an empty line (CRLF CRLF,
/// or bare LFs), looked for from just before them (hyper's `is_complete_fast`).
fn head_may_end(bytes: &[u8], seen: usize) -> bool {
    let new = &bytes[seen.saturating_sub(3).min(bytes.len())..];
    new.windows(2).any(|pair| pair == b"\n\n") || new.windows(3).any(|three| three == b"\n\r\n")
}

/// Reads more of a head into `buffer`. A parked connection with nothing buffered waits for its
/// next request's first byte holding no buffer (the read buffer is allocated when it arrives).
async fn read_head_bytes<T: AsyncRead + Unpin>(
    io: &mut T,
    buffer: &mut BytesMut,
    parked: bool,
) -> std::io::Result<usize> {
    if parked && buffer.capacity() == 0 {
        let mut byte = [0u8; 1];
        let read = io.read(&mut byte).await?;
        if read > 0 {
            buffer.reserve(READ_CHUNK);
            buffer.extend_from_slice(&byte[..read]);
        }
        return Ok(read);
    }
    if buffer.capacity() - buffer.len() < READ_CHUNK / 2 {
        buffer.reserve(READ_CHUNK);
    }
    io.read_buf(buffer).await
}
