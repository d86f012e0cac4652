//! Checks on a request's framing before it is judged: one plain `Host`, and no body where no body
//! belongs. Both close gaps between how casegate and the hops behind it read the same bytes.

use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{HeaderMap, Method, Request};

use super::error::GatewayError;
use crate::ascii_case::same_ignoring_ascii_case;
use crate::policy::CanonicalTarget;
use crate::proxy::request::X_FORWARDED_HOST;
use crate::proxy::response::PublicOrigin;

/// RFC 9112 section 3.2: an HTTP/1.1 request has exactly one `Host`, no request has two, and its
/// value is an authority without userinfo. casegate never forwards the client's `Host`, but a
/// request that other hops may read with another authority is refused, not guessed at (400).
///
/// RFC 9110 section 7.4: a request for an authority casegate does not serve (`public_url`'s) is
/// answered 421 Misdirected Request, whatever it asks for: DNS rebinding and a shared listener
/// must not reach the case. The authority judged is the `Host` (and, on HTTP/2, `:authority`);
/// behind a load balancer in `trusted_proxies` that sends `X-Forwarded-Host`, that header names
/// what the browser asked for, and is judged instead (the balancer may rewrite `Host`). An
/// HTTP/1.0 request without `Host` names no authority and is served.
pub(super) fn check_host<B>(
    request: &Request<B>,
    public: &PublicOrigin,
    via_trusted_proxy: bool,
) -> Result<(), GatewayError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(GatewayError::BadHost);
    }
    // Judged once: its syntax (refused even when `X-Forwarded-Host` names the authority instead)
    // and whether it names public_url. An empty `Host` is allowed by the grammar but names no
    // authority we serve (421 below).
    let host_names_ours = match host.map(HeaderValue::as_bytes) {
        Some([]) => false,
        // `public_url`'s spelling has no userinfo (the configuration refuses one), so a `Host`
        // spelled like it has no `@` either: the search for one is left to the others.
        Some(bytes) if is_public_spelling(bytes, public) => true,
        Some(bytes) => {
            if bytes.contains(&b'@') {
                return Err(GatewayError::BadHost);
            }
            let authority = Authority::try_from(bytes).map_err(|_| GatewayError::BadHost)?;
            is_public_authority(&authority, public)
        }
        None if request.version() == http::Version::HTTP_11 => {
            return Err(GatewayError::BadHost);
        }
        // HTTP/1.0 without `Host` names no authority, and is served.
        None => true,
    };
    let forwarded_host = via_trusted_proxy
        .then(|| forwarded_host(request.headers()))
        .flatten();
    let named_ours = match forwarded_host {
        Some(forwarded) => Authority::try_from(forwarded?)
            .is_ok_and(|authority| is_public_authority(&authority, public)),
        None => {
            let http2 = request.version() >= http::Version::HTTP_2;
            host_names_ours
                && (!http2
                    || request
                        .uri()
                        .authority()
                        .is_none_or(|authority| is_public_authority(authority, public)))
        }
    };
    if named_ours {
        Ok(())
    } else {
        Err(GatewayError::MisdirectedHost)
    }
}

/// The one `X-Forwarded-Host` a trusted proxy sent, if any: two headers or a list (a chain of
/// proxies, one of which the client may have talked to) are refused rather than picked from.
fn forwarded_host(headers: &http::HeaderMap) -> Option<Result<&[u8], GatewayError>> {
    let mut values = headers.get_all(X_FORWARDED_HOST).iter();
    let first = values.next()?;
    if values.next().is_some() || first.as_bytes().contains(&b',') {
        return Some(Err(GatewayError::MisdirectedHost));
    }
    Some(Ok(first.as_bytes()))
}

/// Whether `authority` is written exactly as `public_url`'s, in any letter case: what nearly every
/// browser sends, and valid by construction, so it needs no parsing.
fn is_public_spelling(authority: &[u8], public: &PublicOrigin) -> bool {
    same_ignoring_ascii_case(authority, public.authority.as_str().as_bytes())
}

