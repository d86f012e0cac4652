//! Table-driven hostile requests: the row types, the credentials a row's bytes may name, and the
//! runner that sends each row on its own connection and compares both what came back and what
//! the recording upstream received. Shared by `tests/request_tricks.rs` and `tests/adversarial.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use casegate::clock::unix_now;
use casegate::share::cookie;
use casegate::share::keys::{KeyRing, decode_key};
use casegate::share::token::{LinkClaims, mint, new_share_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::raw_client::parse_response;
use super::upstream::Received;
use super::{COOKIE, TEST_KEY, TestGateway};

/// One hostile request (or pipelined run of requests) and everything it may cause.
pub struct Row {
    pub name: &'static str,
    /// The bytes sent, after the placeholders of [`Secrets::fill`] are replaced.
    pub raw: &'static str,
    /// The status of every response read before the gateway closed the connection, in order.
    pub replies: &'static [u16],
    /// Every request the upstream received, in order; empty means nothing reached it.
    pub upstream: &'static [Forwarded],
}

/// One request as the upstream must have received it.
pub struct Forwarded {
    pub line: &'static str,
    pub checks: &'static [Check],
}

/// A claim about one forwarded request, on top of [`framing_problems`].
pub enum Check {
    /// The header is present exactly once, with this value.
    Is(&'static str, &'static str),
    Absent(&'static str),
    /// The body the upstream read (by default it must be empty).
    Body(&'static str),
}

/// No statuses: the gateway closed the connection without answering.
pub const CLOSED: &[u16] = &[];
/// The upstream received nothing at all.
pub const NOTHING: &[Forwarded] = &[];

/// A guest's comment "hello" on case 42, as the upstream must receive it.
pub const POST_HELLO: &[Forwarded] = &[Forwarded {
    line: "POST /api/cases/42/comments HTTP/1.1",
    checks: &[Check::Body("hello"), Check::Is("x-casegate-scope", "guest")],
}];

/// A plain GET of case 42, as the upstream must receive it.
pub const GET_42: &[Forwarded] = &[Forwarded {
    line: "GET /cases/42 HTTP/1.1",
    checks: &[],
}];

/// A key nobody configured, for forgeries.
const STRANGER_KEY: &str = "c3RyYW5nZXJzLWtleS1pcy0zMi1ieXRlcy1sb25nISE";

/// The credentials a row's template may name, each replacing its `{placeholder}`.
pub struct Secrets {
    pairs: Vec<(&'static str, String)>,
}

impl Secrets {
    /// Opens real links through the gateway (for the cookies) and mints or forges the rest.
    pub async fn open(gw: &TestGateway) -> Secrets {
        let now = unix_now();
        let ours = ring("k1", TEST_KEY);
        let stranger = ring("k1", STRANGER_KEY);
        let link_42 = gw.mint("42", "view").token;
        let unsigned = {
            // {"alg":"none","kid":"k1"} over real claims, with and without the trailing dot.
            let payload = link_42.split('.').nth(1).unwrap_or_default();
            format!("eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.{payload}")
        };
        let swapped = {
            // The claims of a case-43 link under the signature of a case-42 one.
            let other = gw.mint("43", "view").token;
            let mut parts: Vec<&str> = link_42.split('.').collect();
            parts[1] = other.split('.').nth(1).unwrap_or_default();
            parts.join(".")
        };
        let guest = |case: &str, expires_at: i64| super::guest(case, "guest", now, expires_at);
        let view = gw.open_link("42", "view").await;
        let view_value = view
            .split_once('=')
            .map_or("", |(_, value)| value)
            .to_owned();
        let pairs = vec![
            // A guest cookie (`name=value`) for case 42 in scope `view`, and in scope `guest`.
            ("{V}", view),
            ("{G}", gw.open_link("42", "guest").await),
            // A real guest cookie for another case.
            ("{V43}", gw.open_link("43", "view").await),
            // The value alone of a case-42 view cookie.
            ("{VV}", view_value),
            // Link paths: case 42 view, case 43 view, case 42 guest.
            ("{L}", gw.link_path("42", "view")),
            ("{L43}", gw.link_path("43", "view")),
            // Bare link tokens (no prefix), to pass where a cookie is expected.
            ("{T}", link_42.clone()),
            ("{TNONE}", unsigned),
            ("{TSWAP}", swapped),
            ("{TKID}", mint(&ring("k9", TEST_KEY), &claims("42", now))),
            // {"alg":"HS256","kid":"../k1"} over the claims and signature of a real link.
            (
                "{TKIDPATH}",
                with_header(&link_42, "eyJhbGciOiJIUzI1NiIsImtpZCI6Ii4uL2sxIn0"),
            ),
            // {"alg":"HS256","kid":"k1","jku":"http://evil.test/keys"}: a key URL to fetch.
            (
                "{TJKU}",
                with_header(
                    &link_42,
                    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwiamt1IjoiaHR0cDovL2V2aWwudGVzdC9rZXlzIn0",
                ),
            ),
            ("{TSTRANGER}", mint(&stranger, &claims("42", now))),
            (
                "{CSTRANGER}",
                format!(
                    "{COOKIE}={}",
                    cookie::seal(&stranger, &guest("42", now + 600)).expect("seal")
                ),
            ),
            (
                "{CEXPIRED}",
                format!(
                    "{COOKIE}={}",
                    cookie::seal(&ours, &guest("42", now - 5)).expect("seal")
                ),
            ),
        ];
        Secrets { pairs }
    }

    /// `template` with every placeholder replaced; the longest placeholders first, so `{V43}` is
    /// not read as `{V}` followed by `43}`.
    pub fn fill(&self, template: &str) -> Vec<u8> {
        let mut pairs: Vec<&(&str, String)> = self.pairs.iter().collect();
        pairs.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        let mut text = template.to_owned();
        for (name, value) in pairs {
            text = text.replace(name, value);
        }
        text.into_bytes()
    }
}

/// `token` with its JOSE header replaced by `header` (base64url), signature kept.
fn with_header(token: &str, header: &str) -> String {
    let rest = token.split_once('.').map_or("", |(_, rest)| rest);
    format!("{header}.{rest}")
}

fn ring(kid: &str, key: &str) -> KeyRing {
    KeyRing::new(kid, vec![(kid.to_owned(), decode_key(key).expect("key"))]).expect("ring")
}

fn claims(case: &str, now: i64) -> LinkClaims {
    LinkClaims {
        share_id: new_share_id().expect("randomness"),
        case: case.to_owned(),
        scope: "view".to_owned(),
        issued_at: now,
        expires_at: now + 3600,
        not_before: None,
        email: None,
        lang: None,
    }
}

/// Sends each row on its own connection and checks both what came back and what went upstream.
/// Every row runs; the mismatches are reported together.
pub async fn run_rows(gw: &TestGateway, rows: &[Row]) {
    let secrets = Secrets::open(gw).await;
    assert!(
        gw.upstream.take().is_empty(),
        "opening links reached the upstream"
    );
    let mut mismatches = Vec::new();
    for row in rows {
        let expected: Vec<(&str, &[Check])> =
            row.upstream.iter().map(|f| (f.line, f.checks)).collect();
        let (problems, _) =
            judge(gw, &secrets.fill(row.raw), row.name, row.replies, &expected).await;
        mismatches.extend(problems);
    }
    assert!(
        mismatches.is_empty(),
        "{} rows failed:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Sends `raw` on a fresh connection; answers every way the statuses read back or the requests
/// the upstream received differ from `replies` and `expected` (request line, then checks), and
/// hands back what the upstream received for any further claims.
pub async fn judge(
    gw: &TestGateway,
    raw: &[u8],
    name: &str,
    replies: &[u16],
    expected: &[(&str, &[Check])],
) -> (Vec<String>, Vec<Received>) {
    let statuses: Vec<u16> = exchange(gw.addr, raw)
        .await
        .iter()
        .map(|(status, _)| *status)
        .collect();
    let received = gw.upstream.take();
    let lines: Vec<&str> = received.iter().map(|r| r.request_line.as_str()).collect();
    let expected_lines: Vec<&str> = expected.iter().map(|(line, _)| *line).collect();
    if statuses != replies || lines != expected_lines {
        let mismatch = format!(
            "{name}:\n    statuses {statuses:?}, expected {replies:?}\n    upstream {lines:?}, expected {expected_lines:?}"
        );
        return (vec![mismatch], Vec::new());
    }
    let mut problems = Vec::new();
    for (request, (_, checks)) in received.iter().zip(expected) {
        problems.extend(framing_problems(request, gw.upstream.addr));
        problems.extend(check_problems(request, checks));
    }
    let problems = problems
        .into_iter()
        .map(|problem| format!("{name}: {problem}"))
        .collect();
    (problems, received)
}

/// What every forwarded guest request of case 42 carries, whatever the client tried: casegate's
/// identity and forwarding headers exactly once, and nothing that describes the client's
/// connection. Answers what is wrong, if anything.
pub fn framing_problems(request: &Received, upstream: SocketAddr) -> Vec<String> {
    let upstream = upstream.to_string();
    let mut problems = Vec::new();
    for (header, value) in [
        ("host", upstream.as_str()),
        ("x-casegate-case", "42"),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-host", "share.test"),
        ("x-forwarded-proto", "http"),
    ] {
        if request.header_count(header) != 1 || request.header(header) != Some(value) {
            problems.push(format!(
                "{header} must be exactly {value:?}: {:?}",
                request.headers
            ));
        }
    }
    for header in ["x-casegate-share", "x-casegate-scope"] {
        if request.header_count(header) != 1 {
            problems.push(format!("{header} count in {:?}", request.headers));
        }
    }
    for hop in [
        "cookie",
        "authorization",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "http2-settings",
        "expect",
    ] {
        if request.header(hop).is_some() {
            problems.push(format!("{hop} reached the upstream"));
        }
    }
    if request.header("content-length").is_some() && request.header("transfer-encoding").is_some() {
        problems.push(format!(
            "both framings reached the upstream: {:?}",
            request.headers
        ));
    }
    if request.headers.iter().any(|(n, _)| n.contains('_')) {
        problems.push(format!(
            "an underscore header reached the upstream: {:?}",
            request.headers
        ));
    }
    problems
}

/// Panics unless [`framing_problems`] finds nothing.
pub fn assert_casegate_framing(name: &str, request: &Received, upstream: SocketAddr) {
    let problems = framing_problems(request, upstream);
    assert!(problems.is_empty(), "{name}: {}", problems.join("; "));
}

/// Answers which of `checks` the forwarded request fails; a body is only allowed when a
/// [`Check::Body`] names it.
pub fn check_problems(request: &Received, checks: &[Check]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut body_checked = false;
    for check in checks {
        match check {
            Check::Is(header, value) => {
                if request.header_count(header) != 1 || request.header(header) != Some(*value) {
                    problems.push(format!(
                        "{header} must be exactly {value:?}: {:?}",
                        request.headers
                    ));
                }
            }
            Check::Absent(header) => {
                if request.header(header).is_some() {
                    problems.push(format!("{header} reached the upstream"));
                }
            }
            Check::Body(body) => {
                body_checked = true;
                if request.body != body.as_bytes() {
                    problems.push(format!(
                        "forwarded body {:?}, expected {body:?}",
                        String::from_utf8_lossy(&request.body)
                    ));
                }
            }
        }
    }
    if !body_checked && !request.body.is_empty() {
        problems.push(format!("a body reached the upstream: {:?}", request.body));
    }
    problems
}

/// Panics unless [`check_problems`] finds nothing.
pub fn assert_checks(name: &str, request: &Received, checks: &[Check]) {
    let problems = check_problems(request, checks);
    assert!(problems.is_empty(), "{name}: {}", problems.join("; "));
}

/// Sends `bytes` on one connection, reads until the gateway closes it, and splits what came back
/// into responses (status and headers each).
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<(u16, Vec<(String, String)>)> {
    let mut stream = TcpStream::connect(addr).await.expect("connect to gateway");
    stream.write_all(bytes).await.expect("write request");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the gateway hung: no close within 5 s");
    split_responses(&answer)
}

/// Cuts a byte stream into consecutive responses, using each one's own framing.
fn split_responses(mut bytes: &[u8]) -> Vec<(u16, Vec<(String, String)>)> {
    let mut responses = Vec::new();
    while let Some(response) = parse_response(bytes) {
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |end| end + 4);
        let length = response
            .header("content-length")
            .and_then(|length| length.parse::<usize>().ok());
        let consumed = match length {
            Some(length) if response.header("transfer-encoding").is_none() => head_end + length,
            // Chunked or close-delimited: in these tests only ever the last response.
            _ => bytes.len(),
        };
        let status = response.status;
        responses.push((status, response.headers));
        if (100..200).contains(&status) {
            bytes = &bytes[head_end..];
            responses.pop();
            continue;
        }
        bytes = &bytes[consumed.min(bytes.len())..];
    }
    responses
}
