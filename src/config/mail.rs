//! `[mail]`: how casegate sends invitations (and verification codes): an SMTP relay reached with
//! STARTTLS or implicit TLS, or, for development only, the log.

use std::io::Read;
use std::time::Duration;

use lettre::message::Mailbox;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use toml::Spanned;

use super::secret_source::SecretText;
use super::{Bounds, Validator, file, secs};

/// A CA file holds a few certificates; anything larger is the wrong file.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = secs(10);
const TIMEOUT_BOUNDS: Bounds = Bounds {
    min: secs(1),
    max: secs(5 * 60),
};
/// The ports lettre and RFC 8314 assume when the URL names none.
const SMTP_PORT: u16 = 25;
const SMTPS_PORT: u16 = 465;

/// Validated `[mail]`.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The `From` of every mail, a parsed mailbox (`Case sharing <noreply@clinic.example>`).
    pub from: Mailbox,
    pub delivery: MailDelivery,
    /// Bounds the whole delivery of one mail: connect, TLS, every SMTP command.
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub enum MailDelivery {
    Smtp(SmtpRelay),
    /// `mode = "log"`: mails are written to the log, never sent. Development only.
    Log,
}

/// The relay every mail goes through.
#[derive(Clone, Debug)]
pub struct SmtpRelay {
    pub security: SmtpSecurity,
    /// A DNS name or an IP address (without brackets); the certificate must name it.
    pub host: String,
    pub port: u16,
    pub credentials: Option<SmtpCredentials>,
    /// DER certificates trusted in addition to the public roots (`ca = "file.pem"`).
    pub extra_roots: Vec<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS when the relay offers it, and required when credentials are set, so a
    /// password never crosses the network in clear text.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
}

/// `Debug` prints `***` for both (they are [`SecretText`]).
#[derive(Clone, Debug)]
pub struct SmtpCredentials {
    pub username: SecretText,
    pub password: SecretText,
}

// === impl SmtpRelay ===

