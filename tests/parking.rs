//! Parked keep-alive connections (issue 7, idle memory): an HTTP/1 connection idle for a second
//! gives up hyper's buffers and waits holding only its stream. None of that may be visible to the
//! client: the next request on the same connection is served as if nothing happened, a request
//! head paused half-way is still served on its connection, and the limits that close idle connections and the
//! shutdown still apply to a parked one.

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::TestGateway;
use common::raw_client::{keep_alive_exchange, keep_alive_get, read_one_response as read_response};

/// Longer than casegate's park delay (1 s), so the connection is parked when the next request comes.
const PARKED: Duration = Duration::from_millis(1600);

/// A new connection to the gateway, kept alive after one guest GET it answered 200.
async fn answered_once(gw: &TestGateway, cookie: &str) -> TcpStream {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(
        keep_alive_exchange(&mut stream, "/cases/42", cookie)
            .await
            .status,
        200
    );
    stream
}

/// Waits for the gateway to close the connection; how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection in time")
        .expect("read to the end");
    assert!(rest.is_empty(), "nothing is sent on close: {rest:?}");
    started.elapsed()
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_requests_as_if_it_never_left() {
    let gw = TestGateway::start().await;
    let cookie = gw.open_link("42", "view").await;
    gw.upstream.take();
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    for round in 0..3 {
        let target = format!("/cases/42?round={round}");
        let response = keep_alive_exchange(&mut stream, &target, &cookie).await;
        assert_eq!(response.status, 200, "round {round}: {}", response.text());
        assert_eq!(response.header("connection"), None, "round {round}");
        tokio::time::sleep(PARKED).await;
    }
    let received: Vec<String> = gw
        .upstream
        .take()
        .iter()
        .map(|r| r.target().to_owned())
        .collect();
    assert_eq!(
        received,
        [
            "/cases/42?round=0",
            "/cases/42?round=1",
            "/cases/42?round=2"
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_request_head_paused_half_way_is_never_cut_by_parking() {
    let gw = TestGateway::start().await;
    let cookie = gw.open_link("42", "view").await;
    let request = keep_alive_get("/cases/42/notes", &cookie);
    let (first, second) = request.split_at(request.len() / 2);
    // The first request is served, then the next head stops half-way for longer than the park
    // delay: a connection is not parked in the middle of a request (hyper would answer it with
    // `Connection: close`), so the rest completes it on the same connection.
    let mut stream = answered_once(&gw, &cookie).await;
    stream.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(PARKED).await;
    stream.write_all(second.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("connection"), None);
    let last = gw
        .upstream
        .take()
        .pop()
        .expect("the upstream got the request");
    assert_eq!(last.target(), "/cases/42/notes");
    gw.stop().await;
}

#[tokio::test]
async fn a_keep_alive_connection_waiting_for_its_next_request_is_closed_as_the_shutdown_begins() {
    // A grace far longer than the wait allowed below: the close must come from the shutdown's
    // signal reaching the waiting connection, not from the grace running out.
    let gw = TestGateway::start_with("shutdown_grace = \"20s\"", "").await;
    let cookie = gw.open_link("42", "view").await;
    let mut stream = answered_once(&gw, &cookie).await;
    // A connection that has waited for a head before: the wait set up once serves them all.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = keep_alive_exchange(&mut stream, "/cases/42", &cookie).await;
    assert_eq!(again.status, 200);
    // Already waiting for its next head, and not parked yet (that takes a second, and each turn
    // of the wait looks at the shutdown too): closed well before then.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(gw.stop());
    let waited = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(
        waited < Duration::from_millis(500),
        "closed {waited:?} after the shutdown began"
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the gateway stops once its idle connection is closed")
        .unwrap();
}

#[tokio::test]
async fn a_parked_connection_is_still_closed_at_the_idle_timeout_and_on_shutdown() {
    let gw = TestGateway::start_with("", "[server.limits]\nidle_timeout = \"3s\"\n").await;
    let cookie = gw.open_link("42", "view").await;
    let mut stream = answered_once(&gw, &cookie).await;
    // Parked after 1 s, closed by the idle timeout 3 s after the response.
    let waited = closed_within(&mut stream, Duration::from_secs(6)).await;
    assert!(
        waited >= Duration::from_millis(2500),
        "closed after {waited:?}, before the idle timeout"
    );

    let mut stream = answered_once(&gw, &cookie).await;
    tokio::time::sleep(PARKED).await;
    let stopping = tokio::spawn(gw.stop());
    closed_within(&mut stream, Duration::from_secs(2)).await;
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the gateway stops with a parked connection open")
        .unwrap();
}
