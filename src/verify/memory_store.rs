//! [`MemoryCodeStore`]: pending codes, abuse counters and invitation cooldowns of one gateway
//! process, under a lock each (see [`super::store`] for what every operation guarantees).
//!
//! The memory store forgets everything on restart: a pending code is lost (the guest asks for a
//! new one) and counters start again, which a restart-happy attacker could use; the per-code and
//! per-share limits still bound what one restart buys. Memory is bounded: entries expire an hour
//! after their last event, and each map has a cap beyond which new shares or addresses are refused
//! (logged), never silently forgotten. Several replicas need [`super::RedisCodeStore`] instead.

use std::collections::{HashMap, VecDeque};
use std::future::ready;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::warn;

use super::client::ClientKey;
use super::code::CodeMac;
use super::limits::{Limit, Limited, VerifySettings};
use super::store::{
    Attempt, AttemptRefusal, CodeStatus, CodeStore, InviteReservation, PendingCode, StoreFuture,
    whole_secs,
};

const HOUR: i64 = 3600;

/// The in-process store; see the module doc for what a restart forgets.
pub struct MemoryCodeStore {
    shares: Mutex<HashMap<String, ShareEntry>>,
    clients: Mutex<HashMap<ClientKey, ClientEntry>>,
    /// The last invitation mail per share id, while its cooldown runs.
    invites: Mutex<HashMap<String, i64>>,
    max_shares: usize,
    max_clients: usize,
}

#[derive(Default)]
struct ShareEntry {
    code: Option<StoredCode>,
    /// Times of this hour's sends, oldest first.
    sends: Window,
}

struct StoredCode {
    code: PendingCode,
    attempts: u32,
}

#[derive(Default)]
struct ClientEntry {
    sends: Window,
    failures: Window,
}

/// Event times within the last hour, oldest first. Never longer than the limit it counts for.
#[derive(Default)]
struct Window(VecDeque<i64>);

// === impl MemoryCodeStore ===

impl MemoryCodeStore {
    /// Shares and client addresses tracked at once. A share entry is a few hundred bytes, a client
    /// entry at most ~1 KiB with the default limits.
    pub const DEFAULT_MAX_SHARES: usize = 100_000;
    pub const DEFAULT_MAX_CLIENTS: usize = 50_000;

    pub fn new() -> MemoryCodeStore {
        MemoryCodeStore::with_caps(Self::DEFAULT_MAX_SHARES, Self::DEFAULT_MAX_CLIENTS)
    }

    pub fn with_caps(max_shares: usize, max_clients: usize) -> MemoryCodeStore {
        MemoryCodeStore {
            shares: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            invites: Mutex::new(HashMap::new()),
            max_shares,
            max_clients,
        }
    }

