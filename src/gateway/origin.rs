//! Whether the browser says a request comes from a page of our own public origin: the guard
//! against cross-site requests (CSRF) that ride on a guest's cookie.
//!
//! The guest cookie is `SameSite=Lax`, so browsers already leave it off cross-site POSTs, but
//! not off requests from a sibling origin of the same site (`other.example.org` posting to
//! `share.example.org`), nor in browsers that do not implement SameSite. Every browser that
//! sends a cross-origin request with an unsafe method says where it comes from in `Origin`, and
//! current ones also in `Sec-Fetch-Site`: both are set by the browser, never by a page. A request
//! without either (curl, a script, an old browser's same-origin form) carries no ambient
//! authority from another site and is judged as usual.

use http::HeaderMap;
use http::header::{self, HeaderName};

use crate::proxy::response::PublicOrigin;

/// Whether `headers` allow the request to be treated as coming from our own origin: no `Origin`
/// or exactly ours, and no `Sec-Fetch-Site` that says another site. A browser whose page asked
/// for no referrer (or a privacy setting) sends `Origin: null` even for its own forms; that is
/// accepted only with `Sec-Fetch-Site: same-origin`.
pub(super) fn comes_from_our_origin(headers: &HeaderMap, public: &PublicOrigin) -> bool {
    let ours = public.as_url_prefix();
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let origin_ok = match (origins.next(), origins.next()) {
        (None, _) => true,
        (Some(origin), None) if origin.as_bytes().eq_ignore_ascii_case(ours.as_bytes()) => true,
        (Some(origin), None) if origin == "null" => fetch_site(headers) == FetchSite::SameOrigin,
        (Some(_), _) => false,
    };
    origin_ok && fetch_site(headers) != FetchSite::Other
}

#[derive(Debug, PartialEq, Eq)]
enum FetchSite {
    /// `Sec-Fetch-Site: same-origin`.
    SameOrigin,
    /// No header, or `none` (the user typed the address or used a bookmark).
    Unstated,
    /// `same-site`, `cross-site`, anything else, or more than one value.
    Other,
}

/// Named once: looked up by a `&str`, the name was parsed and checked again on every request.
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// What the one `Sec-Fetch-Site` header says.
fn fetch_site(headers: &HeaderMap) -> FetchSite {
    let mut values = headers.get_all(SEC_FETCH_SITE).iter();
    match (values.next(), values.next()) {
        (None, _) => FetchSite::Unstated,
        (Some(value), None) if value == "same-origin" => FetchSite::SameOrigin,
        (Some(value), None) if value == "none" => FetchSite::Unstated,
        (Some(_), _) => FetchSite::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    type Headers = &'static [(&'static str, &'static str)];

    #[test]
    fn only_our_origin_or_none_stated_passes() {
        let public = PublicOrigin {
            scheme: http::uri::Scheme::HTTPS,
            authority: http::uri::Authority::from_static("share.example.org"),
        };
        let cases: [(&str, Headers, bool); 12] = [
            ("nothing said", &[], true),
            (
                "our origin",
                &[("origin", "https://share.example.org")],
                true,
            ),
            (
                "our origin in capitals",
                &[("origin", "HTTPS://Share.Example.org")],
                true,
            ),
            (
                "our origin, same-origin fetch",
                &[
                    ("origin", "https://share.example.org"),
                    ("sec-fetch-site", "same-origin"),
                ],
                true,
            ),
            ("a typed address", &[("sec-fetch-site", "none")], true),
            (
                "another origin",
                &[("origin", "https://evil.example")],
                false,
            ),
            (
                "a sibling origin",
                &[("origin", "https://other.example.org")],
                false,
            ),
            (
                "our host over http",
                &[("origin", "http://share.example.org")],
                false,
            ),
            ("null alone", &[("origin", "null")], false),
            (
                "null from our own page",
                &[("origin", "null"), ("sec-fetch-site", "same-origin")],
                true,
            ),
            (
                "no origin but cross-site",
                &[("sec-fetch-site", "cross-site")],
                false,
            ),
            (
                "two origins",
                &[
                    ("origin", "https://share.example.org"),
                    ("origin", "https://evil.example"),
                ],
                false,
            ),
        ];
        for (name, pairs, expected) in cases {
            let mut headers = HeaderMap::new();
            for (header_name, value) in pairs {
                headers.append(*header_name, HeaderValue::from_static(value));
            }
            assert_eq!(comes_from_our_origin(&headers, &public), expected, "{name}");
        }
    }
}
