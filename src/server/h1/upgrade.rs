//! Handing an HTTP/1 connection to a tunnel once its answer switched protocols (a WebSocket's 101).
//!
//! A request that may switch carries an [`OnUpgrade`] in its extensions; the connection's loop
//! keeps the other end and, once the 101 is written, sends it the stream and the bytes the client
//! sent after its request (which belong to the new protocol).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// What the stream of an upgraded connection must be.
pub trait UpgradedIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> UpgradedIo for T {}

/// An upgraded connection: the bytes read past the request first, then the stream.
pub struct Upgraded {
    early: Bytes,
    io: Box<dyn UpgradedIo>,
}

/// The request's end: resolves to the connection once the 101 has been written. Cloneable, as
/// request extensions must be; only one clone gets the connection.
#[derive(Debug, Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

/// The connection loop's end.
#[derive(Debug)]
pub struct PendingUpgrade(oneshot::Sender<Upgraded>);

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("early", &self.early.len())
            .finish_non_exhaustive()
    }
}

pub fn pending() -> (PendingUpgrade, OnUpgrade) {
    let (sender, receiver) = oneshot::channel();
    (
        PendingUpgrade(sender),
        OnUpgrade(Arc::new(Mutex::new(Some(receiver)))),
    )
}

impl PendingUpgrade {
    pub fn fulfil(self, io: Box<dyn UpgradedIo>, early: Bytes) {
        // A request already gone has nothing to tunnel; the stream closes with it.
        let _ = self.0.send(Upgraded { early, io });
    }
}

/// The connection closed or answered without switching.
#[derive(Debug)]
pub struct NotUpgraded;

impl std::fmt::Display for NotUpgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection did not switch protocols")
    }
}

impl std::error::Error for NotUpgraded {}

impl Future for OnUpgrade {
    type Output = Result<Upgraded, NotUpgraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(receiver) = slot.as_mut() else {
            return Poll::Ready(Err(NotUpgraded));
        };
        let result = std::task::ready!(Pin::new(receiver).poll(cx));
        *slot = None;
        Poll::Ready(result.map_err(|_| NotUpgraded))
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.early.is_empty() {
            let take = self.early.len().min(buf.remaining());
            buf.put_slice(&self.early[..take]);
            self.early.advance(take);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_early_bytes_come_first_then_the_stream() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (pending, on_upgrade) = pending();
        pending.fulfil(Box::new(ours), Bytes::from_static(b"early "));
        let mut upgraded = on_upgrade.await.unwrap();
        theirs.write_all(b"later").await.unwrap();
        drop(theirs);
        let mut read = String::new();
        upgraded.read_to_string(&mut read).await.unwrap();
        assert_eq!(read, "early later");
    }

    #[tokio::test]
    async fn no_switch_is_an_error_not_a_wait() {
        let (pending, on_upgrade) = pending();
        drop(pending);
        assert!(on_upgrade.await.is_err());
    }
}
