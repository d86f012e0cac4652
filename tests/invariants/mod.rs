//! The properties behind casegate's refusals, stated once and checked by two drivers: the property
//! tests in `tests/properties.rs` (bounded, every `cargo test`) and the cargo-fuzz targets in
//! `fuzz/` (unbounded, by hand), which include this file by path.
//!
//! Each `check_*` function takes one input, runs the real code on it, and panics with the
//! property's name when the property fails; an input the code refuses is fine unless the property
//! says otherwise. Everything is fixed here (keys, clock, policy, session), so a failing input
//! replays the same way in both drivers.
//!
//! The policy is the annotated reference config `config/casegate.toml` itself: the properties
//! hold for the scopes an operator starts from, not for a policy written to pass them.

#![allow(dead_code)] // Each driver uses its own subset.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;

use casegate::config::{self, Config};
use casegate::fuzzing::{self, CreateShare};
use casegate::policy::{
    self, Decision, Effect, Rule, SegmentPattern, Subject, ValuePattern, canonicalise,
};
use casegate::share::token::{self, LinkError, LinkRules};
use casegate::share::{Guest, KeyRing, Secret, cookie};

use bytes::BytesMut;
use casegate::proxy::upstream_h1::BodyFraming;
use casegate::proxy::upstream_h1::chunked::{ChunkedDecoder, Decoded};
use casegate::proxy::upstream_h1::response_head::{Parsed, ResponseMemory, parse_response_head};
use casegate::server::h1::request_body::BodyDecoder;
use casegate::server::h1::request_head::{
    HeadLimits, RequestFraming, RequestMemory, parse_request_head,
};
use http::Method;

/// The reference config, as shipped.
pub const REFERENCE_CONFIG: &str = include_str!("../../config/casegate.toml");

/// The instant every check runs at (2025-06-15), so a token's validity never depends on the day.
pub const NOW: i64 = 1_750_000_000;

/// The case and share of the guest whose requests `check_request_target` judges.
pub const SESSION_CASE: &str = "C-1042";
pub const SESSION_SHARE: &str = "Zk3v0V0m1wz2Hqk7qv1N8g";

/// The methods every target is judged under: what the reference scopes name, and some they do not.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
];

/// `k1` is the reference config's only key (`CASEGATE_KEY_K1`) and the active one; `k0` is a
/// retired key that still verifies, as after a rotation.
pub const KEY_K0: [u8; 32] = [0x30; 32];
pub const KEY_K1: [u8; 32] = [0x31; 32];

/// Everything the checks hold fixed.
pub struct Fixture {
    /// `config/casegate.toml`, with `k1` for its key.
    pub config: Config,
    /// `k0` and `k1`, `k1` active.
    pub keys: KeyRing,
}

impl Fixture {
    pub fn new() -> Fixture {
        let key_text = URL_SAFE_NO_PAD.encode(KEY_K1);
        let env = |name: &str| (name == "CASEGATE_KEY_K1").then(|| key_text.clone());
        let config = config::parse(Path::new("config/casegate.toml"), REFERENCE_CONFIG, &env)
            .unwrap_or_else(|errors| panic!("config/casegate.toml is valid: {errors}"));
        let keys = KeyRing::new(
            "k1",
            vec![
                ("k0".to_owned(), Secret::from_bytes(KEY_K0.to_vec())),
                ("k1".to_owned(), Secret::from_bytes(KEY_K1.to_vec())),
            ],
        )
        .expect("fixed key ring");
        Fixture { config, keys }
    }

