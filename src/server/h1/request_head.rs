//! Reading a client's request head, and from it how its body is framed and whether the connection
//! may carry another request (RFC 9112 sections 6 and 9.3).
//!
//! This is casegate's first line against request smuggling, so it reads exactly as hyper's server
//! did (which the black-box suites in tests/request_tricks.rs, tests/adversarial.rs and
//! tests/client_http1.rs hold it to) and refuses what hyper refused: a `Transfer-Encoding` on
//! HTTP/1.0 or without `chunked` last, a `Content-Length` that is not one decimal number, two
//! lengths that disagree, obsolete line folding, bare LF line ends, a NUL or control byte in a
//! field. With both framings the length is dropped and the connection closes after the answer
//! (hyper's rule); the gateway's own framing check (`gateway::framing`) then refuses such a
//! request outright.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Uri, Version};

use super::repeated_request::{ReadRequest, RepeatedRequest, map_room};
use crate::proxy::hop::options_of;
use crate::proxy::upstream_h1::response_head::{
    FieldSpan, KnownNames, field_name, field_ranges, field_spans, parse_length,
};

/// The longest request target read; hyper's limit (its `MAX_URI_LEN`).
const MAX_TARGET_BYTES: usize = (u16::MAX - 1) as usize;

/// How a request's body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body: neither field, or `Content-Length: 0`.
    Empty,
    Length(u64),
    Chunked,
}

/// A whole request head, taken off the front of the read buffer.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: RequestFraming,
    /// Whether the client lets the connection carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before sending its body.
    pub expect_continue: bool,
    /// An HTTP/1.1 `Upgrade` field, or CONNECT: the connection may switch protocols.
    pub wants_upgrade: bool,
    /// The head's size on the wire.
    pub wire_len: usize,
}

/// Why a request head is refused, and with what status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x syntax, or framing casegate will not guess at: 400.
    Malformed(&'static str),
    /// Over the head size or field count limit: 431.
    TooLarge,
    /// A request target over [`MAX_TARGET_BYTES`]: 414.
    TargetTooLong,
}

impl HeadError {
    pub fn status(self) -> http::StatusCode {
        match self {
            HeadError::Malformed(_) => http::StatusCode::BAD_REQUEST,
            HeadError::TooLarge => http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::TargetTooLong => http::StatusCode::URI_TOO_LONG,
        }
    }
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Malformed(what) => write!(f, "malformed request head: {what}"),
            HeadError::TooLarge => f.write_str("request head over its size or field limit"),
            HeadError::TargetTooLong => f.write_str("request target too long"),
        }
    }
}

impl std::error::Error for HeadError {}

/// The limits a head is read under.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The most bytes a head may take; a buffer holding this many without a whole head is refused.
    pub max_bytes: usize,
    /// The most fields in one head.
    pub max_fields: usize,
}

/// The most fields any configuration may allow (`server.limits.max_headers` is at most 1000).
pub const FIELDS_CEILING: usize = 1024;
/// Room for this many fields is made on the stack of every parse: the default limit (64) and
/// hyper's (100) fit. Room for [`FIELDS_CEILING`] is 48 KiB (a parser field and a span each):
/// inlined into the connection's task (PGO build), it made that function's frame 63 KiB, whose
/// pages are probed (one write each, all in one set of the L1 data cache) at every poll. Only a
/// configuration allowing more fields pays for it now (`parse_with_most_room`).
const STACK_FIELDS: usize = 100;
/// What a connection remembers of its last request head for reading the next: the head itself,
/// which the next often repeats but for a few values ([`RepeatedRequest`]), and failing that the
/// field names, recalled one by one.
#[derive(Debug, Default)]
pub struct RequestMemory {
    names: KnownNames,
    last: Option<Box<RepeatedRequest>>,
    /// A head was read on the connection before. Only a connection that carries a second request
    /// remembers a head for the next: one opened for a single request and then kept idle (a
    /// browser's spare connections) holds no copy of it, some 600 bytes a connection.
    read_before: bool,
}

impl RequestMemory {
    #[cfg(test)]
    pub(crate) fn last_request(&self) -> Option<&RepeatedRequest> {
        self.last.as_deref()
    }
}

/// Parses a request head at the front of `buffer`, removing it once whole. `Ok(None)`: not whole
/// yet, read more.
pub fn parse_request_head(
    buffer: &mut BytesMut,
    limits: HeadLimits,
    memory: &mut RequestMemory,
) -> Result<Option<RequestHead>, HeadError> {
    if let Some(head) = memory
        .last
        .as_mut()
        .and_then(|last| last.read(buffer, limits))
    {
        return Ok(Some(head));
    }
    if limits.max_fields <= STACK_FIELDS {
        parse_with_room::<STACK_FIELDS>(buffer, limits, memory)
    } else {
        parse_with_most_room(buffer, limits, memory)
    }
}

