//! Hot reload over real sockets: the gateway started from a config file, the file rewritten, and
//! `POST /v1/reload` (or the `Reloader` the SIGHUP handler calls) swapping the new config in.
//! Routes, keys and certificates change for new requests; a broken file changes nothing.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use casegate::RunningGateway;
use casegate::gateway::LinkMinter;
use common::pki::TestPki;
use common::raw_client::{RawResponse, send_raw};
use common::upstream::TestUpstream;
use common::{TEST_KEY, config_text};
use serde_json::Value;
use tempfile::TempDir;

const ADMIN_TOKEN: &str = "reload-test-admin-token-0123456789abcdef";
/// A second signing key (33 bytes, base64url), for rotation.
const SECOND_KEY: &str = "Y2FzZWdhdGUtcmVsb2FkLXRlc3Qta2V5LXR3by0zMmJ5";
/// A route no scope allows until a reload adds it.
const NEW_ROUTE: &str = "/reports/42";

/// The test config, with an admin API and the state kept beside the file.
fn text(upstream: &TestUpstream, server_extra: &str) -> String {
    let extra = format!(
        r#"
[state]
path = "state"

[admin]
listen = "127.0.0.1:0"

[[admin.clients]]
name = "ops"
token = {{ value = "{ADMIN_TOKEN}" }}
scopes = ["view"]
"#
    );
    config_text(&upstream.url(), server_extra, &extra)
}

/// `text` whose view scope also allows `GET /reports/{case}`.
fn with_new_route(text: &str) -> String {
    text.replace(
        r#""GET /static/**"]"#,
        r#""GET /static/**", "GET /reports/{case}"]"#,
    )
}

/// `text` signing with `k2` while `k1` still verifies (`keep_k1`), or with `k2` alone.
fn rotated(text: &str, keep_k1: bool) -> String {
    let k1 = format!("k1 = {{ value = \"{TEST_KEY}\" }}");
    let k2 = format!("k2 = {{ value = \"{SECOND_KEY}\" }}");
    let secrets = if keep_k1 { format!("{k1}\n{k2}") } else { k2 };
    text.replace("active = \"k1\"", "active = \"k2\"")
        .replace(&k1, &secrets)
}

/// A gateway started from a file, as `casegate serve` starts it.
struct FileGateway {
    running: Option<RunningGateway>,
    addr: SocketAddr,
    admin: SocketAddr,
    path: PathBuf,
    minter: LinkMinter,
    _upstream: TestUpstream,
    _dir: TempDir,
}

impl FileGateway {
    async fn start(upstream: TestUpstream, text: &str) -> FileGateway {
        let dir = tempfile::Builder::new()
            .prefix("casegate-reload-")
            .tempdir()
            .expect("a temporary directory");
        let path = dir.path().join("casegate.toml");
        std::fs::write(&path, text).expect("write the config");
        let config = casegate::config::load(&path)
            .unwrap_or_else(|errors| panic!("test config invalid:\n{errors}"));
        let running = casegate::start_from_file(&config, &path)
            .await
            .expect("start the gateway");
        FileGateway {
            addr: running.local_addr,
            admin: running.admin_addr.expect("the admin API listens"),
            running: Some(running),
            path,
            minter: LinkMinter::new(&config),
            _upstream: upstream,
            _dir: dir,
        }
    }

    fn running(&self) -> &RunningGateway {
        self.running.as_ref().expect("running")
    }

