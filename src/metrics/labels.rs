//! The fixed label values of the labelled metrics. Each is an enum indexing an array of atomics,
//! so a label costs no lookup and no allocation, and every series exists (at 0) from the start.

/// What the gateway decided about one request on the public listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Answered from the gateway's path without a refusal: forwarded, a link exchanged, a
    /// verification page or form handled.
    Allowed,
    /// No rule of the share's scope allows the request (or the scope is gone).
    DeniedRoute,
    /// A protocol upgrade no rule allows.
    DeniedUpgrade,
    /// A verification form posted from elsewhere or without its form token.
    DeniedForm,
    NoSession,
    /// Malformed target, Host, framing, form or duplicate cookie.
    BadRequest,
    /// A link or guest cookie past its expiry (or a link not valid yet).
    Expired,
    /// A link that does not verify (or names no address where one is needed).
    InvalidLink,
    /// A guest cookie that does not verify.
    InvalidSession,
    Revoked,
    SharingOff,
    BodyTooLarge,
    /// The upstream did not answer, timed out, or switched protocols unasked.
    UpstreamError,
    /// Something on casegate's side failed (sealing, rewriting, mail, randomness).
    InternalError,
    /// Shared state out of reach for longer than allowed: refused, failing closed.
    StateUnavailable,
    /// The connection ended before the answer was ready: the client went away (or gave up
    /// waiting), or a shutdown's grace ran out. Logged with status 499, as nginx does.
    ClientClosed,
}

impl Decision {
    pub const ALL: [Decision; 16] = [
        Decision::Allowed,
        Decision::DeniedRoute,
        Decision::DeniedUpgrade,
        Decision::DeniedForm,
        Decision::NoSession,
        Decision::BadRequest,
        Decision::Expired,
        Decision::InvalidLink,
        Decision::InvalidSession,
        Decision::Revoked,
        Decision::SharingOff,
        Decision::BodyTooLarge,
        Decision::UpstreamError,
        Decision::InternalError,
        Decision::StateUnavailable,
        Decision::ClientClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::DeniedRoute => "denied_route",
            Decision::DeniedUpgrade => "denied_upgrade",
            Decision::DeniedForm => "denied_form",
            Decision::NoSession => "no_session",
            Decision::BadRequest => "bad_request",
            Decision::Expired => "expired",
            Decision::InvalidLink => "invalid_link",
            Decision::InvalidSession => "invalid_session",
            Decision::Revoked => "revoked",
            Decision::SharingOff => "sharing_off",
            Decision::BodyTooLarge => "body_too_large",
            Decision::UpstreamError => "upstream_error",
            Decision::InternalError => "internal_error",
            Decision::StateUnavailable => "state_unavailable",
            Decision::ClientClosed => "client_closed",
        }
    }
}

/// The class of the upstream's answer, or `error` when there was none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
    /// No answer: refused, reset, timed out.
    Error,
}

impl UpstreamClass {
    pub const ALL: [UpstreamClass; 6] = [
        UpstreamClass::Informational,
        UpstreamClass::Success,
        UpstreamClass::Redirection,
        UpstreamClass::ClientError,
        UpstreamClass::ServerError,
        UpstreamClass::Error,
    ];

    pub fn of(status: http::StatusCode) -> UpstreamClass {
        match status.as_u16() {
            100..=199 => UpstreamClass::Informational,
            200..=299 => UpstreamClass::Success,
            300..=399 => UpstreamClass::Redirection,
            400..=499 => UpstreamClass::ClientError,
            // StatusCode holds 100..=999; anything past 5xx is no class the upstream should send.
            _ => UpstreamClass::ServerError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamClass::Informational => "1xx",
            UpstreamClass::Success => "2xx",
            UpstreamClass::Redirection => "3xx",
            UpstreamClass::ClientError => "4xx",
            UpstreamClass::ServerError => "5xx",
            UpstreamClass::Error => "error",
        }
    }
}

/// How a connection on the public listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// A WebSocket tunnel, counted from the switch until either side closes.
    WebSocket,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Http1, Protocol::Http2, Protocol::WebSocket];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::WebSocket => "websocket",
        }
    }
}

/// The admin API's durable state-store writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateWrite {
    CreateShare,
    RevokeShare,
    RevokeCase,
}

impl StateWrite {
    pub const ALL: [StateWrite; 3] = [
        StateWrite::CreateShare,
        StateWrite::RevokeShare,
        StateWrite::RevokeCase,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateWrite::CreateShare => "create_share",
            StateWrite::RevokeShare => "revoke_share",
            StateWrite::RevokeCase => "revoke_case",
        }
    }
}

/// Whether something worked; the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 2] = [Outcome::Ok, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
        }
    }
}
