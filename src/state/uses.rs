//! Use counters recorded on the hot path, held in memory until the next flush writes them as one
//! record per share. Bounded write amplification: at most one record per share per interval.

use dashmap::DashMap;

use super::SeenShare;
use super::key::KeyHasher;
use super::record::{Record, ShareState};

#[derive(Default)]
pub(crate) struct PendingUses {
    /// Looked up on a connection's first guest request, as the view's shares are, and hashed as
    /// they are (see [`KeyHasher`]).
    pending: DashMap<Box<str>, ShareState, KeyHasher>,
}

impl PendingUses {
    /// A link was exchanged: one more use, with the claims it carried. Allocates only for the
    /// first use of a share in a flush interval.
    pub(crate) fn open(&self, share: &SeenShare<'_>, now: i64) {
        if let Some(mut pending) = self.pending.get_mut(share.id) {
            pending.count_use(now);
            if !pending.has_claims() {
                pending.merge(ShareState::seen(share));
            }
            return;
        }
        let mut used = ShareState::seen(share);
        used.count_use(now);
        self.pending
            .entry(share.id.into())
            .or_insert_with(ShareState::unknown)
            .merge(used);
    }

    /// A guest request under a cookie of this share: only the last use moves.
    pub(crate) fn activity(&self, share_id: &str, now: i64) {
        if let Some(mut pending) = self.pending.get_mut(share_id) {
            pending.touch(now);
            return;
        }
        self.pending
            .entry(share_id.into())
            .or_insert_with(ShareState::unknown)
            .touch(now);
    }

    pub(crate) fn get(&self, share_id: &str) -> Option<ShareState> {
        self.pending.get(share_id).map(|pending| pending.clone())
    }

    pub(crate) fn has(&self, share_id: &str) -> bool {
        self.pending.contains_key(share_id)
    }

    /// Calls `each` with every pending share.
    pub(crate) fn for_each(&self, mut each: impl FnMut(&str, &ShareState)) {
        for entry in &self.pending {
            each(entry.key(), entry.value());
        }
    }

    /// Takes everything pending, as records to commit. Uses recorded meanwhile wait for the next.
    pub(crate) fn take(&self) -> Vec<Record> {
        let ids: Vec<Box<str>> = self
            .pending
            .iter()
            .map(|entry| entry.key().clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.pending.remove(&id))
            .map(|(id, state)| Record::Share { id, state })
            .collect()
    }

    /// Puts back what a failed commit could not write, so the counts are not lost.
    pub(crate) fn restore(&self, records: Vec<Record>) {
        for record in records {
            if let Record::Share { id, state } = record {
                self.pending
                    .entry(id)
                    .or_insert_with(ShareState::unknown)
                    .merge(state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str) -> SeenShare<'_> {
        SeenShare {
            id,
            case: "C",
            scope: "read",
            issued_at: 1,
            expires_at: 99,
            email: None,
            lang: None,
        }
    }

    #[test]
    fn opens_and_activity_fold_into_one_record_per_share() {
        let uses = PendingUses::default();
        uses.open(&seen("a"), 10);
        uses.open(&seen("a"), 12);
        uses.activity("a", 15);
        uses.open(&seen("b"), 11);
        let mut records = uses.take();
        records.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
        assert_eq!(records.len(), 2);
        let Record::Share { id, state } = &records[0] else {
            panic!("expected a share record");
        };
        assert_eq!(&**id, "a");
        assert_eq!(state.uses, 2);
        assert_eq!(state.first_used_at, Some(10));
        assert_eq!(state.last_used_at, Some(15));
        assert_eq!(state.case.as_deref(), Some("C"));
        assert!(uses.take().is_empty());
    }

    #[test]
    fn restored_uses_are_taken_again() {
        let uses = PendingUses::default();
        uses.open(&seen("a"), 10);
        let taken = uses.take();
        uses.open(&seen("a"), 20);
        uses.restore(taken);
        let state = uses.get("a").expect("pending");
        assert_eq!(state.uses, 2);
        assert_eq!(state.first_used_at, Some(10));
    }
}
