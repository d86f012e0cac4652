//! Metrics and health on the admin listener, over real sockets: counters and histograms move
//! for real guest requests, `/metrics` and the health endpoints answer without a token, and
//! `/readyz` turns 503 when the upstream or the state directory goes away, and back to 200.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use common::raw_client::{RawResponse, send_raw};
use common::upstream::TestUpstream;
use common::{TestGateway, config_text, series_value};

const ADMIN_TOKEN: &str = "metrics-test-admin-token-0123456789abcdef";

/// An upstream the test can take away and bring back on the same port. Answers by path:
/// `.../moved` 302, `.../broken` 503, anything else 200.
struct StoppableUpstream {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl StoppableUpstream {
    async fn start_on(addr: SocketAddr) -> StoppableUpstream {
        let listener = TcpListener::bind(addr).await.expect("bind the upstream");
        let addr = listener.local_addr().expect("upstream address");
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split(' ').nth(1).unwrap_or("/");
                    let status = if path.ends_with("/moved") {
                        "302 Found\r\nLocation: /cases/42"
                    } else if path.ends_with("/broken") {
                        "503 Service Unavailable"
                    } else {
                        "200 OK"
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        StoppableUpstream { addr, task }
    }

    /// Closes the listening socket: new connections are refused.
    async fn stop(self) -> SocketAddr {
        self.task.abort();
        let _ = self.task.await;
        self.addr
    }
}

async fn start_gateway(upstream: &StoppableUpstream) -> TestGateway {
    start_gateway_with(upstream, "").await
}

async fn start_gateway_with(upstream: &StoppableUpstream, server_extra: &str) -> TestGateway {
    let admin = format!(
        r#"
[admin]
listen = "127.0.0.1:0"
[[admin.clients]]
name = "case-app"
token = {{ value = "{ADMIN_TOKEN}" }}
scopes = ["view"]
"#
    );
    let text = config_text(&format!("http://{}", upstream.addr), server_extra, &admin);
    // The harness wants a TestUpstream; this one is never called, the config names ours.
    TestGateway::start_from_text(TestUpstream::start().await, &text).await
}

async fn admin(gateway: &TestGateway, method: &str, target: &str, token: bool) -> RawResponse {
    let addr = gateway.admin_addr().expect("admin listener");
    let authorization = match token {
        true => format!("Authorization: Bearer {ADMIN_TOKEN}\r\n"),
        false => String::new(),
    };
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: admin\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    send_raw(addr, request.as_bytes())
        .await
        .expect("an admin answer")
}

/// The value of one series in a scrape, e.g. `casegate_requests_total{decision="allowed"}`.
fn value(scrape: &str, series: &str) -> f64 {
    series_value(scrape, series)
        .unwrap_or_else(|| panic!("{series} is not in the scrape:\n{scrape}"))
}

async fn scrape(gateway: &TestGateway) -> String {
    let response = admin(gateway, "GET", "/metrics", false).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.text()
}

/// What moved between two scrapes.
fn delta(before: &str, after: &str, series: &str) -> f64 {
    value(after, series) - value(before, series)
}

fn requests(decision: &str) -> String {
    format!("casegate_requests_total{{decision=\"{decision}\"}}")
}

fn upstream(class: &str) -> String {
    format!("casegate_upstream_responses_total{{class=\"{class}\"}}")
}

#[tokio::test]
async fn counters_and_histograms_move_for_real_guest_requests() {
    let upstream_server = StoppableUpstream::start_on("127.0.0.1:0".parse().unwrap()).await;
    let gateway = start_gateway(&upstream_server).await;
    let before = scrape(&gateway).await;

    let link = gateway.mint("42", "view");
    let cookie = gateway.exchange(&format!("/s/{}", link.token)).await;
    let with_cookie = format!("Cookie: {cookie}");
    assert_eq!(gateway.get("/cases/42", &[&with_cookie]).await.status, 200);
    assert_eq!(
        gateway.get("/cases/42/moved", &[&with_cookie]).await.status,
        302
    );
    assert_eq!(
        gateway
            .get("/cases/42/broken", &[&with_cookie])
            .await
            .status,
        503
    );
    assert_eq!(gateway.get("/cases/43", &[&with_cookie]).await.status, 403);
    assert_eq!(gateway.get("/cases/42", &[]).await.status, 401);

    let revoke = admin(
        &gateway,
        "DELETE",
        &format!("/v1/shares/{}", link.share_id),
        true,
    )
    .await;
    assert_eq!(revoke.status, 200, "{}", revoke.text());
    let revoked = gateway.get("/cases/42", &[&with_cookie]).await;
    assert_eq!(revoked.status, 410, "{}", revoked.text());

    let after = scrape(&gateway).await;
    // The exchange and the three forwarded requests, whatever the upstream answered.
    assert_eq!(delta(&before, &after, &requests("allowed")), 4.0);
    assert_eq!(delta(&before, &after, &requests("denied_route")), 1.0);
    assert_eq!(delta(&before, &after, &requests("no_session")), 1.0);
    assert_eq!(delta(&before, &after, &requests("revoked")), 1.0);
    assert_eq!(delta(&before, &after, &requests("bad_request")), 0.0);
    assert_eq!(delta(&before, &after, &upstream("2xx")), 1.0);
    assert_eq!(delta(&before, &after, &upstream("3xx")), 1.0);
    assert_eq!(delta(&before, &after, &upstream("5xx")), 1.0);
    assert_eq!(delta(&before, &after, &upstream("error")), 0.0);
    assert_eq!(delta(&before, &after, "casegate_link_exchanges_total"), 1.0);
    // This upstream closes every connection after its answer: one opened per forwarded request.
    assert_eq!(
        delta(
            &before,
            &after,
            "casegate_upstream_connections_opened_total"
        ),
        3.0
    );
    for histogram in [
        "casegate_request_duration_seconds",
        "casegate_gateway_duration_seconds",
    ] {
        assert_eq!(
            delta(&before, &after, &format!("{histogram}_count")),
            7.0,
            "{histogram}"
        );
        let inf = format!("{histogram}_bucket{{le=\"+Inf\"}}");
        assert_eq!(delta(&before, &after, &inf), 7.0, "{histogram}");
    }
    assert!(
        value(&after, "casegate_gateway_duration_seconds_sum")
            <= value(&after, "casegate_request_duration_seconds_sum"),
        "the gateway's share is part of the whole"
    );
    let write = "casegate_state_writes_total{operation=\"revoke_share\",result=\"ok\"}";
    assert_eq!(delta(&before, &after, write), 1.0);
    assert_eq!(
        delta(
            &before,
            &after,
            "casegate_state_write_duration_seconds_count"
        ),
        1.0
    );
    assert_eq!(value(&after, "casegate_reloads_total{result=\"ok\"}"), 0.0);
    assert_eq!(
        value(&after, "casegate_reloads_total{result=\"failed\"}"),
        0.0
    );
    // Every guest request above was its own closed connection. The client sees the close as
    // the worker's thread ends the connection's task, so the gauge may lag it a little.
    let open = "casegate_open_connections{protocol=\"http1\"}";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut open_now = value(&after, open);
    while open_now != 0.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        open_now = value(&scrape(&gateway).await, open);
    }
    assert_eq!(open_now, 0.0);

