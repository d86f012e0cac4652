//! `[server] trusted_proxies` over real sockets: what a client writes in `X-Forwarded-For` counts
//! only when the TCP peer is a trusted proxy; then the client it names is what the verification
//! limits count, what the access log shows, and what the upstream's `X-Forwarded-For` starts
//! with. The test connects from 127.0.0.1, which is trusted or not depending on the config.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::TestGateway;
use common::forms::{cookie_of, form_token};
use common::raw_client::RawResponse;
use common::smtp::TestSmtp;
use common::upstream::TestUpstream;
use serde_json::Value;
use tempfile::TempDir;

/// A gateway whose `checked` scope verifies addresses (one code send per client address per
/// hour), logging every request to `access.log` in `dir`.
struct Setup {
    gw: TestGateway,
    smtp: TestSmtp,
    access_log: PathBuf,
}

async fn setup(dir: &TempDir, trusted_proxies: &str) -> Setup {
    let smtp = TestSmtp::start().await;
    let upstream = TestUpstream::start().await;
    let access_log = dir.path().join("access.log");
    let extra = format!(
        r#"
[scopes.checked]
allow = ["GET /cases/{{case}}"]
verify_email = true

[mail]
smtp = "{}"
from = "Case sharing <noreply@clinic.example>"

[verify]
max_sends_per_address_per_hour = 1

[log]
access = {:?}
"#,
        smtp.url(),
        access_log.display().to_string()
    );
    let server_extra = match trusted_proxies {
        "" => String::new(),
        list => format!("trusted_proxies = [{list}]"),
    };
    let text = common::config_text(&upstream.url(), &server_extra, &extra);
    let gw = TestGateway::start_from_text(upstream, &text).await;
    Setup {
        gw,
        smtp,
        access_log,
    }
}

impl Setup {
    /// Opens a fresh `checked` link to `email` and asks for a code, both with `headers`.
    async fn ask_for_code(&self, email: &str, headers: &[&str]) -> RawResponse {
        let link = common::checked_link(&self.gw.snapshot, email);
        let opened = self.gw.get(&link, headers).await;
        assert_eq!(opened.status, 303, "{}", opened.text());
        let cookie = format!("Cookie: {}", cookie_of(&opened).expect("the guest cookie"));
        let mut with_cookie = vec![cookie.as_str(), "Accept: text/html"];
        with_cookie.extend_from_slice(headers);
        let landing = self.gw.get("/s/verify", &with_cookie).await;
        let csrf = form_token(&landing.text()).expect("a form token");
        with_cookie.push("Content-Type: application/x-www-form-urlencoded");
        self.gw
            .request(
                "POST",
                "/s/verify/send",
                &with_cookie,
                format!("csrf={csrf}").as_bytes(),
            )
            .await
    }

    /// What a guest of case 42 (scope `view`) sending `headers` looks like to the upstream, and
    /// to the access log.
    async fn guest_request(&self, headers: &[&str]) -> (Option<String>, String) {
        let cookie = format!("Cookie: {}", self.gw.open_link("42", "view").await);
        let mut all = vec![cookie.as_str()];
        all.extend_from_slice(headers);
        self.gw.upstream.take();
        let response = self.gw.get("/cases/42", &all).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let received = self.gw.upstream.take();
        assert_eq!(received.len(), 1);
        for spoofable in ["x-real-ip", "forwarded"] {
            assert_eq!(received[0].header(spoofable), None, "{spoofable}");
        }
        assert_eq!(received[0].header_count("x-forwarded-for"), 1);
        let forwarded_for = received[0].header("x-forwarded-for").map(str::to_owned);
        (forwarded_for, self.last_logged_client().await)
    }

