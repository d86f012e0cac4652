//! What the request path learned about the share before it refused a request: the language the
//! refusal is worded in, which guest cookies it drops, and how the client asked for pages.

use crate::pages::{Lang, PageChoice};

#[derive(Debug, Default)]
pub struct ShareContext {
    /// The share's language, once a verified link or cookie names it; it beats the browser's
    /// `Accept-Language`, so even a refusal after that point (revoked, not allowed) is in it.
    pub lang: Option<Lang>,
    /// Our cookies that can never work again (revoked, expired, not ours, or one of two): a
    /// refusal that ends the session clears them, so the browser does not send them again and
    /// the recipient is told "open your link again" rather than the same refusal until it
    /// expires. Only the ones the refusal is about: the guest's sessions of other cases stay.
    pub dead_cookies: Vec<String>,
    /// The request's fields a refusal's page is written from, read when the request was refused
    /// (a forwarded request is consumed before its answer is known, so whoever refuses it reads
    /// them, from the fields still at hand).
    pub page: Option<PageChoice>,
}

impl ShareContext {
    pub fn learn_lang(&mut self, tag: Option<&str>) {
        self.lang = tag.and_then(Lang::from_tag);
    }
}
