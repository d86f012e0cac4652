//! The parts of the validated config the request path reads, in the shape it reads them.

use crate::share::{CaseGrammar, Guest};

/// How links are recognised and verified.
#[derive(Debug)]
pub struct LinkSettings {
    /// Path prefix of links, starting and ending with `/`.
    pub prefix: String,
    /// Landing path template with `{case}` and `{share}` placeholders.
    pub landing: String,
    pub default_ttl_secs: i64,
    pub max_ttl_secs: i64,
    pub clock_skew_secs: i64,
    pub case_grammar: CaseGrammar,
}

impl LinkSettings {
    /// The landing path for a guest. Case and share id come from grammars without `/`, `.` or `%`,
    /// so they cannot change the shape of the path they are put into.
    pub fn landing_for(&self, guest: &Guest) -> String {
        self.landing
            .replace("{case}", &guest.case)
            .replace("{share}", &guest.share_id)
    }
}

/// How the guest cookie is named and how long it lives.
#[derive(Debug)]
pub struct SessionSettings {
    pub cookie_name: String,
    pub ttl_secs: i64,
    /// Set when the public origin is https: the browser then never sends the cookie in clear.
    pub secure: bool,
}

impl SessionSettings {
    /// The `Set-Cookie` value for a sealed guest cookie living `max_age_secs`.
    pub fn set_cookie_header(&self, sealed: &str, max_age_secs: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.cookie_name,
            sealed,
            max_age_secs.max(0),
            secure
        )
    }
}