impl SmtpRelay {
    /// `smtp://host:port`, for log lines and messages (never with credentials).
    pub fn url(&self) -> String {
        let scheme = match self.security {
            SmtpSecurity::StartTls => "smtp",
            SmtpSecurity::ImplicitTls => "smtps",
        };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

// === impl Validator ===

impl Validator<'_, '_> {
    pub(super) fn mail(&mut self, raw: Spanned<file::MailSection>) -> Option<Mail> {
        let span = raw.span();
        let raw = raw.into_inner();
        let from = match raw.from.get_ref().parse::<Mailbox>() {
            Ok(mailbox) => Some(mailbox),
            Err(error) => {
                self.diag.error(
                    raw.from.span(),
                    format_args!(
                        "mail.from: {:?} is not a mailbox ({error}); write \"Name <addr@example.org>\" \
                         or \"addr@example.org\"",
                        raw.from.get_ref()
                    ),
                );
                None
            }
        };
        let timeout = self.optional_duration(
            "mail.timeout",
            raw.timeout.as_ref(),
            DEFAULT_TIMEOUT,
            &TIMEOUT_BOUNDS,
        );
        let log_mode = match raw
            .mode
            .as_ref()
            .map(|mode| (mode, mode.get_ref().as_str()))
        {
            None | Some((_, "smtp")) => Some(false),
            Some((_, "log")) => Some(true),
            Some((mode, other)) => {
                self.diag.error(
                    mode.span(),
                    format_args!("mail.mode: {other:?} is not \"smtp\" or \"log\""),
                );
                None
            }
        };
        // The relay is checked in log mode too, so switching back to smtp cannot surprise.
        let relay = raw.smtp.as_ref().map(|smtp| self.smtp_relay(smtp, &raw));
        let delivery = match (log_mode?, relay) {
            (true, Some(None)) => return None,
            (true, _) => MailDelivery::Log,
            (false, Some(relay)) => MailDelivery::Smtp(relay?),
            (false, None) => {
                self.diag.error(
                    span,
                    "mail: needs smtp = \"smtp://host:port\" (or \"smtps://...\"), \
                     or mode = \"log\" for development",
                );
                return None;
            }
        };
        Some(Mail {
            from: from?,
            delivery,
            timeout: timeout?,
        })
    }

    fn smtp_relay(&mut self, smtp: &Spanned<String>, raw: &file::MailSection) -> Option<SmtpRelay> {
        let endpoint = match parse_smtp_url(smtp.get_ref()) {
            Ok(endpoint) => Some(endpoint),
            Err(problem) => {
                self.diag
                    .error(smtp.span(), format_args!("mail.smtp: {problem}"));
                None
            }
        };
        let username = raw
            .username
            .as_ref()
            .map(|source| self.secret("mail.username", source));
        let password = raw
            .password
            .as_ref()
            .map(|source| self.secret("mail.password", source));
        let credentials = match (username, password) {
            (None, None) => Some(None),
            (Some(username), Some(password)) => Some(Some(SmtpCredentials {
                username: username?,
                password: password?,
            })),
            (Some(_), None) | (None, Some(_)) => {
                let span = raw
                    .username
                    .as_ref()
                    .or(raw.password.as_ref())
                    .map_or(smtp.span(), Spanned::span);
                self.diag.error(
                    span,
                    "mail: username and password go together; set both or neither",
                );
                None
            }
        };
        let extra_roots = match &raw.ca {
            Some(ca) => self.ca_roots(ca),
            None => Some(Vec::new()),
        };
        let (security, host, port) = endpoint?;
        Some(SmtpRelay {
            security,
            host,
            port,
            credentials: credentials?,
            extra_roots: extra_roots?,
        })
    }

    /// Every certificate of a PEM file, at least one.
    fn ca_roots(&mut self, raw: &Spanned<String>) -> Option<Vec<Vec<u8>>> {
        let path = self.readable_file("mail.ca", raw)?;
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|file| file.take(MAX_CA_FILE_BYTES).read_to_end(&mut bytes));
        if let Err(error) = read {
            self.diag.error(
                raw.span(),
                format_args!("mail.ca: cannot read {}: {error}", path.display()),
            );
            return None;
        }
        let certificates: Result<Vec<CertificateDer<'static>>, _> =
            CertificateDer::pem_slice_iter(&bytes).collect();
        match certificates {
            Ok(certificates) if !certificates.is_empty() => Some(
                certificates
                    .into_iter()
                    .map(|certificate| certificate.as_ref().to_vec())
                    .collect(),
            ),
            Ok(_) | Err(_) => {
                self.diag.error(
                    raw.span(),
                    format_args!(
                        "mail.ca: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    ),
                );
                None
            }
        }
    }
}

/// `smtp://host[:port]` or `smtps://host[:port]`, nothing else: credentials belong in
/// `username`/`password` (secret sources), never in a URL that ends up in logs.
fn parse_smtp_url(text: &str) -> Result<(SmtpSecurity, String, u16), String> {
    let (security, rest) = if let Some(rest) = text.strip_prefix("smtp://") {
        (SmtpSecurity::StartTls, rest)
    } else if let Some(rest) = text.strip_prefix("smtps://") {
        (SmtpSecurity::ImplicitTls, rest)
    } else {
        return Err(format!(
            "{text:?} must start with smtp:// (STARTTLS when offered) or smtps:// (implicit TLS)"
        ));
    };
    let default_port = match security {
        SmtpSecurity::StartTls => SMTP_PORT,
        SmtpSecurity::ImplicitTls => SMTPS_PORT,
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(
            "must not carry credentials; set username and password as secret sources".to_owned(),
        );
    }
    if authority.contains(['/', '?', '#']) {
        return Err(format!(
            "{text:?} must be only scheme, host and port, like smtp://mail.example.org:587"
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{text:?} has an unclosed [ in its host"))?;
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{address:?} is not an IPv6 address"));
        }
        (address.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    let is_host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':';
    if host.is_empty() || !host.chars().all(is_host_char) {
        return Err(format!("{text:?} does not name a host"));
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("{port:?} is not a port (1-65535)"))?,
    };
    Ok((security, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_name_the_security_host_and_port() {
        let cases: &[(&str, SmtpSecurity, &str, u16)] = &[
            (
                "smtp://127.0.0.1:2525",
                SmtpSecurity::StartTls,
                "127.0.0.1",
                2525,
            ),
            (
                "smtp://Mail.Example.org",
                SmtpSecurity::StartTls,
                "mail.example.org",
                25,
            ),
            (
                "smtps://mail.example.org/",
                SmtpSecurity::ImplicitTls,
                "mail.example.org",
                465,
            ),
            ("smtps://[::1]:4650", SmtpSecurity::ImplicitTls, "::1", 4650),
        ];
        for (text, security, host, port) in cases {
            assert_eq!(
                parse_smtp_url(text),
                Ok((*security, (*host).to_owned(), *port)),
                "{text}"
            );
        }
    }

    #[test]
    fn anything_but_scheme_host_and_port_is_refused() {
        let cases = [
            "mail.example.org:25",
            "http://mail.example.org",
            "smtp://user:pass@mail.example.org",
            "smtp://mail.example.org:25/path",
            "smtp://mail.example.org?x=1",
            "smtp://:25",
            "smtp://mail.example.org:0",
            "smtp://mail.example.org:65536",
            "smtp://[::1",
            "smtp://[not-ip]:25",
            "smtp://mail_example.org",
            "SMTP://mail.example.org",
        ];
        for text in cases {
            assert!(parse_smtp_url(text).is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn a_relay_url_is_shown_without_credentials() {
        let relay = SmtpRelay {
            security: SmtpSecurity::ImplicitTls,
            host: "::1".to_owned(),
            port: 465,
            credentials: None,
            extra_roots: Vec::new(),
        };
        assert_eq!(relay.url(), "smtps://[::1]:465");
    }
}
