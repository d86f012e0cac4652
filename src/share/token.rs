//! Share links: minting and verifying the JWS compact token (a JWT, HS256 only) a recipient
//! clicks on.
//!
//! Any JWT library can mint links. With PyJWT (`pip install PyJWT` or
//! `apt-get install python3-jwt`), given the key exactly as written in casegate's key file:
//!
//! ```python
//! import base64, os, secrets, time
//! import jwt
//!
//! key_b64 = os.environ["CASEGATE_LINK_KEY"]
//! key = base64.urlsafe_b64decode(key_b64 + "=" * (-len(key_b64) % 4))
//! now = int(time.time())
//! claims = {
//!     "jti": secrets.token_urlsafe(16),
//!     "case": "C-1042",
//!     "scope": "read",
//!     "iat": now,
//!     "exp": now + 7 * 24 * 3600,
//!     "email": "recipient@example.org",
//! }
//! print(jwt.encode(claims, key, algorithm="HS256", headers={"kid": "k1"}))
//! ```
//!
//! The key bytes are the base64url-decoded text, not the text itself. `jti` must be at least 128
//! random bits (`token_urlsafe(16)`); `nbf` and `lang` are optional; other claims are ignored.

use std::fmt;

use hmac::Mac;
use serde_json::{Map, Value as JsonValue};

use super::b64;
use super::case::CaseGrammar;
use super::json::{JsonError, Mistyped, Object};
use super::keys::{KeyRing, RandomnessUnavailable, random_bytes};
use super::split_at_last_dot;
use crate::constant_time::same_bytes;

/// Longer tokens are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The clock skew tolerated between the minting system and the gateway.
pub const DEFAULT_CLOCK_SKEW_SECS: i64 = 60;

/// Scope names are config-defined; the bound keeps guest cookies small.
pub const MAX_SCOPE_LEN: usize = 32;

/// RFC 5321 path limit.
pub const MAX_EMAIL_LEN: usize = 254;

/// The longest BCP 47 tag anyone needs in practice (RFC 5646 §4.4.1 suggests 35).
pub const MAX_LANG_LEN: usize = 35;

const MIN_SHARE_ID_LEN: usize = 16;
const MAX_SHARE_ID_LEN: usize = 128;

/// A header is a handful of short members; anything longer is refused before decoding.
const MAX_HEADER_BYTES: usize = 768;
/// A link's claims are a few hundred bytes; longer ones (up to [`MAX_TOKEN_LEN`]) are decoded
/// into the heap.
const PAYLOAD_ON_STACK_BYTES: usize = 768;
/// An HMAC-SHA256 tag, and its unpadded base64url length.
const SIGNATURE_BYTES: usize = 32;
const SIGNATURE_CHARS: usize = 43;

/// Header members are parsed before the MAC is checked, so their number is kept small.
const MAX_HEADER_MEMBERS: usize = 16;
const MAX_CLAIMS: usize = 64;

/// What a verified link grants, as carried in its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    /// `jti`: identifies this share for revocation and audit.
    pub share_id: String,
    pub case: String,
    pub scope: String,
    /// `iat`, unix seconds.
    pub issued_at: i64,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// `nbf`, unix seconds.
    pub not_before: Option<i64>,
    /// The recipient, when the link should be confirmed by a code sent there.
    pub email: Option<String>,
    /// Preferred language for the pages casegate shows.
    pub lang: Option<String>,
}

/// The deployment-specific part of verification.
pub struct LinkRules<'a> {
    pub now: i64,
    /// Longest allowed `exp - iat`.
    pub max_ttl_secs: i64,
    /// Usually [`DEFAULT_CLOCK_SKEW_SECS`].
    pub clock_skew_secs: i64,
    pub case_grammar: &'a CaseGrammar,
    pub scope_exists: &'a dyn Fn(&str) -> bool,
}

/// A claim a link must or may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    ShareId,
    Case,
    Scope,
    IssuedAt,
    ExpiresAt,
    NotBefore,
    Email,
    Lang,
}

/// Why a link was refused. Never carries any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLong,
    /// Not three strict base64url parts, or a part is not a JSON object.
    Malformed,
    /// The header or claims name a key twice.
    DuplicateKey,
    /// Too many header members or claims.
    TooManyMembers,
    /// `alg` is missing or anything but exactly `HS256`.
    UnsupportedAlgorithm,
    /// A `typ` other than JWT, or a `crit` extension we cannot honour.
    UnsupportedHeader,
    /// `kid` is missing or names no key in the ring.
    UnknownKey,
    BadSignature,
    MissingClaim(Claim),
    MistypedClaim(Claim),
    Expired,
    /// `nbf` or `iat` is in the future.
    NotYetValid,
    /// `exp - iat` exceeds the configured maximum.
    LifetimeTooLong,
    ExpiresBeforeIssued,
    /// `jti` is not 16 to 128 characters of base64url.
    BadShareId,
    UnknownScope,
    /// The case id does not match the case grammar.
    BadCase,
    BadEmail,
    BadLang,
}

/// How the gateway should answer a refused link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkErrorKind {
    /// 410, "this link has expired".
    Expired,
    /// 403, "this link is not valid yet".
    NotYetValid,
    /// 403, "this link is not valid".
    Invalid,
}

/// A fresh share id: 128 random bits as 22 base64url characters.
pub fn new_share_id() -> Result<String, RandomnessUnavailable> {
    Ok(b64::encode(&random_bytes::<16>()?))
}

