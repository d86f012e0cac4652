//! The demo case app over real sockets: pages, JSON, the video with and without ranges, HEAD,
//! the comment API, and shutdown on drop.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use casegate::demo::{DemoAppHandle, spawn_demo_app};
use http::header::{
    ACCEPT_RANGES, ALLOW, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HOST, LOCATION, RANGE,
};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

static VIDEO: &[u8] = include_bytes!("../src/demo/assets/case-demo.webm");

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: http::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("no readable {name} header"))
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

async fn start() -> DemoAppHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    spawn_demo_app(listener).await.expect("start demo app")
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&'static str, &'static str)],
    body: Bytes,
) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "demo.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("request");
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, Method::GET, path, &[], Bytes::new()).await
}

#[tokio::test]
async fn the_case_page_embeds_the_video_and_the_links_a_guest_will_try() {
    let app = start().await;
    let reply = get(app.local_addr(), "/cases/42").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(CONTENT_TYPE), "text/html; charset=utf-8");
    for expected in [
        "<video controls preload=\"metadata\" src=\"/cases/42/video\">",
        "href=\"/cases/42/summary.json\"",
        "href=\"/cases/42/billing\"",
        "href=\"/cases/43\"",
        "action=\"/api/cases/42/comments\"",
    ] {
        assert!(reply.text().contains(expected), "missing {expected}");
    }
}

#[tokio::test]
async fn the_case_page_shows_the_headers_the_gateway_added() {
    let app = start().await;
    let headers = [("x-casegate-share", "s-7f3a"), ("x-casegate-scope", "view")];
    let reply = send(
        app.local_addr(),
        Method::GET,
        "/cases/42",
        &headers,
        Bytes::new(),
    )
    .await;
    assert!(
        reply
            .text()
            .contains("<dt>x-casegate-share</dt><dd>s-7f3a</dd>")
    );
    assert!(
        reply
            .text()
            .contains("<dt>x-casegate-scope</dt><dd>view</dd>")
    );
}

#[tokio::test]
async fn the_other_pages_and_the_summary_are_served() {
    let app = start().await;
    let table = [
        (
            "the other case page",
            "/cases/43",
            "text/html; charset=utf-8",
            "Case 43",
        ),
        (
            "the billing page",
            "/cases/42/billing",
            "text/html; charset=utf-8",
            "Billing for case 42",
        ),
        (
            "the summary",
            "/cases/42/summary.json",
            "application/json",
            "\"case\":\"42\"",
        ),
        (
            "the stylesheet",
            "/static/demo.css",
            "text/css; charset=utf-8",
            "video {",
        ),
    ];
    for (name, path, content_type, needle) in table {
        let reply = get(app.local_addr(), path).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        assert_eq!(reply.header(CONTENT_TYPE), content_type, "{name}");
        assert!(reply.text().contains(needle), "{name}");
    }
}

#[tokio::test]
async fn the_whole_video_is_served_as_webm_with_ranges_advertised() {
    let app = start().await;
    let reply = get(app.local_addr(), "/cases/42/video").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(CONTENT_TYPE), "video/webm");
    assert_eq!(reply.header(ACCEPT_RANGES), "bytes");
    assert_eq!(reply.header(CONTENT_LENGTH), VIDEO.len().to_string());
    assert!(reply.body == VIDEO, "the body is the embedded video");
}

