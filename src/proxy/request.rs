//! Rewriting a request for the upstream: leave out what the client may not say, then add what
//! casegate vouches for. A field casegate states is never also taken from the client, so a client
//! can never pre-seed our headers.
//!
//! A guest's request head is written straight from the client's fields into the bytes that go
//! upstream ([`write_guest_head`]): building a second header map for it, only to write that out,
//! was about a tenth of casegate's instructions per guest request. Staff on `passthrough` keep
//! the map rewrite ([`rewrite_passthrough_request`]), which removes rather than allows.

use std::ops::Range;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, Version};

use super::Body;
use super::field_line::write_field_line;
use super::guest_allowlist::guest_fields;
use super::hop::{strip_client_identity, strip_hop_by_hop};
use super::upstream::Upstream;
use super::upstream_h1::RequestFraming;
use super::upstream_h1::request_head::{BadContentLength, HeadWriter, is_framing, request_framing};
use crate::share::Guest;

pub const X_CASEGATE_CASE: HeaderName = HeaderName::from_static("x-casegate-case");
pub const X_CASEGATE_SHARE: HeaderName = HeaderName::from_static("x-casegate-share");
pub const X_CASEGATE_SCOPE: HeaderName = HeaderName::from_static("x-casegate-scope");
pub const X_CASEGATE_LANG: HeaderName = HeaderName::from_static("x-casegate-lang");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What casegate itself knows about where a request came from; the only source of the
/// `X-Forwarded-*` headers the upstream receives. Borrowed from the connection and the gateway:
/// a guest's head copies the values' bytes, and owned values were two reference-counted clones
/// and drops a request for nothing.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The client and the trusted proxies it came through, then our peer
    /// ([`super::client_address::ClientAddress::forwarded_for`]); never what an untrusted
    /// client wrote.
    pub forwarded_for: &'a HeaderValue,
    pub https: bool,
    /// The public host (from `public_url`), never the client's `Host` header.
    pub public_host: &'a HeaderValue,
}

impl Origin<'_> {
    /// The `X-Forwarded-Proto` value: how the client reached casegate.
    pub fn forwarded_proto(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// Why a guest's share could not be stated upstream. Share fields were validated long before, so
/// this means a bug; the request is refused rather than forwarded without them.
#[derive(Debug)]
pub enum RewriteError {
    /// A share field is not a valid header value.
    ShareHeader(http::header::InvalidHeaderValue),
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewriteError::ShareHeader(error) => {
                write!(f, "a share field is not a valid header value: {error}")
            }
        }
    }
}

impl std::error::Error for RewriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RewriteError::ShareHeader(error) => Some(error),
        }
    }
}

/// The share as casegate states it to the upstream: the `X-Casegate-*` fields of one guest,
/// checked and written out once per session rather than once per request (one copy into each
/// request's head instead of two copies a field).
#[derive(Debug, Clone)]
pub struct ShareIdentity {
    /// `x-casegate-case`, `-share`, `-scope` and, when the share has one, `-lang`: whole lines.
    lines: Box<[u8]>,
    /// Where the share's language is in `lines` (the value of the last line), also the
    /// `Accept-Language` of a scope that pins it: read from there, it costs no allocation of
    /// its own.
    lang: Option<Range<usize>>,
}

impl ShareIdentity {
    pub fn of(guest: &Guest) -> Result<ShareIdentity, RewriteError> {
        let fields = [
            (&X_CASEGATE_CASE, Some(guest.case.as_str())),
            (&X_CASEGATE_SHARE, Some(guest.share_id.as_str())),
            (&X_CASEGATE_SCOPE, Some(guest.scope.as_str())),
            (&X_CASEGATE_LANG, guest.lang.as_deref()),
        ];
        // Sized once: the lines are built when a session is opened, on a connection's first
        // request.
        let capacity = fields
            .iter()
            .filter_map(|&(name, text)| Some(name.as_str().len() + text?.len() + 4))
            .sum();
        let mut lines = Vec::with_capacity(capacity);
        for (name, text) in fields {
            let Some(text) = text else { continue };
            write_field_line(
                &mut lines,
                name.as_str().as_bytes(),
                header_value_bytes(text)?,
            );
        }
        // The language's line is the last, so its value ends where the line's CRLF begins.
        let lang = guest.lang.as_deref().map(|lang| {
            let end = lines.len() - 2;
            end - lang.len()..end
        });
        Ok(ShareIdentity {
            lines: lines.into_boxed_slice(),
            lang,
        })
    }

