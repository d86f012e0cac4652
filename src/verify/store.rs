//! Pending codes and abuse counters, behind [`CodeStore`] so a shared backend (Redis, issue 6) can
//! replace the in-process [`MemoryCodeStore`].
//!
//! Every operation that checks a limit also counts against it, in one step under one lock, so no
//! number of parallel requests gets more than the limit through. A guess is counted *before* it is
//! compared: 200 parallel guesses at one code get at most `max_attempts` comparisons.
//!
//! The memory store forgets everything on restart: a pending code is lost (the guest asks for a
//! new one) and counters start again, which a restart-happy attacker could use; the per-code and
//! per-share limits still bound what one restart buys. Memory is bounded: entries expire an hour
//! after their last event, and each map has a cap beyond which new shares or addresses are refused
//! (logged), never silently forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::warn;

use super::client::ClientKey;
use super::code::CodeMac;
use super::limits::{Limit, Limited, VerifySettings};

const HOUR: i64 = 3600;

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

/// Codes and counters. Times are unix seconds, passed in so tests need no clock.
pub trait CodeStore: Send + Sync {
    /// Checks the cooldown and the hourly limits for sending a code to `share_id` from `client`,
    /// and counts the send if they allow it.
    fn reserve_send(
        &self,
        share_id: &str,
        client: ClientKey,
        now: i64,
        settings: &VerifySettings,
    ) -> Result<(), Limited>;

    /// Makes `code` the share's only pending code, with no tries used.
    fn put_code(&self, share_id: &str, code: PendingCode);

    /// Forgets the share's pending code if it is still `mac` (its mail could not be sent).
    fn drop_code(&self, share_id: &str, mac: &CodeMac);

    /// Counts one guess against the share's code and the client's failures, then hands out the
    /// code to compare with; refuses without counting when there is nothing to compare.
    fn begin_attempt(
        &self,
        share_id: &str,
        client: ClientKey,
        now: i64,
        settings: &VerifySettings,
    ) -> Result<Attempt, AttemptRefusal>;

    /// The guess was right: the code is used up (if still `mac`), and the guess no longer counts
    /// as the client's failure.
    fn code_used(&self, share_id: &str, client: ClientKey, mac: &CodeMac);

    fn status(&self, share_id: &str, now: i64, settings: &VerifySettings) -> CodeStatus;

    /// Seconds until a send for `share_id` from `client` would be allowed; 0 when it would be now.
    fn next_send_in(
        &self,
        share_id: &str,
        client: ClientKey,
        now: i64,
        settings: &VerifySettings,
    ) -> i64;
}

