//! Signing keys: decoding them from config, generating new ones, and the ring that maps a key id
//! (`kid`) to the ready-keyed MAC states that link tokens and guest cookies need.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::digest::InvalidLength;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::b64;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Shorter keys make HS256 guessable offline from any one captured link.
pub const MIN_KEY_BYTES: usize = 32;

/// 768 key bytes is already far past any benefit; the bound keeps a mis-pointed key file (a PEM,
/// a log) from being decoded at all.
const MAX_KEY_CHARS: usize = 1024;

const MAX_KID_LEN: usize = 32;

/// Cookies are MACed with a key derived from the link key under this label, so a link MAC can
/// never be replayed as a cookie MAC or the other way round, even for the same bytes.
const COOKIE_KEY_LABEL: &[u8] = b"casegate/guest-cookie/v1";

/// Key material or a bearer token. `Debug` never shows it and the bytes are overwritten when
/// dropped (each clone too).
#[derive(Clone)]
pub struct Secret(Vec<u8>);

/// The OS could not give us random bytes; nothing random is ever made up in its place.
#[derive(Debug)]
pub struct RandomnessUnavailable(pub getrandom::Error);

/// Why a key or a key ring was refused. Messages are written for whoever runs `casegate check`.
#[derive(Debug)]
pub enum KeyError {
    /// Not canonical unpadded base64url after trimming surrounding whitespace.
    NotBase64Url,
    /// Decodes to fewer than [`MIN_KEY_BYTES`] bytes.
    TooShort { bytes: usize },
    /// Far longer than any key; probably the wrong file.
    TooLong,
    /// A key id outside `[A-Za-z0-9_.-]{1,32}`.
    BadKid { kid: String },
    /// The same key id names two keys.
    DuplicateKid { kid: String },
    /// The active key id names no key in the ring.
    ActiveKidMissing { kid: String },
    /// The HMAC implementation refused the key (hmac 0.12 accepts every length, so this means a
    /// broken dependency rather than a bad key).
    Hmac(InvalidLength),
}

/// How many rings this process has built: each ring's number, which tells it from every other
/// (one a reload built from the very same secrets included) without holding on to it.
static RINGS_BUILT: AtomicU64 = AtomicU64::new(0);

/// All keys casegate will verify with, and the one it signs with.
pub struct KeyRing {
    /// This ring's number among those the process built; never reused.
    serial: u64,
    active_kid: String,
    active: KeyMacs,
    by_kid: HashMap<String, KeyMacs>,
}

/// Keying HMAC hashes one block of key material; doing it once per key here rather than once per
/// request halves the hashing on the hot path. Cloning a keyed state is a memcpy.
#[derive(Clone)]
struct KeyMacs {
    link: HmacSha256,
    /// Keyed with the derived cookie key and bound to the kid (`cookie::bound_to_kid`).
    cookie: HmacSha256,
    /// The base64url JWS header casegate itself writes for this kid. A token carrying exactly
    /// these bytes needs no header parsing: the common case on the hot path.
    own_header: String,
}

/// Decodes a key as written in a config file or environment variable.
pub fn decode_key(text: &str) -> Result<Secret, KeyError> {
    let bytes = b64::decode(text.trim(), MAX_KEY_CHARS).map_err(|error| match error {
        b64::B64Error::TooLong => KeyError::TooLong,
        b64::B64Error::NotCanonical => KeyError::NotBase64Url,
    })?;
    let secret = Secret(bytes);
    if secret.0.len() < MIN_KEY_BYTES {
        return Err(KeyError::TooShort {
            bytes: secret.0.len(),
        });
    }
    Ok(secret)
}

/// A new 256-bit key, as base64url text for `casegate keygen`.
pub fn generate_key() -> Result<String, RandomnessUnavailable> {
    let bytes = Secret(random_bytes::<32>()?.to_vec());
    Ok(b64::encode(&bytes.0))
}

/// Checks a key id against `[A-Za-z0-9_.-]{1,32}`: kids travel in token headers and cookie
/// values, so they must stay short and need no escaping anywhere.
pub fn validate_kid(kid: &str) -> Result<(), KeyError> {
    let well_formed = (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if well_formed {
        Ok(())
    } else {
        Err(KeyError::BadKid {
            kid: kid.to_owned(),
        })
    }
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RandomnessUnavailable> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(RandomnessUnavailable)?;
    Ok(bytes)
}

// === impl Secret ===

impl Secret {
    /// Wraps bytes that did not come through [`decode_key`], e.g. in tests. [`KeyRing::new`]
    /// still refuses keys shorter than [`MIN_KEY_BYTES`].
    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The secret itself, for the code that compares it (in constant time) or keys a MAC.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort without a zeroize dependency: black_box keeps the writes from being
        // optimised away as dead stores.
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&mut self.0);
    }
}

