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
            let session = Arc::new(GuestSession::new(guest, identity));
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
    // Only our value has to be text; the cookie format is ASCII, so anything else is malformed.
    found
        .map(|value| {
            std::str::from_utf8(value).map_err(|_| GatewayError::Session(CookieError::Malformed))
        })
        .transpose()
}

/// Whether the request carries any cookie of our name, valid or not, without opening it.
pub fn carries_session_cookie(headers: &HeaderMap, cookie_name: &str) -> bool {
    cookies_named(headers, cookie_name).next().is_some()
}

/// The values of every cookie called `cookie_name`, across all `Cookie` headers. Read as bytes:
/// the header holds every cookie of the app's domain, and checking all of it is text only to find
/// ours was a thousand instructions per request.
fn cookies_named<'h>(
    headers: &'h HeaderMap,
    cookie_name: &'h str,
) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|header_value| header_value.as_bytes().split(|&byte| byte == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let equals = pair.iter().position(|&byte| byte == b'=')?;
            Some((&pair[..equals], &pair[equals + 1..]))
        })
        .filter(move |(name, _)| name.trim_ascii() == cookie_name.as_bytes())
        .map(|(_, value)| value.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_cookies(lines: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(header::COOKIE, HeaderValue::from_bytes(line).unwrap());
        }
        headers
    }

    #[test]
    fn ours_is_found_among_the_apps_cookies_in_any_line() {
        let headers = with_cookies(&[b"theme=dark; lang=sv", b" cg_guest = v2.k.p.t ;x=1"]);
        assert_eq!(the_cookie(&headers, "cg_guest").unwrap(), Some("v2.k.p.t"));
        assert!(carries_session_cookie(&headers, "cg_guest"));
    }

    #[test]
    fn a_cookie_whose_name_only_contains_ours_is_not_ours() {
        let headers = with_cookies(&[b"xcg_guest=a; cg_guestx=b; cg_guest"]);
        assert_eq!(the_cookie(&headers, "cg_guest").unwrap(), None);
        assert!(!carries_session_cookie(&headers, "cg_guest"));
    }

    #[test]
    fn two_of_ours_are_refused_even_on_separate_lines() {
        let headers = with_cookies(&[b"cg_guest=a", b"other=1; cg_guest=b"]);
        assert!(matches!(
            the_cookie(&headers, "cg_guest"),
            Err(GatewayError::DuplicateSession)
        ));
    }

    #[test]
    fn another_cookies_bytes_do_not_hide_ours_and_ours_must_be_text() {
        let headers = with_cookies(&[b"app=caf\xc3\xa9\xff; cg_guest=v2.k.p.t"]);
        assert_eq!(the_cookie(&headers, "cg_guest").unwrap(), Some("v2.k.p.t"));
        let headers = with_cookies(&[b"cg_guest=v2.\xff"]);
        assert!(matches!(
            the_cookie(&headers, "cg_guest"),
            Err(GatewayError::Session(CookieError::Malformed))
        ));
    }
}
