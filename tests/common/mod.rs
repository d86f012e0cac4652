//! Shared test harness: a real upstream, the real gateway on port 0 with its own temporary state
//! directory, and helpers to mint links and cookies exactly as the gateway does.
#![allow(dead_code)]

pub mod forms;
pub mod h2_frames;
pub mod log_capture;
pub mod pki;
pub mod raw_client;
pub mod redis_server;
pub mod rows;
pub mod serve_process;
pub mod smtp;
pub mod upstream;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use casegate::RunningGateway;
use casegate::gateway::{LinkMinter, MintedLink, ShareRequest};
use casegate::share::Guest;
use casegate::share::token::new_share_id;
use casegate::state::StateStore;
use tempfile::TempDir;

use self::raw_client::{RawResponse, cookie_pair, send_raw};
use self::upstream::TestUpstream;

/// 33 bytes, base64url: the key every test gateway signs with (as `k1`).
pub const TEST_KEY: &str = "Y2FzZWdhdGUtaW50ZWdyYXRpb24tdGVzdC1rZXktMzJi";
pub const COOKIE: &str = "casegate";

/// The name of the guest cookie that holds a session of `case`: `{base}.` and the first eight hex
/// digits of SHA-256(case). Spelled out here, not borrowed from the gateway, so a change of the
/// names browsers hold shows up as a failing test.
pub fn cookie_named(base: &str, case: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(case.as_bytes());
    let tag: String = digest[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{base}.{tag}")
}

/// A guest of a fresh share of `case` in `scope`, issued at `issued_at` and expiring at
/// `expires_at`, with no language or address: what a cookie sealed by hand holds.
pub fn guest(case: &str, scope: &str, issued_at: i64, expires_at: i64) -> Guest {
    Guest {
        share_id: new_share_id().expect("randomness"),
        case: case.to_owned(),
        scope: scope.to_owned(),
        lang: None,
        email: None,
        expires_at,
        issued_at,
        email_verified: false,
    }
}

/// [`cookie_named`] for the test gateways' cookie.
pub fn cookie_for(case: &str) -> String {
    cookie_named(COOKIE, case)
}

/// The config every test gateway starts from; `extra` is appended (more scopes, limits...).
pub fn config_text(upstream_url: &str, server_extra: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://share.test"
{server_extra}

[upstream]
url = "{upstream_url}"
passthrough = false
response_timeout = "1s"

[keys]
active = "k1"
[keys.secrets]
k1 = {{ value = "{TEST_KEY}" }}

[links]
prefix = "/s/"
landing = "/cases/{{case}}"
default_ttl = "24h"
max_ttl = "30d"

[session]
cookie = "{COOKIE}"
ttl = "12h"

[scopes.view]
allow = ["GET /cases/{{case}}", "GET /cases/{{case}}/**", "GET /static/**"]
pin_language = true

[scopes.guest]
extends = ["view"]
allow = ["POST /api/cases/{{case}}/comments", "DELETE /api/cases/{{case}}/team/{{share}}"]
deny = ["GET /cases/{{case}}/billing/**"]

[scopes.legacy]
landing = "/legacy/case.php?id={{case}}"
allow = ["GET /legacy/case.php?id={{case}}", "GET /legacy/video.php?id={{case}}&part=*"]
{extra}
"#
    )
}

/// Top-level TOML for a `checked` scope (`verify_email`) on case pages, mailing through the SMTP
/// server at `smtp_url`, with `verify` as the `[verify]` table's lines.
pub fn checked_scope_config(smtp_url: &str, verify: &str) -> String {
    format!(
        r#"
[scopes.checked]
allow = ["GET /cases/{{case}}", "GET /cases/{{case}}/**"]
verify_email = true

[mail]
smtp = "{smtp_url}"
from = "Case sharing <noreply@clinic.example>"

[verify]
{verify}
"#
    )
}

/// A link token to `case` in scope `view`, minted by `minter` as a gateway with its config would.
pub fn view_link_token(minter: &LinkMinter, case: &str) -> String {
    minter
        .mint_link(
            &ShareRequest {
                case,
                scope: "view",
                ttl: None,
                email: None,
                lang: None,
            },
            casegate::clock::unix_now(),
        )
        .expect("mint")
        .token
}

/// The path (`/s/<token>`) of a fresh link to case 42 in scope `checked` (a `verify_email`
/// scope the test adds) for `email`.
pub fn checked_link(minter: &LinkMinter, email: &str) -> String {
    let minted = minter
        .mint_link(
            &ShareRequest {
                case: "42",
                scope: "checked",
                ttl: None,
                email: Some(email),
                lang: None,
            },
            casegate::clock::unix_now(),
        )
        .expect("mint");
    format!("/s/{}", minted.token)
}

