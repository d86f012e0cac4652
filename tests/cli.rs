//! The `casegate` binary as an operator runs it: keygen, check (good and broken configs), mint,
//! and the demo with its admin API.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KEY: &str = "Y2FzZWdhdGUtaW50ZWdyYXRpb24tdGVzdC1rZXktMzJi";

fn casegate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_casegate"))
        .args(args)
        .env("CASEGATE_KEY_K1", KEY)
        .env("RUST_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run casegate")
}

/// A file named after `name` holding `text`, removed when the returned path is dropped.
fn write_temp(name: &str, text: &str) -> tempfile::TempPath {
    let file = tempfile::Builder::new()
        .prefix(&format!("casegate-cli-{name}-"))
        .tempfile()
        .unwrap();
    std::fs::write(file.path(), text).unwrap();
    file.into_temp_path()
}

#[test]
fn keygen_prints_a_256_bit_base64url_key() {
    let out = casegate(&["keygen"]);
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    let key = key.trim_end();
    assert_eq!(key.len(), 43, "{key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_ne!(
        key,
        String::from_utf8(casegate(&["keygen"]).stdout)
            .unwrap()
            .trim_end()
    );
}

#[test]
fn version_names_how_it_was_built() {
    for flag in ["--version", "-V"] {
        let out = casegate(&[flag]);
        assert!(out.status.success());
        let printed = String::from_utf8(out.stdout).unwrap();
        // Built by the same cargo run as this test, with the same environment: no CASEGATE_BUILD
        // unless the one running the tests set it (benches/load/pgo.sh sets it for its builds).
        let build = option_env!("CASEGATE_BUILD").unwrap_or(if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        });
        let expected = match option_env!("CASEGATE_COMMIT") {
            Some(commit) => format!("{build} build of {commit}"),
            None => format!("{build} build"),
        };
        assert_eq!(
            printed,
            format!("casegate {} ({expected})\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = casegate(&["check", "--config", "config/casegate.toml"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_reports_every_problem_with_file_and_line() {
    let broken = r#"[server]
listen = "127.0.0.1:99999"
public_url = "https://share.example.org"

[upstream]
url = "http://127.0.0.1:8080"

[keys]
active = "k2"
[keys.secrets]
k1 = { env = "CASEGATE_KEY_K1" }

[links]
prefix = "/s/"
landing = "/cases/{case}"
default_ttl = "24h"
max_ttl = "30x"

[session]
cookie = "__Host-casegate"
ttl = "12h"

[scopes.view]
allow = ["GET /cases/{case}/../**"]
"#;
    let path = write_temp("broken.toml", broken);
    let out = casegate(&["check", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = path.display().to_string();
    for line in [2, 9, 17, 24] {
        assert!(
            stderr.contains(&format!("{shown}:{line}:")),
            "no problem reported at line {line}:\n{stderr}"
        );
    }
}

#[test]
fn check_fails_when_unknown_keys_are_the_only_problems_and_lists_each() {
    let shipped = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/casegate.toml"),
    )
    .unwrap();
    let typos = [
        (
            "[server]\n",
            "listen_backlog = 128",
            "server: unknown field `listen_backlog`",
        ),
        (
            "[server.limits]\n",
            "unknown_limit = 5",
            "server.limits: unknown field `unknown_limit`",
        ),
        (
            "[scopes.legacy]\n",
            "bogus_key = 1",
            "scopes.legacy: unknown field `bogus_key`",
        ),
    ];
    let text = typos.iter().fold(shipped, |text, (table, typo, _)| {
        assert!(text.contains(table), "the shipped config has no {table:?}");
        text.replacen(table, &format!("{table}{typo}\n"), 1)
    });
    let path = write_temp("unknown-keys.toml", &text);
    let out = casegate(&["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted:\n{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let shown = path.display().to_string();
    for (_, typo, message) in typos {
        let line = 1 + text.lines().position(|line| line == typo).unwrap();
        let expected = format!("{shown}:{line}:1: {message}");
        assert!(stderr.contains(&expected), "no {expected:?} in:\n{stderr}");
    }
    assert_eq!(stderr.lines().count(), typos.len(), "{stderr}");
}

#[test]
fn check_never_prints_a_secret_written_in_the_wrong_shape() {
    let shipped = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/casegate.toml"),
    )
    .unwrap();
    let leaky = shipped
        .replace(
            "k1 = { env = \"CASEGATE_KEY_K1\" }",
            &format!("k1 = \"{KEY}\""),
        )
        .replace(
            "# Authorization = { env = \"LEGACY_READONLY_AUTH\" }",
            &format!("Authorization = {{ val = \"{KEY}\" }}"),
        );
    assert_eq!(
        leaky.matches(KEY).count(),
        2,
        "the shipped config changed shape"
    );
    let path = write_temp("leaky.toml", &leaky);
    let out = casegate(&["check", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stderr.contains(KEY) && !stdout.contains(KEY),
        "the key was printed:\n{stderr}{stdout}"
    );
    let shown = path.display().to_string();
    for line in [
        "keys.secrets.k1: must be",
        "upstream.guest_headers.Authorization: takes only",
    ] {
        assert!(stderr.contains(line), "{line:?} missing:\n{stderr}");
    }
    assert_eq!(stderr.matches(&shown).count(), 2, "{stderr}");
}

/// `casegate mint` with the shipped config for case 42 in `scope`, and `more` arguments.
fn mint(scope: &str, more: &[&str]) -> Output {
    let args = [
        "mint",
        "--config",
        "config/casegate.toml",
        "--case",
        "42",
        "--scope",
        scope,
    ];
    casegate(&[&args[..], more].concat())
}

#[test]
fn mint_prints_only_the_link_and_json_on_request() {
    let out = mint("view", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    assert!(
        stdout.starts_with("https://share.example.org/s/ey"),
        "{stdout}"
    );

    let out = mint("view", &["--ttl", "2h", "--lang", "sv", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in ["url", "token", "share_id", "case", "scope", "expires_at"] {
        assert!(json.get(field).is_some(), "{field} missing in {json}");
    }
    assert_eq!(json["case"], "42");
    let ttl = json["expires_at"].as_i64().unwrap() - casegate::clock::unix_now();
    assert!((7100..=7200).contains(&ttl), "ttl {ttl}");

    let refused = mint("view", &["--ttl", "90d"]);
    assert!(!refused.status.success());
    let refused = mint("nope", &[]);
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
}

#[test]
fn mint_takes_a_ttl_in_whole_seconds_as_share_create_does() {
    let mint_ttl = |ttl: &str| mint("view", &["--ttl", ttl, "--json"]);
    for (ttl, seconds) in [("90", 90), ("3600", 3600), ("90m", 5400)] {
        let out = mint_ttl(ttl);
        assert!(
            out.status.success(),
            "--ttl {ttl}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let lifetime = json["expires_at"].as_i64().unwrap() - casegate::clock::unix_now();
        assert!(
            (seconds - 60..=seconds).contains(&lifetime),
            "--ttl {ttl}: a link for {lifetime}s"
        );
    }
    for ttl in ["1.5", "90x", "90 s"] {
        let out = mint_ttl(ttl);
        assert!(!out.status.success(), "--ttl {ttl} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("--ttl: "),
            "--ttl {ttl}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `casegate demo --port 0` as a child process, SIGKILLed should the test end before it stops.
struct Demo {
    child: Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    /// Starts the demo and returns it with everything it printed up to "Stop with Ctrl-C.".
    fn start() -> (Demo, Vec<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_casegate"))
            .args(["demo", "--port", "0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start casegate demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let demo = Demo { child };
        let (lines, printed) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while seen
            .last()
            .is_none_or(|line: &String| line != "Stop with Ctrl-C.")
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match printed.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(error) => panic!("the demo stopped printing ({error}) after {seen:#?}"),
            }
        }
        (demo, seen)
    }

    /// SIGTERM, as Ctrl-C would, and the exit status once it has stopped.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.expect("run kill").success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the demo") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `casegate share ARGS` with the admin URL and token in the environment.
fn share(url: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_casegate"))
        .arg("share")
        .args(args)
        .env("CASEGATE_ADMIN_URL", url)
        .env("CASEGATE_ADMIN_TOKEN", token)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run casegate share")
}

#[test]
fn the_demo_prints_admin_lines_that_work_as_pasted_and_only_with_its_token() {
    let (demo, printed) = Demo::start();
    let export = printed
        .iter()
        .find_map(|line| line.trim().strip_prefix("export "))
        .unwrap_or_else(|| panic!("no export line in {printed:#?}"));
    let vars: HashMap<&str, &str> = export
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let url = vars["CASEGATE_ADMIN_URL"];
    let token = vars["CASEGATE_ADMIN_TOKEN"];
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(token.len() >= 32, "a generated token, not {token:?}");

    // Run exactly the commands the demo printed, through the real binary instead of cargo.
    let commands = printed
        .iter()
        .map(|line| line.trim())
        .find(|line| line.starts_with("cargo run --release -- share create"))
        .unwrap_or_else(|| panic!("no share command in {printed:#?}"));
    let steps: Vec<Vec<&str>> = commands
        .split(" && ")
        .map(|step| {
            let args = step
                .strip_prefix("cargo run --release -- share ")
                .unwrap_or_else(|| panic!("not a share command: {step}"));
            args.split_whitespace().collect()
        })
        .collect();
    assert_eq!(steps.len(), 2, "create, then list: {commands}");
    assert_eq!(steps[1], ["list"]);

    let created = share(url, token, &steps[0]);
    let created_text = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(
        created.status.success(),
        "{created_text}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let link = created_text.lines().next().unwrap_or_default();
    assert!(
        link.starts_with("http://127.0.0.1:") && link.contains("/s/"),
        "{created_text}"
    );
    let share_id = created_text
        .lines()
        .find_map(|line| line.strip_prefix("share "))
        .unwrap_or_else(|| panic!("no share id in {created_text}"));

    let listed = share(url, token, &steps[1]);
    let listed_text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success());
    let row = listed_text
        .lines()
        .find(|line| line.starts_with(share_id))
        .unwrap_or_else(|| panic!("{share_id} not listed in {listed_text}"));
    assert!(row.contains(" 42 ") && row.contains(" view "), "{row}");

    let wrong_token = "w".repeat(token.len());
    let refused = share(url, &wrong_token, &["list"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("(unauthorized)"));

    assert!(demo.stop().success(), "the demo exits cleanly on SIGTERM");
}
