//! Resource exhaustion (issue 8, section 3), against the real `casegate serve` binary on loopback:
//! while one attack runs, an honest guest on other connections keeps getting 200 quickly, the
//! gateway's own resident memory (VmRSS of the child process) stays bounded, and the attacker's
//! connections are closed within the configured limits. Attackers connect from 127.0.0.2 and the
//! guest from 127.0.0.1, so per-address limits never count the guest with the attacker.
//!
//! Each test is bounded (a few seconds of attack), runs alone (they share a lock) and prints what
//! it measured; `cargo test --test exhaustion -- --nocapture` shows the numbers.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use common::forms::{cookie_of, form_token};
use common::h2_frames::{self as h2, Frame};
use common::raw_client::{RawResponse, parse_response, send_raw};
use common::serve_process::Serve;
use common::smtp::TestSmtp;
use common::upstream::{Received, TestUpstream};

const ATTACKER: [u8; 4] = [127, 0, 0, 2];
/// What an honest guest may wait for one page during an attack: generous, since CI runs this on
/// 2 shared cores; without the limits these attacks starve the guest for seconds or for good.
const GUEST_P99: Duration = Duration::from_secs(1);
const GUEST_MAX: Duration = Duration::from_secs(3);
/// How much the gateway's resident memory may grow during an attack.
const RSS_GROWTH_KIB: u64 = 64 * 1024;
/// Added to a configured timeout before the test calls it missed: timers are not exact and the
/// machine is shared.
const MARGIN: Duration = Duration::from_millis(1500);

/// The gateway under attack, its upstream, and a guest cookie for case 42 (scope `guest`, which
/// may POST comments).
struct Target {
    serve: Serve,
    upstream: TestUpstream,
    cookie: String,
    /// One attack at a time: two at once on 2 cores would measure each other.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_ATTACK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts `casegate serve` with `limits` as its `[server.limits]` table.
async fn target(limits: &str) -> Target {
    target_with(limits, "").await
}

/// Starts `casegate serve` with `limits` as its `[server.limits]` table and `extra` top-level TOML.
async fn target_with(limits: &str, extra: &str) -> Target {
    let serial = ONE_ATTACK_AT_A_TIME.lock().await;
    let upstream = TestUpstream::start().await;
    let text = common::config_text(
        &upstream.url(),
        &format!("[server.limits]\n{limits}"),
        &format!("[state]\npath = \"state\"\n{extra}"),
    )
    .replace("response_timeout = \"1s\"", "response_timeout = \"10s\"");
    let serve = Serve::start(&text).await;
    let token = serve
        .minter
        .mint_link(
            &casegate::gateway::ShareRequest {
                case: "42",
                scope: "guest",
                ttl: None,
                email: None,
                lang: None,
            },
            casegate::clock::unix_now(),
        )
        .expect("mint")
        .token;
    let exchange =
        format!("GET /s/{token} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n");
    let answer = send_raw(serve.addr, exchange.as_bytes())
        .await
        .expect("a link exchange answer");
    assert_eq!(answer.status, 303, "{}", answer.text());
    let cookie = common::raw_client::cookie_pair(&answer);
    Target {
        serve,
        upstream,
        cookie,
        _serial: serial,
    }
}

/// Connects to `addr` from `source` (any 127/8 address works on Linux loopback).
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(addr).await
}

/// Reads until the server closes (EOF or reset) and says how long that took from `since`; `None`
/// when it is still open after `limit`.
async fn closed_within(
    stream: &mut TcpStream,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut sink = [0u8; 4096];
    let closed = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, closed).await.ok()?;
    Some(since.elapsed())
}

// === The honest guest and the memory watch ===

/// What the honest guest saw: each request's status and time.
struct GuestReport {
    answers: Vec<(u16, Duration)>,
}