/// The in-process store; see the module doc for what a restart forgets.
pub struct MemoryCodeStore {
    shares: Mutex<HashMap<String, ShareEntry>>,
    clients: Mutex<HashMap<ClientKey, ClientEntry>>,
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

impl CodeStore for MemoryCodeStore {
    fn reserve_send(
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

    fn put_code(&self, share_id: &str, code: PendingCode) {
        let mut shares = self.shares();
        // reserve_send made the entry; should it have expired since, this makes it again.
        let share = shares.entry(share_id.to_owned()).or_default();
        share.code = Some(StoredCode { code, attempts: 0 });
    }

    fn drop_code(&self, share_id: &str, mac: &CodeMac) {
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

    fn begin_attempt(
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

    fn code_used(&self, share_id: &str, client: ClientKey, mac: &CodeMac) {
        let mut shares = self.shares();
        if let Some(share) = shares.get_mut(share_id)
            && share
                .code
                .as_ref()
                .is_some_and(|stored| &stored.code.mac == mac)
        {
            share.code = None;
        }
        drop(shares);
        if let Some(address) = self.clients().get_mut(&client) {
            address.failures.pop_newest();
        }
    }

    fn status(&self, share_id: &str, now: i64, settings: &VerifySettings) -> CodeStatus {
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

    fn next_send_in(
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    const NOW: i64 = 1_750_000_000;
    const CLIENT: ClientKey = ClientKey::V4([192, 0, 2, 1]);
    const OTHER_CLIENT: ClientKey = ClientKey::V4([192, 0, 2, 2]);

    fn settings() -> VerifySettings {
        VerifySettings::default()
    }

    fn pending(tag: u8, expires_at: i64) -> PendingCode {
        PendingCode {
            mac: CodeMac {
                kid: "k1".into(),
                tag: [tag; 32],
            },
            expires_at,
        }
    }

    #[test]
    fn sends_wait_for_the_cooldown_and_stop_at_the_hourly_limit() {
        let store = MemoryCodeStore::new();
        let s = settings();
        assert_eq!(store.reserve_send("A", CLIENT, NOW, &s), Ok(()));
        assert_eq!(
            store.reserve_send("A", CLIENT, NOW + 10, &s),
            Err(Limited::new(Limit::Cooldown, 20))
        );
        assert_eq!(store.next_send_in("A", CLIENT, NOW + 10, &s), 20);
        for i in 1..5 {
            assert_eq!(store.reserve_send("A", CLIENT, NOW + 30 * i, &s), Ok(()));
        }
        assert_eq!(
            store.reserve_send("A", CLIENT, NOW + 600, &s),
            Err(Limited::new(Limit::CodesPerShare, 3000))
        );
        // Another share is counted on its own.
        assert_eq!(store.reserve_send("B", CLIENT, NOW + 600, &s), Ok(()));
        // An hour after the first send, one more fits.
        assert_eq!(store.reserve_send("A", CLIENT, NOW + HOUR, &s), Ok(()));
    }

    #[test]
    fn one_address_sends_at_most_its_hourly_limit_across_shares() {
        let store = MemoryCodeStore::new();
        let s = VerifySettings {
            max_sends_per_address_per_hour: 3,
            ..settings()
        };
        for share in ["A", "B", "C"] {
            assert_eq!(store.reserve_send(share, CLIENT, NOW, &s), Ok(()));
        }
        assert_eq!(
            store.reserve_send("D", CLIENT, NOW + 5, &s),
            Err(Limited::new(Limit::SendsPerAddress, HOUR - 5))
        );
        assert_eq!(store.reserve_send("D", OTHER_CLIENT, NOW + 5, &s), Ok(()));
    }

    #[test]
    fn a_code_allows_max_attempts_guesses_then_none() {
        let store = MemoryCodeStore::new();
        let s = settings();
        store.put_code("A", pending(1, NOW + 300));
        for left in (0..5).rev() {
            let attempt = store.begin_attempt("A", CLIENT, NOW, &s).unwrap();
            assert_eq!(attempt.attempts_left, left);
        }
        assert_eq!(
            store.begin_attempt("A", CLIENT, NOW, &s).unwrap_err(),
            AttemptRefusal::Exhausted
        );
        assert_eq!(store.status("A", NOW, &s), CodeStatus::Exhausted);
        // A new code starts with every try again.
        store.put_code("A", pending(2, NOW + 300));
        assert_eq!(
            store.status("A", NOW, &s),
            CodeStatus::Pending { attempts_left: 5 }
        );
    }

    #[test]
    fn expired_used_and_missing_codes_are_never_compared() {
        let store = MemoryCodeStore::new();
        let s = settings();
        assert_eq!(
            store.begin_attempt("A", CLIENT, NOW, &s).unwrap_err(),
            AttemptRefusal::NoCode
        );
        store.put_code("A", pending(1, NOW + 300));
        assert_eq!(
            store.begin_attempt("A", CLIENT, NOW + 300, &s).unwrap_err(),
            AttemptRefusal::Expired
        );
        assert_eq!(store.status("A", NOW + 300, &s), CodeStatus::Expired);
        let attempt = store.begin_attempt("A", CLIENT, NOW, &s).unwrap();
        store.code_used("A", CLIENT, &attempt.code.mac);
        assert_eq!(
            store.begin_attempt("A", CLIENT, NOW, &s).unwrap_err(),
            AttemptRefusal::NoCode
        );
    }

    #[test]
    fn dropping_a_code_spares_a_newer_one() {
        let store = MemoryCodeStore::new();
        let s = settings();
        store.put_code("A", pending(1, NOW + 300));
        store.put_code("A", pending(2, NOW + 300));
        store.drop_code("A", &pending(1, 0).mac);
        assert!(matches!(
            store.status("A", NOW, &s),
            CodeStatus::Pending { .. }
        ));
        store.drop_code("A", &pending(2, 0).mac);
        assert_eq!(store.status("A", NOW, &s), CodeStatus::NoCode);
    }

    #[test]
    fn an_address_that_keeps_guessing_is_stopped_across_shares_and_codes() {
        let store = MemoryCodeStore::new();
        let s = VerifySettings {
            max_failures_per_address_per_hour: 7,
            ..settings()
        };
        for share in ["A", "B"] {
            store.put_code(share, pending(1, NOW + 300));
        }
        for _ in 0..5 {
            store.begin_attempt("A", CLIENT, NOW, &s).unwrap();
        }
        for _ in 0..2 {
            store.begin_attempt("B", CLIENT, NOW, &s).unwrap();
        }
        assert_eq!(
            store.begin_attempt("B", CLIENT, NOW + 1, &s).unwrap_err(),
            AttemptRefusal::Limited(Limited::new(Limit::FailuresPerAddress, HOUR - 1))
        );
        // The refused guess used none of share B's tries.
        assert_eq!(
            store.status("B", NOW, &s),
            CodeStatus::Pending { attempts_left: 3 }
        );
        assert!(store.begin_attempt("B", OTHER_CLIENT, NOW, &s).is_ok());
    }

    #[test]
    fn a_right_guess_does_not_count_as_a_failure() {
        let store = MemoryCodeStore::new();
        let s = VerifySettings {
            max_failures_per_address_per_hour: 1,
            ..settings()
        };
        for round in 0..3 {
            store.put_code("A", pending(round, NOW + 300));
            let attempt = store.begin_attempt("A", CLIENT, NOW, &s).unwrap();
            store.code_used("A", CLIENT, &attempt.code.mac);
        }
    }

    #[test]
    fn parallel_guesses_get_at_most_max_attempts_comparisons() {
        let store = Arc::new(MemoryCodeStore::new());
        let s = Arc::new(settings());
        store.put_code("A", pending(1, NOW + 300));
        let granted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..200)
            .map(|i| {
                let (store, s, granted) = (store.clone(), s.clone(), granted.clone());
                let client = ClientKey::V4([10, 0, (i / 256) as u8, (i % 256) as u8]);
                std::thread::spawn(move || {
                    if store.begin_attempt("A", client, NOW, &s).is_ok() {
                        granted.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(granted.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_full_store_refuses_new_entries_until_old_ones_expire() {
        let store = MemoryCodeStore::with_caps(2, 100);
        let s = VerifySettings {
            resend_cooldown: Duration::ZERO,
            ..settings()
        };
        assert!(store.reserve_send("A", CLIENT, NOW, &s).is_ok());
        assert!(store.reserve_send("B", CLIENT, NOW, &s).is_ok());
        assert_eq!(
            store.reserve_send("C", CLIENT, NOW, &s),
            Err(Limited::new(Limit::StoreFull, 60))
        );
        // Known shares are still served.
        assert!(store.reserve_send("A", CLIENT, NOW + 1, &s).is_ok());
        // An hour later A and B have nothing left to remember and make room.
        assert!(store.reserve_send("C", CLIENT, NOW + HOUR + 2, &s).is_ok());
        assert_eq!(store.shares().len(), 1);
    }
}
