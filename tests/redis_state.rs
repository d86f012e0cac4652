//! Several gateways sharing their state through one real Redis (`redis-server` from PATH, started
//! by the tests): shares created on one are listed and opened on another, a revoke answered by
//! one is enforced by the other within a second (measured and printed), use counts cross over
//! without being counted twice, and Redis killed mid-test is survived as designed: guests are
//! served on the last-known revocations until `max_staleness`, then refused with the
//! "temporarily unavailable" page, admin writes answer 503, `/readyz` says degraded and then
//! not ready; once Redis is back every gateway recovers on its own and every revoke answered
//! before the kill still holds. One test runs two real `casegate serve` processes.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::raw_client::{RawResponse, admin_request, cookie_pair, send_raw};
use common::redis_server::RedisServer;
use common::upstream::TestUpstream;
use common::{TestGateway, config_text};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "redis-state-admin-token-0123456789abcdef";
/// What the issue asks for: a revoke on one replica holds on all of them within this time.
const CROSS_REPLICA_DEADLINE: Duration = Duration::from_secs(1);

/// `[state]` on Redis plus an admin API on a free port.
fn shared_config(upstream: &TestUpstream, url: &str, state_extra: &str) -> String {
    let extra = format!(
        r#"
[state]
backend = "redis"
url = "{url}"
key_prefix = "test:"
{state_extra}

[admin]
listen = "127.0.0.1:0"

[[admin.clients]]
name = "case-app"
token = {{ value = "{ADMIN_TOKEN}" }}
scopes = ["view"]
"#
    );
    config_text(&upstream.url(), "", &extra)
}

async fn replica(redis: &RedisServer, state_extra: &str) -> TestGateway {
    let upstream = TestUpstream::start().await;
    let text = shared_config(&upstream, &redis.url(), state_extra);
    TestGateway::start_from_text(upstream, &text).await
}

/// An admin API call with the test client's token; the status and the JSON answer.
async fn admin(gw: &TestGateway, method: &str, target: &str, body: Option<Value>) -> (u16, Value) {
    let addr = gw.admin_addr().expect("the admin API is listening");
    admin_at(addr, method, target, body).await
}

async fn admin_at(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|json| json.to_string());
    let request = admin_request(method, target, ADMIN_TOKEN, body.as_deref());
    let response = send_raw(addr, &request)
        .await
        .expect("an answer from the admin API");
    let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, json)
}

/// Creates a share of `case` through `gw`'s admin API: its id and link path.
async fn create(gw: &TestGateway, case: &str) -> (String, String) {
    let (status, share) = admin(
        gw,
        "POST",
        "/v1/shares",
        Some(json!({"case": case, "scope": "view", "ttl": "1h"})),
    )
    .await;
    assert_eq!(status, 201, "create: {share}");
    let token = share["token"].as_str().expect("token").to_owned();
    (
        share["id"].as_str().expect("id").to_owned(),
        format!("/s/{token}"),
    )
}

async fn browse(gw: &TestGateway, case: &str, cookie: &str) -> RawResponse {
    gw.get(
        &format!("/cases/{case}"),
        &[&format!("Cookie: {cookie}"), "Accept: application/json"],
    )
    .await
}

async fn share(gw: &TestGateway, id: &str) -> Value {
    let (status, share) = admin(gw, "GET", &format!("/v1/shares/{id}"), None).await;
    assert_eq!(status, 200, "{share}");
    share
}

async fn readyz(gw: &TestGateway) -> (u16, Value) {
    let addr = gw.admin_addr().expect("the admin API is listening");
    let request = b"GET /readyz HTTP/1.1\r\nHost: admin.test\r\nConnection: close\r\n\r\n";
    let response = send_raw(addr, request).await.expect("an answer to /readyz");
    let json = serde_json::from_slice(&response.body).expect("readyz answers JSON");
    (response.status, json)
}