    /// The reference config's `[links]` rules at [`NOW`].
    pub fn with_link_rules<R>(&self, run: impl FnOnce(&LinkRules<'_>) -> R) -> R {
        let policy = &self.config.policy;
        let scope_exists = |scope: &str| policy.scope_exists(scope);
        let rules = LinkRules {
            now: NOW,
            max_ttl_secs: secs(self.config.links.max_ttl.as_secs()),
            clock_skew_secs: secs(self.config.links.clock_skew.as_secs()),
            case_grammar: &self.config.links.case_grammar,
            scope_exists: &scope_exists,
        };
        run(&rules)
    }

    pub fn scope_names(&self) -> impl Iterator<Item = &str> {
        self.config.scopes.iter().map(|scope| scope.name.as_str())
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

fn secs(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Signs `header` and `payload` (any bytes) with HS256 the way any JWT library does, so the
/// checks reach what lies behind the MAC without going through casegate's own minting.
pub fn sign_hs256(key: &[u8], header: &[u8], payload: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// The header casegate writes for `k1`, in the bytes PyJWT would write it.
pub const K1_HEADER: &[u8] = br#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#;

// === link_token ===

/// A link token: verifying never panics; whatever verifies holds the reference `[links]` rules,
/// re-mints to the same claim set, has the `lang` that `authentic_lang` reads, and stops verifying
/// when any one bit of its signature changes.
pub fn check_link_token(fx: &Fixture, token_text: &str) {
    let lang = token::authentic_lang(&fx.keys, token_text);
    let verified = fx.with_link_rules(|rules| token::verify(&fx.keys, token_text, rules));
    let Ok(claims) = verified else { return };

    assert_eq!(
        lang, claims.lang,
        "authentic_lang reads a verified token's lang"
    );
    let links = &fx.config.links;
    let skew = secs(links.clock_skew.as_secs());
    assert!(
        claims.expires_at >= NOW - skew,
        "a verified link has not expired"
    );
    assert!(claims.issued_at <= NOW + skew, "a verified link was issued");
    assert!(
        claims.not_before.is_none_or(|nbf| nbf <= NOW + skew),
        "a verified link is valid now"
    );
    assert!(
        claims.issued_at <= claims.expires_at
            && claims.expires_at - claims.issued_at <= secs(links.max_ttl.as_secs()),
        "a verified link lives at most max_ttl"
    );
    assert!(
        links.case_grammar.matches(&claims.case),
        "a verified link's case is in the case pattern"
    );
    assert!(
        fx.config.policy.scope_exists(&claims.scope),
        "a verified link's scope is configured"
    );
    assert!(
        token::is_share_id(&claims.share_id),
        "a verified link has a share id"
    );

    let reminted = token::mint(&fx.keys, &claims);
    let again = fx.with_link_rules(|rules| token::verify(&fx.keys, &reminted, rules));
    assert_eq!(
        again.as_ref(),
        Ok(&claims),
        "a verified link re-mints to the same claims"
    );

    let (signing_input, signature) = token_text
        .rsplit_once('.')
        .expect("a verified token has three parts");
    let tag = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("a verified token's signature is base64url");
    for bit in 0..tag.len() * 8 {
        let mut mutated = tag.clone();
        mutated[bit / 8] ^= 1 << (bit % 8);
        let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&mutated));
        let result = fx.with_link_rules(|rules| token::verify(&fx.keys, &forged, rules));
        assert_eq!(
            result,
            Err(LinkError::BadSignature),
            "a signature with bit {bit} flipped never verifies"
        );
    }
}

/// How the `link_token` fuzz target reads its input: the first byte picks what the rest is.
pub fn link_token_input(data: &[u8]) -> Option<String> {
    let (mode, rest) = data.split_first()?;
    Some(match mode % 3 {
        // The token text itself.
        0 => String::from_utf8_lossy(rest).into_owned(),
        // Claims, signed under k1 with casegate's own header (the hot path).
        1 => sign_hs256(&KEY_K1, K1_HEADER, rest),
        // A header and claims, split at the first 0xFF, signed with k0 (a retired key).
        _ => {
            let split = rest.iter().position(|&b| b == 0xFF).unwrap_or(rest.len());
            let (header, payload) = rest.split_at(split);
            sign_hs256(&KEY_K0, header, payload.get(1..).unwrap_or_default())
        }
    })
}

// === guest_cookie ===

/// A guest cookie: opening never panics; whatever opens has not expired, and seals again into a
/// cookie that opens to the same guest.
pub fn check_guest_cookie(fx: &Fixture, value: &str) {
    let Ok(guest) = cookie::open(&fx.keys, value, NOW) else {
        return;
    };
    assert!(guest.expires_at > NOW, "an opened guest has not expired");
    let resealed = cookie::seal(&fx.keys, &guest);
    let reopened = resealed
        .as_ref()
        .map_err(|error| *error)
        .and_then(|value| cookie::open(&fx.keys, value, NOW));
    assert_eq!(
        reopened,
        Ok(guest.clone()),
        "an opened guest seals and opens again unchanged"
    );
    assert!(
        resealed.is_ok_and(|value| value.len() <= cookie::MAX_COOKIE_LEN),
        "a resealed guest fits a cookie"
    );
}

/// How the `guest_cookie` fuzz target reads its input: the first byte picks what the rest is.
pub fn guest_cookie_input(fx: &Fixture, data: &[u8]) -> Option<String> {
    let (mode, rest) = data.split_first()?;
    Some(match mode % 2 {
        // The cookie value itself.
        0 => String::from_utf8_lossy(rest).into_owned(),
        // A payload carried under a valid MAC, to reach the payload reader.
        _ => fuzzing::seal_cookie_payload(&fx.keys, rest),
    })
}

/// A realistic guest, for seeds and round trips.
pub fn sample_guest(case: &str, scope: &str) -> Guest {
    Guest {
        share_id: SESSION_SHARE.to_owned(),
        case: case.to_owned(),
        scope: scope.to_owned(),
        lang: None,
        email: None,
        expires_at: NOW + 3600,
        issued_at: NOW - 60,
        email_verified: false,
    }
}

// === request_target ===

/// A request target, judged under every reference scope and method for the session's guest: the
/// trie decides as the rules read one by one do; whatever is allowed is canonical (one spelling,
/// no dot segments, nothing encoded that a server could decode into `/`, `\`, `%`, `.` or a
/// dot segment), its `{case}` parts are the session's case, and some allow rule covers it while
/// no deny rule does.
pub fn check_request_target(fx: &Fixture, raw: &[u8]) {
    let Ok(target) = canonicalise(raw) else {
        return;
    };
    let policy = &fx.config.policy;
    for scope in fx.scope_names() {
        let rules = policy.rules(scope).expect("a configured scope has rules");
        for method in METHODS {
            let subject = Subject {
                method,
                target: &target,
                case: SESSION_CASE,
                share: SESSION_SHARE,
            };
            let denied = rules.deny.iter().any(|r| r.matches(&subject, Effect::Deny));
            let allowing: Vec<&Rule> = rules
                .allow
                .iter()
                .filter(|r| r.matches(&subject, Effect::Allow))
                .collect();
            let expected = if denied {
                Decision::DenyExplicit
            } else if allowing.is_empty() {
                Decision::DenyNoRule
            } else {
                Decision::Allow
            };
            let decision = policy.decide(scope, method, &target, SESSION_CASE, SESSION_SHARE);
            assert_eq!(
                decision, expected,
                "the trie decides {scope} {method} as the rules read one by one"
            );
            if decision != Decision::Allow {
                continue;
            }
            assert_eq!(
                target.raw().as_bytes(),
                raw,
                "an allowed target is forwarded as sent"
            );
            assert_eq!(
                canonicalise(target.raw().as_bytes()),
                Ok(target),
                "an allowed target is canonical"
            );
            assert_one_spelling(raw);
            for rule in allowing {
                assert_bound_to_session(rule, &target);
            }
        }
    }
}

/// The canonical grammar of `policy::canonical`, restated without its code: what an allowed
/// target must look like to any server behind casegate.
fn assert_one_spelling(raw: &[u8]) {
    assert_eq!(raw.first(), Some(&b'/'), "an allowed target is origin-form");
    assert!(
        raw.iter().all(|b| (0x21..=0x7E).contains(b)),
        "an allowed target is printable ASCII"
    );
    let text = std::str::from_utf8(raw).expect("ASCII");
    assert!(!text.contains(['#', '\\']), "no fragment or backslash");
    let (path, query) = match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (text, None),
    };
    assert!(
        !path.contains([';', ':']),
        "no path parameter or NTFS stream"
    );
    if path != "/" {
        assert!(!path.ends_with('/'), "no trailing slash");
        for segment in path[1..].split('/') {
            assert!(!segment.is_empty(), "no empty segment");
            let decoded = percent_decode(segment, Part::Path);
            let decoded = String::from_utf8(decoded).expect("a path decodes to UTF-8");
            assert_eq!(
                decoded.nfc().collect::<String>(),
                decoded,
                "a decoded segment is NFC"
            );
            // What the most lenient server could make of the segment: decode, fold, lowercase.
            let folded: String = decoded.nfkc().collect::<String>().to_lowercase();
            assert!(
                !matches!(folded.as_str(), "." | ".."),
                "no dot segment, however spelled"
            );
            assert!(
                !folded.contains(['/', '\\', '%']),
                "no separator or escape hides in a segment"
            );
            assert!(
                !folded.ends_with(['.', ' ']),
                "no trailing dot or space that Windows drops"
            );
        }
    }
    if let Some(query) = query {
        assert!(!query.is_empty(), "no empty query");
        assert!(!query.contains(';'), "no `;` separator");
        percent_decode(query, Part::Query);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Part {
    Path,
    Query,
}

/// Decodes `%XX` escapes, asserting each is one casegate may let through: uppercase hex, never a
/// `%` (double encoding), a control or an unreserved character, and in a path never `/`, `\`, `;`,
/// `:` or a character that may be written raw.
fn percent_decode(text: &str, part: Part) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte != b'%' {
            out.push(byte);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).expect("an escape has two digits");
        assert!(
            hex.iter()
                .all(|d| d.is_ascii_digit() || (b'A'..=b'F').contains(d)),
            "escapes are uppercase hex"
        );
        let text = std::str::from_utf8(hex).expect("ASCII");
        let value = u8::from_str_radix(text, 16).expect("hex");
        assert!(value != b'%', "no double encoding");
        assert!(!value.is_ascii_control(), "no encoded control");
        assert!(
            !(value.is_ascii_alphanumeric() || b"-._~".contains(&value)),
            "no encoded unreserved character"
        );
        if part == Part::Path {
            assert!(
                !b"/\\;:!$&'()*+,=@".contains(&value),
                "no encoded separator, or character a path may write raw"
            );
        }
        out.push(value);
        i += 3;
    }
    out
}

/// Where an allow rule names `{case}` or `{share}`, the target holds the session's own.
fn assert_bound_to_session(rule: &Rule, target: &policy::CanonicalTarget<'_>) {
    for (pattern, segment) in rule.path().iter().zip(target.segments()) {
        match pattern {
            SegmentPattern::Case => assert_eq!(segment, SESSION_CASE, "{{case}} is the session's"),
            SegmentPattern::Share => {
                assert_eq!(segment, SESSION_SHARE, "{{share}} is the session's")
            }
            SegmentPattern::Literal(_) | SegmentPattern::Any | SegmentPattern::Rest => {}
        }
    }
    let pairs: Vec<(&str, &str)> = target
        .query()
        .map(|query| {
            query
                .split('&')
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .collect()
        })
        .unwrap_or_default();
    for pin in rule.query().unwrap_or_default() {
        let bound = match pin.value {
            ValuePattern::Case => SESSION_CASE,
            ValuePattern::Share => SESSION_SHARE,
            ValuePattern::Literal(_) | ValuePattern::Any => continue,
        };
        let values: Vec<&str> = pairs
            .iter()
            .filter(|(name, _)| *name == pin.name)
            .map(|(_, value)| *value)
            .collect();
        assert_eq!(
            values,
            [bound],
            "a pinned {{case}} or {{share}} is the session's, once"
        );
    }
}

// === config ===

/// Where `check_config` says the text came from.
pub const CONFIG_PATH: &str = "fuzz/casegate.toml";

/// Config text: parsing never panics, and every problem it reports about this file has a line
/// and column inside the text and says so as `file:line:column: message`. (A problem in another
/// file the config names, such as a page template, carries that file's name.)
pub fn check_config(text: &str) {
    let key_text = URL_SAFE_NO_PAD.encode(KEY_K1);
    // Every variable is set, so secrets pass and the checks after them run.
    let env = |_: &str| Some(key_text.clone());
    let path = Path::new(CONFIG_PATH);
    let Err(errors) = config::parse(path, text, &env) else {
        return;
    };
    let lines = text.split('\n').count();
    assert!(!errors.problems().is_empty(), "a refused config says why");
    for problem in errors.problems() {
        assert!(!problem.message.is_empty(), "every problem has a message");
        if problem.file != path {
            continue;
        }
        assert!(
            (1..=lines).contains(&problem.line) && problem.column >= 1,
            "every problem has a line and column in the file: {problem:?} of {lines} lines"
        );
        let prefix = format!("{CONFIG_PATH}:{}:{}: ", problem.line, problem.column);
        assert!(
            problem.to_string().starts_with(&prefix),
            "a problem reads file:line:column: message"
        );
    }
}

// === admin_json ===

/// The admin API's readers of a request: none panics on any input; what `POST /v1/shares`
/// accepts is a JSON object within the field bounds, and every refusal is a 4xx JSON document
/// `{"error": {"code", "message"}}` that echoes at most 64 characters of a name it did not know.
pub fn check_admin_body(body: &[u8]) {
    match fuzzing::admin_create_share(body) {
        Ok(ask) => assert_accepted_share(body, &ask),
        // 400 for what is not the JSON the endpoint reads, 422 for a field it cannot take.
        Err(refusal) => assert_refusal(&refusal, &[400, 422]),
    }
}

fn assert_accepted_share(body: &[u8], ask: &CreateShare) {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).expect("an accepted body is a JSON object");
    assert!(object.contains_key("case") && object.contains_key("scope"));
    assert!(
        ask.note
            .as_ref()
            .is_none_or(|note| note.chars().count() <= 500),
        "a note is at most 500 characters"
    );
    assert!(
        ask.created_by
            .as_ref()
            .is_none_or(|name| name.chars().count() <= 200),
        "created_by is at most 200 characters"
    );
}

fn assert_refusal(refusal: &fuzzing::AdminRefusal, statuses: &[u16]) {
    assert!(
        statuses.contains(&refusal.status.as_u16()),
        "a refusal is one of {statuses:?}, not {}",
        refusal.status
    );
    let document: serde_json::Value =
        serde_json::from_slice(&refusal.body).expect("a refusal is JSON");
    let code = document["error"]["code"].as_str().expect("error.code");
    let message = document["error"]["message"]
        .as_str()
        .expect("error.message");
    assert!(!code.is_empty() && !message.is_empty());
    // An unknown field is named in the message, cut to 64 characters; the rest is ours.
    assert!(
        message.chars().count() <= 64 + 200,
        "a refusal's message is bounded: {} chars",
        message.chars().count()
    );
}

/// `METHOD /path?query` as the admin API routes it: a known route's share id is a share id, a
/// list filter's values are taken literally, and every refusal is a JSON 400, 404 or 405.
pub fn check_admin_request_line(line: &str) {
    let Some((method, target)) = line.split_once(' ') else {
        return;
    };
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    match fuzzing::admin_route(&method, path) {
        Ok(
            fuzzing::Route::GetShare { id }
            | fuzzing::Route::RevokeShare { id }
            | fuzzing::Route::ResendShare { id },
        ) => assert!(token::is_share_id(id), "a routed share id is a share id"),
        Ok(fuzzing::Route::RevokeCase { case }) => {
            assert!(!case.is_empty() && !case.contains('/'))
        }
        Ok(_) => {}
        Err(refusal) => assert_refusal(&refusal, &[400, 404, 405]),
    }
    match fuzzing::admin_list_filter(query) {
        Ok(filter) => assert!(
            filter
                .case
                .is_none_or(|case| !case.is_empty() && !case.contains(['%', '&'])),
            "a case filter is a literal, non-empty value"
        ),
        Err(refusal) => assert_refusal(&refusal, &[400]),
    }
}

// === upstream_response ===

/// What reading one upstream response made of a byte stream, in a form two reads can compare.
#[derive(Debug, PartialEq, Eq)]
pub enum UpstreamRead {
    /// The head was refused (a 502 for the guest).
    Refused,
    /// The stream ended inside the head.
    Incomplete,
    Read {
        status: u16,
        fields: Vec<(String, Vec<u8>)>,
        framing: BodyFraming,
        reusable: bool,
        body: Vec<u8>,
        end: BodyEnd,
        /// What followed the body's end.
        rest: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// Where the framing said.
    Complete,
    /// The stream ended first.
    Short,
    /// The chunked framing broke.
    Broken,
}

/// An answer as an app behind nginx sends it, whose field names a connection then remembers.
const TYPICAL_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 05 Dec 2026 16:00:00 GMT\r\n\
    Content-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\
    ETag: \"1\"\r\nSet-Cookie: a=1\r\nAccept-Ranges: bytes\r\n\r\n{}";

/// Reads `stream` as casegate's upstream client does, the bytes arriving `piece` at a time, on a
/// new connection.
pub fn read_upstream_response(stream: &[u8], piece: usize, method: &Method) -> UpstreamRead {
    read_upstream_response_after(stream, piece, method, &mut ResponseMemory::default())
}

/// [`read_upstream_response`] on a connection that remembers in `memory` the heads it read
/// before.
pub fn read_upstream_response_after(
    stream: &[u8],
    piece: usize,
    method: &Method,
    memory: &mut ResponseMemory,
) -> UpstreamRead {
    let mut pieces = stream.chunks(piece.max(1));
    let mut buffer = BytesMut::new();
    let mut interim = 0;
    let head = loop {
        match parse_response_head(&mut buffer, method, memory) {
            Ok(Parsed::Final(head)) => break *head,
            Ok(Parsed::Interim) => {
                interim += 1;
                if interim > 16 {
                    return UpstreamRead::Refused;
                }
            }
            Ok(Parsed::Partial) => match pieces.next() {
                Some(bytes) => buffer.extend_from_slice(bytes),
                None => return UpstreamRead::Incomplete,
            },
            Err(_) => return UpstreamRead::Refused,
        }
    };
    let mut body = Vec::new();
    let end = match head.framing {
        BodyFraming::Empty | BodyFraming::Switched => BodyEnd::Complete,
        BodyFraming::Length(length) => loop {
            let missing = length - body.len() as u64;
            if missing == 0 {
                break BodyEnd::Complete;
            }
            let take = buffer
                .len()
                .min(usize::try_from(missing).unwrap_or(usize::MAX));
            body.extend_from_slice(&buffer.split_to(take));
            if body.len() as u64 == length {
                break BodyEnd::Complete;
            }
            match pieces.next() {
                Some(bytes) => buffer.extend_from_slice(bytes),
                None => break BodyEnd::Short,
            }
        },
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            loop {
                match decoder.decode(&mut buffer) {
                    Ok(Decoded::Data(data)) => body.extend_from_slice(&data),
                    Ok(Decoded::End) => break BodyEnd::Complete,
                    Ok(Decoded::NeedMore) => match pieces.next() {
                        Some(bytes) => buffer.extend_from_slice(bytes),
                        None => break BodyEnd::Short,
                    },
                    Err(_) => break BodyEnd::Broken,
                }
            }
        }
        BodyFraming::UntilClose => {
            body.extend_from_slice(&buffer.split());
            pieces
                .by_ref()
                .for_each(|bytes| body.extend_from_slice(bytes));
            BodyEnd::Complete
        }
    };
    // After broken framing the connection is closed, and nothing after it is read.
    let mut rest = Vec::new();
    if end != BodyEnd::Broken {
        rest.extend_from_slice(&buffer);
        pieces.for_each(|bytes| rest.extend_from_slice(bytes));
    }
    // What is handed on: the map and the fields passed on as they came, with the declared
    // length (as an HTTP/2 answer gets them all in one map).
    let mut handed_on = head.headers;
    head.passed.move_into(&mut handed_on);
    UpstreamRead::Read {
        status: head.status.as_u16(),
        fields: fields_of(&handed_on),
        framing: head.framing,
        reusable: head.reusable,
        body,
        end,
        rest,
    }
}

/// The stream a little changed, as the next head on a connection often is: every digit turned to
/// the next (a `Date`'s seconds, a length, a status), every letter's case swapped (a value, a
/// name), every small vowel made an `x` (`close` and `chunked` no longer said), and one byte,
/// picked by `control`, made one that ends, trims or breaks a value (or an ordinary letter).
fn variants_of(stream: &[u8], control: u8) -> [Vec<u8>; 4] {
    let next_digits = stream
        .iter()
        .map(|&byte| match byte {
            b'9' => b'0',
            b'0'..=b'8' => byte + 1,
            _ => byte,
        })
        .collect();
    let swapped_case = stream
        .iter()
        .map(|&byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' => byte ^ 0x20,
            _ => byte,
        })
        .collect();
    let no_vowels = stream
        .iter()
        .map(|&byte| match byte {
            b'a' | b'e' | b'i' | b'o' | b'u' => b'x',
            _ => byte,
        })
        .collect();
    let mut one_byte = stream.to_vec();
    if !one_byte.is_empty() {
        let at = usize::from(control).wrapping_mul(37) % one_byte.len();
        let breakers = [b' ', b'\t', b'\r', b'\n', 0, 0x7f, 0x80, b':', b'x'];
        one_byte[at] = breakers[usize::from(control) % breakers.len()];
    }
    [next_digits, swapped_case, no_vowels, one_byte]
}

