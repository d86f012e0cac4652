//! The guest cookie: a [`Guest`] sealed under a key derived from the link key, so a recipient
//! who opened a link once keeps access without the token in every URL.
//!
//! Value: `v2.<kid>.<b64url(payload)>.<b64url(tag)>`, all cookie-safe characters. The payload is
//! `flags u8 | expires_at i64 BE | issued_at i64 BE | share_id | case | scope | [lang] | [email]`,
//! each string prefixed by its length as one byte, so no two guests encode alike. The email is
//! there only for shares that verify it (the landing page shows it masked and the code is mailed
//! to it); a flag bit says whether it is, so cookies without one read as before. The tag is the full
//! 32-byte HMAC-SHA256, under the kid's derived cookie key, of
//! `len(purpose) | purpose | len(kid) | kid | payload`.
//!
//! v2 added `issued_at` (the link's `iat`), which revoking a case compares against; a v1 cookie
//! cannot say when its link was issued, so it is refused (the recipient opens the link again),
//! and the purpose string changed with the version so no v1 tag can pass as a v2 one.

use std::fmt;

use hmac::Mac;

use super::b64;
use super::case::MAX_CASE_LEN;
use super::guest::Guest;
use super::keys::{HmacSha256, KeyRing};
use super::split_bytes_at_last_dot;
use super::token::{MAX_EMAIL_LEN, MAX_LANG_LEN, MAX_SCOPE_LEN};
use crate::constant_time::same_bytes;

/// Bounded before anything is decoded; a cookie with every field at its maximum is 794 bytes.
/// Only an unverified session of a share that verifies its address carries the address (up to
/// 254 bytes); every other cookie, verified ones included, is at most 454 bytes.
pub const MAX_COOKIE_LEN: usize = 1024;

const VERSION: &str = "v2";

/// Bound into every tag, so that no other MAC made with these keys (nor an older cookie format)
/// can pass as a cookie.
const PURPOSE: &[u8] = b"casegate guest-cookie v2";

const TAG_LEN: usize = 32;
/// Unpadded base64url of a 32-byte tag.
const TAG_CHARS: usize = 43;

const MAX_SHARE_ID_LEN: usize = 128;

const FLAG_EMAIL_VERIFIED: u8 = 0b01;
const FLAG_LANG: u8 = 0b10;
const FLAG_EMAIL: u8 = 0b100;

/// A guest field with a length limit in the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieField {
    ShareId,
    Case,
    Scope,
    Lang,
    Email,
}

/// Why a guest cookie could not be sealed or opened. Never carries any part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    /// Longer than [`MAX_COOKIE_LEN`].
    TooLong,
    /// Not `v2.<kid>.<payload>.<tag>` in strict base64url, or a payload that does not decode (a
    /// field longer than [`seal`] writes among them).
    Malformed,
    /// Another format version than `v2` (a v1 cookie from before the upgrade among them).
    WrongVersion,
    /// The kid is not (or no longer) in the key ring.
    UnknownKey,
    BadMac,
    /// `expires_at` is now or past. No clock skew: this gateway set the expiry itself.
    Expired,
    /// Bytes left over after the last field.
    TrailingBytes,
    /// Sealing only: a field longer than the cookie allows.
    FieldTooLong(CookieField),
}

/// Seals `guest` with the ring's active key.
pub fn seal(keys: &KeyRing, guest: &Guest) -> Result<String, CookieError> {
    Ok(seal_payload(keys, &encode_payload(guest)?))
}

/// A cookie value carrying `payload`, whatever it holds, under the active key. Only [`seal`]
/// should build payloads; the fuzz targets and tests use this to reach the payload checks behind
/// the MAC with bytes [`seal`] would never write.
pub(crate) fn seal_payload(keys: &KeyRing, payload: &[u8]) -> String {
    let kid = keys.active_kid();
    let tag = authenticate(keys.active_cookie_mac(), payload);

    let mut value = String::with_capacity(MAX_COOKIE_LEN);
    value.push_str(VERSION);
    value.push('.');
    value.push_str(kid);
    value.push('.');
    b64::encode_into(payload, &mut value);
    value.push('.');
    b64::encode_into(&tag, &mut value);
    value
}

