//! Every way the admin API refuses or fails, and the one table that maps each to a status and a
//! stable code. No catch-all arm: a new variant must choose both. Clients (the `casegate share`
//! command, case apps) branch on the code, so codes never change once published.

use std::fmt;

use http::StatusCode;

use crate::gateway::MintError;
use crate::mail::MailError;
use crate::state::{ShareStatus, StoreError};
use crate::verify::CodeStoreUnavailable;

/// Why a request body is not the JSON the endpoint reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonProblem {
    /// Bad syntax, not an object, or trailing data.
    NotAnObject,
    DuplicateField,
    TooManyFields,
    /// A known field with another JSON type than it takes.
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
}

/// Why a `ttl` was refused (a too long one is [`ApiError::Mint`] with `TtlTooLong`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlProblem {
    Unparseable(crate::config::DurationError),
    Negative,
    /// `1500ms`: links count whole seconds.
    Fraction,
}

/// Why the query of `GET /v1/shares` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryProblem {
    /// A parameter other than `case` and `status` (the name is not echoed: it could be anything).
    UnknownParameter,
    Repeated(&'static str),
    Empty(&'static str),
    BadStatus,
    /// A value with `%`: values are never percent-decoded.
    Encoded(&'static str),
    /// A query on an endpoint that takes none.
    NotExpected,
}

/// A refusal or failure of one admin request.
#[derive(Debug)]
pub enum ApiError {
    /// No usable `Authorization: Bearer` header, or a token no client holds.
    Unauthorized,
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    UnsupportedMediaType,
    BodyTooLarge {
        limit: usize,
    },
    /// The body did not arrive in time.
    BodyTimeout,
    /// The connection failed while the body was being read.
    BodyRead(crate::proxy::BoxError),
    BadJson(JsonProblem),
    UnknownField(String),
    MissingField(&'static str),
    FieldTooLong {
        field: &'static str,
        max_chars: usize,
    },
    InvalidTtl(TtlProblem),
    InvalidQuery(QueryProblem),
    InvalidShareId,
    /// A case id in a path or query outside `links.case_pattern`.
    InvalidCase,
    /// The client asked for a scope it is not configured to share.
    ScopeNotPermitted,
    /// The gateway refused to mint the link.
    Mint(MintError),
    SharingDisabled,
    ShareNotFound,
    /// The durable write failed: nothing was acknowledged.
    StoreUnavailable(StoreError),
    /// The store acknowledged a write but cannot show its result: a bug, reported as such.
    ShareMissingAfterWrite,
    /// The request's handling panicked, which is a bug (the panic's log line says where);
    /// answered as an internal error rather than by losing the connection (`src/caught_panic.rs`).
    Panicked,
    /// An invitation was asked for a share without `email`.
    EmailRequired,
    /// An invitation was asked for, and the config has no `[mail]`.
    MailNotConfigured,
    /// `POST /v1/reload` on a gateway started from a config it was handed, not a file.
    ReloadUnavailable,
    /// An invitation (a resend, or a create's) for a share whose link does not open (revoked or
    /// expired), or one recorded without its claims (known only from a revoke).
    ShareNotActive(Option<ShareStatus>),
    /// The invitation cooldown (kept with the codes, shared by replicas) cannot be checked, so
    /// no resend is sent (fail closed).
    CooldownUnavailable(CodeStoreUnavailable),
    /// A resend within the cooldown of the share's last invitation.
    ResendTooSoon {
        retry_after: std::time::Duration,
    },
    /// A create for a case whose revocation cut-off lies ahead of this gateway's clock by more
    /// than a create waits: a link issued now would be refused as revoked.
    CaseRevokedAhead {
        cut_off: i64,
        retry_after: std::time::Duration,
    },
    /// The invitation was not sent. `share` is the created share's answer (url and token
    /// included) when the share was created before the mail failed: it exists and can be resent.
    MailFailed {
        error: MailError,
        share: Option<Box<serde_json::Value>>,
    },
}

impl ApiError {
    /// The one table: status and stable code of every refusal.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::Unauthorized => (S::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound => (S::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::BodyTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::BodyTimeout => (S::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::BodyRead(_) => (S::BAD_REQUEST, "bad_body"),
            ApiError::BadJson(_) => (S::BAD_REQUEST, "bad_json"),
            ApiError::UnknownField(_) => (S::BAD_REQUEST, "unknown_field"),
            ApiError::MissingField(_) => (S::BAD_REQUEST, "missing_field"),
            ApiError::FieldTooLong { .. } => (S::UNPROCESSABLE_ENTITY, "field_too_long"),
            ApiError::InvalidTtl(_) => (S::UNPROCESSABLE_ENTITY, "invalid_ttl"),
            ApiError::InvalidQuery(_) => (S::BAD_REQUEST, "invalid_query"),
            ApiError::InvalidShareId => (S::BAD_REQUEST, "invalid_share_id"),
            ApiError::InvalidCase => (S::UNPROCESSABLE_ENTITY, "invalid_case"),
            ApiError::ScopeNotPermitted => (S::FORBIDDEN, "scope_not_permitted"),
            ApiError::Mint(error) => match error {
                MintError::UnknownScope => (S::UNPROCESSABLE_ENTITY, "unknown_scope"),
                MintError::BadCase => (S::UNPROCESSABLE_ENTITY, "invalid_case"),
                MintError::TtlTooLong { .. } => (S::UNPROCESSABLE_ENTITY, "ttl_too_long"),
                MintError::TtlZero => (S::UNPROCESSABLE_ENTITY, "invalid_ttl"),
                MintError::BadEmail => (S::UNPROCESSABLE_ENTITY, "invalid_email"),
                MintError::EmailRequired => (S::UNPROCESSABLE_ENTITY, "email_required"),
                MintError::BadLang => (S::UNPROCESSABLE_ENTITY, "invalid_lang"),
                MintError::NoRandomness => (S::SERVICE_UNAVAILABLE, "randomness_unavailable"),
            },
            ApiError::SharingDisabled => (S::FORBIDDEN, "sharing_disabled"),
            ApiError::ShareNotFound => (S::NOT_FOUND, "share_not_found"),
            ApiError::StoreUnavailable(_) => (S::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::ShareMissingAfterWrite => (S::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Panicked => (S::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::EmailRequired => (S::UNPROCESSABLE_ENTITY, "email_required"),
            ApiError::MailNotConfigured => (S::UNPROCESSABLE_ENTITY, "mail_not_configured"),
            ApiError::ReloadUnavailable => (S::CONFLICT, "reload_unavailable"),
            ApiError::ShareNotActive(_) => (S::CONFLICT, "share_not_active"),
            ApiError::CooldownUnavailable(_) => (S::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::ResendTooSoon { .. } => (S::TOO_MANY_REQUESTS, "resend_too_soon"),
            ApiError::CaseRevokedAhead { .. } => (S::SERVICE_UNAVAILABLE, "case_revoked_ahead"),
            ApiError::MailFailed { .. } => (S::BAD_GATEWAY, "mail_failed"),
        }
    }

    /// Failures of the gateway itself (logged as warnings); everything else is the client's
    /// request being refused.
    pub fn is_failure(&self) -> bool {
        self.status_and_code().0.is_server_error()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized => f.write_str(
                "send the client's token as `Authorization: Bearer <token>`; \
                 the token was missing, malformed or not one of the configured clients'",
            ),
            ApiError::NotFound => f.write_str("no such endpoint"),
            ApiError::MethodNotAllowed { allow } => {
                write!(f, "this endpoint answers only {allow}")
            }
            ApiError::UnsupportedMediaType => {
                f.write_str("the body must be sent as Content-Type: application/json")
            }
            ApiError::BodyTooLarge { limit } => {
                write!(
                    f,
                    "the body is larger than admin.max_body_bytes ({limit} bytes)"
                )
            }
            ApiError::BodyTimeout => f.write_str("the body did not arrive in time"),
            ApiError::BodyRead(error) => write!(f, "the body could not be read: {error}"),
            ApiError::BadJson(problem) => match problem {
                JsonProblem::NotAnObject => f.write_str("the body is not a single JSON object"),
                JsonProblem::DuplicateField => f.write_str("a field appears twice in the body"),
                JsonProblem::TooManyFields => f.write_str("the body has too many fields"),
                JsonProblem::WrongType { field, expected } => {
                    write!(f, "field `{field}` must be {expected}")
                }
            },
            ApiError::UnknownField(name) => write!(f, "unknown field `{name}`"),
            ApiError::MissingField(name) => write!(f, "field `{name}` is required"),
            ApiError::FieldTooLong { field, max_chars } => {
                write!(f, "field `{field}` is longer than {max_chars} characters")
            }
            ApiError::InvalidTtl(problem) => match problem {
                TtlProblem::Unparseable(error) => write!(
                    f,
                    "ttl {error}; write a duration such as \"24h\" or \"90m\", or whole seconds"
                ),
                TtlProblem::Negative => f.write_str("ttl cannot be negative"),
                TtlProblem::Fraction => f.write_str("ttl must be whole seconds"),
            },
            ApiError::InvalidQuery(problem) => match problem {
                QueryProblem::UnknownParameter => {
                    f.write_str("unknown query parameter; only `case` and `status` filter shares")
                }
                QueryProblem::Repeated(name) => write!(f, "query parameter `{name}` is repeated"),
                QueryProblem::Empty(name) => write!(f, "query parameter `{name}` is empty"),
                QueryProblem::BadStatus => {
                    f.write_str("status must be one of pending, active, expired, revoked")
                }
                QueryProblem::Encoded(name) => write!(
                    f,
                    "query parameter `{name}` is percent-encoded; send case ids and statuses as they are"
                ),
                QueryProblem::NotExpected => f.write_str("this endpoint takes no query"),
            },
            ApiError::InvalidShareId => {
                f.write_str("a share id is 16 to 128 characters of A-Z, a-z, 0-9, `_` and `-`")
            }
            ApiError::InvalidCase => {
                f.write_str("case id does not match the configured case_pattern")
            }
            ApiError::ScopeNotPermitted => {
                f.write_str("this client is not configured to share that scope")
            }
            ApiError::Mint(error) => write!(f, "{error}"),
            ApiError::SharingDisabled => f.write_str(
                "sharing is turned off by the organisation ([links] enabled = false); \
                 no new share can be created",
            ),
            ApiError::ShareNotFound => f.write_str("no share with that id is known"),
            ApiError::StoreUnavailable(error) => write!(
                f,
                "the share store could not record this durably ({error}); nothing was changed, \
                 try again"
            ),
            ApiError::ShareMissingAfterWrite => {
                f.write_str("the share was recorded but cannot be read back; this is a bug")
            }
            ApiError::Panicked => f.write_str(
                "casegate hit a bug while handling this request (its log says where); whether a \
                 change took effect is unknown: look before trying again",
            ),
            ApiError::EmailRequired => {
                f.write_str("an invitation needs the share's `email`; this share has none")
            }
            ApiError::MailNotConfigured => {
                f.write_str("this gateway sends no mail: its config has no [mail] section")
            }
            ApiError::ReloadUnavailable => f.write_str(
                "this gateway was not started from a config file, so it has none to re-read",
            ),
            ApiError::ShareNotActive(status) => match status {
                Some(status) => write!(
                    f,
                    "the share is {}; its link does not open, so no invitation is sent",
                    status.as_str()
                ),
                None => f.write_str("the share is known only by its id; it cannot be sent"),
            },
            ApiError::CooldownUnavailable(error) => write!(
                f,
                "the invitation cooldown cannot be checked ({error}); nothing was sent, try again"
            ),
            ApiError::ResendTooSoon { retry_after } => write!(
                f,
                "this share's invitation was sent less than 30 s ago; try again in {} s",
                retry_after_secs(*retry_after)
            ),
            ApiError::CaseRevokedAhead {
                cut_off,
                retry_after,
            } => write!(
                f,
                "the case was revoked up to {}, ahead of this gateway's clock (clocks disagree, \
                 or this one was set back); a link issued now would be refused, so none was \
                 made. Try again in {} s",
                crate::clock::format_utc(*cut_off),
                retry_after_secs(*retry_after)
            ),
            ApiError::MailFailed { error, share } => {
                match share.as_ref().and_then(|share| share["id"].as_str()) {
                    Some(id) => write!(
                        f,
                        "share {id} was created, but its invitation was not sent: {error}. \
                         The share and its link are in `share`; send the invitation again with \
                         POST /v1/shares/{id}/resend"
                    ),
                    None => write!(f, "the invitation was not sent: {error}"),
                }
            }
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApiError::BodyRead(error) => Some(error.as_ref()),
            ApiError::Mint(error) => Some(error),
            ApiError::StoreUnavailable(error) => Some(error),
            ApiError::CooldownUnavailable(error) => Some(error),
            ApiError::MailFailed { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Whole seconds to wait, rounded up so that waiting that long is always enough.
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl From<MintError> for ApiError {
    fn from(error: MintError) -> ApiError {
        ApiError::Mint(error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::StoreUnavailable(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_answered_as_a_bug_of_ours_with_the_stable_internal_code() {
        assert_eq!(
            ApiError::Panicked.status_and_code(),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert!(ApiError::Panicked.is_failure(), "logged as a warning");
        assert!(
            ApiError::Panicked
                .to_string()
                .contains("look before trying again"),
            "the client is told the change may or may not have happened"
        );
    }
}
