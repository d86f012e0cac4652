//! The seam between the in-memory view and where writes become durable: the embedded journal
//! ([`super::journal`]) or Redis, shared by several replicas ([`super::redis`]).

use std::time::Instant;

use tokio::sync::oneshot;

use super::StoreError;
use super::freshness::Freshness;
use super::record::Record;

/// Resolves once the backend finished (or refused) a request.
pub(crate) type Ack<T> = oneshot::Receiver<Result<T, StoreError>>;

/// How durable a commit must be before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// On stable storage (fsync) before the ack: creates, revokes, the shutdown flush.
    Synced,
    /// Handed to the OS; a crash may lose it: periodic use counters.
    Lazy,
}

/// A durable home for records. Implementations apply every record they committed to the shared
/// view, in commit order, before acknowledging, and never apply one they failed to commit.
pub(crate) trait Backend: Send + Sync {
    fn commit(&self, records: Vec<Record>, durability: Durability) -> Ack<()>;

    /// Rewrites the persisted state compactly when it has grown past its threshold (always, if
    /// `force`); `now` decides which revocations are old enough to drop. Ok(true) if it did.
    fn compact(&self, now: i64, force: bool) -> Ack<bool>;

    /// Whether a write failed and the backend now refuses every write (until a restart).
    fn has_failed(&self) -> bool;

    /// How current the view is. A backend that writes every change itself is always fresh; one
    /// that learns other replicas' changes by listening is not while it cannot listen.
    fn freshness(&self, _now: Instant) -> Freshness {
        Freshness::Fresh
    }

    /// Whether other processes write the same state (and so freshness can change).
    fn is_shared(&self) -> bool {
        false
    }
}