/// Arbitrary bytes as what an upstream sends for one request; the first byte picks the request's
/// method (GET or HEAD) and the size of the pieces the rest arrives in. However the bytes are
/// split, the same head, body and leftover are read; nothing panics; the body holds no byte the
/// upstream did not send; the guest is never told a length that is not the body's framing, and
/// never both framings; a connection is kept only when its framing says where the body ends.
pub fn check_upstream_response(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let method = if control & 1 == 0 {
        Method::GET
    } else {
        Method::HEAD
    };
    let piece = usize::from(control >> 1) + 1;
    let whole = read_upstream_response(stream, stream.len().max(1), &method);
    let split = read_upstream_response(stream, piece, &method);
    assert_eq!(
        whole, split,
        "upstream_response: read in pieces of {piece}, the stream read otherwise"
    );
    // A kept connection remembers the last head: the next is read as a repeat of it when it
    // differs only in values handed on, and otherwise the names are recalled one by one where
    // the next head has them in the same place. After another head, then after this one, the
    // stream reads as on a new connection; and so do the stream's four variants (digits, letter
    // case, vowels, one byte changed) after the stream.
    let mut memory = ResponseMemory::default();
    let _ = read_upstream_response_after(
        TYPICAL_RESPONSE,
        TYPICAL_RESPONSE.len(),
        &method,
        &mut memory,
    );
    for turn in ["after another head", "after its own"] {
        let remembered = read_upstream_response_after(stream, piece, &method, &mut memory);
        assert_eq!(
            whole, remembered,
            "upstream_response: read {turn} on the same connection, the stream read otherwise"
        );
    }
    for variant in variants_of(stream, control) {
        let _ = read_upstream_response_after(stream, piece, &method, &mut memory);
        let remembered = read_upstream_response_after(&variant, piece, &method, &mut memory);
        let fresh = read_upstream_response(&variant, piece, &method);
        assert_eq!(
            fresh, remembered,
            "upstream_response: {variant:?} read after {stream:?} on the same connection, \
             the variant read otherwise"
        );
    }
    let UpstreamRead::Read {
        status,
        fields,
        framing,
        reusable,
        body,
        end,
        rest,
    } = whole
    else {
        return;
    };
    assert!(
        !(100..200).contains(&status) || status == 101,
        "upstream_response: an interim {status} was taken for the answer"
    );
    assert!(
        body.len() + rest.len() <= stream.len(),
        "upstream_response: more bytes read than sent"
    );
    let lengths: Vec<&[u8]> = fields
        .iter()
        .filter(|(name, _)| name == "content-length")
        .map(|(_, value)| value.as_slice())
        .collect();
    let transfer_coded = fields.iter().any(|(name, _)| name == "transfer-encoding");
    assert!(
        !transfer_coded || lengths.is_empty(),
        "upstream_response: both framings are passed on: {fields:?}"
    );
    if let [length] = lengths.as_slice() {
        assert!(
            !length.is_empty() && length.iter().all(u8::is_ascii_digit),
            "upstream_response: the length passed on is not one number: {length:?}"
        );
        if let BodyFraming::Length(framed) = framing {
            assert_eq!(
                std::str::from_utf8(length)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok()),
                Some(framed),
                "upstream_response: the length passed on is not the body's"
            );
        }
    } else {
        assert!(
            lengths.is_empty(),
            "upstream_response: more than one length passed on: {fields:?}"
        );
    }
    if matches!(framing, BodyFraming::Length(_)) && end == BodyEnd::Complete {
        assert_eq!(
            Some(body.len() as u64),
            match framing {
                BodyFraming::Length(length) => Some(length),
                _ => None,
            }
        );
    }
    if reusable {
        assert!(
            matches!(
                framing,
                BodyFraming::Empty | BodyFraming::Length(_) | BodyFraming::Chunked
            ),
            "upstream_response: a connection framed by {framing:?} is kept"
        );
    }
    if method == Method::HEAD || status == 204 || status == 304 {
        assert!(
            body.is_empty() && matches!(framing, BodyFraming::Empty | BodyFraming::Switched),
            "upstream_response: a body read after HEAD, 204 or 304"
        );
    }
}

