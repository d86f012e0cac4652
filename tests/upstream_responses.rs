//! What comes back from the upstream: sanitised for guests, streamed untouched where it must be
//! (Range for video seeking), and clear pages when the upstream is down or slow.

mod common;

use common::TestGateway;
use common::upstream::{TestUpstream, video_bytes};

#[tokio::test]
async fn upstream_responses_cannot_set_cookies_open_cors_or_be_cached() {
    let gw = TestGateway::start().await;
    let cookie = gw.open_link("42", "view").await;
    let response = gw
        .get("/cases/42/leaky", &[&format!("Cookie: {cookie}")])
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("set-cookie"), None);
    assert_eq!(response.header("access-control-allow-origin"), None);
    assert_eq!(response.header("access-control-allow-credentials"), None);
    assert_eq!(response.header("cache-control"), Some("private, no-store"));
    assert!(response.headers_named("vary").contains(&"Cookie"));
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(response.text(), "leaky");
}

#[tokio::test]
async fn redirects_to_the_upstream_origin_are_rewritten_to_the_public_one() {
    let gw = TestGateway::start().await;
    let cookie = gw.open_link("42", "view").await;
    let response = gw
        .get("/cases/42/redirect", &[&format!("Cookie: {cookie}")])
        .await;
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some("http://share.test/cases/42/summary")
    );
}

/// A range is read and written by casegate; a whole video over plain HTTP/1 goes from the
/// upstream's socket to the client's in the kernel (`splice(2)`). The client gets the same bytes
/// either way, so only the counter tells which path a body took.
#[tokio::test]
async fn range_requests_pass_through_so_video_can_seek_and_a_whole_video_is_spliced() {
    let gw = TestGateway::start().await;
    let cookie = gw.open_link("42", "view").await;
    let video = video_bytes();
    let response = gw
        .get(
            "/cases/42/video",
            &[&format!("Cookie: {cookie}"), "Range: bytes=1000-1999"],
        )
        .await;
    assert_eq!(response.status, 206);
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes 1000-1999/{}", video.len()).as_str())
    );
    assert_eq!(response.body, video[1000..2000]);
    let received = gw.upstream.take();
    assert_eq!(received[0].header("range"), Some("bytes=1000-1999"));
    let spliced = || gw.metric("casegate_response_bytes_spliced_total");
    assert_eq!(spliced(), 0, "a 1000-byte range is not spliced");

    let full = gw
        .get("/cases/42/video", &[&format!("Cookie: {cookie}")])
        .await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body.len(), video.len());
    assert!(full.body == video, "video bytes differ");
    // What the upstream's first read brought in with the head is written from casegate's buffer
    // (at most a read buffer's worth); the rest is spliced.
    let whole = video.len() as u64;
    assert!(
        spliced() > whole - 1024 * 1024 && spliced() <= whole,
        "{} of {whole} bytes spliced",
        spliced()
    );
}

#[tokio::test]
async fn a_dead_upstream_gives_502_and_a_slow_one_504() {
    // Port 1 (tcpmux): nothing on a test machine listens there, and unlike a port that was free
    // a moment ago, no test running alongside can be given it.
    let dead_url = "http://127.0.0.1:1";
    let text = common::config_text(dead_url, "", "");
    let gw = TestGateway::start_from_text(TestUpstream::start().await, &text).await;
    let cookie = gw.open_link("42", "view").await;
    let response = gw
        .get(
            "/cases/42",
            &[&format!("Cookie: {cookie}"), "Accept: application/json"],
        )
        .await;
    assert_eq!(response.status, 502);
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable");

    let gw = TestGateway::start().await;
    let cookie = gw.open_link("42", "view").await;
    let started = std::time::Instant::now();
    let response = gw
        .get("/cases/42/slow", &[&format!("Cookie: {cookie}")])
        .await;
    assert_eq!(response.status, 504);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2900),
        "did not time out at 1 s"
    );
}

/// The response timeout runs on a timer each kept upstream connection keeps (`lazy_timer`): set
/// for an earlier request, it must neither cut a later one short nor let it run past its own
/// deadline.
#[tokio::test]
async fn a_kept_upstream_connection_times_out_a_slow_answer_at_its_own_deadline() {
    let gw = TestGateway::start().await;
    let cookie = gw.open_link("42", "view").await;
    let fast = gw.get("/cases/42", &[&format!("Cookie: {cookie}")]).await;
    assert_eq!(fast.status, 200);
    // Half the 1 s timeout later: the first request's deadline passes while the next one waits.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let slow = gw
        .get("/cases/42/slow", &[&format!("Cookie: {cookie}")])
        .await;
    let took = started.elapsed();
    assert_eq!(slow.status, 504);
    assert!(
        took >= std::time::Duration::from_millis(950),
        "timed out after {took:?}, before its own 1 s deadline"
    );
    assert!(
        took < std::time::Duration::from_millis(2900),
        "did not time out at 1 s: {took:?}"
    );
    assert_eq!(
        gw.get("/cases/42", &[&format!("Cookie: {cookie}")])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn guest_bodies_over_the_limit_are_refused_before_the_upstream() {
    let gw = TestGateway::start_with("[server.limits]\nmax_body_bytes = 1024", "").await;
    let cookie = gw.open_link("42", "guest").await;
    let small = gw
        .request(
            "POST",
            "/api/cases/42/comments",
            &[&format!("Cookie: {cookie}")],
            b"{\"text\":\"ok\"}",
        )
        .await;
    assert_eq!(small.status, 200);
    let received = gw.upstream.take();
    assert_eq!(received[0].body, b"{\"text\":\"ok\"}");

    let big = vec![b'x'; 4096];
    let response = gw
        .request(
            "POST",
            "/api/cases/42/comments",
            &[&format!("Cookie: {cookie}")],
            &big,
        )
        .await;
    assert_eq!(response.status, 413);
    assert!(gw.upstream.take().is_empty());
}
