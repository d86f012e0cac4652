//! The token every verification form carries: `<kid>.<b64url(tag)>`, the tag an HMAC over the
//! share id, the guest cookie's expiry and a purpose string. A page on another site cannot read it
//! (it is only in our HTML), and it changes with every new session of the share, so a form from an
//! older cookie or another share is refused. Checked in constant time.

use hmac::Mac;
use subtle::ConstantTimeEq;

use super::derive::{derived_mac, put_field};
use crate::share::{Guest, KeyRing, b64};

const KEY_LABEL: &[u8] = b"casegate/verify-form/v1";
const PURPOSE: &[u8] = b"casegate verify-form v1";

const TAG_LEN: usize = 32;
/// Unpadded base64url of a 32-byte tag.
const TAG_CHARS: usize = 43;

/// The token for the guest's forms, under the active key.
pub fn token(keys: &KeyRing, guest: &Guest) -> String {
    let kid = keys.active_kid();
    let mut token = String::with_capacity(kid.len() + 1 + TAG_CHARS);
    token.push_str(kid);
    token.push('.');
    if let Some(tag) = tag(keys, kid, guest) {
        b64::encode_into(&tag, &mut token);
    }
    token
}

/// Whether `presented` is the token of this guest's forms (under any kid still in the ring, so a
/// key rotation does not break a form already on screen).
pub fn check(keys: &KeyRing, guest: &Guest, presented: &str) -> bool {
    let Some((kid, tag_b64)) = presented.rsplit_once('.') else {
        return false;
    };
    let Ok(presented_tag) = b64::decode(tag_b64, TAG_CHARS) else {
        return false;
    };
    if presented_tag.len() != TAG_LEN {
        return false;
    }
    match tag(keys, kid, guest) {
        Some(expected) => bool::from(expected.ct_eq(presented_tag.as_slice())),
        None => false,
    }
}

fn tag(keys: &KeyRing, kid: &str, guest: &Guest) -> Option<[u8; TAG_LEN]> {
    let mut mac = derived_mac(keys, kid, KEY_LABEL)?;
    put_field(&mut mac, PURPOSE);
    put_field(&mut mac, guest.share_id.as_bytes());
    put_field(&mut mac, &guest.expires_at.to_be_bytes());
    Some(mac.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::test_ring as ring;

    fn guest(share_id: &str, expires_at: i64) -> Guest {
        Guest {
            share_id: share_id.into(),
            case: "42".into(),
            scope: "view".into(),
            lang: None,
            email: Some("a@b.example".into()),
            expires_at,
            issued_at: 1,
            email_verified: false,
        }
    }

    #[test]
    fn a_token_passes_only_for_the_session_it_was_made_for() {
        let keys = ring("k1");
        let mine = guest("share-A", 1000);
        let token = token(&keys, &mine);
        assert!(check(&keys, &mine, &token));
        let cases = [
            ("another share", guest("share-B", 1000)),
            ("another session of the share", guest("share-A", 1001)),
        ];
        for (name, other) in cases {
            assert!(!check(&keys, &other, &token), "{name}");
        }
    }

    #[test]
    fn anything_but_the_token_is_refused() {
        let keys = ring("k1");
        let mine = guest("share-A", 1000);
        let good = token(&keys, &mine);
        let (kid, tag) = good.split_once('.').unwrap();
        let mut flipped = tag.to_owned().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{kid}.{}", String::from_utf8(flipped).unwrap());
        for presented in [
            "",
            ".",
            "k1.",
            tag,
            &format!("k9.{tag}"),
            &format!("k2.{tag}"),
            &flipped,
            &format!("{good}A"),
            &format!("{good}="),
        ] {
            assert!(!check(&keys, &mine, presented), "{presented:?}");
        }
    }

    #[test]
    fn a_form_made_before_a_key_rotation_still_passes() {
        let mine = guest("share-A", 1000);
        let before = token(&ring("k1"), &mine);
        assert!(check(&ring("k2"), &mine, &before));
        assert!(token(&ring("k2"), &mine).starts_with("k2."));
    }
}