/// Whether `authority` (a `Host` value) is `public_url`'s: the host in any letter case, the port
/// written or left to the scheme's default.
fn is_public_authority(authority: &Authority, public: &PublicOrigin) -> bool {
    if is_public_spelling(authority.as_str().as_bytes(), public) {
        return true;
    }
    let default_port = if public.is_https() { 443 } else { 80 };
    authority
        .host()
        .eq_ignore_ascii_case(public.authority.host())
        && authority.port_u16().unwrap_or(default_port)
            == public.authority.port_u16().unwrap_or(default_port)
}

/// Which of the fields that a plain GET nearly never carries a request has, found in one look at
/// each name it holds (a handful): asking the header map for each of them hashed its name and
/// probed the table, about 90 instructions a field that is not there (callgrind), three a request.
#[derive(Clone, Copy, Debug)]
pub(super) struct RareFields {
    content_length: bool,
    transfer_encoding: bool,
    pub(super) upgrade: bool,
}

impl RareFields {
    pub(super) fn of(headers: &HeaderMap) -> RareFields {
        let mut rare = RareFields {
            content_length: false,
            transfer_encoding: false,
            upgrade: false,
        };
        for name in headers.keys() {
            rare.content_length |= *name == header::CONTENT_LENGTH;
            rare.transfer_encoding |= *name == header::TRANSFER_ENCODING;
            rare.upgrade |= *name == header::UPGRADE;
        }
        rare
    }
}

/// What a request declares of its body, judged before the request is:
///
/// A GET or HEAD carries no body a browser would send. Forwarding one is the CL.0 desync: an
/// upstream that ignores `Content-Length` on a GET reads the body as the next request on a pooled
/// connection, outside any decision casegate made. A GET or HEAD that *declares* a body
/// (`Content-Length` above 0, or any `Transfer-Encoding`) is refused ([`GatewayError::BodyOnGet`]);
/// one that sends body bytes without declaring them (possible on HTTP/2) is forwarded without them
/// (see [`is_bodiless`]). Judging the declaration rather than the bytes received so far keeps the
/// answer independent of how an HTTP/2 client split its frames.
///
/// RFC 9112 section 6.1: chunked is the only transfer coding casegate reads. hyper decodes the
/// chunked framing whatever codings precede it, and casegate does not forward
/// `Transfer-Encoding`, so a body sent as `gzip, chunked` would reach the upstream as gzip bytes
/// nobody declared, and `identity` (no longer a coding at all) is read differently by different
/// servers. Every `Transfer-Encoding` line together must name exactly `chunked` (in any letter
/// case; empty list elements are allowed by the list syntax), or the request is refused
/// ([`GatewayError::BadBody`]).
///
/// Both are judged here, from one lookup of `Transfer-Encoding`: judged apart, a GET asked the
/// header map for it twice (about 130 instructions a lookup, callgrind). Neither is looked up
/// when `rare`, the request's [`RareFields`], says it has neither field.
pub(super) fn check_declared_body<B>(
    request: &Request<B>,
    rare: RareFields,
) -> Result<(), GatewayError> {
    if !rare.content_length && !rare.transfer_encoding {
        return Ok(());
    }
    let headers = request.headers();
    let transfer_encoding = headers.get_all(header::TRANSFER_ENCODING);
    if is_bodiless(request.method()) {
        let declares_length = headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|value| value.as_bytes() != b"0");
        if declares_length || transfer_encoding.iter().next().is_some() {
            return Err(GatewayError::BodyOnGet);
        }
        return Ok(());
    }
    let mut codings = transfer_encoding
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|coding| !coding.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => Ok(()),
        (Some(coding), None) if coding.eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(GatewayError::BadBody),
    }
}

