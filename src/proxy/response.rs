//! Rewriting an upstream response before it reaches the client. For guests the response must not
//! set state in the browser, open the case to other origins, be cached, or point back at the upstream.

use http::header::{self, HeaderName, HeaderValue};
use http::response::Parts;
use http::uri::{Authority, Scheme, Uri};

use super::hop::strip_hop_by_hop;
use super::upstream::Upstream;

const SET_COOKIE2: HeaderName = HeaderName::from_static("set-cookie2");
const X_ROBOTS_TAG: HeaderName = HeaderName::from_static("x-robots-tag");

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

/// Cleans a response on its way to a guest.
pub fn sanitise_guest_response(parts: &mut Parts, upstream: &Upstream, public: &PublicOrigin) {
    strip_hop_by_hop(&mut parts.headers);
    let headers = &mut parts.headers;
    headers.remove(header::SET_COOKIE);
    // RFC 2965's obsolete twin: no current browser reads it, an old one would.
    headers.remove(SET_COOKIE2);
    let cors: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors {
        headers.remove(name);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Cookie"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(X_ROBOTS_TAG, HeaderValue::from_static("noindex"));
    // Strict-Transport-Security is set on every response, pages included, by the connection
    // (`[server] hsts`, src/server/connection.rs), not only on forwarded ones.
    rewrite_location(parts, upstream, public);
}

/// Cleans a response to a passthrough (staff) request: only what is needed for correctness.
pub fn sanitise_passthrough_response(
    parts: &mut Parts,
    upstream: &Upstream,
    public: &PublicOrigin,
) {
    strip_hop_by_hop(&mut parts.headers);
    rewrite_location(parts, upstream, public);
}

/// An absolute redirect to the upstream's own origin would send the browser around casegate; point
/// it at the public origin instead. Relative redirects and other origins are left alone.
fn rewrite_location(parts: &mut Parts, upstream: &Upstream, public: &PublicOrigin) {
    let Some(location) = parts.headers.get(header::LOCATION) else {
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
        parts.headers.insert(header::LOCATION, value);
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

    fn response(pairs: &[(&str, &str)]) -> Parts {
        let mut builder = Response::builder();
        for (name, value) in pairs {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn guest_response_cannot_set_state_share_or_be_cached() {
        let mut parts = response(&[
            ("set-cookie", "admin=1"),
            ("set-cookie2", "admin=1"),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("cache-control", "public, max-age=3600"),
            ("vary", "Accept-Encoding"),
            ("connection", "close"),
            ("content-type", "video/webm"),
        ]);
        sanitise_guest_response(&mut parts, &upstream(), &public());
        let h = &parts.headers;
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
            let mut parts = response(&[("location", location)]);
            sanitise_guest_response(&mut parts, &upstream(), &public());
            assert_eq!(parts.headers["location"], expected, "{location}");
        }
    }
}
