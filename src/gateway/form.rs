//! Reading the small urlencoded bodies of the verification forms: bounded before anything is
//! read, and only the fields asked for.

use http::header;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Limited};

use super::error::GatewayError;
use crate::access_log::RequestBody;
use crate::server::body_pace::is_too_slow;

/// A code form is a token and six digits; anything far larger is not ours.
const MAX_FORM_BYTES: usize = 2048;

/// The fields of a submitted form, percent-decoded.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    /// Reads the request's body as `application/x-www-form-urlencoded`.
    pub(super) async fn read(request: Request<RequestBody>) -> Result<Form, GatewayError> {
        if !is_urlencoded(request.headers()) {
            return Err(GatewayError::BadForm);
        }
        let body = Limited::new(request.into_body(), MAX_FORM_BYTES)
            .collect()
            .await
            .map_err(|error| {
                if is_too_slow(error.as_ref()) {
                    GatewayError::BodyTooSlow
                } else {
                    GatewayError::BadForm
                }
            })?
            .to_bytes();
        let text = std::str::from_utf8(&body).map_err(|_| GatewayError::BadForm)?;
        Form::parse(text).ok_or(GatewayError::BadForm)
    }

    fn parse(text: &str) -> Option<Form> {
        let mut fields = Vec::new();
        for pair in text.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            fields.push((percent_decode(name)?, percent_decode(value)?));
        }
        Some(Form(fields))
    }

    /// The field's value when it was sent exactly once; a repeated field is no value at all.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        let mut values = self.0.iter().filter(|(field, _)| field == name);
        let first = values.next()?;
        values.next().is_none().then_some(first.1.as_str())
    }
}

fn is_urlencoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `+` is a space and `%XX` a byte; the result must be UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = hex(input.next()?)?;
                let low = hex(input.next()?)?;
                bytes.push(high << 4 | low);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_decoded_and_repeated_ones_are_not_trusted() {
        let form = Form::parse("csrf=k1.abc_-&code=123+456&x=%41%c3%a5&dup=1&dup=2&flag").unwrap();
        assert_eq!(form.get("csrf"), Some("k1.abc_-"));
        assert_eq!(form.get("code"), Some("123 456"));
        assert_eq!(form.get("x"), Some("Aå"));
        assert_eq!(form.get("dup"), None);
        assert_eq!(form.get("flag"), Some(""));
        assert_eq!(form.get("missing"), None);
    }

    #[test]
    fn broken_encodings_are_no_form() {
        for text in ["a=%", "a=%4", "a=%zz", "a=%ff"] {
            assert!(Form::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn only_urlencoded_bodies_are_read() {
        let cases = [
            ("application/x-www-form-urlencoded", true),
            ("Application/X-WWW-Form-Urlencoded; charset=UTF-8", true),
            ("multipart/form-data; boundary=x", false),
            ("application/json", false),
        ];
        for (content_type, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
            assert_eq!(is_urlencoded(&headers), want, "{content_type}");
        }
        assert!(!is_urlencoded(&HeaderMap::new()));
    }
}
