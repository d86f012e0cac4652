//! Strict base64url without padding: the only spelling of bytes casegate accepts inside link
//! tokens, guest cookies and keys.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Exactly one accepted spelling per byte string. A second spelling of the same credential would
/// be a second credential to caches, logs and revocation lists, so padding, `+`, `/`, whitespace
/// and non-zero stray bits in the last character are all refused.
const STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

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
    STRICT.decode(text).map_err(|_| B64Error::NotCanonical)
}

/// Decodes `text` into `buffer` without allocating, refusing it unread when it is longer than
/// `max_chars` or would not fit. Returns the decoded bytes.
pub fn decode_into<'b>(
    text: &str,
    max_chars: usize,
    buffer: &'b mut [u8],
) -> Result<&'b [u8], B64Error> {
    if text.len() > max_chars {
        return Err(B64Error::TooLong);
    }
    let written = STRICT
        .decode_slice(text, buffer)
        .map_err(|_| B64Error::NotCanonical)?;
    buffer.get(..written).ok_or(B64Error::NotCanonical)
}

/// Encodes `bytes` as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    STRICT.encode(bytes)
}

/// Appends the unpadded base64url of `bytes` to `out`, saving an allocation when building tokens.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    STRICT.encode_string(bytes, out);
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
    fn encode_into_appends() {
        let mut out = String::from("x.");
        encode_into(b"abc", &mut out);
        assert_eq!(out, "x.YWJj");
    }
}
