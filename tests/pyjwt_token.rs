//! Links minted by PyJWT verify in casegate: the Python snippet documented at the top of
//! `src/share/token.rs` is extracted and run as-is, and a second mint exercises every optional
//! claim. Requires python3 with PyJWT; the test fails, never skips, without them.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use casegate::share::keys::{decode_key, generate_key};
use casegate::share::token::{DEFAULT_CLOCK_SKEW_SECS, verify};
use casegate::share::{CaseGrammar, KeyRing, LinkRules};

const INSTALL_HINT: &str =
    "this test needs python3 with PyJWT: `pip install PyJWT` or `apt-get install python3-jwt`";

/// Mints with every optional claim and an extra claim PyJWT users commonly add.
const FULL_SNIPPET: &str = r#"
import base64, os, sys
import jwt

key_b64 = os.environ["CASEGATE_LINK_KEY"]
key = base64.urlsafe_b64decode(key_b64 + "=" * (-len(key_b64) % 4))
now = int(sys.argv[1])
claims = {
    "jti": "0123456789abcdef-_ABCD",
    "case": "C-1042",
    "scope": "read",
    "iat": now,
    "nbf": now,
    "exp": now + 3600,
    "email": "recipient@example.org",
    "lang": "de-CH",
    "iss": "case-app",
}
print(jwt.encode(claims, key, algorithm="HS256", headers={"kid": "k1"}))
"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .expect("the clock is after 1970")
}

/// The ```python block of token.rs's module doc, with the `//! ` prefixes removed.
fn documented_snippet() -> String {
    let source = include_str!("../src/share/token.rs");
    let lines: Vec<&str> = source
        .lines()
        .take_while(|line| line.starts_with("//!"))
        .map(|line| line.strip_prefix("//!").unwrap_or(line))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .skip_while(|line| *line != "```python")
        .skip(1)
        .take_while(|line| *line != "```")
        .collect();
    assert!(
        lines.iter().any(|line| line.contains("jwt.encode")),
        "no ```python snippet with jwt.encode found in token.rs's module doc"
    );
    lines.join("\n")
}

fn run_python(snippet: &str, key_b64: &str, args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(snippet)
        .args(args)
        .env("CASEGATE_LINK_KEY", key_b64)
        .output()
        .unwrap_or_else(|error| panic!("cannot run python3 ({error}); {INSTALL_HINT}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'jwt'") {
        panic!("python3 has no `jwt` module; {INSTALL_HINT}");
    }
    assert!(output.status.success(), "python3 failed: {stderr}");
    String::from_utf8(output.stdout)
        .expect("a JWT is ASCII")
        .trim()
        .to_owned()
}

fn ring(key_b64: &str) -> KeyRing {
    let secret = decode_key(key_b64).expect("a generated key decodes");
    KeyRing::new("k1", vec![("k1".to_owned(), secret)]).expect("a one-key ring")
}

fn rules<'a>(
    now: i64,
    grammar: &'a CaseGrammar,
    scopes: &'a dyn Fn(&str) -> bool,
) -> LinkRules<'a> {
    LinkRules {
        now,
        max_ttl_secs: 30 * 24 * 3600,
        clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
        case_grammar: grammar,
        scope_exists: scopes,
    }
}

#[test]
fn the_documented_pyjwt_snippet_mints_a_link_casegate_accepts() {
    let key_b64 = generate_key().expect("OS randomness");
    let token = run_python(&documented_snippet(), &key_b64, &[]);

    let grammar = CaseGrammar::default();
    let scopes = |scope: &str| scope == "read";
    let claims = verify(&ring(&key_b64), &token, &rules(now(), &grammar, &scopes))
        .unwrap_or_else(|error| panic!("PyJWT link refused: {error}"));

    assert_eq!(claims.case, "C-1042");
    assert_eq!(claims.scope, "read");
    assert_eq!(claims.share_id.len(), 22);
    assert_eq!(claims.expires_at - claims.issued_at, 7 * 24 * 3600);
    assert_eq!(claims.email.as_deref(), Some("recipient@example.org"));
}

#[test]
fn a_pyjwt_link_with_every_optional_claim_is_accepted() {
    let key_b64 = generate_key().expect("OS randomness");
    let now = now();
    let token = run_python(FULL_SNIPPET, &key_b64, &[&now.to_string()]);

    let grammar = CaseGrammar::default();
    let scopes = |scope: &str| scope == "read";
    let claims = verify(&ring(&key_b64), &token, &rules(now, &grammar, &scopes))
        .unwrap_or_else(|error| panic!("PyJWT link refused: {error}"));

    assert_eq!(claims.share_id, "0123456789abcdef-_ABCD");
    assert_eq!(claims.not_before, Some(now));
    assert_eq!(claims.expires_at, now + 3600);
    assert_eq!(claims.lang.as_deref(), Some("de-CH"));
}

#[test]
fn a_pyjwt_link_under_another_key_is_refused() {
    let signing_key = generate_key().expect("OS randomness");
    let other_key = generate_key().expect("OS randomness");
    let token = run_python(&documented_snippet(), &signing_key, &[]);

    let grammar = CaseGrammar::default();
    let scopes = |scope: &str| scope == "read";
    let refused = verify(&ring(&other_key), &token, &rules(now(), &grammar, &scopes));
    assert_eq!(refused, Err(casegate::share::LinkError::BadSignature));
}
