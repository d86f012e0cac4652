//! Keys for verification MACs, derived from the link keys under their own labels, so a code MAC
//! or a form token can never pass for a link, a cookie, or each other.

use hmac::Mac;

use crate::share::KeyRing;
use crate::share::keys::HmacSha256;

/// A MAC state keyed with `HMAC(link key of kid, label)`; `None` when the kid left the ring.
pub(super) fn derived_mac(keys: &KeyRing, kid: &str, label: &[u8]) -> Option<HmacSha256> {
    let mut derive = keys.link_mac(kid)?;
    derive.update(label);
    let key = derive.finalize().into_bytes();
    // HMAC accepts keys of every length; a failure here would mean a broken dependency.
    HmacSha256::new_from_slice(&key).ok()
}

/// Feeds `bytes` prefixed by its length (two bytes, big-endian), so that no two field lists encode
/// alike. Every field given here is far below 64 KiB; a longer one is cut to keep the function total.
pub(super) fn put_field(mac: &mut HmacSha256, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(usize::from(u16::MAX))];
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    mac.update(&len.to_be_bytes());
    mac.update(bytes);
}
