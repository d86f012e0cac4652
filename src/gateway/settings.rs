//! The parts of the validated config the request path reads, in the shape it reads them.

use std::collections::HashMap;

use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::session_cookies::{CookieBase, session_cookie_name};
use crate::config::{Links, Scope};
use crate::share::{CaseGrammar, Guest};

/// How links are recognised and verified.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    /// Path prefix of links, starting and ending with `/`.
    pub prefix: String,
    /// Landing path template with `{case}` and `{share}` placeholders.
    pub landing: String,
    /// Scopes with a landing of their own (`[scopes.NAME] landing`), by scope name.
    pub scope_landings: HashMap<String, String>,
    pub default_ttl_secs: i64,
    pub max_ttl_secs: i64,
    pub clock_skew_secs: i64,
    pub case_grammar: CaseGrammar,
}

impl LinkSettings {
    pub fn new(links: &Links, scopes: &[Scope]) -> LinkSettings {
        LinkSettings {
            prefix: links.prefix.clone(),
            landing: links.landing.clone(),
            scope_landings: scopes
                .iter()
                .filter_map(|scope| Some((scope.name.clone(), scope.landing.clone()?)))
                .collect(),
            default_ttl_secs: secs(links.default_ttl),
            max_ttl_secs: secs(links.max_ttl),
            clock_skew_secs: secs(links.clock_skew),
            case_grammar: links.case_grammar.clone(),
        }
    }

    /// The landing path for a guest: its scope's own, or `[links] landing`. Case and share id come
    /// from grammars without `/`, `.` or `%`, so they cannot change the shape of the path they are
    /// put into.
    pub fn landing_for(&self, guest: &Guest) -> String {
        self.scope_landings
            .get(&guest.scope)
            .unwrap_or(&self.landing)
            .replace("{case}", &guest.case)
            .replace("{share}", &guest.share_id)
    }
}

/// How the guest cookies are named and how long they live.
#[derive(Debug)]
pub struct SessionSettings {
    /// `[session] cookie`: each case's session is a cookie of this name and a tag
    /// (`session_cookies.rs`).
    pub cookie_name: CookieBase,
    pub ttl_secs: i64,
    /// Set when the public origin is https: the browser then never sends the cookie in clear.
    pub secure: bool,
}

impl SessionSettings {
    /// The name of the cookie that holds the session for `case`.
    pub fn cookie_for_case(&self, case: &str) -> String {
        session_cookie_name(self.cookie_name.as_str(), case)
    }

    /// The `Set-Cookie` value for the sealed session of `guest`, living `max_age_secs`.
    pub fn set_session_header(&self, guest: &Guest, sealed: &str, max_age_secs: i64) -> String {
        self.set_cookie_header(&self.cookie_for_case(&guest.case), sealed, max_age_secs)
    }

    /// The `Set-Cookie` value for cookie `name` holding `sealed`, living `max_age_secs`.
    fn set_cookie_header(&self, name: &str, sealed: &str, max_age_secs: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            name,
            sealed,
            max_age_secs.max(0),
            secure
        )
    }

    /// The `Set-Cookie` value that makes the browser drop our cookie `name`: the same name and
    /// attributes (a browser only replaces a cookie whose name, path and domain match), empty and
    /// already expired.
    pub fn clear_cookie_header(&self, name: &str) -> String {
        self.set_cookie_header(name, "", 0)
    }

    /// Appends to `headers` a `Set-Cookie` that drops each of our cookies in `names`.
    pub fn append_clears<'n>(
        &self,
        headers: &mut HeaderMap,
        names: impl IntoIterator<Item = &'n String>,
    ) {
        for name in names {
            // Our names are cookie-name bytes and the attributes are fixed: always a valid value.
            if let Ok(clear) = HeaderValue::try_from(self.clear_cookie_header(name)) {
                headers.append(header::SET_COOKIE, clear);
            }
        }
    }
}

/// Whole seconds, as tokens and cookies count them.
pub fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clearing_cookie_matches_the_set_cookie_but_expires_at_once() {
        for (secure, suffix) in [(true, "; Secure"), (false, "")] {
            let session = SessionSettings {
                cookie_name: CookieBase::new("__Host-casegate"),
                ttl_secs: 3600,
                secure,
            };
            let name = session.cookie_for_case("42");
            assert!(name.starts_with("__Host-casegate."), "{name}");
            assert_eq!(
                session.set_cookie_header(&name, "v2.k1.x.y", 60),
                format!("{name}=v2.k1.x.y; Path=/; Max-Age=60; HttpOnly; SameSite=Lax{suffix}")
            );
            assert_eq!(
                session.clear_cookie_header(&name),
                format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{suffix}")
            );
        }
    }
}