    // The upstream goes away: an error, counted with the whole duration but no gateway share.
    upstream_server.stop().await;
    let fresh = gateway.open_link("42", "view").await;
    let down = gateway
        .get("/cases/42", &[&format!("Cookie: {fresh}")])
        .await;
    assert_eq!(down.status, 502, "{}", down.text());
    let last = scrape(&gateway).await;
    assert_eq!(delta(&after, &last, &upstream("error")), 1.0);
    assert_eq!(delta(&after, &last, &requests("upstream_error")), 1.0);
    assert_eq!(
        delta(&after, &last, "casegate_request_duration_seconds_count"),
        2.0
    );
    assert_eq!(
        delta(&after, &last, "casegate_gateway_duration_seconds_count"),
        1.0
    );
    gateway.stop().await;
}

/// Each worker's open connections, as the scrape says them, in worker order.
fn worker_connections(scrape: &str) -> Vec<f64> {
    (0..)
        .map_while(|worker| {
            series_value(
                scrape,
                &format!("casegate_worker_connections{{worker=\"{worker}\"}}"),
            )
        })
        .collect()
}

/// Scrapes until the workers' connections add up to `total` (they are counted as each worker
/// takes its connection, a moment after the client's connect returns).
async fn workers_when_they_serve(gateway: &TestGateway, total: f64) -> Vec<f64> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let workers = worker_connections(&scrape(gateway).await);
        if workers.iter().sum::<f64>() == total || tokio::time::Instant::now() > give_up {
            return workers;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The kernel spreads connections over the workers' sockets by a hash of their addresses,
/// blind to how many each worker serves; casegate evens them out, and says per worker how many
/// it serves. Without the hand-over, 64 connections split more than 2 apart about seven times
/// in ten.
#[tokio::test]
async fn connections_are_spread_evenly_over_the_workers() {
    let upstream_server = StoppableUpstream::start_on("127.0.0.1:0".parse().unwrap()).await;
    let gateway = start_gateway_with(&upstream_server, "workers = 2").await;
    assert_eq!(
        worker_connections(&scrape(&gateway).await),
        [0.0, 0.0],
        "one series per worker, none open yet"
    );
    let mut open = Vec::new();
    for _ in 0..64 {
        open.push(
            tokio::net::TcpStream::connect(gateway.addr)
                .await
                .expect("connect"),
        );
    }
    let workers = workers_when_they_serve(&gateway, 64.0).await;
    assert_eq!(workers.iter().sum::<f64>(), 64.0, "{workers:?}");
    assert!((workers[0] - workers[1]).abs() <= 2.0, "{workers:?}");
    // A connection handed over is served: a guest request on each answers.
    let link = gateway.mint("42", "view");
    let cookie = gateway.exchange(&format!("/s/{}", link.token)).await;
    for stream in &mut open {
        let request =
            format!("GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).await.expect("an answer");
        assert_eq!(&answer, b"HTTP/1.1 200");
    }
    drop(open);
    assert_eq!(workers_when_they_serve(&gateway, 0.0).await, [0.0, 0.0]);
}

#[tokio::test]
async fn metrics_and_health_need_no_token_but_the_api_still_does() {
    let upstream_server = StoppableUpstream::start_on("127.0.0.1:0".parse().unwrap()).await;
    let gateway = start_gateway(&upstream_server).await;
    let health = admin(&gateway, "GET", "/healthz", false).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.text(), r#"{"status":"ok"}"#);
    let scraped = scrape(&gateway).await;
    // Which casegate answers: the version, how it was built and from which commit.
    let build_info = format!(
        "casegate_build_info{{version=\"{}\",build=\"{}\",commit=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        casegate::build_info::BUILD,
        casegate::build_info::COMMIT.unwrap_or("unknown"),
    );
    assert_eq!(value(&scraped, &build_info), 1.0);
    assert_eq!(admin(&gateway, "POST", "/metrics", false).await.status, 405);
    assert_eq!(
        admin(&gateway, "GET", "/v1/shares", false).await.status,
        401
    );
    gateway.stop().await;
}

async fn ready(gateway: &TestGateway) -> (u16, serde_json::Value) {
    let response = admin(gateway, "GET", "/readyz", false).await;
    let json = serde_json::from_slice(&response.body).expect("a JSON answer");
    (response.status, json)
}

/// Waits out the readiness cache, so the next answer is a fresh probe.
async fn after_the_cache() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[tokio::test]
async fn readyz_turns_503_when_the_upstream_or_the_state_directory_goes_away() {
    let upstream_server = StoppableUpstream::start_on("127.0.0.1:0".parse().unwrap()).await;
    let gateway = start_gateway(&upstream_server).await;
    let (status, json) = ready(&gateway).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["status"], "ok");

    let addr = upstream_server.stop().await;
    after_the_cache().await;
    let (status, json) = ready(&gateway).await;
    assert_eq!(status, 503, "{json}");
    assert_eq!(json["checks"]["upstream"]["ok"], false);
    assert!(
        json["checks"]["upstream"]["problem"]
            .as_str()
            .unwrap()
            .contains("upstream"),
        "{json}"
    );
    assert_eq!(json["checks"]["state"]["ok"], true, "{json}");

    let upstream_server = StoppableUpstream::start_on(addr).await;
    after_the_cache().await;
    assert_eq!(ready(&gateway).await.0, 200);

    // The state directory is moved away (as an unmounted or deleted volume would be).
    let state = gateway.state_dir().to_path_buf();
    let moved = state.with_extension("moved");
    std::fs::rename(&state, &moved).expect("move the state directory away");
    after_the_cache().await;
    let (status, json) = ready(&gateway).await;
    std::fs::rename(&moved, &state).expect("put the state directory back");
    assert_eq!(status, 503, "{json}");
    assert_eq!(json["checks"]["state"]["ok"], false, "{json}");
    assert!(
        json["checks"]["state"]["problem"]
            .as_str()
            .unwrap()
            .contains("not writable"),
        "{json}"
    );
    assert_eq!(json["checks"]["upstream"]["ok"], true, "{json}");

    after_the_cache().await;
    let (status, json) = ready(&gateway).await;
    assert_eq!(status, 200, "{json}");
    assert!(
        std::fs::read_dir(&state).unwrap().all(|entry| !entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("probe")),
        "the probe file is removed"
    );
    gateway.stop().await;
    upstream_server.stop().await;
}
