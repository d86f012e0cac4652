//! Validation of `[server] hsts`: the `Strict-Transport-Security` header sent on every response a
//! recipient gets over https. On by default (a year); `false` switches it off, a duration adjusts
//! the max-age (`"0s"` tells browsers to forget an earlier one).

use std::time::Duration;

use http::HeaderValue;
use toml::Spanned;

use super::file::HstsSetting;
use super::{Bounds, DAY, Validator, secs};

/// A year: what browsers' preload lists ask for, and long enough to cover a link's whole life.
const DEFAULT_MAX_AGE: Duration = secs(365 * DAY);
/// Two years is the longest max-age anybody recommends; more is a typo.
const MAX_AGE_BOUNDS: Bounds = Bounds {
    min: Duration::ZERO,
    max: secs(2 * 365 * DAY),
};

/// The header value for a max-age.
pub fn hsts_value(max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("max-age={}", max_age.as_secs()))
        .expect("digits are a valid header value")
}

impl Validator<'_, '_> {
    /// `Some(None)`: switched off; `None`: invalid (reported).
    pub(super) fn hsts(
        &mut self,
        raw: Option<&Spanned<HstsSetting>>,
    ) -> Option<Option<HeaderValue>> {
        let Some(raw) = raw else {
            return Some(Some(hsts_value(DEFAULT_MAX_AGE)));
        };
        match raw.get_ref() {
            HstsSetting::Switch(true) => Some(Some(hsts_value(DEFAULT_MAX_AGE))),
            HstsSetting::Switch(false) => Some(None),
            HstsSetting::MaxAge(text) => {
                let spanned = Spanned::new(raw.span(), text.clone());
                let max_age = self.duration("server.hsts", &spanned, &MAX_AGE_BOUNDS)?;
                Some(Some(hsts_value(max_age)))
            }
        }
    }
}