    /// The share's language as a header value's bytes, when it has one.
    pub fn lang(&self) -> Option<&[u8]> {
        self.lines.get(self.lang.clone()?)
    }
}

/// `text` as a header value's bytes, if `HeaderValue::from_str` would take it, without the copy
/// into a `HeaderValue` that only the check needed (three a session).
fn header_value_bytes(text: &str) -> Result<&[u8], RewriteError> {
    // `http`'s own test for a value's bytes: visible ASCII, obs-text, space and tab.
    let valid = |byte: u8| byte >= b' ' && byte != 0x7f || byte == b'\t';
    // Every byte looked at, without stopping at the first bad one: a loop with no early exit
    // is one the compiler checks many bytes at a time (a session's ids were most of a byte-wise
    // loop's 180 instructions), and a bad byte is rare enough not to need a fast refusal.
    if text
        .bytes()
        .fold(true, |all_valid, byte| all_valid & valid(byte))
    {
        return Ok(text.as_bytes());
    }
    // Refused here: `http` says why (and would take it, were its rule ever wider than ours).
    HeaderValue::from_str(text)
        .map(|_| text.as_bytes())
        .map_err(RewriteError::ShareHeader)
}

/// What casegate states on a guest's request besides the client's allowlisted fields.
pub struct GuestRewrite<'a> {
    pub identity: &'a ShareIdentity,
    /// The scope pins the share's language: `Accept-Language` is the share's, not the client's.
    pub pin_language: bool,
    pub upstream: &'a Upstream,
    pub origin: &'a Origin<'a>,
    /// A WebSocket handshake the policy allowed: `Connection` and `Upgrade`, hop-by-hop and so
    /// never taken from the client, are written back for it.
    pub upgrade: bool,
}

/// Writes a guest's request head for the upstream into `out`: the request line in origin form;
/// the client's allowlisted fields (no cookies, credentials or identity claims; nothing
/// hop-by-hop or named in `Connection`); then the forwarding headers, the share's identity,
/// the operator's `guest_headers`, the upstream's `Host` and the body's framing, all casegate's.
pub fn write_guest_head(
    parts: &Parts,
    rewrite: &GuestRewrite<'_>,
    body: &Body,
    out: &mut Vec<u8>,
) -> Result<RequestFraming, BadContentLength> {
    let GuestRewrite {
        identity,
        pin_language,
        upstream,
        origin,
        upgrade,
    } = *rewrite;
    let framing = request_framing(&parts.method, &parts.headers, body)?;
    let pinned_lang = identity.lang().filter(|_| pin_language);
    let mut head = HeadWriter::start(out, &parts.method, &parts.uri);
    // A guest speaks to the upstream only through the share: its own cookies (ours included),
    // credentials and any header the app might trust would let it act as someone else.
    // The operator's fixed `guest_headers` win over the client's fields and the pinned language
    // (config refuses them for the names casegate alone states).
    let fixed = |name: &HeaderName| {
        upstream
            .guest_headers
            .iter()
            .any(|(fixed, _)| fixed == name)
    };
    for (name, value) in guest_fields(&parts.headers, &upstream.guest_forward_headers) {
        let stated_by_casegate = is_framing(name)
            || (pinned_lang.is_some() && name == header::ACCEPT_LANGUAGE)
            || fixed(name);
        if !stated_by_casegate {
            head.field(name, value);
        }
    }
    head.field(&X_FORWARDED_FOR, origin.forwarded_for);
    head.field_bytes(
        X_FORWARDED_PROTO.as_str().as_bytes(),
        origin.forwarded_proto().as_bytes(),
    );
    head.field(&X_FORWARDED_HOST, origin.public_host);
    head.lines(&identity.lines);
    if let Some(lang) = pinned_lang
        && !fixed(&header::ACCEPT_LANGUAGE)
    {
        head.field_bytes(header::ACCEPT_LANGUAGE.as_str().as_bytes(), lang);
    }
    for (name, value) in &upstream.guest_headers {
        head.field(name, value);
    }
    head.field(&header::HOST, &upstream.host);
    if upgrade {
        head.field_bytes(b"connection", b"upgrade");
        head.field_bytes(b"upgrade", b"websocket");
    }
    head.finish(framing);
    Ok(framing)
}

