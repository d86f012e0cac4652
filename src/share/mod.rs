//! The crypto of sharing, and nothing else: link tokens (JWT HS256), guest cookies, and the keys
//! (rotated by kid) that sign both.
//!
//! A link is verified once, on arrival, and exchanged for a guest cookie. The two never share a
//! MAC key: cookies use a key derived from the link key and bind a purpose string, so neither can
//! be presented as the other.

pub mod b64;
pub mod case;
pub mod cookie;
pub mod guest;
pub(crate) mod json;
pub mod keys;
pub mod token;

pub use case::{CaseGrammar, CaseGrammarError};
pub use cookie::CookieError;
pub use guest::Guest;
pub use keys::{KeyError, KeyRing, RandomnessUnavailable, Secret};
pub use token::{LinkClaims, LinkError, LinkErrorKind, LinkRules};

/// `text` split around its last `.`: link tokens and guest cookies are base64url parts joined by
/// dots. memchr's search goes a vector at a time, where `str::rsplit_once` went a word at a time:
/// 520 instructions less on each cookie opened (callgrind), most of them in the payload the
/// second split crosses.
fn split_at_last_dot(text: &str) -> Option<(&str, &str)> {
    let (head, _) = split_bytes_at_last_dot(text.as_bytes())?;
    Some((text.get(..head.len())?, text.get(head.len() + 1..)?))
}

/// [`split_at_last_dot`] of bytes: a cookie is opened from the bytes its request carried.
fn split_bytes_at_last_dot(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = memchr::memrchr(b'.', bytes)?;
    let (head, dot_and_tail) = bytes.split_at_checked(dot)?;
    Some((head, dot_and_tail.get(1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn splitting_at_the_last_dot_agrees_with_rsplit_once(text in "[.a\u{e9}\u{1F600}]{0,40}") {
            proptest::prop_assert_eq!(split_at_last_dot(&text), text.rsplit_once('.'));
            let as_bytes = text
                .rsplit_once('.')
                .map(|(head, tail)| (head.as_bytes(), tail.as_bytes()));
            proptest::prop_assert_eq!(split_bytes_at_last_dot(text.as_bytes()), as_bytes);
        }
    }
}