impl GuestReport {
    fn assert_served(&self, attack: &str, at_least: usize) {
        assert!(
            self.answers.len() >= at_least,
            "{attack}: the guest got only {} answers",
            self.answers.len()
        );
        let refused: Vec<_> = self.answers.iter().filter(|(s, _)| *s != 200).collect();
        assert!(
            refused.is_empty(),
            "{attack}: the guest was refused: {refused:?}"
        );
        let mut times: Vec<Duration> = self.answers.iter().map(|(_, t)| *t).collect();
        times.sort();
        let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
        let max = *times.last().unwrap();
        let median = times[times.len() / 2];
        eprintln!(
            "{attack}: guest {} requests, median {median:?}, p99 {p99:?}, max {max:?}",
            times.len()
        );
        assert!(p99 < GUEST_P99, "{attack}: guest p99 {p99:?}");
        assert!(max < GUEST_MAX, "{attack}: guest max {max:?}");
    }
}

/// An honest guest that asks for case 42 on a fresh connection every 50 ms until stopped.
struct Guest {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<GuestReport>,
}

impl Guest {
    fn start(addr: SocketAddr, cookie: &str) -> Guest {
        let stop = Arc::new(AtomicBool::new(false));
        let request = format!(
            "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        );
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let started = Instant::now();
                let answer = tokio::time::timeout(
                    Duration::from_secs(10),
                    send_raw(addr, request.as_bytes()),
                )
                .await;
                let status = match answer {
                    Ok(Some(response)) => response.status,
                    Ok(None) => 0,
                    Err(_) => 999,
                };
                answers.push((status, started.elapsed()));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            GuestReport { answers }
        });
        Guest { stop, task }
    }

    async fn finish(self) -> GuestReport {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the guest task")
    }
}

