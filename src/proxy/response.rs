//! Rewriting an upstream response before it reaches the client. For guests the response must not
//! set state in the browser, open the case to other origins, be cached, or point back at the upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme, Uri};

use super::hop::{strip_hop_by_hop, strip_hop_by_hop_and};
use super::upstream::Upstream;
use super::upstream_h1::PassedFields;

/// casegate's own fields on every forwarded answer to a guest, as the map gets them and as an
/// HTTP/1 writer writes them (one copy of all four lines). The upstream's own `Cache-Control`,
/// `Referrer-Policy` and `X-Robots-Tag` are removed first; its `Vary` stays, and `Cookie` is added.
macro_rules! guest_fields {
    ($(($name:literal, $value:literal)),+ $(,)?) => {
        /// Never cached (a shared computer, a proxy on the way), no referrer to another site,
        /// not indexed, and a cache that keeps it anyway keys it by cookie.
        pub const GUEST_FIELDS: [(HeaderName, &str); [$($name),+].len()] =
            [$((HeaderName::from_static($name), $value)),+];
        /// [`GUEST_FIELDS`] as HTTP/1 field lines.
        pub const GUEST_FIELD_LINES: &[u8] = concat!($($name, ": ", $value, "\r\n"),+).as_bytes();
    };
}

guest_fields!(
    ("cache-control", "private, no-store"),
    ("vary", "Cookie"),
    ("referrer-policy", "no-referrer"),
    ("x-robots-tag", "noindex"),
);

