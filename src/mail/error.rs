//! Why a mail was not sent. Every message is for the operator: it names the relay and the step
//! that failed, never the mail's text (which carries links and codes).

use std::fmt;
use std::time::Duration;

#[derive(Debug)]
pub enum MailError {
    /// The recipient is not an address a mail can be sent to.
    BadRecipient(lettre::address::AddressError),
    /// The message could not be assembled (a header lettre refuses).
    Build(lettre::error::Error),
    /// The TLS settings (the `ca` roots) could not be built.
    Tls(lettre::transport::smtp::Error),
    /// The relay could not be reached, refused the mail, or failed while taking it.
    Smtp {
        relay: String,
        error: lettre::transport::smtp::Error,
    },
    /// The whole delivery took longer than `mail.timeout`.
    Timeout { relay: String, after: Duration },
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailError::BadRecipient(error) => {
                write!(f, "the recipient is not a valid mail address ({error})")
            }
            MailError::Build(error) => write!(f, "the mail could not be assembled ({error})"),
            MailError::Tls(error) => {
                write!(
                    f,
                    "the TLS settings for the mail relay are unusable ({error})"
                )
            }
            MailError::Smtp { relay, error } => {
                let kind = if error.is_permanent() {
                    "refused the mail permanently"
                } else if error.is_transient() {
                    "refused the mail for now (try again later)"
                } else {
                    "could not be used"
                };
                write!(f, "the mail relay {relay} {kind}: {error}")
            }
            MailError::Timeout { relay, after } => write!(
                f,
                "the mail relay {relay} did not take the mail within {} (mail.timeout)",
                crate::config::format_duration(*after)
            ),
        }
    }
}

impl std::error::Error for MailError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MailError::BadRecipient(error) => Some(error),
            MailError::Build(error) => Some(error),
            MailError::Tls(error) | MailError::Smtp { error, .. } => Some(error),
            MailError::Timeout { .. } => None,
        }
    }
}
