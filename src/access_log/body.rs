//! Body wrappers that count bytes for the access log: the request body as it is read, and the
//! response body as it is sent, which hands the finished record to the log when it ends or is
//! dropped (an aborted download is logged with what was sent).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::AccessLog;
use super::record::AccessRecord;
use crate::proxy::upstream_h1::{PassedFields, SpliceOffer, UpstreamExtras};
use crate::proxy::{Body, BoxError};
use crate::server::body_pace::{BodyPace, ClientBody, PacedBody, PacedBodyError};

/// The request body the gateway reads: hyper's, under the body pace, counted for the access log.
#[derive(Debug)]
pub struct RequestBody {
    inner: PacedBody,
    counter: Option<Arc<AtomicU64>>,
}

impl RequestBody {
    /// The client's body, read under `pace`; counted once [`RequestBody::count_into`] names the
    /// record. Made as the request is, before the record exists, so that the request is boxed
    /// once as it is made and not copied into a new one when its body changes type.
    pub fn paced(body: ClientBody, pace: BodyPace) -> RequestBody {
        RequestBody {
            inner: PacedBody::new(body, pace),
            counter: None,
        }
    }

    /// Counts into `record` only when there is a body to count: a GET costs no counter.
    pub fn count_into(&mut self, record: &mut AccessRecord) {
        if !self.inner.is_end_stream() {
            self.counter = record.bytes_in_counter();
        }
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = PacedBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, PacedBodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(counter)) = (&polled, &self.counter)
            && let Some(data) = frame.data_ref()
        {
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body hyper sends, carrying the request's record until the body is done.
pub struct LoggedBody {
    inner: Body,
    sent: u64,
    /// A large body's offer to the HTTP/1 writer to move it without polling it; what it moves is
    /// counted here.
    offer: Option<SpliceOffer>,
    /// The request's record and the log it goes to, from [`LoggedBody::log_into`] (`None` with
    /// the access log off); taken when the record is handed to the log, so it is logged once.
    logging: Option<(Box<AccessRecord>, Arc<AccessLog>)>,
    /// The upstream's fields passed on as they came, for the HTTP/1 writer.
    passed: Option<PassedFields>,
}

impl LoggedBody {
    /// The body of an answer, made where the answer is (the gateway); it logs nothing until
    /// [`LoggedBody::log_into`] gives it the request's record, as the connection does for every
    /// answer, so that the answer is not made anew around a body of another type.
    pub fn new(
        inner: Body,
        offer: Option<SpliceOffer>,
        passed: Option<PassedFields>,
    ) -> LoggedBody {
        LoggedBody {
            inner,
            sent: 0,
            offer,
            logging: None,
            passed,
        }
    }

    /// Logs `record` to `log` once the body is done, or dropped.
    pub fn log_into(&mut self, record: Box<AccessRecord>, log: &Arc<AccessLog>) {
        if record.is_enabled() {
            self.logging = Some((record, Arc::clone(log)));
        }
    }

    fn log_once(&mut self) {
        if let Some((mut record, log)) = self.logging.take() {
            let moved = self.offer.as_ref().map_or(0, SpliceOffer::moved);
            record.finish(self.sent + moved);
            log.submit(record);
        }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.log_once(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl UpstreamExtras for LoggedBody {
    fn passed_fields(&self) -> Option<&PassedFields> {
        self.passed.as_ref()
    }

    fn splice_offer(&self) -> Option<&SpliceOffer> {
        self.offer.as_ref()
    }
}

impl Drop for LoggedBody {
    /// A body hyper never polled (HEAD, an empty page) or stopped polling (the client went away)
    /// is logged here, with the bytes actually sent.
    fn drop(&mut self) {
        self.log_once();
    }
}
