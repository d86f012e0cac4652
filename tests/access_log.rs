//! The access log over real sockets: one line per request, written to a file, with the share's
//! facts and never a token, cookie or query; a sink that stops taking lines costs dropped lines,
//! never a stalled request.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use casegate::clock::unix_now;
use common::raw_client::cookie_pair;
use common::{TestGateway, counter_value};
use serde_json::Value;
use tempfile::TempDir;

fn log_section(path: &Path, extra: &str) -> String {
    format!(
        "[log]\naccess = {:?}\n{extra}\n",
        path.display().to_string()
    )
}

async fn gateway_logging_to(dir: &TempDir, extra: &str) -> (TestGateway, PathBuf) {
    let path = dir.path().join("access.log");
    let gw = TestGateway::start_with("", &log_section(&path, extra)).await;
    (gw, path)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test]
async fn every_request_gets_one_line_with_its_decision_and_no_secret() {
    let dir = TempDir::new().unwrap();
    let (gw, path) = gateway_logging_to(&dir, "").await;
    let link = gw.mint("42", "view");
    let exchange = gw
        .get(&format!("/s/{}?utm=secret-query", link.token), &[])
        .await;
    assert_eq!(exchange.status, 303);
    let cookie = cookie_pair(&exchange);
    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();
    let allowed = gw
        .get(
            "/cases/42?token=hidden-query",
            &[&format!("Cookie: {cookie}")],
        )
        .await;
    assert_eq!(allowed.status, 200);
    let denied = gw.get("/cases/43", &[&format!("Cookie: {cookie}")]).await;
    assert_eq!(denied.status, 403);
    gw.store()
        .revoke_share(&link.share_id, unix_now())
        .await
        .unwrap();
    let revoked = gw.get("/cases/42", &[&format!("Cookie: {cookie}")]).await;
    assert_eq!(revoked.status, 410);
    gw.stop().await;

    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        link.token.as_str(),
        cookie_value.as_str(),
        "secret-query",
        "hidden-query",
        "utm=",
    ] {
        assert!(!text.contains(secret), "{secret:?} in the log:\n{text}");
    }
    let lines = json_lines(&text);
    assert_eq!(lines.len(), 4, "{text}");
    let summary: Vec<(&str, u64, &str, Option<&str>)> = lines
        .iter()
        .map(|line| {
            (
                line["path"].as_str().unwrap(),
                line["status"].as_u64().unwrap(),
                line["decision"].as_str().unwrap(),
                line["reason"].as_str(),
            )
        })
        .collect();
    // The decision is the word the metrics count it under; the reason is the page's code.
    assert_eq!(
        summary,
        [
            ("/s/", 303, "allowed", None),
            ("/cases/42", 200, "allowed", None),
            ("/cases/43", 403, "denied_route", Some("not_allowed")),
            ("/cases/42", 410, "revoked", Some("revoked_link")),
        ]
    );
    for line in &lines {
        assert_eq!(line["share"], link.share_id.as_str());
        assert_eq!(line["case"], "42");
        assert_eq!(line["scope"], "view");
        assert_eq!(line["client"], "127.0.0.1");
        assert_eq!(line["method"], "GET");
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
        assert!(line["total_ms"].as_f64().unwrap() >= 0.0);
    }
    assert!(
        lines[1]["upstream_ms"].as_f64().is_some(),
        "forwarded: {}",
        lines[1]
    );
    assert!(
        lines[2]["upstream_ms"].is_null(),
        "never forwarded: {}",
        lines[2]
    );
    assert_eq!(
        lines[1]["bytes_out"].as_u64().unwrap(),
        allowed.body.len() as u64
    );
    assert_eq!(
        lines[2]["bytes_out"].as_u64().unwrap(),
        denied.body.len() as u64
    );
}

