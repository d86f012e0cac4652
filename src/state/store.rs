//! [`StateStore`]: the public face. Reads come from the view (plus uses not yet written); writes
//! go through the backend and become visible once it acknowledged them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backend::{Ack, Backend, Durability};
use super::describe::{Known, describe};
use super::freshness::Freshness;
use super::journal::JournalBackend;
use super::record::{Record, ShareState};
use super::redis::{RedisBackend, RedisSettings};
use super::uses::PendingUses;
use super::view::View;
use super::{
    NewShare, OpenError, Revocation, RevokeOutcome, SeenShare, ShareStatus, ShareView,
    StateSettings, StoreError,
};

pub struct StateStore {
    view: Arc<View>,
    uses: PendingUses,
    backend: Box<dyn Backend>,
    pub(crate) settings: StateSettings,
}

async fn acked<T>(ack: Ack<T>) -> Result<T, StoreError> {
    ack.await.map_err(|_| StoreError::Closed)?
}

impl StateStore {
    /// Creates the directory if needed, takes an exclusive lock (a second opener on the same path
    /// gets OpenError::Locked), replays snapshot + journal. Blocking: call from spawn_blocking or
    /// before serving. A torn last record is dropped with a warning; any other corruption is an
    /// OpenError::Corrupt naming file and offset.
    pub fn open(settings: &StateSettings) -> Result<StateStore, OpenError> {
        let view = Arc::new(View::default());
        let backend = JournalBackend::open(settings, Arc::clone(&view))?;
        Ok(StateStore::over(view, backend, settings))
    }

    /// As [`Self::open`], but the journal writer appends to `journal` (see
    /// [`JournalBackend::open_appending_to`]): how tests make real writes fail.
    #[cfg(test)]
    pub(crate) fn open_appending_to(
        settings: &StateSettings,
        journal: std::fs::File,
    ) -> Result<StateStore, OpenError> {
        let view = Arc::new(View::default());
        let backend = JournalBackend::open_appending_to(settings, Arc::clone(&view), journal)?;
        Ok(StateStore::over(view, backend, settings))
    }

    /// Whether a durable write failed: every later write is then refused until a restart, and
    /// the admin `/readyz` reports the store as not writable.
    pub fn has_failed(&self) -> bool {
        self.backend.has_failed()
    }

    /// Where the store keeps its files (readiness checks that it is still writable).
    pub fn path(&self) -> &std::path::Path {
        &self.settings.path
    }

    /// Opens the shared store: connects to Redis, reads the whole state, and follows what
    /// other replicas commit. `settings.path` and `compact_after_bytes` are not used. Fails if
    /// Redis cannot be reached or read now.
    pub async fn open_redis(
        settings: &StateSettings,
        redis: &RedisSettings,
    ) -> Result<StateStore, OpenError> {
        let view = Arc::new(View::default());
        let backend = RedisBackend::open(redis, Arc::clone(&view)).await?;
        Ok(StateStore::over(view, backend, settings))
    }

    fn over(
        view: Arc<View>,
        backend: impl Backend + 'static,
        settings: &StateSettings,
    ) -> StateStore {
        StateStore {
            view,
            uses: PendingUses::default(),
            backend: Box::new(backend),
            settings: settings.clone(),
        }
    }

    /// How current the revocations are at `now`: always fresh for the embedded store; for Redis,
    /// how long ago this replica last heard from it (see [`Freshness`]).
    pub fn freshness(&self, now: Instant) -> Freshness {
        self.backend.freshness(now)
    }

    /// HOT PATH: how long the shared store has been silent, when that is past `max_staleness`
    /// and guests must be refused (fail closed). The embedded store never is, and costs no
    /// clock read.
    pub fn refuses_guests(&self) -> Option<Duration> {
        if !self.backend.is_shared() {
            return None;
        }
        match self.backend.freshness(Instant::now()) {
            Freshness::TooStale { age } => Some(age),
            Freshness::Fresh | Freshness::Stale { .. } => None,
        }
    }

    /// Whether other gateways share this state (the Redis backend): readiness then reports
    /// freshness instead of probing a directory.
    pub fn is_shared(&self) -> bool {
        self.backend.is_shared()
    }

    /// HOT PATH, no I/O, no allocation: is this credential revoked?
    pub fn revocation(&self, share_id: &str, case: &str, issued_at: i64) -> Option<Revocation> {
        self.view.revocation(share_id, case, issued_at)
    }

    /// The cut-off of `case`'s latest revocation: every token of the case issued (iat) at or
    /// before it is refused. `None` if the case was never revoked (or the cut-off was compacted
    /// away, when it no longer refuses anything).
    pub fn case_not_before(&self, case: &str) -> Option<i64> {
        self.view.case_not_before(case)
    }

    /// HOT PATH, no I/O: a link was exchanged for a cookie.
    pub fn record_open(&self, share: &SeenShare<'_>, now: i64) {
        self.uses.open(share, now);
    }

    /// HOT PATH, no I/O: a guest request carried a cookie of this share. A share known neither
    /// from the store nor from a pending open is not recorded: without its claims it could only
    /// be listed as an id with no case.
    pub fn record_activity(&self, share_id: &str, now: i64) {
        if self.uses.has(share_id) || self.view.knows_share(share_id) {
            self.uses.activity(share_id, now);
        }
    }