// === impl KeyRing ===

impl KeyRing {
    /// Builds a ring from `(kid, key)` pairs; `active` names the key new credentials are signed
    /// with. Keys are consumed so their bytes are wiped once keyed.
    pub fn new(active: &str, keys: Vec<(String, Secret)>) -> Result<KeyRing, KeyError> {
        let mut by_kid = HashMap::with_capacity(keys.len());
        for (kid, secret) in keys {
            validate_kid(&kid)?;
            if by_kid.contains_key(&kid) {
                return Err(KeyError::DuplicateKid { kid });
            }
            let macs = KeyMacs::new(&kid, &secret)?;
            by_kid.insert(kid, macs);
        }
        let Some(active_macs) = by_kid.get(active).cloned() else {
            return Err(KeyError::ActiveKidMissing {
                kid: active.to_owned(),
            });
        };
        Ok(KeyRing {
            serial: RINGS_BUILT.fetch_add(1, Ordering::Relaxed),
            active_kid: active.to_owned(),
            active: active_macs,
            by_kid,
        })
    }

    /// This ring's number: equal for two rings only if they are one.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The key id new link tokens and guest cookies carry.
    pub fn active_kid(&self) -> &str {
        &self.active_kid
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// A fresh MAC state keyed for link tokens under `kid`.
    pub(crate) fn link_mac(&self, kid: &str) -> Option<HmacSha256> {
        self.macs_of(kid).map(|macs| macs.link.clone())
    }

    /// A fresh MAC state keyed for guest cookies under `kid`, the kid already fed in.
    pub(crate) fn cookie_mac(&self, kid: &str) -> Option<HmacSha256> {
        self.macs_of(kid).map(|macs| macs.cookie.clone())
    }

    /// The keyed states of `kid`. Nearly every link and cookie a gateway reads was made with the
    /// active key, which one comparison finds without hashing the kid (SipHash, about 170
    /// instructions a lookup).
    fn macs_of(&self, kid: &str) -> Option<&KeyMacs> {
        if kid == self.active_kid {
            return Some(&self.active);
        }
        self.by_kid.get(kid)
    }

    /// The kid whose own header is exactly `header_b64`, if any.
    pub(crate) fn kid_of_own_header(&self, header_b64: &str) -> Option<&str> {
        self.by_kid
            .iter()
            .find(|(_, macs)| macs.own_header == header_b64)
            .map(|(kid, _)| kid.as_str())
    }

    /// The base64url JWS header new links are minted with.
    pub(crate) fn active_header(&self) -> &str {
        &self.active.own_header
    }

    pub(crate) fn active_link_mac(&self) -> HmacSha256 {
        self.active.link.clone()
    }

    pub(crate) fn active_cookie_mac(&self) -> HmacSha256 {
        self.active.cookie.clone()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.by_kid.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("KeyRing")
            .field("active_kid", &self.active_kid)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl KeyMacs {
    fn new(kid: &str, secret: &Secret) -> Result<KeyMacs, KeyError> {
        // Checked again here because `Secret::from_bytes` skips `decode_key`.
        if secret.0.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                bytes: secret.0.len(),
            });
        }
        let link = HmacSha256::new_from_slice(&secret.0).map_err(KeyError::Hmac)?;
        let mut derive = link.clone();
        derive.update(COOKIE_KEY_LABEL);
        let cookie_key = Secret(derive.finalize().into_bytes().to_vec());
        let cookie = super::cookie::bound_to_kid(
            HmacSha256::new_from_slice(&cookie_key.0).map_err(KeyError::Hmac)?,
            kid,
        );
        // serde_json renders members in key order: the same bytes every time for a kid.
        let header = serde_json::json!({ "alg": "HS256", "kid": kid, "typ": "JWT" });
        Ok(KeyMacs {
            link,
            cookie,
            own_header: super::b64::encode(header.to_string().as_bytes()),
        })
    }
}

