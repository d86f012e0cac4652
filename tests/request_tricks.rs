//! Hostile raw requests against the real gateway, as tables: each row is the exact bytes a client
//! sends, the statuses it must read back from the socket (one per request the gateway answers, none
//! when it just closes), and exactly what the upstream must have received.

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;

use common::TestGateway;
use common::rows::{
    CLOSED, Check, Forwarded, GET_42, NOTHING, POST_HELLO, Row, assert_casegate_framing,
    assert_checks, exchange, run_rows,
};

use Check::{Absent, Body, Is};

/// Short header-read timeout, so a row that leaves a request half-sent cannot stall the run.
const LIMITS: &str = "[server.limits]\nheader_read_timeout = \"2s\"\n";

#[tokio::test]
async fn http1_framing_tricks_never_smuggle_a_second_request_upstream() {
    let gw = TestGateway::start_with("", LIMITS).await;
    run_rows(&gw, SMUGGLING).await;
    gw.stop().await;
}

const SMUGGLING: &[Row] = &[
    Row {
        name: "CL and TE together: chunked wins and the declared length is dropped",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "TE before CL: the same",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "CL.TE: a request hidden after the last chunk is never read (the connection closes)",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "TE.CL: a long declared length does not swallow a following request into the body",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "Transfer-Encoding: xchunked is not chunked",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "Transfer-Encoding: chunked, identity does not end in chunked",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a space before the colon of Transfer-Encoding",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a tab before the value is ordinary whitespace: chunked",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding:\tchunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "a vertical tab before chunked",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5\r\nTransfer-Encoding: \x0bchunked\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "two Transfer-Encoding headers, chunked last: identity is no coding casegate reads",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "two Transfer-Encoding headers, chunked first",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "trailers after the last chunk never reach the upstream",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nTrailer: X-Casegate-Case, X-Casegate-Share\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Casegate-Case: 43\r\nX-Casegate-Share: someone-else\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "a chunk size that is not hex",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nz\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a chunk size that overflows 64 bits",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "Expect: 100-continue is answered here and not passed on",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "two different Content-Length values",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "two equal Content-Length values are one length",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        replies: &[200],
        upstream: &[Forwarded {
            line: "POST /api/cases/42/comments HTTP/1.1",
            checks: &[Body("hello"), Is("content-length", "5")],
        }],
    },
    Row {
        name: "Content-Length: +5",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: +5\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "Content-Length: -1",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: -1\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "Content-Length: 0x10",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 0x10\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a Content-Length that overflows 64 bits",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 184467440737095516160\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a huge Content-Length is refused before any byte is read",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 99999999999\r\n\r\nhello",
        replies: &[413],
        upstream: NOTHING,
    },
    Row {
        name: "CL.0: a GET whose body looks like a second request",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nContent-Length: 65\r\nConnection: close\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\nX-Casegate-Case: 43\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a chunked GET whose body looks like a second request",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1a\r\nGET /cases/43 HTTP/1.1\r\n\r\n\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a HEAD with a body",
        raw: "HEAD /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a GET with an explicit zero length is an ordinary GET",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        name: "pipelining: each request is judged on its own",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\n\r\nGET /admin HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\n\r\nGET /cases/42/summary HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[200, 403, 403, 200],
        upstream: &[
            Forwarded {
                line: "GET /cases/42 HTTP/1.1",
                checks: &[],
            },
            Forwarded {
                line: "GET /cases/42/summary HTTP/1.1",
                checks: &[],
            },
        ],
    },
    Row {
        name: "pipelining: a refused first request does not taint an allowed second one",
        raw: "GET /cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\n\r\nGET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403, 200],
        upstream: GET_42,
    },
    Row {
        name: "pipelining: a second request without the cookie does not inherit the session",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\n\r\nGET /cases/42/notes HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        replies: &[200, 401],
        upstream: GET_42,
    },
    Row {
        name: "pipelining after a POST body: the next request is framed by the body's length",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5\r\n\r\nhelloGET /cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nConnection: close\r\n\r\n",
        replies: &[200, 403],
        upstream: POST_HELLO,
    },
    Row {
        name: "bare LF line endings are read as lines and forwarded as CRLF",
        raw: "GET /cases/42 HTTP/1.1\nHost: share.test\nCookie: {V}\nX-Casegate-Case: 43\nConnection: close\n\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        name: "an obs-fold continuation line",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-Note: a\r\n X-Casegate-Case: 43\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "an obs-fold continuation of the Transfer-Encoding header",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\n\tchunked\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a NUL inside a header value",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-Note: a\0b\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a bare CR inside a header value",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-Note: a\rX-Casegate-Case: 43\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a space inside the request target",
        raw: "GET /cases/42 /../43 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "HTTP/1.0 is answered and forwarded as HTTP/1.1",
        raw: "GET /cases/42 HTTP/1.0\r\nHost: share.test\r\nCookie: {V}\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        name: "HTTP/1.0 without Host is still HTTP/1.0",
        raw: "GET /cases/42 HTTP/1.0\r\nCookie: {V}\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        name: "HTTP/1.0 with Transfer-Encoding",
        raw: "POST /api/cases/42/comments HTTP/1.0\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "an HTTP/0.9 request line",
        raw: "GET /cases/42\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "HTTP/2.0 spelled in an HTTP/1 request line",
        raw: "GET /cases/42 HTTP/2.0\r\nHost: share.test\r\nCookie: {V}\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a raw non-ASCII byte in the target",
        raw: "GET /cases/42/\u{e9} HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "the HTTP/2 preface followed by an HTTP/1 request instead of frames",
        raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\n\r\n",
        replies: CLOSED,
        upstream: NOTHING,
    },
    Row {
        name: "a TLS ClientHello on the plain listener",
        raw: "\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "HTTP/1.1 without Host",
        raw: "GET /cases/42 HTTP/1.1\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "two Host headers",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nHost: evil.example\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a Host that is not an authority",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test/cases/43\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a foreign Host is misdirected (421), never forwarded",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: evil.example\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[421],
        upstream: NOTHING,
    },
];

