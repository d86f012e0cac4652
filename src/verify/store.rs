//! Pending codes and abuse counters, behind [`CodeStore`]: [`super::MemoryCodeStore`] for one
//! gateway, [`super::RedisCodeStore`] for several replicas sharing them (issue 6).
//!
//! Every operation that checks a limit also counts against it, in one atomic step, so no number of
//! parallel requests (on one replica or on several) gets more than the limit through. A guess is
//! counted *before* it is compared: 200 parallel guesses at one code get at most `max_attempts`
//! comparisons.
//!
//! Every method can fail with [`CodeStoreUnavailable`] (the shared store is out of reach). The
//! callers fail closed on it: no code is sent and no guess is compared while the counters that
//! bound them cannot be checked.
//!
//! The same seam holds the admin API's invitation-resend cooldown ([`CodeStore::reserve_invite`]),
//! so two replicas behind one load balancer do not each send one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::client::ClientKey;
use super::code::CodeMac;
use super::limits::{Limited, VerifySettings};

/// A code waiting to be typed: its MAC and when it stops working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCode {
    pub mac: CodeMac,
    /// Unix seconds; the code is refused from this second on.
    pub expires_at: i64,
}

/// Where a share's verification stands, for the landing page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeStatus {
    /// No code was sent (or the last one was used or forgotten).
    NoCode,
    Pending {
        attempts_left: u32,
    },
    Expired,
    /// Every allowed wrong try was used up.
    Exhausted,
}

/// A guess that may be compared: the code to compare it with, and the tries left if it is wrong.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub code: PendingCode,
    pub attempts_left: u32,
}

/// Why a guess is not compared at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptRefusal {
    NoCode,
    Expired,
    Exhausted,
    Limited(Limited),
}

/// An invitation send that was allowed; [`CodeStore::release_invite`] it if the mail was not
/// sent, so the caller may try again at once.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub struct InviteReservation {
    pub share_id: String,
    /// Unix seconds of the send; identifies this reservation, so a release never undoes a later one.
    pub at: i64,
}

/// The shared store could not be asked (connection down, timeout, an error reply). Whatever was
/// asked is refused: the limits it guards cannot be checked.
#[derive(Debug)]
pub struct CodeStoreUnavailable {
    source: redis::RedisError,
}

/// What every [`CodeStore`] method returns: a boxed future, so the trait stays usable as
/// `Arc<dyn CodeStore>`.
pub type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, CodeStoreUnavailable>> + Send + 'a>>;

/// Codes and counters. Times are unix seconds, passed in so tests need no clock.
pub trait CodeStore: Send + Sync {
    /// Checks the cooldown and the hourly limits for sending a code to `share_id` from `client`,
    /// and counts the send if they allow it.
    fn reserve_send<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, Result<(), Limited>>;

    /// Makes `code` the share's only pending code, with no tries used.
    fn put_code<'a>(
        &'a self,
        share_id: &'a str,
        code: PendingCode,
        now: i64,
    ) -> StoreFuture<'a, ()>;

    /// Forgets the share's pending code if it is still `mac` (its mail could not be sent).
    fn drop_code<'a>(&'a self, share_id: &'a str, mac: &'a CodeMac) -> StoreFuture<'a, ()>;

    /// Counts one guess against the share's code and the client's failures, then hands out the
    /// code to compare with; refuses without counting when there is nothing to compare.
    fn begin_attempt<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, Result<Attempt, AttemptRefusal>>;

    /// The guess was right: the code is used up (if still `mac`), and the guess no longer counts
    /// as the client's failure.
    fn code_used<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        mac: &'a CodeMac,
    ) -> StoreFuture<'a, ()>;

    fn status<'a>(
        &'a self,
        share_id: &'a str,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, CodeStatus>;

    /// Seconds until a send for `share_id` from `client` would be allowed; 0 when it would be now.
    fn next_send_in<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, i64>;

    /// Records an invitation mail for `share_id` at `now`, or says in how many seconds one is
    /// allowed (at least one): at most one per `cooldown`. Reserving before sending makes two
    /// parallel resends (on one replica or two) send one mail, not two.
    fn reserve_invite<'a>(
        &'a self,
        share_id: &'a str,
        now: i64,
        cooldown: Duration,
    ) -> StoreFuture<'a, Result<InviteReservation, i64>>;

    /// The mail was not sent: the share may be invited again at once (unless a later reservation
    /// took its place, which stays).
    fn release_invite<'a>(&'a self, reservation: &'a InviteReservation) -> StoreFuture<'a, ()>;
}

// === impl CodeStoreUnavailable ===

impl From<redis::RedisError> for CodeStoreUnavailable {
    fn from(source: redis::RedisError) -> CodeStoreUnavailable {
        CodeStoreUnavailable { source }
    }
}

impl fmt::Display for CodeStoreUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A RedisError names the failure (refused, timed out, an error reply), never the URL.
        write!(
            f,
            "the shared verification store cannot be reached: {}",
            self.source
        )
    }
}

impl std::error::Error for CodeStoreUnavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Whole seconds of a cooldown, as the stores count time.
pub(super) fn whole_secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
