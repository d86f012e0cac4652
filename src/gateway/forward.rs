//! `rewrite_request -> forward -> sanitise_response`: one path for guests and for passthrough
//! traffic, differing only in which rewrite and sanitising rules apply.

use std::sync::Arc;
use std::time::Duration;

use http::header;
use http::request::Parts;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::time::Instant;
use tracing::debug;

use super::Gateway;
use super::answer::Answer;
use super::error::GatewayError;
use super::framing::is_bodiless;
use super::session_memo::GuestSession;
use crate::access_log::{AccessRecord, LoggedBody, RequestBody};
use crate::metrics::{TunnelGauge, UpstreamClass};
use crate::pages::PageChoice;
use crate::proxy::client::{ForwardError, Outgoing, UpstreamAnswer};
use crate::proxy::request::{GuestRewrite, rewrite_passthrough_request, write_guest_head};
use crate::proxy::response::{sanitise_guest_response, sanitise_passthrough_response};
use crate::proxy::upgrade::{Tunnel, restore_websocket_headers, splice};
use crate::proxy::upstream_h1::encode_request_head;
use crate::proxy::upstream_h1::response_head::ResponseHead;
use crate::proxy::{BoxError, empty_body};
use crate::server::ConnectionInfo;
use crate::server::body_pace::is_too_slow;
use crate::server::h1::upgrade::OnUpgrade;

/// Whose request is being forwarded.
pub(super) enum Route<'a> {
    Guest {
        session: &'a GuestSession,
        pin_language: bool,
    },
    /// Staff traffic without a share session, when `passthrough` is on.
    Passthrough,
}

