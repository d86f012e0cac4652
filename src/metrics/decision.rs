//! The one place a refusal becomes a `decision` label. No catch-all arm: a new [`GatewayError`]
//! variant must choose its label here, as it chooses its page in `gateway/error.rs`.

use super::labels::Decision;
use crate::gateway::GatewayError;
use crate::share::cookie::CookieError;
use crate::share::token::LinkErrorKind;

impl Decision {
    /// The decision a refused or failed request is counted under.
    pub fn of(error: &GatewayError) -> Decision {
        match error {
            GatewayError::BadTarget(_)
            | GatewayError::NoPath
            | GatewayError::BadHost
            | GatewayError::MisdirectedHost
            | GatewayError::BadBody
            | GatewayError::BodyOnGet
            | GatewayError::LinkMethod
            | GatewayError::DuplicateSession
            | GatewayError::MethodOverrideQuery
            | GatewayError::BadForm
            | GatewayError::BodyTooSlow => Decision::BadRequest,
            GatewayError::Link(error) => match error.kind() {
                LinkErrorKind::Expired | LinkErrorKind::NotYetValid => Decision::Expired,
                LinkErrorKind::Invalid => Decision::InvalidLink,
            },
            GatewayError::EmailMissing { .. } => Decision::InvalidLink,
            GatewayError::Session(CookieError::Expired) => Decision::Expired,
            GatewayError::Session(_) => Decision::InvalidSession,
            GatewayError::NoSession => Decision::NoSession,
            GatewayError::SharingDisabled => Decision::SharingOff,
            GatewayError::Revoked { .. } => Decision::Revoked,
            GatewayError::NotAllowed | GatewayError::UnknownScope => Decision::DeniedRoute,
            GatewayError::UpgradeRefused => Decision::DeniedUpgrade,
            GatewayError::FormRefused(_) | GatewayError::CrossSite => Decision::DeniedForm,
            GatewayError::BodyTooLarge => Decision::BodyTooLarge,
            GatewayError::Upstream(_) | GatewayError::UnexpectedSwitch => Decision::UpstreamError,
            GatewayError::Seal(_)
            | GatewayError::Rewrite(_)
            | GatewayError::Internal(_)
            | GatewayError::Mail { .. }
            | GatewayError::MailNotConfigured
            | GatewayError::NoRandomness
            | GatewayError::Panicked => Decision::InternalError,
            GatewayError::StateUnavailable { .. } => Decision::StateUnavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::token::LinkError;

    #[test]
    fn refusals_are_counted_under_the_decision_an_operator_expects() {
        let cases: &[(&str, GatewayError, Decision)] = &[
            (
                "an expired link",
                GatewayError::Link(LinkError::Expired),
                Decision::Expired,
            ),
            (
                "an early link",
                GatewayError::Link(LinkError::NotYetValid),
                Decision::Expired,
            ),
            (
                "a forged link",
                GatewayError::Link(LinkError::Malformed),
                Decision::InvalidLink,
            ),
            (
                "an expired cookie",
                GatewayError::Session(CookieError::Expired),
                Decision::Expired,
            ),
            (
                "a forged cookie",
                GatewayError::Session(CookieError::BadMac),
                Decision::InvalidSession,
            ),
            ("no cookie", GatewayError::NoSession, Decision::NoSession),
            (
                "a path outside the scope",
                GatewayError::NotAllowed,
                Decision::DeniedRoute,
            ),
            (
                "sharing off",
                GatewayError::SharingDisabled,
                Decision::SharingOff,
            ),
            ("no Host", GatewayError::BadHost, Decision::BadRequest),
            (
                "a panic while the request was handled",
                GatewayError::Panicked,
                Decision::InternalError,
            ),
        ];
        for (name, error, want) in cases {
            assert_eq!(Decision::of(error), *want, "{name}");
        }
    }
}