/// Opens a guest cookie value, checking its MAC before reading anything in it. Bytes, as a
/// request carries them: anything but the ASCII of the format fails to split or decode.
pub fn open(keys: &KeyRing, value: impl AsRef<[u8]>, now: i64) -> Result<Guest, CookieError> {
    let value = value.as_ref();
    if value.len() > MAX_COOKIE_LEN {
        return Err(CookieError::TooLong);
    }
    let dot = memchr::memchr(b'.', value).ok_or(CookieError::Malformed)?;
    let (version, dot_and_rest) = value.split_at_checked(dot).ok_or(CookieError::Malformed)?;
    if version != VERSION.as_bytes() {
        return Err(CookieError::WrongVersion);
    }
    let rest = dot_and_rest.get(1..).ok_or(CookieError::Malformed)?;
    // Kids may contain dots; payload and tag cannot, so split those off from the right.
    let (rest, tag_b64) = split_bytes_at_last_dot(rest).ok_or(CookieError::Malformed)?;
    let (kid, payload_b64) = split_bytes_at_last_dot(rest).ok_or(CookieError::Malformed)?;
    let kid = std::str::from_utf8(kid).map_err(|_| CookieError::Malformed)?;
    let mac = keys.cookie_mac(kid).ok_or(CookieError::UnknownKey)?;
    // Decoded on the stack: the bytes are read once, on a connection's first request, and need
    // no allocation.
    let mut payload_room = [0; MAX_COOKIE_LEN / 4 * 3];
    let payload = b64::decode_into(payload_b64, MAX_COOKIE_LEN, &mut payload_room)
        .map_err(|_| CookieError::Malformed)?;
    let mut tag_room = [0; TAG_LEN];
    let tag =
        b64::decode_into(tag_b64, TAG_CHARS, &mut tag_room).map_err(|_| CookieError::Malformed)?;
    if tag.len() != TAG_LEN {
        return Err(CookieError::Malformed);
    }
    let expected = authenticate(mac, payload);
    if !same_bytes(&expected, tag) {
        return Err(CookieError::BadMac);
    }

    let guest = decode_payload(payload)?;
    if guest.expires_at <= now {
        return Err(CookieError::Expired);
    }
    Ok(guest)
}

/// The cookie key's keyed state with the tag's opening fed in, `len(purpose) | purpose |
/// len(kid) | kid`: the same for every cookie of the kid, so the key ring keeps this state and a
/// cookie's tag feeds only its payload (four updates fewer on every cookie opened). `kid` is at
/// most 32 bytes ([`KeyRing`] checks).
pub(super) fn bound_to_kid(mut mac: HmacSha256, kid: &str) -> HmacSha256 {
    mac.update(&[PURPOSE.len() as u8]);
    mac.update(PURPOSE);
    mac.update(&[kid.len() as u8]);
    mac.update(kid.as_bytes());
    mac
}