#[tokio::test]
async fn method_tricks_are_judged_by_the_method_on_the_wire() {
    let gw = TestGateway::start_with("", LIMITS).await;
    run_rows(&gw, METHODS).await;
    gw.stop().await;
}

const METHODS: &[Row] = &[
    Row {
        name: "TRACE",
        raw: "TRACE /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "CONNECT in authority-form",
        raw: "CONNECT share.test:443 HTTP/1.1\r\nHost: share.test:443\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "CONNECT to an origin-form path is a method no rule names",
        raw: "CONNECT /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "OPTIONS on the case",
        raw: "OPTIONS /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "PATCH on a view scope",
        raw: "PATCH /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "PUT on a view scope",
        raw: "PUT /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "DELETE on a view scope",
        raw: "DELETE /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "POST of a comment on a view scope",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "a lowercase get is another method",
        raw: "get /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "an unknown method that starts with GET",
        raw: "GETS /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "GET followed by two spaces",
        raw: "GET  /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a tab between method and target",
        raw: "GET\t/cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "HEAD rides on an allowed GET",
        raw: "HEAD /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "HEAD /cases/42 HTTP/1.1",
            checks: &[],
        }],
    },
    Row {
        name: "X-HTTP-Method-Override on an allowed GET passes without the override",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-HTTP-Method-Override: DELETE\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[Absent("x-http-method-override")],
        }],
    },
    Row {
        name: "X-Method-Override on an allowed GET passes without the override",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-Method-Override: PUT\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[Absent("x-method-override")],
        }],
    },
    Row {
        name: "X-HTTP-Method on an allowed GET passes without the override",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-HTTP-Method: DELETE\r\nX-Original-Method: DELETE\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[Absent("x-http-method"), Absent("x-original-method")],
        }],
    },
    Row {
        name: "a _method query parameter, read by Rails or Laravel as the method, is refused",
        raw: "GET /cases/42?_method=DELETE HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "a method override parameter in another letter case is refused too",
        raw: "GET /cases/42?page=2&X-HTTP-Method-Override=PUT HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "a parameter that merely contains 'method' is just query, forwarded byte for byte",
        raw: "GET /cases/42?sort_method=asc HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42?sort_method=asc HTTP/1.1",
            checks: &[],
        }],
    },
    Row {
        name: "an override header does not turn a refused POST into an allowed GET",
        raw: "POST /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-HTTP-Method-Override: GET\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
];

