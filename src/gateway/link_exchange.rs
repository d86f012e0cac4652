//! `GET {prefix}{token}`: a valid share link becomes a guest cookie and a redirect to the case, with
//! the token gone from the address bar, the history and any Referer.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use super::Gateway;
use super::authenticate::open_guest;
use super::error::{Credential, GatewayError};
use super::session_cookies::{KEPT_SESSIONS, SessionCookies, session_cookie_names};
use super::share_context::ShareContext;
use crate::access_log::AccessRecord;
use crate::proxy::{Body, empty_body};
use crate::share::token::{self, LinkError, LinkRules};
use crate::share::{Guest, cookie};
use crate::state::SeenShare;

impl Gateway {
    /// Verifies the link token and answers with the guest cookie and a 303 to the landing page.
    /// `context` gets the link's language as soon as the link verifies. The guest's sessions of
    /// other cases stay; the answer drops the browser's cookies that cannot work (see
    /// [`cookies_to_drop`]).
    pub(super) fn exchange_link(
        &self,
        token_text: &str,
        headers: &HeaderMap,
        now: i64,
        context: &mut ShareContext,
        record: &mut AccessRecord,
    ) -> Result<Response<Body>, GatewayError> {
        let scope_exists = |scope: &str| self.policy.scope_exists(scope);
        let rules = LinkRules {
            now,
            max_ttl_secs: self.links.max_ttl_secs,
            clock_skew_secs: self.links.clock_skew_secs,
            case_grammar: &self.links.case_grammar,
            scope_exists: &scope_exists,
        };
        let claims = match token::verify(&self.keys, token_text, &rules) {
            Ok(claims) => claims,
            Err(error) => {
                // A genuine link refused for its time (expired, not yet valid) still names the
                // share's language; only such links are worth the second look.
                if matches!(error, LinkError::Expired | LinkError::NotYetValid) {
                    context.learn_lang(token::authentic_lang(&self.keys, token_text).as_deref());
                }
                return Err(GatewayError::Link(error));
            }
        };
        context.learn_lang(claims.lang.as_deref());
        // The cookie never outlives the link, nor the configured session length.
        let cookie_expires_at = claims
            .expires_at
            .min(now.saturating_add(self.session.ttl_secs));
        // A link just past its exp still verifies (clock skew), but its cookie would be dead on
        // arrival (Max-Age=0): the browser drops it and the recipient goes round between the
        // link and "open the link again". It is an expired link, refused as one: the same page,
        // no use counted, logged as refused.
        if cookie_expires_at <= now {
            return Err(GatewayError::Link(LinkError::Expired));
        }
        record.set_share(&claims.share_id, &claims.case, &claims.scope);
        // Also for tokens minted outside the admin API: they are revocable by id and by case.
        self.refuse_revoked(
            Credential::Link,
            &claims.share_id,
            &claims.case,
            claims.issued_at,
        )?;
        self.store.record_open(
            &SeenShare {
                id: &claims.share_id,
                case: &claims.case,
                scope: &claims.scope,
                issued_at: claims.issued_at,
                expires_at: claims.expires_at,
                email: claims.email.as_deref(),
                lang: claims.lang.as_deref(),
            },
            now,
        );
        let mut guest = Guest::from_link(claims);
        guest.expires_at = cookie_expires_at;
        let cookie_name = self.session.cookie_for_case(&guest.case);
        let present = self.present_sessions(headers, now);
        if self.verify_scopes.contains(&guest.scope) {
            if guest.email.is_none() {
                return Err(GatewayError::EmailMissing {
                    share_id: guest.share_id,
                });
            }
            // Opening the link again (from the mail, say) keeps a verification this browser
            // already made for this very share.
            guest.email_verified = present.iter().flatten().any(|(_, current)| {
                matches!(current, Ok(current)
                    if current.email_verified && current.share_id == guest.share_id)
            });
            if guest.email_verified {
                guest.email = None;
            }
        } else {
            // Only a share that verifies the address needs it; no other cookie carries it.
            guest.email = None;
        }
        let sealed = cookie::seal(&self.keys, &guest).map_err(GatewayError::Seal)?;
        let set_cookie = self
            .session
            .set_session_header(&guest, &sealed, guest.expires_at - now);
        let dropped = match present {
            Some(present) => cookies_to_drop(&present, &cookie_name, &guest.case),
            None => session_cookie_names(headers, &self.session.cookie_name),
        };
        let path = if self.needs_verification(&guest) {
            format!("{}verify", self.links.prefix)
        } else {
            self.links.landing_for(&guest)
        };
        let location = format!("{}{path}", self.public.as_url_prefix());
        let mut response = Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, location)
            .header(header::SET_COOKIE, set_cookie)
            .header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
            .header(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            )
            .body(empty_body())
            .map_err(GatewayError::Internal)?;
        self.session.append_clears(
            response.headers_mut(),
            dropped.iter().filter(|name| **name != cookie_name),
        );
        self.metrics.record_link_exchange();
        Ok(response)
    }
}

/// A session cookie the browser sent, and what opening it gave.
type Present = (String, Result<Guest, GatewayError>);

impl Gateway {
    /// Our cookies in the request, each opened; `None` when they cannot be read (two of one
    /// name, too many), and all of them are then dropped.
    fn present_sessions(&self, headers: &HeaderMap, now: i64) -> Option<Vec<Present>> {
        let cookies = SessionCookies::read(headers, &self.session.cookie_name).ok()?;
        Some(
            cookies
                .all()
                .iter()
                .map(|cookie| (cookie.name.to_owned(), open_guest(cookie, &self.keys, now)))
                .collect(),
        )
    }
}

/// The cookies a link exchange for `case` drops besides setting `new_name`: those that do not
/// open (expired, another key, damaged), another of the same case (the old name), and, past
/// [`KEPT_SESSIONS`] with the new one, those that expire first.
fn cookies_to_drop(present: &[Present], new_name: &str, case: &str) -> Vec<String> {
    let mut dropped = Vec::new();
    let mut kept: Vec<(&str, i64)> = Vec::new();
    for (name, opened) in present.iter().filter(|(name, _)| name != new_name) {
        match opened {
            Ok(guest) if guest.case != case => kept.push((name, guest.expires_at)),
            _ => dropped.push(name.clone()),
        }
    }
    kept.sort_by_key(|(_, expires_at)| *expires_at);
    let over = kept.len().saturating_sub(KEPT_SESSIONS - 1);
    // A dead cookie that shares its name with a live session (one set for another path) is not
    // cleared: the clearing `Set-Cookie` (path `/`) would drop the live one instead.
    let staying = &kept[over..];
    dropped.retain(|name| !staying.iter().any(|(kept, _)| kept == name));
    dropped.extend(kept[..over].iter().map(|(name, _)| (*name).to_owned()));
    dropped.sort_unstable();
    dropped.dedup();
    dropped
}