/// Query parameters that Rails, Laravel, Symfony, Express's method-override and kin read as the
/// "real" method of a POST. The policy judges the method on the request line, so a guest may not
/// send one. (An override inside a form body cannot be seen here: granting POST on a path grants
/// whatever methods the upstream accepts as overrides there.)
const METHOD_OVERRIDE_PARAMETERS: [&str; 5] = [
    "_method",
    "_httpmethod",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Refuses a query that names a method-override parameter, in any letter case.
pub(super) fn refuse_method_override_query(
    target: &CanonicalTarget<'_>,
) -> Result<(), GatewayError> {
    let Some(query) = target.query() else {
        return Ok(());
    };
    let overrides = query
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .any(|name| {
            METHOD_OVERRIDE_PARAMETERS
                .iter()
                .any(|known| name.eq_ignore_ascii_case(known))
        });
    if overrides {
        return Err(GatewayError::MethodOverrideQuery);
    }
    Ok(())
}

/// Methods whose requests are always forwarded without a body.
pub(super) fn is_bodiless(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`check_declared_body`] as `admit` calls it.
    fn judged_declared_body<B>(request: &Request<B>) -> Result<(), GatewayError> {
        check_declared_body(request, RareFields::of(request.headers()))
    }
    use crate::policy::canonicalise;

    /// What [`check_host`] answered, as the tables below spell it.
    fn host_answer<B>(request: &Request<B>, via_trusted_proxy: bool) -> u16 {
        let public = PublicOrigin {
            scheme: http::uri::Scheme::HTTP,
            authority: http::uri::Authority::from_static("share.test"),
        };
        match check_host(request, &public, via_trusted_proxy) {
            Ok(()) => 200,
            Err(GatewayError::BadHost) => 400,
            Err(GatewayError::MisdirectedHost) => 421,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_request_names_exactly_one_plain_authority_and_it_is_ours() {
        use http::Version;
        let cases: [(&str, Version, &[&str], u16); 14] = [
            ("our host", Version::HTTP_11, &["share.test"], 200),
            (
                "our host in capitals",
                Version::HTTP_11,
                &["SHARE.Test"],
                200,
            ),
            (
                "our host with the default port",
                Version::HTTP_11,
                &["share.test:80"],
                200,
            ),
            (
                "our host on another port",
                Version::HTTP_11,
                &["share.test:8443"],
                421,
            ),
            ("another host", Version::HTTP_11, &["evil.test"], 421),
            (
                "our host with a trailing dot",
                Version::HTTP_11,
                &["share.test."],
                421,
            ),
            ("an address literal", Version::HTTP_11, &["127.0.0.1"], 421),
            ("an empty host", Version::HTTP_11, &[""], 421),
            ("no host on HTTP/1.0", Version::HTTP_10, &[], 200),
            ("no host on HTTP/1.1", Version::HTTP_11, &[], 400),
            (
                "two hosts",
                Version::HTTP_10,
                &["share.test", "share.test"],
                400,
            ),
            (
                "a host with a path",
                Version::HTTP_11,
                &["share.test/cases/43"],
                400,
            ),
            (
                "a host with userinfo",
                Version::HTTP_11,
                &["admin@share.test"],
                400,
            ),
            (
                "a list of hosts",
                Version::HTTP_11,
                &["share.test, evil.test"],
                400,
            ),
        ];
        for (name, version, hosts, answer) in cases {
            let mut builder = Request::get("/cases/42").version(version);
            for host in hosts {
                builder = builder.header(header::HOST, *host);
            }
            let request = builder.body(()).unwrap();
            assert_eq!(host_answer(&request, false), answer, "{name}");
        }
    }

    #[test]
    fn http2_authority_must_be_ours_and_agree_with_host() {
        let cases: [(&str, &str, Option<&str>, u16); 4] = [
            ("our :authority", "http://share.test/cases/42", None, 200),
            ("another :authority", "http://evil.test/cases/42", None, 421),
            (
                "our :authority, another host",
                "http://share.test/cases/42",
                Some("evil.test"),
                421,
            ),
            (
                "another :authority, our host",
                "http://evil.test/cases/42",
                Some("share.test"),
                421,
            ),
        ];
        for (name, uri, host, answer) in cases {
            let mut builder = Request::get(uri).version(http::Version::HTTP_2);
            if let Some(host) = host {
                builder = builder.header(header::HOST, host);
            }
            assert_eq!(
                host_answer(&builder.body(()).unwrap(), false),
                answer,
                "{name}"
            );
        }
    }

    #[test]
    fn a_trusted_proxy_names_the_host_in_x_forwarded_host() {
        // (what, Host, X-Forwarded-Host values, from a trusted proxy, answer)
        let cases: [(&str, &str, &[&str], bool, u16); 6] = [
            (
                "a rewritten Host, ours forwarded",
                "backend:8080",
                &["share.test"],
                true,
                200,
            ),
            (
                "a rewritten Host, nothing forwarded",
                "backend:8080",
                &[],
                true,
                421,
            ),
            (
                "our Host, another forwarded",
                "share.test",
                &["evil.test"],
                true,
                421,
            ),
            (
                "a forwarded list",
                "share.test",
                &["share.test, evil.test"],
                true,
                421,
            ),
            (
                "two forwarded headers",
                "share.test",
                &["share.test", "share.test"],
                true,
                421,
            ),
            (
                "forwarded by an untrusted peer",
                "evil.test",
                &["share.test"],
                false,
                421,
            ),
        ];
        for (name, host, forwarded, trusted, answer) in cases {
            let mut builder = Request::get("/cases/42").header(header::HOST, host);
            for value in forwarded {
                builder = builder.header("x-forwarded-host", *value);
            }
            assert_eq!(
                host_answer(&builder.body(()).unwrap(), trusted),
                answer,
                "{name}"
            );
        }
    }

    type Headers = &'static [(&'static str, &'static str)];

    #[test]
    fn only_get_and_head_must_not_declare_a_body() {
        let cases: [(&str, Method, Headers, bool); 8] = [
            ("a GET without a body", Method::GET, &[], true),
            (
                "a GET declaring zero bytes",
                Method::GET,
                &[("content-length", "0")],
                true,
            ),
            (
                "a GET declaring a body",
                Method::GET,
                &[("content-length", "22")],
                false,
            ),
            (
                "a GET with a second, non-zero length",
                Method::GET,
                &[("content-length", "0"), ("content-length", "5")],
                false,
            ),
            (
                "a chunked GET",
                Method::GET,
                &[("transfer-encoding", "chunked")],
                false,
            ),
            (
                "a HEAD declaring a body",
                Method::HEAD,
                &[("content-length", "1")],
                false,
            ),
            (
                "a POST with a body",
                Method::POST,
                &[("content-length", "5")],
                true,
            ),
            (
                "a chunked DELETE",
                Method::DELETE,
                &[("transfer-encoding", "chunked")],
                true,
            ),
        ];
        for (name, method, headers, accepted) in cases {
            let mut builder = Request::builder().method(method).uri("/cases/42");
            for (header_name, value) in headers {
                builder = builder.header(*header_name, *value);
            }
            let request = builder.body(()).unwrap();
            assert_eq!(judged_declared_body(&request).is_ok(), accepted, "{name}");
        }
    }

    #[test]
    fn chunked_is_the_only_transfer_coding() {
        let cases: [(&[&str], bool); 9] = [
            (&[], true),
            (&["chunked"], true),
            (&["Chunked"], true),
            (&[" chunked ,"], true),
            (&["identity, chunked"], false),
            (&["identity", "chunked"], false),
            (&["gzip, chunked"], false),
            (&["chunked, chunked"], false),
            (&["xchunked"], false),
        ];
        for (values, accepted) in cases {
            let mut builder = Request::post("/cases/42");
            for value in values {
                builder = builder.header(header::TRANSFER_ENCODING, *value);
            }
            let request = builder.body(()).unwrap();
            assert_eq!(
                judged_declared_body(&request).is_ok(),
                accepted,
                "{values:?}"
            );
        }
        // A GET declaring any coding at all is refused for declaring a body, first.
        for value in ["chunked", "gzip, chunked"] {
            let request = Request::get("/cases/42")
                .header(header::TRANSFER_ENCODING, value)
                .body(())
                .unwrap();
            assert!(
                matches!(judged_declared_body(&request), Err(GatewayError::BodyOnGet)),
                "{value}"
            );
        }
    }

    #[test]
    fn method_override_parameters_are_refused_in_any_case() {
        let cases = [
            ("/cases/42/notes", true),
            ("/cases/42/notes?page=2", true),
            ("/cases/42/notes?method=x", true),
            ("/cases/42/notes?my_method=x", true),
            ("/cases/42/notes?_method=DELETE", false),
            ("/cases/42/notes?page=1&_METHOD=put", false),
            ("/cases/42/notes?_method", false),
            ("/cases/42/notes?X-HTTP-Method-Override=DELETE", false),
            ("/cases/42/notes?x-method-override=PATCH", false),
        ];
        for (raw, accepted) in cases {
            let target = canonicalise(raw.as_bytes()).unwrap();
            assert_eq!(
                refuse_method_override_query(&target).is_ok(),
                accepted,
                "{raw}"
            );
        }
    }
}