// === impl KeyError ===

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotBase64Url => f.write_str(
                "key is not base64url: use only A-Z a-z 0-9 - _ with no padding (`casegate keygen` makes one)",
            ),
            KeyError::TooShort { bytes } => write!(
                f,
                "key decodes to {bytes} bytes; at least {MIN_KEY_BYTES} are required (`casegate keygen` makes one)",
            ),
            KeyError::TooLong => write!(
                f,
                "key is longer than {MAX_KEY_CHARS} characters; is this the right file?",
            ),
            KeyError::BadKid { kid } => write!(
                f,
                "key id {kid:?} must be 1 to {MAX_KID_LEN} characters of A-Z a-z 0-9 _ . -",
            ),
            KeyError::DuplicateKid { kid } => write!(f, "key id {kid:?} names more than one key"),
            KeyError::ActiveKidMissing { kid } => {
                write!(f, "active key id {kid:?} names no configured key")
            }
            KeyError::Hmac(error) => write!(f, "HMAC refused the key: {error}"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Hmac(error) => Some(error),
            KeyError::NotBase64Url
            | KeyError::TooShort { .. }
            | KeyError::TooLong
            | KeyError::BadKid { .. }
            | KeyError::DuplicateKid { .. }
            | KeyError::ActiveKidMissing { .. } => None,
        }
    }
}

impl fmt::Display for RandomnessUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the operating system could not provide random bytes: {}",
            self.0
        )
    }
}

