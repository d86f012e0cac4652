//! Writes the seed corpora under `fuzz/corpus/<target>/seed-*` from realistic inputs: links and
//! cookies minted by casegate itself with the fuzz fixture's keys, the request targets of
//! `tests/request_tricks.rs` and the policy tests, the shipped configs, and the admin API bodies
//! of `tests/admin_api.rs`.
//!
//! Run from the repository root: `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`.
//! It replaces the `seed-*` files only; whatever the fuzzers added is left alone.

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use casegate::share::token::{self, LinkClaims};
use casegate::share::{Guest, cookie};
use invariants::*;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fx = Fixture::new();
    write_seeds(&root, "link_token", link_tokens(&fx));
    write_seeds(&root, "guest_cookie", guest_cookies(&fx));
    write_seeds(&root, "request_target", request_targets(&root));
    write_seeds(&root, "config", configs(&root));
    write_seeds(&root, "admin_json", admin_inputs(&root));
    write_seeds(&root, "upstream_response", upstream_responses());
    write_seeds(&root, "client_requests", client_requests());
}

// === upstream_response ===

/// Answers of each framing, split byte by byte (an even control byte is a GET, an odd one HEAD;
/// the rest of it the piece size).
fn upstream_responses() -> BTreeSet<Vec<u8>> {
    let answers: [&[u8]; 8] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nDigest: x\r\n\r\nNEXT",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 12, 12\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil the close",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nokSMUGGLED",
    ];
    answers
        .iter()
        .flat_map(|answer| [with_mode(0, answer), with_mode(1, answer), with_mode(6, answer)])
        .collect()
}

// === client_requests ===

/// Connections of pipelined requests in each framing, and the classic smuggling shapes (a control
/// byte of 0 reads the rest byte by byte, 63 in pieces of 64).
fn client_requests() -> BTreeSet<Vec<u8>> {
    let connections: [&[u8]; 8] = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /c HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        b"PUT /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nokGET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        b"PUT /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    ];
    connections
        .iter()
        .flat_map(|connection| [with_mode(0, connection), with_mode(63, connection)])
        .collect()
}

fn write_seeds(root: &Path, target: &str, seeds: BTreeSet<Vec<u8>>) {
    let dir = root.join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    for entry in fs::read_dir(&dir).expect("corpus directory").flatten() {
        if entry.file_name().to_string_lossy().starts_with("seed-") {
            fs::remove_file(entry.path()).expect("old seed");
        }
    }
    for (index, seed) in seeds.iter().enumerate() {
        fs::write(dir.join(format!("seed-{index:03}")), seed).expect("seed");
    }
    println!("{target}: {} seeds", seeds.len());
}

fn with_mode(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut seed = vec![mode];
    seed.extend_from_slice(rest);
    seed
}

// === link_token ===

fn sample_claims() -> Vec<LinkClaims> {
    let base = LinkClaims {
        share_id: SESSION_SHARE.to_owned(),
        case: SESSION_CASE.to_owned(),
        scope: "view".to_owned(),
        issued_at: NOW - 60,
        expires_at: NOW + 86_400,
        not_before: None,
        email: None,
        lang: None,
    };
    let with = |edit: &dyn Fn(&mut LinkClaims)| {
        let mut claims = base.clone();
        edit(&mut claims);
        claims
    };
    vec![
        base.clone(),
        with(&|c| c.scope = "guest".into()),
        with(&|c| c.scope = "legacy".into()),
        with(&|c| c.email = Some("dr.lind@clinic.example".into())),
        with(&|c| c.lang = Some("sv-SE".into())),
        with(&|c| c.not_before = Some(NOW - 10)),
        with(&|c| c.expires_at = NOW - 3600),
        with(&|c| c.issued_at = NOW + 3600),
        with(&|c| c.expires_at = NOW + 40 * 86_400),
        with(&|c| c.case = "4/2".into()),
        with(&|c| c.scope = "admin".into()),
        with(&|c| c.share_id = "short".into()),
    ]
}