    /// The `client` of the access log's newest line for `/cases/42`, once it is written.
    async fn last_logged_client(&self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
            let mut seen = text.lines().filter(|line| line.contains("\"/cases/42\""));
            if let Some(line) = seen.next_back() {
                let value: Value = serde_json::from_str(line).unwrap();
                let client = value["client"].as_str().unwrap().to_owned();
                // Truncate, so the next request's line is the only one.
                std::fs::write(&self.access_log, "").unwrap();
                return client;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no access-log line:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const SPOOFED: [&str; 3] = [
    "X-Forwarded-For: 203.0.113.9",
    "X-Real-IP: 203.0.113.9",
    "Forwarded: for=203.0.113.9",
];

#[tokio::test]
async fn from_an_untrusted_peer_forwarding_headers_are_ignored_everywhere() {
    let dir = TempDir::new().unwrap();
    // Trusted proxies exist, but the test's 127.0.0.1 is not one of them.
    let s = setup(&dir, r#""10.0.0.0/8""#).await;

    let (upstream_sees, logged) = s.guest_request(&SPOOFED).await;
    assert_eq!(upstream_sees.as_deref(), Some("127.0.0.1"));
    assert_eq!(logged, "127.0.0.1");

    // Rate limits count the real peer: a second address claimed in the header is still the
    // same client, and already used its one send this hour.
    let first = s
        .ask_for_code("a@clinic.example", &["X-Forwarded-For: 203.0.113.1"])
        .await;
    assert_eq!(first.status, 303, "{}", first.text());
    s.smtp
        .wait_for_mail("a@clinic.example", Duration::from_secs(10))
        .await;
    let second = s
        .ask_for_code("b@clinic.example", &["X-Forwarded-For: 203.0.113.2"])
        .await;
    assert_eq!(second.status, 429, "{}", second.text());
    s.smtp
        .assert_no_mail("b@clinic.example", Duration::from_millis(300))
        .await;
    s.gw.stop().await;
}

#[tokio::test]
async fn from_a_trusted_peer_the_forwarded_client_is_counted_logged_and_passed_on() {
    let dir = TempDir::new().unwrap();
    let s = setup(&dir, r#""127.0.0.1""#).await;

    let (upstream_sees, logged) = s
        .guest_request(&["X-Forwarded-For: 203.0.113.9", "X-Real-IP: 198.51.100.66"])
        .await;
    assert_eq!(upstream_sees.as_deref(), Some("203.0.113.9, 127.0.0.1"));
    assert_eq!(logged, "203.0.113.9");

    // Without the header the balancer itself is the client.
    let (upstream_sees, logged) = s.guest_request(&[]).await;
    assert_eq!(upstream_sees.as_deref(), Some("127.0.0.1"));
    assert_eq!(logged, "127.0.0.1");

    // Each forwarded client has its own send limit, and keeps it across links.
    for (email, client, status) in [
        ("a@clinic.example", "203.0.113.1", 303),
        ("b@clinic.example", "203.0.113.2", 303),
        ("c@clinic.example", "203.0.113.1", 429),
    ] {
        let header = format!("X-Forwarded-For: {client}");
        let answer = s.ask_for_code(email, &[&header]).await;
        assert_eq!(
            answer.status,
            status,
            "{email} via {client}: {}",
            answer.text()
        );
    }
    s.gw.stop().await;
}

#[tokio::test]
async fn a_chain_of_trusted_hops_is_walked_to_the_first_untrusted_address() {
    let dir = TempDir::new().unwrap();
    let s = setup(&dir, r#""127.0.0.1", "10.0.0.0/8""#).await;
    let cases = [
        // What the client wrote itself (198.51.100.1) is left of the address the edge saw.
        (
            vec!["X-Forwarded-For: 198.51.100.1, 203.0.113.5, 10.1.1.1"],
            "203.0.113.5, 10.1.1.1, 127.0.0.1",
            "203.0.113.5",
        ),
        // Split over two header lines, the same path.
        (
            vec![
                "X-Forwarded-For: 198.51.100.1, 203.0.113.5",
                "X-Forwarded-For: 10.1.1.1",
            ],
            "203.0.113.5, 10.1.1.1, 127.0.0.1",
            "203.0.113.5",
        ),
        // Only trusted hops: the farthest one is the client.
        (
            vec!["X-Forwarded-For: 10.2.2.2, 10.1.1.1"],
            "10.2.2.2, 10.1.1.1, 127.0.0.1",
            "10.2.2.2",
        ),
        (
            vec!["X-Forwarded-For: 2001:db8::5"],
            "2001:db8::5, 127.0.0.1",
            "2001:db8::5",
        ),
    ];
    for (headers, upstream_want, client_want) in cases {
        let (upstream_sees, logged) = s.guest_request(&headers).await;
        assert_eq!(upstream_sees.as_deref(), Some(upstream_want), "{headers:?}");
        assert_eq!(logged, client_want, "{headers:?}");
    }
    s.gw.stop().await;
}

#[tokio::test]
async fn junk_in_the_header_is_never_taken_for_a_client() {
    let dir = TempDir::new().unwrap();
    let s = setup(&dir, r#""127.0.0.1", "10.0.0.0/8""#).await;
    let cases = [
        ("203.0.113.5, unknown", "127.0.0.1", "127.0.0.1"),
        (
            "203.0.113.5, not-an-ip, 10.1.1.1",
            "10.1.1.1, 127.0.0.1",
            "10.1.1.1",
        ),
        ("203.0.113.5:4711", "127.0.0.1", "127.0.0.1"),
        ("203.0.113.5, ", "127.0.0.1", "127.0.0.1"),
        ("<script>", "127.0.0.1", "127.0.0.1"),
    ];
    for (value, upstream_want, client_want) in cases {
        let header = format!("X-Forwarded-For: {value}");
        let (upstream_sees, logged) = s.guest_request(&[&header]).await;
        assert_eq!(upstream_sees.as_deref(), Some(upstream_want), "{value:?}");
        assert_eq!(logged, client_want, "{value:?}");
    }
    s.gw.stop().await;
}
