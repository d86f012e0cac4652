//! `rewrite_request -> forward -> sanitise_response`: one path for guests and for passthrough
//! traffic, differing only in which rewrite and sanitising rules apply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tracing::debug;

use super::Gateway;
use super::error::GatewayError;
use super::framing::is_bodiless;
use crate::access_log::{AccessRecord, RequestBody};
use crate::metrics::{TunnelGauge, UpstreamClass};
use crate::proxy::client::ForwardError;
use crate::proxy::request::{rewrite_guest_request, rewrite_passthrough_request};
use crate::proxy::response::{sanitise_guest_response, sanitise_passthrough_response};
use crate::proxy::upgrade::{Tunnel, restore_websocket_headers, splice};
use crate::proxy::{Body, empty_body};
use crate::server::ConnectionInfo;
use crate::share::Guest;

/// Whose request is being forwarded.
pub(super) enum Route<'a> {
    Guest {
        guest: &'a Guest,
        pin_language: bool,
    },
    /// Staff traffic without a share session, when `passthrough` is on.
    Passthrough,
}

/// How long the upstream took to send its response head; carried to `Gateway::handle` in the
/// response's extensions, so the gateway's own share of the request can be told apart.
#[derive(Clone, Copy, Debug)]
pub(super) struct UpstreamWait(pub(super) Duration);

impl Gateway {
    /// Forwards an authorised request and streams the answer back. `upgrade` is true only for a
    /// WebSocket handshake the policy allowed.
    pub(super) async fn forward(
        &self,
        mut request: Request<RequestBody>,
        route: Route<'_>,
        upgrade: bool,
        connection: &ConnectionInfo,
        now: i64,
        record: &mut AccessRecord,
    ) -> Result<Response<Body>, GatewayError> {
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let origin = self.origin(connection);
        let body = if is_bodiless(&parts.method) {
            // Undeclared body bytes on a GET or HEAD (possible on HTTP/2) never reach the upstream:
            // its pooled HTTP/1.1 connection could read them as another request.
            parts.headers.remove(header::CONTENT_LENGTH);
            empty_body()
        } else {
            body.map_err(Into::into).boxed()
        };
        let body = match route {
            Route::Guest {
                guest,
                pin_language,
            } => {
                if declared_length(&parts.headers)
                    .is_some_and(|length| length > self.max_body_bytes)
                {
                    return Err(GatewayError::BodyTooLarge);
                }
                rewrite_guest_request(&mut parts, guest, pin_language, &self.upstream, &origin)
                    .map_err(GatewayError::Rewrite)?;
                debug!(share = %guest.share_id, case = %guest.case, path = %parts.uri.path(), "forwarding guest request");
                // Bodies without a declared length (chunked, HTTP/2) are cut off at the same limit.
                let limit = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
                Limited::new(body, limit).boxed()
            }
            Route::Passthrough => {
                rewrite_passthrough_request(
                    &mut parts,
                    &self.session.cookie_name,
                    &self.upstream,
                    &origin,
                )
                .map_err(GatewayError::Rewrite)?;
                body
            }
        };
        if upgrade {
            restore_websocket_headers(&mut parts.headers);
        }
        let sent = Instant::now();
        let (host, port) = self.upstream.connect_address();
        let answer = connection
            .upstream
            .send(Request::from_parts(parts, body), host, port, &self.client)
            .await;
        let wait = UpstreamWait(sent.elapsed());
        // Until the response head, also when the upstream failed or timed out.
        record.set_upstream(wait.0);
        let mut response = match answer {
            Ok(response) => {
                self.metrics
                    .record_upstream(UpstreamClass::of(response.status()));
                response
            }
            Err(error) if body_over_limit(&error) => return Err(GatewayError::BodyTooLarge),
            Err(error) => {
                self.metrics.record_upstream(UpstreamClass::Error);
                return Err(GatewayError::Upstream(error));
            }
        };
        let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let tunnel = match (switched, client_upgrade) {
            (true, Some(client)) => Some((client, hyper::upgrade::on(&mut response))),
            (true, None) => return Err(GatewayError::UnexpectedSwitch),
            (false, _) => None,
        };
        let (mut parts, body) = response.into_parts();
        let lifetime = match route {
            Route::Guest { guest, .. } => {
                sanitise_guest_response(&mut parts, &self.upstream, &self.public);
                Some(Duration::from_secs(
                    u64::try_from(guest.expires_at.saturating_sub(now)).unwrap_or(0),
                ))
            }
            Route::Passthrough => {
                sanitise_passthrough_response(&mut parts, &self.upstream, &self.public);
                None
            }
        };
        parts.extensions.insert(wait);
        if let Some((client, upstream)) = tunnel {
            restore_websocket_headers(&mut parts.headers);
            splice(
                client,
                upstream,
                Tunnel {
                    lifetime,
                    idle_timeout: self.tunnel_idle_timeout,
                    slot: connection.slot.clone(),
                    gauge: TunnelGauge::new(Arc::clone(&self.metrics)),
                },
            );
        }
        Ok(Response::from_parts(
            parts,
            body.map_err(Into::into).boxed(),
        ))
    }
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
}

/// A streamed body cut off by `Limited` surfaces as a failed send from the upstream client; that is
/// the guest's body over `max_body_bytes` (413), not the upstream failing (502).
fn body_over_limit(error: &ForwardError) -> bool {
    match error {
        ForwardError::Unavailable(error) => {
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                if cause.is::<LengthLimitError>() {
                    return true;
                }
                source = cause.source();
            }
            false
        }
        ForwardError::TimedOut(_) => false,
    }
}