    /// Rewrites the config file and asks the admin API to reload it.
    async fn reload_with(&self, text: &str) -> (u16, Value) {
        std::fs::write(&self.path, text).expect("rewrite the config");
        let request = format!(
            "POST /v1/reload HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let response = send_raw(self.admin, request.as_bytes())
            .await
            .expect("a reload answer");
        let json = serde_json::from_slice(&response.body).expect("a JSON answer");
        (response.status, json)
    }

    async fn guest_cookie(&self) -> String {
        let token = common::view_link_token(&self.minter, "42");
        let response = get(self.addr, &format!("/s/{}", token), None).await;
        assert_eq!(response.status, 303, "link exchange: {}", response.text());
        let set_cookie = response.header("set-cookie").expect("set-cookie");
        set_cookie.split(';').next().unwrap().to_owned()
    }

    fn reloads(&self, result: &str) -> u64 {
        let scrape = self.running().metrics().render();
        let prefix = format!("casegate_reloads_total{{result=\"{result}\"}} ");
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{scrape}"))
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

async fn get(addr: SocketAddr, target: &str, cookie: Option<&str>) -> RawResponse {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: share.test\r\n{cookie}Connection: close\r\n\r\n");
    send_raw(addr, request.as_bytes())
        .await
        .expect("a response")
}

#[tokio::test]
async fn a_route_added_to_the_file_is_allowed_after_a_reload_without_a_restart() {
    let upstream = TestUpstream::start().await;
    let old = text(&upstream, "");
    let gw = FileGateway::start(upstream, &old).await;
    let cookie = gw.guest_cookie().await;
    assert_eq!(get(gw.addr, NEW_ROUTE, Some(&cookie)).await.status, 403);

    let (status, answer) = gw.reload_with(&with_new_route(&old)).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["reloaded"], true);
    assert_eq!(answer["restart_needed"], serde_json::json!([]));
    assert_eq!(get(gw.addr, NEW_ROUTE, Some(&cookie)).await.status, 200);
    assert_eq!(gw.reloads("ok"), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_broken_file_keeps_the_old_config_and_every_problem_is_reported() {
    let upstream = TestUpstream::start().await;
    let old = text(&upstream, "");
    let gw = FileGateway::start(upstream, &old).await;
    let cookie = gw.guest_cookie().await;
    // Two problems: a route that is no rule, and a key no table takes.
    let broken = with_new_route(&old)
        .replace("\"GET /reports/{case}\"", "\"FETCH\"")
        .replace("passthrough = false", "passthrough = false\nbogus = 1");

    let (status, answer) = gw.reload_with(&broken).await;

    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "config_invalid");
    let problems = answer["error"]["problems"].as_array().expect("problems");
    assert!(problems.len() >= 2, "{answer}");
    let file = gw.path.display().to_string();
    for problem in problems {
        let problem = problem.as_str().expect("a line");
        assert!(problem.starts_with(&format!("{file}:")), "{problem}");
    }
    assert_eq!(gw.reloads("failed"), 1);
    assert_eq!(gw.reloads("ok"), 0);
    // The old config still serves: the case opens, the route never added stays denied.
    assert_eq!(get(gw.addr, "/cases/42", Some(&cookie)).await.status, 200);
    assert_eq!(get(gw.addr, NEW_ROUTE, Some(&cookie)).await.status, 403);
    gw.stop().await;
}

#[tokio::test]
async fn a_listen_address_change_keeps_the_old_address_and_says_a_restart_is_needed() {
    let upstream = TestUpstream::start().await;
    let old = text(&upstream, "");
    let gw = FileGateway::start(upstream, &old).await;
    let moved = with_new_route(&old).replace(
        "listen = \"127.0.0.1:0\"\npublic_url",
        "listen = \"127.0.0.1:1\"\npublic_url",
    );

    let (status, answer) = gw.reload_with(&moved).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["restart_needed"],
        serde_json::json!(["server.listen"])
    );
    let cookie = gw.guest_cookie().await;
    assert_eq!(get(gw.addr, NEW_ROUTE, Some(&cookie)).await.status, 200);
    gw.stop().await;
}

/// The `kid` in a link token's header.
fn kid_of(url: &str) -> String {
    let token = url.rsplit('/').next().expect("a token");
    let header = token.split('.').next().expect("a header");
    let header = URL_SAFE_NO_PAD.decode(header).expect("base64url header");
    let header: Value = serde_json::from_slice(&header).expect("a JSON header");
    header["kid"].as_str().expect("a kid").to_owned()
}

async fn create_share(admin: SocketAddr) -> Value {
    let body = r#"{"case": "42", "scope": "view"}"#;
    let request = format!(
        "POST /v1/shares HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = send_raw(admin, request.as_bytes())
        .await
        .expect("an answer");
    assert_eq!(response.status, 201, "{}", response.text());
    serde_json::from_slice(&response.body).expect("JSON")
}

#[tokio::test]
async fn rotating_keys_keeps_old_guests_signed_in_and_signs_new_links_with_the_new_key() {
    let upstream = TestUpstream::start().await;
    let old = text(&upstream, "");
    let gw = FileGateway::start(upstream, &old).await;
    let sealed_under_k1 = gw.guest_cookie().await;
    let before = create_share(gw.admin).await;
    assert_eq!(kid_of(before["url"].as_str().unwrap()), "k1");

    let (status, answer) = gw.reload_with(&rotated(&old, true)).await;
    assert_eq!(status, 200, "{answer}");

    assert_eq!(
        get(gw.addr, "/cases/42", Some(&sealed_under_k1))
            .await
            .status,
        200
    );
    let after = create_share(gw.admin).await;
    assert_eq!(kid_of(after["url"].as_str().unwrap()), "k2");
    // The link signed before the rotation still opens: k1 verifies.
    let old_link = format!(
        "/s/{}",
        before["url"].as_str().unwrap().rsplit('/').next().unwrap()
    );
    assert_eq!(get(gw.addr, &old_link, None).await.status, 303);

    // Once k1 is dropped, what it sealed no longer opens anything.
    let (status, answer) = gw.reload_with(&rotated(&old, false)).await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(
        get(gw.addr, "/cases/42", Some(&sealed_under_k1))
            .await
            .status,
        200
    );
    gw.stop().await;
}

async fn tls_handshake(addr: SocketAddr, trusted: &TestPki) -> bool {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(trusted.ca_pem.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .is_ok()
}

#[tokio::test]
async fn a_new_certificate_is_served_to_new_connections() {
    let (first, second) = (TestPki::new(), TestPki::new());
    let upstream = TestUpstream::start().await;
    let https = |pki: &TestPki| {
        text(&upstream, &pki.server_tls_table())
            .replace(
                "public_url = \"http://share.test\"",
                "public_url = \"https://share.test\"",
            )
            .replace("cookie = \"casegate\"", "cookie = \"__Host-casegate\"")
    };
    let (old, new) = (https(&first), https(&second));
    let gw = FileGateway::start(upstream, &old).await;
    assert!(tls_handshake(gw.addr, &first).await);
    assert!(!tls_handshake(gw.addr, &second).await);

    let (status, answer) = gw.reload_with(&new).await;

    assert_eq!(status, 200, "{answer}");
    assert!(tls_handshake(gw.addr, &second).await);
    assert!(!tls_handshake(gw.addr, &first).await);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_see_no_failed_request_while_the_config_is_reloaded_and_a_broken_one_refused() {
    let upstream = TestUpstream::start().await;
    let old = text(&upstream, "");
    let gw = FileGateway::start(upstream, &old).await;
    let cookie = gw.guest_cookie().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut guests = Vec::new();
    for _ in 0..4 {
        let (stop, cookie, addr) = (Arc::clone(&stop), cookie.clone(), gw.addr);
        guests.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                statuses.push(get(addr, "/cases/42", Some(&cookie)).await.status);
            }
            statuses
        }));
    }
    // A good change, a key rotation, a broken file (refused, the old config keeps serving) and
    // back to the start, while the guests keep asking.
    let broken = old.replace("passthrough = false", "passthrough = false\nbogus = 1");
    let versions = [
        (with_new_route(&old), 200),
        (rotated(&old, true), 200),
        (broken, 422),
        (old.clone(), 200),
    ];
    for (version, expected) in &versions {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, answer) = gw.reload_with(version).await;
        assert_eq!(status, *expected, "{answer}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = 0;
    for guest in guests {
        let statuses = guest.await.expect("a guest task");
        assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
        seen += statuses.len();
    }
    assert!(seen >= 20, "only {seen} requests ran during the reloads");
    assert_eq!(gw.reloads("ok"), 3);
    assert_eq!(gw.reloads("failed"), 1);
    gw.stop().await;
}
