//! Checks on a request's framing before it is judged: one plain `Host`, and no body where no body
//! belongs. Both close gaps between how casegate and the hops behind it read the same bytes.

use http::header;
use http::{Method, Request};

use super::error::GatewayError;

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
/// connection, outside any decision casegate made. So such a request is refused, whatever its framing.
pub(super) fn refuse_body_on_get<B: hyper::body::Body>(
    request: &Request<B>,
) -> Result<(), GatewayError> {
    let bodiless = request.method() == Method::GET || request.method() == Method::HEAD;
    if bodiless && !request.body().is_end_stream() {
        return Err(GatewayError::BodyOnGet);
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
