//! The worker's upstream connections (src/proxy/pool.rs, src/proxy/client.rs), against a raw
//! upstream that counts its connections: kept connections are reused (after a body, after an
//! answer without one, after concurrent requests), one the upstream closed is never the reason a
//! guest gets an error, one whose body the client abandoned is not reused, `pool_idle_timeout`
//! retires idle ones, and `pool_max_requests` and `pool_max_age` retire busy ones.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::TestGateway;
use common::upstream::TestUpstream;

/// An HTTP/1.1 upstream answering every request `200 ok` (`HEAD` without the body, and
/// [`BIG_PATH`] with [`BIG_BYTES`] of it); with `close_after_each`, it closes the connection after
/// each answer without saying so (the keep-alive race a pool must survive).
struct CountingUpstream {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl CountingUpstream {
    async fn start(close_after_each: bool) -> CountingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (counted, served) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, Arc::clone(&served), close_after_each));
            }
        });
        CountingUpstream {
            url,
            connections,
            requests,
        }
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.connections.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
        )
    }
}

const BIG_PATH: &str = "/cases/42/big";
const BIG_BYTES: usize = 8 << 20;

async fn serve(mut stream: TcpStream, requests: Arc<AtomicUsize>, close_after_each: bool) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head: Vec<u8> = buffer.drain(..end + 4).collect();
            requests.fetch_add(1, Ordering::SeqCst);
            let answer: Vec<u8> = if head.starts_with(b"HEAD ") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n".to_vec()
            } else if head.starts_with(format!("GET {BIG_PATH} ").as_bytes()) {
                let mut big =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG_BYTES}\r\n\r\n").into_bytes();
                big.resize(big.len() + BIG_BYTES, b'v');
                big
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
            };
            if stream.write_all(&answer).await.is_err() || close_after_each {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
}

/// A counting upstream, a gateway in front of it (`upstream_extra` in its `[upstream]`; one
/// worker, so that every request uses the same pool) and a guest's cookie for case 42.
async fn guest_of_counted_upstream(
    close_after_each: bool,
    upstream_extra: &str,
) -> (CountingUpstream, TestGateway, String) {
    let upstream = CountingUpstream::start(close_after_each).await;
    let text = common::config_text(&upstream.url, "workers = 1", "").replace(
        "response_timeout = \"1s\"",
        &format!("response_timeout = \"1s\"\n{upstream_extra}"),
    );
    let gw = TestGateway::start_from_text(TestUpstream::start().await, &text).await;
    let cookie = gw.open_link("42", "view").await;
    (upstream, gw, cookie)
}

async fn guest_gets(gw: &TestGateway, cookie: &str, count: usize) {
    for attempt in 0..count {
        let response = gw.get("/cases/42", &[&format!("Cookie: {cookie}")]).await;
        assert_eq!(
            response.status,
            200,
            "request {attempt}: {}",
            response.text()
        );
    }
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let (upstream, gw, cookie) = guest_of_counted_upstream(false, "").await;
    guest_gets(&gw, &cookie, 5).await;
    assert_eq!(upstream.counts(), (1, 5));
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_used_again() {
    let (upstream, gw, cookie) = guest_of_counted_upstream(true, "").await;
    guest_gets(&gw, &cookie, 5).await;
    assert_eq!(upstream.counts(), (5, 5));
}

#[tokio::test]
async fn an_upstream_connection_idle_past_pool_idle_timeout_is_replaced() {
    let (upstream, gw, cookie) =
        guest_of_counted_upstream(false, "pool_idle_timeout = \"1s\"").await;
    guest_gets(&gw, &cookie, 2).await;
    assert_eq!(upstream.counts(), (1, 2));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    guest_gets(&gw, &cookie, 1).await;
    assert_eq!(upstream.counts(), (2, 3));
}

#[tokio::test]
async fn a_connection_that_carried_pool_max_requests_responses_is_replaced() {
    let (upstream, gw, cookie) = guest_of_counted_upstream(false, "pool_max_requests = 3").await;
    guest_gets(&gw, &cookie, 7).await;
    assert_eq!(
        upstream.counts(),
        (3, 7),
        "three responses on each connection, then a new one"
    );
}

#[tokio::test]
async fn large_bodies_moved_by_splice_count_toward_pool_max_requests() {
    let (upstream, gw, cookie) = guest_of_counted_upstream(false, "pool_max_requests = 2").await;
    for attempt in 0..4 {
        let response = gw.get(BIG_PATH, &[&format!("Cookie: {cookie}")]).await;
        assert_eq!(response.status, 200, "request {attempt}");
        assert_eq!(response.body.len(), BIG_BYTES, "request {attempt}");
    }
    assert_eq!(upstream.counts(), (2, 4));
}

#[tokio::test]
async fn a_busy_connection_older_than_pool_max_age_is_replaced() {
    let (upstream, gw, cookie) = guest_of_counted_upstream(false, "pool_max_age = \"1s\"").await;
    // A request every 200 ms for 2.4 s: never idle long enough for `pool_idle_timeout` (90 s),
    // so only the connection's age retires it.
    for _ in 0..12 {
        guest_gets(&gw, &cookie, 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (connections, requests) = upstream.counts();
    assert_eq!(requests, 12);
    assert!(
        (2..=4).contains(&connections),
        "{connections} upstream connections in 2.4 s with pool_max_age = 1s"
    );
}

#[tokio::test]
async fn answers_without_a_body_give_their_connection_back() {
    let (upstream, gw, cookie) = guest_of_counted_upstream(false, "").await;
    for attempt in 0..5 {
        let response = gw
            .request("HEAD", "/cases/42", &[&format!("Cookie: {cookie}")], b"")
            .await;
        assert_eq!(response.status, 200, "HEAD {attempt}");
    }
    guest_gets(&gw, &cookie, 1).await;
    assert_eq!(upstream.counts(), (1, 6));
}

#[tokio::test]
async fn connections_opened_for_concurrent_requests_are_all_reused() {
    let (upstream, gw, cookie) = guest_of_counted_upstream(false, "").await;
    for round in 0..4 {
        let mut at_once = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (addr, header) = (gw.addr, format!("Cookie: {cookie}"));
            at_once.spawn(async move {
                common::request(addr, "GET", "/cases/42", &[&header], b"")
                    .await
                    .status
            });
        }
        while let Some(status) = at_once.join_next().await {
            assert_eq!(status.unwrap(), 200);
        }
        let (connections, requests) = upstream.counts();
        assert_eq!(requests, 8 * (round + 1));
        assert!(
            connections <= 8,
            "round {round}: {connections} upstream connections for 8 requests at a time"
        );
    }
}

#[tokio::test]
async fn a_connection_whose_body_the_client_abandoned_is_not_reused() {
    let (upstream, gw, cookie) = guest_of_counted_upstream(false, "").await;
    // Reads the head and a little of an 8 MiB body, then hangs up.
    let mut client = TcpStream::connect(gw.addr).await.unwrap();
    let ask = common::raw_client::keep_alive_get(BIG_PATH, &cookie);
    client.write_all(ask.as_bytes()).await.unwrap();
    let mut start = [0u8; 4096];
    let read = client.read(&mut start).await.unwrap();
    assert!(
        start[..read].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&start[..read])
    );
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The next guest gets a whole, fresh answer: not the rest of the abandoned body.
    guest_gets(&gw, &cookie, 3).await;
    assert_eq!(upstream.counts(), (2, 4));
}