impl Gateway {
    /// Forwards an authorised request and streams the answer back. `upgrade` is true only for a
    /// WebSocket handshake the policy allowed. A refusal learns, into `page`, how the client asked
    /// for pages, from the request's fields, which are still at hand here and not after.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn forward(
        &self,
        mut request: Box<Request<RequestBody>>,
        route: Route<'_>,
        upgrade: bool,
        connection: &ConnectionInfo,
        now: i64,
        page: &mut Option<PageChoice>,
        record: &mut AccessRecord,
    ) -> Result<Box<Answer>, GatewayError> {
        // Put there by the HTTP/1 server for a request that may switch protocols.
        let client_upgrade = upgrade
            .then(|| request.extensions_mut().remove::<OnUpgrade>())
            .flatten();
        let (mut parts, body) = request.into_parts();
        let forwarded = self
            .exchange(
                &mut parts,
                body,
                client_upgrade,
                route,
                upgrade,
                connection,
                now,
                record,
            )
            .await;
        if forwarded.is_err() {
            *page = Some(PageChoice::of(&parts.headers));
        }
        forwarded
    }

    /// Sends the request whose head is `parts` upstream and makes the guest's answer of the
    /// upstream's.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        parts: &mut Parts,
        body: RequestBody,
        client_upgrade: Option<OnUpgrade>,
        route: Route<'_>,
        upgrade: bool,
        connection: &ConnectionInfo,
        now: i64,
        record: &mut AccessRecord,
    ) -> Result<Box<Answer>, GatewayError> {
        let answer_in_map = parts.version == Version::HTTP_2;
        let origin = self.origin(connection);
        let body = if is_bodiless(&parts.method) {
            // Undeclared body bytes on a GET or HEAD (possible on HTTP/2) never reach the upstream:
            // its pooled HTTP/1.1 connection could read them as another request.
            parts.headers.remove(header::CONTENT_LENGTH);
            empty_body()
        } else {
            // Guests and staff alike: a declared length over the limit is refused before any
            // byte is read, and a body without one (chunked, HTTP/2) is cut off at the limit.
            if declared_length(&parts.headers).is_some_and(|length| length > self.max_body_bytes) {
                return Err(GatewayError::BodyTooLarge);
            }
            let limit = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
            let body = body.map_err(|error| BoxError::from(ClientBodyError(error.into())));
            Limited::new(body, limit).boxed()
        };
        let mut head = Vec::with_capacity(1024);
        let written = match route {
            Route::Guest {
                session,
                pin_language,
            } => {
                let guest = &session.guest;
                debug!(share = %guest.share_id, case = %guest.case, path = %parts.uri.path(), "forwarding guest request");
                let rewrite = GuestRewrite {
                    identity: &session.identity,
                    pin_language,
                    upstream: &self.upstream,
                    origin: &origin,
                    upgrade,
                };
                write_guest_head(parts, &rewrite, &body, &mut head)
            }
            Route::Passthrough => {
                rewrite_passthrough_request(
                    parts,
                    self.session.cookie_name.as_str(),
                    &self.upstream,
                    &origin,
                );
                if upgrade {
                    restore_websocket_headers(&mut parts.headers);
                }
                encode_request_head(parts, &body, &mut head)
            }
        };
        // The server side (hyper, h2) checked the request's lengths already; one that is still
        // not a single number is refused as broken framing.
        let framing = written.map_err(|_| GatewayError::BadBody)?;
        let outgoing = Outgoing {
            method: parts.method.clone(),
            head,
            framing,
        };
        let sent = Instant::now();
        let answer = connection
            .shared
            .upstream
            .send(
                &outgoing,
                body,
                self.upstream.destination(),
                &self.client,
                sent,
            )
            .await;
        // Until the response head, also when the upstream failed or timed out; `Gateway::handle`
        // reads it back for the metrics, so the gateway's own share of the request is told apart.
        record.set_upstream(sent.into_std(), std::time::Instant::now());
        let UpstreamAnswer { mut head, mut body } = match answer {
            Ok(answer) => {
                self.metrics
                    .record_upstream(UpstreamClass::of(answer.head.status));
                answer
            }
            Err(error) if is_too_slow(&error) => return Err(GatewayError::BodyTooSlow),
            Err(error) => match request_body_fault(&error) {
                Some(refusal) => return Err(refusal),
                None => {
                    self.metrics.record_upstream(UpstreamClass::Error);
                    return Err(GatewayError::Upstream(error));
                }
            },
        };
        let offer = body.offer_splice(&self.metrics);
        let switched = head.status == StatusCode::SWITCHING_PROTOCOLS;
        let (tunnel, body) = match (switched, client_upgrade) {
            (true, Some(client)) => match body.into_switched() {
                Some(upstream) => (Some((client, upstream)), empty_body()),
                None => return Err(GatewayError::UnexpectedSwitch),
            },
            (true, None) => return Err(GatewayError::UnexpectedSwitch),
            (false, _) => (None, body.map_err(Into::into).boxed()),
        };
        // Cleaned where the parser left them, in the head's box.
        let ResponseHead {
            headers, passed, ..
        } = &mut *head;
        let lifetime = match route {
            Route::Guest { session, .. } => {
                sanitise_guest_response(headers, Some(passed), &self.upstream, &self.public);
                Some(Duration::from_secs(
                    u64::try_from(session.guest.expires_at.saturating_sub(now)).unwrap_or(0),
                ))
            }
            Route::Passthrough => {
                sanitise_passthrough_response(headers, &self.upstream, &self.public);
                None
            }
        };
        // hyper writes an HTTP/2 answer from the map alone; casegate's HTTP/1 writer takes the
        // fields passed on from where the upstream sent them.
        let passed = std::mem::take(&mut head.passed);
        let passed = if answer_in_map {
            passed.move_into(&mut head.headers);
            None
        } else {
            Some(passed)
        };
        if let Some((client, upstream)) = tunnel {
            restore_websocket_headers(&mut head.headers);
            splice(
                client,
                upstream,
                Tunnel {
                    lifetime,
                    idle_timeout: self.tunnel_idle_timeout,
                    slot: connection.shared.slot.clone(),
                    gauge: TunnelGauge::new(Arc::clone(&self.metrics)),
                },
            );
        }
        // Made in its box, where it stays until it is written.
        let mut answer = Box::new(Response::new(LoggedBody::new(body, offer, passed)));
        *answer.status_mut() = head.status;
        *answer.version_mut() = head.version;
        *answer.headers_mut() = std::mem::take(&mut head.headers);
        Ok(answer)
    }
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
}

/// An error of the client's own request body on its way to the upstream: its chunked framing
/// broke, or the client went away mid-body. Marked so that it is not mistaken for the upstream
/// failing.
#[derive(Debug)]
struct ClientBodyError(BoxError);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client's request body failed: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A failed send that is the client's body's fault rather than the upstream's: over
/// `max_body_bytes` (cut off by `Limited`: 413) or broken framing (400), not 502.
fn request_body_fault(error: &ForwardError) -> Option<GatewayError> {
    let ForwardError::Unavailable(error) = error else {
        return None;
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<LengthLimitError>() {
            return Some(GatewayError::BodyTooLarge);
        }
        if cause.is::<ClientBodyError>() {
            return Some(GatewayError::BadBody);
        }
        source = cause.source();
    }
    None
}