#[tokio::test]
async fn spoofed_identity_and_hop_by_hop_headers_never_reach_the_upstream() {
    let gw = TestGateway::start_with("", LIMITS).await;
    run_rows(&gw, SPOOFING).await;
    gw.stop().await;
}

const SPOOFING: &[Row] = &[
    Row {
        name: "our own identity headers from the client",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-Casegate-Case: 43\r\nX-Casegate-Share: someone-else\r\nX-Casegate-Scope: guest\r\nX-Casegate-Lang: de\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[
                Is("x-casegate-scope", "view"),
                Is("x-casegate-lang", "sv-SE"),
            ],
        }],
    },
    Row {
        name: "mixed-case spellings of our headers",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nx-CASEGATE-case: 43\r\nX-CaseGate-Scope: guest\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[Is("x-casegate-scope", "view")],
        }],
    },
    Row {
        name: "underscore spellings of our headers",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX_Casegate_Case: 43\r\nX-Casegate_Case: 43\r\nX_Forwarded_For: 10.0.0.1\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[
                Absent("x_casegate_case"),
                Absent("x-casegate_case"),
                Absent("x_forwarded_for"),
            ],
        }],
    },
    Row {
        name: "X-Forwarded-For, -Host and -Proto from the client",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Host: intranet.local\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /admin\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[Absent("x-forwarded-port"), Absent("x-forwarded-prefix")],
        }],
    },
    Row {
        name: "Forwarded and X-Real-IP from the client",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nForwarded: for=10.0.0.1;host=intranet.local;proto=https\r\nX-Real-IP: 10.0.0.1\r\nTrue-Client-IP: 10.0.0.1\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[
                Absent("forwarded"),
                Absent("x-real-ip"),
                Absent("true-client-ip"),
            ],
        }],
    },
    Row {
        name: "X-Original-URL and X-Rewrite-URL pointing at another case",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-Original-URL: /cases/43\r\nX-Rewrite-URL: /admin\r\nX-Original-URI: /cases/43\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[
                Absent("x-original-url"),
                Absent("x-rewrite-url"),
                Absent("x-original-uri"),
            ],
        }],
    },
    Row {
        name: "Remote-User and auth-proxy identity headers",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nRemote-User: admin\r\nX-Auth-Request-User: admin\r\nX-Auth-Request-Email: admin@hospital\r\nX-Remote-User: admin\r\nX-Authenticated-User: admin\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[
                Absent("remote-user"),
                Absent("x-auth-request-user"),
                Absent("x-auth-request-email"),
                Absent("x-remote-user"),
                Absent("x-authenticated-user"),
            ],
        }],
    },
    Row {
        name: "the client's Authorization never reaches the upstream",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nAuthorization: Basic YWRtaW46YWRtaW4=\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[Absent("authorization")],
        }],
    },
    Row {
        name: "Connection naming X-Casegate-Case cannot remove ours after injection",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close, X-Casegate-Case, X-Casegate-Share, X-Forwarded-For, Host\r\nX-Casegate-Case: 43\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        name: "Connection naming Cookie neither breaks the session nor leaks cookies",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: staff=s3cr3t; {V}\r\nConnection: Cookie, close\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        name: "Connection naming Content-Length keeps the body framed",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5\r\nConnection: Content-Length, close\r\n\r\nhello",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "Connection naming a harmless header removes it",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: X-Debug, close\r\nX-Debug: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\r\n",
        replies: &[200],
        upstream: &[Forwarded {
            line: "GET /cases/42 HTTP/1.1",
            checks: &[Absent("x-debug")],
        }],
    },
    Row {
        name: "many Cookie headers, ours among them",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: a=1\r\nCookie: staff=s3cr3t\r\nCookie: {V}\r\nCookie: b=2; c=3\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        name: "our cookie twice in one header",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}; {V}\r\nConnection: close\r\n\r\n",
        replies: &[401],
        upstream: NOTHING,
    },
    Row {
        name: "our cookie twice in two headers",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nCookie: {G}\r\nConnection: close\r\n\r\n",
        replies: &[401],
        upstream: NOTHING,
    },
    Row {
        name: "the old cookie name with an empty value next to a valid session is passed over",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: casegate=; {V}\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        // casegate.73475cb4 is the name of case 42's session cookie ({V}'s own).
        name: "the valid session's own name with an empty value next to it is passed over",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: casegate.73475cb4=; {V}\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        name: "a header name with a space cannot pass for ours",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nX-Casegate-Case : 43\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
];