/// Out of line, so that its frame is on the stack only while a head is parsed under a limit
/// above [`STACK_FIELDS`], never in the frame of the code that calls the parser.
#[inline(never)]
fn parse_with_most_room(
    buffer: &mut BytesMut,
    limits: HeadLimits,
    memory: &mut RequestMemory,
) -> Result<Option<RequestHead>, HeadError> {
    parse_with_room::<FIELDS_CEILING>(buffer, limits, memory)
}

/// Parses with room for `ROOM` fields (at most `limits.max_fields` are read).
fn parse_with_room<const ROOM: usize>(
    buffer: &mut BytesMut,
    limits: HeadLimits,
    memory: &mut RequestMemory,
) -> Result<Option<RequestHead>, HeadError> {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; ROOM];
    let fields = &mut storage[..limits.max_fields.min(ROOM)];
    let mut parsed = httparse::Request::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buffer,
        fields,
    ) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() >= limits.max_bytes => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(error) => return Err(HeadError::Malformed(malformed(error))),
    };
    if length > limits.max_bytes {
        return Err(HeadError::TooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    if target.len() > MAX_TARGET_BYTES {
        return Err(HeadError::TargetTooLong);
    }
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed("method"))?;
    let is_http_11 = minor == 1;
    // Where each piece sits in the buffer, so that the target and the values can share the
    // head's bytes instead of being copied (hyper does the same).
    let base = buffer.as_ptr() as usize;
    let offset = |text: &[u8]| text.as_ptr() as usize - base;
    let target_span = (offset(target.as_bytes()), target.len());
    let mut storage = [const { MaybeUninit::<FieldSpan>::uninit() }; ROOM];
    let spans = field_spans(&mut storage, parsed.headers, buffer);
    let count = spans.len();
    let head: Bytes = buffer.split_to(length).freeze();
    let target_range = target_span.0..target_span.0 + target_span.1;
    let uri = Uri::from_maybe_shared(head.slice(target_range.clone()))
        .map_err(|_| HeadError::Malformed("request target"))?;

    let mut reading = FramingFields {
        keep_alive: is_http_11,
        wants_upgrade: method == Method::CONNECT,
        ..FramingFields::default()
    };
    let mut headers = HeaderMap::with_capacity(map_room(count));
    // The fields in the map and the values a repeat may change (those not read here), for the
    // next head that repeats this one.
    let remembering = memory.read_before;
    memory.read_before = true;
    let mut kept = Vec::with_capacity(if remembering { count } else { 0 });
    let mut changeable = Vec::new();
    let names = &mut memory.names;
    for (index, span) in spans.iter().enumerate() {
        let (name_range, value_range) = field_ranges(span);
        let (name, ()) = field_name(&head[name_range], index, names, |_| ())
            .map_err(|_| HeadError::Malformed("field name"))?;
        let value = head.slice(value_range.clone());
        // SAFETY: httparse let through only the bytes a `HeaderValue` may hold (HTAB, visible
        // ASCII and SP, obs-text 0x80-0xFF: its HEADER_VALUE_MAP is `http`'s rule), so checking
        // every byte again would be work for nothing. hyper's server does the same.
        let value = unsafe { HeaderValue::from_maybe_shared_unchecked(value) };
        let noted = reading.note(&name, &value, is_http_11, &mut headers)?;
        if remembering && noted == Noted::NotRead {
            changeable.push(value_range.clone());
        }
        if noted != Noted::Dropped {
            if remembering {
                kept.push((name.clone(), value_range));
            }
            headers.append(name, value);
        }
    }
    names.truncate(count);
    let framing = reading.framing()?;
    let request = RequestHead {
        method,
        uri,
        version: if is_http_11 {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        },
        headers,
        framing,
        keep_alive: reading.keep_alive && !(reading.transfer_encoding && reading.length_seen),
        // An HTTP/1.0 client knows no interim answers: its expectation is ignored (RFC 9110
        // section 10.1.1, and hyper).
        expect_continue: reading.expect_continue && is_http_11,
        wants_upgrade: reading.wants_upgrade,
        wire_len: length,
    };
    if remembering {
        let read = ReadRequest {
            bytes: &head,
            head: &request,
            fields: kept,
            changeable: &changeable,
            target: target_range,
        };
        memory.last = RepeatedRequest::remember(read, memory.last.take());
    }
    Ok(Some(request))
}