fn link_tokens(fx: &Fixture) -> BTreeSet<Vec<u8>> {
    let mut seeds = BTreeSet::new();
    for claims in sample_claims() {
        let token = token::mint(&fx.keys, &claims);
        seeds.insert(with_mode(0, token.as_bytes()));
        let (_, payload, _) = three_parts(&token);
        let payload = URL_SAFE_NO_PAD.decode(payload).expect("own payload");
        seeds.insert(with_mode(1, &payload));
        // As PyJWT writes it for the retired key: another member order, same claims.
        let mut split = br#"{"typ":"JWT","alg":"HS256","kid":"k0"}"#.to_vec();
        split.push(0xFF);
        split.extend_from_slice(&payload);
        seeds.insert(with_mode(2, &split));
    }
    let pyjwt = sign_hs256(
        &KEY_K0,
        br#"{"alg":"HS256","kid":"k0","typ":"JWT"}"#,
        format!(
            r#"{{"jti":"{SESSION_SHARE}","case":"{SESSION_CASE}","scope":"view","iat":{},"exp":{},"email":"a@b.example"}}"#,
            NOW - 5,
            NOW + 600
        )
        .as_bytes(),
    );
    seeds.insert(with_mode(0, pyjwt.as_bytes()));
    for header in [
        r#"{"alg":"none","kid":"k1"}"#,
        r#"{"alg":"HS256","kid":"k1","crit":["b64"]}"#,
        r#"{"alg":"HS256","kid":"k1","kid":"k0"}"#,
        r#"{"alg":"HS512","kid":"k1"}"#,
        r#"{"alg":"HS256","kid":"k9","typ":"jwt"}"#,
    ] {
        let mut split = header.as_bytes().to_vec();
        split.push(0xFF);
        split.extend_from_slice(br#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1","scope":"view","iat":1749999999,"exp":1750003600}"#);
        seeds.insert(with_mode(2, &split));
    }
    seeds
}

fn three_parts(token: &str) -> (&str, &str, &str) {
    let mut parts = token.splitn(3, '.');
    let header = parts.next().unwrap_or_default();
    let payload = parts.next().unwrap_or_default();
    let signature = parts.next().unwrap_or_default();
    (header, payload, signature)
}

// === guest_cookie ===

fn guest_cookies(fx: &Fixture) -> BTreeSet<Vec<u8>> {
    let base = sample_guest(SESSION_CASE, "view");
    let guests: Vec<Guest> = vec![
        base.clone(),
        Guest {
            scope: "guest".into(),
            lang: Some("de-CH".into()),
            ..base.clone()
        },
        Guest {
            email: Some("dr.lind@clinic.example".into()),
            ..base.clone()
        },
        Guest {
            email: Some("dr.lind@clinic.example".into()),
            email_verified: true,
            lang: Some("sv".into()),
            ..base.clone()
        },
        Guest {
            expires_at: NOW - 1,
            ..base.clone()
        },
        Guest {
            case: "c".repeat(64),
            share_id: "s".repeat(128),
            scope: "x".repeat(32),
            ..base
        },
    ];
    let mut seeds = BTreeSet::new();
    for guest in &guests {
        let value = cookie::seal(&fx.keys, guest).expect("sample guests fit a cookie");
        seeds.insert(with_mode(0, value.as_bytes()));
        let payload = value.rsplit('.').nth(1).expect("payload part");
        let payload = URL_SAFE_NO_PAD.decode(payload).expect("own payload");
        seeds.insert(with_mode(1, &payload));
    }
    seeds.insert(with_mode(0, b"v1.k1.AAAA.AAAA"));
    seeds
}

// === request_target ===

/// Every request-line target of `tests/request_tricks.rs`, and every string literal starting with
/// `/` in the policy's tests, plus targets for each reference route.
fn request_targets(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut seeds = BTreeSet::new();
    let tricks = read(root.join("tests/request_tricks.rs"));
    for literal in string_literals(&tricks) {
        if let Some(line) = literal.split("\r\n").next().or(literal.split('\n').next())
            && let Some(target) = line.split(' ').nth(1)
            && target.starts_with('/')
        {
            seeds.insert(target.replace("{L}", "/s/TOKEN").into_bytes());
        }
    }
    for file in [
        "src/policy/canonical.rs",
        "src/policy/matcher.rs",
        "src/policy/rule.rs",
    ] {
        for literal in string_literals(&read(root.join(file))) {
            if literal.starts_with('/') && !literal.contains(' ') {
                seeds.insert(literal.replace("42", SESSION_CASE).into_bytes());
            }
        }
    }
    for target in [
        format!("/cases/{SESSION_CASE}"),
        format!("/cases/{SESSION_CASE}/notes/7"),
        format!("/cases/{SESSION_CASE}/billing/2024"),
        format!("/api/cases/{SESSION_CASE}/comments"),
        format!("/api/cases/{SESSION_CASE}/team/{SESSION_SHARE}"),
        format!("/legacy/case.php?id={SESSION_CASE}"),
        format!("/legacy/video.php?id={SESSION_CASE}&part=2"),
        "/static/app.css".to_owned(),
    ] {
        seeds.insert(target.into_bytes());
    }
    seeds
}

// === config ===

fn configs(root: &Path) -> BTreeSet<Vec<u8>> {
    let reference = read(root.join("config/casegate.toml"));
    // The commented-out examples of the reference, switched on: admin, mail, redis, TLS.
    let uncommented: String = reference
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let demo = read(root.join("config/demo.toml"))
        .replace("{gateway_addr}", "127.0.0.1:8080")
        .replace("{app_addr}", "127.0.0.1:8081")
        .replace("{admin_addr}", "127.0.0.1:8082")
        .replace("{state_dir}", "/tmp/casegate-demo");
    [reference, uncommented, demo]
        .into_iter()
        .map(String::into_bytes)
        .collect()
}

// === admin_json ===

/// The JSON bodies `tests/admin_api.rs` sends (each `json!({...})` that is plain JSON), and the
/// request lines of every endpoint.
fn admin_inputs(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut seeds = BTreeSet::new();
    let tests = read(root.join("tests/admin_api.rs"));
    for (start, _) in tests.match_indices("json!({") {
        let body = &tests[start + "json!(".len()..];
        let mut depth = 0usize;
        let end = body.char_indices().find_map(|(i, c)| {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                _ => return None,
            }
            (depth == 0).then_some(i + 1)
        });
        let Some(end) = end else { continue };
        let text = &body[..end];
        if serde_json::from_str::<serde_json::Value>(text).is_ok() {
            seeds.insert(text.as_bytes().to_vec());
        }
    }
    for line in [
        "GET /v1/shares".to_owned(),
        "POST /v1/shares".to_owned(),
        format!("GET /v1/shares?case={SESSION_CASE}&status=active"),
        format!("GET /v1/shares/{SESSION_SHARE}"),
        format!("DELETE /v1/shares/{SESSION_SHARE}"),
        format!("POST /v1/shares/{SESSION_SHARE}/resend"),
        format!("POST /v1/cases/{SESSION_CASE}/revoke"),
        "POST /v1/reload".to_owned(),
    ] {
        seeds.insert(line.into_bytes());
    }
    seeds
}

