//! The gateway's durable state: share records, revocations (by id and by case) and use counters.
//!
//! Two halves:
//! - [`view`]: the in-memory view (dashmaps) every read and the hot-path revocation check use;
//! - [`backend::Backend`]: where writes become durable. The embedded one, [`journal`], appends
//!   checksummed records to a journal in `[state] path`, fsyncs before acknowledging a create or a
//!   revoke, compacts into snapshots, and replays snapshot + journal on start. The shared one,
//!   [`redis`], commits to Redis and follows what other replicas commit there; its view can go
//!   stale ([`freshness`]), and then guests are refused rather than served on old revocations.
//!
//! A write reaches the view only after the backend made it durable, so a failed write is never
//! visible. Use counters are the exception by design: they accumulate in memory ([`uses`]) and are
//! written in batches without fsync, so a crash may lose the last flush interval of use counts
//! (never a create or a revoke).

mod backend;
mod codec;
mod describe;
mod error;
mod frame;
mod freshness;
mod journal;
mod key;
mod layout;
mod maintenance;
mod presence_filter;
mod record;
pub mod redis;
mod replay;
mod snapshot;
mod store;
mod uses;
mod view;
#[cfg(test)]
pub(crate) mod write_failure;
mod writer;

pub use self::redis::RedisSettings;
pub use error::{OpenError, StoreError};
pub use freshness::Freshness;
pub use layout::PRIVATE_DIR;
pub use store::StateStore;

use std::path::PathBuf;
use std::time::Duration;

/// What the gateway needs from the store's config.
#[derive(Clone, Debug)]
pub struct StateSettings {
    /// Directory holding the journal, snapshots and the lock file; created if missing.
    pub path: PathBuf,
    /// How often batched use records are written (default 2 s).
    pub use_flush_interval: Duration,
    /// Compact (snapshot + fresh journal) once the journal holds this many bytes (default 64 MiB).
    pub compact_after_bytes: u64,
    /// Revocations of shares whose expiry (or, unknown expiry, revoke time + this) is older than
    /// `now - retention_secs` may be dropped at compaction: such a token is refused as expired anyway.
    /// The gateway passes links.max_ttl + clock_skew.
    pub retention_secs: i64,
}

impl StateSettings {
    pub const DEFAULT_USE_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
    pub const DEFAULT_COMPACT_AFTER_BYTES: u64 = 64 * 1024 * 1024;

    /// Settings with the documented defaults for everything but the directory and retention.
    pub fn new(path: impl Into<PathBuf>, retention_secs: i64) -> StateSettings {
        StateSettings {
            path: path.into(),
            use_flush_interval: Self::DEFAULT_USE_FLUSH_INTERVAL,
            compact_after_bytes: Self::DEFAULT_COMPACT_AFTER_BYTES,
            retention_secs,
        }
    }
}

/// A share as created through the admin API (already minted and signed by the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewShare {
    pub id: String,
    pub case: String,
    pub scope: String,
    /// The token's iat, unix seconds.
    pub issued_at: i64,
    /// The token's exp.
    pub expires_at: i64,
    pub email: Option<String>,
    pub lang: Option<String>,
    pub note: Option<String>,
    pub created_by: Option<String>,
    /// The admin client that created it (its configured name).
    pub client: String,
}

/// Claims of a link that was just exchanged (from LinkClaims), for record_open: all that a share
/// minted outside the admin API is known by.
#[derive(Clone, Debug)]
pub struct SeenShare<'a> {
    pub id: &'a str,
    pub case: &'a str,
    pub scope: &'a str,
    pub issued_at: i64,
    pub expires_at: i64,
    pub email: Option<&'a str>,
    pub lang: Option<&'a str>,
}

/// Where a share stands at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareStatus {
    Pending,
    Active,
    Expired,
    Revoked,
}

impl ShareStatus {
    pub fn parse(text: &str) -> Option<ShareStatus> {
        match text {
            "pending" => Some(ShareStatus::Pending),
            "active" => Some(ShareStatus::Active),
            "expired" => Some(ShareStatus::Expired),
            "revoked" => Some(ShareStatus::Revoked),
            _ => None,
        }
    }

    /// Whether the share's link still opens: pending or active, neither revoked nor expired.
    pub fn is_live(self) -> bool {
        matches!(self, ShareStatus::Pending | ShareStatus::Active)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShareStatus::Pending => "pending",
            ShareStatus::Active => "active",
            ShareStatus::Expired => "expired",
            ShareStatus::Revoked => "revoked",
        }
    }
}

/// Why a credential is revoked (returned by the hot-path lookup).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked by id at this unix time.
    Share { at: i64 },
    /// Its case was revoked with this not_before (>= the credential's iat).
    Case { not_before: i64 },
}

/// Everything the API reports about a share.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ShareView {
    pub id: String,
    /// None only for an id revoked before it was ever seen (an external token not yet used).
    pub case: Option<String>,
    pub scope: Option<String>,
    pub status: ShareStatus,
    /// The token's iat.
    pub created_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// max(0, expires_at - now); 0 when revoked/expired/unknown.
    pub remaining_seconds: i64,
    pub first_used_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub uses: u64,
    pub revoked_at: Option<i64>,
    pub email: Option<String>,
    pub lang: Option<String>,
    pub note: Option<String>,
    pub created_by: Option<String>,
    pub client: Option<String>,
    /// "api" (created through the admin API) or "link" (minted elsewhere, known from its first use
    /// or from a revoke by id).
    pub origin: &'static str,
}

/// What a revoke by id found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    AlreadyRevoked,
}
