//! The request path, top to bottom:
//! `canonicalise(target)` -> `authenticate` (link or cookie -> `Guest`) -> `authorise(guest, method,
//! target)` -> `rewrite_request` -> `forward` -> `sanitise_response`.
//!
//! [`Gateway`] is one immutable snapshot of everything the path needs, built from a validated config.
//! `handle` never fails: it turns any [`GatewayError`] into the recipient's page and logs it once.

mod authenticate;
mod build;
mod error;
mod link_exchange;
mod mint;
mod settings;

use std::collections::HashSet;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use tracing::{debug, info, warn};

pub use build::BuildError;
pub use error::GatewayError;
pub use mint::{MintError, MintedLink, ShareRequest};
pub use settings::{LinkSettings, SessionSettings};

use self::authenticate::{Session, authenticate};
use crate::clock::unix_now;
use crate::pages;
use crate::policy::{CanonicalTarget, Decision, Policy, canonicalise};
use crate::proxy::Body;
use crate::proxy::client::{ForwardError, UpstreamClient};
use crate::proxy::request::{Origin, rewrite_guest_request, rewrite_passthrough_request};
use crate::proxy::response::{
    PublicOrigin, sanitise_guest_response, sanitise_passthrough_response,
};
use crate::proxy::upstream::Upstream;
use crate::server::ConnectionInfo;
use crate::share::{Guest, KeyRing};

/// One immutable snapshot of the gateway's configuration, shared by all connections.
pub struct Gateway {
    keys: Arc<KeyRing>,
    policy: Arc<Policy>,
    links: LinkSettings,
    session: SessionSettings,
    passthrough: bool,
    upstream: Upstream,
    client: UpstreamClient,
    public: PublicOrigin,
    public_host: HeaderValue,
    max_body_bytes: u64,
    /// Scopes whose `pin_language` is on: the share's lang is sent upstream as Accept-Language.
    language_pinned_scopes: HashSet<String>,
}

