//! How soon an invitation may be sent again for the same share: at most one mail per share per
//! [`INVITE_COOLDOWN`], so a retrying client (or a stuck button) cannot flood a recipient.
//! Kept in memory only: after a restart the first resend is allowed, which is harmless.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const INVITE_COOLDOWN: Duration = Duration::from_secs(30);

/// The last send (or send in progress) per share id.
#[derive(Default)]
pub struct InviteCooldown {
    last_sent: Mutex<HashMap<String, Instant>>,
}

/// A send that was allowed; [`InviteCooldown::release`] it if the mail was not sent, so the
/// caller may try again at once.
#[must_use]
pub struct Reservation {
    share_id: String,
    at: Instant,
    previous: Option<Instant>,
}

impl Reservation {
    pub fn share_id(&self) -> &str {
        &self.share_id
    }
}

impl InviteCooldown {
    /// Records a send of `share_id` at `now`, or says how long until one is allowed. Reserving
    /// before sending makes two parallel resends send one mail, not two.
    pub fn reserve(&self, share_id: &str, now: Instant) -> Result<Reservation, Duration> {
        let mut last_sent = self.lock();
        let previous = last_sent.get(share_id).copied();
        if let Some(previous) = previous {
            let since = now.saturating_duration_since(previous);
            if since < INVITE_COOLDOWN {
                return Err(INVITE_COOLDOWN - since);
            }
        }
        // Entries past the cooldown decide nothing; dropping them bounds the map by the sends
        // of the last 30 seconds.
        last_sent.retain(|_, at| now.saturating_duration_since(*at) < INVITE_COOLDOWN);
        last_sent.insert(share_id.to_owned(), now);
        Ok(Reservation {
            share_id: share_id.to_owned(),
            at: now,
            previous,
        })
    }

    /// Records a send of a share that was just created (it cannot have an earlier one).
    pub fn reserve_new(&self, share_id: &str, now: Instant) -> Reservation {
        let mut last_sent = self.lock();
        last_sent.retain(|_, at| now.saturating_duration_since(*at) < INVITE_COOLDOWN);
        let previous = last_sent.insert(share_id.to_owned(), now);
        Reservation {
            share_id: share_id.to_owned(),
            at: now,
            previous,
        }
    }

    /// The mail was not sent: the share's last send is what it was before the reservation.
    pub fn release(&self, reservation: Reservation) {
        let mut last_sent = self.lock();
        if last_sent.get(&reservation.share_id) == Some(&reservation.at) {
            match reservation.previous {
                Some(previous) => last_sent.insert(reservation.share_id, previous),
                None => last_sent.remove(&reservation.share_id),
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // The map stays consistent even if a holder panicked: every update is one insert/remove.
        self.last_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_send_within_the_cooldown_is_refused_with_the_time_left() {
        let cooldown = InviteCooldown::default();
        let start = Instant::now();
        let _first = cooldown.reserve("share-a", start).unwrap();
        let wait = cooldown
            .reserve("share-a", start + Duration::from_secs(10))
            .err()
            .unwrap();
        assert_eq!(wait, Duration::from_secs(20));
        assert!(
            cooldown.reserve("share-b", start).is_ok(),
            "other shares are not held up"
        );
        assert!(cooldown.reserve("share-a", start + INVITE_COOLDOWN).is_ok());
    }

    #[test]
    fn a_new_shares_send_starts_its_cooldown() {
        let cooldown = InviteCooldown::default();
        let start = Instant::now();
        let sent = cooldown.reserve_new("share-a", start);
        assert_eq!(sent.share_id(), "share-a");
        assert!(
            cooldown
                .reserve("share-a", start + Duration::from_secs(1))
                .is_err()
        );
        cooldown.release(sent);
        assert!(
            cooldown.reserve("share-a", start).is_ok(),
            "a failed send holds nothing"
        );
    }

    #[test]
    fn a_released_reservation_allows_a_retry_at_once() {
        let cooldown = InviteCooldown::default();
        let start = Instant::now();
        let first = cooldown.reserve("share-a", start).unwrap();
        cooldown.release(first);
        let second = cooldown.reserve("share-a", start).unwrap();
        let _ = second;
        assert!(cooldown.reserve("share-a", start).is_err());
    }

    #[test]
    fn releasing_restores_the_send_before_it() {
        let cooldown = InviteCooldown::default();
        let start = Instant::now();
        let _sent = cooldown.reserve("share-a", start).unwrap();
        let retry = cooldown
            .reserve("share-a", start + INVITE_COOLDOWN)
            .unwrap();
        cooldown.release(retry);
        assert!(
            cooldown
                .reserve("share-a", start + INVITE_COOLDOWN + Duration::from_secs(1))
                .is_ok(),
            "the earlier send is past its cooldown"
        );
    }
}