// === client_requests ===

/// The head limits the client_requests property reads under (the defaults' order of size).
const CLIENT_HEAD_LIMITS: HeadLimits = HeadLimits {
    max_bytes: 8192,
    max_fields: 100,
};

/// One request as casegate's HTTP/1 server read it off a connection.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientRequest {
    pub method: String,
    pub target: String,
    pub http11: bool,
    pub fields: Vec<(String, Vec<u8>)>,
    pub framing: RequestFraming,
    pub keep_alive: bool,
    pub body: Vec<u8>,
    pub end: BodyEnd,
}

/// What one connection's bytes were read as: its requests in order, then how reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientRead {
    pub requests: Vec<ClientRequest>,
    /// A head was refused (400, 414 or 431: which one may depend on how much had arrived).
    pub refused: bool,
    /// Bytes taken as heads and bodies.
    pub consumed: usize,
}

/// Reads `stream` as casegate's HTTP/1 server reads a connection (`server::h1`), the bytes arriving
/// `piece` at a time: heads, then each body as far as its framing says, while the connection is
/// kept alive.
pub fn read_client_requests(stream: &[u8], piece: usize) -> ClientRead {
    read_client_requests_remembering(stream, piece, true)
}

/// [`read_client_requests`], with the connection remembering each head for reading the next
/// (as the server does) or forgetting it (each head parsed as on a new connection).
pub fn read_client_requests_remembering(
    stream: &[u8],
    piece: usize,
    remembering: bool,
) -> ClientRead {
    let mut pieces = stream.chunks(piece.max(1));
    let mut fed = 0;
    let mut buffer = BytesMut::new();
    let mut memory = RequestMemory::default();
    let mut requests = Vec::new();
    let mut feed = |buffer: &mut BytesMut| match pieces.next() {
        Some(bytes) => {
            fed += bytes.len();
            buffer.extend_from_slice(bytes);
            true
        }
        None => false,
    };
    loop {
        if !remembering {
            memory = RequestMemory::default();
        }
        let head = match parse_request_head(&mut buffer, CLIENT_HEAD_LIMITS, &mut memory) {
            Ok(Some(head)) => head,
            Ok(None) if feed(&mut buffer) => continue,
            Ok(None) => break,
            Err(_) => {
                return ClientRead {
                    requests,
                    refused: true,
                    consumed: fed - buffer.len(),
                };
            }
        };
        let mut decoder = BodyDecoder::new(head.framing);
        let mut body = Vec::new();
        let end = loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(data)) => body.extend_from_slice(&data),
                Ok(None) if decoder.is_done() => break BodyEnd::Complete,
                Ok(None) if feed(&mut buffer) => {}
                Ok(None) => break BodyEnd::Short,
                Err(_) => break BodyEnd::Broken,
            }
        };
        let keep_alive = head.keep_alive;
        requests.push(ClientRequest {
            method: head.method.to_string(),
            target: head.uri.to_string(),
            http11: head.version == http::Version::HTTP_11,
            fields: fields_of(&head.headers),
            framing: head.framing,
            keep_alive,
            body,
            end,
        });
        if end != BodyEnd::Complete || !keep_alive {
            break;
        }
    }
    ClientRead {
        requests,
        refused: false,
        consumed: fed - buffer.len(),
    }
}

