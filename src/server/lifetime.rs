//! What ends an HTTP/2 connection besides its peer: no first byte in time, idleness, shutdown.
//! (HTTP/1 connections keep their own time in `h1`.)

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::debug;

use super::activity::Activity;
use crate::config::Limits;

/// What ends a connection besides its peer: no first byte in time, idleness, shutdown.
pub(super) struct Lifetime<'a> {
    pub(super) activity: &'a Arc<Activity>,
    pub(super) limits: &'a Limits,
    pub(super) peer: SocketAddr,
    pub(super) shutdown: watch::Receiver<bool>,
    /// Until the first request: the first-byte deadline applies.
    pub(super) first_round: bool,
}

impl Lifetime<'_> {
    pub(super) async fn drive<C>(
        &mut self,
        mut connection: Pin<&mut C>,
        graceful_shutdown: impl Fn(Pin<&mut C>),
    ) where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let (activity, limits, peer) = (self.activity, self.limits, self.peer);
        // hyper's HTTP/2 side has no first-byte timer; a peer that never sends a byte gets the
        // head timeout from here instead of living until the idle timeout.
        let first_byte_deadline = tokio::time::sleep(limits.header_read_timeout);
        tokio::pin!(first_byte_deadline);
        let mut first_byte_checked = !self.first_round;
        self.first_round = false;
        let mut shutting_down = false;
        loop {
            tokio::select! {
                () = &mut first_byte_deadline, if !first_byte_checked => {
                    first_byte_checked = true;
                    if !activity.has_read() {
                        debug!(peer = %peer, "closing connection that sent nothing");
                        return;
                    }
                }
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        debug!(peer = %peer, %error, "connection ended with an error");
                    }
                    return;
                }
                () = activity.idle_for(limits.idle_timeout), if !shutting_down => {
                    debug!(peer = %peer, "closing idle connection");
                    return;
                }
                changed = self.shutdown.changed(), if !shutting_down => {
                    // A closed channel means the server is gone: shut down the same way.
                    let _ = changed;
                    shutting_down = true;
                    graceful_shutdown(connection.as_mut());
                }
            }
        }
    }
}
