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
use crate::proxy::hop::options_of;
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

/// Writes the status line and fields of a response to `out`. `exact_length` is the body's size
/// when known.
pub fn encode_response_head(
    status: StatusCode,
    headers: &HeaderMap,
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
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !date_written {
        with_date(|date| write_field(out, b"date", date));
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

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn write_length(out: &mut Vec<u8>, length: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
    out.extend_from_slice(b"\r\n");
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
        let encoded = encode_response_head(status, &headers, exact, asked, &mut out);
        (String::from_utf8(out).unwrap(), encoded)
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
