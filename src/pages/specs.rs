//! Every template casegate knows: its name, what kind it is, and the only placeholders it may
//! use. Loading checks every template, embedded or overridden, against this table.

/// What a template is rendered into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The body of an HTML page (`<name>.html`), placed inside the layout; values HTML-escaped.
    Page,
    /// The HTML around every page (`layout.html`).
    Layout,
    /// A plain-text email body (`<name>.txt`); values inserted as they are.
    Text,
}

#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    /// Placeholders the template may use. A page's `title` is filled from its `<name>.title` message.
    pub vars: &'static [&'static str],
    /// Whether the page posts a form back to the gateway, which its CSP must then allow.
    pub has_form: bool,
}

impl Spec {
    pub fn file_name(&self) -> String {
        let extension = match self.kind {
            Kind::Page | Kind::Layout => "html",
            Kind::Text => "txt",
        };
        format!("{}.{extension}", self.name)
    }

    /// The message keys this template comes with, which every language must define.
    pub fn message_keys(&self) -> Vec<String> {
        match self.kind {
            Kind::Page => vec![
                format!("{}.title", self.name),
                format!("{}.message", self.name),
            ],
            Kind::Text => vec![format!("{}.subject", self.name)],
            Kind::Layout => Vec::new(),
        }
    }
}

/// The layout's placeholders: `content` is the rendered page and `style` the fixed stylesheet,
/// both inserted as markup; the rest are escaped like any value.
pub const LAYOUT_VARS: &[&str] = &["lang", "title", "error_code", "style", "content"];

/// A page for one of the gateway's refusals; its name is the page's stable JSON code.
const fn error_page(name: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Page,
        vars: &["title"],
        has_form: false,
    }
}

/// Every template; the embedded set has each of them in every language.
pub const SPECS: &[Spec] = &[
    Spec {
        name: "layout",
        kind: Kind::Layout,
        vars: LAYOUT_VARS,
        has_form: false,
    },
    error_page("invalid_link"),
    error_page("expired_link"),
    error_page("link_not_yet_valid"),
    error_page("revoked_link"),
    error_page("sharing_disabled"),
    error_page("no_session"),
    error_page("session_expired"),
    error_page("session_invalid"),
    error_page("not_allowed"),
    error_page("form_refused"),
    error_page("bad_request"),
    error_page("misdirected_request"),
    error_page("payload_too_large"),
    error_page("upgrade_refused"),
    error_page("upstream_unavailable"),
    error_page("upstream_timeout"),
    error_page("temporarily_unavailable"),
    error_page("internal_error"),
    // Verification (forms post `csrf`, and `code` on the code form).
    Spec {
        name: "verify",
        kind: Kind::Page,
        vars: &["title", "masked_email", "form_action", "csrf", "login_url"],
        has_form: true,
    },
    Spec {
        name: "code_sent",
        kind: Kind::Page,
        vars: &[
            "title",
            "masked_email",
            "form_action",
            "resend_action",
            "csrf",
            "code_ttl_minutes",
            "login_url",
        ],
        has_form: true,
    },
    Spec {
        name: "wrong_code",
        kind: Kind::Page,
        vars: &[
            "title",
            "attempts_left",
            "form_action",
            "resend_action",
            "csrf",
        ],
        has_form: true,
    },
    Spec {
        name: "code_expired",
        kind: Kind::Page,
        vars: &["title", "resend_action", "csrf"],
        has_form: true,
    },
    Spec {
        name: "too_many_attempts",
        kind: Kind::Page,
        vars: &["title", "retry_after_minutes", "resend_action", "csrf"],
        has_form: true,
    },
    Spec {
        name: "rate_limited",
        kind: Kind::Page,
        vars: &["title", "retry_after_seconds", "back_url"],
        has_form: false,
    },
    // Emails.
    Spec {
        name: "invite",
        kind: Kind::Text,
        vars: &["url", "case", "sender", "note", "expires_at"],
        has_form: false,
    },
    Spec {
        name: "code",
        kind: Kind::Text,
        vars: &["code", "code_ttl_minutes"],
        has_form: false,
    },
];

pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|spec| spec.name == name)
}

/// The spec an override file name (`invalid_link.html`, `invite.txt`) stands for.
pub fn spec_for_file(file_name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|spec| spec.file_name() == file_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for spec in SPECS {
            assert!(seen.insert(spec.name), "{} twice", spec.name);
        }
    }

    #[test]
    fn file_names_map_back_to_their_spec() {
        for spec in SPECS {
            assert_eq!(
                spec_for_file(&spec.file_name()).map(|s| s.name),
                Some(spec.name)
            );
        }
        assert!(spec_for_file("invite.html").is_none());
        assert!(spec_for_file("verify.txt").is_none());
    }
}
