//! Validation of what verified shares need: `[verify]` (codes and limits), `[links] login_url`,
//! and the rule that a scope with `verify_email` needs a way to send mail.

use std::time::Duration;

use http::Uri;
use toml::Spanned;

use super::file::VerifySection;
use super::{Bounds, Validator, secs};
use crate::verify::VerifySettings;

/// Shorter than a few seconds only makes sense in tests; longer than an hour defeats the point.
const CODE_TTL_BOUNDS: Bounds = Bounds {
    min: secs(1),
    max: secs(3600),
};
const COOLDOWN_BOUNDS: Bounds = Bounds {
    min: Duration::ZERO,
    max: secs(3600),
};

const MAX_LOGIN_URL_LEN: usize = 2048;

impl Validator<'_, '_> {
    pub(super) fn verify(&mut self, raw: VerifySection) -> Option<VerifySettings> {
        let defaults = VerifySettings::default();
        let code_ttl = self.optional_duration(
            "verify.code_ttl",
            raw.code_ttl.as_ref(),
            defaults.code_ttl,
            &CODE_TTL_BOUNDS,
        );
        let resend_cooldown = self.optional_duration(
            "verify.resend_cooldown",
            raw.resend_cooldown.as_ref(),
            defaults.resend_cooldown,
            &COOLDOWN_BOUNDS,
        );
        let mut limit = |field: &str, raw: Option<&Spanned<i64>>, default: u32, max: usize| {
            self.count(field, raw, default as usize, 1..=max)
                .and_then(|value| u32::try_from(value).ok())
        };
        // Ten tries per code is already a one in 100 000 chance for a guesser.
        let max_attempts = limit(
            "verify.max_attempts",
            raw.max_attempts.as_ref(),
            defaults.max_attempts,
            10,
        );
        let max_codes_per_hour = limit(
            "verify.max_codes_per_hour",
            raw.max_codes_per_hour.as_ref(),
            defaults.max_codes_per_hour,
            60,
        );
        let max_sends_per_address_per_hour = limit(
            "verify.max_sends_per_address_per_hour",
            raw.max_sends_per_address_per_hour.as_ref(),
            defaults.max_sends_per_address_per_hour,
            10_000,
        );
        let max_failures_per_address_per_hour = limit(
            "verify.max_failures_per_address_per_hour",
            raw.max_failures_per_address_per_hour.as_ref(),
            defaults.max_failures_per_address_per_hour,
            10_000,
        );
        Some(VerifySettings {
            code_ttl: code_ttl?,
            max_attempts: max_attempts?,
            resend_cooldown: resend_cooldown?,
            max_codes_per_hour: max_codes_per_hour?,
            max_sends_per_address_per_hour: max_sends_per_address_per_hour?,
            max_failures_per_address_per_hour: max_failures_per_address_per_hour?,
        })
    }

    /// An absolute http(s) URL: it is written into an `href`, so nothing else (no `javascript:`).
    pub(super) fn login_url(&mut self, raw: &Spanned<String>) -> Option<String> {
        let text = raw.get_ref();
        let valid = text.len() <= MAX_LOGIN_URL_LEN
            && (text.starts_with("https://") || text.starts_with("http://"))
            && text
                .parse::<Uri>()
                .is_ok_and(|uri| uri.authority().is_some());
        if valid {
            Some(text.clone())
        } else {
            self.diag.error(
                raw.span(),
                format_args!(
                    "links.login_url: {text:?} is not an absolute http:// or https:// URL \
                     (at most {MAX_LOGIN_URL_LEN} characters)"
                ),
            );
            None
        }
    }
}