impl Gateway {
    /// Serves one request. Never fails: errors become pages (HTML or JSON, as the client prefers).
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        connection: &ConnectionInfo,
    ) -> Response<Body> {
        let wants_json = pages::wants_json(request.headers());
        let method = request.method().clone();
        match self.handle_inner(request, connection).await {
            Ok(response) => response,
            Err(error) => {
                let page = error.page();
                // The path is not logged here: under the link prefix it is the token itself.
                match &error {
                    GatewayError::Upstream(_)
                    | GatewayError::Seal(_)
                    | GatewayError::Internal(_) => {
                        warn!(peer = %connection.peer, %method, code = page.code(), %error, "request failed");
                    }
                    _ => {
                        info!(peer = %connection.peer, %method, code = page.code(), %error, "request refused")
                    }
                }
                pages::render(page, wants_json)
                    .map(|body| body.map_err(|never| match never {}).boxed())
            }
        }
    }

    async fn handle_inner(
        &self,
        request: Request<Incoming>,
        connection: &ConnectionInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let now = unix_now();
        let raw_target = request
            .uri()
            .path_and_query()
            .map(|target| target.as_str())
            .ok_or(GatewayError::NoPath)?;
        // HTTP/1 absolute-form carries a scheme in the request line; HTTP/2 always has one (from
        // :scheme), which is why only the HTTP/1 case is refused here.
        if request.version() < http::Version::HTTP_2 && request.uri().scheme().is_some() {
            return Err(GatewayError::BadTarget(
                crate::policy::TargetError::NotOriginForm,
            ));
        }
        let target = canonicalise(raw_target.as_bytes()).map_err(GatewayError::BadTarget)?;

        if let Some(token) = target.path().strip_prefix(self.links.prefix.as_str()) {
            if request.method() != Method::GET && request.method() != Method::HEAD {
                return Err(GatewayError::LinkMethod);
            }
            return self.exchange_link(token, now);
        }

        match authenticate(
            request.headers(),
            &self.session.cookie_name,
            &self.keys,
            now,
        )? {
            Session::Guest(guest) => {
                let pin_language = self.authorise(&guest, request.method(), &target)?;
                refuse_upgrades(&request)?;
                self.forward_guest(request, &guest, pin_language, connection)
                    .await
            }
            Session::Absent if self.passthrough => {
                refuse_upgrades(&request)?;
                self.forward_passthrough(request, connection).await
            }
            Session::Absent => Err(GatewayError::NoSession),
        }
    }

    /// Asks the policy whether the guest's scope allows this request; answers whether the scope
    /// pins the share's language.
    fn authorise(
        &self,
        guest: &Guest,
        method: &Method,
        target: &CanonicalTarget<'_>,
    ) -> Result<bool, GatewayError> {
        match self.policy.decide(
            &guest.scope,
            method.as_str(),
            target,
            &guest.case,
            &guest.share_id,
        ) {
            Decision::Allow => Ok(self.language_pinned_scopes.contains(&guest.scope)),
            Decision::DenyNoRule | Decision::DenyExplicit => Err(GatewayError::NotAllowed),
            Decision::UnknownScope => Err(GatewayError::UnknownScope),
        }
    }

    async fn forward_guest(
        &self,
        request: Request<Incoming>,
        guest: &Guest,
        pin_language: bool,
        connection: &ConnectionInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let (mut parts, body) = request.into_parts();
        let declared_length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared_length.is_some_and(|length| length > self.max_body_bytes) {
            return Err(GatewayError::BodyTooLarge);
        }
        rewrite_guest_request(
            &mut parts,
            guest,
            pin_language,
            &self.upstream,
            &self.origin(connection),
        );
        debug!(share = %guest.share_id, case = %guest.case, path = %parts.uri.path(), "forwarding guest request");
        // Bodies without a declared length (chunked, HTTP/2) are cut off at the same limit.
        let limit = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
        let body = Limited::new(body, limit).boxed();
        let response = self
            .client
            .send(Request::from_parts(parts, body))
            .await
            .map_err(|error| {
                if body_over_limit(&error) {
                    GatewayError::BodyTooLarge
                } else {
                    GatewayError::Upstream(error)
                }
            })?;
        let (mut parts, body) = response.into_parts();
        sanitise_guest_response(&mut parts, &self.upstream, &self.public);
        Ok(Response::from_parts(
            parts,
            body.map_err(Into::into).boxed(),
        ))
    }

    async fn forward_passthrough(
        &self,
        request: Request<Incoming>,
        connection: &ConnectionInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let (mut parts, body) = request.into_parts();
        rewrite_passthrough_request(
            &mut parts,
            &self.session.cookie_name,
            &self.upstream,
            &self.origin(connection),
        );
        let body = body.map_err(Into::into).boxed();
        let response = self
            .client
            .send(Request::from_parts(parts, body))
            .await
            .map_err(GatewayError::Upstream)?;
        let (mut parts, body) = response.into_parts();
        sanitise_passthrough_response(&mut parts, &self.upstream, &self.public);
        Ok(Response::from_parts(
            parts,
            body.map_err(Into::into).boxed(),
        ))
    }

    fn origin(&self, connection: &ConnectionInfo) -> Origin {
        Origin {
            client_ip: connection.peer.ip(),
            https: connection.tls,
            public_host: self.public_host.clone(),
        }
    }
}

/// No rule can opt in to upgrades yet, so every upgrade attempt (HTTP/1 `Upgrade`, HTTP/2 extended
/// CONNECT) is refused instead of being silently downgraded.
fn refuse_upgrades<B>(request: &Request<B>) -> Result<(), GatewayError> {
    if request.headers().contains_key(header::UPGRADE) || request.method() == Method::CONNECT {
        return Err(GatewayError::UpgradeRefused);
    }
    Ok(())
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
