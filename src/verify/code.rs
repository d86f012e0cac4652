//! One-time codes: six decimal digits drawn uniformly from the OS generator, kept only as a MAC
//! bound to the share, so neither a memory dump nor a store shared by gateways reveals a code,
//! and a code sent for one share means nothing for another.

use std::fmt;

use hmac::Mac;
use subtle::ConstantTimeEq;

use super::derive::{derived_mac, put_field};
use crate::share::keys::random_bytes;
use crate::share::{KeyRing, RandomnessUnavailable};

pub const CODE_DIGITS: usize = 6;

const CODE_SPACE: u32 = 1_000_000;

/// The largest multiple of [`CODE_SPACE`] a `u32` holds: draws at or above it are thrown away, so
/// every code is equally likely (no modulo bias).
const UNBIASED_LIMIT: u32 = u32::MAX - (u32::MAX % CODE_SPACE);
// Every draw below the limit maps onto each code equally often, and almost no draw is thrown away.
const _: () =
    assert!(UNBIASED_LIMIT.is_multiple_of(CODE_SPACE) && UNBIASED_LIMIT > u32::MAX - CODE_SPACE);

const KEY_LABEL: &[u8] = b"casegate/verify-code/v1";
const PURPOSE: &[u8] = b"casegate verify-code v1";

/// A code as sent by mail. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Code([u8; CODE_DIGITS]);

/// The MAC of a code, with the kid of the key that made it. This is all a store ever holds.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeMac {
    pub kid: String,
    pub tag: [u8; 32],
}

// === impl Code ===

impl Code {
    /// A new code: uniform over 000000..=999999, by rejection sampling.
    pub fn generate() -> Result<Code, RandomnessUnavailable> {
        loop {
            let draw = u32::from_be_bytes(random_bytes::<4>()?);
            if draw < UNBIASED_LIMIT {
                return Ok(Code::from_number(draw % CODE_SPACE));
            }
        }
    }

    fn from_number(mut number: u32) -> Code {
        let mut digits = [b'0'; CODE_DIGITS];
        for digit in digits.iter_mut().rev() {
            // `number % 10` is below 10, so the cast cannot truncate.
            *digit = b'0' + (number % 10) as u8;
            number /= 10;
        }
        Code(digits)
    }

    /// Reads what a guest typed: six digits, with spaces or dashes between them allowed (people
    /// copy `123 456`). Anything else is no code.
    pub fn parse(typed: &str) -> Option<Code> {
        if typed.len() > 32 {
            return None;
        }
        let mut digits = [0u8; CODE_DIGITS];
        let mut count = 0;
        for byte in typed.bytes() {
            match byte {
                b'0'..=b'9' => {
                    *digits.get_mut(count)? = byte;
                    count += 1;
                }
                b' ' | b'-' | b'\t' => {}
                _ => return None,
            }
        }
        (count == CODE_DIGITS).then_some(Code(digits))
    }

    /// The digits, for the mail and nothing else.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The MAC the store keeps, under the active key, bound to `share_id`.
    pub fn mac(&self, keys: &KeyRing, share_id: &str) -> Option<CodeMac> {
        self.mac_under(keys, keys.active_kid(), share_id)
    }

    /// The MAC under `kid` (the key a stored MAC was made with); `None` once that kid left the ring.
    pub fn mac_under(&self, keys: &KeyRing, kid: &str, share_id: &str) -> Option<CodeMac> {
        let mut mac = derived_mac(keys, kid, KEY_LABEL)?;
        put_field(&mut mac, PURPOSE);
        put_field(&mut mac, share_id.as_bytes());
        put_field(&mut mac, &self.0);
        Some(CodeMac {
            kid: kid.to_owned(),
            tag: mac.finalize().into_bytes().into(),
        })
    }

    /// Whether this typed code is the one `stored` was made from, for `share_id`. Constant time
    /// in the tag.
    pub fn matches(&self, keys: &KeyRing, share_id: &str, stored: &CodeMac) -> bool {
        match self.mac_under(keys, &stored.kid, share_id) {
            Some(candidate) => bool::from(candidate.tag.ct_eq(&stored.tag)),
            None => false,
        }
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(***)")
    }
}

impl fmt::Debug for CodeMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeMac")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::test_ring as ring;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: Vec<String> = (0..200)
            .map(|_| Code::generate().unwrap().as_str().to_owned())
            .collect();
        for code in &codes {
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
        let distinct: std::collections::HashSet<&String> = codes.iter().collect();
        assert!(
            distinct.len() > 190,
            "200 draws gave {} codes",
            distinct.len()
        );
    }

    #[test]
    fn numbers_keep_their_leading_zeros() {
        assert_eq!(Code::from_number(0).as_str(), "000000");
        assert_eq!(Code::from_number(42).as_str(), "000042");
        assert_eq!(Code::from_number(999_999).as_str(), "999999");
    }

    #[test]
    fn what_a_guest_types_is_read_leniently_but_only_as_six_digits() {
        let cases = [
            ("123456", Some("123456")),
            ("123 456", Some("123456")),
            (" 123-456 ", Some("123456")),
            ("012345", Some("012345")),
            ("12345", None),
            ("1234567", None),
            ("12345a", None),
            ("", None),
            ("１２３４５６", None),
            (&"1".repeat(40), None),
        ];
        for (typed, want) in cases {
            assert_eq!(
                Code::parse(typed).as_ref().map(Code::as_str),
                want,
                "{typed:?}"
            );
        }
    }

    #[test]
    fn a_code_matches_only_its_own_share_and_survives_key_rotation() {
        let keys = ring("k1");
        let code = Code::parse("123456").unwrap();
        let stored = code.mac(&keys, "share-A").unwrap();
        assert!(code.matches(&keys, "share-A", &stored));
        assert!(!code.matches(&keys, "share-B", &stored));
        assert!(
            !Code::parse("123457")
                .unwrap()
                .matches(&keys, "share-A", &stored)
        );
        let rotated = ring("k2");
        assert!(code.matches(&rotated, "share-A", &stored));
        assert_ne!(code.mac(&rotated, "share-A").unwrap().tag, stored.tag);
    }

    #[test]
    fn debug_output_never_shows_the_code_or_its_mac() {
        let code = Code::parse("987654").unwrap();
        let mac = code.mac(&ring("k1"), "s").unwrap();
        assert!(!format!("{code:?}").contains("987654"));
        assert_eq!(format!("{mac:?}"), "CodeMac { kid: \"k1\", .. }");
    }
}