    fn shares(&self) -> MutexGuard<'_, HashMap<String, ShareEntry>> {
        // No code panics while holding the lock; should one ever, the counters stay usable.
        self.shares.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn clients(&self) -> MutexGuard<'_, HashMap<ClientKey, ClientEntry>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn invites(&self) -> MutexGuard<'_, HashMap<String, i64>> {
        self.invites.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryCodeStore {
    fn default() -> MemoryCodeStore {
        MemoryCodeStore::new()
    }
}

/// Makes room for a new key by dropping entries with nothing left to remember; `false` when the
/// map is still full.
fn make_room<K: Eq + std::hash::Hash + Clone, V>(
    map: &mut HashMap<K, V>,
    key: &K,
    cap: usize,
    is_stale: impl Fn(&mut V) -> bool,
    what: &str,
) -> bool {
    if map.contains_key(key) || map.len() < cap {
        return true;
    }
    map.retain(|_, entry| !is_stale(entry));
    if map.len() < cap {
        return true;
    }
    warn!(
        entries = map.len(),
        "verification store: {what} map is full; refusing new ones until entries expire"
    );
    false
}

impl ShareEntry {
    fn is_stale(&mut self, now: i64) -> bool {
        let code_gone = self
            .code
            .as_ref()
            .is_none_or(|stored| stored.code.expires_at + HOUR <= now);
        code_gone && self.sends.count(now) == 0
    }
}

impl ClientEntry {
    fn is_stale(&mut self, now: i64) -> bool {
        self.sends.count(now) == 0 && self.failures.count(now) == 0
    }
}

/// The operations, done at once under the store's locks; [`CodeStore`] hands out their results.
impl MemoryCodeStore {
    fn reserve_send_locked(
        &self,
        share_id: &str,
        client: ClientKey,
        now: i64,
        settings: &VerifySettings,
    ) -> Result<(), Limited> {
        let mut shares = self.shares();
        let mut clients = self.clients();
        let share_key = share_id.to_owned();
        if !make_room(
            &mut shares,
            &share_key,
            self.max_shares,
            |e| e.is_stale(now),
            "share",
        ) || !make_room(
            &mut clients,
            &client,
            self.max_clients,
            |e| e.is_stale(now),
            "client address",
        ) {
            return Err(Limited::new(Limit::StoreFull, 60));
        }
        let share = shares.entry(share_key).or_default();
        let address = clients.entry(client).or_default();
        if let Some(last) = share.sends.last() {
            let ready_at = last.saturating_add(settings.resend_cooldown_secs());
            if ready_at > now {
                return Err(Limited::new(Limit::Cooldown, ready_at - now));
            }
        }
        share
            .sends
            .check(now, settings.max_codes_per_hour, Limit::CodesPerShare)?;
        address.sends.check(
            now,
            settings.max_sends_per_address_per_hour,
            Limit::SendsPerAddress,
        )?;
        share.sends.push(now);
        address.sends.push(now);
        Ok(())
    }

    fn put_code_locked(&self, share_id: &str, code: PendingCode) {
        let mut shares = self.shares();
        // reserve_send made the entry; should it have expired since, this makes it again.
        let share = shares.entry(share_id.to_owned()).or_default();
        share.code = Some(StoredCode { code, attempts: 0 });
    }

    fn drop_code_locked(&self, share_id: &str, mac: &CodeMac) {
        let mut shares = self.shares();
        if let Some(share) = shares.get_mut(share_id)
            && share
                .code
                .as_ref()
                .is_some_and(|stored| &stored.code.mac == mac)
        {
            share.code = None;
        }
    }

    fn begin_attempt_locked(
        &self,
        share_id: &str,
        client: ClientKey,
        now: i64,
        settings: &VerifySettings,
    ) -> Result<Attempt, AttemptRefusal> {
        let mut shares = self.shares();
        let mut clients = self.clients();
        let stored = shares
            .get_mut(share_id)
            .and_then(|share| share.code.as_mut())
            .ok_or(AttemptRefusal::NoCode)?;
        if stored.code.expires_at <= now {
            return Err(AttemptRefusal::Expired);
        }
        if stored.attempts >= settings.max_attempts {
            return Err(AttemptRefusal::Exhausted);
        }
        if !make_room(
            &mut clients,
            &client,
            self.max_clients,
            |e| e.is_stale(now),
            "client address",
        ) {
            return Err(AttemptRefusal::Limited(Limited::new(Limit::StoreFull, 60)));
        }
        let address = clients.entry(client).or_default();
        address
            .failures
            .check(
                now,
                settings.max_failures_per_address_per_hour,
                Limit::FailuresPerAddress,
            )
            .map_err(AttemptRefusal::Limited)?;
        stored.attempts += 1;
        address.failures.push(now);
        Ok(Attempt {
            code: stored.code.clone(),
            attempts_left: settings.max_attempts - stored.attempts,
        })
    }

    fn code_used_locked(&self, share_id: &str, client: ClientKey, mac: &CodeMac) {
        self.drop_code_locked(share_id, mac);
        if let Some(address) = self.clients().get_mut(&client) {
            address.failures.pop_newest();
        }
    }

    fn status_locked(&self, share_id: &str, now: i64, settings: &VerifySettings) -> CodeStatus {
        let shares = self.shares();
        match shares.get(share_id).and_then(|share| share.code.as_ref()) {
            None => CodeStatus::NoCode,
            Some(stored) if stored.code.expires_at <= now => CodeStatus::Expired,
            Some(stored) if stored.attempts >= settings.max_attempts => CodeStatus::Exhausted,
            Some(stored) => CodeStatus::Pending {
                attempts_left: settings.max_attempts - stored.attempts,
            },
        }
    }

    fn next_send_in_locked(
        &self,
        share_id: &str,
        client: ClientKey,
        now: i64,
        settings: &VerifySettings,
    ) -> i64 {
        let mut wait = 0;
        if let Some(share) = self.shares().get_mut(share_id) {
            if let Some(last) = share.sends.last() {
                wait = wait.max(last.saturating_add(settings.resend_cooldown_secs()) - now);
            }
            wait = wait.max(share.sends.wait(now, settings.max_codes_per_hour));
        }
        if let Some(address) = self.clients().get_mut(&client) {
            wait = wait.max(
                address
                    .sends
                    .wait(now, settings.max_sends_per_address_per_hour),
            );
        }
        wait
    }

    fn reserve_invite_locked(
        &self,
        share_id: &str,
        now: i64,
        cooldown: i64,
    ) -> Result<InviteReservation, i64> {
        let mut invites = self.invites();
        if let Some(&previous) = invites.get(share_id) {
            let since = now.saturating_sub(previous);
            if since < cooldown {
                // A replica's clock behind ours can make `since` negative: never wait longer
                // than one cooldown.
                return Err((cooldown - since).clamp(1, cooldown));
            }
        }
        // Entries past the cooldown decide nothing; dropping them bounds the map by the sends
        // of the last cooldown.
        invites.retain(|_, at| now.saturating_sub(*at) < cooldown);
        invites.insert(share_id.to_owned(), now);
        Ok(InviteReservation {
            share_id: share_id.to_owned(),
            at: now,
        })
    }

    fn release_invite_locked(&self, reservation: &InviteReservation) {
        let mut invites = self.invites();
        if invites.get(&reservation.share_id) == Some(&reservation.at) {
            invites.remove(&reservation.share_id);
        }
    }
}

impl CodeStore for MemoryCodeStore {
    fn reserve_send<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, Result<(), Limited>> {
        answer(self.reserve_send_locked(share_id, client, now, settings))
    }

    fn put_code<'a>(
        &'a self,
        share_id: &'a str,
        code: PendingCode,
        _now: i64,
    ) -> StoreFuture<'a, ()> {
        self.put_code_locked(share_id, code);
        answer(())
    }

