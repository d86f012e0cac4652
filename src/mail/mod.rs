//! Outgoing mail: the [`Mailer`] sends one [`OutgoingMail`] through the configured SMTP relay (or,
//! in development, writes it to the log), and `invite` writes the invitation a recipient gets.
//!
//! Mail is sent only after what it announces is durable (a share is recorded before its invite
//! goes out), and a failure is returned to the caller, never swallowed.

mod error;
mod invite;
mod mailer;

pub use error::MailError;
pub use invite::{Invitation, invitation_mail};
pub use mailer::{Mailer, OutgoingMail};