    /// Durable before Ok: the record is written and fsynced (group commit).
    pub async fn create(&self, share: NewShare) -> Result<(), StoreError> {
        let record = Record::Share {
            state: ShareState::created(&share),
            id: share.id.into(),
        };
        acked(self.backend.commit(vec![record], Durability::Synced)).await
    }

    /// Durable before Ok. Unknown ids are recorded too (external tokens). A share already
    /// revoked (by id, or by its case) is reported as such and nothing is written; two revokes
    /// racing each other may both report Revoked.
    pub async fn revoke_share(&self, id: &str, now: i64) -> Result<RevokeOutcome, StoreError> {
        if self.is_revoked(id) {
            return Ok(RevokeOutcome::AlreadyRevoked);
        }
        let record = Record::RevokedShare {
            id: id.into(),
            at: now,
        };
        acked(self.backend.commit(vec![record], Durability::Synced)).await?;
        Ok(RevokeOutcome::Revoked)
    }

    fn is_revoked(&self, id: &str) -> bool {
        if self.view.revoked_at(id).is_some() {
            return true;
        }
        let Some(state) = self.view.share(id) else {
            return false;
        };
        match (state.case.as_deref(), state.issued_at) {
            (Some(case), Some(issued_at)) => self.view.revocation(id, case, issued_at).is_some(),
            _ => false,
        }
    }

    /// Durable before Ok. Returns the case's not_before after the call (it never moves back).
    pub async fn revoke_case(&self, case: &str, now: i64) -> Result<i64, StoreError> {
        if let Some(not_before) = self.view.case_not_before(case).filter(|nb| *nb >= now) {
            return Ok(not_before);
        }
        let record = Record::RevokedCase {
            case: case.into(),
            not_before: now,
        };
        acked(self.backend.commit(vec![record], Durability::Synced)).await?;
        Ok(self.view.case_not_before(case).unwrap_or(now).max(now))
    }

    /// What is known of `id`: the committed state with the pending uses folded in.
    fn state(&self, id: &str) -> Option<ShareState> {
        match (self.view.share(id), self.uses.get(id)) {
            (Some(mut state), Some(pending)) => {
                state.merge(pending);
                Some(state)
            }
            (state, pending) => state.or(pending),
        }
    }

    fn describe(&self, id: &str, state: Option<ShareState>, now: i64) -> ShareView {
        let case_not_before = state
            .as_ref()
            .and_then(|state| state.case.as_deref())
            .and_then(|case| self.view.case_not_before(case));
        describe(
            Known {
                id,
                state,
                revoked_at: self.view.revoked_at(id),
                case_not_before,
            },
            now,
        )
    }

    pub fn share(&self, id: &str, now: i64) -> Option<ShareView> {
        let state = self.state(id);
        if state.is_none() && self.view.revoked_at(id).is_none() {
            return None;
        }
        Some(self.describe(id, state, now))
    }

    /// Newest first (by created_at, unknown last, then by id); filters are optional.
    pub fn list(
        &self,
        case: Option<&str>,
        status: Option<ShareStatus>,
        now: i64,
    ) -> Vec<ShareView> {
        let mut states: HashMap<Box<str>, Option<ShareState>> = HashMap::new();
        let wanted = |state: &ShareState| case.is_none() || state.case.as_deref() == case;
        self.view.for_each_share(|id, state| {
            if wanted(state) {
                states.insert(id.into(), Some(state.clone()));
            }
        });
        self.uses.for_each(|id, pending| {
            match states.get_mut(id) {
                Some(Some(state)) => state.merge(pending.clone()),
                Some(None) => {}
                // A pending use of a committed share of another case must not list it here.
                None if self.view.knows_share(id) => {}
                None => {
                    if wanted(pending) {
                        states.insert(id.into(), Some(pending.clone()));
                    }
                }
            }
        });
        if case.is_none() {
            self.view.for_each_revoked(|id, _| {
                states.entry(id.into()).or_insert(None);
            });
        }
        let mut views: Vec<ShareView> = states
            .into_iter()
            .map(|(id, state)| self.describe(&id, state, now))
            .filter(|view| status.is_none_or(|wanted| view.status == wanted))
            .collect();
        views.sort_by(|a, b| {
            b.created_at
                .is_some()
                .cmp(&a.created_at.is_some())
                .then(b.created_at.cmp(&a.created_at))
                .then_with(|| a.id.cmp(&b.id))
        });
        views
    }

    /// Writes pending use records and fsyncs. Called at shutdown (and by tests).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.write_uses(Durability::Synced).await
    }

    pub(crate) async fn write_uses(&self, durability: Durability) -> Result<(), StoreError> {
        let records = self.uses.take();
        if records.is_empty() {
            return match durability {
                // Nothing of ours to write, but the caller asked for a sync point.
                Durability::Synced => acked(self.backend.commit(Vec::new(), durability)).await,
                Durability::Lazy => Ok(()),
            };
        }
        let commit = self.backend.commit(records.clone(), durability);
        let result = acked(commit).await;
        if result.is_err() {
            self.uses.restore(records);
        }
        result
    }

    /// Compacts now, whatever the journal's size (tests, and an operator's explicit request).
    /// Ok(true) once the new snapshot and journal are in place.
    pub async fn compact(&self, now: i64) -> Result<bool, StoreError> {
        acked(self.backend.compact(now, true)).await
    }

    pub(crate) async fn compact_if_due(&self, now: i64) -> Result<bool, StoreError> {
        acked(self.backend.compact(now, false)).await
    }
}