/// Prepares a request from someone without a share session when `passthrough` is on: the staff's own
/// cookies and credentials go through, but identity claims are still casegate's alone.
pub fn rewrite_passthrough_request(
    parts: &mut Parts,
    cookie_name: &str,
    upstream: &Upstream,
    origin: &Origin<'_>,
) {
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    strip_client_identity(headers);
    remove_cookie(headers, cookie_name);
    add_forwarding_headers(headers, origin);
    point_at_upstream(parts, upstream)
}

fn add_forwarding_headers(headers: &mut HeaderMap, origin: &Origin<'_>) {
    headers.insert(X_FORWARDED_FOR, origin.forwarded_for.clone());
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(origin.forwarded_proto()),
    );
    headers.insert(X_FORWARDED_HOST, origin.public_host.clone());
}

/// Sends the request to the upstream origin with the exact path and query the gateway judged: in
/// origin form (an HTTP/2 request's scheme and authority dropped), `Host` the upstream's.
fn point_at_upstream(parts: &mut Parts, upstream: &Upstream) {
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path_and_query);
    }
    parts.headers.insert(header::HOST, upstream.host.clone());
    // The upstream pool speaks HTTP/1.1 whatever the client spoke to us.
    parts.version = Version::HTTP_11;
}

/// Removes our cookie from every `Cookie` header, keeping the others in their order.
fn remove_cookie(headers: &mut HeaderMap, cookie_name: &str) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty()
                && pair
                    .split_once('=')
                    .is_none_or(|(name, _)| name.trim() != cookie_name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if kept.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::empty_body;
    use http::Request;
    use http_body_util::BodyExt;

    fn guest() -> Guest {
        Guest {
            share_id: "c2hhcmUtaWQtZm9yLXRlc3Q".into(),
            case: "42".into(),
            scope: "view".into(),
            lang: Some("sv-SE".into()),
            email: None,
            expires_at: 2_000_000_000,
            issued_at: 1_999_000_000,
            email_verified: false,
        }
    }

    fn identity() -> ShareIdentity {
        ShareIdentity::of(&guest()).unwrap()
    }

    #[test]
    fn a_share_field_is_taken_exactly_when_http_takes_it_as_a_header_value() {
        for byte in 0..=u8::MAX {
            let mut buffer = [0; 4];
            let text: &str = if byte.is_ascii() {
                char::from(byte).encode_utf8(&mut buffer)
            } else {
                // Bytes of 0x80 and above only come as parts of a character (obs-text to `http`).
                char::from_u32(0x80 + u32::from(byte))
                    .unwrap()
                    .encode_utf8(&mut buffer)
            };
            let text = format!("a{text}b");
            assert_eq!(
                header_value_bytes(&text).is_ok(),
                HeaderValue::from_str(&text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_identity_lines_are_the_share_fields_and_a_field_that_is_no_header_value_is_refused() {
        assert_eq!(
            &*identity().lines,
            b"x-casegate-case: 42\r\nx-casegate-share: c2hhcmUtaWQtZm9yLXRlc3Q\r\n\
              x-casegate-scope: view\r\nx-casegate-lang: sv-SE\r\n"
        );
        assert_eq!(identity().lang(), Some(&b"sv-SE"[..]));
        let without_lang = ShareIdentity::of(&Guest {
            lang: None,
            ..guest()
        })
        .unwrap();
        assert_eq!(
            &*without_lang.lines,
            b"x-casegate-case: 42\r\nx-casegate-share: c2hhcmUtaWQtZm9yLXRlc3Q\r\n\
              x-casegate-scope: view\r\n"
        );
        assert_eq!(without_lang.lang(), None);
        for field in ["4\r\n2", "4\n2", "4\x002", "4\x7f2"] {
            let broken_case = Guest {
                case: field.into(),
                ..guest()
            };
            let broken_lang = Guest {
                lang: Some(field.into()),
                ..guest()
            };
            for broken in [broken_case, broken_lang] {
                assert!(
                    matches!(
                        ShareIdentity::of(&broken),
                        Err(RewriteError::ShareHeader(_))
                    ),
                    "{field:?}"
                );
            }
        }
    }

    fn upstream() -> Upstream {
        Upstream::new(
            &Uri::from_static("http://127.0.0.1:8080"),
            vec![(
                header::AUTHORIZATION,
                HeaderValue::from_static("Basic cmVhZG9ubHk6eA=="),
            )],
        )
        .unwrap()
    }

    static FORWARDED_FOR: HeaderValue = HeaderValue::from_static("192.0.2.7");
    static PUBLIC_HOST: HeaderValue = HeaderValue::from_static("share.example.org");

    fn origin() -> Origin<'static> {
        Origin {
            forwarded_for: &FORWARDED_FOR,
            https: true,
            public_host: &PUBLIC_HOST,
        }
    }

    fn spoofed_request() -> Parts {
        let (parts, ()) = Request::get("/cases/42/video?t=1")
            .header("host", "evil.example")
            .header("cookie", "__Host-casegate=abc; staff_session=s3cr3t")
            .header("authorization", "Bearer stolen")
            .header("x-casegate-case", "43")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-http-method-override", "DELETE")
            .header("connection", "x-keep-me-not")
            .header("x-keep-me-not", "1")
            .header("range", "bytes=0-99")
            .header("accept-language", "de")
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    /// The head `write_guest_head` writes for `parts`, as its request line and fields.
    fn guest_head(
        parts: &Parts,
        pin_language: bool,
        body: &Body,
    ) -> (String, Vec<(String, String)>) {
        let (identity, upstream, origin) = (identity(), upstream(), origin());
        let rewrite = GuestRewrite {
            identity: &identity,
            pin_language,
            upstream: &upstream,
            origin: &origin,
            upgrade: false,
        };
        let mut out = Vec::new();
        write_guest_head(parts, &rewrite, body, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let head = text
            .strip_suffix("\r\n\r\n")
            .expect("a head ends in an empty line");
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap().to_owned();
        let fields = lines
            .map(|line| {
                let (name, value) = line.split_once(": ").expect("name: value");
                (name.to_owned(), value.to_owned())
            })
            .collect();
        (request_line, fields)
    }

    fn values<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        fields
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    #[test]
    fn guest_request_carries_only_what_casegate_vouches_for() {
        let (request_line, fields) = guest_head(&spoofed_request(), true, &empty_body());
        assert_eq!(request_line, "GET /cases/42/video?t=1 HTTP/1.1");
        for (name, value) in [
            ("host", "127.0.0.1:8080"),
            ("x-casegate-case", "42"),
            ("x-casegate-share", "c2hhcmUtaWQtZm9yLXRlc3Q"),
            ("x-casegate-scope", "view"),
            ("x-casegate-lang", "sv-SE"),
            ("accept-language", "sv-SE"),
            ("x-forwarded-for", "192.0.2.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "share.example.org"),
            ("authorization", "Basic cmVhZG9ubHk6eA=="),
            ("range", "bytes=0-99"),
        ] {
            assert_eq!(values(&fields, name), [value], "{name} in {fields:?}");
        }
        for gone in [
            "cookie",
            "x-http-method-override",
            "x-keep-me-not",
            "connection",
            "content-length",
            "transfer-encoding",
        ] {
            assert!(
                values(&fields, gone).is_empty(),
                "{gone} must not reach the upstream"
            );
        }
        assert_eq!(fields.len(), 11, "{fields:?}");
    }

    #[test]
    fn unpinned_scope_keeps_the_clients_language() {
        let (_, fields) = guest_head(&spoofed_request(), false, &empty_body());
        assert_eq!(values(&fields, "accept-language"), ["de"]);
        assert_eq!(values(&fields, "x-casegate-lang"), ["sv-SE"]);
    }

    #[test]
    fn a_guest_body_is_framed_by_casegate_whatever_the_client_wrote() {
        let (mut parts, ()) = Request::post("/cases/42/comments")
            .header("content-length", "5")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap()
            .into_parts();
        let full = || {
            http_body_util::Full::new(bytes::Bytes::from_static(b"hello"))
                .map_err(|never| match never {})
                .boxed()
        };
        let (_, fields) = guest_head(&parts, false, &full());
        assert_eq!(values(&fields, "content-length"), ["5"]);
        assert!(values(&fields, "transfer-encoding").is_empty());
        assert_eq!(fields.last().unwrap().0, "content-length");

        parts.headers.remove("content-length");
        let (_, fields) = guest_head(&parts, false, &full());
        assert_eq!(values(&fields, "content-length"), ["5"]);
    }

    #[test]
    fn the_operators_fixed_headers_replace_the_clients_and_the_pinned_language() {
        let upstream = Upstream::new(
            &Uri::from_static("http://127.0.0.1:8080"),
            vec![
                (
                    header::USER_AGENT,
                    HeaderValue::from_static("casegate-guest"),
                ),
                (header::ACCEPT_LANGUAGE, HeaderValue::from_static("en")),
            ],
        )
        .unwrap();
        let (parts, ()) = Request::get("/cases/42")
            .header("user-agent", "Mozilla/5.0")
            .header("accept-language", "de")
            .body(())
            .unwrap()
            .into_parts();
        let (identity, origin) = (identity(), origin());
        let rewrite = GuestRewrite {
            identity: &identity,
            pin_language: true,
            upstream: &upstream,
            origin: &origin,
            upgrade: false,
        };
        let mut out = Vec::new();
        write_guest_head(&parts, &rewrite, &empty_body(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("\r\nuser-agent: ").count(), 1, "{text}");
        assert!(
            text.contains("\r\nuser-agent: casegate-guest\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("\r\naccept-language: ").count(), 1, "{text}");
        assert!(text.contains("\r\naccept-language: en\r\n"), "{text}");
        assert!(text.contains("\r\nx-casegate-lang: sv-SE\r\n"), "{text}");
    }

    #[test]
    fn an_allowed_websocket_handshake_gets_its_two_switch_fields_back() {
        let (parts, ()) = Request::get("/cases/42/live")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap()
            .into_parts();
        let (identity, upstream, origin) = (identity(), upstream(), origin());
        let mut out = Vec::new();
        let rewrite = GuestRewrite {
            identity: &identity,
            pin_language: false,
            upstream: &upstream,
            origin: &origin,
            upgrade: true,
        };
        write_guest_head(&parts, &rewrite, &empty_body(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.matches("\r\nconnection: upgrade\r\n").count(),
            1,
            "{text}"
        );
        assert_eq!(
            text.matches("\r\nupgrade: websocket\r\n").count(),
            1,
            "{text}"
        );
        assert!(text.contains("\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    }

    #[test]
    fn passthrough_keeps_staff_credentials_but_not_our_cookie_or_claims() {
        let mut parts = spoofed_request();
        rewrite_passthrough_request(&mut parts, "__Host-casegate", &upstream(), &origin());
        let h = &parts.headers;
        assert_eq!(h["cookie"], "staff_session=s3cr3t");
        assert_eq!(h["authorization"], "Bearer stolen");
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert!(!h.contains_key("x-casegate-case"));
        assert!(!h.contains_key("x-http-method-override"));
    }

    /// A request that declared `Content-Length: 0` goes upstream with `content-length: 0`, as it
    /// did through hyper's client: an app server that wants a length on every POST (IIS/HTTP.sys
    /// answers 411 Length Required) must not refuse empty POSTs (logout buttons, "mark as read"
    /// forms). The first version of casegate's own client dropped it (found in review).
    #[test]
    fn a_declared_empty_body_keeps_its_content_length_as_before() {
        let (parts, ()) = Request::post("/cases/42/ack")
            .header("content-length", "0")
            .body(())
            .unwrap()
            .into_parts();
        let (_, fields) = guest_head(&parts, false, &empty_body());
        assert_eq!(values(&fields, "content-length"), ["0"], "{fields:?}");

        let mut parts = parts;
        rewrite_passthrough_request(&mut parts, "__Host-casegate", &upstream(), &origin());
        let mut out = Vec::new();
        crate::proxy::upstream_h1::encode_request_head(&parts, &empty_body(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\ncontent-length: 0\r\n"), "{text}");
    }

    /// An empty body of a method whose content means something is announced as empty (RFC 9110
    /// section 8.6); a GET's absent body is not announced at all.
    #[test]
    fn an_undeclared_empty_post_says_its_length_and_a_get_says_nothing() {
        for (method, expected) in [
            ("POST", &["0"][..]),
            ("PUT", &["0"]),
            ("GET", &[]),
            ("DELETE", &[]),
        ] {
            let (parts, ()) = Request::builder()
                .method(method)
                .uri("/cases/42/x")
                .body(())
                .unwrap()
                .into_parts();
            let (_, fields) = guest_head(&parts, false, &empty_body());
            assert_eq!(values(&fields, "content-length"), expected, "{method}");
            assert!(values(&fields, "transfer-encoding").is_empty(), "{method}");
        }
    }
}
