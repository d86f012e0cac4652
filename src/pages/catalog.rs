//! What each recipient-facing page says: its status, stable code, title and advice.

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
    /// The request could not be understood (bad target, bad headers).
    BadRequest,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// The client asked to switch protocols (WebSocket, h2c), which guests may not do.
    UpgradeRefused,
    /// The case system could not be reached or broke the connection.
    UpstreamUnavailable,
    /// The case system did not answer within the configured time.
    UpstreamTimeout,
    /// A bug or unexpected condition in the gateway itself.
    InternalError,
}

/// The fixed content of one page; every field is a constant so a page can never carry input.
#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    /// Stable, machine-readable; clients and dashboards key on it, so never rename one.
    pub code: &'static str,
    pub title: &'static str,
    /// What happened, in plain words.
    pub explanation: &'static str,
    /// What the recipient can do about it.
    pub advice: &'static str,
}

// === impl Page ===

impl Page {
    /// Every page, for tests and for anyone listing the codes (docs, dashboards).
    pub const ALL: [Page; 15] = [
        Page::InvalidLink,
        Page::ExpiredLink,
        Page::LinkNotYetValid,
        Page::RevokedLink,
        Page::SharingDisabled,
        Page::SessionMissing,
        Page::SessionExpired,
        Page::SessionInvalid,
        Page::NotAllowed,
        Page::BadRequest,
        Page::PayloadTooLarge,
        Page::UpgradeRefused,
        Page::UpstreamUnavailable,
        Page::UpstreamTimeout,
        Page::InternalError,
    ];

    pub fn status(self) -> StatusCode {
        self.entry().status
    }

    pub fn code(self) -> &'static str {
        self.entry().code
    }

    pub fn title(self) -> &'static str {
        self.entry().title
    }

    pub fn explanation(self) -> &'static str {
        self.entry().explanation
    }

    pub fn advice(self) -> &'static str {
        self.entry().advice
    }

    /// The one table of statuses and words; adding a variant fails to compile until it has both.
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
            Page::BadRequest => &BAD_REQUEST,
            Page::PayloadTooLarge => &PAYLOAD_TOO_LARGE,
            Page::UpgradeRefused => &UPGRADE_REFUSED,
            Page::UpstreamUnavailable => &UPSTREAM_UNAVAILABLE,
            Page::UpstreamTimeout => &UPSTREAM_TIMEOUT,
            Page::InternalError => &INTERNAL_ERROR,
        }
    }
}

const ASK_SENDER: &str = "Ask the person who sent you the link for a new one.";
const OPEN_LINK_AGAIN: &str = "Open the link you were sent again.";
const TRY_LATER: &str = "Please try again in a few minutes.";

static INVALID_LINK: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "invalid_link",
    title: "This link doesn't work",
    explanation: "The link you opened is damaged or incomplete, so we can't show you the case.",
    advice: "Check that you opened the whole link. If it still fails, ask the person who sent it for a new one.",
};

static EXPIRED_LINK: Entry = Entry {
    status: StatusCode::GONE,
    code: "expired_link",
    title: "This link has expired",
    explanation: "Shared links only work for a limited time, and this one has run out.",
    advice: ASK_SENDER,
};

static LINK_NOT_YET_VALID: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "link_not_yet_valid",
    title: "This link isn't active yet",
    explanation: "The link was set up to start working at a later time.",
    advice: "Try again later, or ask the person who sent it when it will start working.",
};

static REVOKED_LINK: Entry = Entry {
    status: StatusCode::GONE,
    code: "revoked_link",
    title: "This link has been withdrawn",
    explanation: "The person who shared this case has stopped sharing it.",
    advice: "If you still need to see the case, ask them to share it with you again.",
};

static SHARING_DISABLED: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "sharing_disabled",
    title: "Sharing is turned off",
    explanation: "Sharing is turned off by the organisation, so shared links can't be opened right now.",
    advice: "If you still need to see the case, contact the person who shared it with you.",
};

