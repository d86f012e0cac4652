//! The in-memory view: what every read and the hot-path revocation check consult. Only committed
//! records reach it (see [`super::backend`]), applied in commit order by one writer at a time.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use super::Revocation;
use super::key::{IdKey, KeyHasher};
use super::presence_filter::PresenceFilter;
use super::record::{Record, ShareState};

/// Shares, revoked ids and case cut-offs. Revoked ids live apart from share records because most
/// of them (external tokens) are nothing but an id: a million of them must stay small.
#[derive(Default)]
pub(crate) struct View {
    shares: DashMap<Box<str>, ShareState, KeyHasher>,
    revoked: DashMap<IdKey, i64, KeyHasher>,
    cases: DashMap<IdKey, i64, KeyHasher>,
    /// Which ids may be in `revoked` and `cases`: the hot path reads these, not the maps' locks.
    revoked_filter: PresenceFilter,
    cases_filter: PresenceFilter,
    /// How many cases carry a not_before, so the hot path skips the case map while there are none.
    case_count: AtomicUsize,
}

impl View {
    /// Folds one committed record in. Revoked stays revoked (the first revocation time is kept);
    /// a case's not_before only moves forward; shares merge (see [`ShareState::merge`]).
    pub(crate) fn apply(&self, record: Record) {
        match record {
            Record::Share { id, state } => match self.shares.get_mut(&*id) {
                Some(mut known) => known.merge(state),
                None => {
                    self.shares
                        .entry(id)
                        .or_insert_with(ShareState::unknown)
                        .merge(state);
                }
            },
            Record::RevokedShare { id, at } => {
                self.revoked_filter.insert(id.as_bytes());
                self.revoked
                    .entry(IdKey::new(&id))
                    .and_modify(|first| *first = (*first).min(at))
                    .or_insert(at);
            }
            Record::RevokedCase { case, not_before } => {
                let mut fresh = false;
                self.cases_filter.insert(case.as_bytes());
                self.cases
                    .entry(IdKey::new(&case))
                    .and_modify(|current| *current = (*current).max(not_before))
                    .or_insert_with(|| {
                        fresh = true;
                        not_before
                    });
                if fresh {
                    self.case_count.fetch_add(1, Ordering::Release);
                }
            }
            // Only marks the end of a snapshot; carries no state.
            Record::End { .. } => {}
        }
    }

    /// Raises a share's use counters to totals a shared backend reports (see
    /// [`ShareState::raise_counters`]): applying the same totals again changes nothing.
    pub(crate) fn raise_uses(
        &self,
        id: Box<str>,
        uses: u64,
        first_used: Option<i64>,
        last_used: Option<i64>,
    ) {
        self.shares
            .entry(id)
            .or_insert_with(ShareState::unknown)
            .raise_counters(uses, first_used, last_used);
    }

    /// HOT PATH: two map lookups at most, no allocation, no I/O.
    pub(crate) fn revocation(
        &self,
        share_id: &str,
        case: &str,
        issued_at: i64,
    ) -> Option<Revocation> {
        if self.revoked_filter.may_contain(share_id.as_bytes())
            && let Some(at) = self.revoked.get(share_id.as_bytes())
        {
            return Some(Revocation::Share { at: *at });
        }
        if self.case_count.load(Ordering::Acquire) == 0
            || !self.cases_filter.may_contain(case.as_bytes())
        {
            return None;
        }
        let not_before = *self.cases.get(case.as_bytes())?;
        (issued_at <= not_before).then_some(Revocation::Case { not_before })
    }

    pub(crate) fn revoked_at(&self, share_id: &str) -> Option<i64> {
        self.revoked.get(share_id.as_bytes()).map(|at| *at)
    }

    pub(crate) fn case_not_before(&self, case: &str) -> Option<i64> {
        if self.case_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.cases
            .get(case.as_bytes())
            .map(|not_before| *not_before)
    }

    pub(crate) fn share(&self, id: &str) -> Option<ShareState> {
        self.shares.get(id).map(|state| state.clone())
    }

    pub(crate) fn knows_share(&self, id: &str) -> bool {
        self.shares.contains_key(id)
    }

    /// Calls `each` with every known share.
    pub(crate) fn for_each_share(&self, mut each: impl FnMut(&str, &ShareState)) {
        for entry in &self.shares {
            each(entry.key(), entry.value());
        }
    }

