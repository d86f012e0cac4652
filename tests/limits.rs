//! Every `[server.limits]` key, set small, fires over real sockets: slow heads and silent
//! connections are cut off, oversized heads and bodies are refused before the upstream sees them,
//! and the connection cap turns extra clients away without starving the ones already admitted.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::TestGateway;
use common::pki::TestPki;
use common::raw_client::{RawResponse, parse_response};
use common::upstream::TestUpstream;

/// Generous on purpose: CI shares 2 cores, and a limit that fires late is still a limit that fires.
const MARGIN: Duration = Duration::from_millis(1500);

/// `[server.limits]` with the given keys; every timer not under test is long, so that only the
/// limit under test can explain what the test observes.
fn limits(keys: &str) -> String {
    let mut table = String::from("[server.limits]\n");
    for (key, default) in [
        ("header_read_timeout", "\"10s\""),
        ("tls_handshake_timeout", "\"10s\""),
        ("idle_timeout", "\"10s\""),
    ] {
        if !keys.contains(key) {
            table.push_str(&format!("{key} = {default}\n"));
        }
    }
    table.push_str(keys);
    table
}

/// Reads until the server closes the connection (or resets it) and reports what arrived and when.
/// Panics if the connection is still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Instant) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .unwrap_or_else(|_| panic!("the gateway kept the connection open for {limit:?}"));
    (bytes, Instant::now())
}

/// Sends `request` as is on a fresh connection and parses what came back before the close.
async fn send_and_read_response(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let (bytes, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    parse_response(&bytes)
        .unwrap_or_else(|| panic!("no response in {:?}", String::from_utf8_lossy(&bytes)))
}

async fn guest_get(gw: &TestGateway, cookie: &str) -> (RawResponse, Duration) {
    let started = Instant::now();
    let response = gw.get("/cases/42", &[&format!("Cookie: {cookie}")]).await;
    (response, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_is_cut_off_at_the_header_timeout_while_an_honest_guest_is_served() {
    let gw = TestGateway::start_with(&limits("header_read_timeout = \"1s\"\n"), "").await;
    let cookie = gw.open_link("42", "view").await;
    gw.upstream.take();

    let head = format!("GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\n\r\n");
    let full_send_time = Duration::from_millis(300) * u32::try_from(head.len()).unwrap();
    assert!(
        full_send_time > Duration::from_secs(30),
        "{full_send_time:?}"
    );
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let dribble = tokio::spawn(async move {
        let mut sent = 0;
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        sent
    });

    tokio::time::sleep(Duration::from_millis(400)).await;
    let (response, latency) = guest_get(&gw, &cookie).await;
    assert_eq!(response.status, 200);
    assert!(
        latency < Duration::from_secs(1),
        "an honest guest waited {latency:?}"
    );

    let mut bytes = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1) + MARGIN, async {
        let mut chunk = [0u8; 1024];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the slow head was still being read after {:?}",
        started.elapsed()
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "cut off early: {elapsed:?}"
    );
    // hyper closes without an answer; a 408 would be just as good.
    if let Some(response) = parse_response(&bytes) {
        assert_eq!(response.status, 408);
    }
    let sent = dribble.await.unwrap();
    assert!(sent < 15, "the gateway read {sent} bytes of a slow head");
    let received = gw.upstream.take();
    assert_eq!(
        received.len(),
        1,
        "only the honest request reaches the upstream"
    );
}

#[tokio::test]
async fn a_silent_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let gw = TestGateway::start_with(&limits("idle_timeout = \"1s\"\n"), "").await;
    let cookie = gw.open_link("42", "view").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!("GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();

    let mut first = vec![0u8; 4096];
    let n = stream.read(&mut first).await.unwrap();
    let answered = Instant::now();
    let response = parse_response(&first[..n]).expect("a response on the keep-alive connection");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), None, "kept alive");

    let (rest, closed) = read_until_closed(&mut stream, Duration::from_secs(1) + MARGIN).await;
    assert!(rest.is_empty(), "nothing more was sent: {rest:?}");
    let idle = closed - answered;
    assert!(idle >= Duration::from_millis(900), "closed early: {idle:?}");
}

