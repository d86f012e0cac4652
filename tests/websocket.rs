//! Protocol switches: refused unless a scope's `upgrade` rule opts in; then a WebSocket handshake
//! reaches the upstream and bytes flow both ways through casegate.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::TestGateway;

const LIVE_SCOPE: &str = r#"
[scopes.live]
allow = ["GET /cases/{case}", "GET /cases/{case}/ws"]
upgrade = ["GET /cases/{case}/ws"]
"#;

fn handshake(target: &str, cookie: &str, upgrade: &str, connection: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: {connection}\r\n\
         Upgrade: {upgrade}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("response head in time")
            .expect("read");
        assert_eq!(n, 1, "connection closed before the response head ended");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn an_opted_in_websocket_is_tunnelled_both_ways() {
    let gw = TestGateway::start_with("", LIVE_SCOPE).await;
    let cookie = gw.open_link("42", "live").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(handshake("/cases/42/ws", &cookie, "websocket", "Upgrade").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(!head.contains("set-cookie"), "{head}");

    stream.write_all(b"frame bytes").await.unwrap();
    let mut echoed = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&echoed, b"frame bytes");
    let open_tunnels = "casegate_open_connections{protocol=\"websocket\"} ";
    assert!(
        gw.scrape().contains(&format!("{open_tunnels}1\n")),
        "{}",
        gw.scrape()
    );
    drop(stream);
    // The tunnel task notices the close on its own schedule.
    let closed = format!("{open_tunnels}0\n");
    for _ in 0..50 {
        if gw.scrape().contains(&closed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gw.scrape().contains(&closed), "{}", gw.scrape());

    let received = gw.upstream.take();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].request_line, "GET /cases/42/ws HTTP/1.1");
    assert_eq!(received[0].header("upgrade"), Some("websocket"));
    assert_eq!(received[0].header("connection"), Some("upgrade"));
    assert_eq!(
        received[0].header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    assert_eq!(received[0].header("x-casegate-case"), Some("42"));
    assert_eq!(received[0].header("cookie"), None);
}

#[tokio::test]
async fn switches_without_an_upgrade_rule_or_of_another_kind_are_refused() {
    let gw = TestGateway::start_with("", LIVE_SCOPE).await;
    let live = gw.open_link("42", "live").await;
    let view = gw.open_link("42", "view").await;
    let cases = [
        (
            "a view scope has no upgrade rule",
            "/cases/42/ws",
            view.as_str(),
            "websocket",
            "Upgrade",
            403,
        ),
        (
            "h2c is never forwarded",
            "/cases/42/ws",
            live.as_str(),
            "h2c",
            "Upgrade, HTTP2-Settings",
            403,
        ),
        (
            "two protocols at once",
            "/cases/42/ws",
            live.as_str(),
            "websocket, h2c",
            "Upgrade",
            403,
        ),
        (
            "another case",
            "/cases/43/ws",
            live.as_str(),
            "websocket",
            "Upgrade",
            403,
        ),
    ];
    for (what, target, cookie, upgrade, connection, status) in cases {
        let response = gw
            .raw(
                handshake(target, cookie, upgrade, connection)
                    .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect(what);
        assert_eq!(response.status, status, "{what}");
        assert!(
            gw.upstream.take().is_empty(),
            "{what}: reached the upstream"
        );
    }
}

async fn open_tunnel(gw: &TestGateway, cookie: &str) -> TcpStream {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(handshake("/cases/42/ws", cookie, "websocket", "Upgrade").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_at_the_idle_timeout() {
    let gw = TestGateway::start_with("[server.limits]\nidle_timeout = \"1s\"", LIVE_SCOPE).await;
    let cookie = gw.open_link("42", "live").await;
    let mut stream = open_tunnel(&gw, &cookie).await;
    let opened = std::time::Instant::now();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(4), stream.read(&mut buffer))
        .await
        .expect("the idle tunnel was still open after 4 s");
    assert!(matches!(read, Ok(0) | Err(_)), "unexpected bytes: {read:?}");
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "closed before the idle timeout"
    );
}

#[tokio::test]
async fn a_tunnel_keeps_its_connection_slot() {
    let gw = TestGateway::start_with("[server.limits]\nmax_connections = 2", LIVE_SCOPE).await;
    let cookie = gw.open_link("42", "live").await;
    let _tunnel = open_tunnel(&gw, &cookie).await;
    // The tunnel holds one slot, this idle connection the other...
    let _second = TcpStream::connect(gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...so a third connection is closed unanswered.
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n")
        .await;
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut bytes)).await;
    assert!(
        bytes.is_empty(),
        "a connection over the limit was served: {:?}",
        String::from_utf8_lossy(&bytes)
    );
}
