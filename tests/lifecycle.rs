//! Stopping the real `casegate serve` process with signals, as systemd and Ctrl-C do: the first
//! SIGTERM or SIGINT stops accepting and lets requests in flight finish within `[server]
//! shutdown_grace`, then exits 0; a second signal exits at once, non-zero, and says so in the log.

mod common;

use std::time::{Duration, Instant};

use common::raw_client::{RawResponse, send_raw};
use common::serve_process::Serve;
use common::upstream::TestUpstream;
use tokio::task::JoinHandle;

/// The upstream answers `/slow` after 3 s (tests/common/upstream.rs).
const SLOW_UPSTREAM: Duration = Duration::from_secs(3);

/// Starts `casegate serve` in front of `upstream` with extra `[server]` lines; the upstream's
/// slow path is waited on for longer than the common 1 s.
async fn start(upstream: &TestUpstream, server_extra: &str) -> Serve {
    let text = common::config_text(&upstream.url(), server_extra, "[state]\npath = \"state\"")
        .replace("response_timeout = \"1s\"", "response_timeout = \"10s\"");
    Serve::start(&text).await
}

/// Sends `GET /cases/42/slow` and returns once the upstream has it, with the task that
/// awaits its answer.
async fn slow_request_in_flight(
    serve: &Serve,
    upstream: &TestUpstream,
) -> JoinHandle<Option<RawResponse>> {
    let cookie = serve.guest_cookie().await;
    upstream.take();
    let addr = serve.addr;
    let slow = tokio::spawn(async move {
        let request = format!(
            "GET /cases/42/slow HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        );
        send_raw(addr, request.as_bytes()).await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !upstream
        .take()
        .iter()
        .any(|received| received.target() == "/cases/42/slow")
    {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    slow
}

/// The request in flight got no answer: the gateway closed its connection.
async fn assert_cut_off(slow: JoinHandle<Option<RawResponse>>, why: &str) {
    let answer = slow.await.expect("the request task");
    assert!(
        answer.is_none_or(|response| response.status != 200),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_a_request_in_flight_finishes_new_connections_are_refused_and_the_exit_is_0()
{
    let upstream = TestUpstream::start().await;
    let mut serve = start(&upstream, "shutdown_grace = \"20s\"").await;
    assert!(!serve.refuses_connections().await);
    let slow = slow_request_in_flight(&serve, &upstream).await;
    let signalled = Instant::now();

    serve.signal("TERM");
    serve
        .wait_for_log("stopping: no new connections", Duration::from_secs(5))
        .await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while !serve.refuses_connections().await {
        assert!(
            Instant::now() < deadline,
            "new connections still accepted 2 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !slow.is_finished() && serve.child.try_wait().unwrap().is_none(),
        "the listener closed only once the request in flight was over; it must close at once"
    );

    let response = slow
        .await
        .unwrap()
        .expect("the request in flight was cut off");
    assert_eq!(response.status, 200, "{}", response.text());
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    assert!(
        signalled.elapsed() >= SLOW_UPSTREAM - Duration::from_millis(500),
        "exited before the request in flight could have finished"
    );
    serve
        .wait_for_log("stopped gracefully", Duration::ZERO)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_grace_exits_at_once_with_status_1() {
    let upstream = TestUpstream::start().await;
    let mut serve = start(&upstream, "shutdown_grace = \"20s\"").await;
    let slow = slow_request_in_flight(&serve, &upstream).await;
    let signalled = Instant::now();

    serve.signal("TERM");
    serve
        .wait_for_log("stopping: no new connections", Duration::from_secs(5))
        .await;
    serve.signal("INT");
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    assert!(
        signalled.elapsed() < SLOW_UPSTREAM - Duration::from_millis(500),
        "the second signal waited for the request in flight ({:?})",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{}", serve.log_text());
    serve
        .wait_for_log(
            "second stop signal: exiting at once",
            Duration::from_secs(2),
        )
        .await;
    assert_cut_off(slow, "the request in flight was still answered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outlasting_the_grace_is_closed_and_the_exit_is_still_0() {
    let upstream = TestUpstream::start().await;
    let mut serve = start(&upstream, "shutdown_grace = \"1s\"").await;
    let slow = slow_request_in_flight(&serve, &upstream).await;
    let signalled = Instant::now();

    serve.signal("TERM");
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    let stopped_after = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    assert!(
        stopped_after >= Duration::from_millis(900) && stopped_after < SLOW_UPSTREAM,
        "stopped {stopped_after:?} after SIGTERM with a 1 s grace and a 3 s request in flight"
    );
    serve
        .wait_for_log(
            "still open after the shutdown grace",
            Duration::from_secs(2),
        )
        .await;
    assert_cut_off(
        slow,
        "the request was answered although the grace ran out first",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_an_idle_gateway_at_once_with_status_0() {
    let upstream = TestUpstream::start().await;
    let mut serve = start(&upstream, "").await;
    let signalled = Instant::now();
    serve.signal("INT");
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "an idle gateway took {:?} to stop",
        signalled.elapsed()
    );
    serve
        .wait_for_log("signal=\"SIGINT\"", Duration::ZERO)
        .await;
    serve
        .wait_for_log("stopped gracefully", Duration::ZERO)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_workers_sets_the_serving_threads_and_the_default_is_one_per_core() {
    let upstream = TestUpstream::start().await;
    let mut three = start(&upstream, "workers = 3").await;
    // Logged once the worker threads are spawned, which may come after "casegate listening".
    three
        .wait_for_log("workers serving workers=3", Duration::from_secs(5))
        .await;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut default = start(&upstream, "").await;
    default
        .wait_for_log(
            &format!("workers serving workers={cores}"),
            Duration::from_secs(5),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file_and_a_broken_one_keeps_the_gateway_serving() {
    let upstream = TestUpstream::start().await;
    let mut serve = start(&upstream, "").await;
    let cookie = serve.guest_cookie().await;
    let report = format!(
        "GET /reports/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let addr = serve.addr;
    let status_of_report = || async {
        send_raw(addr, report.as_bytes())
            .await
            .expect("an answer")
            .status
    };
    assert_eq!(status_of_report().await, 403);
    let (path, text) = serve.config.clone();
    let with_reports = text.replace(
        r#""GET /static/**"]"#,
        r#""GET /static/**", "GET /reports/{case}"]"#,
    );
    std::fs::write(&path, &with_reports).expect("rewrite the config");

    serve.signal("HUP");
    serve
        .wait_for_log("config reloaded", Duration::from_secs(5))
        .await;
    assert_eq!(status_of_report().await, 200);

    std::fs::write(
        &path,
        with_reports.replace("[upstream]", "[upstream]\nbogus = 1"),
    )
    .expect("break the config");
    serve.signal("HUP");
    serve
        .wait_for_log("config reload failed", Duration::from_secs(5))
        .await;
    serve.wait_for_log("bogus", Duration::ZERO).await;
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "SIGHUP ended casegate"
    );
    assert_eq!(
        status_of_report().await,
        200,
        "the old config stopped serving"
    );
    serve.signal("TERM");
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_log_level() {
    let upstream = TestUpstream::start().await;
    let text = common::config_text(
        &upstream.url(),
        "",
        "[state]\npath = \"state\"\n[log]\nlevel = \"info\"",
    );
    let mut serve = Serve::start_with_rust_log(&text, None).await;
    let no_session = "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n";
    let refusals_logged = |serve: &Serve| serve.log_text().matches("request refused").count();
    let refuse = |addr| async move {
        let answer = send_raw(addr, no_session.as_bytes())
            .await
            .expect("an answer");
        assert_eq!(answer.status, 401);
    };
    refuse(serve.addr).await;
    serve
        .wait_for_log("request refused", Duration::from_secs(5))
        .await;
    let at_info = refusals_logged(&serve);

    let (path, text) = serve.config.clone();
    std::fs::write(&path, text.replace("level = \"info\"", "level = \"warn\"")).unwrap();
    serve.signal("HUP");
    serve
        .wait_for_log("config reloaded", Duration::from_secs(5))
        .await;
    refuse(serve.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        refusals_logged(&serve),
        at_info,
        "an info line at level warn:\n{}",
        serve.log_text()
    );

    std::fs::write(&path, &text).unwrap();
    serve.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while refusals_logged(&serve) == at_info {
        refuse(serve.addr).await;
        assert!(
            std::time::Instant::now() < deadline,
            "info never came back:\n{}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