    fn drop_code<'a>(&'a self, share_id: &'a str, mac: &'a CodeMac) -> StoreFuture<'a, ()> {
        self.drop_code_locked(share_id, mac);
        answer(())
    }

    fn begin_attempt<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, Result<Attempt, AttemptRefusal>> {
        answer(self.begin_attempt_locked(share_id, client, now, settings))
    }

    fn code_used<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        mac: &'a CodeMac,
    ) -> StoreFuture<'a, ()> {
        self.code_used_locked(share_id, client, mac);
        answer(())
    }

    fn status<'a>(
        &'a self,
        share_id: &'a str,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, CodeStatus> {
        answer(self.status_locked(share_id, now, settings))
    }

    fn next_send_in<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, i64> {
        answer(self.next_send_in_locked(share_id, client, now, settings))
    }

    fn reserve_invite<'a>(
        &'a self,
        share_id: &'a str,
        now: i64,
        cooldown: Duration,
    ) -> StoreFuture<'a, Result<InviteReservation, i64>> {
        answer(self.reserve_invite_locked(share_id, now, whole_secs(cooldown)))
    }

    fn release_invite<'a>(&'a self, reservation: &'a InviteReservation) -> StoreFuture<'a, ()> {
        self.release_invite_locked(reservation);
        answer(())
    }
}

/// A memory store never fails and never waits: its answer is ready when the call returns.
fn answer<'a, T: Send + 'a>(value: T) -> StoreFuture<'a, T> {
    Box::pin(ready(Ok(value)))
}

// === impl Window ===

impl Window {
    /// Events in the hour up to `now`, forgetting older ones.
    fn count(&mut self, now: i64) -> usize {
        while self.0.front().is_some_and(|&at| at + HOUR <= now) {
            self.0.pop_front();
        }
        self.0.len()
    }

    /// Refuses when the hour already holds `limit` events, saying when the oldest drops out.
    fn check(&mut self, now: i64, limit: u32, which: Limit) -> Result<(), Limited> {
        match self.wait(now, limit) {
            0 => Ok(()),
            wait => Err(Limited::new(which, wait)),
        }
    }

    /// Seconds until one more event fits; 0 when it fits now.
    fn wait(&mut self, now: i64, limit: u32) -> i64 {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let count = self.count(now);
        if count < limit {
            return 0;
        }
        // The event that has to drop out before one more fits.
        self.0
            .get(count - limit)
            .map_or(1, |&at| (at + HOUR - now).max(1))
    }

    fn push(&mut self, now: i64) {
        self.0.push_back(now);
    }

    fn last(&self) -> Option<i64> {
        self.0.back().copied()
    }

    fn pop_newest(&mut self) {
        self.0.pop_back();
    }
}

#[cfg(test)]
mod tests {
    //! What every store does is tested once for both stores in `tests/code_store.rs`; here only
    //! what the memory store alone has: its caps.

    use super::*;

    const NOW: i64 = 1_750_000_000;
    const CLIENT: ClientKey = ClientKey::V4([192, 0, 2, 1]);

    #[test]
    fn a_full_store_refuses_new_entries_until_old_ones_expire() {
        let store = MemoryCodeStore::with_caps(2, 100);
        let s = VerifySettings {
            resend_cooldown: Duration::ZERO,
            ..VerifySettings::default()
        };
        assert!(store.reserve_send_locked("A", CLIENT, NOW, &s).is_ok());
        assert!(store.reserve_send_locked("B", CLIENT, NOW, &s).is_ok());
        assert_eq!(
            store.reserve_send_locked("C", CLIENT, NOW, &s),
            Err(Limited::new(Limit::StoreFull, 60))
        );
        // Known shares are still served.
        assert!(store.reserve_send_locked("A", CLIENT, NOW + 1, &s).is_ok());
        // An hour later A and B have nothing left to remember and make room.
        assert!(
            store
                .reserve_send_locked("C", CLIENT, NOW + HOUR + 2, &s)
                .is_ok()
        );
        assert_eq!(store.shares().len(), 1);
    }

    #[test]
    fn invitation_cooldowns_past_their_time_are_forgotten() {
        let store = MemoryCodeStore::new();
        for (i, share) in ["A", "B", "C"].into_iter().enumerate() {
            let _ = store.reserve_invite_locked(share, NOW + i as i64, 30);
        }
        let _ = store.reserve_invite_locked("D", NOW + 40, 30);
        assert_eq!(store.invites().len(), 1, "only D's cooldown still runs");
    }
}
