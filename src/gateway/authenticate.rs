//! Turning the guest cookies a request carries into the one `GuestSession` it acts as.
//! Which cookies are ours, and their names, is `session_cookies.rs`.

use std::sync::Arc;

use http::Method;

use super::Gateway;
use super::error::GatewayError;
use super::session_cookies::{SessionCookie, SessionCookies};
use super::session_memo::{GuestSession, SessionMemo};
use crate::policy::CanonicalTarget;
use crate::proxy::request::ShareIdentity;
use crate::share::{CookieError, Guest, KeyRing, cookie};

/// A session the request path chose, and the cookie it came from (which a refusal that ends the
/// session clears).
pub struct Chosen<'h> {
    pub cookie_name: &'h str,
    pub session: Arc<GuestSession>,
}

/// Why no session could be chosen, and which of our cookies can never work again.
pub struct NotChosen {
    pub error: GatewayError,
    pub dead_cookies: Vec<String>,
    /// The language of the newest share, when the refusal is about none of them (nothing any
    /// session allows): the refusal is worded in it.
    pub lang: Option<String>,
}

impl Gateway {
    /// The session a guest's request acts as. With one cookie (nearly every request), that one.
    /// With several (a browser given links to more than one case): of the sessions whose scope
    /// allows the request, one whose share is neither revoked nor waiting for its address, the
    /// newest share first (rules that name no case, such as `/static/**`, are allowed by all).
    /// When none allows it, the request is not allowed, and about no share in particular.
    /// Cookies that do not open are passed over while another does; two that do, of one name or
    /// of one case, are refused: this browser's links set one per case.
    pub(super) fn choose_session<'h>(
        &self,
        cookies: &SessionCookies<'h>,
        method: &Method,
        target: &CanonicalTarget<'_>,
        memo: &SessionMemo,
        now: i64,
    ) -> Result<Chosen<'h>, NotChosen> {
        let every_cookie = |error| NotChosen {
            error,
            dead_cookies: cookies.all().iter().map(|c| c.name.to_owned()).collect(),
            lang: None,
        };
        if let [only] = cookies.all() {
            return open_session(only, &self.keys, memo, now, true)
                .map(|session| Chosen {
                    cookie_name: only.name,
                    session,
                })
                .map_err(every_cookie);
        }
        let mut live: Vec<(&SessionCookie<'h>, Arc<GuestSession>)> = Vec::new();
        let mut first_error = None;
        for cookie in cookies.all() {
            match open_session(cookie, &self.keys, memo, now, false) {
                Ok(session) => live.push((cookie, session)),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if live.is_empty() {
            return Err(every_cookie(first_error.unwrap_or(GatewayError::NoSession)));
        }
        let repeated = live.iter().enumerate().any(|(at, (cookie, session))| {
            live[at + 1..].iter().any(|(other_cookie, other)| {
                other_cookie.name == cookie.name || other.guest.case == session.guest.case
            })
        });
        if repeated {
            return Err(every_cookie(GatewayError::DuplicateSession));
        }
        let best = live
            .iter()
            .enumerate()
            .filter(|(_, (_, session))| self.authorise(&session.guest, method, target).is_ok())
            .max_by_key(|(_, (_, session))| {
                let guest = &session.guest;
                (self.in_good_standing(guest), guest.issued_at)
            })
            .map(|(at, _)| at);
        let Some(at) = best else {
            let newest = live
                .iter()
                .max_by_key(|(_, session)| session.guest.issued_at);
            return Err(NotChosen {
                error: GatewayError::NotAllowed,
                dead_cookies: Vec::new(),
                lang: newest.and_then(|(_, session)| session.guest.lang.clone()),
            });
        };
        let (cookie, session) = live.swap_remove(at);
        memo.remember(&self.keys, cookie.value, &session);
        Ok(Chosen {
            cookie_name: cookie.name,
            session,
        })
    }

    /// Whether a guest's share may be served as it is: not revoked (nor its case), its address
    /// proven if its scope asks for that. Only ranks sessions; `admit` checks both as always.
    fn in_good_standing(&self, guest: &Guest) -> bool {
        self.store
            .revocation(&guest.share_id, &guest.case, guest.issued_at)
            .is_none()
            && !self.needs_verification(guest)
    }
}

/// One cookie's session: from the connection's `memo` when it holds these very bytes (see
/// `session_memo.rs`), else opened, with the share's header values, and remembered if
/// `remember`.
fn open_session(
    cookie: &SessionCookie<'_>,
    keys: &KeyRing,
    memo: &SessionMemo,
    now: i64,
    remember: bool,
) -> Result<Arc<GuestSession>, GatewayError> {
    let session = match memo.recall(keys, cookie.value) {
        Some(session) => session,
        None => {
            let guest = cookie::open(keys, cookie.value, now).map_err(GatewayError::Session)?;
            let identity = ShareIdentity::of(&guest).map_err(GatewayError::Rewrite)?;
            let session = Arc::new(GuestSession::new(guest, identity));
            if remember {
                memo.remember(keys, cookie.value, &session);
            }
            session
        }
    };
    // `open` checked it too; a remembered session has to be checked on every request.
    if session.guest.expires_at <= now {
        return Err(GatewayError::Session(CookieError::Expired));
    }
    Ok(session)
}

/// Every one of our cookies that opens, for the link exchange and the verification routes: they
/// read a guest's cookies but forward nothing, so neither the memo nor the header values are
/// needed.
pub fn open_guest_cookies<'h>(
    cookies: &SessionCookies<'h>,
    keys: &KeyRing,
    now: i64,
) -> Vec<(&'h str, Guest)> {
    cookies
        .all()
        .iter()
        .filter_map(|cookie| Some((cookie.name, open_guest(cookie, keys, now).ok()?)))
        .collect()
}

/// One of our cookies opened, without the memo or the header values.
pub fn open_guest(
    cookie: &SessionCookie<'_>,
    keys: &KeyRing,
    now: i64,
) -> Result<Guest, GatewayError> {
    cookie::open(keys, cookie.value, now).map_err(GatewayError::Session)
}
