//! The [`Mailer`]: one configured way of delivering mail, shared by everything that sends some
//! (invitations, verification codes). Each send opens its own SMTP session, bounded as a whole
//! by `mail.timeout`, so a slow relay holds up one request, never the gateway.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tracing::warn;

use super::MailError;
use crate::config::{self, MailDelivery, SmtpRelay, SmtpSecurity};

/// One plain-text mail to one recipient. The `From` is the configured one.
#[derive(Clone, Debug)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Sends mail as `[mail]` says. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    from: Mailbox,
    timeout: Duration,
    transport: Transport,
}

enum Transport {
    Smtp {
        /// `smtp://host:port`, for messages.
        relay: String,
        /// Boxed: the client is large and lives once per gateway.
        client: Box<AsyncSmtpTransport<Tokio1Executor>>,
    },
    Log,
}

impl Mailer {
    /// The mailer for a validated `[mail]`. In log mode it warns, loudly and once, that mails
    /// (with the links and codes in them) go to the log.
    pub fn new(config: &config::Mail) -> Result<Mailer, MailError> {
        let transport = match &config.delivery {
            MailDelivery::Smtp(relay) => Transport::Smtp {
                relay: relay.url(),
                client: Box::new(smtp_client(relay, config.timeout)?),
            },
            MailDelivery::Log => {
                warn!(
                    target: "casegate::mail",
                    "mail.mode = \"log\": NO MAIL IS SENT. Every mail, with the links and codes in it, \
                     is written to this log instead. For development only: anyone who reads the log \
                     can open the shared cases"
                );
                Transport::Log
            }
        };
        Ok(Mailer {
            inner: Arc::new(Inner {
                from: config.from.clone(),
                timeout: config.timeout,
                transport,
            }),
        })
    }

    /// Where mail goes, for the start-up log: the relay's URL, or "the log".
    pub fn destination(&self) -> &str {
        match &self.inner.transport {
            Transport::Smtp { relay, .. } => relay,
            Transport::Log => "the log (mail.mode = \"log\")",
        }
    }

    /// Sends one mail (SMTP) or writes it to the log (mode = "log"), bounded by `mail.timeout`.
    pub async fn send(&self, mail: OutgoingMail) -> Result<(), MailError> {
        let to = mail
            .to
            .parse::<Address>()
            .map_err(MailError::BadRecipient)?;
        match &self.inner.transport {
            Transport::Log => {
                warn!(
                    target: "casegate::mail",
                    to = %to,
                    subject = %mail.subject,
                    body = %mail.text,
                    "mail written to the log, not sent (mail.mode = \"log\")"
                );
                Ok(())
            }
            Transport::Smtp { relay, client } => {
                let message = Message::builder()
                    .from(self.inner.from.clone())
                    .to(Mailbox::new(None, to))
                    .subject(mail.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.text)
                    .map_err(MailError::Build)?;
                match tokio::time::timeout(self.inner.timeout, client.send(message)).await {
                    Ok(Ok(_response)) => Ok(()),
                    Ok(Err(error)) => Err(MailError::Smtp {
                        relay: relay.clone(),
                        error,
                    }),
                    Err(_elapsed) => Err(MailError::Timeout {
                        relay: relay.clone(),
                        after: self.inner.timeout,
                    }),
                }
            }
        }
    }
}

/// The SMTP client for a relay: rustls with the public roots plus `ca`, STARTTLS required
/// whenever credentials would otherwise cross the network in clear text.
fn smtp_client(
    relay: &SmtpRelay,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let mut tls = TlsParameters::builder(relay.host.clone());
    for der in &relay.extra_roots {
        tls = tls.add_root_certificate(Certificate::from_der(der.clone()).map_err(MailError::Tls)?);
    }
    let tls = tls.build_rustls().map_err(MailError::Tls)?;
    let tls = match (relay.security, relay.credentials.is_some()) {
        (SmtpSecurity::ImplicitTls, _) => Tls::Wrapper(tls),
        (SmtpSecurity::StartTls, true) => Tls::Required(tls),
        (SmtpSecurity::StartTls, false) => Tls::Opportunistic(tls),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(relay.host.clone())
        .port(relay.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(credentials) = &relay.credentials {
        builder = builder.credentials(Credentials::new(
            credentials.username.expose().to_owned(),
            credentials.password.expose().to_owned(),
        ));
    }
    Ok(builder.build())
}
