//! Choosing between the HTML page and the JSON body from the request's `Accept` header.

use http::header::{ACCEPT, ACCEPT_LANGUAGE};
use http::{HeaderMap, HeaderValue};

/// What a refusal's page is written from, of the request's fields: HTML or JSON, and the
/// browser's languages. Read only once the request is refused (two lookups a request, and a
/// reference taken to `Accept-Language`, that a forwarded request never needed). The default,
/// when the fields are gone (the request's handling panicked): the HTML page, in the share's
/// language or English.
#[derive(Debug, Clone, Default)]
pub struct PageChoice {
    pub wants_json: bool,
    pub accept_language: Option<HeaderValue>,
}

impl PageChoice {
    pub fn of(headers: &HeaderMap) -> PageChoice {
        PageChoice {
            wants_json: wants_json(headers),
            accept_language: headers.get(ACCEPT_LANGUAGE).cloned(),
        }
    }
}

/// True when the client asks for JSON and not for HTML.
///
/// Deliberately not a full q-value negotiation: a browser always lists `text/html`, an API client
/// lists `application/json`, and anything ambiguous gets the human page, which is the safe default
/// for a recipient on a phone. Media types are case-insensitive, so the match is too.
pub fn wants_json(headers: &HeaderMap) -> bool {
    // Looked up once for both questions: each lookup hashes the name.
    let accept = headers.get_all(ACCEPT);
    let lists = |media_type: &[u8]| {
        accept
            .iter()
            .any(|value| contains_ignore_ascii_case(value.as_bytes(), media_type))
    };
    // A browser's Accept starts with `text/html`, which settles it.
    !lists(b"text/html") && lists(b"application/json")
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(accepts: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for accept in accepts {
            map.append(ACCEPT, HeaderValue::from_static(accept));
        }
        map
    }

    #[test]
    fn json_is_chosen_only_when_asked_for_without_html() {
        let table: [(&str, &[&'static str], bool); 9] = [
            ("no accept header gets html", &[], false),
            ("a plain json client gets json", &["application/json"], true),
            (
                "json with parameters gets json",
                &["application/json; charset=utf-8"],
                true,
            ),
            ("upper case json gets json", &["Application/JSON"], true),
            (
                "a browser gets html",
                &["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
                false,
            ),
            (
                "json and html together get html",
                &["application/json, text/html"],
                false,
            ),
            (
                "html in a second header still wins",
                &["application/json", "text/html"],
                false,
            ),
            ("a wildcard gets html", &["*/*"], false),
            (
                "problem json is not plain json",
                &["application/problem+json"],
                false,
            ),
        ];
        for (name, accepts, expected) in table {
            assert_eq!(wants_json(&headers(accepts)), expected, "{name}");
        }
    }

    #[test]
    fn a_non_utf8_accept_header_is_not_a_problem() {
        let mut map = HeaderMap::new();
        let value = HeaderValue::from_bytes(b"application/json \xff")
            .expect("obs-text is a valid header value");
        map.insert(ACCEPT, value);
        assert!(wants_json(&map));
    }
}