static SESSION_MISSING: Entry = Entry {
    status: StatusCode::UNAUTHORIZED,
    code: "no_session",
    title: "Please open your link again",
    explanation: "We couldn't find your viewing session. This happens when cookies are blocked or the browser was closed.",
    advice: "Open the link you were sent again. If this keeps happening, allow cookies for this site.",
};

static SESSION_EXPIRED: Entry = Entry {
    status: StatusCode::UNAUTHORIZED,
    code: "session_expired",
    title: "Your viewing session has ended",
    explanation: "To protect the patient's privacy, viewing sessions end after a while.",
    advice: "Open the link you were sent again to continue. If the link has expired too, ask the sender for a new one.",
};

static SESSION_INVALID: Entry = Entry {
    status: StatusCode::UNAUTHORIZED,
    code: "session_invalid",
    title: "Please open your link again",
    explanation: "Your viewing session could not be confirmed, so we ended it to be safe.",
    advice: OPEN_LINK_AGAIN,
};

static NOT_ALLOWED: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "not_allowed",
    title: "This isn't part of what was shared",
    explanation: "Your link lets you view one case, and nothing else.",
    advice: "If you need more, ask the person who shared the case with you.",
};

static BAD_REQUEST: Entry = Entry {
    status: StatusCode::BAD_REQUEST,
    code: "bad_request",
    title: "Something went wrong with the request",
    explanation: "Your browser sent a request we couldn't understand.",
    advice: "Go back and try again, or open the link you were sent again.",
};

static PAYLOAD_TOO_LARGE: Entry = Entry {
    status: StatusCode::PAYLOAD_TOO_LARGE,
    code: "payload_too_large",
    title: "That was too large to send",
    explanation: "What you tried to send is bigger than this service accepts.",
    advice: "Try again with something smaller.",
};

static UPGRADE_REFUSED: Entry = Entry {
    status: StatusCode::FORBIDDEN,
    code: "upgrade_refused",
    title: "Live connections aren't available",
    explanation: "This shared view doesn't allow live connections.",
    advice: "Reload the page; everything you were given access to works without them.",
};

static UPSTREAM_UNAVAILABLE: Entry = Entry {
    status: StatusCode::BAD_GATEWAY,
    code: "upstream_unavailable",
    title: "The case system isn't responding",
    explanation: "The hospital's case system couldn't be reached just now.",
    advice: TRY_LATER,
};

static UPSTREAM_TIMEOUT: Entry = Entry {
    status: StatusCode::GATEWAY_TIMEOUT,
    code: "upstream_timeout",
    title: "The case system is taking too long",
    explanation: "The hospital's case system didn't answer in time.",
    advice: TRY_LATER,
};

static INTERNAL_ERROR: Entry = Entry {
    status: StatusCode::INTERNAL_SERVER_ERROR,
    code: "internal_error",
    title: "Something went wrong on our side",
    explanation: "An unexpected problem stopped us from showing this page.",
    advice: "Please try again in a few minutes. If it keeps happening, tell the person who sent you the link.",
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
            (Page::BadRequest, 400, "bad_request"),
            (Page::PayloadTooLarge, 413, "payload_too_large"),
            (Page::UpgradeRefused, 403, "upgrade_refused"),
            (Page::UpstreamUnavailable, 502, "upstream_unavailable"),
            (Page::UpstreamTimeout, 504, "upstream_timeout"),
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
    fn words_are_short_sentences_without_markup() {
        for page in Page::ALL {
            let entry = page.entry();
            for text in [entry.title, entry.explanation, entry.advice] {
                assert!(!text.is_empty(), "{page:?} has an empty text");
                assert!(
                    text.len() <= 120,
                    "{page:?} is too long for a phone: {text}"
                );
                // Rendering inserts these verbatim into HTML and JSON.
                assert!(
                    !text.contains(['<', '>', '&', '"', '\\']),
                    "{page:?} needs escaping: {text}"
                );
            }
            assert!(entry.explanation.ends_with('.'), "{page:?}");
            assert!(entry.advice.ends_with('.'), "{page:?}");
        }
    }
}