// getrandom's error implements `std::error::Error` only with its `std` feature, so the cause is
// given in `Display` rather than as a `source`.
impl std::error::Error for RandomnessUnavailable {}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn secret(byte: u8) -> Secret {
        Secret::from_bytes(vec![byte; 32])
    }

    #[test]
    fn decoding_a_key_accepts_only_canonical_base64url_of_at_least_32_bytes() {
        let ok_31 = b64::encode(&[7u8; 31]);
        let ok_64 = b64::encode(&[7u8; 64]);
        let cases: Vec<(&str, String, Result<usize, &str>)> = vec![
            ("a 32-byte key is accepted", KEY_32.to_owned(), Ok(32)),
            ("a 64-byte key is accepted", ok_64, Ok(64)),
            (
                "a trailing newline from a file is trimmed",
                format!("{KEY_32}\n"),
                Ok(32),
            ),
            (
                "surrounding spaces are trimmed",
                format!("  {KEY_32}\t"),
                Ok(32),
            ),
            ("a 31-byte key is too short", ok_31, Err("TooShort")),
            ("an empty key is too short", String::new(), Err("TooShort")),
            (
                "padding is refused",
                format!("{KEY_32}="),
                Err("NotBase64Url"),
            ),
            (
                "a plus sign is refused",
                KEY_32.replacen('A', "+", 1),
                Err("NotBase64Url"),
            ),
            (
                "a slash is refused",
                KEY_32.replacen('A', "/", 1),
                Err("NotBase64Url"),
            ),
            (
                "stray bits in the last char are refused",
                KEY_32.replace("Hh8", "Hh9"),
                Err("NotBase64Url"),
            ),
            (
                "inner whitespace is refused",
                KEY_32.replace("ODx", "OD x"),
                Err("NotBase64Url"),
            ),
            (
                "a huge blob is refused unread",
                "A".repeat(2000),
                Err("TooLong"),
            ),
        ];
        for (name, text, want) in cases {
            let got = decode_key(&text);
            match (got, want) {
                (Ok(secret), Ok(len)) => assert_eq!(secret.len(), len, "{name}"),
                (Err(error), Err(variant)) => {
                    assert!(
                        format!("{error:?}").starts_with(variant),
                        "{name}: {error:?}"
                    )
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_secret_never_shows_its_bytes() {
        let key = decode_key(KEY_32).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{key:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&key)), "Some(Secret(***))");
    }

    #[test]
    fn generated_keys_are_256_random_bits_that_decode() {
        let first = generate_key().unwrap_or_else(|e| panic!("{e}"));
        let second = generate_key().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.len(), 43);
        assert_ne!(first, second);
        assert_eq!(decode_key(&first).map(|k| k.len()).ok(), Some(32));
    }

    #[test]
    fn key_ids_follow_the_grammar() {
        let long = "k".repeat(33);
        let cases: &[(&str, &str, bool)] = &[
            ("a short id is fine", "k1", true),
            ("dots dashes and underscores are fine", "2025-01_a.b", true),
            ("32 characters is the limit", &long[..32], true),
            ("33 characters is too many", &long, false),
            ("empty is refused", "", false),
            ("a space is refused", "k 1", false),
            ("a slash is refused", "k/1", false),
            ("a quote is refused", "k\"", false),
            ("non-ascii is refused", "ké", false),
        ];
        for (name, kid, ok) in cases {
            assert_eq!(validate_kid(kid).is_ok(), *ok, "{name}");
        }
    }

    #[test]
    fn building_a_ring_refuses_inconsistent_key_sets() {
        type Case<'a> = (&'a str, &'a str, Vec<(String, Secret)>, Option<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (
                "one active key is fine",
                "k1",
                vec![("k1".into(), secret(1))],
                None,
            ),
            (
                "an old key beside the active one is fine",
                "k1",
                vec![("k0".into(), secret(0)), ("k1".into(), secret(1))],
                None,
            ),
            (
                "an empty ring has no active key",
                "k1",
                vec![],
                Some("ActiveKidMissing"),
            ),
            (
                "the active key must be present",
                "k2",
                vec![("k1".into(), secret(1))],
                Some("ActiveKidMissing"),
            ),
            (
                "a kid may name only one key",
                "k1",
                vec![("k1".into(), secret(1)), ("k1".into(), secret(2))],
                Some("DuplicateKid"),
            ),
            (
                "a bad kid is refused",
                "k 1",
                vec![("k 1".into(), secret(1))],
                Some("BadKid"),
            ),
            (
                "a short key is refused even without decode_key",
                "k1",
                vec![("k1".into(), Secret::from_bytes(vec![1; 31]))],
                Some("TooShort"),
            ),
        ];
        for (name, active, keys, want) in cases {
            match (KeyRing::new(active, keys), want) {
                (Ok(ring), None) => assert_eq!(ring.active_kid(), active, "{name}"),
                (Err(error), Some(variant)) => {
                    assert!(
                        format!("{error:?}").starts_with(variant),
                        "{name}: {error:?}"
                    )
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn every_ring_built_has_a_serial_of_its_own_even_from_the_same_secrets() {
        let build = || KeyRing::new("k1", vec![("k1".into(), secret(7))]);
        let (first, second) = (build().unwrap(), build().unwrap());
        assert_ne!(first.serial(), second.serial());
    }

    #[test]
    fn the_cookie_key_is_derived_and_differs_from_the_link_key() {
        let ring =
            KeyRing::new("k1", vec![("k1".into(), secret(9))]).unwrap_or_else(|e| panic!("{e}"));
        let link = ring
            .link_mac("k1")
            .map(|m| m.chain_update(b"x").finalize().into_bytes());
        let cookie = ring
            .cookie_mac("k1")
            .map(|m| m.chain_update(b"x").finalize().into_bytes());
        assert!(link.is_some() && cookie.is_some());
        assert_ne!(link, cookie);

        let fresh = HmacSha256::new_from_slice(&[9u8; 32])
            .map(|m| m.chain_update(b"x").finalize().into_bytes());
        assert_eq!(
            link,
            fresh.ok(),
            "the link MAC is plain HS256 with the key bytes"
        );
    }

    #[test]
    fn each_kid_gets_its_own_keys_states_whether_it_is_the_active_one_or_not() {
        let keys = || vec![("k0".into(), secret(0)), ("k1".into(), secret(1))];
        let tag =
            |mac: Option<HmacSha256>| mac.map(|m| m.chain_update(b"x").finalize().into_bytes());
        let active_k1 = KeyRing::new("k1", keys()).unwrap_or_else(|e| panic!("{e}"));
        let active_k0 = KeyRing::new("k0", keys()).unwrap_or_else(|e| panic!("{e}"));
        for kid in ["k0", "k1"] {
            assert_eq!(
                tag(active_k1.link_mac(kid)),
                tag(active_k0.link_mac(kid)),
                "{kid}"
            );
            assert_eq!(
                tag(active_k1.cookie_mac(kid)),
                tag(active_k0.cookie_mac(kid)),
                "{kid}"
            );
        }
        assert_ne!(tag(active_k1.link_mac("k0")), tag(active_k1.link_mac("k1")));
        assert_ne!(
            tag(active_k1.cookie_mac("k0")),
            tag(active_k1.cookie_mac("k1"))
        );
        assert!(active_k1.link_mac("k2").is_none() && active_k1.cookie_mac("k2").is_none());
        assert!(active_k1.cookie_mac("").is_none() && active_k1.cookie_mac("k1 ").is_none());
    }

    #[test]
    fn ring_debug_lists_kids_but_no_key_material() {
        let ring = KeyRing::new(
            "k1",
            vec![("k1".into(), secret(0xAB)), ("k0".into(), secret(0xCD))],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{ring:?}");
        assert!(shown.contains("\"k0\", \"k1\""), "{shown}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
    }

    #[test]
    fn operator_messages_name_the_problem() {
        let cases: &[(KeyError, &str)] = &[
            (KeyError::TooShort { bytes: 16 }, "16 bytes; at least 32"),
            (KeyError::NotBase64Url, "not base64url"),
            (KeyError::ActiveKidMissing { kid: "k9".into() }, "\"k9\""),
        ];
        for (error, needle) in cases {
            assert!(error.to_string().contains(needle), "{error}");
        }
    }
}
