//! Writing a request head for the upstream, and choosing how its body is framed.
//!
//! casegate decides the framing itself from the body it holds, never from what the client wrote:
//! `Transfer-Encoding` is always ours, and a `Content-Length` is kept only as a promise the body
//! is then held to, byte for byte ([`super::exchange`]).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Uri};
use hyper::body::Body as _;

use super::response_head::parse_length;
use crate::proxy::Body;
use crate::proxy::field_line::write_field_line;

/// How the request body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding: the body's length is not known up front.
    Chunked,
}

/// Why a request cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadContentLength;

impl std::fmt::Display for BadContentLength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request's Content-Length is not one number")
    }
}

impl std::error::Error for BadContentLength {}

/// Writes a request head: the request line, the fields, the framing, the empty line.
pub struct HeadWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl HeadWriter<'_> {
    /// Starts a head with its request line, in origin form (`uri`'s path and query, which the
    /// gateway judged) and HTTP/1.1 whatever the client spoke.
    pub fn start<'a>(out: &'a mut Vec<u8>, method: &Method, uri: &Uri) -> HeadWriter<'a> {
        let target = uri.path_and_query().map_or("/", |target| target.as_str());
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        HeadWriter { out }
    }

    pub fn field(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.field_bytes(name.as_str().as_bytes(), value.as_bytes());
    }

    /// Whole `name: value` lines, written out before (their writer vouches for them).
    pub fn lines(&mut self, lines: &[u8]) {
        self.out.extend_from_slice(lines);
    }

    pub fn field_bytes(&mut self, name: &[u8], value: &[u8]) {
        write_field_line(self.out, name, value);
    }

    /// Announces the body's framing and ends the head.
    pub fn finish(self, framing: RequestFraming) {
        match framing {
            RequestFraming::Empty => {}
            RequestFraming::Length(length) => {
                let mut digits = itoa::Buffer::new();
                write_field_line(
                    self.out,
                    b"content-length",
                    digits.format(length).as_bytes(),
                );
            }
            RequestFraming::Chunked => {
                self.out
                    .extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
        }
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Whether a field is one of the two that frame a body, which casegate always writes itself.
pub fn is_framing(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING
}

/// Chooses how `body` goes out: the client's declared length if it declared one (the body is
/// then held to it, and a declared 0 is still said: servers such as IIS answer 411 to a POST
/// without a length), else what the body knows of itself. An empty body of a method whose
/// content means something (POST, PUT, PATCH) is announced as `Content-Length: 0` too (RFC 9110
/// section 8.6).
pub fn request_framing(
    method: &Method,
    headers: &HeaderMap,
    body: &Body,
) -> Result<RequestFraming, BadContentLength> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        let length = parse_length(first.as_bytes()).ok_or(BadContentLength)?;
        if lengths.any(|other| other != first) {
            return Err(BadContentLength);
        }
        return Ok(RequestFraming::Length(length));
    }
    if body.is_end_stream() {
        let content_means_something =
            *method == Method::POST || *method == Method::PUT || *method == Method::PATCH;
        return Ok(match content_means_something {
            true => RequestFraming::Length(0),
            false => RequestFraming::Empty,
        });
    }
    Ok(match body.size_hint().exact() {
        Some(length) => RequestFraming::Length(length),
        None => RequestFraming::Chunked,
    })
}

/// Writes a request whose fields were already rewritten (passthrough): every field as it
/// stands but the framing ones, then the framing casegate chose.
pub fn encode_request_head(
    parts: &Parts,
    body: &Body,
    out: &mut Vec<u8>,
) -> Result<RequestFraming, BadContentLength> {
    let framing = request_framing(&parts.method, &parts.headers, body)?;
    let mut head = HeadWriter::start(out, &parts.method, &parts.uri);
    for (name, value) in &parts.headers {
        if !is_framing(name) {
            head.field(name, value);
        }
    }
    head.finish(framing);
    Ok(framing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::empty_body;
    use bytes::Bytes;
    use http::Request;
    use http_body_util::{BodyExt, Full};

    fn encode(
        request: Request<()>,
        body: &Body,
    ) -> (Result<RequestFraming, BadContentLength>, String) {
        let (parts, ()) = request.into_parts();
        let mut out = Vec::new();
        let framing = encode_request_head(&parts, body, &mut out);
        (framing, String::from_utf8(out).unwrap())
    }

    fn full(text: &'static str) -> Body {
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed()
    }

    /// A body that does not know its length, as a chunked upload from the client.
    struct Unsized;

    impl hyper::body::Body for Unsized {
        type Data = Bytes;
        type Error = crate::proxy::BoxError;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(None)
        }
    }

    fn streamed() -> Body {
        Unsized.boxed()
    }

    #[test]
    fn a_get_is_a_request_line_and_its_fields() {
        let request = Request::get("/cases/42?x=1")
            .header("host", "app:8080")
            .header("accept", "text/html")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        let (framing, head) = encode(request, &empty_body());
        assert_eq!(framing, Ok(RequestFraming::Empty));
        assert_eq!(
            head,
            "GET /cases/42?x=1 HTTP/1.1\r\nhost: app:8080\r\naccept: text/html\r\n\r\n"
        );
    }

    #[test]
    fn a_body_of_known_length_is_announced_and_an_unknown_one_chunked() {
        let request = Request::post("/c").body(()).unwrap();
        let (framing, head) = encode(request, &full("hello"));
        assert_eq!(framing, Ok(RequestFraming::Length(5)));
        assert!(head.contains("content-length: 5\r\n"), "{head}");

        let request = Request::post("/c").body(()).unwrap();
        let (framing, head) = encode(request, &streamed());
        assert_eq!(framing, Ok(RequestFraming::Chunked));
        assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
    }

    #[test]
    fn a_declared_length_is_kept_once_and_a_doubtful_one_refused() {
        let request = Request::post("/c")
            .header("content-length", "7")
            .header("content-length", "7")
            .body(())
            .unwrap();
        let (framing, head) = encode(request, &streamed());
        assert_eq!(framing, Ok(RequestFraming::Length(7)));
        assert_eq!(head.matches("content-length: 7\r\n").count(), 1, "{head}");
        for lengths in [
            &["7", "8"][..],
            &["+7"],
            &["7 "],
            &[""],
            &["1,1"],
            &["99999999999999999999"],
        ] {
            let mut builder = Request::post("/c");
            for length in lengths {
                builder = builder.header("content-length", *length);
            }
            let (framing, _) = encode(builder.body(()).unwrap(), &streamed());
            assert_eq!(framing, Err(BadContentLength), "{lengths:?}");
        }
    }
}