/// Arbitrary bytes as what a client sends on one connection; the first byte picks the size of the
/// pieces the rest arrives in. However the bytes are split, the same requests are read, with the
/// same bodies, and reading stops at the same place; nothing panics; no byte is read twice or
/// past what was sent; every request the gateway sees is framed one way only, says the length its
/// body was read by, and after a request that closes the connection nothing more is read.
pub fn check_client_requests(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(control) + 1;
    let whole = read_client_requests(stream, stream.len().max(1));
    let split = read_client_requests(stream, piece);
    assert_eq!(
        whole.requests, split.requests,
        "client_requests: read in pieces of {piece}, the requests differ"
    );
    assert_eq!(
        whole.refused, split.refused,
        "client_requests: read in pieces of {piece}, refused otherwise"
    );
    assert!(
        whole.consumed <= stream.len(),
        "client_requests: more bytes read than sent"
    );
    // A connection remembers its last head, and reads the next as a repeat of it when it differs
    // only in values the server does not read: the stream, and the stream followed by its four
    // variants (digits, letter case, vowels, one byte changed), read as with every head parsed
    // afresh.
    assert_eq!(
        whole,
        read_client_requests_remembering(stream, stream.len().max(1), false),
        "client_requests: read remembering each head, the stream read otherwise"
    );
    for variant in variants_of(stream, control) {
        let both = [stream, &variant].concat();
        assert_eq!(
            read_client_requests_remembering(&both, piece, true),
            read_client_requests_remembering(&both, piece, false),
            "client_requests: {variant:?} read after {stream:?} remembering each head, \
             the two read otherwise"
        );
    }
    for (index, request) in whole.requests.iter().enumerate() {
        let named = |wanted: &str| -> Vec<&[u8]> {
            request
                .fields
                .iter()
                .filter(|(name, _)| name == wanted)
                .map(|(_, value)| value.as_slice())
                .collect()
        };
        let lengths = named("content-length");
        let codings = named("transfer-encoding");
        assert!(
            lengths.len() <= 1,
            "client_requests: more than one length passed on: {:?}",
            request.fields
        );
        assert!(
            lengths.is_empty() || codings.is_empty(),
            "client_requests: both framings passed on: {:?}",
            request.fields
        );
        assert!(
            request.http11 || codings.is_empty(),
            "client_requests: Transfer-Encoding taken on HTTP/1.0"
        );
        let declared = lengths.first().map(|length| {
            std::str::from_utf8(length.trim_ascii())
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
        });
        match request.framing {
            RequestFraming::Length(length) => {
                assert_eq!(
                    declared,
                    Some(Some(length)),
                    "client_requests: length not the field's"
                );
                if request.end == BodyEnd::Complete {
                    assert_eq!(
                        request.body.len() as u64,
                        length,
                        "client_requests: body not its length"
                    );
                }
            }
            RequestFraming::Chunked => assert!(
                !codings.is_empty() && lengths.is_empty(),
                "client_requests: chunked without its field"
            ),
            RequestFraming::Empty => {
                assert!(
                    codings.is_empty(),
                    "client_requests: a coding read as no body"
                );
                assert!(
                    matches!(declared, None | Some(Some(0))),
                    "client_requests: a length read as no body"
                );
                assert!(request.body.is_empty());
            }
        }
        let last = index + 1 == whole.requests.len();
        assert!(
            last || (request.keep_alive && request.end == BodyEnd::Complete),
            "client_requests: read on after a request that ends the connection"
        );
    }
}

/// A head's fields as (lower-case name, value bytes), in order.
fn fields_of(headers: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}
