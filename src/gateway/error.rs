//! Every way the request path can refuse or fail, and the one table that maps each to what the
//! recipient sees. No catch-all arm: a new variant must choose its page.

use std::fmt;

use crate::pages::Page;
use crate::policy::TargetError;
use crate::proxy::client::ForwardError;
use crate::proxy::request::RewriteError;
use crate::share::cookie::CookieError;
use crate::share::token::{LinkError, LinkErrorKind};
use crate::state::Revocation;

/// Which credential a refusal is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    Link,
    /// The guest cookie; refusing it for good also clears it in the browser.
    Cookie,
}

/// Why a verification form was refused before it was read or judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormRefusal {
    /// The browser said the form was posted from another origin.
    CrossOrigin,
    MissingToken,
    /// A token of another session or share, or none of ours.
    WrongToken,
}

#[derive(Debug)]
pub enum GatewayError {
    /// The request target failed canonicalisation.
    BadTarget(TargetError),
    /// The request carried no path (authority-form, e.g. CONNECT).
    NoPath,
    /// No `Host` on HTTP/1.1, more than one, or one that is not an authority.
    BadHost,
    /// A `Host` (or `:authority`) that names an authority other than `public_url`'s.
    MisdirectedHost,
    /// An unsafe method (POST, DELETE...) of a guest that the browser says came from a page of
    /// another origin: a cross-site request riding on the guest's cookie.
    CrossSite,
    /// The request body is framed in a way casegate does not read (a transfer coding other than
    /// chunked), or broke its framing (a malformed chunk) while it was being forwarded.
    BadBody,
    /// A GET or HEAD with a body (chunked or a non-zero length).
    BodyOnGet,
    /// The link token was refused.
    Link(LinkError),
    /// A method other than GET or HEAD on a link.
    LinkMethod,
    /// No share session and passthrough is off.
    NoSession,
    /// The guest cookie was refused.
    Session(CookieError),
    /// `[links] enabled = false`: a link or guest cookie, refused unopened.
    SharingDisabled,
    /// The link or cookie verified, but its share or its case was revoked. The share id and case
    /// are logged (they identify the share, they grant nothing); the credential never is.
    Revoked {
        credential: Credential,
        share_id: String,
        case: String,
        revocation: Revocation,
    },
    /// Our cookies of one name twice, live sessions of one case under two names, or more of ours
    /// than a browser keeps (`session_cookies.rs`).
    DuplicateSession,
    /// The policy does not allow this request for this share.
    NotAllowed,
    /// A query parameter such as `_method` that frameworks read as another method.
    MethodOverrideQuery,
    /// The cookie names a scope the current config no longer has.
    UnknownScope,
    /// A protocol upgrade (WebSocket, h2c) that no rule allows.
    UpgradeRefused,
    /// The request body is larger than `max_body_bytes`.
    BodyTooLarge,
    /// The request body arrived slower than `body_read_timeout` and `body_min_rate` allow.
    BodyTooSlow,
    /// The upstream did not answer.
    Upstream(ForwardError),
    /// The upstream switched protocols although nobody asked it to.
    UnexpectedSwitch,
    /// The guest cookie could not be sealed for a link that verified; a limits mismatch (a bug).
    Seal(CookieError),
    /// The request could not be rewritten for the upstream; a bug, never the client's fault.
    Rewrite(RewriteError),
    /// Building a response failed; a bug, never the client's fault.
    Internal(http::Error),
    /// A link of a `verify_email` scope without an `email` claim: there is no address to verify.
    EmailMissing { share_id: String },
    /// A verification form body that is not a small urlencoded form.
    BadForm,
    /// A verification form refused for CSRF reasons.
    FormRefused(FormRefusal),
    /// The code mail could not be sent (the code was taken back).
    Mail {
        share_id: String,
        error: crate::mail::MailError,
    },
    /// A `verify_email` scope without `[mail]`; validation refuses that config, so this is a bug.
    MailNotConfigured,
    /// The OS random number generator failed: no code can be made.
    NoRandomness,
    /// The request's handling panicked, which is a bug (the panic's own log line says where);
    /// answered as an internal error rather than by losing the connection (`src/caught_panic.rs`).
    Panicked,
    /// Shared state (revocations, codes) is out of reach or older than allowed, so the gateway
    /// cannot tell whether the request may pass: it fails closed. `reason` is for the log.
    StateUnavailable { reason: String },
}