/// A running gateway in front of a running upstream.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub upstream: TestUpstream,
    /// Mints links exactly as the running gateway's config does.
    pub snapshot: LinkMinter,
    running: Option<RunningGateway>,
    /// The gateway's state directory, removed when the test gateway is dropped.
    state_dir: TempDir,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with("", "").await
    }

    /// Starts with extra `[server]` lines and extra top-level TOML.
    pub async fn start_with(server_extra: &str, extra: &str) -> TestGateway {
        let upstream = TestUpstream::start().await;
        let text = config_text(&upstream.url(), server_extra, extra);
        Self::start_from_text(upstream, &text).await
    }

    /// Starts from a whole config text, in a fresh state directory (any `[state] path` in the
    /// text is replaced by it).
    pub async fn start_from_text(upstream: TestUpstream, text: &str) -> TestGateway {
        let state_dir = tempfile::Builder::new()
            .prefix("casegate-test-state-")
            .tempdir()
            .expect("a temporary state directory");
        Self::start_in(upstream, text, state_dir).await
    }

    /// Starts from a whole config text with the state kept in `state_dir` (e.g. the directory
    /// of a gateway stopped with [`TestGateway::stop_keeping_state`]).
    pub async fn start_in(upstream: TestUpstream, text: &str, state_dir: TempDir) -> TestGateway {
        let mut config = casegate::config::parse(Path::new("test.toml"), text, &|_| None)
            .unwrap_or_else(|errors| panic!("test config invalid:\n{errors}"));
        config.state.path = state_dir.path().to_path_buf();
        let snapshot = LinkMinter::new(&config);
        let running = casegate::start(&config).await.expect("start gateway");
        TestGateway {
            addr: running.local_addr,
            upstream,
            snapshot,
            running: Some(running),
            state_dir,
        }
    }

    /// The running gateway's state store, to revoke and inspect shares as the admin API would.
    pub fn store(&self) -> &Arc<StateStore> {
        self.running
            .as_ref()
            .expect("the gateway is running")
            .store()
    }

    /// What the running gateway counted, rendered as `GET /metrics` would.
    pub fn scrape(&self) -> String {
        self.running
            .as_ref()
            .expect("the gateway is running")
            .metrics()
            .render()
    }

    /// One counter's value in [`TestGateway::scrape`], e.g. `casegate_link_exchanges_total`.
    pub fn metric(&self, series: &str) -> u64 {
        counter_value(&self.scrape(), series)
    }

    /// Access-log lines dropped so far (queue full or sink failing).
    pub fn access_log_dropped(&self) -> u64 {
        self.running
            .as_ref()
            .expect("the gateway is running")
            .access_log()
            .dropped()
    }

    /// The running gateway's admin API address, when its config has `[admin]`.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().and_then(|running| running.admin_addr)
    }

    pub fn state_dir(&self) -> &Path {
        self.state_dir.path()
    }

    /// A freshly minted link, with its share id.
    pub fn mint(&self, case: &str, scope: &str) -> MintedLink {
        self.snapshot
            .mint_link(
                &ShareRequest {
                    case,
                    scope,
                    ttl: None,
                    email: None,
                    lang: Some("sv-SE"),
                },
                casegate::clock::unix_now(),
            )
            .expect("mint")
    }

    /// The path of a freshly minted link (`/s/<token>`).
    pub fn link_path(&self, case: &str, scope: &str) -> String {
        format!("/s/{}", self.mint(case, scope).token)
    }

    /// Opens a link through the gateway and returns the `name=value` of the guest cookie it set.
    pub async fn open_link(&self, case: &str, scope: &str) -> String {
        self.exchange(&self.link_path(case, scope)).await
    }

    /// Exchanges a link path for the guest cookie it sets (`name=value`).
    pub async fn exchange(&self, path: &str) -> String {
        let response = self.get(path, &[]).await;
        assert_eq!(response.status, 303, "link exchange: {}", response.text());
        cookie_pair(&response)
    }

    /// Sends a GET with `Connection: close` and the given extra header lines.
    pub async fn get(&self, target: &str, headers: &[&str]) -> RawResponse {
        self.request("GET", target, headers, b"").await
    }

    pub async fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[&str],
        body: &[u8],
    ) -> RawResponse {
        request(self.addr, method, target, headers, body).await
    }

    pub async fn raw(&self, bytes: &[u8]) -> Option<RawResponse> {
        send_raw(self.addr, bytes).await
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// Stops the gateway and hands back its upstream and state directory, to start another
    /// gateway on the same state (a restart).
    pub async fn stop_keeping_state(mut self) -> (TestUpstream, TempDir) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        (self.upstream, self.state_dir)
    }
}

/// Sends one HTTP/1.1 request for `share.test` with `Connection: close` and the given extra
/// header lines to a gateway at `addr`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &[u8],
) -> RawResponse {
    let mut text =
        format!("{method} {target} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    if !body.is_empty() {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    send_raw(addr, &bytes).await.expect("a response")
}

/// An HTTP/2 client on `io` (a plain stream with prior knowledge, or TLS after ALPN chose h2);
/// the connection runs on a task of its own, whose handle says when and how it ended.
pub async fn h2_handshake<T, B>(
    io: T,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<hyper::Result<()>>,
)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .expect("h2 handshake");
    (sender, tokio::spawn(connection))
}

/// Sleeps until just after the wall clock starts a new second, so that what a test does next
/// (a revoke, then a create) lands within one second even on a loaded machine.
pub async fn at_the_start_of_a_second() {
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .subsec_nanos();
    let rest = std::time::Duration::from_nanos(u64::from(1_000_000_000 - into_second));
    tokio::time::sleep(rest + std::time::Duration::from_millis(5)).await;
}

/// The value of one series in a Prometheus scrape (its name and labels, e.g.
/// `casegate_requests_total{decision="allowed"}`); `None` when the scrape does not have it.
pub fn series_value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

/// A counter's value in a scrape: a whole number, there.
pub fn counter_value(scrape: &str, series: &str) -> u64 {
    let value = series_value(scrape, series)
        .unwrap_or_else(|| panic!("{series} is not in the scrape:\n{scrape}"));
    assert!(value.fract() == 0.0 && value >= 0.0, "{series} is {value}");
    value as u64
}
