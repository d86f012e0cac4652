//! A filter in front of the revocation maps, so that the hot path asks the maps only about ids
//! that may be in them. A map lookup takes its shard's read lock: a write to a line that both
//! workers take for the same share on every request, passing it between the cores. The filter is
//! only read (one atomic load of one word), and nearly every request is for a share that was
//! never revoked.
//!
//! A blocked Bloom filter: an id sets two bits of one 64-bit word. "Absent" is certain; "present"
//! may be wrong, and then the map answers. Bits are never cleared: an id forgotten from the map
//! only costs a lookup that finds nothing.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// 2^13 words, 64 KiB: under 1% of lookups reach the map with 20,000 ids in it, about half with
/// 300,000, nearly all with a million, as without the filter.
const WORDS: usize = 1 << 13;

pub(crate) struct PresenceFilter {
    words: Box<[AtomicU64]>,
    /// Seeded apart from the maps' hasher, so the filter's collisions are not the map's.
    hasher: foldhash::fast::RandomState,
}

impl Default for PresenceFilter {
    fn default() -> PresenceFilter {
        PresenceFilter {
            words: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl PresenceFilter {
    /// Marks `id` as maybe present. Called before the id goes into the map, so a reader that
    /// finds the map holding it also finds it here.
    pub(crate) fn insert(&self, id: &[u8]) {
        let (word, bits) = self.place(id);
        self.words[word].fetch_or(bits, Ordering::Release);
    }

    /// `false` only if `id` was never inserted.
    pub(crate) fn may_contain(&self, id: &[u8]) -> bool {
        let (word, bits) = self.place(id);
        self.words[word].load(Ordering::Acquire) & bits == bits
    }

    /// The word an id lives in and its two bits there, from one 64-bit hash.
    fn place(&self, id: &[u8]) -> (usize, u64) {
        let hash = self.hasher.hash_one(id);
        // The low bits pick the word (WORDS is a power of two), the top twelve the bits.
        let word = usize::try_from(hash).unwrap_or(usize::MAX) & (WORDS - 1);
        let bits = (1u64 << (hash >> 58)) | (1u64 << ((hash >> 52) & 63));
        (word, bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_id_is_always_found() {
        let filter = PresenceFilter::default();
        let ids: Vec<String> = (0..5_000).map(|n| format!("share-{n}")).collect();
        for id in &ids {
            filter.insert(id.as_bytes());
        }
        assert!(ids.iter().all(|id| filter.may_contain(id.as_bytes())));
    }

    #[test]
    fn ids_never_inserted_are_nearly_always_ruled_out() {
        let filter = PresenceFilter::default();
        for n in 0..5_000 {
            filter.insert(format!("revoked-{n}").as_bytes());
        }
        let passed = (0..10_000)
            .filter(|n| filter.may_contain(format!("live-{n}").as_bytes()))
            .count();
        // Expected about 0.4% with 5,000 ids in 8,192 words; a filter that let through more than
        // 2% would save the hot path little.
        assert!(passed < 200, "{passed} of 10,000 passed");
        assert!(!PresenceFilter::default().may_contain(b"anything"));
    }
}
