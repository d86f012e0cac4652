//! A request whose connection ends before its answer exists: the client went away while the
//! upstream was still working, an HTTP/2 stream was reset, a shutdown's grace ran out. hyper then
//! drops the request's future, and with it the record the access log would have written and the
//! count the metrics would have made. [`Unanswered`] holds the record until the answer exists;
//! dropped before that, it logs the request with status 499 (nginx's "client closed request")
//! and counts it as `client_closed`.

use std::net::{IpAddr, Ipv4Addr};

use http::Method;

use super::{AccessLog, AccessRecord};
use crate::metrics::{Decision, Metrics};

/// nginx's status for a request whose client closed the connection before the answer.
const CLIENT_CLOSED: u16 = 499;

pub struct Unanswered<'a> {
    /// Always `Some` until [`Unanswered::answered`] takes it.
    record: Option<Box<AccessRecord>>,
    log: &'a AccessLog,
    metrics: &'a Metrics,
}

impl<'a> Unanswered<'a> {
    pub fn new(
        record: Box<AccessRecord>,
        log: &'a AccessLog,
        metrics: &'a Metrics,
    ) -> Unanswered<'a> {
        Unanswered {
            record: Some(record),
            log,
            metrics,
        }
    }

    /// The record, for the request path to fill in.
    pub fn record(&mut self) -> &mut AccessRecord {
        self.record.get_or_insert_with(never_used)
    }

    /// The answer exists: the record goes on with the response body, which logs it.
    pub fn answered(mut self) -> Box<AccessRecord> {
        self.record.take().unwrap_or_else(never_used)
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        self.metrics
            .record_request(Decision::ClientClosed, record.elapsed(), None);
        record.set_unanswered(Decision::ClientClosed.as_str(), CLIENT_CLOSED);
        record.finish(0);
        self.log.submit(record);
    }
}

/// The record `record` and `answered` fall back on if it were already taken, which only
/// `answered` does, consuming the guard: never used, there so that neither can panic.
fn never_used() -> Box<AccessRecord> {
    Box::new(AccessRecord::begin(
        false,
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        &Method::GET,
    ))
}
