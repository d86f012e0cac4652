//! A real upstream for the tests: a raw TCP HTTP/1.1 server that records the exact bytes of every
//! request head it receives (so tests can assert what casegate forwarded, byte for byte) and answers
//! according to the path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request line, e.g. `GET /cases/42 HTTP/1.1`.
    pub request_line: String,
    /// Header fields in the order received, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }

    pub fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or("")
    }
}

/// The running upstream.
#[derive(Clone)]
pub struct TestUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A few MB of deterministic bytes standing in for a video file.
pub fn video_bytes() -> Vec<u8> {
    (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect()
}

impl TestUpstream {
    pub async fn start() -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            let video = Arc::new(video_bytes());
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, Arc::clone(&log), Arc::clone(&video), addr));
            }
        });
        TestUpstream { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, and forget it.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

async fn serve(
    mut stream: TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    video: Arc<Vec<u8>>,
    own_addr: SocketAddr,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let websocket =
            request.target().ends_with("/ws") && request.header("upgrade") == Some("websocket");
        // Recorded on arrival, so a test can tell a slow request is in flight upstream.
        log.lock().unwrap().push(request.clone());
        let response = respond(&request, &video, own_addr).await;
        if stream.write_all(&response).await.is_err() {
            return;
        }
        if websocket {
            echo(stream, std::mem::take(&mut buffer)).await;
            return;
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    buffer.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut received = Received {
        request_line,
        headers,
        body: Vec::new(),
    };
    if let Some(length) = received.header("content-length") {
        let length: usize = length.parse().ok()?;
        while buffer.len() < length {
            read_more(stream, buffer).await?;
        }
        received.body = buffer.drain(..length).collect();
    } else if received.header("transfer-encoding") == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(end) = find(buffer, b"\r\n") {
                    break end;
                }
                read_more(stream, buffer).await?;
            };
            let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            buffer.drain(..line_end + 2);
            while buffer.len() < size + 2 {
                read_more(stream, buffer).await?;
            }
            received.body.extend(buffer.drain(..size));
            buffer.drain(..2);
            if size == 0 {
                break;
            }
        }
    }
    Some(received)
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await.ok()?;
    if n == 0 {
        return None;
    }
    buffer.extend_from_slice(&chunk[..n]);
    Some(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// After a 101: send back every byte received, as a stand-in for a WebSocket peer.
async fn echo(mut stream: TcpStream, pending: Vec<u8>) {
    if !pending.is_empty() && stream.write_all(&pending).await.is_err() {
        return;
    }
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Canned answers by path: enough to exercise every response rule of the gateway.
async fn respond(request: &Received, video: &[u8], own_addr: SocketAddr) -> Vec<u8> {
    let path = request.target().split('?').next().unwrap_or("");
    if path == "/slow" || path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if path.ends_with("/leaky") {
        return http_response(
            "200 OK",
            &[
                ("Set-Cookie", "staff_session=abc; Path=/"),
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Cache-Control", "public, max-age=86400"),
                ("Content-Type", "text/plain"),
            ],
            b"leaky",
        );
    }
    if path.ends_with("/ws") && request.header("upgrade") == Some("websocket") {
        return b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec();
    }
    if path.ends_with("/elsewhere") {
        // A redirect to another case, on the upstream's own origin.
        let location = format!("http://{own_addr}/cases/43");
        return http_response("302 Found", &[("Location", &location)], b"");
    }
    if path.ends_with("/hop") {
        // Hop-by-hop headers and a header named in Connection, which must not reach a client.
        return http_response(
            "200 OK",
            &[
                ("Connection", "X-Internal-Token"),
                ("X-Internal-Token", "staff-secret"),
                ("Keep-Alive", "timeout=600"),
                ("Proxy-Authenticate", "Basic realm=internal"),
                ("Upgrade", "h2c"),
                ("Set-Cookie2", "legacy=1"),
                ("Content-Type", "text/plain"),
            ],
            b"hop",
        );
    }
    if path.ends_with("/redirect") {
        let location = format!("http://{own_addr}/cases/42/summary");
        return http_response("302 Found", &[("Location", &location)], b"");
    }
    if path.ends_with("/video") {
        if let Some(range) = request.header("range") {
            let spec = range.trim_start_matches("bytes=");
            let (start, end) = spec.split_once('-').unwrap_or(("0", ""));
            let start: usize = start.parse().unwrap_or(0);
            let end: usize = end.parse().unwrap_or(video.len() - 1).min(video.len() - 1);
            let content_range = format!("bytes {start}-{end}/{}", video.len());
            return http_response(
                "206 Partial Content",
                &[
                    ("Content-Type", "video/webm"),
                    ("Accept-Ranges", "bytes"),
                    ("Content-Range", &content_range),
                ],
                &video[start..=end],
            );
        }
        return http_response(
            "200 OK",
            &[("Content-Type", "video/webm"), ("Accept-Ranges", "bytes")],
            video,
        );
    }
    let body = format!(
        "upstream saw {} {}",
        request.request_line,
        request.body.len()
    );
    http_response("200 OK", &[("Content-Type", "text/plain")], body.as_bytes())
}

fn http_response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
