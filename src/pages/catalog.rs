//! Each recipient-facing page the gateway answers a refusal with: its status and stable code.
//! The words are templates (`templates/<lang>/<code>.html`, titles and JSON messages in
//! `messages.toml`), so they exist in every language and an operator can change them.

use http::StatusCode;

/// Something a recipient can run into, from a broken link to an unreachable case system.
///
/// There is deliberately no "method not allowed" or "not found": the gateway denies whatever the
/// policy does not allow without saying which methods or paths exist, so both are [`Page::NotAllowed`];
/// a 404 from the case system itself is forwarded as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Page {
    /// The link token is malformed, truncated, or its signature does not verify.
    InvalidLink,
    /// The link token verified but its expiry has passed.
    ExpiredLink,
    /// The link token verified but its start time is still in the future.
    LinkNotYetValid,
    /// The link or guest cookie verified but the share (or its whole case) was revoked.
    /// "Withdrawn" needs different advice than "expired".
    RevokedLink,
    /// The organisation has turned external sharing off (`[links] enabled = false`): every link
    /// and guest session is refused, whatever it carries.
    SharingDisabled,
    /// No guest cookie was sent on a request that needs one.
    SessionMissing,
    /// The guest cookie verified but its expiry has passed.
    SessionExpired,
    /// The guest cookie is malformed or its signature does not verify.
    SessionInvalid,
    /// The guest is authenticated but the policy does not allow this method and target.
    NotAllowed,
    /// A verification form was posted without its form token, with one of another session, or
    /// from another site. The recipient's own button press lands here only when the page is
    /// stale, so the advice is to go back and try again.
    FormRefused,
    /// The request could not be understood (bad target, bad headers).
    BadRequest,
    /// The request named another site in `Host` than the one casegate serves (`public_url`).
    MisdirectedRequest,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// The client asked to switch protocols (WebSocket, h2c), which guests may not do.
    UpgradeRefused,
    /// The case system could not be reached or broke the connection.
    UpstreamUnavailable,
    /// The case system did not answer within the configured time.
    UpstreamTimeout,
    /// The gateway cannot tell whether this share was revoked (its shared state is out of reach
    /// for longer than allowed), so it refuses rather than guess.
    TemporarilyUnavailable,
    /// A bug or unexpected condition in the gateway itself.
    InternalError,
}

/// The fixed facts of one page.
#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    /// Stable, machine-readable; clients and dashboards key on it, so never rename one. It is
    /// also the name of the page's template.
    pub code: &'static str,
}

// === impl Page ===

impl Page {
    /// Every page, for tests and for anyone listing the codes (docs, dashboards).
    pub const ALL: [Page; 18] = [
        Page::InvalidLink,
        Page::ExpiredLink,
        Page::LinkNotYetValid,
        Page::RevokedLink,
        Page::SharingDisabled,
        Page::SessionMissing,
        Page::SessionExpired,
        Page::SessionInvalid,
        Page::NotAllowed,
        Page::FormRefused,
        Page::BadRequest,
        Page::MisdirectedRequest,
        Page::PayloadTooLarge,
        Page::UpgradeRefused,
        Page::UpstreamUnavailable,
        Page::UpstreamTimeout,
        Page::TemporarilyUnavailable,
        Page::InternalError,
    ];

    pub fn status(self) -> StatusCode {
        self.entry().status
    }

    pub fn code(self) -> &'static str {
        self.entry().code
    }

    /// The one table of statuses and codes; adding a variant fails to compile until it has both.
    pub fn entry(self) -> &'static Entry {
        match self {
            Page::InvalidLink => &INVALID_LINK,
            Page::ExpiredLink => &EXPIRED_LINK,
            Page::LinkNotYetValid => &LINK_NOT_YET_VALID,
            Page::RevokedLink => &REVOKED_LINK,
            Page::SharingDisabled => &SHARING_DISABLED,
            Page::SessionMissing => &SESSION_MISSING,
            Page::SessionExpired => &SESSION_EXPIRED,
            Page::SessionInvalid => &SESSION_INVALID,
            Page::NotAllowed => &NOT_ALLOWED,
            Page::FormRefused => &FORM_REFUSED,
            Page::BadRequest => &BAD_REQUEST,
            Page::MisdirectedRequest => &MISDIRECTED_REQUEST,
            Page::PayloadTooLarge => &PAYLOAD_TOO_LARGE,
            Page::UpgradeRefused => &UPGRADE_REFUSED,
            Page::UpstreamUnavailable => &UPSTREAM_UNAVAILABLE,
            Page::UpstreamTimeout => &UPSTREAM_TIMEOUT,
            Page::TemporarilyUnavailable => &TEMPORARILY_UNAVAILABLE,
            Page::InternalError => &INTERNAL_ERROR,
        }
    }
}

