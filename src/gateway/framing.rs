//! Checks on a request's framing before it is judged: one plain `Host`, and no body where no body
//! belongs. Both close gaps between how casegate and the hops behind it read the same bytes.

use http::header;
use http::{Method, Request};

use super::error::GatewayError;
use crate::policy::CanonicalTarget;

/// RFC 9112 section 3.2: an HTTP/1.1 request has exactly one `Host`, no request has two, and its
/// value is an authority without userinfo (or empty). casegate never forwards the client's `Host`,
/// but a request that other hops may read with another authority is refused, not guessed at.
pub(super) fn check_host<B>(request: &Request<B>) -> Result<(), GatewayError> {
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
/// connection, outside any decision casegate made. A GET or HEAD that *declares* a body
/// (`Content-Length` above 0, or any `Transfer-Encoding`) is refused; one that sends body bytes
/// without declaring them (possible on HTTP/2) is forwarded without them (see [`is_bodiless`]).
/// Judging the declaration rather than the bytes received so far keeps the answer independent of
/// how an HTTP/2 client split its frames.
pub(super) fn refuse_body_on_get<B>(request: &Request<B>) -> Result<(), GatewayError> {
    if !is_bodiless(request.method()) {
        return Ok(());
    }
    let headers = request.headers();
    let declares_length = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .any(|value| value.as_bytes() != b"0");
    if declares_length || headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(GatewayError::BodyOnGet);
    }
    Ok(())
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
    use crate::policy::canonicalise;

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
            assert_eq!(refuse_body_on_get(&request).is_ok(), accepted, "{name}");
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
