//! How a share is reported at a given time: its status (revoked > expired > active > pending)
//! and the [`ShareView`] the admin API shows.

use super::record::ShareState;
use super::{ShareStatus, ShareView};

/// What is known about one id, gathered from the view and the not-yet-written uses.
pub(crate) struct Known<'a> {
    pub(crate) id: &'a str,
    pub(crate) state: Option<ShareState>,
    /// Revoked by id at this time.
    pub(crate) revoked_at: Option<i64>,
    /// Its case's not_before, if the case was ever revoked.
    pub(crate) case_not_before: Option<i64>,
}

fn owned(text: &Option<Box<str>>) -> Option<String> {
    text.as_deref().map(str::to_owned)
}

/// When the share was revoked: by id, else by its case if the cut-off covers its iat.
fn revoked_at(known: &Known<'_>) -> Option<i64> {
    known.revoked_at.or_else(|| {
        let issued_at = known.state.as_ref()?.issued_at?;
        known
            .case_not_before
            .filter(|not_before| issued_at <= *not_before)
    })
}

pub(crate) fn describe(known: Known<'_>, now: i64) -> ShareView {
    let revoked_at = revoked_at(&known);
    let unknown = ShareState::unknown();
    let state = known.state.as_ref().unwrap_or(&unknown);
    let expired = state.expires_at.is_some_and(|expires_at| expires_at <= now);
    let status = if revoked_at.is_some() {
        ShareStatus::Revoked
    } else if expired {
        ShareStatus::Expired
    } else if state.uses > 0 {
        ShareStatus::Active
    } else {
        ShareStatus::Pending
    };
    let remaining_seconds = match status {
        ShareStatus::Revoked | ShareStatus::Expired => 0,
        ShareStatus::Active | ShareStatus::Pending => state
            .expires_at
            .map_or(0, |expires_at| expires_at.saturating_sub(now).max(0)),
    };
    ShareView {
        id: known.id.to_owned(),
        case: owned(&state.case),
        scope: owned(&state.scope),
        status,
        created_at: state.issued_at,
        expires_at: state.expires_at,
        remaining_seconds,
        first_used_at: state.first_used_at,
        last_used_at: state.last_used_at,
        uses: state.uses,
        revoked_at,
        email: owned(&state.email),
        lang: owned(&state.lang),
        note: owned(&state.note),
        created_by: owned(&state.created_by),
        client: owned(&state.client),
        origin: state.origin.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SeenShare;

    fn seen(uses: u64) -> ShareState {
        let mut state = ShareState::seen(&SeenShare {
            id: "s",
            case: "C",
            scope: "read",
            issued_at: 100,
            expires_at: 200,
            email: None,
            lang: None,
        });
        state.uses = uses;
        state
    }

    fn status(
        state: Option<ShareState>,
        revoked: Option<i64>,
        cut: Option<i64>,
        now: i64,
    ) -> ShareView {
        describe(
            Known {
                id: "s",
                state,
                revoked_at: revoked,
                case_not_before: cut,
            },
            now,
        )
    }

    #[test]
    fn an_unused_share_is_pending_with_its_remaining_time() {
        let view = status(Some(seen(0)), None, None, 150);
        assert_eq!(view.status, ShareStatus::Pending);
        assert_eq!(view.remaining_seconds, 50);
    }

    #[test]
    fn a_used_share_is_active() {
        assert_eq!(
            status(Some(seen(1)), None, None, 150).status,
            ShareStatus::Active
        );
    }

    #[test]
    fn a_share_at_its_expiry_is_expired_with_nothing_remaining() {
        let view = status(Some(seen(1)), None, None, 200);
        assert_eq!(view.status, ShareStatus::Expired);
        assert_eq!(view.remaining_seconds, 0);
    }

    #[test]
    fn revoked_wins_over_expired() {
        let view = status(Some(seen(1)), Some(120), None, 300);
        assert_eq!(view.status, ShareStatus::Revoked);
        assert_eq!(view.revoked_at, Some(120));
    }

    #[test]
    fn a_case_cut_off_revokes_only_shares_issued_up_to_it() {
        assert_eq!(
            status(Some(seen(0)), None, Some(100), 150).status,
            ShareStatus::Revoked
        );
        assert_eq!(
            status(Some(seen(0)), None, Some(99), 150).status,
            ShareStatus::Pending
        );
    }

    #[test]
    fn an_id_revoked_before_it_was_seen_has_no_case() {
        let view = status(None, Some(5), None, 10);
        assert_eq!(view.status, ShareStatus::Revoked);
        assert_eq!(view.case, None);
        assert_eq!(view.origin, "link");
        assert_eq!(view.remaining_seconds, 0);
    }
}