/// The public origin recipients use (`public_url`), for redirects.
#[derive(Clone, Debug)]
pub struct PublicOrigin {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl PublicOrigin {
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// `scheme://authority` with no trailing slash.
    pub fn as_url_prefix(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// Cleans a response on its way to a guest: its map, and the fields passed on beside it.
pub fn sanitise_guest_response(
    headers: &mut HeaderMap,
    passed: Option<&mut PassedFields>,
    upstream: &Upstream,
    public: &PublicOrigin,
) {
    // One pass over the response's names for all of them: each lookup or removal of a name the
    // response lacks would hash it for nothing. Every name removed here is one the upstream
    // client keeps in the map (`is_read_or_changed`), never among the fields it passes on.
    strip_hop_by_hop_and(headers, removed_for_guests);
    match passed {
        // Written with the upstream's other fields, or moved into the map with them.
        Some(passed) => passed.mark_for_guest(),
        None => {
            for (name, value) in GUEST_FIELDS {
                headers.append(name, HeaderValue::from_static(value));
            }
        }
    }
    // Strict-Transport-Security is set on every response, pages included, by the connection
    // (`[server] hsts`, src/server/connection.rs), not only on forwarded ones.
    rewrite_location(headers, upstream, public);
}

/// Whether casegate reads or changes the response field `name` anywhere: the sanitisers
/// (`Set-Cookie`, CORS, caching, referrer, indexing, `Location`) and the connection (HSTS). The
/// upstream client keeps these in the response's map, where those rules look; every other field
/// is passed on as it came ([`PassedFields`]).
pub fn is_read_or_changed(name: &HeaderName) -> bool {
    let name = name.as_str();
    removed_for_guests(name) || name == "location" || name == "strict-transport-security"
}

/// The upstream's fields a guest never gets: those that would set state or open the case to
/// other origins, and those [`GUEST_FIELDS`] replace.
fn removed_for_guests(name: &str) -> bool {
    sets_state_or_opens_to_origins(name) || replaced_for_guests(name)
}

/// Whether an upstream's response header would set state in a guest's browser (`Set-Cookie`, and
/// RFC 2965's obsolete twin `Set-Cookie2`: no current browser reads it, an old one would) or open
/// the case to other origins (CORS).
fn sets_state_or_opens_to_origins(name: &str) -> bool {
    name == "set-cookie" || name == "set-cookie2" || name.starts_with("access-control-")
}

/// The upstream's fields that [`GUEST_FIELDS`] replace for a guest (its `Vary` is added to).
fn replaced_for_guests(name: &str) -> bool {
    matches!(name, "cache-control" | "referrer-policy" | "x-robots-tag")
}

/// Cleans a response to a passthrough (staff) request: only what is needed for correctness.
pub fn sanitise_passthrough_response(
    headers: &mut HeaderMap,
    upstream: &Upstream,
    public: &PublicOrigin,
) {
    strip_hop_by_hop(headers);
    rewrite_location(headers, upstream, public);
}

/// An absolute redirect to the upstream's own origin would send the browser around casegate; point
/// it at the public origin instead. Relative redirects and other origins are left alone.
fn rewrite_location(headers: &mut HeaderMap, upstream: &Upstream, public: &PublicOrigin) {
    let Some(location) = headers.get(header::LOCATION) else {
        return;
    };
    let Ok(uri) = location.to_str().unwrap_or_default().parse::<Uri>() else {
        return;
    };
    if !upstream.is_own_origin(&uri) {
        return;
    }
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let rewritten = format!("{}{}", public.as_url_prefix(), path_and_query);
    if let Ok(value) = HeaderValue::from_str(&rewritten) {
        headers.insert(header::LOCATION, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn upstream() -> Upstream {
        Upstream::new(&Uri::from_static("http://127.0.0.1:8080"), vec![]).unwrap()
    }

    fn public() -> PublicOrigin {
        PublicOrigin {
            scheme: Scheme::HTTPS,
            authority: Authority::from_static("share.example.org"),
        }
    }

    fn response(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut builder = Response::builder();
        for (name, value) in pairs {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0.headers
    }

    /// The upstream client keeps in the map every field a sanitiser or the connection acts on,
    /// and passes the rest on unread: a name missing here would pass a sanitiser by.
    #[test]
    fn what_casegate_reads_or_changes_is_kept_in_the_map_the_rest_passed_on() {
        for name in [
            "set-cookie",
            "set-cookie2",
            "access-control-allow-origin",
            "access-control-expose-headers",
            "cache-control",
            "referrer-policy",
            "x-robots-tag",
            "location",
            "strict-transport-security",
        ] {
            assert!(is_read_or_changed(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["content-type", "etag", "date", "vary", "x-frame-options"] {
            assert!(
                !is_read_or_changed(&HeaderName::from_static(name)),
                "{name}"
            );
        }
        // Every field the guest sanitiser removes from the map is one of them.
        let mut headers = response(&[
            ("set-cookie", "a=1"),
            ("set-cookie2", "a=1"),
            ("access-control-max-age", "1"),
            ("cache-control", "public"),
            ("referrer-policy", "unsafe-url"),
            ("x-robots-tag", "all"),
            ("content-type", "text/html"),
            ("vary", "Accept"),
        ]);
        let before: Vec<HeaderName> = headers.keys().cloned().collect();
        sanitise_guest_response(&mut headers, None, &upstream(), &public());
        for name in before {
            let upstream_value_left = headers
                .get_all(&name)
                .iter()
                .any(|value| !GUEST_FIELDS.iter().any(|(_, ours)| value == ours));
            if !upstream_value_left {
                assert!(is_read_or_changed(&name), "{name} removed but passed on");
            }
        }
    }

    #[test]
    fn guest_response_cannot_set_state_share_or_be_cached() {
        let mut headers = response(&[
            ("set-cookie", "admin=1"),
            ("set-cookie2", "admin=1"),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("cache-control", "public, max-age=3600"),
            ("vary", "Accept-Encoding"),
            ("connection", "close"),
            ("content-type", "video/webm"),
        ]);
        sanitise_guest_response(&mut headers, None, &upstream(), &public());
        let h = &headers;
        assert!(!h.contains_key("set-cookie"));
        assert!(!h.contains_key("set-cookie2"));
        assert!(!h.contains_key("access-control-allow-origin"));
        assert!(!h.contains_key("access-control-allow-credentials"));
        assert!(!h.contains_key("connection"));
        assert_eq!(h["cache-control"], "private, no-store");
        let vary: Vec<&str> = h
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(vary, ["Accept-Encoding", "Cookie"]);
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-robots-tag"], "noindex");
        assert_eq!(h["content-type"], "video/webm");
    }

    #[test]
    fn a_guest_response_loses_exactly_what_it_must_in_one_pass() {
        let mut headers = response(&[
            ("connection", "Keep-Alive, X-Upstream-Secret"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic eA=="),
            ("expect", "100-continue"),
            ("x-upstream-secret", "1"),
            ("close", "named in Connection, so hop-by-hop"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("set-cookie2", "c=3"),
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "x-total"),
            ("content-type", "text/html"),
            ("etag", "\"v1\""),
            ("x-total", "7"),
            ("x-frame-options", "DENY"),
            ("x-frame-options", "SAMEORIGIN"),
            ("vary", "Accept-Encoding"),
        ]);
        sanitise_guest_response(&mut headers, None, &upstream(), &public());
        let mut left: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        left.sort();
        let expected = [
            ("cache-control", "private, no-store"),
            ("content-type", "text/html"),
            ("etag", "\"v1\""),
            ("referrer-policy", "no-referrer"),
            ("vary", "Accept-Encoding"),
            ("vary", "Cookie"),
            ("x-frame-options", "DENY"),
            ("x-frame-options", "SAMEORIGIN"),
            ("x-robots-tag", "noindex"),
            ("x-total", "7"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        assert_eq!(left, expected);
        // Several values of one name keep their order.
        let frame: Vec<&str> = headers
            .get_all("x-frame-options")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(frame, ["DENY", "SAMEORIGIN"]);
    }

    #[test]
    fn a_passthrough_response_keeps_cookies_and_cors_but_not_hop_by_hop() {
        let mut headers = response(&[
            ("connection", "x-named"),
            ("x-named", "1"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "staff=1"),
            ("access-control-allow-origin", "https://staff.example"),
        ]);
        sanitise_passthrough_response(&mut headers, &upstream(), &public());
        let mut left: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["access-control-allow-origin", "set-cookie"]);
        assert!(!headers.contains_key("cache-control"));
    }

    #[test]
    fn redirects_to_the_upstream_origin_point_at_the_public_one() {
        let cases = [
            (
                "http://127.0.0.1:8080/cases/42?x=1",
                "https://share.example.org/cases/42?x=1",
            ),
            ("/cases/42", "/cases/42"),
            ("https://elsewhere.example/x", "https://elsewhere.example/x"),
            ("http://127.0.0.1:9999/x", "http://127.0.0.1:9999/x"),
        ];
        for (location, expected) in cases {
            let mut headers = response(&[("location", location)]);
            sanitise_guest_response(&mut headers, None, &upstream(), &public());
            assert_eq!(headers["location"], expected, "{location}");
        }
    }
}
