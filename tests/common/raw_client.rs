//! A deliberately dumb HTTP/1.1 client: sends exactly the bytes a test gives it (so that malformed
//! and hostile requests reach the gateway unaltered) and parses whatever comes back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The bytes of an admin API request: `Connection: close`, the bearer `token`, and `body` as
/// `application/json` when there is one.
pub fn admin_request(method: &str, target: &str, token: &str, body: Option<&str>) -> Vec<u8> {
    let mut text = format!(
        "{method} {target} HTTP/1.1\r\nHost: admin.test\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n"
    );
    if let Some(body) = body {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(body.unwrap_or_default());
    text.into_bytes()
}

/// The `name=value` of the response's first `Set-Cookie` (a link exchange's guest cookie).
pub fn cookie_pair(response: &RawResponse) -> String {
    let set_cookie = response.header("set-cookie").expect("set-cookie");
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// Sends `request` as is and reads until the server closes the connection (tests send
/// `Connection: close`), or 10 s pass. `None` when the server closed without any answer.
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> Option<RawResponse> {
    let mut stream = TcpStream::connect(addr).await.expect("connect to gateway");
    stream.write_all(request).await.expect("write request");
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
    assert!(
        read.is_ok(),
        "gateway did not close the connection within 10 s"
    );
    parse_response(&bytes)
}

/// Parses the first response in `bytes`.
pub fn parse_response(bytes: &[u8]) -> Option<RawResponse> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &bytes[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        rest = &rest[line_end + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    body
}

/// A guest's GET for `share.test` that keeps the connection open (HTTP/1.1, no `Connection`).
pub fn keep_alive_get(target: &str, cookie: &str) -> String {
    keep_alive_get_with(target, cookie, &[])
}

/// [`keep_alive_get`] with more fields after the cookie, as `(name, value)`.
pub fn keep_alive_get_with(target: &str, cookie: &str, fields: &[(&str, &str)]) -> String {
    let more: String = fields
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    format!("GET {target} HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\n{more}\r\n")
}

/// Sends [`keep_alive_get`] on `stream` and reads its one response; the connection stays open.
pub async fn keep_alive_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    target: &str,
    cookie: &str,
) -> RawResponse {
    keep_alive_exchange_with(stream, target, cookie, &[]).await
}

/// [`keep_alive_exchange`] of a [`keep_alive_get_with`] those more fields.
pub async fn keep_alive_exchange_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    target: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> RawResponse {
    stream
        .write_all(keep_alive_get_with(target, cookie, fields).as_bytes())
        .await
        .unwrap();
    read_one_response(stream).await
}

/// Reads exactly one response (framed by Content-Length) from a kept-alive connection.
pub async fn read_one_response<S: AsyncRead + Unpin>(stream: &mut S) -> RawResponse {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse_response(&bytes[..head_end + 4]).expect("a response head");
            let length: usize = head
                .header("content-length")
                .and_then(|value| value.parse().ok())
                .expect("a Content-Length");
            if bytes.len() >= head_end + 4 + length {
                return parse_response(&bytes[..head_end + 4 + length]).expect("a response");
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert!(n > 0, "the gateway closed the connection: {bytes:?}");
        bytes.extend_from_slice(&chunk[..n]);
    }
}