    /// Calls `each` with every id revoked by id.
    pub(crate) fn for_each_revoked(&self, mut each: impl FnMut(&str, i64)) {
        for entry in &self.revoked {
            each(&entry.key().text(), *entry.value());
        }
    }

    /// Calls `each` with every case cut-off.
    pub(crate) fn for_each_case(&self, mut each: impl FnMut(&str, i64)) {
        for entry in &self.cases {
            each(&entry.key().text(), *entry.value());
        }
    }

    pub(crate) fn share_count(&self) -> usize {
        self.shares.len()
    }

    pub(crate) fn revoked_count(&self) -> usize {
        self.revoked.len()
    }

    /// Whether a revocation by id no longer matters at `now`: the token it names is refused as
    /// expired anyway (see `StateSettings::retention_secs`).
    pub(crate) fn revocation_outlived(&self, id: &str, at: i64, now: i64, retention: i64) -> bool {
        let expiry = self
            .shares
            .get(id)
            .and_then(|state| state.expires_at)
            .unwrap_or_else(|| at.saturating_add(retention));
        expiry < now.saturating_sub(retention)
    }

    /// Whether a case cut-off no longer matters: every credential it covers was issued at or
    /// before it, so expired more than `retention` (the longest link lifetime plus skew) after it.
    pub(crate) fn case_outlived(not_before: i64, now: i64, retention: i64) -> bool {
        not_before.saturating_add(retention) < now.saturating_sub(retention)
    }

    /// Drops what compaction left out of the snapshot, keeping memory bounded by what matters.
    pub(crate) fn forget_outlived(&self, now: i64, retention: i64) {
        let outlived: Vec<IdKey> = self
            .revoked
            .iter()
            .filter(|entry| {
                self.revocation_outlived(&entry.key().text(), *entry.value(), now, retention)
            })
            .map(|entry| entry.key().clone())
            .collect();
        for id in outlived {
            self.revoked.remove(id.as_bytes());
        }
        let before = self.cases.len();
        self.cases
            .retain(|_, not_before| !View::case_outlived(*not_before, now, retention));
        let dropped = before.saturating_sub(self.cases.len());
        self.case_count.fetch_sub(dropped, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoke(id: &str, at: i64) -> Record {
        Record::RevokedShare { id: id.into(), at }
    }

    fn cut(case: &str, not_before: i64) -> Record {
        Record::RevokedCase {
            case: case.into(),
            not_before,
        }
    }

    #[test]
    fn a_revoked_id_stays_revoked_with_its_first_time() {
        let view = View::default();
        view.apply(revoke("a", 20));
        view.apply(revoke("a", 10));
        view.apply(revoke("a", 30));
        assert_eq!(
            view.revocation("a", "C", 0),
            Some(Revocation::Share { at: 10 })
        );
        assert_eq!(view.revocation("b", "C", 0), None);
    }

    #[test]
    fn a_case_cut_off_only_moves_forward_and_covers_iat_up_to_it() {
        let view = View::default();
        view.apply(cut("C", 100));
        view.apply(cut("C", 50));
        assert_eq!(view.case_not_before("C"), Some(100));
        assert_eq!(
            view.revocation("x", "C", 100),
            Some(Revocation::Case { not_before: 100 })
        );
        assert_eq!(view.revocation("x", "C", 101), None);
        assert_eq!(view.revocation("x", "D", 1), None);
    }

    #[test]
    fn outlived_revocations_are_forgotten_and_recent_ones_kept() {
        let view = View::default();
        view.apply(revoke("old", 0));
        view.apply(revoke("new", 1_000));
        view.apply(cut("C-old", 0));
        view.apply(cut("C-new", 1_000));
        view.forget_outlived(1_000, 100);
        assert_eq!(view.revoked_at("old"), None);
        assert_eq!(view.revoked_at("new"), Some(1_000));
        assert_eq!(view.case_not_before("C-old"), None);
        assert_eq!(view.case_not_before("C-new"), Some(1_000));
        view.forget_outlived(10_000, 100);
        assert_eq!(view.case_not_before("C-new"), None);
        assert_eq!(view.revocation("x", "C-new", 0), None);
    }
}