/// Signs `claims` with the ring's active key. Nothing is checked: the caller mints what it means.
pub fn mint(keys: &KeyRing, claims: &LinkClaims) -> String {
    let mut payload = Map::new();
    payload.insert("jti".into(), claims.share_id.clone().into());
    payload.insert("case".into(), claims.case.clone().into());
    payload.insert("scope".into(), claims.scope.clone().into());
    payload.insert("iat".into(), claims.issued_at.into());
    payload.insert("exp".into(), claims.expires_at.into());
    if let Some(not_before) = claims.not_before {
        payload.insert("nbf".into(), not_before.into());
    }
    if let Some(email) = &claims.email {
        payload.insert("email".into(), email.clone().into());
    }
    if let Some(lang) = &claims.lang {
        payload.insert("lang".into(), lang.clone().into());
    }

    let mut token = String::with_capacity(256);
    token.push_str(keys.active_header());
    token.push('.');
    b64::encode_into(
        JsonValue::Object(payload).to_string().as_bytes(),
        &mut token,
    );
    let tag = keys
        .active_link_mac()
        .chain_update(token.as_bytes())
        .finalize()
        .into_bytes();
    token.push('.');
    b64::encode_into(&tag, &mut token);
    token
}

/// Checks a link token and returns its claims.
///
/// Nothing but the header is interpreted before the MAC has been checked, and the header only
/// to pick the key: the algorithm is fixed, never taken from the token.
pub fn verify(keys: &KeyRing, token: &str, rules: &LinkRules<'_>) -> Result<LinkClaims, LinkError> {
    with_authentic_claims(keys, token, |claims| check_claims(claims, rules))?
}

/// The `lang` claim of a token whose MAC verifies, whatever else is wrong with it (expired, not
/// yet valid...): the page that refuses a genuine link speaks the share's language. A forged or
/// malformed token gets `None`, so nobody can choose the language of a refusal but the sharer.
pub fn authentic_lang(keys: &KeyRing, token: &str) -> Option<String> {
    with_authentic_claims(keys, token, |claims| {
        claims
            .str(Claim::Lang.name())
            .ok()
            .flatten()
            .filter(|lang| is_lang_tag(lang))
            .map(str::to_owned)
    })
    .ok()
    .flatten()
}

/// Checks the token's shape, header and MAC, then hands its claims to `read`.
fn with_authentic_claims<R>(
    keys: &KeyRing,
    token: &str,
    read: impl FnOnce(&Object<'_>) -> R,
) -> Result<R, LinkError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(LinkError::TooLong);
    }
    let TokenParts {
        signing_input,
        header_b64,
        payload_b64,
        signature_b64,
    } = TokenParts::of(token).ok_or(LinkError::Malformed)?;
    // Decoded on the stack: verification is on every link open and allocates only the claims.
    // Each buffer is zeroed where it is declared, so each is only as large as it needs to be: room
    // for the largest payload allowed (3 KiB) and a header casegate does not write, zeroed on
    // every verification, was 5% of one (`share/verify_link`, perf). A payload longer than a
    // link's few hundred bytes is decoded into the heap.
    let mut header_buffer;
    let mut payload_on_stack = [0u8; PAYLOAD_ON_STACK_BYTES];
    let mut payload_on_heap = Vec::new();
    let payload_buffer: &mut [u8] = if payload_b64.len() <= PAYLOAD_ON_STACK_BYTES / 3 * 4 {
        &mut payload_on_stack
    } else {
        payload_on_heap.resize(payload_b64.len().div_ceil(4) * 3, 0);
        &mut payload_on_heap
    };
    let mut signature_buffer = [0u8; SIGNATURE_BYTES];
    let parsed_header;
    let kid = match keys.kid_of_own_header(header_b64) {
        // Byte for byte a header casegate writes: nothing in it to check.
        Some(kid) => kid,
        None => {
            header_buffer = [0u8; MAX_HEADER_BYTES];
            let header = b64::decode_into(
                header_b64.as_bytes(),
                MAX_HEADER_BYTES / 3 * 4,
                &mut header_buffer,
            )
            .map_err(|_| LinkError::Malformed)?;
            parsed_header = Object::parse(header, MAX_HEADER_MEMBERS).map_err(LinkError::from)?;
            check_header(&parsed_header)?
        }
    };
    let payload = b64::decode_into(payload_b64.as_bytes(), MAX_TOKEN_LEN, payload_buffer)
        .map_err(|_| LinkError::Malformed)?;
    let signature = b64::decode_into(
        signature_b64.as_bytes(),
        SIGNATURE_CHARS,
        &mut signature_buffer,
    )
    .map_err(|_| LinkError::Malformed)?;

    let mac = keys.link_mac(kid).ok_or(LinkError::UnknownKey)?;
    let expected = mac
        .chain_update(signing_input.as_bytes())
        .finalize()
        .into_bytes();
    if !same_bytes(&expected, signature) {
        return Err(LinkError::BadSignature);
    }

    let claims = Object::parse(payload, MAX_CLAIMS).map_err(LinkError::from)?;
    Ok(read(&claims))
}

/// A token's three dot-separated parts, and the first two as signed.
struct TokenParts<'t> {
    signing_input: &'t str,
    header_b64: &'t str,
    payload_b64: &'t str,
    signature_b64: &'t str,
}