#[tokio::test]
async fn a_silent_http2_connection_is_closed_at_the_idle_timeout_too() {
    let gw = TestGateway::start_with(&limits("idle_timeout = \"1s\"\n"), "").await;
    let cookie = gw.open_link("42", "view").await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) = common::h2_handshake(tcp).await;
    let request = http::Request::get("http://share.test/cases/42")
        .header("cookie", &cookie)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    let answered = Instant::now();

    let ended = tokio::time::timeout(Duration::from_secs(1) + MARGIN, connection).await;
    assert!(
        ended.is_ok(),
        "an h2 connection with no stream was still open after {:?}",
        answered.elapsed()
    );
    assert!(answered.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_on_a_slow_upstream_is_not_killed_by_the_idle_timer() {
    let upstream = TestUpstream::start().await;
    let text = common::config_text(&upstream.url(), &limits("idle_timeout = \"1s\"\n"), "")
        .replace("response_timeout = \"1s\"", "response_timeout = \"5s\"");
    assert!(text.contains("response_timeout = \"5s\""));
    let gw = TestGateway::start_from_text(upstream, &text).await;
    let cookie = gw.open_link("42", "view").await;

    let started = Instant::now();
    let response = gw
        .get("/cases/42/slow", &[&format!("Cookie: {cookie}")])
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response
            .text()
            .starts_with("upstream saw GET /cases/42/slow")
    );
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn a_request_with_more_header_fields_than_max_headers_is_refused_before_the_upstream() {
    let gw = TestGateway::start_with(&limits("max_headers = 20\n"), "").await;
    let cookie = gw.open_link("42", "view").await;
    gw.upstream.take();

    let within: Vec<String> = (0..10).map(|i| format!("X-Filler-{i}: {i}")).collect();
    let within: Vec<&str> = within.iter().map(String::as_str).collect();
    let cookie_line = format!("Cookie: {cookie}");
    let mut headers = vec![cookie_line.as_str()];
    headers.extend(&within);
    assert_eq!(gw.get("/cases/42", &headers).await.status, 200);
    assert_eq!(gw.upstream.take().len(), 1);

    let over: Vec<String> = (0..40).map(|i| format!("X-Filler-{i}: {i}")).collect();
    let mut headers = vec![cookie_line.as_str()];
    headers.extend(over.iter().map(String::as_str));
    let response = gw.get("/cases/42", &headers).await;
    assert!(
        matches!(response.status, 431 | 400),
        "40 header fields: {}",
        response.status
    );
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn an_http2_request_naming_more_fields_than_max_headers_is_refused_before_the_upstream() {
    // HTTP/2 has no field count of its own; tens of thousands of names would fill the header map
    // that casegate then adds its own headers to.
    let gw = TestGateway::start_with(&limits("max_headers = 20\n"), "").await;
    let cookie = gw.open_link("42", "view").await;
    gw.upstream.take();
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, _connection) = common::h2_handshake(tcp).await;
    let request = |names: usize| {
        let mut builder =
            http::Request::get("http://share.test/cases/42").header("cookie", &cookie);
        for index in 0..names {
            builder = builder.header(format!("x-filler-{index}"), "1");
        }
        builder.body(Empty::<Bytes>::new()).unwrap()
    };

    let within = sender.send_request(request(10)).await.unwrap();
    assert_eq!(within.status(), 200);
    assert_eq!(gw.upstream.take().len(), 1);

    let over = sender.send_request(request(40)).await.unwrap();
    assert_eq!(over.status(), 431);
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn a_head_larger_than_max_header_bytes_is_refused_before_the_upstream() {
    let gw = TestGateway::start_with(&limits("max_header_bytes = 8192\n"), "").await;
    let cookie = gw.open_link("42", "view").await;
    gw.upstream.take();

    let cookie_line = format!("Cookie: {cookie}");
    let modest = format!("X-Note: {}", "a".repeat(2 * 1024));
    let response = gw.get("/cases/42", &[&cookie_line, &modest]).await;
    assert_eq!(response.status, 200);
    assert_eq!(gw.upstream.take().len(), 1);

    let huge = format!("X-Note: {}", "a".repeat(20 * 1024));
    let request = format!(
        "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\n{cookie_line}\r\n{huge}\r\nConnection: close\r\n\r\n"
    );
    let response = send_and_read_response(gw.addr, request.as_bytes()).await;
    assert!(
        matches!(response.status, 431 | 400),
        "a 20 KB header: {}",
        response.status
    );
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn the_connection_over_max_connections_is_closed_unanswered_until_a_slot_frees() {
    let gw = TestGateway::start_with(&limits("max_connections = 4\n"), "").await;
    let cookie = gw.open_link("42", "view").await;
    // The link exchange's connection must be gone before the slots are counted.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Five connections at once. Which one is over the limit depends on which worker accepts
    // first (each has its own SO_REUSEPORT socket), so the test counts rather than picks.
    let mut admitted = Vec::new();
    for _ in 0..5 {
        admitted.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    // Every connection accepted, the one over the limit already closed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let request = format!(
        "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let (mut answered, mut unanswered) = (0, 0);
    for stream in &mut admitted {
        // The write may already fail on the closed one; either way no answer must come back.
        let _ = stream.write_all(request.as_bytes()).await;
        let (bytes, _) = read_until_closed(stream, Duration::from_secs(5)).await;
        if bytes.is_empty() {
            unanswered += 1;
        } else {
            assert_eq!(parse_response(&bytes).map(|r| r.status), Some(200));
            answered += 1;
        }
    }
    assert_eq!(
        (answered, unanswered),
        (4, 1),
        "four connections served, the fifth closed unanswered"
    );

    drop(admitted);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..4 {
        let (response, _) = guest_get(&gw, &cookie).await;
        assert_eq!(response.status, 200);
    }
}

#[tokio::test]
async fn a_tls_client_that_never_says_hello_is_dropped_at_the_handshake_timeout() {
    let pki = TestPki::new();
    let upstream = TestUpstream::start().await;
    let server = format!(
        "{}\n{}",
        limits("tls_handshake_timeout = \"1s\"\n"),
        pki.server_tls_table()
    );
    let text = common::config_text(&upstream.url(), &server, "").replace(
        "public_url = \"http://share.test\"",
        "public_url = \"https://share.test\"",
    );
    let gw = TestGateway::start_from_text(upstream, &text).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let started = Instant::now();
    let (bytes, closed) = read_until_closed(&mut stream, Duration::from_secs(1) + MARGIN).await;
    assert!(bytes.is_empty(), "the gateway spoke first: {bytes:?}");
    let waited = closed - started;
    assert!(
        waited >= Duration::from_millis(900),
        "closed early: {waited:?}"
    );
}

#[tokio::test]
async fn a_chunked_body_over_max_body_bytes_gets_413_and_never_reaches_the_upstream_whole() {
    let gw = TestGateway::start_with(&limits("max_body_bytes = 1024\n"), "").await;
    let cookie = gw.open_link("42", "guest").await;
    gw.upstream.take();

    let chunk = "c".repeat(1000);
    let mut request = format!(
        "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..3 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    // No last chunk: the gateway must answer on the limit, not wait for an end that never comes.
    let response = send_and_read_response(gw.addr, request.as_bytes()).await;
    assert_eq!(response.status, 413, "{}", response.text());

    let received = gw.upstream.take();
    assert!(
        received.iter().all(|r| r.body.len() <= 1024),
        "the upstream received {:?} body bytes",
        received.iter().map(|r| r.body.len()).collect::<Vec<_>>()
    );

    // Under the limit, the same route works.
    let small = format!(
        "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let response = send_and_read_response(gw.addr, small.as_bytes()).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(gw.upstream.take()[0].body.len(), 1000);
}

#[tokio::test]
async fn a_max_header_bytes_below_hypers_minimum_buffer_still_fires() {
    let gw = TestGateway::start_with(&limits("max_header_bytes = 2048\n"), "").await;
    let cookie = gw.open_link("42", "view").await;
    gw.upstream.take();

    let cookie_line = format!("Cookie: {cookie}");
    let modest = format!("X-Note: {}", "a".repeat(512));
    let response = gw.get("/cases/42", &[&cookie_line, &modest]).await;
    assert_eq!(response.status, 200);
    assert_eq!(gw.upstream.take().len(), 1);

    let over = format!("X-Note: {}", "a".repeat(4 * 1024));
    let response = gw.get("/cases/42", &[&cookie_line, &over]).await;
    assert_eq!(response.status, 431, "a 4 KB header under a 2 KB limit");
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_a_byte_is_closed_at_the_header_timeout_not_the_idle_one() {
    let gw = TestGateway::start_with(
        &limits("header_read_timeout = \"1s\"\nidle_timeout = \"30s\"\n"),
        "",
    )
    .await;
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    let opened = Instant::now();
    let (bytes, closed) = read_until_closed(&mut silent, Duration::from_secs(1) + MARGIN).await;
    assert!(bytes.is_empty(), "the gateway answered a silent peer");
    let lived = closed - opened;
    assert!(
        lived >= Duration::from_millis(900),
        "closed too early: {lived:?}"
    );
}
