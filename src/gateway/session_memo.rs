//! The guest cookie a connection last presented, already opened. A browser sends the same cookie
//! with every request of a page, on the same connection; remembering the opened session spares
//! each of those requests the base64, the MAC and the share's header values.
//!
//! What the memo does not change: the cookie must still be one our names find (`session_cookies.rs`),
//! its expiry is compared with the clock on every request, and revocation, verification and the
//! policy are checked after authentication as before. Only the work of opening the same bytes
//! again under the same keys is skipped, and "the same" is decided by comparing the whole value in
//! constant time, under the very key ring (by its serial number: a reload makes a new one) that
//! opened it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::constant_time::same_bytes;
use crate::pages::Lang;
use crate::proxy::request::ShareIdentity;
use crate::share::{Guest, KeyRing};

/// A guest cookie opened and the header values that speak for its share upstream.
#[derive(Debug)]
pub struct GuestSession {
    pub guest: Guest,
    pub identity: ShareIdentity,
    /// The page language of the share's `lang`, read once: every request of the session learns
    /// it, in case a refusal has to be worded in it.
    pub lang: Option<Lang>,
    /// The last second in which a request of this session recorded the share's activity.
    activity_second: AtomicI64,
}

impl GuestSession {
    pub fn new(guest: Guest, identity: ShareIdentity) -> GuestSession {
        GuestSession {
            lang: guest.lang.as_deref().and_then(Lang::from_tag),
            guest,
            identity,
            activity_second: AtomicI64::new(i64::MIN),
        }
    }

    /// Whether this is the session's first request in second `now`. A share's last use is kept
    /// to the second, so recording it once a second loses nothing, and the other requests of a
    /// page skip the store's three lookups.
    pub fn first_request_in(&self, now: i64) -> bool {
        // Read first: most requests fall in a second already recorded, and a plain read spares
        // them the locked instruction of a swap (a full barrier, about 20 cycles).
        self.activity_second.load(Ordering::Relaxed) != now
            && self.activity_second.swap(now, Ordering::Relaxed) != now
    }
}

struct Remembered {
    /// The serial number of the ring that opened the cookie. A number rather than the ring
    /// itself: holding an `Arc` took a locked increment (and later a decrement) on every
    /// connection's first request, and a number is never reused as an address can be.
    ring: u64,
    cookie: Box<[u8]>,
    session: Arc<GuestSession>,
}

/// One connection's memo (shared by its requests, HTTP/2 streams included).
#[derive(Default)]
pub struct SessionMemo {
    last: Mutex<Option<Remembered>>,
}

impl std::fmt::Debug for SessionMemo {
    /// Says whether a session is remembered, never the cookie.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remembers = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        f.debug_struct("SessionMemo")
            .field("remembers", &remembers)
            .finish()
    }
}

impl SessionMemo {
    /// The session `cookie` opened to under `keys`, if it is the last one remembered.
    pub(super) fn recall(&self, keys: &KeyRing, cookie: &[u8]) -> Option<Arc<GuestSession>> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let remembered = last.as_ref()?;
        let same = remembered.ring == keys.serial() && same_bytes(&remembered.cookie, cookie);
        same.then(|| Arc::clone(&remembered.session))
    }

    /// Remembers the session `cookie` (its bytes as the client sent them) opened to under `keys`.
    pub(super) fn remember(&self, keys: &KeyRing, cookie: &[u8], session: &Arc<GuestSession>) {
        let remembered = Remembered {
            ring: keys.serial(),
            cookie: cookie.into(),
            session: Arc::clone(session),
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(remembered);
    }

    /// Lets go of the remembered session: an idle connection keeps as little as it can.
    pub fn forget(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::Secret;

    fn ring(secret: &[u8]) -> Arc<KeyRing> {
        let secrets = vec![("k1".to_owned(), Secret::from_bytes(secret.to_vec()))];
        Arc::new(KeyRing::new("k1", secrets).unwrap())
    }

    fn session() -> Arc<GuestSession> {
        session_in(None)
    }

    fn session_in(lang: Option<&str>) -> Arc<GuestSession> {
        let guest = Guest {
            share_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            case: "42".into(),
            scope: "view".into(),
            lang: lang.map(str::to_owned),
            email: None,
            expires_at: 2_000_000_000,
            issued_at: 1_000_000_000,
            email_verified: false,
        };
        let identity = ShareIdentity::of(&guest).unwrap();
        Arc::new(GuestSession::new(guest, identity))
    }

    #[test]
    fn a_session_reads_its_share_s_language_once_as_a_page_language() {
        let cases = [
            (None, None),
            (Some("sv-SE"), Some(Lang::Sv)),
            (Some("EN"), Some(Lang::En)),
            (Some("de-CH"), None),
            (Some(""), None),
        ];
        for (tag, want) in cases {
            assert_eq!(session_in(tag).lang, want, "{tag:?}");
        }
    }

    #[test]
    fn activity_is_due_once_per_second() {
        let session = session();
        assert!(session.first_request_in(100));
        assert!(!session.first_request_in(100));
        assert!(session.first_request_in(101));
        assert!(!session.first_request_in(101));
    }

    #[test]
    fn recalls_only_the_same_cookie_under_the_same_ring_until_forgotten() {
        let (keys, other_keys) = (ring(&[7; 32]), ring(&[7; 32]));
        let memo = SessionMemo::default();
        assert!(memo.recall(&keys, b"v2.k1.a.b").is_none());
        memo.remember(&keys, b"v2.k1.a.b", &session());
        assert!(memo.recall(&keys, b"v2.k1.a.b").is_some());
        // Another value, a prefix of it, or the same value under a ring a reload built (even with
        // the same secrets): opened afresh.
        assert!(memo.recall(&keys, b"v2.k1.a.c").is_none());
        assert!(memo.recall(&keys, b"v2.k1.a.").is_none());
        assert!(memo.recall(&other_keys, b"v2.k1.a.b").is_none());
        assert!(
            !format!("{memo:?}").contains("v2.k1"),
            "Debug shows no cookie"
        );
        memo.forget();
        assert!(memo.recall(&keys, b"v2.k1.a.b").is_none());
    }
}
