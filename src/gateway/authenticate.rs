//! Turning the guest cookies a request carries into the one `GuestSession` it acts as.
//! Which cookies are ours, and their names, is `session_cookies.rs`.

use std::cmp::Reverse;
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
}

impl Gateway {
    /// The session a guest's request acts as. With one cookie (nearly every request), that one.
    /// With several (a browser given links to more than one case), the session whose scope
    /// allows this request, else (nothing allows it) the newest share's, so its refusal is the
    /// one the guest sees; with rules that name no case, the newest share allowed wins. Cookies
    /// that do not open are passed over while another does.
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
        };
        if let [only] = cookies.all() {
            return open_session(only, &self.keys, memo, now, true)
                .map(|session| Chosen {
                    cookie_name: only.name,
                    session,
                })
                .map_err(every_cookie);
        }
        let mut live = Vec::with_capacity(cookies.all().len());
        let mut first_error = None;
        for cookie in cookies.all() {
            match open_session(cookie, &self.keys, memo, now, false) {
                Ok(session) => live.push(Chosen {
                    cookie_name: cookie.name,
                    session,
                }),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if live.is_empty() {
            return Err(every_cookie(first_error.unwrap_or(GatewayError::NoSession)));
        }
        // Each case has one name, so two live sessions of one case mean a cookie this browser's
        // links did not set (or one of the old name): refused, as two of one name are.
        let cases_repeat = live.iter().enumerate().any(|(at, chosen)| {
            live[at + 1..]
                .iter()
                .any(|other| other.session.guest.case == chosen.session.guest.case)
        });
        if cases_repeat {
            return Err(every_cookie(GatewayError::DuplicateSession));
        }
        live.sort_by_key(|chosen| Reverse(chosen.session.guest.issued_at));
        let at = live
            .iter()
            .position(|chosen| {
                self.authorise(&chosen.session.guest, method, target)
                    .is_ok()
            })
            .unwrap_or(0);
        let chosen = live.swap_remove(at);
        if let Some(cookie) = cookies.all().iter().find(|c| c.name == chosen.cookie_name)
            && let Ok(value) = std::str::from_utf8(cookie.value)
        {
            memo.remember(&self.keys, value, &chosen.session);
        }
        Ok(chosen)
    }
}

/// One cookie's session: from the connection's `memo` when it holds these very bytes (see
/// `session_memo.rs`), else opened, with the share's header values, and remembered if
/// `remember`.
fn open_session(
    cookie: &SessionCookie<'_>,
    keys: &Arc<KeyRing>,
    memo: &SessionMemo,
    now: i64,
    remember: bool,
) -> Result<Arc<GuestSession>, GatewayError> {
    // The cookie format is ASCII, so a value that is not text is malformed.
    let value = std::str::from_utf8(cookie.value)
        .map_err(|_| GatewayError::Session(CookieError::Malformed))?;
    let session = match memo.recall(keys, value) {
        Some(session) => session,
        None => {
            let guest = cookie::open(keys, value, now).map_err(GatewayError::Session)?;
            let identity = ShareIdentity::of(&guest).map_err(GatewayError::Rewrite)?;
            let session = Arc::new(GuestSession::new(guest, identity));
            if remember {
                memo.remember(keys, value, &session);
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
    let value = std::str::from_utf8(cookie.value)
        .map_err(|_| GatewayError::Session(CookieError::Malformed))?;
    cookie::open(keys, value, now).map_err(GatewayError::Session)
}