/// Samples the gateway's VmRSS every 100 ms until stopped; reports the peak.
struct MemoryWatch {
    baseline_kib: u64,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl MemoryWatch {
    fn start(serve: &Serve) -> MemoryWatch {
        let baseline_kib = serve.rss_kib();
        let pid = serve.child.id();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut peak = 0;
            while !stopped.load(Ordering::Relaxed) {
                if let Some(rss) = rss_of(pid) {
                    peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        });
        MemoryWatch {
            baseline_kib,
            stop,
            task,
        }
    }

    async fn assert_bounded(self, attack: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.task.await.expect("the memory watch");
        eprintln!(
            "{attack}: gateway VmRSS {} KiB before, {peak} KiB at the peak",
            self.baseline_kib
        );
        assert!(
            peak < self.baseline_kib + RSS_GROWTH_KIB,
            "{attack}: VmRSS grew from {} KiB to {peak} KiB",
            self.baseline_kib
        );
    }
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Starts the guest and the memory watch, runs `attack`, and checks both afterwards.
async fn under_attack<T>(target: &Target, name: &str, attack: impl Future<Output = T>) -> T {
    // One request first, so the baseline includes a warmed-up request path.
    let warm = Guest::start(target.serve.addr, &target.cookie);
    tokio::time::sleep(Duration::from_millis(200)).await;
    warm.finish()
        .await
        .assert_served(&format!("{name} (before)"), 1);
    let memory = MemoryWatch::start(&target.serve);
    let guest = Guest::start(target.serve.addr, &target.cookie);
    let started = Instant::now();
    let outcome = attack.await;
    // An attack the gateway cut short still gets a guest measured for a while after it.
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
    guest.finish().await.assert_served(name, 5);
    memory.assert_bounded(name).await;
    outcome
}

/// The slowest of the attacker's connections to close; panics if any stayed open past `limit`.
fn slowest(closings: Vec<Option<Duration>>, limit: Duration, attack: &str) -> Duration {
    let open = closings.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        open, 0,
        "{attack}: {open} attacker connections still open after {limit:?}"
    );
    let slowest = closings.into_iter().flatten().max().unwrap_or_default();
    eprintln!("{attack}: every attacker connection closed, the last after {slowest:?}");
    slowest
}

// === HTTP/1 ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_a_byte_at_a_time_are_cut_at_the_header_timeout() {
    let target = target("header_read_timeout = \"2s\"\n").await;
    let addr = target.serve.addr;
    let closings = under_attack(&target, "slowloris", async {
        let mut attackers = JoinSet::new();
        for _ in 0..200 {
            attackers.spawn(async move {
                let mut stream = connect_from(ATTACKER, addr).await.ok()?;
                let started = Instant::now();
                let head = b"GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nX-Slow: ";
                // A byte every 100 ms: the connection is never idle, the head never ends.
                for byte in head.iter().chain(std::iter::repeat(&b'a')).take(100) {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return Some(started.elapsed());
                    }
                    let mut probe = [0u8; 1];
                    match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                        Ok(Ok(_)) | Err(_) => {}
                    }
                }
                None
            });
        }
        attackers.join_all().await
    })
    .await;
    let slowest = slowest(closings, Duration::from_secs(10), "slowloris");
    assert!(
        slowest < Duration::from_secs(2) + MARGIN,
        "slowloris: {slowest:?}"
    );
    assert!(
        target
            .upstream
            .take()
            .iter()
            .all(|r| r.header("x-slow").is_none()),
        "no slow head reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_bodies_are_cut_at_the_body_pace_and_a_brisk_body_still_passes() {
    let target = target("body_read_timeout = \"1s\"\nbody_min_rate = 100\n").await;
    let addr = target.serve.addr;
    let cookie = target.cookie.clone();
    let closings = under_attack(&target, "slow bodies", async {
        let mut attackers = JoinSet::new();
        for _ in 0..100 {
            let cookie = cookie.clone();
            attackers.spawn(async move {
                let mut stream = connect_from(ATTACKER, addr).await.ok()?;
                let head = format!(
                    "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\n\
                     Content-Type: text/plain\r\nContent-Length: 10000\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).await.ok()?;
                let started = Instant::now();
                // 10 bytes a second, a tenth of body_min_rate: by the deadline's sum
                // (1 s + received / 100 B/s) the body is late after about 1.1 s.
                let mut answer = Vec::new();
                for _ in 0..100 {
                    if stream.write_all(b"x").await.is_err() {
                        break;
                    }
                    let mut chunk = [0u8; 4096];
                    match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut chunk)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
                        Err(_) => {}
                    }
                }
                // Whatever the gateway answered, it must also close the connection.
                let closed = closed_within(&mut stream, started, Duration::from_secs(5)).await?;
                let status = String::from_utf8_lossy(&answer).split(' ').nth(1).map(str::to_owned);
                Some((closed, status))
            });
        }
        attackers.join_all().await
    })
    .await;
    let statuses: Vec<_> = closings
        .iter()
        .map(|c| c.as_ref().map(|(_, s)| s.clone()))
        .collect();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, Some(Some(code)) if code == "400")),
        "every slow body is answered 400: {statuses:?}"
    );
    let slowest = slowest(
        closings.into_iter().map(|c| c.map(|(t, _)| t)).collect(),
        Duration::from_secs(5),
        "slow bodies",
    );
    assert!(
        slowest < Duration::from_millis(1100) + MARGIN,
        "slow bodies: {slowest:?}"
    );

    // The pace asks nothing of an honest upload: 4 KB at once is forwarded whole.
    target.upstream.take();
    let body = vec![b'c'; 4000];
    let brisk = common::request(
        addr,
        "POST",
        "/api/cases/42/comments",
        &[
            &format!("Cookie: {}", target.cookie),
            "Content-Type: text/plain",
        ],
        &body,
    )
    .await;
    assert_eq!(brisk.status, 200, "{}", brisk.text());
    let received = target.upstream.take();
    assert!(
        received.iter().any(|r| r.body.len() == 4000),
        "{received:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_and_idle_http2_connections_are_closed_at_their_timeouts() {
    let target = target("header_read_timeout = \"2s\"\nidle_timeout = \"3s\"\n").await;
    let addr = target.serve.addr;
    let closings = under_attack(&target, "idle connections", async {
        let mut attackers = JoinSet::new();
        for n in 0..300 {
            attackers.spawn(async move {
                let mut stream = connect_from(ATTACKER, addr).await.ok()?;
                if n % 3 == 0 {
                    // HTTP/2: a handshake, then nothing; closed at idle_timeout.
                    h2::handshake(&mut stream).await;
                    let since = Instant::now();
                    let closed = closed_within(&mut stream, since, Duration::from_secs(10)).await?;
                    return Some(("h2", closed));
                }
                // HTTP/1.1: one answered request, then silence on the kept-alive connection;
                // the wait for the next head runs under header_read_timeout.
                stream
                    .write_all(b"GET /cases/42 HTTP/1.1\r\nHost: share.test\r\n\r\n")
                    .await
                    .ok()?;
                let since = Instant::now();
                let closed = closed_within(&mut stream, since, Duration::from_secs(10)).await?;
                Some(("h1", closed))
            });
        }
        attackers.join_all().await
    })
    .await;
    let open = closings.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} idle connections outlived their timeout");
    for (protocol, limit) in [
        ("h1", Duration::from_secs(2)),
        ("h2", Duration::from_secs(3)),
    ] {
        let slowest = closings
            .iter()
            .flatten()
            .filter(|(p, _)| *p == protocol)
            .map(|(_, t)| *t)
            .max()
            .expect("some connections");
        eprintln!("idle {protocol}: the last closed after {slowest:?} (limit {limit:?})");
        assert!(slowest < limit + MARGIN, "idle {protocol}: {slowest:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_max_connections_per_address_and_the_rest_are_closed_at_once() {
    let mut target = target(
        "header_read_timeout = \"30s\"\nidle_timeout = \"30s\"\nmax_connections = 100\n\
         max_connections_per_address = 20\n",
    )
    .await;
    let addr = target.serve.addr;
    let (held, refused) = under_attack(&target, "one address", async {
        let mut held = Vec::new();
        let mut refused = 0;
        // Sequential, so each one's fate is known before the next: held open or closed at once.
        for _ in 0..150 {
            let mut stream = connect_from(ATTACKER, addr).await.expect("connect");
            let since = Instant::now();
            match closed_within(&mut stream, since, Duration::from_millis(300)).await {
                Some(_) => refused += 1,
                None => held.push(stream),
            }
        }
        (held, refused)
    })
    .await;
    eprintln!("one address: {} held, {refused} closed at once", held.len());
    assert_eq!(
        held.len(),
        20,
        "exactly max_connections_per_address are held"
    );
    assert_eq!(refused, 130);
    // A slot freed is a slot the address gets back.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect_from(ATTACKER, addr).await.expect("connect");
    assert!(
        closed_within(&mut again, Instant::now(), Duration::from_millis(300))
            .await
            .is_none(),
        "after its connections closed, the address is served again"
    );
    target
        .serve
        .wait_for_log(
            "connection limit per address reached",
            Duration::from_secs(2),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_targets_are_refused_before_the_upstream_and_their_connections_closed()
{
    let target = target("max_header_bytes = 16384\n").await;
    let addr = target.serve.addr;
    let closings = under_attack(&target, "oversized heads", async {
        let mut attackers = JoinSet::new();
        for n in 0..200 {
            attackers.spawn(async move {
                let request = if n % 2 == 0 {
                    let filler = "a".repeat(100 * 1024);
                    format!("GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nX-Big: {filler}\r\n\r\n")
                } else {
                    let filler = "b".repeat(20 * 1024);
                    format!("GET /cases/42/{filler} HTTP/1.1\r\nHost: share.test\r\n\r\n")
                };
                let mut stream = connect_from(ATTACKER, addr).await.ok()?;
                let since = Instant::now();
                // The gateway may answer and close before reading it all: a failed write is fine.
                let _ = stream.write_all(request.as_bytes()).await;
                let mut answer = Vec::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
                        .await;
                let status = String::from_utf8_lossy(&answer)
                    .split(' ')
                    .nth(1)
                    .map(str::to_owned);
                read.is_ok().then(|| (since.elapsed(), status))
            });
        }
        attackers.join_all().await
    })
    .await;
    for closing in closings.iter().flatten() {
        assert!(
            matches!(closing.1.as_deref(), None | Some("400" | "414" | "431")),
            "an oversized head is refused: {closing:?}"
        );
    }
    let slowest = slowest(
        closings.into_iter().map(|c| c.map(|(t, _)| t)).collect(),
        Duration::from_secs(5),
        "oversized heads",
    );
    assert!(slowest < MARGIN, "oversized heads: {slowest:?}");
    let leaked: Vec<_> = target
        .upstream
        .take()
        .into_iter()
        .filter(|r| r.header("x-big").is_some() || r.target().len() > 16 * 1024)
        .collect();
    assert!(
        leaked.is_empty(),
        "oversized requests reached the upstream: {}",
        leaked.len()
    );
}

// === HTTP/2 ===

/// Reads frames until the server closes; returns them.
async fn frames_until_closed(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    limit: Duration,
) -> (Vec<Frame>, bool) {
    let mut frames = Vec::new();
    let read_all = async {
        while let Some(frame) = h2::read_frame(&mut reader).await {
            frames.push(frame);
        }
    };
    let closed = tokio::time::timeout(limit, read_all).await.is_ok();
    (frames, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_gets_goaway_and_hardly_any_request_reaches_the_upstream() {
    let target = target("").await;
    let addr = target.serve.addr;
    let block = h2::get_block("/cases/42", Some(&target.cookie));
    const PAIRS: u32 = 20_000;
    let (sent, frames, closed, elapsed) = under_attack(&target, "rapid reset", async {
        let mut stream = connect_from(ATTACKER, addr).await.expect("connect");
        h2::handshake(&mut stream).await;
        let (reader, mut writer) = stream.into_split();
        let started = Instant::now();
        let frames = tokio::spawn(frames_until_closed(reader, Duration::from_secs(15)));
        let mut sent = 0;
        'attack: for batch in 0..PAIRS / 500 {
            let mut bytes = Vec::new();
            for pair in 0..500 {
                let id = 1 + 2 * (batch * 500 + pair);
                bytes.extend(h2::frame(
                    h2::HEADERS,
                    h2::END_HEADERS | h2::END_STREAM,
                    id,
                    &block,
                ));
                bytes.extend(h2::rst_stream(id, h2::CANCEL));
            }
            if writer.write_all(&bytes).await.is_err() {
                break 'attack;
            }
            sent += 500;
        }
        let (frames, closed) = frames.await.expect("the reader");
        (sent, frames, closed, started.elapsed())
    })
    .await;
    let goaway = frames.iter().find(|f| f.kind == h2::GOAWAY);
    let forwarded = target.upstream.take().len();
    eprintln!(
        "rapid reset: {sent} HEADERS+RST_STREAM pairs written, GOAWAY {:?}, closed {closed} after \
         {elapsed:?}, {forwarded} requests reached the upstream",
        goaway.and_then(Frame::error_code)
    );
    assert_eq!(
        goaway.and_then(Frame::error_code),
        Some(h2::ENHANCE_YOUR_CALM),
        "GOAWAY(ENHANCE_YOUR_CALM)"
    );
    assert!(closed, "the attacker's connection is closed");
    assert!(
        forwarded < 1000,
        "{forwarded} cancelled streams reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_continuation_flood_gets_goaway_after_a_few_frames() {
    let target = target("max_header_bytes = 16384\n").await;
    let addr = target.serve.addr;
    let (written, frames, closed) = under_attack(&target, "CONTINUATION flood", async {
        let mut stream = connect_from(ATTACKER, addr).await.expect("connect");
        h2::handshake(&mut stream).await;
        let (reader, mut writer) = stream.into_split();
        let frames = tokio::spawn(frames_until_closed(reader, Duration::from_secs(15)));
        // A header block that never ends: HEADERS without END_HEADERS, then CONTINUATION frames
        // of 16 KiB each (the default max frame size), up to 64 MiB if nobody stops it.
        let mut written = 0usize;
        let first = h2::get_block("/cases/42", None);
        let mut fragment = Vec::new();
        while fragment.len() + 120 <= 16 * 1024 {
            h2::hpack_field(&mut fragment, "x-flood", &"f".repeat(100));
        }
        if writer
            .write_all(&h2::frame(h2::HEADERS, h2::END_STREAM, 1, &first))
            .await
            .is_ok()
        {
            let continuation = h2::frame(h2::CONTINUATION, 0, 1, &fragment);
            while written < 64 * 1024 * 1024 {
                if writer.write_all(&continuation).await.is_err() {
                    break;
                }
                written += continuation.len();
            }
        }
        let (frames, closed) = frames.await.expect("the reader");
        (written, frames, closed)
    })
    .await;
    let goaway = frames.iter().find(|f| f.kind == h2::GOAWAY);
    eprintln!(
        "CONTINUATION flood: {written} bytes written until the socket failed (loopback buffers \
         included), GOAWAY {:?}, closed {closed}",
        goaway.and_then(Frame::error_code)
    );
    // h2 allows max_header_bytes / 16 KiB CONTINUATION frames plus a quarter (at least 5), then
    // ends the connection; what was written past that sat in the loopback socket buffers.
    assert_eq!(
        goaway.and_then(Frame::error_code),
        Some(h2::ENHANCE_YOUR_CALM),
        "GOAWAY(ENHANCE_YOUR_CALM)"
    );
    assert!(closed, "the flooding connection is closed");
    assert!(
        written < 16 * 1024 * 1024,
        "{written} bytes of one header block were taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_max_concurrent_streams_is_advertised_and_held() {
    let target = target("h2_max_concurrent_streams = 8\n").await;
    let addr = target.serve.addr;
    let mut stream = connect_from(ATTACKER, addr).await.expect("connect");
    let settings = h2::handshake(&mut stream).await;
    assert_eq!(
        settings.setting(h2::SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(8)
    );
    target.upstream.take();
    // 20 requests the upstream answers only after 3 s, all at once.
    let block = h2::get_block("/cases/42/slow", Some(&target.cookie));
    let mut bytes = Vec::new();
    for n in 0..20u32 {
        bytes.extend(h2::frame(
            h2::HEADERS,
            h2::END_HEADERS | h2::END_STREAM,
            1 + 2 * n,
            &block,
        ));
    }
    stream.write_all(&bytes).await.expect("send");
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(frame)) =
        tokio::time::timeout_at(deadline.into(), h2::read_frame(&mut stream)).await
    {
        if frame.kind == h2::RST_STREAM && frame.error_code() == Some(h2::REFUSED_STREAM) {
            refused += 1;
        }
    }
    let upstream = target.upstream.take().len();
    eprintln!("max concurrent streams 8: {upstream} reached the upstream, {refused} refused");
    assert!(upstream <= 8, "{upstream} streams ran at once");
    assert_eq!(refused, 12, "the streams over the limit are refused");
}

// === The link endpoint ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hammering_the_link_endpoint_stays_cheap_and_reaches_nothing_upstream() {
    let target = target("").await;
    let addr = target.serve.addr;
    let valid = common::view_link_token(&target.serve.minter, "42");
    target.upstream.take();
    let (answered, elapsed) = under_attack(&target, "link hammer", async {
        let started = Instant::now();
        let mut attackers = JoinSet::new();
        for worker in 0..8 {
            let valid = valid.clone();
            attackers.spawn(async move {
                let mut statuses = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(3);
                let mut n = 0u32;
                while Instant::now() < deadline {
                    n += 1;
                    // Forged tokens of every shape, and a valid one exchanged again and again.
                    let token = match n % 4 {
                        0 => valid.clone(),
                        1 => format!("{}x", &valid[..valid.len() - 1]),
                        2 => "A".repeat(4000),
                        _ => format!("eyJ{worker}{n}.garbage.sig"),
                    };
                    let request = format!(
                        "GET /s/{token} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n"
                    );
                    let Ok(mut stream) = connect_from(ATTACKER, addr).await else {
                        continue;
                    };
                    let _ = stream.write_all(request.as_bytes()).await;
                    let mut answer = Vec::new();
                    let _ = stream.read_to_end(&mut answer).await;
                    let status = String::from_utf8_lossy(&answer)
                        .split(' ')
                        .nth(1)
                        .map(str::to_owned);
                    statuses.push((n.is_multiple_of(4), status));
                }
                statuses
            });
        }
        let answered: Vec<_> = attackers.join_all().await.into_iter().flatten().collect();
        (answered, started.elapsed())
    })
    .await;
    let rate = answered.len() as f64 / elapsed.as_secs_f64();
    eprintln!(
        "link hammer: {} exchanges in {elapsed:?} ({rate:.0}/s)",
        answered.len()
    );
    for (valid, status) in &answered {
        let expected = if *valid { "303" } else { "403" };
        assert_eq!(status.as_deref(), Some(expected), "valid: {valid}");
    }
    assert!(rate > 100.0, "link exchanges are cheap: {rate:.0}/s");
    let forwarded = target.upstream.take();
    assert!(
        forwarded.iter().all(|r| r.target() == "/cases/42"),
        "a link exchange never reaches the upstream (only the guest's pages do): {:?}",
        forwarded.iter().map(Received::target).collect::<Vec<_>>()
    );
}

// === The code endpoints ===

/// One request from the attacker's address, `Connection: close`; `None` if closed unanswered.
async fn attacker_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &str,
) -> Option<RawResponse> {
    let mut text =
        format!("{method} {target} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut stream = connect_from(ATTACKER, addr).await.ok()?;
    stream.write_all(text.as_bytes()).await.ok()?;
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .ok()?
        .ok()?;
    parse_response(&bytes)
}

/// An attacker's verification session: the cookie of a `checked` link and its form token.
async fn verification_session(serve: &Serve, email: &str) -> (String, String) {
    let link = common::checked_link(&serve.minter, email);
    let opened = attacker_request(serve.addr, "GET", &link, &[], "")
        .await
        .expect("an answer");
    let cookie = cookie_of(&opened).expect("the link sets a cookie");
    let page = attacker_request(
        serve.addr,
        "GET",
        "/s/verify",
        &[&format!("Cookie: {cookie}"), "Accept: text/html"],
        "",
    )
    .await
    .expect("the verification page");
    let csrf = form_token(&page.text()).expect("a form token");
    (cookie, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hammering_the_code_endpoints_from_one_address_sends_no_more_than_its_limits_allow() {
    let smtp = TestSmtp::start().await;
    let verify = common::checked_scope_config(
        &smtp.url(),
        "max_sends_per_address_per_hour = 5\nmax_failures_per_address_per_hour = 20",
    );
    let target = target_with("", &verify).await;
    let addr = target.serve.addr;
    let mut sessions = Vec::new();
    for n in 0..10 {
        sessions
            .push(verification_session(&target.serve, &format!("victim{n}@clinic.example")).await);
    }
    let statuses = under_attack(&target, "code hammer", async {
        let mut attackers = JoinSet::new();
        for (cookie, csrf) in sessions {
            for round in 0..10 {
                let (cookie, csrf) = (cookie.clone(), csrf.clone());
                attackers.spawn(async move {
                    let cookie = format!("Cookie: {cookie}");
                    let headers = [
                        cookie.as_str(),
                        "Content-Type: application/x-www-form-urlencoded",
                        "Accept: text/html",
                    ];
                    let (path, body) = if round % 2 == 0 {
                        ("/s/verify/send", format!("csrf={csrf}"))
                    } else {
                        (
                            "/s/verify/code",
                            format!("csrf={csrf}&code={:06}", round * 7919),
                        )
                    };
                    attacker_request(addr, "POST", path, &headers, &body)
                        .await
                        .map(|r| (path, r.status))
                });
            }
        }
        attackers.join_all().await
    })
    .await;
    // Give a mail still on its way the time to arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.count();
    let limited = statuses
        .iter()
        .flatten()
        .filter(|(_, status)| *status == 429)
        .count();
    eprintln!(
        "code hammer: 100 form posts from one address, {mails} mails sent, {limited} answered 429"
    );
    assert!(
        statuses.iter().all(Option::is_some),
        "every post is answered"
    );
    assert!(
        mails <= 5,
        "max_sends_per_address_per_hour = 5, yet {mails} mails were sent"
    );
    assert!(
        limited >= 40,
        "the posts over the limits are refused: {statuses:?}"
    );
    // Another address is not punished for this one's abuse: its code is sent.
    let (cookie, csrf) = {
        let token = common::checked_link(&target.serve.minter, "honest@clinic.example");
        let opened = common::request(addr, "GET", &token, &[], b"").await;
        let cookie = cookie_of(&opened).expect("the link sets a cookie");
        let page = common::request(
            addr,
            "GET",
            "/s/verify",
            &[&format!("Cookie: {cookie}"), "Accept: text/html"],
            b"",
        )
        .await;
        (cookie, form_token(&page.text()).expect("a form token"))
    };
    let sent = common::request(
        addr,
        "POST",
        "/s/verify/send",
        &[
            &format!("Cookie: {cookie}"),
            "Content-Type: application/x-www-form-urlencoded",
        ],
        format!("csrf={csrf}").as_bytes(),
    )
    .await;
    assert_eq!(sent.status, 303, "{}", sent.text());
    smtp.wait_for_mail("honest@clinic.example", Duration::from_secs(10))
        .await;
}
