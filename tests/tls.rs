//! The TLS listener, with a test CA made at test time: HTTP/1.1 and HTTP/2 (ALPN) on one port, HSTS
//! and Secure cookies for an https public origin.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use common::pki::TestPki;
use common::raw_client::parse_response;
use common::upstream::{TestUpstream, video_bytes};
use common::{TestGateway, cookie_named};

async fn start_tls_gateway(pki: &TestPki) -> TestGateway {
    let upstream = TestUpstream::start().await;
    let text = common::config_text(&upstream.url(), &pki.server_tls_table(), "")
        .replace(
            "public_url = \"http://share.test\"",
            "public_url = \"https://share.test\"",
        )
        .replace("cookie = \"casegate\"", "cookie = \"__Host-casegate\"");
    TestGateway::start_from_text(upstream, &text).await
}

async fn connect(
    gw: &TestGateway,
    pki: &TestPki,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    connect_with(gw, client_config(pki, alpn)).await
}

/// A client trusting the test CA; it keeps the session tickets it is given, as browsers do.
fn client_config(pki: &TestPki, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn connect_with(
    gw: &TestGateway,
    config: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the gateway")
}

use rustls::pki_types::pem::PemObject;

#[tokio::test]
async fn a_returning_client_resumes_its_session_by_ticket() {
    let pki = TestPki::new();
    let gw = start_tls_gateway(&pki).await;
    let config = client_config(&pki, &[b"http/1.1"]);
    for (attempt, expected) in [
        (1, rustls::HandshakeKind::Full),
        (2, rustls::HandshakeKind::Resumed),
    ] {
        let mut tls = connect_with(&gw, Arc::clone(&config)).await;
        // TLS 1.3 tickets follow the handshake: reading the answer takes them in.
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut bytes = Vec::new();
        let _ = tls.read_to_end(&mut bytes).await;
        assert!(
            parse_response(&bytes).is_some(),
            "attempt {attempt}: an answer"
        );
        assert_eq!(
            tls.get_ref().1.handshake_kind(),
            Some(expected),
            "attempt {attempt}"
        );
    }
}

#[tokio::test]
async fn http1_over_tls_exchanges_a_link_for_a_secure_cookie_and_serves_the_case() {
    let pki = TestPki::new();
    let gw = start_tls_gateway(&pki).await;
    let link = gw.link_path("42", "view");
    let mut tls = connect(&gw, &pki, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!("GET {link} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let _ = tls.read_to_end(&mut bytes).await;
    let response = parse_response(&bytes).expect("a response");
    assert_eq!(response.status, 303);
    assert_eq!(
        response.header("location"),
        Some("https://share.test/cases/42")
    );
    let set_cookie = response.header("set-cookie").unwrap();
    assert!(
        set_cookie.starts_with(&format!("{}=", cookie_named("__Host-casegate", "42"))),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let mut tls = connect(&gw, &pki, &[b"http/1.1"]).await;
    let request = format!(
        "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let _ = tls.read_to_end(&mut bytes).await;
    let response = parse_response(&bytes).expect("a response");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let received = gw.upstream.take();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("x-forwarded-proto"), Some("https"));
    assert_eq!(received[0].header("x-casegate-case"), Some("42"));
}

#[tokio::test]
async fn http2_over_tls_is_negotiated_by_alpn_and_guarded_the_same_way() {
    let pki = TestPki::new();
    let gw = start_tls_gateway(&pki).await;
    let link = gw.link_path("42", "view");
    let tls = connect(&gw, &pki, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, _connection) = common::h2_handshake(tls).await;

    let request = |path: &str, cookie: Option<&str>| {
        let mut builder = http::Request::get(format!("https://share.test{path}"));
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        builder.body(Empty::<Bytes>::new()).unwrap()
    };
    let response = sender.send_request(request(&link, None)).await.unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let response = sender
        .send_request(request("/cases/42", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        body.starts_with(b"upstream saw GET /cases/42 HTTP/1.1"),
        "{body:?}"
    );

    // An upstream answer that tries to leak, over HTTP/2: hyper writes it from the map alone,
    // so the fields casegate passes on as they came are moved into it, and nothing removed is.
    let response = sender
        .send_request(request("/cases/42/leaky", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["content-length"], "5");
    let all = |name: &str| headers.get_all(name).iter().collect::<Vec<_>>();
    assert_eq!(all("cache-control"), ["private, no-store"]);
    assert_eq!(all("referrer-policy"), ["no-referrer"]);
    assert_eq!(all("x-robots-tag"), ["noindex"]);
    assert_eq!(all("vary"), ["Cookie"]);
    for gone in [
        "set-cookie",
        "access-control-allow-origin",
        "access-control-allow-credentials",
    ] {
        assert!(!headers.contains_key(gone), "{gone}: {headers:?}");
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"leaky");

    let response = sender
        .send_request(request("/cases/43", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = sender
        .send_request(request("/cases/42/%2e%2e/43", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let received = gw.upstream.take();
    assert_eq!(
        received.len(),
        2,
        "only the allowed requests reach the upstream"
    );
    assert_eq!(received[0].request_line, "GET /cases/42 HTTP/1.1");
    assert_eq!(received[1].request_line, "GET /cases/42/leaky HTTP/1.1");
}

/// Sends `GET target` with `Connection: close` over a fresh TLS connection; the response.
async fn get_over_tls(
    gw: &TestGateway,
    pki: &TestPki,
    target: &str,
) -> common::raw_client::RawResponse {
    get_over_tls_with(gw, pki, target, "").await
}

/// A GET over HTTP/1.1 on a new TLS connection, with `headers` (whole lines, each ending in CRLF).
async fn get_over_tls_with(
    gw: &TestGateway,
    pki: &TestPki,
    target: &str,
    headers: &str,
) -> common::raw_client::RawResponse {
    let mut tls = connect(gw, pki, &[b"http/1.1"]).await;
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: share.test\r\n{headers}Connection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let _ = tls.read_to_end(&mut bytes).await;
    parse_response(&bytes).expect("a response")
}

/// A client over TLS gets a video's bytes encrypted by casegate: none can be spliced socket to
/// socket as over plain HTTP/1 (`tests/upstream_responses.rs`).
#[tokio::test]
async fn a_large_body_over_tls_is_encrypted_through_casegate_not_spliced() {
    let pki = TestPki::new();
    let gw = start_tls_gateway(&pki).await;
    let link = gw.link_path("42", "view");
    let exchanged = get_over_tls(&gw, &pki, &link).await;
    assert_eq!(exchanged.status, 303);
    let cookie = common::raw_client::cookie_pair(&exchanged);
    let cookie = format!("Cookie: {cookie}\r\n");
    let response = get_over_tls_with(&gw, &pki, "/cases/42/video", &cookie).await;
    assert_eq!(response.status, 200);
    assert!(response.body == video_bytes(), "video bytes differ");
    assert_eq!(gw.metric("casegate_response_bytes_spliced_total"), 0);
}

/// An idle HTTP/1 connection is parked after a second (`src/server/lifetime.rs`); over TLS the
/// byte that wakes it is read through rustls, and the rest of the request must follow it.
#[tokio::test]
async fn a_kept_alive_tls_connection_is_parked_and_serves_its_next_requests() {
    let pki = TestPki::new();
    let gw = start_tls_gateway(&pki).await;
    let link = gw.link_path("42", "view");
    let cookie = common::raw_client::cookie_pair(&get_over_tls(&gw, &pki, &link).await);
    let mut tls = connect(&gw, &pki, &[b"http/1.1"]).await;
    for round in 0..3 {
        let target = format!("/cases/42?round={round}");
        let response = common::raw_client::keep_alive_exchange(&mut tls, &target, &cookie).await;
        assert_eq!(response.status, 200, "round {round}: {}", response.text());
        assert_eq!(response.header("connection"), None, "round {round}");
        tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    }
    assert_eq!(gw.upstream.take().len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn hsts_is_on_every_answer_over_tls_refusals_and_redirects_included_unless_switched_off() {
    let pki = TestPki::new();
    let gw = start_tls_gateway(&pki).await;
    let link = gw.link_path("42", "view");
    for (what, target, status) in [
        ("a link exchange", link.as_str(), 303),
        ("a request without a session", "/cases/42", 401),
        ("a forged link", "/s/forged", 403),
    ] {
        let response = get_over_tls(&gw, &pki, target).await;
        assert_eq!(response.status, status, "{what}");
        assert_eq!(
            response.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{what}"
        );
    }

    let upstream = TestUpstream::start().await;
    let text = common::config_text(
        &upstream.url(),
        &format!("hsts = false\n{}", pki.server_tls_table()),
        "",
    )
    .replace(
        "public_url = \"http://share.test\"",
        "public_url = \"https://share.test\"",
    );
    let off = TestGateway::start_from_text(upstream, &text).await;
    let response = get_over_tls(&off, &pki, &off.link_path("42", "view")).await;
    assert_eq!(response.status, 303);
    assert_eq!(
        response.header("strict-transport-security"),
        None,
        "hsts = false"
    );
}

#[tokio::test]
async fn no_hsts_over_plain_http_with_an_http_public_url() {
    let gw = TestGateway::start().await;
    let cookie = gw.open_link("42", "view").await;
    let response = gw.get("/cases/42", &[&format!("Cookie: {cookie}")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("strict-transport-security"), None);
}