impl GatewayError {
    /// The page the recipient sees for this error.
    pub fn page(&self) -> Page {
        match self {
            GatewayError::BadTarget(_)
            | GatewayError::NoPath
            | GatewayError::BadHost
            | GatewayError::BodyOnGet
            | GatewayError::BadBody => Page::BadRequest,
            // No page of its own: an honest browser never gets here, and a 400 says "not like this".
            GatewayError::BodyTooSlow => Page::BadRequest,
            GatewayError::MisdirectedHost => Page::MisdirectedRequest,
            GatewayError::CrossSite => Page::FormRefused,
            GatewayError::Link(error) => match error.kind() {
                LinkErrorKind::Expired => Page::ExpiredLink,
                LinkErrorKind::NotYetValid => Page::LinkNotYetValid,
                LinkErrorKind::Invalid => Page::InvalidLink,
            },
            // A link only ever answers GET/HEAD; anything else is treated like any other refused request.
            GatewayError::LinkMethod => Page::NotAllowed,
            GatewayError::NoSession => Page::SessionMissing,
            GatewayError::SharingDisabled => Page::SharingDisabled,
            GatewayError::Revoked { .. } => Page::RevokedLink,
            GatewayError::Session(CookieError::Expired) => Page::SessionExpired,
            GatewayError::Session(_) | GatewayError::DuplicateSession => Page::SessionInvalid,
            GatewayError::NotAllowed
            | GatewayError::MethodOverrideQuery
            | GatewayError::UnknownScope => Page::NotAllowed,
            GatewayError::UpgradeRefused => Page::UpgradeRefused,
            GatewayError::BodyTooLarge => Page::PayloadTooLarge,
            GatewayError::Upstream(ForwardError::Unavailable(_))
            | GatewayError::UnexpectedSwitch => Page::UpstreamUnavailable,
            GatewayError::Upstream(ForwardError::TimedOut(_)) => Page::UpstreamTimeout,
            GatewayError::Seal(_)
            | GatewayError::Rewrite(_)
            | GatewayError::Internal(_)
            | GatewayError::MailNotConfigured
            | GatewayError::NoRandomness
            | GatewayError::Panicked => Page::InternalError,
            GatewayError::EmailMissing { .. } => Page::InvalidLink,
            GatewayError::BadForm => Page::BadRequest,
            GatewayError::FormRefused(_) => Page::FormRefused,
            // The guest can only try again later; the log says what the relay answered.
            GatewayError::Mail { .. } => Page::InternalError,
            GatewayError::StateUnavailable { .. } => Page::TemporarilyUnavailable,
        }
    }

    /// Whether the browser should drop our cookie with this answer: the cookie can never work
    /// again (revoked, expired, not ours, or one of two), and keeping it would send the
    /// recipient the same refusal, instead of "open your link again", until the browser drops it.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            GatewayError::Revoked {
                credential: Credential::Cookie,
                ..
            } | GatewayError::Session(_)
                | GatewayError::DuplicateSession
        )
    }

    /// Whether the error means something is wrong on casegate's side or the upstream's (logged
    /// as a warning) rather than a request refused as it should be (logged as info).
    pub fn is_failure(&self) -> bool {
        match self {
            GatewayError::Upstream(_)
            | GatewayError::UnexpectedSwitch
            | GatewayError::Seal(_)
            | GatewayError::Rewrite(_)
            | GatewayError::Internal(_)
            | GatewayError::Mail { .. }
            | GatewayError::MailNotConfigured
            | GatewayError::NoRandomness
            | GatewayError::Panicked => true,
            // The outage is logged once, as it starts and ends, by the store (see
            // state::freshness); each request it refuses is a refusal as designed.
            GatewayError::StateUnavailable { .. }
            | GatewayError::BadTarget(_)
            | GatewayError::NoPath
            | GatewayError::BadHost
            | GatewayError::MisdirectedHost
            | GatewayError::CrossSite
            | GatewayError::BadBody
            | GatewayError::BodyOnGet
            | GatewayError::Link(_)
            | GatewayError::LinkMethod
            | GatewayError::NoSession
            | GatewayError::Session(_)
            | GatewayError::SharingDisabled
            | GatewayError::Revoked { .. }
            | GatewayError::DuplicateSession
            | GatewayError::NotAllowed
            | GatewayError::MethodOverrideQuery
            | GatewayError::UnknownScope
            | GatewayError::UpgradeRefused
            | GatewayError::BodyTooLarge
            | GatewayError::BodyTooSlow
            | GatewayError::EmailMissing { .. }
            | GatewayError::BadForm
            | GatewayError::FormRefused(_) => false,
        }
    }
}