#[tokio::test]
async fn bytes_in_and_out_match_the_bodies_and_text_format_is_key_value() {
    let dir = TempDir::new().unwrap();
    let (gw, path) = gateway_logging_to(&dir, "format = \"text\"").await;
    let cookie = gw.open_link("42", "guest").await;
    let body = b"a comment of thirty-one bytes!!";
    let posted = gw
        .request(
            "POST",
            "/api/cases/42/comments",
            &[&format!("Cookie: {cookie}"), "Content-Type: text/plain"],
            body,
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.text());
    gw.stop().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("two lines:\n{text}"));
    assert!(line.starts_with("time="), "{line}");
    assert!(
        line.contains(" method=POST path=/api/cases/42/comments status=200 decision=allowed "),
        "{line}"
    );
    assert!(
        line.contains(&format!(" bytes_in={} ", body.len())),
        "{line}"
    );
    assert!(
        line.contains(&format!(" bytes_out={} ", posted.body.len())),
        "{line}"
    );
    assert!(line.contains(" case=42 scope=guest "), "{line}");
}

#[tokio::test]
async fn a_sink_that_takes_nothing_drops_lines_but_never_stalls_a_request() {
    let dir = TempDir::new().unwrap();
    let fifo = dir.path().join("access.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opens the read end (so the gateway's open for writing returns) and never reads.
    let reader_path = fifo.clone();
    let (stop_reader, reader_stopped) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let _held = std::fs::File::open(reader_path).unwrap();
        let _ = reader_stopped.recv();
    });
    let gw = TestGateway::start_with("", &log_section(&fifo, "buffer = 4")).await;
    let cookie = gw.open_link("42", "view").await;
    // A pipe holds 64 KiB: 600 lines of over 250 bytes fill it, then the queue of 4.
    let started = Instant::now();
    for _ in 0..600 {
        let response = gw
            .get(
                &format!("/cases/42/{}", "x".repeat(200)),
                &[&format!("Cookie: {cookie}")],
            )
            .await;
        assert_eq!(response.status, 200);
    }
    let dropped_when_full = gw.access_log_dropped();
    assert!(dropped_when_full > 0, "no line was dropped");
    // Now the writer is stuck on the pipe: every further line is dropped, none waits.
    for _ in 0..20 {
        gw.get("/cases/42", &[&format!("Cookie: {cookie}")]).await;
    }
    assert_eq!(gw.access_log_dropped(), dropped_when_full + 20);
    // Operators see the same count on /metrics.
    let exported = format!(
        "casegate_access_log_dropped_total {}",
        gw.access_log_dropped()
    );
    assert!(gw.scrape().contains(&exported), "{}", gw.scrape());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "requests waited for the log"
    );
    // Stopping gives up on the stuck sink instead of hanging.
    let stopping = Instant::now();
    gw.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(10));
    stop_reader.send(()).unwrap();
    reader.join().unwrap();
}

