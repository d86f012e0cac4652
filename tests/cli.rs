//! The `casegate` binary as an operator runs it: keygen, check (good and broken configs), mint.

use std::path::PathBuf;
use std::process::{Command, Output};

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

fn write_temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("casegate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
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

#[test]
fn mint_prints_only_the_link_and_json_on_request() {
    let out = casegate(&[
        "mint",
        "--config",
        "config/casegate.toml",
        "--case",
        "42",
        "--scope",
        "view",
    ]);
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

    let out = casegate(&[
        "mint",
        "--config",
        "config/casegate.toml",
        "--case",
        "42",
        "--scope",
        "view",
        "--ttl",
        "2h",
        "--lang",
        "sv",
        "--json",
    ]);
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

    let refused = casegate(&[
        "mint",
        "--config",
        "config/casegate.toml",
        "--case",
        "42",
        "--scope",
        "view",
        "--ttl",
        "90d",
    ]);
    assert!(!refused.status.success());
    let refused = casegate(&[
        "mint",
        "--config",
        "config/casegate.toml",
        "--case",
        "42",
        "--scope",
        "nope",
    ]);
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
}
