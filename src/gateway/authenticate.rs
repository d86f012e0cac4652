//! Finding the guest cookie among the request's cookies and turning it into a `Guest`.

use http::HeaderMap;
use http::header;

use super::error::GatewayError;
use crate::share::{Guest, KeyRing, cookie};

/// The result of looking for a share session on a request.
pub enum Session {
    /// No cookie of our name: not a guest (passthrough or refusal decides what happens next).
    Absent,
    Guest(Guest),
}

/// Reads our cookie from every `Cookie` header. Exactly one is accepted: two cookies of our name
/// (one may have been planted by a sibling domain) are refused rather than guessed between.
pub fn authenticate(
    headers: &HeaderMap,
    cookie_name: &str,
    keys: &KeyRing,
    now: i64,
) -> Result<Session, GatewayError> {
    let mut found: Option<&str> = None;
    for header_value in headers.get_all(header::COOKIE) {
        let Ok(text) = header_value.to_str() else {
            continue;
        };
        for pair in text.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if name.trim() != cookie_name {
                continue;
            }
            if found.is_some() {
                return Err(GatewayError::DuplicateSession);
            }
            found = Some(value.trim());
        }
    }
    match found {
        None => Ok(Session::Absent),
        Some(value) => cookie::open(keys, value, now)
            .map(Session::Guest)
            .map_err(GatewayError::Session),
    }
}