// === reading sources ===

fn read(path: PathBuf) -> String {
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The contents of every `"..."` literal in Rust source, with the common escapes undone.
fn string_literals(source: &str) -> Vec<String> {
    let mut literals = Vec::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '/' && chars.peek() == Some(&'/') {
            // A comment: skip to the end of the line.
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        if c == '\'' {
            // A char literal such as '"' must not open a string; lifetimes are harmless here.
            let mut ahead = chars.clone();
            if let (Some(_), Some('\'')) = (ahead.next(), ahead.next()) {
                chars.next();
                chars.next();
            }
            continue;
        }
        if c != '"' {
            continue;
        }
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => literal.push('\n'),
                    Some('r') => literal.push('\r'),
                    Some('t') => literal.push('\t'),
                    Some('0') => literal.push('\0'),
                    Some('u') => {
                        let code: String = chars
                            .by_ref()
                            .skip_while(|&c| c == '{')
                            .take_while(|&c| c != '}')
                            .collect();
                        if let Some(c) =
                            u32::from_str_radix(&code, 16).ok().and_then(char::from_u32)
                        {
                            literal.push(c);
                        }
                    }
                    Some('x') => {
                        let code: String = chars.by_ref().take(2).collect();
                        if let Ok(byte) = u8::from_str_radix(&code, 16) {
                            literal.push(char::from(byte));
                        }
                    }
                    Some(other) => literal.push(other),
                    None => {}
                },
                _ => literal.push(c),
            }
        }
        literals.push(literal);
    }
    literals
}
