//! Stopping the real `casegate serve` process with signals, as systemd and Ctrl-C do: the first
//! SIGTERM or SIGINT stops accepting and lets requests in flight finish within `[server]
//! shutdown_grace`, then exits 0; a second signal exits at once, non-zero, and says so in the log.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use casegate::gateway::LinkMinter;
use common::raw_client::{RawResponse, send_raw};
use common::upstream::TestUpstream;
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// The upstream answers `/slow` after 3 s (tests/common/upstream.rs).
const SLOW_UPSTREAM: Duration = Duration::from_secs(3);

/// `casegate serve` as a child process, its stderr collected line by line; SIGKILLed on drop so a
/// failing test leaves nothing running.
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    /// Mints links with the same key as the process.
    minter: LinkMinter,
    /// Reads stderr until the process closes it; joined once it exits, so no line is missed.
    reader: Option<std::thread::JoinHandle<()>>,
    /// The config file the process reads, and the text it started with.
    config: (std::path::PathBuf, String),
    _dir: TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `casegate serve` on port 0 in front of `upstream`, with extra `[server]` lines, and
    /// returns once it logs the address it listens on.
    async fn start(upstream: &TestUpstream, server_extra: &str) -> Serve {
        let dir = tempfile::Builder::new()
            .prefix("casegate-lifecycle-")
            .tempdir()
            .expect("a temporary directory");
        let text = common::config_text(&upstream.url(), server_extra, "[state]\npath = \"state\"")
            .replace("response_timeout = \"1s\"", "response_timeout = \"10s\"");
        let path = dir.path().join("casegate.toml");
        std::fs::write(&path, &text).expect("write the config");
        let config = casegate::config::parse(&path, &text, &|_| None)
            .unwrap_or_else(|errors| panic!("test config invalid:\n{errors}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_casegate"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn casegate serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let mut serve = Serve {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            minter: LinkMinter::new(&config),
            reader: Some(reader),
            config: (path, text),
            _dir: dir,
        };
        let listening = serve
            .wait_for_log("casegate listening", Duration::from_secs(30))
            .await;
        serve.addr = listening
            .split_whitespace()
            .find_map(|field| field.strip_prefix("local_addr="))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no local_addr in {listening:?}"));
        serve
    }

    /// Opens a freshly minted link to case 42 and returns the guest cookie (`name=value`).
    async fn guest_cookie(&self) -> String {
        let token = common::view_link_token(&self.minter, "42");
        let request = format!(
            "GET /s/{} HTTP/1.1\r\nHost: share.test\r\nConnection: close\r\n\r\n",
            token
        );
        let response = send_raw(self.addr, request.as_bytes())
            .await
            .expect("a link exchange answer");
        assert_eq!(response.status, 303, "link exchange: {}", response.text());
        let set_cookie = response.header("set-cookie").expect("set-cookie");
        set_cookie.split(';').next().unwrap().to_owned()
    }

    /// Sends `GET /cases/42/slow` and returns once the upstream has it, with the task that
    /// awaits its answer.
    async fn slow_request_in_flight(
        &self,
        upstream: &TestUpstream,
    ) -> JoinHandle<Option<RawResponse>> {
        let cookie = self.guest_cookie().await;
        upstream.take();
        let addr = self.addr;
        let slow = tokio::spawn(async move {
            let request = format!(
                "GET /cases/42/slow HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
            );
            send_raw(addr, request.as_bytes()).await
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !upstream
            .take()
            .iter()
            .any(|received| received.target() == "/cases/42/slow")
        {
            assert!(
                Instant::now() < deadline,
                "the slow request never reached the upstream"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        slow
    }

    /// Sends a signal with the `kill` command (`TERM`, `INT`).
    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// The first log line containing `needle`, waiting up to `within` for it.
    async fn wait_for_log(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            if let Some(status) = self.child.try_wait().expect("poll casegate") {
                self.read_to_end();
                if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                    return line.clone();
                }
                panic!(
                    "casegate exited ({status}) without logging {needle:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log within {within:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The exit status, waiting up to `within` for the process to end.
    async fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll casegate") {
                self.read_to_end();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "casegate still running {within:?} later:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the stderr reader to see the end of the (exited) process's output.
    fn read_to_end(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Whether a new TCP connection to the gateway is refused.
    async fn refuses_connections(&self) -> bool {
        tokio::net::TcpStream::connect(self.addr).await.is_err()
    }
}

/// The request in flight got no answer: the gateway closed its connection.
async fn assert_cut_off(slow: JoinHandle<Option<RawResponse>>, why: &str) {
    let answer = slow.await.expect("the request task");
    assert!(
        answer.is_none_or(|response| response.status != 200),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_a_request_in_flight_finishes_new_connections_are_refused_and_the_exit_is_0()
{
    let upstream = TestUpstream::start().await;
    let mut serve = Serve::start(&upstream, "shutdown_grace = \"20s\"").await;
    assert!(!serve.refuses_connections().await);
    let slow = serve.slow_request_in_flight(&upstream).await;
    let signalled = Instant::now();

    serve.signal("TERM");
    serve
        .wait_for_log("stopping: no new connections", Duration::from_secs(5))
        .await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while !serve.refuses_connections().await {
        assert!(
            Instant::now() < deadline,
            "new connections still accepted 2 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !slow.is_finished() && serve.child.try_wait().unwrap().is_none(),
        "the listener closed only once the request in flight was over; it must close at once"
    );

    let response = slow
        .await
        .unwrap()
        .expect("the request in flight was cut off");
    assert_eq!(response.status, 200, "{}", response.text());
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    assert!(
        signalled.elapsed() >= SLOW_UPSTREAM - Duration::from_millis(500),
        "exited before the request in flight could have finished"
    );
    serve
        .wait_for_log("stopped gracefully", Duration::ZERO)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_grace_exits_at_once_with_status_1() {
    let upstream = TestUpstream::start().await;
    let mut serve = Serve::start(&upstream, "shutdown_grace = \"20s\"").await;
    let slow = serve.slow_request_in_flight(&upstream).await;
    let signalled = Instant::now();

    serve.signal("TERM");
    serve
        .wait_for_log("stopping: no new connections", Duration::from_secs(5))
        .await;
    serve.signal("INT");
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    assert!(
        signalled.elapsed() < SLOW_UPSTREAM - Duration::from_millis(500),
        "the second signal waited for the request in flight ({:?})",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{}", serve.log_text());
    serve
        .wait_for_log(
            "second stop signal: exiting at once",
            Duration::from_secs(2),
        )
        .await;
    assert_cut_off(slow, "the request in flight was still answered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outlasting_the_grace_is_closed_and_the_exit_is_still_0() {
    let upstream = TestUpstream::start().await;
    let mut serve = Serve::start(&upstream, "shutdown_grace = \"1s\"").await;
    let slow = serve.slow_request_in_flight(&upstream).await;
    let signalled = Instant::now();

    serve.signal("TERM");
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    let stopped_after = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    assert!(
        stopped_after >= Duration::from_millis(900) && stopped_after < SLOW_UPSTREAM,
        "stopped {stopped_after:?} after SIGTERM with a 1 s grace and a 3 s request in flight"
    );
    serve
        .wait_for_log(
            "still open after the shutdown grace",
            Duration::from_secs(2),
        )
        .await;
    assert_cut_off(
        slow,
        "the request was answered although the grace ran out first",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_an_idle_gateway_at_once_with_status_0() {
    let upstream = TestUpstream::start().await;
    let mut serve = Serve::start(&upstream, "").await;
    let signalled = Instant::now();
    serve.signal("INT");
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "an idle gateway took {:?} to stop",
        signalled.elapsed()
    );
    serve
        .wait_for_log("signal=\"SIGINT\"", Duration::ZERO)
        .await;
    serve
        .wait_for_log("stopped gracefully", Duration::ZERO)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_workers_sets_the_serving_threads_and_the_default_is_one_per_core() {
    let upstream = TestUpstream::start().await;
    let mut three = Serve::start(&upstream, "workers = 3").await;
    three
        .wait_for_log("workers serving workers=3", Duration::ZERO)
        .await;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut default = Serve::start(&upstream, "").await;
    default
        .wait_for_log(&format!("workers serving workers={cores}"), Duration::ZERO)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file_and_a_broken_one_keeps_the_gateway_serving() {
    let upstream = TestUpstream::start().await;
    let mut serve = Serve::start(&upstream, "").await;
    let cookie = serve.guest_cookie().await;
    let report = format!(
        "GET /reports/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let addr = serve.addr;
    let status_of_report = || async {
        send_raw(addr, report.as_bytes())
            .await
            .expect("an answer")
            .status
    };
    assert_eq!(status_of_report().await, 403);
    let (path, text) = serve.config.clone();
    let with_reports = text.replace(
        r#""GET /static/**"]"#,
        r#""GET /static/**", "GET /reports/{case}"]"#,
    );
    std::fs::write(&path, &with_reports).expect("rewrite the config");

    serve.signal("HUP");
    serve
        .wait_for_log("config reloaded", Duration::from_secs(5))
        .await;
    assert_eq!(status_of_report().await, 200);

    std::fs::write(
        &path,
        with_reports.replace("[upstream]", "[upstream]\nbogus = 1"),
    )
    .expect("break the config");
    serve.signal("HUP");
    serve
        .wait_for_log("config reload failed", Duration::from_secs(5))
        .await;
    serve.wait_for_log("bogus", Duration::ZERO).await;
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "SIGHUP ended casegate"
    );
    assert_eq!(
        status_of_report().await,
        200,
        "the old config stopped serving"
    );
    serve.signal("TERM");
    let status = serve.wait_for_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
}
