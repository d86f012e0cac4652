//! `casegate serve` as a child process: the real binary, so that signals, threads and memory
//! (VmRSS) are the gateway's own and nothing of the test's.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use casegate::gateway::LinkMinter;
use tempfile::TempDir;

use super::raw_client::send_raw;

/// `casegate serve` as a child process, its stderr collected line by line; SIGKILLed on drop so a
/// failing test leaves nothing running.
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    /// Mints links with the same key as the process.
    pub minter: LinkMinter,
    /// Reads stderr until the process closes it; joined once it exits, so no line is missed.
    reader: Option<std::thread::JoinHandle<()>>,
    /// The config file the process reads, and the text it started with.
    pub config: (std::path::PathBuf, String),
    _dir: TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `casegate serve` with the config `text` (written to a fresh directory, where a
    /// relative `[state] path` lands too) and returns once it logs the address it listens on.
    pub async fn start(text: &str) -> Serve {
        Self::start_with_rust_log(text, Some("info")).await
    }

    /// Like [`Serve::start`], with `RUST_LOG` set to `rust_log`, or unset so that the config's
    /// `[log] level` decides.
    pub async fn start_with_rust_log(text: &str, rust_log: Option<&str>) -> Serve {
        let dir = tempfile::Builder::new()
            .prefix("casegate-serve-")
            .tempdir()
            .expect("a temporary directory");
        let path = dir.path().join("casegate.toml");
        std::fs::write(&path, text).expect("write the config");
        let config = casegate::config::parse(&path, text, &|_| None)
            .unwrap_or_else(|errors| panic!("test config invalid:\n{errors}"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_casegate"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(rust_log) = rust_log {
            command.env("RUST_LOG", rust_log);
        }
        let mut child = command.spawn().expect("spawn casegate serve");
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
            config: (path, text.to_owned()),
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
    pub async fn guest_cookie(&self) -> String {
        let token = super::view_link_token(&self.minter, "42");
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

    /// Sends a signal with the `kill` command (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// The first log line containing `needle`, waiting up to `within` for it.
    pub async fn wait_for_log(&mut self, needle: &str, within: Duration) -> String {
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
    pub async fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
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
    pub fn read_to_end(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// The process's resident memory (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status (Linux only)");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc status:\n{status}"))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Whether a new TCP connection to the gateway is refused.
    pub async fn refuses_connections(&self) -> bool {
        tokio::net::TcpStream::connect(self.addr).await.is_err()
    }
}
