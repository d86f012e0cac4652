//! Turning a page into a complete HTTP response: an HTML page or a JSON body in the recipient's
//! language, with headers that keep it out of caches, frames and referrers.

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_LANGUAGE, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName,
    HeaderValue, REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::catalog::Page;
use super::engine::Vars;
use super::lang::Lang;
use super::specs;
use super::style::{CSP, CSP_WITH_FORMS};
use super::templates::Templates;

const HTML_TYPE: &str = "text/html; charset=utf-8";
const JSON_TYPE: &str = "application/json";

/// The response a recipient sees for one of the gateway's refusals, in `lang`, as JSON when
/// `wants_json` is true.
///
/// Nothing the request carried reaches the body: the page, the language and the format are
/// chosen from it, nothing is copied, so a token or markup in a request cannot be reflected.
pub fn render(
    templates: &Templates,
    page: Page,
    lang: Lang,
    wants_json: bool,
) -> Response<Full<Bytes>> {
    let vars = Vars::new().set("error_code", page.code());
    respond(
        templates,
        page.status(),
        page.code(),
        lang,
        &vars,
        wants_json,
    )
}

/// The response for any page template (`name`), such as the verification pages: the page in
/// HTML, or `{"error": {"code": name, "message": <name>.message}}` for a JSON client. An error
/// status shows `name` as the error code on the page when `vars` sets `error_code`.
pub fn respond(
    templates: &Templates,
    status: StatusCode,
    name: &str,
    lang: Lang,
    vars: &Vars,
    wants_json: bool,
) -> Response<Full<Bytes>> {
    let (body, content_type) = if wants_json {
        let message = templates.message(&format!("{name}.message"), lang);
        let json = serde_json::json!({ "error": { "code": name, "message": message } });
        (json.to_string(), JSON_TYPE)
    } else {
        (templates.page(name, lang, vars), HTML_TYPE)
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LANGUAGE, HeaderValue::from_static(lang.tag()));
    let has_form = specs::spec(name).is_some_and(|spec| spec.has_form);
    let csp = if has_form { CSP_WITH_FORMS } else { CSP };
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if has_form {
        // With `no-referrer`, browsers post the page's own forms with `Origin: null`, which the
        // origin check must then doubt. Form pages live under the link prefix with no token in
        // their address, so telling our own origin where a form came from gives nothing away.
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

/// Sent with both forms: a page about one recipient's link must not be cached or shared, and
/// the body differs by `Accept` and `Accept-Language`.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (CACHE_CONTROL, "no-store"),
    (REFERRER_POLICY, "no-referrer"),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (X_FRAME_OPTIONS, "DENY"),
    (VARY, "Accept, Accept-Language"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

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
    fn every_page_renders_as_html_in_every_language() {
        let templates = Templates::embedded();
        for lang in Lang::ALL {
            for page in Page::ALL {
                let response = render(&templates, page, lang, false);
                assert_eq!(response.status(), page.status(), "{page:?}");
                assert_eq!(response.headers()[CONTENT_TYPE], HTML_TYPE, "{page:?}");
                assert_eq!(response.headers()[CONTENT_LANGUAGE], lang.tag(), "{page:?}");
                let html = body_of(response);
                let title = templates.message(&format!("{}.title", page.code()), lang);
                let escaped_title = title.replace('\'', "&#39;");
                for expected in [
                    "<!doctype html>",
                    &format!("<html lang=\"{}\">", lang.tag()),
                    "<meta name=\"viewport\"",
                    &format!("<title>{escaped_title}</title>"),
                    &format!("<h1>{escaped_title}</h1>"),
                    page.code(),
                ] {
                    assert!(
                        html.contains(expected),
                        "{lang:?} {page:?} lacks {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_page_renders_as_json_with_its_code_and_message_in_every_language() {
        let templates = Templates::embedded();
        for lang in Lang::ALL {
            for page in Page::ALL {
                let response = render(&templates, page, lang, true);
                assert_eq!(response.status(), page.status(), "{page:?}");
                assert_eq!(response.headers()[CONTENT_TYPE], JSON_TYPE, "{page:?}");
                let json: serde_json::Value =
                    serde_json::from_str(&body_of(response)).expect("valid JSON");
                assert_eq!(json["error"]["code"], page.code(), "{page:?}");
                assert_eq!(
                    json["error"]["message"],
                    templates.message(&format!("{}.message", page.code()), lang),
                    "{lang:?} {page:?}"
                );
                assert_eq!(json.as_object().map(|o| o.len()), Some(1), "only `error`");
            }
        }
    }

    #[test]
    fn english_and_swedish_say_different_things() {
        let templates = Templates::embedded();
        for page in Page::ALL {
            let en = body_of(render(&templates, page, Lang::En, false));
            let sv = body_of(render(&templates, page, Lang::Sv, false));
            assert_ne!(
                en.replace("lang=\"en\"", ""),
                sv.replace("lang=\"sv\"", ""),
                "{page:?}"
            );
        }
    }

    #[test]
    fn both_forms_carry_the_protective_headers() {
        let templates = Templates::embedded();
        let table = [
            (CACHE_CONTROL, "no-store"),
            (REFERRER_POLICY, "no-referrer"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (VARY, "Accept, Accept-Language"),
            (CONTENT_SECURITY_POLICY, CSP),
        ];
        for page in Page::ALL {
            for json in [false, true] {
                let response = render(&templates, page, Lang::Sv, json);
                for (name, value) in &table {
                    assert_eq!(
                        response.headers()[name],
                        *value,
                        "{page:?} json={json} {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn only_pages_with_forms_may_post_and_only_to_the_gateway() {
        let templates = Templates::embedded();
        let vars = Vars::new().set("form_action", "/s/verify/code");
        let table = [
            ("verify", true),
            ("code_sent", true),
            ("wrong_code", true),
            ("code_expired", true),
            ("too_many_attempts", true),
            ("rate_limited", false),
            ("revoked_link", false),
        ];
        for (name, has_form) in table {
            let response = respond(&templates, StatusCode::OK, name, Lang::En, &vars, false);
            let expected = if has_form { CSP_WITH_FORMS } else { CSP };
            assert_eq!(
                response.headers()[CONTENT_SECURITY_POLICY],
                expected,
                "{name}"
            );
            assert_eq!(body_of(response).contains("<form"), has_form, "{name}");
        }
    }

    #[test]
    fn error_pages_load_nothing_from_anywhere() {
        let templates = Templates::embedded();
        for lang in Lang::ALL {
            for page in Page::ALL {
                let html = body_of(render(&templates, page, lang, false));
                for forbidden in [
                    "<script", "<link", "<img", "<form", "src=", "href=", "http://", "https://",
                ] {
                    assert!(!html.contains(forbidden), "{page:?} contains {forbidden}");
                }
            }
        }
    }

    #[test]
    fn nothing_from_a_hostile_request_reaches_the_body() {
        // The gateway calls `render(.., Lang::choose(..), wants_json(headers))`; what crosses is
        // a language and one bool, so a token or markup in the headers cannot come back out.
        let hostile =
            "application/json; token=eyJhbGciOiJIUzI1NiJ9.secret <script>alert(1)</script>";
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::ACCEPT, HeaderValue::from_static(hostile));
        let language = HeaderValue::from_static("sv;q=1, <script>alert(1)</script>");
        let templates = Templates::embedded();
        for page in Page::ALL {
            let lang = Lang::choose(Some("eyJ<script>"), Some(&language));
            let body = body_of(render(
                &templates,
                page,
                lang,
                super::super::wants_json(&headers),
            ));
            for echoed in ["eyJ", "secret", "<script", "alert"] {
                assert!(!body.contains(echoed), "{page:?} echoed {echoed}");
            }
        }
    }
}