#[tokio::test]
async fn upgrade_attempts_are_refused_before_the_upstream() {
    let gw = TestGateway::start_with("", LIMITS).await;
    run_rows(&gw, UPGRADES).await;
    gw.stop().await;
}

const UPGRADES: &[Row] = &[
    Row {
        name: "a WebSocket upgrade is refused and the connection stays plain HTTP",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403, 200],
        upstream: GET_42,
    },
    Row {
        name: "an h2c upgrade with HTTP2-Settings",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403, 200],
        upstream: GET_42,
    },
    Row {
        name: "an Upgrade header without Connection: Upgrade",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "an upgrade on a route the scope refuses",
        raw: "GET /cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403, 200],
        upstream: GET_42,
    },
    Row {
        name: "an upgrade without a session",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[401, 200],
        upstream: GET_42,
    },
    Row {
        name: "Connection: Upgrade without an Upgrade header is an ordinary request",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: Upgrade, close\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
];

#[tokio::test]
async fn link_endpoint_tricks_only_ever_answer_a_plain_get() {
    let gw = TestGateway::start_with("", LIMITS).await;
    run_rows(&gw, LINKS).await;

    // The token with its first `.` spelled `%2E`: one more spelling of the same bytes.
    let link = gw.link_path("42", "view");
    let encoded = link.replacen('.', "%2E", 1);
    let cases = [
        // Refused by the target grammar; under the link prefix, answered as a damaged link.
        ("an escaped dot in the token", encoded.clone(), 403),
        (
            "an escaped dot in the token, lowercase",
            link.replacen('.', "%2e", 1),
            403,
        ),
        ("a trailing slash after the token", format!("{link}/"), 403),
        (
            "the token in a fragment",
            link.replacen("/s/", "/s/#", 1),
            403,
        ),
    ];
    for (what, target, status) in cases {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n");
        let replies = exchange(gw.addr, request.as_bytes()).await;
        let statuses: Vec<u16> = replies.iter().map(|(status, _)| *status).collect();
        assert_eq!(statuses, [status], "{what}");
        assert!(gw.upstream.take().is_empty(), "{what} reached the upstream");
    }
    gw.stop().await;
}

const LINKS: &[Row] = &[
    Row {
        name: "a plain GET of the link",
        raw: "GET {L} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        replies: &[303],
        upstream: NOTHING,
    },
    Row {
        name: "a query after the token is not part of the token: the link still opens",
        raw: "GET {L}?x=1 HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        replies: &[303],
        upstream: NOTHING,
    },
    Row {
        name: "POST to the link",
        raw: "POST {L} HTTP/1.1\r\nHost: share.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "PUT to the link",
        raw: "PUT {L} HTTP/1.1\r\nHost: share.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "DELETE of the link",
        raw: "DELETE {L} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "a lowercase get of the link",
        raw: "get {L} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "an extra segment after the token makes it another token",
        raw: "GET {L}/extra HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "a double slash before the prefix",
        raw: "GET /{L} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a double slash inside the prefix",
        raw: "GET /s/{L} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        // A target under the link prefix that the grammar refuses is a damaged link.
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "the link with a body that looks like a second request",
        raw: "GET {L} HTTP/1.1\r\nHost: share.test\r\nContent-Length: 35\r\nConnection: close\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: x\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "the link in absolute-form",
        raw: "GET http://share.test{L} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "the link over HTTP/1.0",
        raw: "GET {L} HTTP/1.0\r\nHost: share.test\r\n\r\n",
        replies: &[303],
        upstream: NOTHING,
    },
    Row {
        name: "the link pipelined before a request for another case",
        raw: "GET {L} HTTP/1.1\r\nHost: share.test\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
        replies: &[303, 401],
        upstream: NOTHING,
    },
];