impl<'t> TokenParts<'t> {
    /// `header.payload.signature`, exactly two dots. Found with `memchr`, a vector at a time:
    /// `rsplit_once`, `split_once` and `contains` with a `char`, which check each match as a
    /// whole character, were 6% of a verification in `perf` (`share/verify_link`; callgrind
    /// 31,857 -> 31,371 instructions).
    fn of(token: &'t str) -> Option<TokenParts<'t>> {
        let (signing_input, signature_b64) = split_at_last_dot(token)?;
        let first = memchr::memchr(b'.', signing_input.as_bytes())?;
        let payload_b64 = signing_input.get(first + 1..)?;
        if memchr::memchr(b'.', payload_b64.as_bytes()).is_some() {
            return None;
        }
        Some(TokenParts {
            signing_input,
            header_b64: signing_input.get(..first)?,
            payload_b64,
            signature_b64,
        })
    }
}

/// Returns the key id once the header asks for exactly what we do.
fn check_header<'h>(header: &'h Object<'_>) -> Result<&'h str, LinkError> {
    let alg = header
        .str("alg")
        .map_err(|Mistyped| LinkError::UnsupportedAlgorithm)?;
    if alg != Some("HS256") {
        return Err(LinkError::UnsupportedAlgorithm);
    }
    // Media types compare case-insensitively (RFC 7515 §4.1.9).
    let typ = header
        .str("typ")
        .map_err(|Mistyped| LinkError::UnsupportedHeader)?;
    if typ.is_some_and(|typ| !typ.eq_ignore_ascii_case("JWT")) {
        return Err(LinkError::UnsupportedHeader);
    }
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood, and we understand none.
    if header.get("crit").is_some() {
        return Err(LinkError::UnsupportedHeader);
    }
    header
        .str("kid")
        .ok()
        .flatten()
        .ok_or(LinkError::UnknownKey)
}

fn check_claims(claims: &Object<'_>, rules: &LinkRules<'_>) -> Result<LinkClaims, LinkError> {
    let share_id = required(claims.str(Claim::ShareId.name()), Claim::ShareId)?;
    let case = required(claims.str(Claim::Case.name()), Claim::Case)?;
    let scope = required(claims.str(Claim::Scope.name()), Claim::Scope)?;
    let issued_at = required(claims.int(Claim::IssuedAt.name()), Claim::IssuedAt)?;
    let expires_at = required(claims.int(Claim::ExpiresAt.name()), Claim::ExpiresAt)?;
    let not_before = optional(claims.int(Claim::NotBefore.name()), Claim::NotBefore)?;
    let email = optional(claims.str(Claim::Email.name()), Claim::Email)?;
    let lang = optional(claims.str(Claim::Lang.name()), Claim::Lang)?;

    let skew = rules.clock_skew_secs.max(0);
    let earliest = rules.now.saturating_sub(skew);
    let latest = rules.now.saturating_add(skew);
    if expires_at < earliest {
        return Err(LinkError::Expired);
    }
    if not_before.is_some_and(|nbf| nbf > latest) || issued_at > latest {
        return Err(LinkError::NotYetValid);
    }
    if expires_at < issued_at {
        return Err(LinkError::ExpiresBeforeIssued);
    }
    if expires_at.saturating_sub(issued_at) > rules.max_ttl_secs {
        return Err(LinkError::LifetimeTooLong);
    }

    if !is_share_id(share_id) {
        return Err(LinkError::BadShareId);
    }
    if !rules.case_grammar.matches(case) {
        return Err(LinkError::BadCase);
    }
    if scope.is_empty() || scope.len() > MAX_SCOPE_LEN || !(rules.scope_exists)(scope) {
        return Err(LinkError::UnknownScope);
    }
    if email.is_some_and(|email| !is_email(email)) {
        return Err(LinkError::BadEmail);
    }
    if lang.is_some_and(|lang| !is_lang_tag(lang)) {
        return Err(LinkError::BadLang);
    }

    Ok(LinkClaims {
        share_id: share_id.to_owned(),
        case: case.to_owned(),
        scope: scope.to_owned(),
        issued_at,
        expires_at,
        not_before,
        email: email.map(str::to_owned),
        lang: lang.map(str::to_owned),
    })
}

fn required<T>(found: Result<Option<T>, Mistyped>, claim: Claim) -> Result<T, LinkError> {
    optional(found, claim)?.ok_or(LinkError::MissingClaim(claim))
}

fn optional<T>(found: Result<Option<T>, Mistyped>, claim: Claim) -> Result<Option<T>, LinkError> {
    found.map_err(|Mistyped| LinkError::MistypedClaim(claim))
}

/// A share id as links carry it: `[A-Za-z0-9_-]{16,128}`. The admin API holds path ids to it too.
pub fn is_share_id(id: &str) -> bool {
    (MIN_SHARE_ID_LEN..=MAX_SHARE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Deliberately loose about the address itself (that is the mail system's job) but strict about
/// what could break out of a header or a page: no controls, no whitespace.
pub fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= MAX_EMAIL_LEN
        && !local.is_empty()
        && !domain.is_empty()
        && !email.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*`, at most 35 characters.
pub fn is_lang_tag(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let primary_ok = subtags.next().is_some_and(|primary| {
        (1..=8).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic())
    });
    tag.len() <= MAX_LANG_LEN
        && primary_ok
        && subtags.all(|sub| {
            (1..=8).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

// === impl Claim ===

impl Claim {
    /// The claim's name in the token.
    pub fn name(self) -> &'static str {
        match self {
            Claim::ShareId => "jti",
            Claim::Case => "case",
            Claim::Scope => "scope",
            Claim::IssuedAt => "iat",
            Claim::ExpiresAt => "exp",
            Claim::NotBefore => "nbf",
            Claim::Email => "email",
            Claim::Lang => "lang",
        }
    }
}

// === impl LinkError ===

impl LinkError {
    /// Which page the recipient sees.
    pub fn kind(&self) -> LinkErrorKind {
        match self {
            LinkError::Expired => LinkErrorKind::Expired,
            LinkError::NotYetValid => LinkErrorKind::NotYetValid,
            LinkError::TooLong
            | LinkError::Malformed
            | LinkError::DuplicateKey
            | LinkError::TooManyMembers
            | LinkError::UnsupportedAlgorithm
            | LinkError::UnsupportedHeader
            | LinkError::UnknownKey
            | LinkError::BadSignature
            | LinkError::MissingClaim(_)
            | LinkError::MistypedClaim(_)
            | LinkError::LifetimeTooLong
            | LinkError::ExpiresBeforeIssued
            | LinkError::BadShareId
            | LinkError::UnknownScope
            | LinkError::BadCase
            | LinkError::BadEmail
            | LinkError::BadLang => LinkErrorKind::Invalid,
        }
    }
}

impl From<JsonError> for LinkError {
    fn from(error: JsonError) -> LinkError {
        match error {
            JsonError::NotAnObject => LinkError::Malformed,
            JsonError::DuplicateKey => LinkError::DuplicateKey,
            JsonError::TooManyMembers => LinkError::TooManyMembers,
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::TooLong => write!(f, "link token longer than {MAX_TOKEN_LEN} bytes"),
            LinkError::Malformed => f.write_str("link token is not a well-formed JWS"),
            LinkError::DuplicateKey => f.write_str("link token repeats a JSON key"),
            LinkError::TooManyMembers => {
                f.write_str("link token has too many header members or claims")
            }
            LinkError::UnsupportedAlgorithm => f.write_str("link token alg is not HS256"),
            LinkError::UnsupportedHeader => {
                f.write_str("link token header has an unsupported typ or crit")
            }
            LinkError::UnknownKey => f.write_str("link token kid is missing or unknown"),
            LinkError::BadSignature => f.write_str("link token signature does not verify"),
            LinkError::MissingClaim(claim) => {
                write!(f, "link token lacks the {} claim", claim.name())
            }
            LinkError::MistypedClaim(claim) => {
                write!(f, "link token {} claim has the wrong type", claim.name())
            }
            LinkError::Expired => f.write_str("link has expired"),
            LinkError::NotYetValid => f.write_str("link is not valid yet"),
            LinkError::LifetimeTooLong => {
                f.write_str("link lifetime exceeds the configured maximum")
            }
            LinkError::ExpiresBeforeIssued => f.write_str("link expires before it was issued"),
            LinkError::BadShareId => f.write_str("link jti is not 16 to 128 base64url characters"),
            LinkError::UnknownScope => f.write_str("link scope is not configured"),
            LinkError::BadCase => f.write_str("link case does not match the case grammar"),
            LinkError::BadEmail => f.write_str("link email is not a plausible address"),
            LinkError::BadLang => f.write_str("link lang is not a language tag"),
        }
    }
}

impl std::error::Error for LinkError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::keys::Secret;

    const NOW: i64 = 1_750_000_000;
    const DAY: i64 = 24 * 3600;
    const SHARE_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn ring(active: &str, kids: &[&str]) -> KeyRing {
        let keys = kids
            .iter()
            .map(|kid| ((*kid).to_owned(), key_for(kid)))
            .collect();
        KeyRing::new(active, keys).unwrap_or_else(|e| panic!("test ring: {e}"))
    }

    /// Each kid gets its own key so a signature under one never verifies under another.
    fn key_for(kid: &str) -> Secret {
        let mut bytes = vec![0x5A; 32];
        bytes.extend_from_slice(kid.as_bytes());
        Secret::from_bytes(bytes)
    }

    fn raw_key(kid: &str) -> Vec<u8> {
        let mut bytes = vec![0x5A; 32];
        bytes.extend_from_slice(kid.as_bytes());
        bytes
    }

    fn claims() -> LinkClaims {
        LinkClaims {
            share_id: SHARE_ID.to_owned(),
            case: "C-1042".to_owned(),
            scope: "read".to_owned(),
            issued_at: NOW - 60,
            expires_at: NOW + DAY,
            not_before: None,
            email: None,
            lang: None,
        }
    }

    fn with(edit: impl FnOnce(&mut LinkClaims)) -> LinkClaims {
        let mut claims = claims();
        edit(&mut claims);
        claims
    }

    fn check(keys: &KeyRing, token: &str) -> Result<LinkClaims, LinkError> {
        let grammar = CaseGrammar::default();
        let scopes = |scope: &str| scope == "read" || scope == "comment";
        let rules = LinkRules {
            now: NOW,
            max_ttl_secs: 30 * DAY,
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
            case_grammar: &grammar,
            scope_exists: &scopes,
        };
        verify(keys, token, &rules)
    }

    /// Signs arbitrary header and payload JSON with HS256 under `kid`'s test key.
    fn forge(kid: &str, header: &str, payload: &str) -> String {
        let signing_input = format!(
            "{}.{}",
            b64::encode(header.as_bytes()),
            b64::encode(payload.as_bytes())
        );
        let tag = crate::share::keys::HmacSha256::new_from_slice(&raw_key(kid))
            .map(|mac| {
                mac.chain_update(signing_input.as_bytes())
                    .finalize()
                    .into_bytes()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        format!("{signing_input}.{}", b64::encode(&tag))
    }

    const HEADER: &str = r#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#;
    const PAYLOAD: &str = r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","iat":1749999940,"exp":1750086400}"#;

    #[test]
    fn minted_links_verify_to_the_same_claims() {
        let keys = ring("k1", &["k1"]);
        let cases: &[(&str, LinkClaims)] = &[
            ("the minimal claims", claims()),
            (
                "every optional claim",
                with(|c| {
                    c.not_before = Some(NOW);
                    c.email = Some("a.b@example.org".into());
                    c.lang = Some("de-CH".into());
                }),
            ),
            (
                "another configured scope",
                with(|c| c.scope = "comment".into()),
            ),
            (
                "a 128-character share id",
                with(|c| c.share_id = "x".repeat(128)),
            ),
            ("a 64-character case", with(|c| c.case = "c".repeat(64))),
        ];
        for (name, want) in cases {
            assert_eq!(
                check(&keys, &mint(&keys, want)).as_ref(),
                Ok(want),
                "{name}"
            );
        }
    }

    #[test]
    fn a_minted_header_is_the_documented_one() {
        let keys = ring("k1", &["k1"]);
        let token = mint(&keys, &claims());
        let header = token.split('.').next().map(|h| b64::decode(h, 100));
        assert_eq!(header, Some(Ok(HEADER.as_bytes().to_vec())));
    }

    #[test]
    fn a_hand_forged_token_matches_what_mint_produces() {
        let keys = ring("k1", &["k1"]);
        assert_eq!(check(&keys, &forge("k1", HEADER, PAYLOAD)), Ok(claims()));
    }

    #[test]
    fn claims_are_refused_by_rule() {
        let keys = ring("k1", &["k1"]);
        let cases: &[(&str, LinkClaims, LinkError)] = &[
            (
                "expired beyond the skew",
                with(|c| c.expires_at = NOW - 61),
                LinkError::Expired,
            ),
            (
                "not before, beyond the skew",
                with(|c| c.not_before = Some(NOW + 61)),
                LinkError::NotYetValid,
            ),
            (
                "issued in the future beyond the skew",
                with(|c| {
                    c.issued_at = NOW + 61;
                    c.expires_at = NOW + DAY
                }),
                LinkError::NotYetValid,
            ),
            (
                "a lifetime over the maximum",
                with(|c| {
                    c.issued_at = NOW - 1;
                    c.expires_at = NOW + 30 * DAY
                }),
                LinkError::LifetimeTooLong,
            ),
            (
                "expiry before issue",
                with(|c| {
                    c.issued_at = NOW;
                    c.expires_at = NOW - 1
                }),
                LinkError::ExpiresBeforeIssued,
            ),
            (
                "extreme times do not overflow",
                with(|c| {
                    c.issued_at = i64::MIN;
                    c.expires_at = i64::MAX
                }),
                LinkError::LifetimeTooLong,
            ),
            (
                "a short share id",
                with(|c| c.share_id = "A".repeat(15)),
                LinkError::BadShareId,
            ),
            (
                "a long share id",
                with(|c| c.share_id = "A".repeat(129)),
                LinkError::BadShareId,
            ),
            (
                "a share id with a dot",
                with(|c| c.share_id = format!("{SHARE_ID}.")),
                LinkError::BadShareId,
            ),
            (
                "an unknown scope",
                with(|c| c.scope = "write".into()),
                LinkError::UnknownScope,
            ),
            (
                "an empty scope",
                with(|c| c.scope = String::new()),
                LinkError::UnknownScope,
            ),
            (
                "a case with a slash",
                with(|c| c.case = "C/1042".into()),
                LinkError::BadCase,
            ),
            (
                "a dot-dot case",
                with(|c| c.case = "..".into()),
                LinkError::BadCase,
            ),
            (
                "an empty case",
                with(|c| c.case = String::new()),
                LinkError::BadCase,
            ),
            (
                "a case over 64 characters",
                with(|c| c.case = "c".repeat(65)),
                LinkError::BadCase,
            ),
            (
                "an email over 254 characters",
                with(|c| c.email = Some(format!("{}@example.org", "a".repeat(243)))),
                LinkError::BadEmail,
            ),
            (
                "an email with a newline",
                with(|c| c.email = Some("a@b.org\r\nX-Evil: 1".into())),
                LinkError::BadEmail,
            ),
            (
                "an email without an at sign",
                with(|c| c.email = Some("nobody".into())),
                LinkError::BadEmail,
            ),
            (
                "a lang with an empty subtag",
                with(|c| c.lang = Some("en-".into())),
                LinkError::BadLang,
            ),
            (
                "a lang with a digit first",
                with(|c| c.lang = Some("1en".into())),
                LinkError::BadLang,
            ),
            (
                "a lang subtag over 8",
                with(|c| c.lang = Some("en-abcdefghi".into())),
                LinkError::BadLang,
            ),
            (
                "a lang over 35 characters",
                with(|c| c.lang = Some(format!("en{}", "-abcdefgh".repeat(4)))),
                LinkError::BadLang,
            ),
            (
                "a lang with an underscore",
                with(|c| c.lang = Some("en_GB".into())),
                LinkError::BadLang,
            ),
        ];
        for (name, claims, want) in cases {
            assert_eq!(check(&keys, &mint(&keys, claims)), Err(*want), "{name}");
        }
    }

    #[test]
    fn times_within_the_skew_are_accepted() {
        let keys = ring("k1", &["k1"]);
        let cases: &[(&str, LinkClaims)] = &[
            (
                "expired less than the skew ago",
                with(|c| {
                    c.issued_at = NOW - DAY;
                    c.expires_at = NOW - 60
                }),
            ),
            (
                "not before within the skew",
                with(|c| c.not_before = Some(NOW + 60)),
            ),
            (
                "issued within the skew ahead",
                with(|c| c.issued_at = NOW + 60),
            ),
            (
                "a lifetime of exactly the maximum",
                with(|c| {
                    c.issued_at = NOW;
                    c.expires_at = NOW + 30 * DAY
                }),
            ),
            (
                "a lang tag of 35 characters",
                with(|c| c.lang = Some(format!("en{}-abcde", "-abcdefgh".repeat(3)))),
            ),
            (
                "an email of 254 characters",
                with(|c| c.email = Some(format!("{}@example.org", "a".repeat(242)))),
            ),
        ];
        for (name, claims) in cases {
            assert_eq!(
                check(&keys, &mint(&keys, claims)).as_ref(),
                Ok(claims),
                "{name}"
            );
        }
    }

    #[test]
    fn headers_other_than_hs256_with_a_known_kid_are_refused() {
        let keys = ring("k1", &["k1"]);
        let cases: &[(&str, &str, LinkError)] = &[
            (
                "alg none",
                r#"{"alg":"none","kid":"k1"}"#,
                LinkError::UnsupportedAlgorithm,
            ),
            (
                "alg HS384",
                r#"{"alg":"HS384","kid":"k1"}"#,
                LinkError::UnsupportedAlgorithm,
            ),
            (
                "alg HS512",
                r#"{"alg":"HS512","kid":"k1"}"#,
                LinkError::UnsupportedAlgorithm,
            ),
            (
                "alg RS256",
                r#"{"alg":"RS256","kid":"k1"}"#,
                LinkError::UnsupportedAlgorithm,
            ),
            (
                "alg in lower case",
                r#"{"alg":"hs256","kid":"k1"}"#,
                LinkError::UnsupportedAlgorithm,
            ),
            (
                "alg with a trailing space",
                r#"{"alg":"HS256 ","kid":"k1"}"#,
                LinkError::UnsupportedAlgorithm,
            ),
            (
                "alg as an array",
                r#"{"alg":["HS256"],"kid":"k1"}"#,
                LinkError::UnsupportedAlgorithm,
            ),
            (
                "alg missing",
                r#"{"kid":"k1"}"#,
                LinkError::UnsupportedAlgorithm,
            ),
            (
                "alg repeated",
                r#"{"alg":"HS256","alg":"none","kid":"k1"}"#,
                LinkError::DuplicateKey,
            ),
            (
                "alg repeated through an escape",
                r#"{"alg":"HS256","\u0061lg":"HS256","kid":"k1"}"#,
                LinkError::DuplicateKey,
            ),
            (
                "kid repeated",
                r#"{"alg":"HS256","kid":"k0","kid":"k1"}"#,
                LinkError::DuplicateKey,
            ),
            ("kid missing", r#"{"alg":"HS256"}"#, LinkError::UnknownKey),
            (
                "kid unknown",
                r#"{"alg":"HS256","kid":"k9"}"#,
                LinkError::UnknownKey,
            ),
            (
                "kid as a number",
                r#"{"alg":"HS256","kid":1}"#,
                LinkError::UnknownKey,
            ),
            (
                "typ not JWT",
                r#"{"alg":"HS256","kid":"k1","typ":"JOSE+JSON"}"#,
                LinkError::UnsupportedHeader,
            ),
            (
                "a crit extension",
                r#"{"alg":"HS256","kid":"k1","crit":["b64"],"b64":false}"#,
                LinkError::UnsupportedHeader,
            ),
            (
                "a header that is an array",
                r#"["HS256"]"#,
                LinkError::Malformed,
            ),
            ("a header that is not JSON", "HS256", LinkError::Malformed),
            (
                "a header with trailing data",
                r#"{"alg":"HS256","kid":"k1"}x"#,
                LinkError::Malformed,
            ),
        ];
        for (name, header, want) in cases {
            assert_eq!(
                check(&keys, &forge("k1", header, PAYLOAD)),
                Err(*want),
                "{name}"
            );
        }
    }

    #[test]
    fn typ_is_optional_and_compared_without_case() {
        let keys = ring("k1", &["k1"]);
        for header in [
            r#"{"alg":"HS256","kid":"k1"}"#,
            r#"{"typ":"jwt","alg":"HS256","kid":"k1"}"#,
            r#"{"alg":"HS256","kid":"k1","x-extra":[1,2]}"#,
        ] {
            assert_eq!(
                check(&keys, &forge("k1", header, PAYLOAD)),
                Ok(claims()),
                "{header}"
            );
        }
    }

    #[test]
    fn an_unsigned_alg_none_token_is_refused() {
        let keys = ring("k1", &["k1"]);
        let header = b64::encode(br#"{"alg":"none","kid":"k1","typ":"JWT"}"#);
        let payload = b64::encode(PAYLOAD.as_bytes());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert!(check(&keys, &token).is_err(), "{token}");
        }
        assert_eq!(
            check(&keys, &format!("{header}.{payload}.")),
            Err(LinkError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn payloads_are_checked_for_shape_after_the_mac() {
        let keys = ring("k1", &["k1"]);
        let cases: &[(&str, &str, LinkError)] = &[
            (
                "a missing jti",
                r#"{"case":"C-1042","scope":"read","iat":1749999940,"exp":1750086400}"#,
                LinkError::MissingClaim(Claim::ShareId),
            ),
            (
                "a missing case",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","scope":"read","iat":1749999940,"exp":1750086400}"#,
                LinkError::MissingClaim(Claim::Case),
            ),
            (
                "a missing scope",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","iat":1749999940,"exp":1750086400}"#,
                LinkError::MissingClaim(Claim::Scope),
            ),
            (
                "a missing iat",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","exp":1750086400}"#,
                LinkError::MissingClaim(Claim::IssuedAt),
            ),
            (
                "a missing exp",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","iat":1749999940}"#,
                LinkError::MissingClaim(Claim::ExpiresAt),
            ),
            (
                "exp as a string",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","iat":1749999940,"exp":"1750086400"}"#,
                LinkError::MistypedClaim(Claim::ExpiresAt),
            ),
            (
                "exp as a float",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","iat":1749999940,"exp":1750086400.5}"#,
                LinkError::MistypedClaim(Claim::ExpiresAt),
            ),
            (
                "case as a number",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":1042,"scope":"read","iat":1749999940,"exp":1750086400}"#,
                LinkError::MistypedClaim(Claim::Case),
            ),
            (
                "nbf as null",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","iat":1749999940,"exp":1750086400,"nbf":null}"#,
                LinkError::MistypedClaim(Claim::NotBefore),
            ),
            (
                "email as an array",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","iat":1749999940,"exp":1750086400,"email":["a@b"]}"#,
                LinkError::MistypedClaim(Claim::Email),
            ),
            (
                "case given twice",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","case":"C-1","scope":"read","iat":1749999940,"exp":1750086400}"#,
                LinkError::DuplicateKey,
            ),
            (
                "an unknown claim given twice",
                r#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","iat":1749999940,"exp":1750086400,"x":1,"x":2}"#,
                LinkError::DuplicateKey,
            ),
            ("claims that are an array", r#"[1]"#, LinkError::Malformed),
            ("claims that are not JSON", "exp=1", LinkError::Malformed),
        ];
        for (name, payload, want) in cases {
            assert_eq!(
                check(&keys, &forge("k1", HEADER, payload)),
                Err(*want),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_claims_are_ignored() {
        let keys = ring("k1", &["k1"]);
        let payload = r#"{"iss":"his","aud":["x"],"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","iat":1749999940,"exp":1750086400,"extra":{"a":{"a":1}}}"#;
        assert_eq!(check(&keys, &forge("k1", HEADER, payload)), Ok(claims()));
    }

    #[test]
    fn claims_too_long_for_the_stack_buffer_are_decoded_all_the_same() {
        let keys = ring("k1", &["k1"]);
        // Payloads of 767, 768 and 769 bytes (the stack buffer holds 768), and one near the
        // longest a token may carry.
        for note_len in [660, 661, 662, 2800] {
            let payload = format!(
                r#"{{"jti":"AAAAAAAAAAAAAAAAAAAAAA","case":"C-1042","scope":"read","iat":1749999940,"exp":1750086400,"note":"{}"}}"#,
                "n".repeat(note_len)
            );
            assert_eq!(
                payload.len(),
                note_len + 107,
                "the payload's length around the bound"
            );
            let token = forge("k1", HEADER, &payload);
            assert!(token.len() <= MAX_TOKEN_LEN, "{note_len}: {}", token.len());
            assert_eq!(
                check(&keys, &token),
                Ok(claims()),
                "a note of {note_len} bytes"
            );
        }
    }

    #[test]
    fn tampering_with_any_part_breaks_the_token() {
        let keys = ring("k1", &["k1"]);
        let token = mint(&keys, &claims());
        let other = mint(&keys, &with(|c| c.case = "C-9999".into()));
        let parts: Vec<&str> = token.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            panic!("three parts: {token}")
        };
        let [_, other_payload, other_signature] = other_parts.as_slice() else {
            panic!("three parts: {other}")
        };
        let evil_payload = b64::encode(PAYLOAD.replace("C-1042", "C-1043").as_bytes());
        let cases: Vec<(&str, String, LinkError)> = vec![
            (
                "another token's payload",
                format!("{header}.{other_payload}.{signature}"),
                LinkError::BadSignature,
            ),
            (
                "another token's signature",
                format!("{header}.{payload}.{other_signature}"),
                LinkError::BadSignature,
            ),
            (
                "an edited payload",
                format!("{header}.{evil_payload}.{signature}"),
                LinkError::BadSignature,
            ),
            (
                "an empty signature",
                format!("{header}.{payload}."),
                LinkError::BadSignature,
            ),
            (
                "a truncated signature",
                format!("{header}.{payload}.{}", &signature[..40]),
                LinkError::BadSignature,
            ),
            (
                // Longer than any HMAC-SHA256 tag: refused before decoding.
                "a signature one byte longer",
                format!("{header}.{payload}.{signature}A"),
                LinkError::Malformed,
            ),
            (
                "a fourth part",
                format!("{token}.{signature}"),
                LinkError::Malformed,
            ),
            (
                "only two parts",
                format!("{header}.{payload}"),
                LinkError::Malformed,
            ),
            ("one part", (*header).to_owned(), LinkError::Malformed),
            ("an empty string", String::new(), LinkError::Malformed),
            ("two dots only", "..".to_owned(), LinkError::Malformed),
        ];
        for (name, token, want) in cases {
            assert_eq!(check(&keys, &token), Err(want), "{name}");
        }
    }

    #[test]
    fn non_canonical_base64_spellings_are_refused() {
        let keys = ring("k1", &["k1"]);
        let token = mint(&keys, &claims());
        // The 32-byte tag leaves two stray bits in its last character: setting one gives another
        // spelling of the same bytes, which a lax decoder would accept.
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut stray_token = token.clone();
        let last = stray_token.pop().expect("a minted token is not empty");
        let index = ALPHABET.find(last).expect("a minted token is base64url");
        stray_token.push(
            ALPHABET
                .chars()
                .nth(index ^ 1)
                .expect("index stays in the alphabet"),
        );
        let cases: Vec<(&str, String, LinkError)> = vec![
            (
                "padding on the signature",
                format!("{token}="),
                LinkError::Malformed,
            ),
            (
                "stray bits in the signature's last char",
                stray_token,
                LinkError::Malformed,
            ),
            (
                "a plus in the header",
                token.replacen('e', "+", 1),
                LinkError::Malformed,
            ),
            (
                "a slash in the header",
                token.replacen('e', "/", 1),
                LinkError::Malformed,
            ),
            (
                "a space in the payload",
                token.replacen('.', ". ", 1),
                LinkError::Malformed,
            ),
            (
                "a trailing newline",
                format!("{token}\n"),
                LinkError::Malformed,
            ),
        ];
        for (name, token, want) in cases {
            assert_eq!(check(&keys, &token), Err(want), "{name}");
        }
    }

    #[test]
    fn length_is_bounded_before_decoding() {
        let keys = ring("k1", &["k1"]);
        let token = mint(&keys, &claims());
        let padded = format!("{token}{}", "A".repeat(MAX_TOKEN_LEN + 1 - token.len()));
        assert_eq!(check(&keys, &padded), Err(LinkError::TooLong));
        assert_eq!(
            check(&keys, &"!".repeat(MAX_TOKEN_LEN + 1)),
            Err(LinkError::TooLong)
        );
        assert_eq!(
            check(&keys, &"!".repeat(MAX_TOKEN_LEN)),
            Err(LinkError::Malformed)
        );
    }

    #[test]
    fn rotation_keeps_old_links_valid_while_their_key_is_in_the_ring() {
        let old = ring("k0", &["k0"]);
        let token = mint(&old, &claims());
        let cases: &[(&str, KeyRing, Result<(), LinkError>)] = &[
            ("the ring that minted it", ring("k0", &["k0"]), Ok(())),
            (
                "a new active key with the old one kept",
                ring("k1", &["k0", "k1"]),
                Ok(()),
            ),
            (
                "a ring that dropped the old key",
                ring("k1", &["k1"]),
                Err(LinkError::UnknownKey),
            ),
        ];
        for (name, keys, want) in cases {
            assert_eq!(check(keys, &token).map(|_| ()), *want, "{name}");
        }
        let rotated = ring("k1", &["k0", "k1"]);
        assert!(mint(&rotated, &claims()).starts_with(&b64::encode(HEADER.as_bytes())));
    }

    #[test]
    fn a_kid_cannot_borrow_another_keys_signature() {
        let keys = ring("k1", &["k0", "k1"]);
        let signed_by_k0 = forge("k0", HEADER, PAYLOAD);
        assert_eq!(check(&keys, &signed_by_k0), Err(LinkError::BadSignature));
    }

    #[test]
    fn errors_map_to_three_recipient_pages() {
        let cases: &[(LinkError, LinkErrorKind)] = &[
            (LinkError::Expired, LinkErrorKind::Expired),
            (LinkError::NotYetValid, LinkErrorKind::NotYetValid),
            (LinkError::BadSignature, LinkErrorKind::Invalid),
            (LinkError::LifetimeTooLong, LinkErrorKind::Invalid),
            (
                LinkError::MissingClaim(Claim::ExpiresAt),
                LinkErrorKind::Invalid,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), *kind, "{error}");
        }
    }

    #[test]
    fn share_ids_are_22_chars_of_fresh_randomness() {
        let first = new_share_id().unwrap_or_else(|e| panic!("{e}"));
        let second = new_share_id().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.len(), 22);
        assert!(is_share_id(&first));
        assert_ne!(first, second);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn verify_never_panics_on_arbitrary_text(text in ".{0,600}") {
                let keys = ring("k1", &["k1"]);
                let _ = check(&keys, &text);
            }

            #[test]
            fn tokens_split_as_the_string_searches_split_them(text in "[a.é]{0,12}") {
                // What `with_authentic_claims` did before `TokenParts`: the last dot, then the
                // first, then no dot left in the payload.
                let expected = text.rsplit_once('.').and_then(|(signing_input, signature)| {
                    let (header, payload) = signing_input.split_once('.')?;
                    (!payload.contains('.')).then_some((signing_input, header, payload, signature))
                });
                let parts = TokenParts::of(&text).map(|parts| {
                    (parts.signing_input, parts.header_b64, parts.payload_b64, parts.signature_b64)
                });
                prop_assert_eq!(parts, expected);
            }

            #[test]
            fn verify_never_panics_on_token_shaped_text(
                header in proptest::collection::vec(any::<u8>(), 0..80),
                payload in proptest::collection::vec(any::<u8>(), 0..300),
                signature in proptest::collection::vec(any::<u8>(), 0..40),
            ) {
                let keys = ring("k1", &["k1"]);
                let token = format!("{}.{}.{}", b64::encode(&header), b64::encode(&payload), b64::encode(&signature));
                let _ = check(&keys, &token);
            }

            #[test]
            fn verify_never_panics_on_signed_arbitrary_json(header in "\\PC{0,80}", payload in "\\PC{0,300}") {
                let keys = ring("k1", &["k1"]);
                let _ = check(&keys, &forge("k1", &header, &payload));
            }

            #[test]
            fn minted_valid_claims_round_trip(
                share_id in "[A-Za-z0-9_-]{16,128}",
                case in "[A-Za-z0-9_-]{1,64}",
                scope in prop_oneof![Just("read"), Just("comment")],
                age in 0i64..DAY,
                ttl in 0i64..=DAY,
                not_before in proptest::option::of(NOW - DAY..NOW + 60),
                email in proptest::option::of("[a-z0-9.+]{1,64}@[a-z0-9.-]{1,100}"),
                lang in proptest::option::of("[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8}){0,2}"),
            ) {
                let keys = ring("k1", &["k0", "k1"]);
                let claims = LinkClaims {
                    share_id,
                    case,
                    scope: scope.to_owned(),
                    issued_at: NOW - age,
                    expires_at: NOW + ttl,
                    not_before,
                    email,
                    lang,
                };
                prop_assert_eq!(check(&keys, &mint(&keys, &claims)), Ok(claims));
            }
        }
    }
}
