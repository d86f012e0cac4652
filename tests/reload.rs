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
use common::raw_client::{RawResponse, keep_alive_exchange, keep_alive_exchange_with, send_raw};
use common::upstream::TestUpstream;
use common::{TEST_KEY, config_text, counter_value};
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
    upstream: TestUpstream,
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
            upstream,
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

    fn scrape(&self) -> String {
        self.running().metrics().render()
    }

    fn reloads(&self, result: &str) -> u64 {
        counter_value(
            &self.scrape(),
            &format!("casegate_reloads_total{{result=\"{result}\"}}"),
        )
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

/// An HTTP/1 connection keeps the gateway's config between its requests and looks for a newer
/// one at each: a reload reaches the next request on a connection already open, for the routes
/// and for whom `X-Forwarded-For` is believed from.
#[tokio::test]
async fn the_next_request_on_an_open_connection_is_served_under_the_reloaded_config() {
    let upstream = TestUpstream::start().await;
    let trusting = text(&upstream, r#"trusted_proxies = ["127.0.0.1"]"#);
    let gw = FileGateway::start(upstream, &trusting).await;
    let cookie = gw.guest_cookie().await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut upstream_saw = Vec::new();
    for client in ["203.0.113.1", "203.0.113.2"] {
        let forwarded_for = [("X-Forwarded-For", client)];
        let answer =
            keep_alive_exchange_with(&mut stream, "/cases/42", &cookie, &forwarded_for).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        upstream_saw.extend(gw.upstream.take());
    }
    let on_the_connection = keep_alive_exchange(&mut stream, NEW_ROUTE, &cookie).await;
    assert_eq!(
        on_the_connection.status, 403,
        "not allowed before the reload"
    );

    // The new file allows the route and no longer trusts the test's address.
    let reloaded = with_new_route(&trusting).replace(r#"trusted_proxies = ["127.0.0.1"]"#, "");
    let (status, answer) = gw.reload_with(&reloaded).await;
    assert_eq!(status, 200, "{answer}");

    let on_the_connection = keep_alive_exchange(&mut stream, NEW_ROUTE, &cookie).await;
    assert_eq!(
        on_the_connection.status,
        200,
        "{}",
        on_the_connection.text()
    );
    let forwarded_for = [("X-Forwarded-For", "203.0.113.3")];
    let answer = keep_alive_exchange_with(&mut stream, "/cases/42", &cookie, &forwarded_for).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    upstream_saw.extend(gw.upstream.take());
    let seen: Vec<_> = upstream_saw
        .iter()
        .filter(|request| request.request_line.starts_with("GET /cases/42 "))
        .map(|request| request.header("x-forwarded-for").unwrap_or("none"))
        .collect();
    assert_eq!(
        seen,
        [
            "203.0.113.1, 127.0.0.1",
            "203.0.113.2, 127.0.0.1",
            "127.0.0.1"
        ],
        "each request's own client while trusted, then the peer"
    );
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
    // What an alert keys on: the file on disk is not what runs, until a reload succeeds.
    assert!(
        gw.scrape()
            .contains("\ncasegate_config_last_reload_successful 0\n")
    );
    let (status, _) = gw.reload_with(&old).await;
    assert_eq!(status, 200);
    assert!(
        gw.scrape()
            .contains("\ncasegate_config_last_reload_successful 1\n")
    );
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
    // Operators can alert on it: the file is valid but not wholly in force.
    assert!(
        gw.scrape()
            .contains("\ncasegate_config_restart_pending 1\n")
    );
    let cookie = gw.guest_cookie().await;
    assert_eq!(get(gw.addr, NEW_ROUTE, Some(&cookie)).await.status, 200);
    // A reload back to the running address clears it.
    let (status, answer) = gw.reload_with(&with_new_route(&old)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        gw.scrape()
            .contains("\ncasegate_config_restart_pending 0\n")
    );
    gw.stop().await;
}

#[tokio::test]
async fn settings_read_once_at_start_are_named_when_a_reload_changes_them() {
    let upstream = TestUpstream::start().await;
    let old = text(&upstream, "");
    let gw = FileGateway::start(upstream, &old).await;
    let changed = with_new_route(&old)
        .replace(
            "path = \"state\"\n",
            "path = \"state\"\ncompact_after_bytes = 131072\n",
        )
        .replace(
            "listen = \"127.0.0.1:0\"\n\n[[admin.clients]]",
            "listen = \"127.0.0.1:0\"\nmax_body_bytes = 2048\n\n[[admin.clients]]",
        )
        .replace(
            "listen = \"127.0.0.1:0\"\npublic_url",
            "listen = \"127.0.0.1:0\"\nio_uring = false\nloopback_congestion_control = \"system\"\npublic_url",
        );
    assert_ne!(changed, with_new_route(&old), "the edits must apply");

    let (status, answer) = gw.reload_with(&changed).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["restart_needed"],
        serde_json::json!([
            "server.io_uring (set up when each worker starts)",
            "server.loopback_congestion_control (the workers' and pools' setting, from their start)",
            "state (use_flush_interval, compact_after_bytes)",
            "admin.max_body_bytes"
        ])
    );
    // The rest of the file took effect.
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

/// A connection remembers the cookie it opened (src/gateway/session_memo.rs); a reload that drops
/// the key must still end that session on the very connection, not only on new ones.
#[tokio::test]
async fn a_dropped_key_ends_the_session_on_a_connection_that_already_used_it() {
    use common::raw_client::keep_alive_exchange;
    let upstream = TestUpstream::start().await;
    let old = text(&upstream, "");
    let gw = FileGateway::start(upstream, &old).await;
    let sealed_under_k1 = gw.guest_cookie().await;
    let mut connection = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    for _ in 0..2 {
        let response = keep_alive_exchange(&mut connection, "/cases/42", &sealed_under_k1).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }

    let (status, answer) = gw.reload_with(&rotated(&old, false)).await;
    assert_eq!(status, 200, "{answer}");
    let response = keep_alive_exchange(&mut connection, "/cases/42", &sealed_under_k1).await;
    assert_eq!(response.status, 401, "{}", response.text());
    gw.stop().await;
}

/// A TLS client that trusts the CAs of `trusted` and nothing else.
fn tls_connector(trusted: &[&TestPki]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for pki in trusted {
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
        roots.add(ca).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

async fn tls_handshake(addr: SocketAddr, trusted: &TestPki) -> bool {
    tls_connect(addr, &tls_connector(&[trusted])).await.is_ok()
}

/// One GET on a new TLS connection: its status and the CA that signed the certificate served.
async fn tls_get(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    target: &str,
    cookie: Option<&str>,
) -> (RawResponse, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tls_connect(addr, connector).await.expect("TLS handshake");
    let served_ca = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.last())
        .map(|ca| ca.as_ref().to_vec())
        .expect("a certificate chain");
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: share.test\r\n{cookie}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    // rustls reports a peer that closes without close_notify as an error; the bytes still count.
    let _ = stream.read_to_end(&mut bytes).await;
    let response = common::raw_client::parse_response(&bytes).expect("an HTTP answer");
    (response, served_ca)
}

fn ca_der(pki: &TestPki) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
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

/// What an operator does when a certificate is renewed and a key rotated: new files in place of the
/// old ones and one reload, while guests keep coming on new TLS connections and on one connection
/// kept alive across the swap. Not one of their requests may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_and_key_rotated_under_tls_load_fail_no_guest_request() {
    let (first, second) = (TestPki::new(), TestPki::new());
    let upstream = TestUpstream::start().await;
    let old = text(&upstream, &first.server_tls_table())
        .replace(
            "public_url = \"http://share.test\"",
            "public_url = \"https://share.test\"",
        )
        .replace("cookie = \"casegate\"", "cookie = \"__Host-casegate\"");
    let gw = FileGateway::start(upstream, &old).await;
    // Guests' browsers trust both CAs, as they trust the public CA before and after a renewal.
    let connector = tls_connector(&[&first, &second]);
    let token = common::view_link_token(&gw.minter, "42");
    let (exchange, _) = tls_get(gw.addr, &connector, &format!("/s/{token}"), None).await;
    assert_eq!(exchange.status, 303, "{}", exchange.text());
    let cookie = exchange.header("set-cookie").expect("set-cookie");
    let cookie = cookie.split(';').next().unwrap().to_owned();

    // One connection opened before the swap and used throughout.
    let stream = tls_connect(gw.addr, &connector)
        .await
        .expect("TLS handshake");
    let (mut kept_alive, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 on the kept connection");
    tokio::spawn(connection);

    let stop = Arc::new(AtomicBool::new(false));
    let mut guests = Vec::new();
    for _ in 0..3 {
        let (stop, cookie, addr, connector) = (
            Arc::clone(&stop),
            cookie.clone(),
            gw.addr,
            connector.clone(),
        );
        guests.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (response, ca) = tls_get(addr, &connector, "/cases/42", Some(&cookie)).await;
                seen.push((response.status, ca));
            }
            seen
        }));
    }
    let mut kept_statuses = Vec::new();
    let mut ask_on_kept_connection = async |kept_statuses: &mut Vec<u16>| {
        let request = http::Request::get("/cases/42")
            .header("host", "share.test")
            .header("cookie", &cookie)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = kept_alive.send_request(request).await.expect("an answer");
        kept_statuses.push(response.status().as_u16());
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("the body");
    };
    for _ in 0..5 {
        ask_on_kept_connection(&mut kept_statuses).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    // The renewal: the new certificate and key written over the old files, a new signing key.
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(second.dir.join(file), first.dir.join(file)).expect("replace the file");
    }
    let (status, answer) = gw.reload_with(&rotated(&old, true)).await;
    assert_eq!(status, 200, "{answer}");

    for _ in 0..5 {
        ask_on_kept_connection(&mut kept_statuses).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    stop.store(true, Ordering::Relaxed);

    assert!(
        kept_statuses.iter().all(|status| *status == 200),
        "{kept_statuses:?}"
    );
    let (old_ca, new_ca) = (ca_der(&first), ca_der(&second));
    let (mut before, mut after) = (0, 0);
    for guest in guests {
        for (status, ca) in guest.await.expect("a guest task") {
            assert_eq!(status, 200, "a guest request failed during the rotation");
            if ca == old_ca {
                before += 1;
            } else {
                assert_eq!(ca, new_ca, "served a certificate of neither CA");
                after += 1;
            }
        }
    }
    assert!(
        before >= 5 && after >= 5,
        "too few requests on either side of the swap: {before} on the old certificate, {after} on the new"
    );
    // Every guest request after the swap carried the cookie sealed under k1, now the old key.
    assert_eq!(gw.reloads("ok"), 1);
    gw.stop().await;
}