#[tokio::test]
async fn http2_prior_knowledge_on_the_plain_listener_is_judged_the_same_way() {
    let gw = TestGateway::start_with("", LIMITS).await;
    let cookie = gw.open_link("42", "view").await;
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut sender, _connection) = common::h2_handshake(stream).await;

    // (what, path, a spoofed X-Casegate-Case, a body, status)
    let rows: [(&str, &str, Option<&str>, &str, u16); 6] = [
        ("the allowed case", "/cases/42", None, "", 200),
        ("another case", "/cases/43", None, "", 403),
        ("an encoded dot-dot", "/cases/42/%2E%2E/43", None, "", 400),
        (
            "our identity header from the client",
            "/cases/42/notes",
            Some("43"),
            "",
            200,
        ),
        ("a route no rule names", "/admin", None, "", 403),
        (
            "a GET whose DATA frame looks like a second request",
            "/cases/42",
            None,
            "GET /cases/43 HTTP/1.1\r\nHost: share.test\r\n\r\n",
            400,
        ),
    ];
    for (what, path, spoofed_case, body, status) in rows {
        let mut request =
            http::Request::get(format!("http://share.test{path}")).header("cookie", &cookie);
        if let Some(case) = spoofed_case {
            request = request
                .header("x-casegate-case", case)
                .header("x-forwarded-for", "10.0.0.1");
        }
        let body = Full::new(Bytes::from_static(body.as_bytes()));
        let response = sender
            .send_request(request.body(body).expect("request"))
            .await
            .expect("h2 response");
        assert_eq!(response.status(), status, "{what}");
        response.into_body().collect().await.expect("h2 body");
    }

    let received = gw.upstream.take();
    let lines: Vec<&str> = received.iter().map(|r| r.request_line.as_str()).collect();
    assert_eq!(
        lines,
        ["GET /cases/42 HTTP/1.1", "GET /cases/42/notes HTTP/1.1"]
    );
    for request in &received {
        assert_casegate_framing("h2", request, gw.upstream.addr);
        assert_checks("h2", request, &[]);
    }
    gw.stop().await;
}

#[tokio::test]
async fn passthrough_staff_requests_are_held_to_the_same_framing_rules() {
    let upstream = common::upstream::TestUpstream::start().await;
    let text = common::config_text(&upstream.url(), "", LIMITS)
        .replace("passthrough = false", "passthrough = true");
    let gw = TestGateway::start_from_text(upstream, &text).await;
    // (what, raw request, statuses, the one request line the upstream must see, if any)
    let rows: [(&str, &str, &[u16], Option<&str>); 5] = [
        (
            "CL.0: a GET whose body looks like a second request",
            "GET /admin HTTP/1.1\r\nHost: share.test\r\nContent-Length: 43\r\nConnection: close\r\n\r\nGET /admin/delete-all HTTP/1.1\r\nHost: x\r\n\r\n",
            &[400],
            None,
        ),
        (
            "a chunked GET",
            "GET /admin HTTP/1.1\r\nHost: share.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &[400],
            None,
        ),
        (
            "HTTP/1.1 without Host",
            "GET /admin HTTP/1.1\r\nConnection: close\r\n\r\n",
            &[400],
            None,
        ),
        (
            "pipelined staff requests are each forwarded once",
            "GET /admin HTTP/1.1\r\nHost: share.test\r\n\r\nGET /admin/users HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
            &[200, 200],
            Some("GET /admin HTTP/1.1"),
        ),
        (
            "Expect and identity headers are not passed on",
            "POST /admin/notes HTTP/1.1\r\nHost: share.test\r\nExpect: 100-continue\r\nX-Casegate-Case: 42\r\nRemote-User: admin\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            &[200],
            Some("POST /admin/notes HTTP/1.1"),
        ),
    ];
    for (what, raw, statuses, first_line) in rows {
        let replies = exchange(gw.addr, raw.as_bytes()).await;
        let got: Vec<u16> = replies.iter().map(|(status, _)| *status).collect();
        assert_eq!(got, statuses, "{what}");
        let received = gw.upstream.take();
        assert_eq!(
            received.len(),
            statuses.iter().filter(|s| **s == 200).count(),
            "{what}"
        );
        assert_eq!(
            received.first().map(|r| r.request_line.as_str()),
            first_line,
            "{what}"
        );
        for request in &received {
            for absent in [
                "expect",
                "x-casegate-case",
                "remote-user",
                "transfer-encoding",
            ] {
                assert_eq!(
                    request.header(absent),
                    None,
                    "{what}: {absent} reached the upstream"
                );
            }
            assert_eq!(
                request.header("x-forwarded-for"),
                Some("127.0.0.1"),
                "{what}"
            );
        }
    }
    gw.stop().await;
}
