//! Rewriting a request for the upstream: strip what the client may not say, then add what casegate
//! vouches for. Stripping always happens before injecting, so a client can never pre-seed our headers.

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, Version};

use super::guest_allowlist::keep_guest_headers;
use super::hop::{strip_client_identity, strip_hop_by_hop};
use super::upstream::Upstream;
use crate::share::Guest;

pub const X_CASEGATE_CASE: HeaderName = HeaderName::from_static("x-casegate-case");
pub const X_CASEGATE_SHARE: HeaderName = HeaderName::from_static("x-casegate-share");
pub const X_CASEGATE_SCOPE: HeaderName = HeaderName::from_static("x-casegate-scope");
pub const X_CASEGATE_LANG: HeaderName = HeaderName::from_static("x-casegate-lang");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What casegate itself knows about where a request came from; the only source of the
/// `X-Forwarded-*` headers the upstream receives.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The client and the trusted proxies it came through, then our peer
    /// ([`super::client_address::ClientAddress::forwarded_for`]); never what an untrusted
    /// client wrote.
    pub forwarded_for: HeaderValue,
    pub https: bool,
    /// The public host (from `public_url`), never the client's `Host` header.
    pub public_host: HeaderValue,
}

/// Why a guest's share could not be stated upstream. Share fields were validated long before, so
/// this means a bug; the request is refused rather than forwarded without them.
#[derive(Debug)]
pub enum RewriteError {
    /// A share field is not a valid header value.
    ShareHeader(http::header::InvalidHeaderValue),
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewriteError::ShareHeader(error) => {
                write!(f, "a share field is not a valid header value: {error}")
            }
        }
    }
}

impl std::error::Error for RewriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RewriteError::ShareHeader(error) => Some(error),
        }
    }
}

/// The share as casegate states it to the upstream: the `X-Casegate-*` values of one guest, built
/// once per session rather than once per request.
#[derive(Debug, Clone)]
pub struct ShareIdentity {
    case: HeaderValue,
    share: HeaderValue,
    scope: HeaderValue,
    lang: Option<HeaderValue>,
}

impl ShareIdentity {
    pub fn of(guest: &Guest) -> Result<ShareIdentity, RewriteError> {
        let value = |text: &str| HeaderValue::from_str(text).map_err(RewriteError::ShareHeader);
        Ok(ShareIdentity {
            case: value(&guest.case)?,
            share: value(&guest.share_id)?,
            scope: value(&guest.scope)?,
            lang: guest.lang.as_deref().map(value).transpose()?,
        })
    }
}

/// The most headers casegate adds to a guest's request besides the operator's `guest_headers`:
/// three `X-Forwarded-*`, four `X-Casegate-*`, `Accept-Language` and `Host`.
const ADDED_FOR_GUESTS: usize = 9;

/// Prepares a guest's request: only the allowlisted headers of the client's (no cookies,
/// credentials or identity claims), then the share's identity as casegate states it.
pub fn rewrite_guest_request(
    parts: &mut Parts,
    identity: &ShareIdentity,
    pin_language: bool,
    upstream: &Upstream,
    origin: &Origin,
) {
    let headers = &mut parts.headers;
    // A guest speaks to the upstream only through the share: its own cookies (ours included),
    // credentials and any header the app might trust would let it act as someone else. Hop-by-hop
    // headers and those named in `Connection` go too.
    keep_guest_headers(
        headers,
        &upstream.guest_forward_headers,
        ADDED_FOR_GUESTS + upstream.guest_headers.len(),
    );

    add_forwarding_headers(headers, origin);
    add_share_identity(headers, identity, pin_language);
    for (name, value) in &upstream.guest_headers {
        headers.insert(name.clone(), value.clone());
    }
    point_at_upstream(parts, upstream)
}

/// Prepares a request from someone without a share session when `passthrough` is on: the staff's own
/// cookies and credentials go through, but identity claims are still casegate's alone.
pub fn rewrite_passthrough_request(
    parts: &mut Parts,
    cookie_name: &str,
    upstream: &Upstream,
    origin: &Origin,
) {
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    strip_client_identity(headers);
    remove_cookie(headers, cookie_name);
    add_forwarding_headers(headers, origin);
    point_at_upstream(parts, upstream)
}

fn add_forwarding_headers(headers: &mut HeaderMap, origin: &Origin) {
    headers.insert(X_FORWARDED_FOR, origin.forwarded_for.clone());
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if origin.https { "https" } else { "http" }),
    );
    headers.insert(X_FORWARDED_HOST, origin.public_host.clone());
}

