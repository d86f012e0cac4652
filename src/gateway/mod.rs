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
use http_body_util::{BodyExt, Limited};
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
use crate::proxy::client::UpstreamClient;
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
        check_host(&request)?;
        refuse_body_on_get(&request)?;

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
            .map_err(GatewayError::Upstream)?;
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

/// RFC 9112 section 3.2: an HTTP/1.1 request has exactly one `Host`, no request has two, and its
/// value is an authority without userinfo (or empty). casegate never forwards the client's `Host`,
/// but a request that other hops may read with another authority is refused, not guessed at.
fn check_host<B>(request: &Request<B>) -> Result<(), GatewayError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(GatewayError::BadHost);
    }
    match host {
        None if request.version() == http::Version::HTTP_11 => Err(GatewayError::BadHost),
        None => Ok(()),
        Some(value) if value.is_empty() => Ok(()),
        Some(value) => {
            let bytes = value.as_bytes();
            if bytes.contains(&b'@') || http::uri::Authority::try_from(bytes).is_err() {
                return Err(GatewayError::BadHost);
            }
            Ok(())
        }
    }
}

/// A GET or HEAD carries no body a browser would send. Forwarding one is the CL.0 desync: an
/// upstream that ignores `Content-Length` on a GET reads the body as the next request on a pooled
/// connection, outside any decision casegate made. So such a request is refused, whatever its framing.
fn refuse_body_on_get<B: hyper::body::Body>(request: &Request<B>) -> Result<(), GatewayError> {
    let bodiless = request.method() == Method::GET || request.method() == Method::HEAD;
    if bodiless && !request.body().is_end_stream() {
        return Err(GatewayError::BodyOnGet);
    }
    Ok(())
}

/// No rule can opt in to upgrades yet, so every upgrade attempt (HTTP/1 `Upgrade`, HTTP/2 extended
/// CONNECT) is refused instead of being silently downgraded.
fn refuse_upgrades<B>(request: &Request<B>) -> Result<(), GatewayError> {
    if request.headers().contains_key(header::UPGRADE) || request.method() == Method::CONNECT {
        return Err(GatewayError::UpgradeRefused);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Empty, Full};

    #[test]
    fn a_request_names_exactly_one_plain_authority_as_its_host() {
        let cases: [(&str, http::Version, &[&str], bool); 9] = [
            (
                "one host on HTTP/1.1",
                http::Version::HTTP_11,
                &["share.test"],
                true,
            ),
            (
                "a host with a port",
                http::Version::HTTP_11,
                &["share.test:8443"],
                true,
            ),
            ("an empty host", http::Version::HTTP_11, &[""], true),
            ("no host on HTTP/1.0", http::Version::HTTP_10, &[], true),
            (
                "no host on HTTP/2 (it has :authority)",
                http::Version::HTTP_2,
                &[],
                true,
            ),
            ("no host on HTTP/1.1", http::Version::HTTP_11, &[], false),
            (
                "two hosts",
                http::Version::HTTP_10,
                &["share.test", "share.test"],
                false,
            ),
            (
                "a host with a path",
                http::Version::HTTP_11,
                &["share.test/cases/43"],
                false,
            ),
            (
                "a host with userinfo",
                http::Version::HTTP_11,
                &["admin@share.test"],
                false,
            ),
        ];
        for (name, version, hosts, accepted) in cases {
            let mut builder = Request::get("/cases/42").version(version);
            for host in hosts {
                builder = builder.header(header::HOST, *host);
            }
            let request = builder.body(()).unwrap();
            assert_eq!(check_host(&request).is_ok(), accepted, "{name}");
        }
    }

    #[test]
    fn only_get_and_head_must_come_without_a_body() {
        let cases = [
            ("a GET without a body", Method::GET, "", true),
            (
                "a GET with a body",
                Method::GET,
                "GET /cases/43 HTTP/1.1",
                false,
            ),
            ("a HEAD with a body", Method::HEAD, "x", false),
            ("a POST with a body", Method::POST, "hello", true),
            ("a DELETE without a body", Method::DELETE, "", true),
        ];
        for (name, method, body, accepted) in cases {
            let request = Request::builder()
                .method(method)
                .uri("/cases/42")
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap();
            assert_eq!(refuse_body_on_get(&request).is_ok(), accepted, "{name}");
        }
        let empty = Request::get("/cases/42")
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert!(
            refuse_body_on_get(&empty).is_ok(),
            "an empty body is no body"
        );
    }
}