#[tokio::test]
async fn a_request_whose_client_leaves_before_the_answer_is_logged_as_499_and_counted() {
    let dir = TempDir::new().unwrap();
    let (gw, path) = gateway_logging_to(&dir, "").await;
    let cookie = gw.open_link("42", "view").await;
    gw.upstream.take();
    // The upstream answers /slow after 3 s (and the test gateway gives up after 1 s): the
    // client leaves as soon as the request is upstream.
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let request = format!(
        "GET /cases/42/slow?patient=secret HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw
        .upstream
        .take()
        .iter()
        .any(|received| received.target().starts_with("/cases/42/slow"))
    {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter_value(
        &gw.scrape(),
        "casegate_requests_total{decision=\"client_closed\"}",
    ) == 0
    {
        assert!(
            Instant::now() < deadline,
            "the unanswered request was never counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.stop().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let lines = json_lines(&text);
    let line = lines
        .iter()
        .find(|line| line["status"] == 499)
        .unwrap_or_else(|| panic!("no line for the unanswered request:\n{text}"));
    assert_eq!(line["decision"], "client_closed", "{line}");
    assert_eq!(line["path"], "/cases/42/slow", "{line}");
    assert_eq!(line["case"], "42", "{line}");
    assert_eq!(line["bytes_out"], 0, "{line}");
    assert!(!text.contains("secret"), "{text}");
    assert_eq!(
        lines.len(),
        2,
        "the link and the unanswered request:\n{text}"
    );
}

#[tokio::test]
async fn heads_hyper_refuses_itself_are_logged_and_counted_as_bad_request() {
    let dir = TempDir::new().unwrap();
    let (gw, path) = gateway_logging_to(&dir, "").await;
    // Over the default max_header_bytes (16 KiB), where hyper's own buffer ends too.
    let big = format!(
        "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17_000)
    );
    let too_large = common::raw_client::send_raw(gw.addr, big.as_bytes())
        .await
        .expect("an answer");
    assert_eq!(too_large.status, 431);
    // A request line hyper cannot parse.
    let garbled = common::raw_client::send_raw(gw.addr, b"GET /cases/\x0142 HTTP/1.1\r\n\r\n")
        .await
        .expect("an answer");
    assert_eq!(garbled.status, 400);
    // Counted when hyper's connection ends with the error, just after the client saw the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    let bad_requests = || {
        counter_value(
            &gw.scrape(),
            "casegate_requests_total{decision=\"bad_request\"}",
        )
    };
    while bad_requests() < 2 {
        assert!(Instant::now() < deadline, "counted {}", bad_requests());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(bad_requests(), 2);
    gw.stop().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let lines = json_lines(&text);
    assert_eq!(lines.len(), 2, "{text}");
    // Each is logged as its connection ends, in whichever order the workers get there.
    let mut statuses: Vec<u64> = lines
        .iter()
        .filter_map(|line| line["status"].as_u64())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [400, 431], "{text}");
    for line in &lines {
        assert_eq!(line["decision"], "bad_request", "{line}");
        assert_eq!(line["method"], "-", "{line}");
        assert_eq!(line["path"], "", "{line}");
    }
}

#[tokio::test]
async fn a_token_outside_the_link_prefix_is_not_logged() {
    let dir = TempDir::new().unwrap();
    let (gw, path) = gateway_logging_to(&dir, "").await;
    let link = gw.mint("42", "view");
    for typed in [
        format!("/S/{}", link.token),
        format!("/cases/42/{}", link.token),
    ] {
        let response = gw.get(&typed, &[]).await;
        assert_eq!(response.status, 401, "{typed}");
    }
    // A link with a full stop pasted after it: damaged, logged as every link is, by its prefix.
    let damaged = gw.get(&format!("/s/{}/.", link.token), &[]).await;
    assert_eq!(damaged.status, 403);
    gw.stop().await;

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&link.token), "{text}");
    let paths: Vec<Value> = json_lines(&text)
        .iter()
        .map(|line| line["path"].clone())
        .collect();
    assert_eq!(paths, ["/S/[token]", "/cases/42/[token]", "/s/"], "{text}");
}

/// Who opened which case, from where: not for every user of the machine, whatever the umask.
#[tokio::test]
async fn the_access_log_file_is_readable_by_owner_and_group_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let (gw, path) = gateway_logging_to(&dir, "").await;
    gw.stop().await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[tokio::test]
async fn a_video_moved_socket_to_socket_is_logged_with_every_byte() {
    let dir = TempDir::new().unwrap();
    let (gw, path) = gateway_logging_to(&dir, "").await;
    let cookie = gw.open_link("42", "view").await;
    let cookie_line = format!("Cookie: {cookie}");
    let whole = gw.get("/cases/42/video", &[&cookie_line]).await;
    assert_eq!(whole.status, 200);
    assert!(
        whole.body == common::upstream::video_bytes(),
        "the video differs"
    );
    let range = gw
        .get(
            "/cases/42/video",
            &[&cookie_line, "Range: bytes=100-1500099"],
        )
        .await;
    assert_eq!(range.status, 206);
    assert!(range.body[..] == common::upstream::video_bytes()[100..=1_500_099]);
    gw.stop().await;

    let lines = json_lines(&std::fs::read_to_string(&path).unwrap());
    let sizes: Vec<(u64, u64)> = lines
        .iter()
        .filter(|line| line["path"] == "/cases/42/video")
        .map(|line| {
            (
                line["status"].as_u64().unwrap(),
                line["bytes_out"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [(200, whole.body.len() as u64), (206, 1_500_000)],
        "{lines:?}"
    );
}
