//! Finding the guest cookie among the request's cookies and turning it into a `Guest`.

use std::sync::Arc;

use http::HeaderMap;
use http::header;

use super::error::GatewayError;
use super::session_memo::{GuestSession, SessionMemo};
use crate::proxy::request::ShareIdentity;
use crate::share::{CookieError, Guest, KeyRing, cookie};

/// The result of looking for a share session on a request.
pub enum Session {
    /// No cookie of our name: not a guest (passthrough or refusal decides what happens next).
    Absent,
    Guest(Arc<GuestSession>),
}

/// The request path's guest: our one cookie (see [`the_cookie`]), opened together with the
/// share's header values, unless the connection's `memo` holds it from an earlier request (see
/// `session_memo.rs`).
pub fn authenticate(
    headers: &HeaderMap,
    cookie_name: &str,
    keys: &Arc<KeyRing>,
    memo: &SessionMemo,
    now: i64,
) -> Result<Session, GatewayError> {
    let Some(value) = the_cookie(headers, cookie_name)? else {
        return Ok(Session::Absent);
    };
    let session = match memo.recall(keys, value) {
        Some(session) => session,
        None => {
            let guest = cookie::open(keys, value, now).map_err(GatewayError::Session)?;
            let identity = ShareIdentity::of(&guest).map_err(GatewayError::Rewrite)?;
            let session = Arc::new(GuestSession { guest, identity });
            memo.remember(keys, value, &session);
            session
        }
    };
    // `open` checked it too; a remembered session has to be checked on every request.
    if session.guest.expires_at <= now {
        return Err(GatewayError::Session(CookieError::Expired));
    }
    Ok(Session::Guest(session))
}

/// Our one cookie, opened, for the link exchange and the verification routes: they read a
/// guest's cookie but forward nothing, so neither the memo nor the header values are needed.
pub fn open_guest_cookie(
    headers: &HeaderMap,
    cookie_name: &str,
    keys: &KeyRing,
    now: i64,
) -> Result<Option<Guest>, GatewayError> {
    the_cookie(headers, cookie_name)?
        .map(|value| cookie::open(keys, value, now).map_err(GatewayError::Session))
        .transpose()
}

/// Our cookie's value from every `Cookie` header. Exactly one is accepted: two cookies of our
/// name (one may have been planted by a sibling domain) are refused rather than guessed between.
fn the_cookie<'h>(
    headers: &'h HeaderMap,
    cookie_name: &'h str,
) -> Result<Option<&'h str>, GatewayError> {
    let mut found = None;
    for value in cookies_named(headers, cookie_name) {
        if found.is_some() {
            return Err(GatewayError::DuplicateSession);
        }
        found = Some(value);
    }
    Ok(found)
}

/// Whether the request carries any cookie of our name, valid or not, without opening it.
pub fn carries_session_cookie(headers: &HeaderMap, cookie_name: &str) -> bool {
    cookies_named(headers, cookie_name).next().is_some()
}

/// The values of every cookie called `cookie_name`, across all `Cookie` headers.
fn cookies_named<'h>(
    headers: &'h HeaderMap,
    cookie_name: &'h str,
) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|header_value| header_value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(name, _)| name.trim() == cookie_name)
        .map(|(_, value)| value.trim())
}