/// Polls `probe` every 10 ms until it returns true; how long that took, or a panic naming `what`
/// after `limit`.
async fn time_until<F, Fut>(what: &str, limit: Duration, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if probe().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn error_code(response: &RawResponse) -> String {
    let json: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    json["error"]["code"].as_str().unwrap_or("").to_owned()
}

/// Waits until the wall clock is past `unix_secs`: a case cut-off covers links issued up to the
/// second it was made.
async fn wait_until_after(unix_secs: i64) {
    while casegate::clock::unix_now() <= unix_secs {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_created_on_one_replica_opens_on_another_and_revokes_cross_within_a_second() {
    let redis = RedisServer::start();
    let a = replica(&redis, "").await;
    let b = replica(&redis, "").await;

    let (id, link) = create(&a, "42").await;
    // B learns of the share from the stream, not from the link: its admin API lists it.
    let listed = time_until(
        "B lists the share A created",
        Duration::from_secs(5),
        || async {
            let (status, list) = admin(&b, "GET", "/v1/shares?case=42", None).await;
            status == 200
                && list["shares"]
                    .as_array()
                    .is_some_and(|shares| shares.iter().any(|s| s["id"] == id.as_str()))
        },
    )
    .await;
    println!("share created on A listed by B after {listed:?}");

    let cookie = b.exchange(&link).await;
    assert_eq!(browse(&b, "42", &cookie).await.status, 200);

    // Revoke on A; from its answer on, B must refuse within a second.
    let (status, revoked) = admin(&a, "DELETE", &format!("/v1/shares/{id}"), None).await;
    assert_eq!(status, 200, "{revoked}");
    let delay = time_until(
        "B refuses the revoked cookie",
        CROSS_REPLICA_DEADLINE,
        || async { browse(&b, "42", &cookie).await.status == 410 },
    )
    .await;
    println!("revoke by id acked by A, enforced by B after {delay:?}");
    assert!(delay < CROSS_REPLICA_DEADLINE, "{delay:?}");
    let reopened = b.get(&link, &["Accept: application/json"]).await;
    assert_eq!(reopened.status, 410);
    assert_eq!(error_code(&reopened), "revoked_link");
    let (_, shown) = admin(&b, "GET", &format!("/v1/shares/{id}"), None).await;
    assert_eq!(shown["status"], "revoked", "{shown}");

    // A whole case, revoked on B this time, refused on A.
    let (_, case_link) = create(&a, "43").await;
    let case_cookie = a.exchange(&case_link).await;
    assert_eq!(browse(&a, "43", &case_cookie).await.status, 200);
    let (status, cut) = admin(&b, "POST", "/v1/cases/43/revoke", None).await;
    assert_eq!(status, 200, "{cut}");
    let delay = time_until(
        "A refuses the revoked case",
        CROSS_REPLICA_DEADLINE,
        || async { browse(&a, "43", &case_cookie).await.status == 410 },
    )
    .await;
    println!("revoke of a case acked by B, enforced by A after {delay:?}");
    assert!(delay < CROSS_REPLICA_DEADLINE, "{delay:?}");
    // Links of the case issued after the cut-off work on both.
    wait_until_after(cut["not_before"].as_i64().expect("not_before")).await;
    let (_, later) = create(&b, "43").await;
    let later_cookie = a.exchange(&later).await;
    assert_eq!(browse(&a, "43", &later_cookie).await.status, 200);
    assert_eq!(browse(&b, "43", &later_cookie).await.status, 200);

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_counts_cross_replicas_and_are_never_counted_twice() {
    let redis = RedisServer::start();
    // A resync every second re-reads every counter: a double count would show after it.
    let timing = "resync_interval = \"1s\"\nuse_flush_interval = \"100ms\"";
    let a = replica(&redis, timing).await;
    let b = replica(&redis, timing).await;
    let (id, link) = create(&a, "42").await;
    let cookie = b.exchange(&link).await;
    b.exchange(&link).await;
    assert_eq!(browse(&b, "42", &cookie).await.status, 200);
    a.exchange(&link).await;

    let seen = time_until(
        "both replicas count three uses",
        Duration::from_secs(5),
        || async { share(&a, &id).await["uses"] == 3 && share(&b, &id).await["uses"] == 3 },
    )
    .await;
    println!("uses recorded on A and B visible on both after {seen:?}");
    // Two resyncs later, still three on both: a replica's own batch, met again in the stream
    // and in the resync, is not added again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (name, gw) in [("A", &a), ("B", &b)] {
        let share = share(gw, &id).await;
        assert_eq!(share["uses"], 3, "{name}: {share}");
        assert_eq!(share["status"], "active", "{name}: {share}");
        assert!(share["last_used_at"].is_i64(), "{name}: {share}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted_fails_closed_after_max_staleness_and_recovers() {
    let mut redis = RedisServer::start();
    let staleness = "max_staleness = \"3s\"\nresync_interval = \"2s\"";
    let a = replica(&redis, staleness).await;
    let b = replica(&redis, staleness).await;

    let (kept, kept_link) = create(&a, "42").await;
    let (gone, gone_link) = create(&a, "42").await;
    let kept_cookie = b.exchange(&kept_link).await;
    let gone_cookie = b.exchange(&gone_link).await;
    let (status, _) = admin(&a, "DELETE", &format!("/v1/shares/{gone}"), None).await;
    assert_eq!(status, 200);
    time_until(
        "B refuses the revoked share",
        CROSS_REPLICA_DEADLINE,
        || async { browse(&b, "42", &gone_cookie).await.status == 410 },
    )
    .await;
    assert_eq!(readyz(&b).await.0, 200);

    redis.kill();
    let killed = Instant::now();

    // Within max_staleness: guests are served on what B knew, the revoked one stays refused,
    // and writes are refused because they cannot be made durable.
    assert_eq!(browse(&b, "42", &kept_cookie).await.status, 200);
    assert_eq!(browse(&b, "42", &gone_cookie).await.status, 410);
    let (status, refused) = admin(
        &a,
        "POST",
        "/v1/shares",
        Some(json!({"case": "42", "scope": "view"})),
    )
    .await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "store_unavailable", "{refused}");
    let (status, refused) = admin(&b, "DELETE", &format!("/v1/shares/{kept}"), None).await;
    assert_eq!(status, 503, "{refused}");
    time_until(
        "B's readyz says degraded",
        Duration::from_secs(3),
        || async {
            let (status, ready) = readyz(&b).await;
            status == 200
                && ready["status"] == "degraded"
                && ready["checks"]["state"]["stale_seconds"].is_f64()
        },
    )
    .await;

    // Past max_staleness: the "temporarily unavailable" page for every guest, links included.
    let mut last_served = Duration::ZERO;
    let refused_at = loop {
        let response = browse(&b, "42", &kept_cookie).await;
        match response.status {
            200 => last_served = killed.elapsed(),
            503 => break killed.elapsed(),
            other => panic!(
                "unexpected {other} while Redis is down: {}",
                response.text()
            ),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(6),
            "guests still served after 6 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "Redis killed: guests served until {last_served:?}, refused from {refused_at:?} (max_staleness 3s)"
    );
    // The follower heard from Redis at most one blocking read (0.4 s) before the kill.
    assert!(refused_at >= Duration::from_millis(2500), "{refused_at:?}");
    assert!(
        last_served >= Duration::from_millis(2500),
        "{last_served:?}"
    );
    let page = browse(&b, "42", &kept_cookie).await;
    assert_eq!(page.status, 503);
    assert_eq!(error_code(&page), "temporarily_unavailable");
    let html = b.get(&kept_link, &["Accept: text/html"]).await;
    assert_eq!(html.status, 503);
    assert!(html.text().contains("<h1>"), "{}", html.text());
    assert!(
        html.header("set-cookie").is_none(),
        "no cookie while failing closed"
    );
    // Readiness answers are cached for a second.
    time_until(
        "B's readyz says not ready",
        Duration::from_secs(2),
        || async {
            let (status, ready) = readyz(&b).await;
            status == 503 && ready["checks"]["state"]["ok"] == false
        },
    )
    .await;

    // Redis back: both recover without a restart, and what was acknowledged before holds.
    redis.restart();
    let back = time_until("B serves guests again", Duration::from_secs(15), || async {
        browse(&b, "42", &kept_cookie).await.status == 200
    })
    .await;
    println!("Redis restarted: B serves guests again after {back:?}");
    assert_eq!(browse(&b, "42", &gone_cookie).await.status, 410);
    time_until(
        "A and B are ready again",
        Duration::from_secs(5),
        || async { readyz(&a).await.1["status"] == "ok" && readyz(&b).await.1["status"] == "ok" },
    )
    .await;
    // Writes work again and cross again.
    let (status, _) = admin(&a, "DELETE", &format!("/v1/shares/{kept}"), None).await;
    assert_eq!(status, 200);
    time_until(
        "B refuses the share revoked after recovery",
        CROSS_REPLICA_DEADLINE,
        || async { browse(&b, "42", &kept_cookie).await.status == 410 },
    )
    .await;
    // A replica that starts now reads both revokes from Redis, the one made before the kill too.
    let c = replica(&redis, "").await;
    for (name, cookie) in [
        ("revoked before the kill", &gone_cookie),
        ("revoked after", &kept_cookie),
    ] {
        assert_eq!(browse(&c, "42", cookie).await.status, 410, "{name}");
    }
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_still_in_memory_are_written_at_shutdown_and_a_dead_redis_does_not_hang_the_stop() {
    let mut redis = RedisServer::start();
    // Nothing is flushed on a timer during the test: only the stop writes the uses.
    let a = replica(&redis, "use_flush_interval = \"5m\"").await;
    let b = replica(&redis, "use_flush_interval = \"5m\"").await;
    let (id, link) = create(&a, "42").await;
    a.exchange(&link).await;
    a.exchange(&link).await;
    assert_eq!(share(&b, &id).await["uses"], 0);
    a.stop().await;
    let counted = time_until(
        "B sees the uses A wrote as it stopped",
        Duration::from_secs(2),
        || async { share(&b, &id).await["uses"] == 2 },
    )
    .await;
    println!("uses written at A's stop seen by B after {counted:?}");

    b.exchange(&link).await;
    redis.kill();
    let stopping = Instant::now();
    b.stop().await;
    let took = stopping.elapsed();
    println!("stop with Redis dead and a use pending took {took:?}");
    assert!(took < Duration::from_secs(12), "{took:?}");
}

#[tokio::test]
async fn a_replica_does_not_start_without_its_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    drop(redis);
    let upstream = TestUpstream::start().await;
    let text = shared_config(&upstream, &url, "");
    let config = casegate::config::parse(Path::new("test.toml"), &text, &|_| None).expect("valid");
    let error = match casegate::start(&config).await {
        Ok(_) => panic!("started without Redis"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("cannot connect to Redis at redis://127.0.0.1:"),
        "{error}"
    );
}

// === two real processes ===

/// A `casegate serve` process on its own ports.
struct Process {
    child: Child,
    server: SocketAddr,
    admin: SocketAddr,
    log: std::path::PathBuf,
}

impl Process {
    /// Starts `casegate serve` with the Redis URL (credentials included) only in its environment.
    async fn start(dir: &Path, name: &str, upstream: &TestUpstream, url: &str) -> Process {
        for attempt in 0..5 {
            let (server, admin) = (free_port(), free_port());
            let extra = format!(
                r#"
[state]
backend = "redis"
url = {{ env = "CASEGATE_TEST_REDIS_URL" }}
key_prefix = "process-test:"

[admin]
listen = "{admin}"

[[admin.clients]]
name = "case-app"
token = {{ value = "{ADMIN_TOKEN}" }}
scopes = ["view"]
"#
            );
            let text = config_text(&upstream.url(), "", &extra).replacen(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"{server}\""),
                1,
            );
            let config = dir.join(format!("{name}.toml"));
            std::fs::write(&config, text).unwrap();
            let log = dir.join(format!("{name}-{attempt}.log"));
            let mut child = Command::new(env!("CARGO_BIN_EXE_casegate"))
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .env("CASEGATE_TEST_REDIS_URL", url)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
                .spawn()
                .expect("spawn casegate serve");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if std::net::TcpStream::connect(admin).is_ok() {
                    return Process {
                        child,
                        server,
                        admin,
                        log,
                    };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("casegate serve did not start")
    }

    async fn get(&self, target: &str, cookie: Option<&str>) -> RawResponse {
        let mut text =
            format!("GET {target} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n");
        if let Some(cookie) = cookie {
            text.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        text.push_str("\r\n");
        send_raw(self.server, text.as_bytes())
            .await
            .expect("an answer")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_redis_share_creates_and_revokes() {
    let redis = RedisServer::start();
    // A user with a password, so the URL carries one that must never reach a log.
    let password = "pw-that-must-not-be-logged-7f3a";
    assert_eq!(
        redis.command(&format!("ACL SETUSER gateway on >{password} ~* +@all")),
        "+OK"
    );
    let url = format!("redis://gateway:{password}@127.0.0.1:{}/0", redis.port);
    let dir = tempfile::tempdir().unwrap();
    let upstream = TestUpstream::start().await;
    let a = Process::start(dir.path(), "a", &upstream, &url).await;
    let b = Process::start(dir.path(), "b", &upstream, &url).await;

    let (status, share) = admin_at(
        a.admin,
        "POST",
        "/v1/shares",
        Some(json!({"case": "42", "scope": "view"})),
    )
    .await;
    assert_eq!(status, 201, "{share}");
    let id = share["id"].as_str().unwrap().to_owned();
    let link = format!("/s/{}", share["token"].as_str().unwrap());

    let opened = b.get(&link, None).await;
    assert_eq!(opened.status, 303);
    let cookie = cookie_pair(&opened);
    assert_eq!(b.get("/cases/42", Some(&cookie)).await.status, 200);

    let (status, _) = admin_at(a.admin, "DELETE", &format!("/v1/shares/{id}"), None).await;
    assert_eq!(status, 200);
    let delay = time_until(
        "process B refuses the revoked cookie",
        CROSS_REPLICA_DEADLINE,
        || async { b.get("/cases/42", Some(&cookie)).await.status == 410 },
    )
    .await;
    println!("two processes: revoke acked by A, enforced by B after {delay:?}");
    let (_, listed) = admin_at(b.admin, "GET", &format!("/v1/shares/{id}"), None).await;
    assert_eq!(listed["status"], "revoked", "{listed}");

    let logs = [a.log.clone(), b.log.clone()];
    drop(a);
    drop(b);
    for path in logs {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            log.contains("redis://gateway:***@127.0.0.1"),
            "{}: {log}",
            path.display()
        );
        assert!(
            !log.contains(password),
            "{} logs the Redis password",
            path.display()
        );
    }
}