/// The tag of `payload` under `mac`, a state [`bound_to_kid`] made.
fn authenticate(mut mac: HmacSha256, payload: &[u8]) -> [u8; TAG_LEN] {
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

fn encode_payload(guest: &Guest) -> Result<Vec<u8>, CookieError> {
    let mut flags = 0;
    if guest.email_verified {
        flags |= FLAG_EMAIL_VERIFIED;
    }
    if guest.lang.is_some() {
        flags |= FLAG_LANG;
    }
    if guest.email.is_some() {
        flags |= FLAG_EMAIL;
    }
    let mut out = Vec::with_capacity(600);
    out.push(flags);
    out.extend_from_slice(&guest.expires_at.to_be_bytes());
    out.extend_from_slice(&guest.issued_at.to_be_bytes());
    put_text(&mut out, &guest.share_id, CookieField::ShareId)?;
    put_text(&mut out, &guest.case, CookieField::Case)?;
    put_text(&mut out, &guest.scope, CookieField::Scope)?;
    if let Some(lang) = &guest.lang {
        put_text(&mut out, lang, CookieField::Lang)?;
    }
    if let Some(email) = &guest.email {
        put_text(&mut out, email, CookieField::Email)?;
    }
    Ok(out)
}

fn put_text(out: &mut Vec<u8>, text: &str, field: CookieField) -> Result<(), CookieError> {
    let len = u8::try_from(text.len())
        .ok()
        .filter(|&len| usize::from(len) <= field.max_len())
        .ok_or(CookieError::FieldTooLong(field))?;
    out.push(len);
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn decode_payload(payload: &[u8]) -> Result<Guest, CookieError> {
    let mut reader = Reader(payload);
    let flags = reader.byte().ok_or(CookieError::Malformed)?;
    if flags & !(FLAG_EMAIL_VERIFIED | FLAG_LANG | FLAG_EMAIL) != 0 {
        return Err(CookieError::Malformed);
    }
    let expires_at = reader.i64().ok_or(CookieError::Malformed)?;
    let issued_at = reader.i64().ok_or(CookieError::Malformed)?;
    let share_id = reader
        .text(CookieField::ShareId)
        .ok_or(CookieError::Malformed)?;
    let case = reader
        .text(CookieField::Case)
        .ok_or(CookieError::Malformed)?;
    let scope = reader
        .text(CookieField::Scope)
        .ok_or(CookieError::Malformed)?;
    let lang = if flags & FLAG_LANG != 0 {
        Some(
            reader
                .text(CookieField::Lang)
                .ok_or(CookieError::Malformed)?,
        )
    } else {
        None
    };
    let email = if flags & FLAG_EMAIL != 0 {
        Some(
            reader
                .text(CookieField::Email)
                .ok_or(CookieError::Malformed)?,
        )
    } else {
        None
    };
    if !reader.0.is_empty() {
        return Err(CookieError::TrailingBytes);
    }
    Ok(Guest {
        share_id: share_id.to_owned(),
        case: case.to_owned(),
        scope: scope.to_owned(),
        lang: lang.map(str::to_owned),
        email: email.map(str::to_owned),
        expires_at,
        issued_at,
        email_verified: flags & FLAG_EMAIL_VERIFIED != 0,
    })
}

/// Reads the payload front to back; every read is checked, none can panic.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn i64(&mut self) -> Option<i64> {
        let (bytes, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(i64::from_be_bytes(*bytes))
    }

    /// A length-prefixed field, refused when longer than [`seal`] writes it: a cookie opens only
    /// to a guest that seals again.
    fn text(&mut self, field: CookieField) -> Option<&'a str> {
        let len = self.byte()?;
        if usize::from(len) > field.max_len() {
            return None;
        }
        let (bytes, rest) = self.0.split_at_checked(usize::from(len))?;
        self.0 = rest;
        std::str::from_utf8(bytes).ok()
    }
}

// === impl CookieField ===

impl CookieField {
    fn max_len(self) -> usize {
        match self {
            CookieField::ShareId => MAX_SHARE_ID_LEN,
            CookieField::Case => MAX_CASE_LEN,
            CookieField::Scope => MAX_SCOPE_LEN,
            CookieField::Lang => MAX_LANG_LEN,
            CookieField::Email => MAX_EMAIL_LEN,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CookieField::ShareId => "share id",
            CookieField::Case => "case",
            CookieField::Scope => "scope",
            CookieField::Lang => "lang",
            CookieField::Email => "email",
        }
    }
}