static INVALID_LINK: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "invalid_link",
};

static EXPIRED_LINK: Entry = Entry {
    status: StatusCode::GONE,
    code: "expired_link",
};

static LINK_NOT_YET_VALID: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "link_not_yet_valid",
};

static REVOKED_LINK: Entry = Entry {
    status: StatusCode::GONE,
    code: "revoked_link",
};

static SHARING_DISABLED: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "sharing_disabled",
};

static SESSION_MISSING: Entry = Entry {
    status: StatusCode::UNAUTHORIZED,
    code: "no_session",
};

static SESSION_EXPIRED: Entry = Entry {
    status: StatusCode::UNAUTHORIZED,
    code: "session_expired",
};

static SESSION_INVALID: Entry = Entry {
    status: StatusCode::UNAUTHORIZED,
    code: "session_invalid",
};

static NOT_ALLOWED: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "not_allowed",
};

static FORM_REFUSED: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "form_refused",
};

static BAD_REQUEST: Entry = Entry {
    status: StatusCode::BAD_REQUEST,
    code: "bad_request",
};

static MISDIRECTED_REQUEST: Entry = Entry {
    status: StatusCode::MISDIRECTED_REQUEST,
    code: "misdirected_request",
};

static PAYLOAD_TOO_LARGE: Entry = Entry {
    status: StatusCode::PAYLOAD_TOO_LARGE,
    code: "payload_too_large",
};

static UPGRADE_REFUSED: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "upgrade_refused",
};

static UPSTREAM_UNAVAILABLE: Entry = Entry {
    status: StatusCode::BAD_GATEWAY,
    code: "upstream_unavailable",
};

static UPSTREAM_TIMEOUT: Entry = Entry {
    status: StatusCode::GATEWAY_TIMEOUT,
    code: "upstream_timeout",
};

static TEMPORARILY_UNAVAILABLE: Entry = Entry {
    status: StatusCode::SERVICE_UNAVAILABLE,
    code: "temporarily_unavailable",
};

static INTERNAL_ERROR: Entry = Entry {
    status: StatusCode::INTERNAL_SERVER_ERROR,
    code: "internal_error",
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn each_page_has_its_agreed_status_and_code() {
        let table = [
            (Page::InvalidLink, 403, "invalid_link"),
            (Page::ExpiredLink, 410, "expired_link"),
            (Page::LinkNotYetValid, 403, "link_not_yet_valid"),
            (Page::RevokedLink, 410, "revoked_link"),
            (Page::SharingDisabled, 403, "sharing_disabled"),
            (Page::SessionMissing, 401, "no_session"),
            (Page::SessionExpired, 401, "session_expired"),
            (Page::SessionInvalid, 401, "session_invalid"),
            (Page::NotAllowed, 403, "not_allowed"),
            (Page::FormRefused, 403, "form_refused"),
            (Page::BadRequest, 400, "bad_request"),
            (Page::MisdirectedRequest, 421, "misdirected_request"),
            (Page::PayloadTooLarge, 413, "payload_too_large"),
            (Page::UpgradeRefused, 403, "upgrade_refused"),
            (Page::UpstreamUnavailable, 502, "upstream_unavailable"),
            (Page::UpstreamTimeout, 504, "upstream_timeout"),
            (Page::TemporarilyUnavailable, 503, "temporarily_unavailable"),
            (Page::InternalError, 500, "internal_error"),
        ];
        assert_eq!(
            table.len(),
            Page::ALL.len(),
            "the table must cover every page"
        );
        for (page, status, code) in table {
            assert_eq!(page.status().as_u16(), status, "{page:?} status");
            assert_eq!(page.code(), code, "{page:?} code");
        }
    }

    #[test]
    fn codes_are_unique_lowercase_snake_case() {
        let mut seen = HashSet::new();
        for page in Page::ALL {
            let code = page.code();
            assert!(seen.insert(code), "{code} is used twice");
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code} is not snake_case"
            );
        }
    }

    #[test]
    fn every_page_is_an_error_status() {
        for page in Page::ALL {
            assert!(
                page.status().is_client_error() || page.status().is_server_error(),
                "{page:?}"
            );
        }
    }

    #[test]
    fn every_page_has_a_page_template_named_by_its_code() {
        for page in Page::ALL {
            assert_eq!(
                crate::pages::specs::spec(page.code()).map(|spec| spec.kind),
                Some(crate::pages::specs::Kind::Page),
                "{page:?}"
            );
        }
    }
}
