//! `max_header_bytes` on the parsed request head. The HTTP/1 side reads a head of up to 8 KiB
//! whole whatever the limit, and HTTP/2's header list is bounded by hyper; a smaller configured
//! limit is checked here, before the gateway sees the request, so that its refusal is logged as a
//! request.

use crate::proxy::{Body, empty_body};
use http::{Request, Response, StatusCode};

/// The size of the head as HTTP/1.1 puts it on the wire: `METHOD target HTTP/1.1\r\n`, then
/// `name: value\r\n` per field, then the empty line.
pub fn wire_len<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    let target = uri
        .scheme_str()
        .map_or(0, |scheme| scheme.len() + "://".len())
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len())
        + uri
            .path_and_query()
            .map_or(0, |target| target.as_str().len());
    let request_line = request.method().as_str().len() + " ".len() + target + " HTTP/1.1\r\n".len();
    let fields: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + ": ".len() + value.len() + "\r\n".len())
        .sum();
    request_line + fields + "\r\n".len()
}

/// The head limit `request` is over, by its config name and value, if any: `max_header_bytes`
/// measured by [`wire_len`], or `max_headers` counted in distinct names. hyper counts every field
/// on HTTP/1; HTTP/2 has no count of its own, and a header map with tens of thousands of names is
/// full: adding casegate's own headers to it would panic.
pub fn limit_exceeded<B>(
    request: &Request<B>,
    max_header_bytes: usize,
    max_headers: usize,
) -> Option<(&'static str, usize)> {
    if wire_len(request) > max_header_bytes {
        Some(("max_header_bytes", max_header_bytes))
    } else if request.headers().keys_len() > max_headers {
        Some(("max_headers", max_headers))
    } else {
        None
    }
}

/// The answer to a head over `max_header_bytes` or `max_headers`: 431 with no body, as a head
/// over the read buffer gets (`h1`).
pub fn too_large() -> Response<Body> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_head_is_measured_as_http1_writes_it() {
        let cases: &[(&str, Request<()>, &str)] = &[
            (
                "a bare request line",
                request("/", &[]),
                "GET / HTTP/1.1\r\n\r\n",
            ),
            (
                "a target with a query",
                request("/cases/42?tab=notes", &[]),
                "GET /cases/42?tab=notes HTTP/1.1\r\n\r\n",
            ),
            (
                "header fields",
                request("/", &[("host", "share.test"), ("x-note", "abc")]),
                "GET / HTTP/1.1\r\nhost: share.test\r\nx-note: abc\r\n\r\n",
            ),
            (
                "an absolute-form target",
                request("http://share.test/a", &[]),
                "GET http://share.test/a HTTP/1.1\r\n\r\n",
            ),
        ];
        for (name, request, wire) in cases {
            assert_eq!(wire_len(request), wire.len(), "{name}");
        }
    }

    #[test]
    fn the_refusal_is_a_bare_431() {
        let response = too_large();
        assert_eq!(response.status(), 431);
        assert!(response.headers().is_empty());
    }
}