/// What a parse error is called in the log (never the bytes themselves).
fn malformed(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "field name",
        httparse::Error::HeaderValue => "field value",
        httparse::Error::NewLine => "line ending",
        httparse::Error::Status => "request line",
        httparse::Error::Token => "method or target",
        httparse::Error::TooManyHeaders => "too many fields",
        httparse::Error::Version => "HTTP version",
    }
}

/// The fields that decide framing, reuse, `Expect` and upgrades, noted as the head is read.
#[derive(Default)]
struct FramingFields {
    content_length: Option<u64>,
    /// A `Content-Length` field was present (also when dropped for `Transfer-Encoding`).
    length_seen: bool,
    transfer_encoding: bool,
    chunked_last: bool,
    keep_alive: bool,
    close_seen: bool,
    expect_continue: bool,
    wants_upgrade: bool,
}

/// What [`FramingFields::note`] did with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Noted {
    /// Not one of the fields it reads: kept, and a repeat of the head may change its value.
    NotRead,
    /// Read and kept: a repeat of the head must have the same value.
    Read,
    /// Read and left out of the map (a repeated or overridden length).
    Dropped,
}

impl FramingFields {
    /// Notes one field, and says whether it was one of those read here and whether it is kept.
    fn note(
        &mut self,
        name: &header::HeaderName,
        value: &HeaderValue,
        is_http_11: bool,
        headers: &mut HeaderMap,
    ) -> Result<Noted, HeadError> {
        if *name == header::TRANSFER_ENCODING {
            if !is_http_11 {
                return Err(HeadError::Malformed("Transfer-Encoding on HTTP/1.0"));
            }
            self.transfer_encoding = true;
            // A length seen before is dropped: the chunked framing is the one read.
            if self.content_length.take().is_some() {
                headers.remove(header::CONTENT_LENGTH);
            }
            // Only the last coding of the last line counts: chunked must be the final one.
            self.chunked_last = value
                .as_bytes()
                .rsplit(|&byte| byte == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if *name == header::CONTENT_LENGTH {
            self.length_seen = true;
            if self.transfer_encoding {
                return Ok(Noted::Dropped);
            }
            let length = parse_length(value.as_bytes().trim_ascii())
                .ok_or(HeadError::Malformed("Content-Length"))?;
            match self.content_length {
                Some(seen) if seen != length => {
                    return Err(HeadError::Malformed("two Content-Length values"));
                }
                Some(_) => return Ok(Noted::Dropped),
                None => self.content_length = Some(length),
            }
        } else if *name == header::CONNECTION {
            // Once any line asks to close, a later keep-alive does not undo it.
            if self.close_seen
                || options_of(value).any(|option| option.eq_ignore_ascii_case(b"close"))
            {
                self.close_seen = true;
                self.keep_alive = false;
            } else if !self.keep_alive {
                // HTTP/1.0, which closes unless asked not to.
                self.keep_alive =
                    options_of(value).any(|option| option.eq_ignore_ascii_case(b"keep-alive"));
            }
        } else if *name == header::EXPECT {
            self.expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        } else if *name == header::UPGRADE {
            self.wants_upgrade = is_http_11;
        } else {
            return Ok(Noted::NotRead);
        }
        Ok(Noted::Read)
    }

    fn framing(&self) -> Result<RequestFraming, HeadError> {
        if self.transfer_encoding {
            return match self.chunked_last {
                true => Ok(RequestFraming::Chunked),
                false => Err(HeadError::Malformed(
                    "Transfer-Encoding without chunked last",
                )),
            };
        }
        Ok(match self.content_length {
            None | Some(0) => RequestFraming::Empty,
            Some(length) => RequestFraming::Length(length),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_bytes: 8192,
        max_fields: 100,
    };

    fn parse(text: &str) -> Result<Option<RequestHead>, HeadError> {
        let mut buffer = BytesMut::from(text.as_bytes());
        parse_request_head(&mut buffer, LIMITS, &mut RequestMemory::default())
    }

    /// A GET head with `count` fields, `X-<i>: <i>`.
    fn head_with_fields(count: usize) -> String {
        let fields: String = (0..count).map(|i| format!("X-{i}: {i}\r\n")).collect();
        format!("GET / HTTP/1.1\r\n{fields}\r\n")
    }

    fn head(text: &str) -> RequestHead {
        match parse(text) {
            Ok(Some(head)) => head,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn a_whole_head_is_taken_off_the_buffer_and_the_rest_left() {
        let mut buffer = BytesMut::from(&b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\nGET /next"[..]);
        let head = parse_request_head(&mut buffer, LIMITS, &mut RequestMemory::default())
            .unwrap()
            .unwrap();
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.uri, "/a?b=c");
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.headers["host"], "x");
        assert_eq!(head.framing, RequestFraming::Empty);
        assert!(head.keep_alive);
        assert_eq!(head.wire_len, 32);
        assert_eq!(&buffer[..], b"GET /next");
    }

    #[test]
    fn a_partial_head_asks_for_more_until_the_limit() {
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(9000));
        assert_eq!(parse(&long).unwrap_err(), HeadError::TooLarge);
        assert_eq!(
            parse(&head_with_fields(101)).unwrap_err(),
            HeadError::TooLarge
        );
    }

    /// A limit above the fields made room for on the stack parses on the out-of-line path, to
    /// the limit and no further.
    #[test]
    fn a_limit_above_the_stack_room_is_parsed_to_the_limit() {
        let limits = HeadLimits {
            max_bytes: 64 * 1024,
            max_fields: 500,
        };
        let mut buffer = BytesMut::from(head_with_fields(500).as_bytes());
        let head = parse_request_head(&mut buffer, limits, &mut RequestMemory::default())
            .unwrap()
            .unwrap();
        assert_eq!(head.headers.len(), 500);
        assert_eq!(head.headers["x-499"], "499");
        assert!(buffer.is_empty());
        let mut buffer = BytesMut::from(head_with_fields(501).as_bytes());
        let refused = parse_request_head(&mut buffer, limits, &mut RequestMemory::default());
        assert_eq!(refused.unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn framing_follows_hyper_and_rfc_9112() {
        let cases: [(&str, Option<RequestFraming>, bool); 12] = [
            (
                "Content-Length: 5\r\n",
                Some(RequestFraming::Length(5)),
                true,
            ),
            ("Content-Length: 0\r\n", Some(RequestFraming::Empty), true),
            (
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                Some(RequestFraming::Length(5)),
                true,
            ),
            ("Content-Length: 5\r\nContent-Length: 6\r\n", None, false),
            ("Content-Length: 5, 5\r\n", None, false),
            ("Content-Length: +5\r\n", None, false),
            (
                "Transfer-Encoding: chunked\r\n",
                Some(RequestFraming::Chunked),
                true,
            ),
            (
                "Transfer-Encoding: gzip, Chunked\r\n",
                Some(RequestFraming::Chunked),
                true,
            ),
            ("Transfer-Encoding: chunked, identity\r\n", None, false),
            ("Transfer-Encoding: xchunked\r\n", None, false),
            (
                "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                Some(RequestFraming::Chunked),
                false,
            ),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                Some(RequestFraming::Chunked),
                false,
            ),
        ];
        for (fields, framing, keep_alive) in cases {
            let text = format!("POST / HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
            match (parse(&text), framing) {
                (Ok(Some(head)), Some(framing)) => {
                    assert_eq!(head.framing, framing, "{fields:?}");
                    assert_eq!(head.keep_alive, keep_alive, "{fields:?}");
                    assert!(head.headers.get_all("content-length").iter().count() <= 1);
                    if framing == RequestFraming::Chunked {
                        assert!(head.headers.get("content-length").is_none(), "{fields:?}");
                    }
                }
                (Err(HeadError::Malformed(_)), None) => {}
                (other, _) => panic!("{fields:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn http10_closes_unless_asked_and_may_not_be_chunked() {
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
        assert!(
            !head("GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n")
                .keep_alive
        );
        assert!(matches!(
            parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn expect_and_upgrade_are_noted() {
        let text = "PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
        assert!(head(text).expect_continue);
        let text = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
        assert!(!head(text).expect_continue);
        let text = "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(head(text).wants_upgrade);
        assert!(!head("GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n").wants_upgrade);
        assert!(head("CONNECT x:443 HTTP/1.1\r\n\r\n").wants_upgrade);
    }

    #[test]
    fn what_httparse_refuses_is_a_400() {
        for text in [
            "GET / HTTP/9.9\r\n\r\n",
            "GET\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            "GET / HTTP/1.1\r\nX : y\r\n\r\n",
            "GET / HTTP/1.1\r\nX: y\r\n z\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
        ] {
            let status = parse(text).unwrap_err().status();
            assert_eq!(status, 400, "{text:?}");
        }
    }

    #[test]
    fn names_are_remembered_between_heads_and_bounded_by_the_last() {
        let mut names = RequestMemory::default();
        for text in [
            "GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nX-Long: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
        ] {
            let mut buffer = BytesMut::from(text.as_bytes());
            let head = parse_request_head(&mut buffer, LIMITS, &mut names)
                .unwrap()
                .unwrap();
            assert_eq!(head.headers["accept"], "*/*");
        }
        assert_eq!(names.names.len(), 2);
    }
}
