//! The hot-path map keys: a share id stored inline when it fits (a 16-byte jti is 22 characters),
//! so a revocation hit reads no second cache line for the key, and a million keys cost no
//! million heap allocations. Looked up by `&[u8]` without allocating.

use std::borrow::{Borrow, Cow};
use std::hash::{Hash, Hasher};

const INLINE: usize = 30;

/// A share id (or case name) as a map key.
#[derive(Clone, Debug)]
pub(crate) enum IdKey {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

/// The maps' hasher (the view's shares, revoked ids and cases, and the pending uses). Keys are
/// MAC-verified token ids or admin input, not attacker-chosen at will, and foldhash is seeded
/// per process; SipHash would cost a fifth of the hot-path budget.
pub(crate) type KeyHasher = foldhash::fast::RandomState;

impl IdKey {
    pub(crate) fn new(id: &str) -> IdKey {
        let bytes = id.as_bytes();
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut inline = [0u8; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                IdKey::Inline { len, bytes: inline }
            }
            _ => IdKey::Heap(bytes.into()),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            IdKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IdKey::Heap(bytes) => bytes,
        }
    }

    /// The id as text. Keys are only ever built from `&str`, so this never replaces anything.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

impl Borrow<[u8]> for IdKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Hashes exactly like the `[u8]` it borrows as, so lookups by `&[u8]` find it.
impl Hash for IdKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for IdKey {
    fn eq(&self, other: &IdKey) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for IdKey {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn short_and_long_ids_read_back_and_hash_like_their_bytes() {
        let hasher = KeyHasher::default();
        for id in [
            "",
            "Vb3m0qf1Zl8wXk2Rr9TnYA",
            &"x".repeat(30),
            &"y".repeat(128),
        ] {
            let key = IdKey::new(id);
            assert_eq!(key.as_bytes(), id.as_bytes());
            assert_eq!(key.text(), id);
            assert_eq!(hasher.hash_one(&key), hasher.hash_one(id.as_bytes()));
        }
        assert!(matches!(IdKey::new(&"x".repeat(30)), IdKey::Inline { .. }));
        assert!(matches!(IdKey::new(&"x".repeat(31)), IdKey::Heap(_)));
    }
}