#[tokio::test]
async fn each_single_range_form_gets_206_with_the_right_bytes() {
    let app = start().await;
    let len = VIDEO.len();
    let table = [
        ("a closed range", "bytes=0-99", 0, 99),
        ("an open range", "bytes=1000-", 1000, len - 1),
        ("a suffix range", "bytes=-500", len - 500, len - 1),
        (
            "a range past the end is trimmed",
            "bytes=10-999999999",
            10,
            len - 1,
        ),
    ];
    for (name, range, start, end) in table {
        let headers = [(RANGE.as_str(), range)];
        let reply = send(
            app.local_addr(),
            Method::GET,
            "/cases/42/video",
            &headers,
            Bytes::new(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{name}");
        assert_eq!(
            reply.header(CONTENT_RANGE),
            format!("bytes {start}-{end}/{len}"),
            "{name}"
        );
        assert_eq!(
            reply.header(CONTENT_LENGTH),
            (end - start + 1).to_string(),
            "{name}"
        );
        assert!(reply.body == VIDEO[start..=end], "{name}: wrong bytes");
    }
}

#[tokio::test]
async fn a_range_past_the_end_is_416_with_the_length() {
    let app = start().await;
    let headers = [(RANGE.as_str(), "bytes=99999999-")];
    let reply = send(
        app.local_addr(),
        Method::GET,
        "/cases/42/video",
        &headers,
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        reply.header(CONTENT_RANGE),
        format!("bytes */{}", VIDEO.len())
    );
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn a_multi_range_request_gets_the_whole_video() {
    let app = start().await;
    let headers = [(RANGE.as_str(), "bytes=0-9,20-29")];
    let reply = send(
        app.local_addr(),
        Method::GET,
        "/cases/42/video",
        &headers,
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), VIDEO.len());
}

#[tokio::test]
async fn head_states_the_length_and_sends_no_body() {
    let app = start().await;
    let reply = send(
        app.local_addr(),
        Method::HEAD,
        "/cases/42/video",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(CONTENT_LENGTH), VIDEO.len().to_string());
    assert_eq!(reply.header(CONTENT_TYPE), "video/webm");
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn head_on_the_wire_ends_after_the_headers() {
    // hyper's client would hide stray body bytes; a raw socket shows exactly what was sent.
    let app = start().await;
    let mut stream = TcpStream::connect(app.local_addr()).await.expect("connect");
    stream
        .write_all(b"HEAD /cases/42 HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8(raw).expect("ASCII response");
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("\r\ncontent-length: "),
        "{raw}"
    );
    assert!(
        raw.ends_with("\r\n\r\n"),
        "a body followed the headers: {raw}"
    );
}

#[tokio::test]
async fn a_small_comment_is_created() {
    let app = start().await;
    let body = Bytes::from_static(b"comment=Nice+view+of+the+anatomy");
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let reply = send(
        app.local_addr(),
        Method::POST,
        "/api/cases/42/comments",
        &headers,
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header(CONTENT_TYPE), "application/json");
    assert_eq!(reply.header(LOCATION), "/api/cases/42/comments/1");
    let json: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(json["comment"]["case"], "42");
    assert!(
        !reply.text().contains("anatomy"),
        "the comment is not echoed"
    );
}

#[tokio::test]
async fn an_oversized_comment_is_refused() {
    let app = start().await;
    let body = Bytes::from(vec![b'x'; 8 * 1024]);
    let reply = send(
        app.local_addr(),
        Method::POST,
        "/api/cases/42/comments",
        &[],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn wrong_methods_get_405_and_unknown_paths_404() {
    let app = start().await;
    let table = [
        (
            "PUT on a case page",
            Method::PUT,
            "/cases/42",
            StatusCode::METHOD_NOT_ALLOWED,
            Some("GET, HEAD"),
        ),
        (
            "POST on the video",
            Method::POST,
            "/cases/42/video",
            StatusCode::METHOD_NOT_ALLOWED,
            Some("GET, HEAD"),
        ),
        (
            "GET on the comment API",
            Method::GET,
            "/api/cases/42/comments",
            StatusCode::METHOD_NOT_ALLOWED,
            Some("POST"),
        ),
        (
            "an unknown case",
            Method::GET,
            "/cases/7",
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "an unknown path",
            Method::GET,
            "/admin",
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "a query does not change the route",
            Method::GET,
            "/cases/42?x=1",
            StatusCode::OK,
            None,
        ),
    ];
    for (name, method, path, status, allow) in table {
        let reply = send(app.local_addr(), method, path, &[], Bytes::new()).await;
        assert_eq!(reply.status, status, "{name}");
        assert_eq!(
            reply.headers.get(ALLOW).and_then(|v| v.to_str().ok()),
            allow,
            "{name}"
        );
    }
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let app = start().await;
    let addr = app.local_addr();
    assert_eq!(get(addr, "/cases/42").await.status, StatusCode::OK);
    drop(app);
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "the listener should close once the handle is dropped"
    );
}