fn add_share_identity(headers: &mut HeaderMap, identity: &ShareIdentity, pin_language: bool) {
    headers.insert(X_CASEGATE_CASE, identity.case.clone());
    headers.insert(X_CASEGATE_SHARE, identity.share.clone());
    headers.insert(X_CASEGATE_SCOPE, identity.scope.clone());
    if let Some(lang) = &identity.lang {
        if pin_language {
            headers.insert(header::ACCEPT_LANGUAGE, lang.clone());
        }
        headers.insert(X_CASEGATE_LANG, lang.clone());
    }
}

/// Sends the request to the upstream origin with the exact path and query the gateway judged: in
/// origin form (an HTTP/2 request's scheme and authority dropped), `Host` the upstream's.
fn point_at_upstream(parts: &mut Parts, upstream: &Upstream) {
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path_and_query);
    }
    parts.headers.insert(header::HOST, upstream.host.clone());
    // The upstream pool speaks HTTP/1.1 whatever the client spoke to us.
    parts.version = Version::HTTP_11;
}

/// Removes our cookie from every `Cookie` header, keeping the others in their order.
fn remove_cookie(headers: &mut HeaderMap, cookie_name: &str) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty()
                && pair
                    .split_once('=')
                    .is_none_or(|(name, _)| name.trim() != cookie_name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if kept.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn guest() -> Guest {
        Guest {
            share_id: "c2hhcmUtaWQtZm9yLXRlc3Q".into(),
            case: "42".into(),
            scope: "view".into(),
            lang: Some("sv-SE".into()),
            email: None,
            expires_at: 2_000_000_000,
            issued_at: 1_999_000_000,
            email_verified: false,
        }
    }

    fn identity() -> ShareIdentity {
        ShareIdentity::of(&guest()).unwrap()
    }

    fn upstream() -> Upstream {
        Upstream::new(
            &Uri::from_static("http://127.0.0.1:8080"),
            vec![(
                header::AUTHORIZATION,
                HeaderValue::from_static("Basic cmVhZG9ubHk6eA=="),
            )],
        )
        .unwrap()
    }

    fn origin() -> Origin {
        Origin {
            forwarded_for: HeaderValue::from_static("192.0.2.7"),
            https: true,
            public_host: HeaderValue::from_static("share.example.org"),
        }
    }

    fn spoofed_request() -> Parts {
        let (parts, ()) = Request::get("/cases/42/video?t=1")
            .header("host", "evil.example")
            .header("cookie", "__Host-casegate=abc; staff_session=s3cr3t")
            .header("authorization", "Bearer stolen")
            .header("x-casegate-case", "43")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-http-method-override", "DELETE")
            .header("connection", "x-keep-me-not")
            .header("x-keep-me-not", "1")
            .header("range", "bytes=0-99")
            .header("accept-language", "de")
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn guest_request_carries_only_what_casegate_vouches_for() {
        let mut parts = spoofed_request();
        rewrite_guest_request(&mut parts, &identity(), true, &upstream(), &origin());
        let h = &parts.headers;
        assert_eq!(parts.uri, "/cases/42/video?t=1");
        assert_eq!(h["host"], "127.0.0.1:8080");
        assert_eq!(h["x-casegate-case"], "42");
        assert_eq!(h["x-casegate-share"], "c2hhcmUtaWQtZm9yLXRlc3Q");
        assert_eq!(h["x-casegate-scope"], "view");
        assert_eq!(h["x-casegate-lang"], "sv-SE");
        assert_eq!(h["accept-language"], "sv-SE");
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "share.example.org");
        assert_eq!(h["authorization"], "Basic cmVhZG9ubHk6eA==");
        assert_eq!(h["range"], "bytes=0-99");
        for gone in [
            "cookie",
            "x-http-method-override",
            "x-keep-me-not",
            "connection",
        ] {
            assert!(!h.contains_key(gone), "{gone} must not reach the upstream");
        }
        assert_eq!(h.get_all("x-casegate-case").iter().count(), 1);
    }

    #[test]
    fn unpinned_scope_keeps_the_clients_language() {
        let mut parts = spoofed_request();
        rewrite_guest_request(&mut parts, &identity(), false, &upstream(), &origin());
        assert_eq!(parts.headers["accept-language"], "de");
    }

    #[test]
    fn passthrough_keeps_staff_credentials_but_not_our_cookie_or_claims() {
        let mut parts = spoofed_request();
        rewrite_passthrough_request(&mut parts, "__Host-casegate", &upstream(), &origin());
        let h = &parts.headers;
        assert_eq!(h["cookie"], "staff_session=s3cr3t");
        assert_eq!(h["authorization"], "Bearer stolen");
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert!(!h.contains_key("x-casegate-case"));
        assert!(!h.contains_key("x-http-method-override"));
    }
}
