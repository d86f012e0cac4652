//! Stopping the gateway: the listener closes at once, and a request already in flight still gets
//! its answer.

mod common;

use std::time::{Duration, Instant};

use common::TestGateway;
use common::upstream::TestUpstream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_while_the_gateway_stops() {
    let upstream = TestUpstream::start().await;
    let text = common::config_text(&upstream.url(), "", "")
        .replace("response_timeout = \"1s\"", "response_timeout = \"10s\"");
    let gw = TestGateway::start_from_text(upstream, &text).await;
    let cookie = gw.open_link("42", "view").await;
    let addr = gw.addr;

    // The upstream takes 3 s to answer /slow.
    let slow = tokio::spawn(async move {
        let request = format!(
            "GET /cases/42/slow HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        );
        common::raw_client::send_raw(addr, request.as_bytes()).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    gw.stop().await;
    let response = slow
        .await
        .unwrap()
        .expect("the request in flight was cut off");
    assert_eq!(response.status, 200);
    assert!(
        stopping.elapsed() >= Duration::from_secs(2),
        "stop returned before the request in flight finished"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener still accepts connections after stopping"
    );
}
