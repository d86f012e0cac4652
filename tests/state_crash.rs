//! Crash safety of revocations, with the real binary: `casegate serve` is SIGKILLed in the middle of a
//! storm of revokes, restarted on the same state directory, and every revoke that was answered 2xx
//! before the kill must still hold (GET says "revoked", the link answers 410). Shares nobody touched
//! must come back unrevoked, so the test also fails if recovery revokes too much or loses creates.
//! A SIGKILL keeps what the process handed to the kernel, so this proves "written before the answer";
//! that it was also fsynced (a power cut) is not something a test process can simulate.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use common::raw_client::send_raw;

const ADMIN_TOKEN: &str = "crash-test-admin-token-0123456789abcdef";
const ROUNDS: usize = 5;
const CASES_PER_ROUND: usize = 20;
const SHARES_PER_CASE: usize = 10;
/// Cases whose revoke is part of each round's storm; the others are only revoked share by share.
const REVOKED_CASES_PER_ROUND: usize = 7;
const STORM_TASKS: usize = 8;

type Http = Client<HttpConnector, Full<Bytes>>;

/// One revoke of the storm.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Revoke {
    Share(String),
    Case(String),
}

/// A share created through the API (its create was answered 201, so it must survive too).
#[derive(Clone, Debug)]
struct Created {
    id: String,
    case: String,
    token: String,
}

/// The gateway process, its config and where it listens.
struct Gateway {
    child: Child,
    server: SocketAddr,
    admin: SocketAddr,
}