// === impl CookieError ===

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieError::TooLong => write!(f, "guest cookie longer than {MAX_COOKIE_LEN} bytes"),
            CookieError::Malformed => f.write_str("guest cookie is malformed"),
            CookieError::WrongVersion => f.write_str("guest cookie is not version v2"),
            CookieError::UnknownKey => f.write_str("guest cookie kid is unknown"),
            CookieError::BadMac => f.write_str("guest cookie MAC does not verify"),
            CookieError::Expired => f.write_str("guest cookie has expired"),
            CookieError::TrailingBytes => f.write_str("guest cookie has trailing bytes"),
            CookieError::FieldTooLong(field) => write!(
                f,
                "guest {} is longer than the {} bytes a cookie holds",
                field.name(),
                field.max_len()
            ),
        }
    }
}

impl std::error::Error for CookieError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::CaseGrammar;
    use crate::share::keys::Secret;
    use crate::share::token::{self, LinkClaims, LinkRules};

    const NOW: i64 = 1_750_000_000;

    fn ring(active: &str, kids: &[&str]) -> KeyRing {
        let keys = kids
            .iter()
            .map(|kid| ((*kid).to_owned(), Secret::from_bytes(raw_key(kid))))
            .collect();
        KeyRing::new(active, keys).expect("test ring")
    }

    fn raw_key(kid: &str) -> Vec<u8> {
        let mut bytes = vec![0xC3; 32];
        bytes.extend_from_slice(kid.as_bytes());
        bytes
    }

    fn guest() -> Guest {
        Guest {
            share_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            case: "C-1042".into(),
            scope: "read".into(),
            lang: None,
            email: None,
            expires_at: NOW + 3600,
            issued_at: NOW - 60,
            email_verified: false,
        }
    }

    fn with(edit: impl FnOnce(&mut Guest)) -> Guest {
        let mut guest = guest();
        edit(&mut guest);
        guest
    }

    fn largest() -> Guest {
        Guest {
            share_id: "s".repeat(128),
            case: "c".repeat(64),
            scope: "p".repeat(32),
            lang: Some("l".repeat(35)),
            email: Some(format!("{}@example.org", "e".repeat(242))),
            expires_at: i64::MAX,
            issued_at: i64::MIN,
            email_verified: true,
        }
    }

    fn sealed(keys: &KeyRing, guest: &Guest) -> String {
        seal(keys, guest).expect("test guest fits a cookie")
    }

    fn parts(value: &str) -> (String, String, String) {
        let mut rest = value.rsplitn(3, '.');
        let tag = rest.next().expect("tag").to_owned();
        let payload = rest.next().expect("payload").to_owned();
        let prefix = rest.next().expect("prefix").to_owned();
        (prefix, payload, tag)
    }

    #[test]
    fn sealed_guests_open_to_the_same_guest() {
        let cases: &[(&str, KeyRing, Guest)] = &[
            ("a plain guest", ring("k1", &["k1"]), guest()),
            (
                "a verified guest with a language",
                ring("k1", &["k1"]),
                with(|g| {
                    g.email_verified = true;
                    g.lang = Some("de-CH".into());
                }),
            ),
            (
                "a guest with an empty language",
                ring("k1", &["k1"]),
                with(|g| g.lang = Some(String::new())),
            ),
            ("every field at its maximum", ring("k1", &["k1"]), largest()),
            (
                "a kid with dots",
                ring("2025.01.a", &["2025.01.a"]),
                guest(),
            ),
        ];
        for (name, keys, want) in cases {
            assert_eq!(
                open(keys, sealed(keys, want), NOW).as_ref(),
                Ok(want),
                "{name}"
            );
        }
    }

    #[test]
    fn the_largest_cookie_is_under_1024_cookie_safe_bytes() {
        let keys = ring(&"k".repeat(32), &[&"k".repeat(32)]);
        let value = sealed(&keys, &largest());
        assert_eq!(value.len(), 794);
        assert!(value.len() < MAX_COOKIE_LEN);
        // RFC 6265 cookie-octet, and nothing that needs quoting.
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
            "{value}"
        );
    }

    #[test]
    fn sealing_refuses_fields_a_cookie_cannot_hold() {
        let keys = ring("k1", &["k1"]);
        let cases: &[(&str, Guest, CookieField)] = &[
            (
                "a share id over 128",
                with(|g| g.share_id = "s".repeat(129)),
                CookieField::ShareId,
            ),
            (
                "a case over 64",
                with(|g| g.case = "c".repeat(65)),
                CookieField::Case,
            ),
            (
                "a scope over 32",
                with(|g| g.scope = "p".repeat(33)),
                CookieField::Scope,
            ),
            (
                "a lang over 35",
                with(|g| g.lang = Some("l".repeat(36))),
                CookieField::Lang,
            ),
            (
                "a case over 255",
                with(|g| g.case = "c".repeat(300)),
                CookieField::Case,
            ),
        ];
        for (name, guest, field) in cases {
            assert_eq!(
                seal(&keys, guest),
                Err(CookieError::FieldTooLong(*field)),
                "{name}"
            );
        }
    }

    #[test]
    fn rotation_keeps_cookies_valid_while_their_key_is_in_the_ring() {
        let value = sealed(&ring("k0", &["k0"]), &guest());
        let cases: &[(&str, KeyRing, Result<(), CookieError>)] = &[
            ("the ring that sealed it", ring("k0", &["k0"]), Ok(())),
            (
                "a new active key with the old one kept",
                ring("k1", &["k0", "k1"]),
                Ok(()),
            ),
            (
                "a ring that dropped the old key",
                ring("k1", &["k1"]),
                Err(CookieError::UnknownKey),
            ),
        ];
        for (name, keys, want) in cases {
            assert_eq!(open(keys, &value, NOW).map(|_| ()), *want, "{name}");
        }
    }

    #[test]
    fn expiry_has_no_skew() {
        let keys = ring("k1", &["k1"]);
        let value = sealed(&keys, &guest());
        let expires_at = guest().expires_at;
        let cases: &[(&str, i64, Result<(), CookieError>)] = &[
            ("a second before expiry it opens", expires_at - 1, Ok(())),
            (
                "at expiry it is expired",
                expires_at,
                Err(CookieError::Expired),
            ),
            (
                "after expiry it is expired",
                expires_at + 1,
                Err(CookieError::Expired),
            ),
        ];
        for (name, now, want) in cases {
            assert_eq!(open(&keys, &value, *now).map(|_| ()), *want, "{name}");
        }
    }

    #[test]
    fn the_tag_is_the_documented_hmac_so_cookies_outlive_an_upgrade() {
        // Worked out here from the format alone (the module's doc), not with the code under
        // test: a gateway of another version, beside this one or after it, opens the same cookies.
        let keys = ring("k1", &["k1"]);
        let value = sealed(&keys, &guest());
        let (_, payload, tag) = parts(&value);
        let mut derive = crate::share::keys::HmacSha256::new_from_slice(&raw_key("k1"))
            .expect("hmac takes any key");
        derive.update(b"casegate/guest-cookie/v1");
        let cookie_key = derive.finalize().into_bytes();
        let mut mac = crate::share::keys::HmacSha256::new_from_slice(&cookie_key).expect("any key");
        mac.update(&[24]);
        mac.update(b"casegate guest-cookie v2");
        mac.update(&[2]);
        mac.update(b"k1");
        mac.update(&b64::decode(&payload, 1024).expect("own payload decodes"));
        assert_eq!(tag, b64::encode(&mac.finalize().into_bytes()));
    }

    #[test]
    fn forged_and_damaged_cookies_are_refused() {
        let keys = ring("k1", &["k0", "k1"]);
        let value = sealed(&keys, &guest());
        let other = sealed(&keys, &with(|g| g.case = "C-9999".into()));
        let (prefix, payload, tag) = parts(&value);
        let (_, other_payload, other_tag) = parts(&other);
        let edited_payload = {
            let mut bytes = b64::decode(&payload, 1024).expect("own payload decodes");
            if let Some(last) = bytes.last_mut() {
                *last ^= 1;
            }
            b64::encode(&bytes)
        };
        let payload_bytes = b64::decode(&payload, 1024).expect("own payload decodes");
        let link_keyed_tag = {
            let mac = crate::share::keys::HmacSha256::new_from_slice(&raw_key("k1"))
                .expect("hmac takes any key");
            b64::encode(&authenticate(bound_to_kid(mac, "k1"), &payload_bytes))
        };
        // The same input under k0's key: a ring that calls k0's secret "k1".
        let k0_tag = {
            let secrets = vec![("k1".to_owned(), Secret::from_bytes(raw_key("k0")))];
            let k0_as_k1 = KeyRing::new("k1", secrets).expect("test ring");
            b64::encode(&authenticate(k0_as_k1.active_cookie_mac(), &payload_bytes))
        };
        let cases: Vec<(&str, String, CookieError)> = vec![
            (
                "another cookie's payload",
                format!("{prefix}.{other_payload}.{tag}"),
                CookieError::BadMac,
            ),
            (
                "another cookie's tag",
                format!("{prefix}.{payload}.{other_tag}"),
                CookieError::BadMac,
            ),
            (
                "an edited payload",
                format!("{prefix}.{edited_payload}.{tag}"),
                CookieError::BadMac,
            ),
            (
                "a tag made with the link key",
                format!("{prefix}.{payload}.{link_keyed_tag}"),
                CookieError::BadMac,
            ),
            (
                "a tag from another kid's key",
                format!("{prefix}.{payload}.{k0_tag}"),
                CookieError::BadMac,
            ),
            (
                "the same tag relabelled with another kid",
                format!("v2.k0.{payload}.{tag}"),
                CookieError::BadMac,
            ),
            (
                "an unknown kid",
                format!("v2.k9.{payload}.{tag}"),
                CookieError::UnknownKey,
            ),
            (
                "an empty kid",
                format!("v2..{payload}.{tag}"),
                CookieError::UnknownKey,
            ),
            (
                "version 1",
                value.replacen("v2.", "v1.", 1),
                CookieError::WrongVersion,
            ),
            (
                "version 3",
                value.replacen("v2.", "v3.", 1),
                CookieError::WrongVersion,
            ),
            (
                "no version",
                format!("k1.{payload}.{tag}"),
                CookieError::WrongVersion,
            ),
            (
                "a truncated tag",
                format!("{prefix}.{payload}.{}", &tag[..42]),
                CookieError::Malformed,
            ),
            (
                "a tag with padding",
                format!("{value}="),
                CookieError::Malformed,
            ),
            (
                "a payload with padding",
                format!("{prefix}.{payload}=.{tag}"),
                CookieError::Malformed,
            ),
            (
                "a plus in the payload",
                format!("{prefix}.+{payload}.{tag}"),
                CookieError::Malformed,
            ),
            (
                "too few parts",
                format!("v2.{payload}"),
                CookieError::Malformed,
            ),
            ("no dots at all", "garbage".into(), CookieError::Malformed),
            ("an empty value", String::new(), CookieError::Malformed),
            (
                "an oversized value",
                format!("{value}{}", "A".repeat(MAX_COOKIE_LEN)),
                CookieError::TooLong,
            ),
        ];
        for (name, value, want) in cases {
            assert_eq!(open(&keys, &value, NOW), Err(want), "{name}");
        }
    }

    #[test]
    fn bytes_that_are_not_the_format_s_ascii_are_refused() {
        let keys = ring("k1", &["k1"]);
        let value = sealed(&keys, &guest()).into_bytes();
        let with_byte = |at: usize, byte: u8| {
            let mut bytes = value.clone();
            bytes[at] = byte;
            bytes
        };
        let tag_at = value.len() - 1;
        let payload_at = 7;
        let cases = [
            (
                "a non-ASCII byte in the version",
                with_byte(1, 0xC3),
                CookieError::WrongVersion,
            ),
            (
                "a non-UTF-8 kid",
                with_byte(4, 0xFF),
                CookieError::Malformed,
            ),
            (
                "a non-ASCII byte in the payload",
                with_byte(payload_at, 0xE9),
                CookieError::Malformed,
            ),
            (
                "a NUL in the tag",
                with_byte(tag_at, 0),
                CookieError::Malformed,
            ),
        ];
        assert_eq!(open(&keys, &value, NOW), Ok(guest()));
        for (name, bytes, want) in cases {
            assert_eq!(open(&keys, &bytes, NOW), Err(want), "{name}");
        }
    }

    #[test]
    fn payloads_are_parsed_strictly_after_the_mac() {
        let keys = ring("k1", &["k1"]);
        let good = encode_payload(&with(|g| g.lang = Some("en".into()))).expect("fits");
        let mut trailing = good.clone();
        trailing.push(0);
        let mut unknown_flag = good.clone();
        if let Some(flags) = unknown_flag.first_mut() {
            *flags |= 0b1000;
        }
        let mut lang_flag_without_lang = encode_payload(&guest()).expect("fits");
        if let Some(flags) = lang_flag_without_lang.first_mut() {
            *flags |= FLAG_LANG;
        }
        let mut not_utf8 = encode_payload(&guest()).expect("fits");
        if let Some(last) = not_utf8.last_mut() {
            *last = 0xFF;
        }
        let cases: Vec<(&str, Vec<u8>, CookieError)> = vec![
            ("an empty payload", vec![], CookieError::Malformed),
            ("flags only", vec![0], CookieError::Malformed),
            ("a short expiry", vec![0, 1, 2, 3], CookieError::Malformed),
            (
                "an expiry without an issue time",
                vec![0, 0, 0, 0, 0, 0, 0, 0, 1],
                CookieError::Malformed,
            ),
            (
                "a length past the end",
                good.get(..good.len() - 1).unwrap_or_default().to_vec(),
                CookieError::Malformed,
            ),
            ("an unknown flag bit", unknown_flag, CookieError::Malformed),
            (
                "a lang flag without a lang",
                lang_flag_without_lang,
                CookieError::Malformed,
            ),
            ("text that is not UTF-8", not_utf8, CookieError::Malformed),
            (
                "a byte after the last field",
                trailing,
                CookieError::TrailingBytes,
            ),
        ];
        for (name, payload, want) in cases {
            assert_eq!(
                open(&keys, seal_payload(&keys, &payload), NOW),
                Err(want),
                "{name}"
            );
        }
    }

    /// Found by the `guest_cookie` property (fuzz/, tests/properties.rs): an authentic payload
    /// with a 100-byte case opened, and the guest it gave could not be sealed again.
    #[test]
    fn a_field_longer_than_seal_writes_is_refused_even_under_a_valid_mac() {
        let keys = ring("k1", &["k1"]);
        let payload = |field: CookieField, len: usize| {
            let text = |f: CookieField, normal: &str| {
                if f == field {
                    "x".repeat(len)
                } else {
                    normal.to_owned()
                }
            };
            let mut out = vec![FLAG_LANG | FLAG_EMAIL];
            out.extend_from_slice(&(NOW + 60).to_be_bytes());
            out.extend_from_slice(&NOW.to_be_bytes());
            for text in [
                text(CookieField::ShareId, "AAAAAAAAAAAAAAAAAAAAAA"),
                text(CookieField::Case, "C-1042"),
                text(CookieField::Scope, "read"),
                text(CookieField::Lang, "en"),
                text(CookieField::Email, "a@b.org"),
            ] {
                out.push(u8::try_from(text.len()).expect("test field fits a length byte"));
                out.extend_from_slice(text.as_bytes());
            }
            out
        };
        for field in [
            CookieField::ShareId,
            CookieField::Case,
            CookieField::Scope,
            CookieField::Lang,
            CookieField::Email,
        ] {
            let longest = field.max_len();
            let at_limit = open(&keys, seal_payload(&keys, &payload(field, longest)), NOW);
            let resealed = at_limit
                .as_ref()
                .map_err(|e| *e)
                .and_then(|g| seal(&keys, g));
            assert!(
                resealed.is_ok(),
                "{field:?} at its limit opens and seals again"
            );
            assert_eq!(
                open(
                    &keys,
                    seal_payload(&keys, &payload(field, longest + 1)),
                    NOW
                ),
                Err(CookieError::Malformed),
                "{field:?} one byte over its limit"
            );
        }
    }

    #[test]
    fn links_and_cookies_are_not_interchangeable() {
        let keys = ring("k1", &["k1"]);
        let claims = LinkClaims {
            share_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            case: "C-1042".into(),
            scope: "read".into(),
            issued_at: NOW - 60,
            expires_at: NOW + 3600,
            not_before: None,
            email: None,
            lang: None,
        };
        let link = token::mint(&keys, &claims);
        let cookie = sealed(&keys, &Guest::from_link(claims));

        assert_eq!(open(&keys, &link, NOW), Err(CookieError::WrongVersion));
        // Even dressed as a cookie, a link's signature is not a cookie tag.
        let (_, link_payload, link_tag) = parts(&link);
        assert_eq!(
            open(&keys, format!("v2.k1.{link_payload}.{link_tag}"), NOW),
            Err(CookieError::BadMac)
        );

        let grammar = CaseGrammar::default();
        let rules = LinkRules {
            now: NOW,
            max_ttl_secs: 86_400,
            clock_skew_secs: 60,
            case_grammar: &grammar,
            scope_exists: &|scope| scope == "read",
        };
        assert!(token::verify(&keys, &cookie, &rules).is_err());
        let (_, cookie_payload, cookie_tag) = parts(&cookie);
        let header = b64::encode(br#"{"alg":"HS256","kid":"k1"}"#);
        assert_eq!(
            token::verify(
                &keys,
                &format!("{header}.{cookie_payload}.{cookie_tag}"),
                &rules
            ),
            Err(token::LinkError::BadSignature)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn open_never_panics_on_arbitrary_text(text in "\\PC{0,600}") {
                let _ = open(&ring("k1", &["k1"]), &text, NOW);
            }

            #[test]
            fn open_never_panics_on_arbitrary_bytes(
                bytes in proptest::collection::vec(any::<u8>(), 0..600),
            ) {
                let _ = open(&ring("k1", &["k1"]), &bytes, NOW);
            }

            #[test]
            fn open_never_panics_on_authentic_arbitrary_payloads(
                payload in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                let keys = ring("k1", &["k1"]);
                let _ = open(&keys, seal_payload(&keys, &payload), NOW);
            }

            #[test]
            fn sealed_guests_round_trip(
                share_id in "[A-Za-z0-9_-]{16,128}",
                case in "[A-Za-z0-9_-]{1,64}",
                scope in "[a-z]{1,32}",
                lang in proptest::option::of("[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8}){0,2}"),
                email in proptest::option::of("[a-z0-9.+]{1,64}@[a-z0-9.-]{1,100}"),
                expires_at in NOW + 1..i64::MAX,
                issued_at in any::<i64>(),
                email_verified in any::<bool>(),
            ) {
                let keys = ring("k1", &["k1"]);
                let guest = Guest { share_id, case, scope, lang, email, expires_at, issued_at, email_verified };
                let value = seal(&keys, &guest);
                prop_assert!(value.as_ref().is_ok_and(|v| v.len() < MAX_COOKIE_LEN));
                prop_assert_eq!(value.and_then(|v| open(&keys, &v, NOW)), Ok(guest));
            }
        }
    }
}
