//! Writing a response head for an HTTP/1 client, and from it how the body is framed on the wire.
//!
//! casegate frames every body itself: the `Content-Length`, `Transfer-Encoding` and `Connection`
//! fields of the response (the upstream's, already sanitised, or a page's) never reach the wire
//! as they came. The length is the body's when known, else the declared one, else the body is
//! chunked (HTTP/1.1) or ends at the close (HTTP/1.0), as hyper's server did.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};
use http::{StatusCode, Version};

use crate::clock::unix_now;
use crate::proxy::field_line::write_field_line;
use crate::proxy::hop::options_of;
use crate::proxy::response::GUEST_FIELD_LINES;
use crate::proxy::upstream_h1::PassedFields;
use crate::proxy::upstream_h1::response_head::parse_length;

/// How the body after a response head goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body bytes at all: HEAD, 1xx, 204, 304.
    None,
    Length(u64),
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0 with no length).
    UntilClose,
}

/// What the request decided about its answer.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub head: bool,
    pub version: Version,
    /// The client and casegate both keep the connection open after this exchange, as far as the
    /// request goes.
    pub keep_alive: bool,
}

/// What [`encode_response_head`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    pub framing: ResponseFraming,
    /// The connection stays open after the body (the client was told so).
    pub keep_alive: bool,
}

