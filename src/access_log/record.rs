//! What the access log says about one request, gathered while the request is handled and written
//! as a line once its response body has ended.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Method;

use super::line::{Facts, Line};
use super::redact::redact_tokens;

/// The decision of a request the gateway let through (forwarded, a link exchanged, a
/// verification page served). Refusals use the metrics' decision label, so a log line and the
/// `casegate_requests_total` series it was counted in say the same word.
pub const ALLOWED: &str = "allowed";

/// The facts of one request. The path and the share's id, case and scope live in one buffer, so
/// a request costs one allocation here however many of them are known.
///
/// Only what is safe to keep is ever set: the canonical path without its query, and for a link
/// only the prefix. Nothing here can hold a token, cookie, code or header value.
#[derive(Debug)]
pub struct AccessRecord {
    enabled: bool,
    /// When the request was received; the line's wall-clock time is worked out from it by the
    /// writer (`wall_time.rs`).
    started: Instant,
    /// The client as the gateway resolved it: the TCP peer, or whom a trusted proxy forwarded.
    client: IpAddr,
    method: Method,
    text: String,
    path: Range<usize>,
    share: Option<[Range<usize>; 3]>,
    status: u16,
    decision: &'static str,
    /// The refusal page's stable code (`revoked_link`, `session_expired`...), finer than the
    /// decision; `None` for a request let through.
    reason: Option<&'static str>,
    /// Shared with the request body while it is read; `None` for a request without one.
    bytes_in: Option<Arc<AtomicU64>>,
    bytes_out: u64,
    total: Duration,
    upstream: Option<Duration>,
    answered: Option<Instant>,
}

impl AccessRecord {
    /// A record for a request just received. A disabled record (the access log is off) ignores
    /// every fact, so handling a request costs nothing more than its creation.
    pub fn begin(enabled: bool, client: IpAddr, method: &Method) -> AccessRecord {
        AccessRecord {
            enabled,
            started: Instant::now(),
            client,
            method: method.clone(),
            text: String::new(),
            path: 0..0,
            share: None,
            status: 0,
            decision: ALLOWED,
            reason: None,
            bytes_in: None,
            bytes_out: 0,
            total: Duration::ZERO,
            upstream: None,
            answered: None,
        }
    }

    /// The path as logged. Callers pass the canonical path without its query, or the link prefix
    /// for a link: never anything that can carry a credential.
    /// A segment that looks like a token is logged as `[token]` (see `redact.rs`).
    pub fn set_path(&mut self, path: &str) {
        if self.enabled {
            self.path = self.push(&redact_tokens(path));
        }
    }

    /// The share a link or cookie named, once it verified.
    pub fn set_share(&mut self, share_id: &str, case: &str, scope: &str) {
        if self.enabled {
            self.share = Some([self.push(share_id), self.push(case), self.push(scope)]);
        }
    }

    /// How long the upstream took to answer with its response head. Kept with the log off too:
    /// the metrics read it back ([`AccessRecord::upstream`]).
    pub fn set_upstream(&mut self, sent: Instant, answered: Instant) {
        self.upstream = Some(answered.saturating_duration_since(sent));
        self.answered = Some(answered);
    }

    /// When the upstream's response head came, as [`AccessRecord::set_upstream`] was told: the
    /// metrics time an answered request to that reading instead of taking another (each
    /// reading of the clock is a `clock_gettime`, about 33 ns on this kind of VM).
    pub fn answered(&self) -> Option<Instant> {
        self.answered
    }

    /// What [`AccessRecord::set_upstream`] kept; `None` when no upstream was asked.
    pub fn upstream(&self) -> Option<Duration> {
        self.upstream
    }

    /// A request let through.
    pub fn set_allowed(&mut self) {
        self.decision = ALLOWED;
        self.reason = None;
    }

    /// A refusal: the metrics' decision label and the page's code.
    pub fn set_refused(&mut self, decision: &'static str, reason: &'static str) {
        self.decision = decision;
        self.reason = Some(reason);
    }

    pub fn set_status(&mut self, status: http::StatusCode) {
        self.status = status.as_u16();
    }

    /// No answer was sent: the connection ended first. `status` is what the log says instead
    /// (499); there is no refusal page, so no reason.
    pub(super) fn set_unanswered(&mut self, decision: &'static str, status: u16) {
        self.decision = decision;
        self.reason = None;
        self.status = status;
    }

    /// When the request was received: the metrics time the request from the same reading.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When the request ended, as [`AccessRecord::finish`] stamped it; the writer orders lines by it.
    pub(super) fn finished(&self) -> Instant {
        self.started.checked_add(self.total).unwrap_or(self.started)
    }

    /// Time since the request was received.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A counter for the request body's bytes, shared with the body that counts them.
    pub(super) fn bytes_in_counter(&mut self) -> Option<Arc<AtomicU64>> {
        if !self.enabled {
            return None;
        }
        let counter = Arc::new(AtomicU64::new(0));
        self.bytes_in = Some(Arc::clone(&counter));
        Some(counter)
    }

    pub(super) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Stamps the total duration and the bytes sent, when the response body has ended or was
    /// dropped.
    pub(super) fn finish(&mut self, bytes_out: u64) {
        self.bytes_out = bytes_out;
        self.total = self.started.elapsed();
    }

    /// What the record's line says.
    pub(super) fn line(&self) -> Line<'_> {
        Line {
            facts: Facts {
                client: self.client,
                status: self.status,
                decision: self.decision,
                reason: self.reason,
                bytes_in: self
                    .bytes_in
                    .as_ref()
                    .map_or(0, |counter| counter.load(Ordering::Relaxed)),
                bytes_out: self.bytes_out,
                total: self.total,
                upstream: self.upstream,
            },
            method: self.method.as_str(),
            path: self.text.get(self.path.clone()).unwrap_or_default(),
            share: self.share.as_ref().map(|parts| {
                parts
                    .clone()
                    .map(|part| self.text.get(part).unwrap_or_default())
            }),
        }
    }

    fn push(&mut self, part: &str) -> Range<usize> {
        if self.text.capacity() == 0 {
            // Room for a typical path and share in the one allocation.
            self.text.reserve(part.len().max(64) + 96);
        }
        let start = self.text.len();
        self.text.push_str(part);
        start..self.text.len()
    }
}
