//! Turning a [`Page`] into a complete HTTP response: a small HTML page or a JSON body, with
//! headers that keep it out of caches, frames and referrers.

use bytes::Bytes;
use http::Response;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, HeaderValue, REFERRER_POLICY,
    VARY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http_body_util::Full;

use super::catalog::Page;

/// The page's only stylesheet, inline so the page needs nothing else from the network.
///
/// The CSP below allows exactly this text by its hash; `csp_hash_matches_the_inline_style`
/// fails if one changes without the other.
const STYLE: &str = concat!(
    ":root{color-scheme:light dark;font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;line-height:1.5}",
    "body{margin:0;padding:1.5rem 1rem;background:Canvas;color:CanvasText}",
    "main{max-width:32rem;margin:10vh auto 0}",
    "h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}",
    "p{font-size:1.0625rem;margin:0 0 1rem}",
    ".code{font-size:.875rem;opacity:.7}",
);

/// Nothing may load, run, submit or frame; only the inline style above may apply.
const CSP: &str = "default-src 'none'; style-src 'sha256-/DfR4nQc4/gxIIAtTYQJZCTL91h4WeLyc9uGeZIJBwE='; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML_TYPE: &str = "text/html; charset=utf-8";
const JSON_TYPE: &str = "application/json";

/// Builds the response a recipient sees for `page`, as JSON when `wants_json` is true.
///
/// Everything in the body comes from the page catalog, never from the request, so nothing a
/// client sent (a token, a path) can be reflected back or into a log scraped from responses.
pub fn render(page: Page, wants_json: bool) -> Response<Full<Bytes>> {
    let (body, content_type) = if wants_json {
        (json_body(page), JSON_TYPE)
    } else {
        (html_body(page), HTML_TYPE)
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = page.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Sent with both forms: an error about one recipient's link must not be cached or shared, and
/// the body differs by `Accept`.
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (CACHE_CONTROL, "no-store"),
    (REFERRER_POLICY, "no-referrer"),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (CONTENT_SECURITY_POLICY, CSP),
    (X_FRAME_OPTIONS, "DENY"),
    (VARY, "Accept"),
];

fn json_body(page: Page) -> String {
    let message = format!("{} {}", page.explanation(), page.advice());
    serde_json::json!({ "error": { "code": page.code(), "message": message } }).to_string()
}

/// The catalog's texts contain no markup characters (a catalog test holds it to that), so they
/// are inserted without escaping.
fn html_body(page: Page) -> String {
    let title = page.title();
    let explanation = page.explanation();
    let advice = page.advice();
    let code = page.code();
    format!(
        "<!doctype html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n\
         <title>{title}</title>\n\
         <style>{STYLE}</style>\n\
         </head>\n\
         <body>\n\
         <main>\n\
         <h1>{title}</h1>\n\
         <p>{explanation}</p>\n\
         <p>{advice}</p>\n\
         <p class=\"code\">Error code: {code}</p>\n\
         </main>\n\
         </body>\n\
         </html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use http_body_util::BodyExt;
    use sha2::{Digest, Sha256};

    fn body_of(response: Response<Full<Bytes>>) -> String {
        let collected = futures_block_on(response.into_body().collect());
        let bytes = match collected {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        String::from_utf8(bytes.to_vec()).expect("pages are UTF-8")
    }

    /// `Full` is always ready, so a single poll with a no-op waker completes it.
    fn futures_block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("a Full body is always ready"),
        }
    }

    #[test]
    fn every_page_renders_as_html_with_its_status_and_words() {
        for page in Page::ALL {
            let response = render(page, false);
            assert_eq!(response.status(), page.status(), "{page:?}");
            assert_eq!(response.headers()[CONTENT_TYPE], HTML_TYPE, "{page:?}");
            let html = body_of(response);
            for expected in [
                "<!doctype html>",
                "<html lang=\"en\">",
                "<meta name=\"viewport\"",
                page.title(),
                page.explanation(),
                page.advice(),
                page.code(),
            ] {
                assert!(html.contains(expected), "{page:?} lacks {expected}");
            }
        }
    }

    #[test]
    fn every_page_renders_as_json_with_its_code_and_message() {
        for page in Page::ALL {
            let response = render(page, true);
            assert_eq!(response.status(), page.status(), "{page:?}");
            assert_eq!(response.headers()[CONTENT_TYPE], JSON_TYPE, "{page:?}");
            let json: serde_json::Value =
                serde_json::from_str(&body_of(response)).expect("valid JSON");
            assert_eq!(json["error"]["code"], page.code(), "{page:?}");
            let message = json["error"]["message"]
                .as_str()
                .expect("message is a string");
            assert!(message.contains(page.explanation()), "{page:?}");
            assert!(message.contains(page.advice()), "{page:?}");
            assert_eq!(
                json.as_object().map(|o| o.len()),
                Some(1),
                "only `error` at the top"
            );
        }
    }

    #[test]
    fn both_forms_carry_the_protective_headers() {
        let table = [
            (CACHE_CONTROL, "no-store"),
            (REFERRER_POLICY, "no-referrer"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (VARY, "Accept"),
        ];
        for page in Page::ALL {
            for json in [false, true] {
                let response = render(page, json);
                for (name, value) in &table {
                    assert_eq!(
                        response.headers()[name],
                        *value,
                        "{page:?} json={json} {name}"
                    );
                }
                let csp = response.headers()[CONTENT_SECURITY_POLICY]
                    .to_str()
                    .expect("ASCII CSP");
                assert!(csp.starts_with("default-src 'none';"), "{csp}");
            }
        }
    }

    #[test]
    fn csp_hash_matches_the_inline_style() {
        let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(
            CSP.contains(&format!("'sha256-{hash}'")),
            "update CSP to sha256-{hash}"
        );
    }

    #[test]
    fn html_pages_load_nothing_from_anywhere() {
        for page in Page::ALL {
            let html = body_of(render(page, false));
            for forbidden in [
                "<script", "<link", "<img", "src=", "href=", "http://", "https://",
            ] {
                assert!(!html.contains(forbidden), "{page:?} contains {forbidden}");
            }
        }
    }

    #[test]
    fn nothing_from_a_hostile_request_reaches_the_body() {
        // The gateway calls `render(page, wants_json(headers))`; the only request input that
        // crosses is one bool, so a token or markup in the headers cannot come back out.
        let hostile =
            "application/json; token=eyJhbGciOiJIUzI1NiJ9.secret <script>alert(1)</script>";
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::ACCEPT, HeaderValue::from_static(hostile));
        for page in Page::ALL {
            let body = body_of(render(page, super::super::wants_json(&headers)));
            for echoed in ["eyJ", "secret", "<script", "alert"] {
                assert!(!body.contains(echoed), "{page:?} echoed {echoed}");
            }
        }
    }
}
