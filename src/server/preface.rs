//! Which HTTP a cleartext connection speaks: HTTP/2 with prior knowledge starts with a fixed
//! 24-byte preface, anything else is HTTP/1. The bytes read to tell are handed back to hyper in
//! front of the stream ([`Prefixed`]).
//!
//! hyper-util's auto builder does the same, but its rewind reader returns those bytes alone, so
//! hyper's first read gets 24 bytes, its second reserves another 8 KiB on top, and every HTTP/1
//! connection kept a 16 KiB read buffer for life (two thirds of an idle connection's memory).
//! [`Prefixed`] fills the rest of hyper's buffer from the socket in the same read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// RFC 9113 section 3.4.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// Reads until the bytes stop matching the HTTP/2 preface (usually the first byte) or match it
/// whole. A peer that closes first is read as HTTP/1, which then sees the end of the stream.
pub async fn sniff<T: AsyncRead + Unpin>(mut io: T) -> io::Result<(Protocol, Prefixed<T>)> {
    let mut read = [0u8; 24];
    let mut filled = 0;
    let protocol = loop {
        let n = io.read(&mut read[filled..]).await?;
        let start = filled;
        filled += n;
        if n == 0 || read[start..filled] != H2_PREFACE[start..filled] {
            break Protocol::Http1;
        }
        if filled == H2_PREFACE.len() {
            break Protocol::Http2;
        }
    };
    Ok((
        protocol,
        Prefixed::new(io, Bytes::copy_from_slice(&read[..filled])),
    ))
}

/// A stream with some bytes already read from it put back in front.
#[derive(Debug)]
pub struct Prefixed<T> {
    inner: T,
    prefix: Bytes,
}

impl<T> Prefixed<T> {
    pub fn new(inner: T, prefix: Bytes) -> Prefixed<T> {
        Prefixed { inner, prefix }
    }

    /// The stream and whatever of the prefix was not read yet.
    pub fn into_parts(self) -> (T, Bytes) {
        (self.inner, self.prefix)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let take = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..take]);
        this.prefix.advance(take);
        if this.prefix.is_empty() && buf.remaining() > 0 {
            // The rest of the request, if it has arrived, in the same read. Pending or an error
            // here waits for the next read: the prefix was delivered either way.
            let _ = Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn sniffed(chunks: &[&[u8]]) -> (Protocol, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1024);
        for chunk in chunks {
            client.write_all(chunk).await.unwrap();
        }
        drop(client);
        let (protocol, mut prefixed) = sniff(server).await.unwrap();
        let mut all = Vec::new();
        prefixed.read_to_end(&mut all).await.unwrap();
        (protocol, all)
    }

    #[tokio::test]
    async fn http1_is_told_at_the_first_byte_and_every_byte_is_handed_back() {
        let request = b"GET /cases/42 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            sniffed(&[request]).await,
            (Protocol::Http1, request.to_vec())
        );
    }

    #[tokio::test]
    async fn the_http2_preface_even_in_pieces_is_http2() {
        let (protocol, bytes) =
            sniffed(&[b"PRI * HTTP", b"/2.0\r\n\r\nSM\r\n\r\n", b"frames"]).await;
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(bytes, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nframes");
    }

    #[tokio::test]
    async fn a_near_preface_or_an_early_close_is_http1() {
        let (protocol, bytes) = sniffed(&[b"PRI * HTTP/1.1\r\n"]).await;
        assert_eq!(
            (protocol, bytes.as_slice()),
            (Protocol::Http1, &b"PRI * HTTP/1.1\r\n"[..])
        );
        assert_eq!(sniffed(&[b"PRI"]).await, (Protocol::Http1, b"PRI".to_vec()));
        assert_eq!(sniffed(&[]).await, (Protocol::Http1, Vec::new()));
    }

    #[tokio::test]
    async fn one_read_returns_the_prefix_and_what_followed_it() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let (_, mut prefixed) = sniff(server).await.unwrap();
        let mut buf = [0u8; 64];
        let n = prefixed.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
    }
}
