//! `[server] io_uring`, in the real `casegate serve` process: on by default, each worker sends its
//! small writes through its io_uring batch and the log says so; switched off, io_uring is never
//! set up, the log says that instead, and guests are served the same (every write direct).

mod common;

use std::time::Duration;

use common::raw_client::keep_alive_exchange;
use common::serve_process::Serve;
use common::upstream::{TestUpstream, video_bytes};
use tokio::net::TcpStream;

const BATCHED: &str = "socket writes are batched with io_uring";
const REFUSED: &str = "io_uring cannot batch socket writes here";
const SWITCHED_OFF: &str = "io_uring switched off";

async fn start(upstream: &TestUpstream, server_extra: &str) -> Serve {
    let text = common::config_text(&upstream.url(), server_extra, "")
        .replace("response_timeout = \"1s\"", "response_timeout = \"10s\"");
    Serve::start(&text).await
}

/// Small answers and a 3 MiB video on one keep-alive connection: each arrives whole.
async fn guest_is_served(serve: &Serve) {
    let cookie = serve.guest_cookie().await;
    let mut stream = TcpStream::connect(serve.addr).await.unwrap();
    for round in 0..20 {
        let target = format!("/cases/42/page{round}");
        let answer = keep_alive_exchange(&mut stream, &target, &cookie).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(
            answer.text().contains(&format!("GET {target} HTTP/1.1")),
            "{}",
            answer.text()
        );
    }
    let video = keep_alive_exchange(&mut stream, "/cases/42/video", &cookie).await;
    assert_eq!(video.status, 200);
    assert!(video.body == video_bytes(), "the video arrived changed");
}

#[tokio::test]
async fn by_default_workers_batch_their_writes_with_io_uring() {
    let upstream = TestUpstream::start().await;
    let mut serve = start(&upstream, "workers = 2").await;
    // On a kernel that refuses io_uring the other line is logged instead: this test is about
    // the batched path, so it says what to change rather than pass on the direct one.
    let log = serve.wait_for_log("io_uring", Duration::from_secs(5)).await;
    assert!(
        log.contains(BATCHED),
        "expected {BATCHED:?}; io_uring is needed here (Linux 5.6 or later, \
         sysctl kernel.io_uring_disabled = 0, no seccomp filter refusing io_uring_setup): {log}"
    );
    guest_is_served(&serve).await;
    assert!(!serve.log_text().contains(SWITCHED_OFF));
}

#[tokio::test]
async fn switched_off_io_uring_is_never_set_up_and_guests_are_served_the_same() {
    let upstream = TestUpstream::start().await;
    let mut serve = start(&upstream, "workers = 2\nio_uring = false").await;
    serve
        .wait_for_log(SWITCHED_OFF, Duration::from_secs(5))
        .await;
    guest_is_served(&serve).await;
    let log = serve.log_text();
    assert!(
        !log.contains(BATCHED) && !log.contains(REFUSED),
        "no worker should have set up io_uring: {log}"
    );
}
