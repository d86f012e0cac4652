//! The request headers a guest may send to the upstream: an allowlist, not a denylist.
//!
//! [`super::hop`] names the headers known to be dangerous, but a legacy app may trust a header
//! nobody listed (`X-Tenant`, `X-Debug-As`, an SSO agent's own name). A guest's request is
//! therefore rebuilt from the headers a browser needs to fetch and display a case, plus the names
//! the operator adds in `[upstream] guest_forward_headers`; everything else is dropped. Staff on
//! `passthrough` keep the denylist: their requests are the app's own business.

use std::sync::LazyLock;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use super::hop::connection_named;

/// End-to-end request headers a browser sends while viewing a case, and nothing that asserts who
/// the client is. Cookies and credentials are absent on purpose: a guest speaks only through its
/// share. `Host`, `X-Forwarded-*` and `X-Casegate-*` are casegate's and are added afterwards.
pub const GUEST_REQUEST_HEADERS: [&str; 39] = [
    // Content negotiation.
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    // Caching, conditional and partial requests (video seeking).
    "cache-control",
    "pragma",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
    // A body, where the scope allows one.
    "content-type",
    "content-length",
    "content-language",
    // What the browser says about the request, which apps use for CSRF checks and for layout.
    "user-agent",
    "referer",
    "origin",
    "x-requested-with",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "sec-purpose",
    "purpose",
    "dnt",
    "save-data",
    "upgrade-insecure-requests",
    "priority",
    // A WebSocket handshake (`Upgrade` and `Connection` are put back by `upgrade.rs`).
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    // W3C trace context, so a request can be followed through the app's own tracing.
    "traceparent",
    "tracestate",
    "baggage",
];

/// [`GUEST_REQUEST_HEADERS`] as a header map, whose lookup hashes a standard header name as a
/// number: every header of every guest request is judged, and walking the 39 names was a few
/// percent of the gateway's CPU per request.
static GUEST_REQUEST_HEADER_SET: LazyLock<HeaderMap<()>> = LazyLock::new(|| {
    GUEST_REQUEST_HEADERS
        .iter()
        .map(|name| (HeaderName::from_static(name), ()))
        .collect()
});

/// Whether a guest's copy of `name` is forwarded, given the operator's extra names.
fn is_forwarded_for_guests(name: &HeaderName, extra: &[HeaderName]) -> bool {
    GUEST_REQUEST_HEADER_SET.contains_key(name) || extra.contains(name)
}

/// The client's fields a guest's request carries upstream: the allowlisted ones, every value of
/// each in its order, less those the client named in `Connection`. No hop-by-hop header is on
/// the list, so this also leaves out what [`super::hop::strip_hop_by_hop`] would remove.
pub fn guest_fields<'a>(
    headers: &'a HeaderMap,
    extra: &'a [HeaderName],
) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> + 'a {
    let connection_named = connection_named(headers);
    headers.iter().filter(move |(name, _)| {
        is_forwarded_for_guests(name, extra) && !connection_named.contains(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::hop::tests::headers as map;
    use crate::proxy::hop::{is_client_identity, is_guest_credential, strip_hop_by_hop};

    /// The fields [`guest_fields`] keeps, as text.
    fn kept(map: &HeaderMap, extra: &[HeaderName]) -> Vec<(String, String)> {
        guest_fields(map, extra)
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn tens_of_thousands_of_header_values_or_names_are_filtered_without_panicking() {
        let mut many_values = HeaderMap::new();
        // Above the 24,576 names a map can be sized for (a map rebuilt with a hint of one per
        // value panicked, when the fields were still copied into a new map).
        for _ in 0..25_000 {
            many_values.append(http::header::ACCEPT, HeaderValue::from_static("x"));
        }
        assert_eq!(guest_fields(&many_values, &[]).count(), 25_000);

        let mut many_names = HeaderMap::new();
        // Far more names than can be kept.
        for index in 0..2_000 {
            let name = HeaderName::try_from(format!("x-h-{index}")).unwrap();
            many_names.insert(name, HeaderValue::from_static("x"));
        }
        many_names.insert(http::header::ACCEPT, HeaderValue::from_static("y"));
        assert_eq!(
            kept(&many_names, &[]),
            [("accept".to_owned(), "y".to_owned())]
        );
    }

    #[test]
    fn only_listed_headers_survive_with_every_value_in_order() {
        let headers = map(&[
            ("accept", "text/html"),
            ("x-tenant", "other-hospital"),
            ("accept-encoding", "gzip"),
            ("accept-encoding", "br"),
            ("cookie", "session=staff"),
            ("authorization", "Bearer x"),
            ("x-debug-as", "admin"),
            ("range", "bytes=0-99"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-casegate-case", "43"),
        ]);
        assert_eq!(
            kept(&headers, &[]),
            [
                ("accept".to_owned(), "text/html".to_owned()),
                ("accept-encoding".to_owned(), "gzip".to_owned()),
                ("accept-encoding".to_owned(), "br".to_owned()),
                ("range".to_owned(), "bytes=0-99".to_owned()),
            ]
        );
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_go_too() {
        let headers = map(&[
            ("connection", "keep-alive, Accept-Language, X-CSRF-Token"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("accept-language", "sv"),
            ("x-csrf-token", "abc"),
            ("accept", "text/html"),
        ]);
        assert_eq!(
            kept(&headers, &[HeaderName::from_static("x-csrf-token")]),
            [("accept".to_owned(), "text/html".to_owned())]
        );
    }

    #[test]
    fn the_operators_extra_names_are_forwarded_too() {
        let headers = map(&[("x-csrf-token", "abc"), ("x-tenant", "t")]);
        assert_eq!(
            kept(&headers, &[HeaderName::from_static("x-csrf-token")]),
            [("x-csrf-token".to_owned(), "abc".to_owned())]
        );
    }

    #[test]
    fn the_list_holds_no_credential_identity_or_hop_by_hop_header() {
        for name in GUEST_REQUEST_HEADERS {
            let mut headers = HeaderMap::new();
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            strip_hop_by_hop(&mut headers);
            assert_eq!(headers.len(), 1, "{name} is hop-by-hop");
            assert!(!is_client_identity(name), "{name} claims an identity");
            assert!(!is_guest_credential(name), "{name} is a credential");
            assert_ne!(name, "host");
        }
    }
}