/// Writes the status line and fields of a response to `out`: those of `headers`, then those
/// an upstream's response passed on as they came (`passed`). `exact_length` is the body's size
/// when known.
pub fn encode_response_head(
    status: StatusCode,
    headers: &HeaderMap,
    passed: Option<&PassedFields>,
    exact_length: Option<u64>,
    asked: Asked,
    out: &mut Vec<u8>,
) -> Encoded {
    let http10 = asked.version == Version::HTTP_10;
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");

    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut keep_alive = asked.keep_alive;
    let mut declared = None;
    let mut date_written = false;
    for (name, value) in headers {
        if *name == header::CONTENT_LENGTH {
            // The first readable one: the sanitised response has one at most.
            declared = declared.or_else(|| parse_length(value.as_bytes().trim_ascii()));
            continue;
        }
        if *name == header::TRANSFER_ENCODING || *name == header::TRAILER {
            continue;
        }
        if *name == header::CONNECTION && !switching {
            keep_alive &= !options_of(value).any(|option| option.eq_ignore_ascii_case(b"close"));
            continue;
        }
        date_written |= *name == header::DATE;
        write_field_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(passed) = passed {
        // None of framing's or the connection's own: the upstream client kept those back.
        passed.write_lines(out);
        date_written |= passed.has_date();
        declared = declared.or(passed.declared_length());
        if passed.is_for_guest() {
            out.extend_from_slice(GUEST_FIELD_LINES);
        }
    }
    if !date_written {
        with_date(|date| write_field_line(out, b"date", date));
    }

    let bodiless = asked.head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless {
        // The answer to HEAD and a 304 say what the body would have been; a 204 has none.
        if status != StatusCode::NO_CONTENT
            && !status.is_informational()
            && let Some(length) = declared.or(exact_length.filter(|&length| length > 0))
        {
            write_length(out, length);
        }
        ResponseFraming::None
    } else if let Some(length) = exact_length.or(declared) {
        write_length(out, length);
        ResponseFraming::Length(length)
    } else if http10 {
        keep_alive = false;
        ResponseFraming::UntilClose
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        ResponseFraming::Chunked
    };
    // HTTP/1.0 closes unless told otherwise, HTTP/1.1 stays open unless told otherwise (hyper
    // said the same).
    if !switching {
        if http10 && keep_alive {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        } else if !http10 && !keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    Encoded {
        framing,
        keep_alive: keep_alive && !switching,
    }
}

fn write_length(out: &mut Vec<u8>, length: u64) {
    write_field_line(
        out,
        b"content-length",
        itoa::Buffer::new().format(length).as_bytes(),
    );
}

/// The size line of one chunk.
pub fn write_chunk_size(out: &mut Vec<u8>, size: usize) {
    use std::io::Write;
    let _ = write!(out, "{size:X}\r\n");
}

thread_local! {
    /// The `Date` value, formatted once a second per worker thread.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

fn with_date(write: impl FnOnce(&[u8])) {
    // The gateway's own clock for whole seconds (the coarse one, a few nanoseconds a reading).
    let second = u64::try_from(unix_now()).unwrap_or(0);
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            cached.1.clear();
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(second);
            cached
                .1
                .extend_from_slice(httpdate::fmt_http_date(time).as_bytes());
            cached.0 = second;
        }
        write(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Asked = Asked {
        head: false,
        version: Version::HTTP_11,
        keep_alive: true,
    };

    fn encode(
        status: u16,
        fields: &[(&str, &str)],
        exact: Option<u64>,
        asked: Asked,
    ) -> (String, Encoded) {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let mut out = Vec::new();
        let status = StatusCode::from_u16(status).unwrap();
        let encoded = encode_response_head(status, &headers, None, exact, asked, &mut out);
        (String::from_utf8(out).unwrap(), encoded)
    }

    /// The upstream head `text` as the upstream client reads it, cleaned for a guest: the parts
    /// of the response the HTTP/1 writer gets (its map and the fields passed on).
    fn guest_answer(text: &str) -> (http::response::Parts, PassedFields) {
        use crate::proxy::response::{PublicOrigin, sanitise_guest_response};
        use crate::proxy::upstream::Upstream;
        use crate::proxy::upstream_h1::response_head::final_head_of;

        let head = final_head_of(text, &http::Method::GET);
        let mut response = http::Response::new(());
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        let (mut parts, ()) = response.into_parts();
        let mut passed = head.passed;
        let upstream = Upstream::new(&http::Uri::from_static("http://127.0.0.1:8080"), vec![])
            .expect("an upstream");
        let public = PublicOrigin {
            scheme: http::uri::Scheme::HTTPS,
            authority: http::uri::Authority::from_static("share.example.org"),
        };
        sanitise_guest_response(&mut parts.headers, Some(&mut passed), &upstream, &public);
        (parts, passed)
    }

    const LEAKY_UPSTREAM: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\
        Set-Cookie: admin=1\r\nSET-COOKIE2: admin=1\r\nAccess-Control-Allow-Origin: *\r\n\
        Cache-Control: public, max-age=3600\r\nReferrer-Policy: unsafe-url\r\n\
        X-Robots-Tag: all\r\nVary: Accept-Encoding\r\nETag: \"v1\"\r\n\
        Location: http://127.0.0.1:8080/cases/42\r\nStrict-Transport-Security: max-age=1\r\n\
        Server: Apache/2.4.6\r\nConnection: keep-alive, X-Internal\r\nX-Internal: secret\r\n\
        Keep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n";

    /// From the upstream's bytes to the guest's: what casegate reads or changes was in the map
    /// where the sanitiser removes it, and nothing it removes comes back by way of the fields
    /// passed on as they came.
    #[test]
    fn a_guest_answer_carries_the_upstream_fields_and_ours_and_nothing_removed() {
        let (parts, passed) = guest_answer(LEAKY_UPSTREAM);
        assert!(passed.is_for_guest());
        let mut out = Vec::new();
        encode_response_head(
            parts.status,
            &parts.headers,
            Some(&passed),
            None,
            KEEP,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        for kept in [
            "Content-Type: text/html",
            "Vary: Accept-Encoding",
            "ETag: \"v1\"",
            "location: https://share.example.org/cases/42",
            // In the map, where the connection replaces it when `[server] hsts` is on.
            "strict-transport-security: max-age=1",
            "cache-control: private, no-store",
            "vary: Cookie",
            "referrer-policy: no-referrer",
            "x-robots-tag: noindex",
            "content-length: 5",
        ] {
            assert_eq!(
                lines.iter().filter(|line| **line == kept).count(),
                1,
                "{kept:?} once in {text}"
            );
        }
        let lower = text.to_ascii_lowercase();
        for gone in [
            "set-cookie",
            "access-control",
            "public, max-age",
            "unsafe-url",
            "x-robots-tag: all",
            "127.0.0.1",
            "apache",
            "keep-alive",
            "x-internal",
            "secret",
        ] {
            assert!(!lower.contains(gone), "{gone:?} in {text}");
        }
    }

    /// The same answer to an HTTP/2 client, which hyper writes from the map alone.
    #[test]
    fn a_guest_answer_moved_into_the_map_is_the_same_answer() {
        let (mut parts, passed) = guest_answer(LEAKY_UPSTREAM);
        passed.move_into(&mut parts.headers);
        let mut fields: Vec<String> = parts
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "cache-control: private, no-store",
                "content-length: 5",
                "content-type: text/html",
                "etag: \"v1\"",
                "location: https://share.example.org/cases/42",
                "referrer-policy: no-referrer",
                "strict-transport-security: max-age=1",
                "vary: Accept-Encoding",
                "vary: Cookie",
                "x-robots-tag: noindex",
            ]
        );
    }

    /// The answer to HEAD says the length the upstream declared, from the fields passed on, and
    /// the upstream's `Date` is the only one.
    #[test]
    fn passed_fields_give_the_declared_length_and_the_date() {
        use crate::proxy::upstream_h1::response_head::final_head_of;

        let head = final_head_of(
            "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Length: 4096\r\n\r\n",
            &http::Method::HEAD,
        );
        let asked = Asked { head: true, ..KEEP };
        let mut out = Vec::new();
        let encoded = encode_response_head(
            head.status,
            &head.headers,
            Some(&head.passed),
            Some(0),
            asked,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\ncontent-length: 4096\r\n\r\n"
        );
        assert_eq!(encoded.framing, ResponseFraming::None);
    }

    #[test]
    fn a_known_length_is_written_and_the_connection_kept() {
        let (text, encoded) = encode(200, &[("content-type", "text/plain")], Some(12), KEEP);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: "));
        assert!(
            text.ends_with("GMT\r\ncontent-length: 12\r\n\r\n"),
            "{text}"
        );
        assert_eq!(encoded.framing, ResponseFraming::Length(12));
        assert!(encoded.keep_alive);
    }

    #[test]
    fn an_unknown_length_is_chunked_on_http11_and_ends_at_the_close_on_http10() {
        let (text, encoded) = encode(200, &[("transfer-encoding", "gzip")], None, KEEP);
        assert!(text.contains("transfer-encoding: chunked\r\n"));
        assert!(!text.contains("gzip"));
        assert_eq!(encoded.framing, ResponseFraming::Chunked);
        let http10 = Asked {
            version: Version::HTTP_10,
            ..KEEP
        };
        let (text, encoded) = encode(200, &[], None, http10);
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(!text.contains("connection"));
        assert_eq!(encoded.framing, ResponseFraming::UntilClose);
        assert!(!encoded.keep_alive);
    }

    #[test]
    fn bodiless_answers_keep_the_declared_length_but_no_body() {
        let head = Asked { head: true, ..KEEP };
        let (text, encoded) = encode(200, &[("content-length", "1024")], Some(0), head);
        assert!(text.contains("content-length: 1024\r\n"));
        assert_eq!(encoded.framing, ResponseFraming::None);
        let (text, _) = encode(204, &[("content-length", "5")], Some(0), KEEP);
        assert!(!text.contains("content-length"));
        let (text, _) = encode(304, &[("content-length", "7")], Some(0), KEEP);
        assert!(text.contains("content-length: 7\r\n"));
    }

    #[test]
    fn close_is_said_when_either_side_asks_for_it() {
        let (text, encoded) = encode(200, &[("connection", "close")], Some(0), KEEP);
        assert_eq!(text.matches("connection").count(), 1);
        assert!(text.contains("connection: close\r\n"));
        assert!(!encoded.keep_alive);
        let closing = Asked {
            keep_alive: false,
            ..KEEP
        };
        let (text, _) = encode(200, &[], Some(0), closing);
        assert!(text.contains("connection: close\r\n"));
        let http10 = Asked {
            version: Version::HTTP_10,
            ..KEEP
        };
        let (text, _) = encode(200, &[], Some(3), http10);
        assert!(text.contains("connection: keep-alive\r\n"));
    }

    #[test]
    fn a_switch_keeps_its_upgrade_fields() {
        let fields = [("connection", "upgrade"), ("upgrade", "websocket")];
        let (text, encoded) = encode(101, &fields, None, KEEP);
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("connection: upgrade\r\nupgrade: websocket\r\n"));
        assert_eq!(encoded.framing, ResponseFraming::None);
    }

    #[test]
    fn chunk_sizes_are_hex() {
        let mut out = Vec::new();
        write_chunk_size(&mut out, 1024);
        assert_eq!(out, b"400\r\n");
    }
}