impl Gateway {
    /// Starts `casegate serve` on two free ports; if another process took one of them between our
    /// probe and the gateway's bind, tries new ports.
    async fn start(dir: &Path, ports: Option<(SocketAddr, SocketAddr)>) -> Gateway {
        for attempt in 0..5 {
            let (server, admin) = match ports {
                Some(ports) if attempt == 0 => ports,
                _ => (free_port(), free_port()),
            };
            let config = dir.join("casegate.toml");
            std::fs::write(&config, config_text(server, admin)).unwrap();
            let log = std::fs::File::create(dir.join(format!("serve-{attempt}.log"))).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_casegate"))
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("spawn casegate serve");
            if wait_until_ready(&mut child, admin).await {
                return Gateway {
                    child,
                    server,
                    admin,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("casegate serve did not start; last log:\n{}", last_log(dir));
    }

    /// SIGKILL: no graceful shutdown, no final flush.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL casegate");
        self.child.wait().expect("reap casegate");
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The harness's test config, on fixed ports, with a state directory next to the config file and
/// an admin client that may share `view`.
fn config_text(server: SocketAddr, admin: SocketAddr) -> String {
    let extra = format!(
        r#"
[state]
path = "state"

[admin]
listen = "{admin}"

[[admin.clients]]
name = "crash-test"
token = {{ value = "{ADMIN_TOKEN}" }}
scopes = ["view"]
"#
    );
    // Nothing listens on port 9: every request this test sends is answered by the gateway itself.
    let text = common::config_text("http://127.0.0.1:9", "", &extra);
    let fixed = text.replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{server}\""),
        1,
    );
    assert_ne!(
        fixed, text,
        "the harness config names the server's listen address"
    );
    fixed
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("probe a free port");
    listener.local_addr().unwrap()
}

/// Polls the admin API until it answers 200 (true), or the process exits or 10 s pass (false).
async fn wait_until_ready(child: &mut Child, admin: SocketAddr) -> bool {
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().expect("poll child").is_some() {
            return false;
        }
        let url = format!("http://{admin}/v1/shares?case=probe");
        if let Ok((200, _)) = call(&http, Method::GET, &url, None).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn last_log(dir: &Path) -> String {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    logs.retain(|path| path.extension().is_some_and(|ext| ext == "log"));
    logs.sort();
    logs.last()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_default()
}

fn client() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One admin API request; the status and JSON body, or why there was no answer.
async fn call(
    http: &Http,
    method: Method,
    url: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let payload = body.map_or_else(Bytes::new, |json| Bytes::from(json.to_string()));
    let request = request
        .body(Full::new(payload))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = http.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let json = serde_json::from_slice(&bytes).map_err(|e| format!("{status}: {e}"))?;
        Ok((status, json))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// Opens a link through the gateway and returns the answer's status.
async fn open_link(server: SocketAddr, token: &str) -> u16 {
    let request =
        format!("GET /s/{token} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n");
    send_raw(server, request.as_bytes())
        .await
        .expect("the gateway answers a link")
        .status
}

/// A small xorshift generator seeded from the clock: each run kills at a different moment and
/// shuffles differently; the seed is printed so a failure can be reasoned about.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Creates this round's shares, several at a time (group commit gets a workout too).
async fn create_shares(gateway: &Gateway, round: usize) -> Vec<Created> {
    let http = client();
    let mut tasks = Vec::new();
    for case_index in 0..CASES_PER_ROUND {
        let (http, url) = (http.clone(), gateway.admin_url("/v1/shares"));
        tasks.push(tokio::spawn(async move {
            let case = format!("r{round}c{case_index}");
            let mut created = Vec::new();
            for _ in 0..SHARES_PER_CASE {
                let body = serde_json::json!({"case": case, "scope": "view", "note": "crash test"});
                let (status, json) = call(&http, Method::POST, &url, Some(body))
                    .await
                    .expect("create answered");
                assert_eq!(status, 201, "create: {json}");
                created.push(Created {
                    id: json["id"].as_str().expect("id").to_owned(),
                    case: case.clone(),
                    token: json["token"].as_str().expect("token").to_owned(),
                });
            }
            created
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Fires `revokes` from several tasks; SIGKILLs the gateway once `kill_after` were acknowledged.
/// Returns the revokes answered 2xx.
async fn storm_and_kill(
    gateway: &mut Gateway,
    revokes: Vec<Revoke>,
    kill_after: usize,
) -> Vec<Revoke> {
    let queue = Arc::new(Mutex::new(revokes));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let ack_count = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let http = client();
    let mut tasks = Vec::new();
    for _ in 0..STORM_TASKS {
        let (queue, acked, ack_count, killed, http) = (
            Arc::clone(&queue),
            Arc::clone(&acked),
            Arc::clone(&ack_count),
            Arc::clone(&killed),
            http.clone(),
        );
        let admin = gateway.admin;
        tasks.push(tokio::spawn(async move {
            loop {
                if killed.load(Ordering::SeqCst) {
                    return;
                }
                let Some(revoke) = queue.lock().unwrap().pop() else {
                    return;
                };
                let (method, path) = match &revoke {
                    Revoke::Share(id) => (Method::DELETE, format!("/v1/shares/{id}")),
                    Revoke::Case(case) => (Method::POST, format!("/v1/cases/{case}/revoke")),
                };
                let url = format!("http://{admin}{path}");
                match call(&http, method, &url, None).await {
                    Ok((status, _)) if (200..300).contains(&status) => {
                        acked.lock().unwrap().push(revoke);
                        ack_count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((status, json)) if !killed.load(Ordering::SeqCst) => {
                        panic!("revoke {revoke:?} answered {status}: {json}")
                    }
                    // Refused or cut off by the kill: not acknowledged, no promise to check.
                    _ => {}
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while ack_count.load(Ordering::SeqCst) < kill_after {
        assert!(Instant::now() < deadline, "storm stalled");
        tokio::task::yield_now().await;
    }
    gateway.kill();
    killed.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("storm task");
    }
    std::mem::take(&mut *acked.lock().unwrap())
}

/// Every acknowledged revoke holds; every share nobody asked to revoke is intact.
async fn check_after_restart(
    gateway: &Gateway,
    created: &[Created],
    acked: &BTreeSet<Revoke>,
    attempted: &BTreeSet<Revoke>,
) {
    let http = client();
    let mut statuses = HashMap::new();
    for share in created {
        let url = gateway.admin_url(&format!("/v1/shares/{}", share.id));
        let (code, json) = call(&http, Method::GET, &url, None)
            .await
            .expect("GET share");
        assert_eq!(code, 200, "share {} lost after the crash: {json}", share.id);
        statuses.insert(
            share.id.clone(),
            json["status"].as_str().unwrap_or("").to_owned(),
        );
    }
    let mut checked_links = 0;
    for share in created {
        let status = statuses[&share.id].as_str();
        let by_id = Revoke::Share(share.id.clone());
        let by_case = Revoke::Case(share.case.clone());
        if acked.contains(&by_id) || acked.contains(&by_case) {
            assert_eq!(
                status, "revoked",
                "share {} (case {}) was revoked with a 2xx before the kill but is {status} after \
                 the restart",
                share.id, share.case
            );
            // Opening a link exchanges it (uses += 1) only when it is valid; a revoked one is 410.
            assert_eq!(
                open_link(gateway.server, &share.token).await,
                410,
                "link of revoked share {}",
                share.id
            );
            checked_links += 1;
        } else if !attempted.contains(&by_id) && !attempted.contains(&by_case) {
            assert_eq!(
                status, "pending",
                "share {} was never revoked but is {status} after the restart",
                share.id
            );
        }
    }
    assert!(checked_links > 0, "no acknowledged revoke to check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_revokes_survive_sigkill_mid_storm() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let seed = u64::from(seed) | 1;
    println!("shuffle seed {seed}");
    let mut rng = Shuffle(seed);
    let mut gateway = Gateway::start(dir.path(), None).await;
    let mut created = Vec::new();
    let mut acked = BTreeSet::new();
    let mut attempted = BTreeSet::new();
    for round in 0..ROUNDS {
        let round_shares = create_shares(&gateway, round).await;
        // Every other share by id, the first cases wholesale: the rest stays untouched.
        let mut revokes: Vec<Revoke> = round_shares
            .iter()
            .enumerate()
            .filter(|(index, _)| index % 2 == 0)
            .map(|(_, share)| Revoke::Share(share.id.clone()))
            .chain(
                (0..REVOKED_CASES_PER_ROUND).map(|case| Revoke::Case(format!("r{round}c{case}"))),
            )
            .collect();
        rng.shuffle(&mut revokes);
        attempted.extend(revokes.iter().cloned());
        let kill_after = 5 + rng.below(revokes.len() * 2 / 3);
        let round_acked = storm_and_kill(&mut gateway, revokes, kill_after).await;
        println!(
            "round {round}: {} shares, killed after {} acknowledged revokes (asked for {kill_after})",
            round_shares.len(),
            round_acked.len()
        );
        assert!(round_acked.len() >= kill_after);
        acked.extend(round_acked);
        created.extend(round_shares);
        let ports = (gateway.server, gateway.admin);
        drop(gateway);
        gateway = Gateway::start(dir.path(), Some(ports)).await;
        check_after_restart(&gateway, &created, &acked, &attempted).await;
    }
    gateway.kill();
    println!("{ROUNDS} kill/restart rounds in {:?}", started.elapsed());
}
