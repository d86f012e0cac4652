//! Finding the guest cookie among the request's cookies and turning it into a `Guest`.

use std::sync::Arc;

use http::HeaderMap;
use http::header;

use super::error::GatewayError;
use super::session_memo::{GuestSession, SessionMemo};
use crate::proxy::request::ShareIdentity;
use crate::share::{CookieError, KeyRing, cookie};

/// The result of looking for a share session on a request.
pub enum Session {
    /// No cookie of our name: not a guest (passthrough or refusal decides what happens next).
    Absent,
    Guest(Arc<GuestSession>),
}

/// Reads our cookie from every `Cookie` header. Exactly one is accepted: two cookies of our name
/// (one may have been planted by a sibling domain) are refused rather than guessed between. The
/// connection's `memo`, on the request path, spares opening the cookie it opened last again (see
/// `session_memo.rs`).
pub fn authenticate(
    headers: &HeaderMap,
    cookie_name: &str,
    keys: &Arc<KeyRing>,
    memo: Option<&SessionMemo>,
    now: i64,
) -> Result<Session, GatewayError> {
    let mut found: Option<&str> = None;
    for value in cookies_named(headers, cookie_name) {
        if found.is_some() {
            return Err(GatewayError::DuplicateSession);
        }
        found = Some(value);
    }
    let Some(value) = found else {
        return Ok(Session::Absent);
    };
    let session = match memo.and_then(|memo| memo.recall(keys, value)) {
        Some(session) => session,
        None => {
            let guest = cookie::open(keys, value, now).map_err(GatewayError::Session)?;
            let identity = ShareIdentity::of(&guest).map_err(GatewayError::Rewrite)?;
            let session = Arc::new(GuestSession { guest, identity });
            if let Some(memo) = memo {
                memo.remember(keys, value, &session);
            }
            session
        }
    };
    // `open` checked it too; a remembered session has to be checked on every request.
    if session.guest.expires_at <= now {
        return Err(GatewayError::Session(CookieError::Expired));
    }
    Ok(Session::Guest(session))
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
