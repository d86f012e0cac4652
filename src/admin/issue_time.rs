//! When a new share's link is issued. A case revocation refuses every token of the case issued
//! (`iat`) at or before its cut-off second, so a link minted in that same second ("withdraw
//! everything, send a fresh link") would be dead on arrival. A create therefore waits for the
//! clock to leave the cut-off second.
//!
//! Waiting, rather than dating the link a second ahead: a link issued at the real time is covered
//! by any later revoke of its case, which cuts at its own now. A link dated ahead would outlive a
//! second revoke within the same second, since a cut-off never moves back and stays where it is.

use std::time::{Duration, Instant};

use super::error::ApiError;
use crate::clock::{time_until, unix_now};
use crate::state::StateStore;

/// The longest a create waits for the clock to pass its case's cut-off: the rest of the cut-off
/// second, and one more for a replica whose clock runs slightly ahead. A cut-off further ahead
/// means the clocks disagree (or this one was set back); the caller is told when to retry.
const LONGEST_WAIT: Duration = Duration::from_secs(2);

/// The time (Unix seconds) to issue a new link of `case` at: now, once now is past the case's
/// cut-off.
pub(super) async fn issue_time(store: &StateStore, case: &str) -> Result<i64, ApiError> {
    let give_up = Instant::now() + LONGEST_WAIT;
    loop {
        let now = unix_now();
        let Some(cut_off) = store
            .case_not_before(case)
            .filter(|cut_off| *cut_off >= now)
        else {
            return Ok(now);
        };
        // Looping, not trusting one wait: a revoke landing meanwhile moves the cut-off on.
        let wait = time_until(cut_off.saturating_add(1));
        if Instant::now() + wait > give_up {
            return Err(ApiError::CaseRevokedAhead {
                cut_off,
                retry_after: wait,
            });
        }
        tokio::time::sleep(wait).await;
    }
}