impl fmt::Display for GatewayError {
    /// For logs. Never includes a token, cookie or any other credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::BadTarget(error) => write!(f, "request target refused: {error}"),
            GatewayError::NoPath => f.write_str("request target has no path"),
            GatewayError::BadHost => f.write_str("missing, repeated or malformed Host header"),
            GatewayError::BodyOnGet => f.write_str("GET or HEAD request with a body"),
            GatewayError::MisdirectedHost => {
                f.write_str("Host names an authority other than public_url's")
            }
            GatewayError::CrossSite => {
                f.write_str("unsafe method from a page of another origin (cross-site request)")
            }
            GatewayError::BadBody => f.write_str(
                "request body framing refused: a coding other than chunked, or a malformed chunk",
            ),
            GatewayError::Link(error) => write!(f, "link refused: {error}"),
            GatewayError::LinkMethod => {
                f.write_str("link opened with a method other than GET/HEAD")
            }
            GatewayError::NoSession => f.write_str("no share session"),
            GatewayError::Session(error) => write!(f, "guest cookie refused: {error}"),
            GatewayError::SharingDisabled => f.write_str(
                "link or guest cookie refused: sharing is turned off ([links] enabled = false)",
            ),
            GatewayError::Revoked {
                credential,
                share_id,
                case,
                revocation,
            } => {
                let what = match credential {
                    Credential::Link => "link",
                    Credential::Cookie => "guest cookie",
                };
                match revocation {
                    Revocation::Share { at } => write!(
                        f,
                        "{what} refused: share {share_id} of case {case} was revoked at {at}"
                    ),
                    Revocation::Case { not_before } => write!(
                        f,
                        "{what} refused: share {share_id} was issued before its case {case} was revoked (not before {not_before})"
                    ),
                }
            }
            GatewayError::DuplicateSession => {
                f.write_str("guest cookies of one name or one case twice, or too many")
            }
            GatewayError::NotAllowed => {
                f.write_str("no rule of the share's scope allows this request")
            }
            GatewayError::MethodOverrideQuery => {
                f.write_str("method override in the query (e.g. _method)")
            }
            GatewayError::UnknownScope => f.write_str("the share's scope is not configured"),
            GatewayError::UpgradeRefused => f.write_str("protocol upgrade refused"),
            GatewayError::BodyTooLarge => f.write_str("request body over the limit"),
            GatewayError::BodyTooSlow => {
                f.write_str("request body arrived too slowly (body_read_timeout, body_min_rate)")
            }
            GatewayError::Upstream(error) => write!(f, "{error}"),
            GatewayError::UnexpectedSwitch => {
                f.write_str("upstream switched protocols without being asked")
            }
            GatewayError::Seal(error) => write!(f, "cannot seal the guest cookie: {error}"),
            GatewayError::Rewrite(error) => write!(f, "{error}"),
            GatewayError::Internal(error) => {
                write!(f, "internal error building a response: {error}")
            }
            GatewayError::EmailMissing { share_id } => write!(
                f,
                "link refused: share {share_id} is of a verify_email scope but names no email"
            ),
            GatewayError::BadForm => {
                f.write_str("verification form refused: not a small urlencoded body")
            }
            GatewayError::FormRefused(refusal) => f.write_str(match refusal {
                FormRefusal::CrossOrigin => "verification form refused: posted from another origin",
                FormRefusal::MissingToken => "verification form refused: no form token",
                FormRefusal::WrongToken => {
                    "verification form refused: the form token is not this session's"
                }
            }),
            GatewayError::Mail { share_id, error } => {
                write!(
                    f,
                    "cannot send the verification code of share {share_id}: {error}"
                )
            }
            GatewayError::MailNotConfigured => {
                f.write_str("a verify_email scope but no [mail]; no code can be sent")
            }
            GatewayError::NoRandomness => {
                f.write_str("the system random number generator failed; no code was made")
            }
            GatewayError::Panicked => f.write_str(
                "the request's handling panicked (a bug; the panic's log line says where); \
                 answered as an internal error",
            ),
            GatewayError::StateUnavailable { reason } => {
                write!(
                    f,
                    "shared state unavailable, refusing (fail closed): {reason}"
                )
            }
        }
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GatewayError::BadTarget(error) => Some(error),
            GatewayError::Link(error) => Some(error),
            GatewayError::Session(error) | GatewayError::Seal(error) => Some(error),
            GatewayError::Upstream(error) => Some(error),
            GatewayError::Rewrite(error) => Some(error),
            GatewayError::Internal(error) => Some(error),
            GatewayError::Mail { error, .. } => Some(error),
            GatewayError::EmailMissing { .. }
            | GatewayError::BadForm
            | GatewayError::FormRefused(_)
            | GatewayError::MailNotConfigured
            | GatewayError::NoRandomness
            | GatewayError::Panicked
            | GatewayError::StateUnavailable { .. }
            | GatewayError::NoPath
            | GatewayError::BadHost
            | GatewayError::MisdirectedHost
            | GatewayError::CrossSite
            | GatewayError::BadBody
            | GatewayError::BodyOnGet
            | GatewayError::LinkMethod
            | GatewayError::NoSession
            | GatewayError::SharingDisabled
            | GatewayError::Revoked { .. }
            | GatewayError::DuplicateSession
            | GatewayError::NotAllowed
            | GatewayError::MethodOverrideQuery
            | GatewayError::UnknownScope
            | GatewayError::UpgradeRefused
            | GatewayError::BodyTooLarge
            | GatewayError::BodyTooSlow
            | GatewayError::UnexpectedSwitch => None,
        }
    }
}
