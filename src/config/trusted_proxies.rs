//! Validation of `[server] trusted_proxies`: the load balancers whose `X-Forwarded-For` is
//! believed. Every bad entry is reported with its own line; duplicates are refused too, since
//! a list that says the same thing twice was probably meant to say something else.

use toml::Spanned;

use super::Validator;
use crate::proxy::cidr::{Cidr, TrustedProxies};

/// Enough for every balancer subnet of a real deployment; more is a list written by a script gone
/// wrong, and each entry costs a comparison on every request from a trusted peer.
const MAX_TRUSTED_PROXIES: usize = 64;

impl Validator<'_, '_> {
    pub(super) fn trusted_proxies(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Option<TrustedProxies> {
        let Some(raw) = raw else {
            return Some(TrustedProxies::default());
        };
        if raw.get_ref().len() > MAX_TRUSTED_PROXIES {
            self.diag.error(
                raw.span(),
                format_args!(
                    "server.trusted_proxies: at most {MAX_TRUSTED_PROXIES} entries, not {}; \
                     list subnets (10.0.0.0/8) rather than single addresses",
                    raw.get_ref().len()
                ),
            );
            return None;
        }
        let mut ranges: Vec<Cidr> = Vec::with_capacity(raw.get_ref().len());
        let mut valid = true;
        for entry in raw.get_ref() {
            match Cidr::parse(entry.get_ref()) {
                Ok(range) if ranges.contains(&range) => {
                    valid = false;
                    self.diag.error(
                        entry.span(),
                        format_args!("server.trusted_proxies: {range} is listed twice"),
                    );
                }
                Ok(range) => ranges.push(range),
                Err(problem) => {
                    valid = false;
                    self.diag.error(
                        entry.span(),
                        format_args!("server.trusted_proxies: {:?} {problem}", entry.get_ref()),
                    );
                }
            }
        }
        valid.then(|| TrustedProxies::new(ranges))
    }
}
