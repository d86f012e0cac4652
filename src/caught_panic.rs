//! A request whose handling panics is answered as an internal error instead of losing its
//! connection: the guest's request path (`Gateway::handle`) and the admin API's are polled through
//! [`CatchPanic`].
//!
//! Without this, a panic in the request path unwinds out of the connection's task, which the
//! runtime then ends: a recipient's browser sees the connection reset ("this site can't be
//! reached") rather than the kind page every other failure gets, an API client a broken
//! connection rather than a JSON error with a stable code, and the access log, finding the request
//! unanswered, counts it as closed by the client. Caught, it takes the path of any other internal
//! error: the recipient's page (HTML, in the share's language or English: the request's `Accept`
//! fields went with what panicked), a 500 in the access log and
//! `casegate_requests_total{decision="internal_error"}`; for the admin API, `500 {"error":
//! {"code":"internal",...}}`. The panic itself is reported once, by the process's hook
//! (`panic_report`), with its place in the source.
//!
//! The panicked future is never polled again: it is dropped with the rest of the request. What it
//! shared with other requests is what any task that tokio ends after a panic leaves behind: the
//! locks shared between requests are `dashmap`'s, released as the panic unwinds, or std mutexes
//! taken through a poisoning (`PoisonError::into_inner`), so one panic does not become a panic in
//! every later request.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The request's handling panicked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Panicked;

/// `inner`, with a panic in any of its polls turned into `Err(Panicked)`.
pub(crate) struct CatchPanic<F> {
    inner: F,
}

impl<F> CatchPanic<F> {
    pub(crate) fn new(inner: F) -> Self {
        CatchPanic { inner }
    }
}

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        // Unwind safety: after a panic `inner` is not polled again but dropped (see the module's
        // comment).
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            // The payload was reported by the panic hook; it is dropped unread.
            Err(_payload) => Poll::Ready(Err(Panicked)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    #[tokio::test]
    async fn a_future_that_finishes_passes_its_output_through_every_pending_poll() {
        let mut polls = 0;
        let counting = std::future::poll_fn(|cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready("answered")
        });
        assert_eq!(CatchPanic::new(pin!(counting)).await, Ok("answered"));
        assert_eq!(polls, 3);
    }

    #[tokio::test]
    async fn a_panic_in_a_later_poll_becomes_an_error_and_goes_no_further() {
        let mut polls = 0;
        let failing = std::future::poll_fn(|cx| {
            polls += 1;
            if polls == 1 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            panic!("the request path reached a state it cannot be in");
        });
        // The test goes on past the panic: it was caught, not propagated.
        let outcome: Result<(), Panicked> = CatchPanic::new(pin!(failing)).await;
        assert_eq!(outcome, Err(Panicked));
        assert_eq!(polls, 2);
    }
}
