//! A real SMTP server inside the test process, over TCP on 127.0.0.1, so tests receive the mails
//! casegate really sends: EHLO/HELO, optional STARTTLS or implicit TLS (with the test PKI),
//! AUTH PLAIN when credentials are required, MAIL/RCPT/DATA/RSET/NOOP/QUIT, and a switch that
//! makes the next DATA commands fail (451) to test how failures reach the caller.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::pki::TestPki;

/// A command line or a message longer than this ends the session: a client bug, not a mail.
const MAX_LINE: usize = 4096;
const MAX_MESSAGE: usize = 1024 * 1024;

/// One mail as the server received it, with its text decoded.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// The `From` header, decoded (e.g. `Case sharing <noreply@clinic.example>`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`), without angle brackets.
    pub to: Vec<String>,
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub envelope_from: String,
    /// The `To` header, decoded.
    pub header_to: String,
    /// The `Subject` header, decoded (RFC 2047 encoded words included).
    pub subject: String,
    /// The body, transfer encoding undone (base64, quoted-printable), lines joined by `\n`.
    pub body: String,
    /// Every header, unfolded and decoded, in order.
    pub headers: Vec<(String, String)>,
    /// Whether the mail arrived over TLS (STARTTLS or implicit).
    pub tls: bool,
    /// The user name of a successful AUTH PLAIN, if the client authenticated.
    pub auth_user: Option<String>,
    /// The message exactly as received after dot-unstuffing.
    pub raw: String,
}

impl ReceivedMail {
    /// The first header with this name (case-insensitive), decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    None,
    StartTls,
    Implicit,
}

struct Shared {
    mails: Mutex<Vec<(ReceivedMail, bool)>>,
    arrived: Notify,
    fail_next: AtomicUsize,
    tls: Option<TlsAcceptor>,
    mode: TlsMode,
    credentials: Option<(String, String)>,
}

pub struct TestSmtp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl TestSmtp {
    /// A plain SMTP server (no STARTTLS offered, no AUTH).
    pub async fn start() -> TestSmtp {
        Self::launch(TlsMode::None, None, None).await
    }

    /// A server that offers STARTTLS with the PKI's `localhost` certificate.
    pub async fn start_starttls(pki: &TestPki) -> TestSmtp {
        Self::launch(TlsMode::StartTls, Some(pki), None).await
    }

    /// A server that speaks TLS from the first byte (smtps).
    pub async fn start_implicit_tls(pki: &TestPki) -> TestSmtp {
        Self::launch(TlsMode::Implicit, Some(pki), None).await
    }

    /// A plain server that refuses MAIL until the client authenticated with AUTH PLAIN as
    /// `user`/`password`.
    pub async fn start_with_auth(user: &str, password: &str) -> TestSmtp {
        Self::launch(
            TlsMode::None,
            None,
            Some((user.to_owned(), password.to_owned())),
        )
        .await
    }

    /// A server that offers STARTTLS and, once TLS is up, requires AUTH PLAIN as
    /// `user`/`password` (as real submission relays do).
    pub async fn start_starttls_with_auth(pki: &TestPki, user: &str, password: &str) -> TestSmtp {
        Self::launch(
            TlsMode::StartTls,
            Some(pki),
            Some((user.to_owned(), password.to_owned())),
        )
        .await
    }

    async fn launch(
        mode: TlsMode,
        pki: Option<&TestPki>,
        credentials: Option<(String, String)>,
    ) -> TestSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let addr = listener.local_addr().expect("smtp addr");
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            fail_next: AtomicUsize::new(0),
            tls: pki.map(acceptor),
            mode,
            credentials,
        });
        let accepting = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&accepting);
                tokio::spawn(async move {
                    // A broken session only loses its own mail; the test then times out waiting.
                    let _ = serve(stream, shared).await;
                });
            }
        });
        TestSmtp { addr, shared, task }
    }

    /// `smtp://127.0.0.1:PORT`, or `smtp://localhost:PORT` / `smtps://localhost:PORT` when TLS is
    /// on (the test certificate names `localhost`).
    pub fn url(&self) -> String {
        match self.shared.mode {
            TlsMode::None => format!("smtp://127.0.0.1:{}", self.addr.port()),
            TlsMode::StartTls => format!("smtp://localhost:{}", self.addr.port()),
            TlsMode::Implicit => format!("smtps://localhost:{}", self.addr.port()),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many mails were accepted so far.
    pub fn count(&self) -> usize {
        self.shared.mails.lock().unwrap().len()
    }

    /// Answers 451 to the next `n` DATA commands.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// The oldest mail to `to` not yet returned by this method; panics after `timeout`, listing
    /// what did arrive.
    pub async fn wait_for_mail(&self, to: &str, timeout: Duration) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            if let Some(mail) = self.take(to) {
                return mail;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen: Vec<Vec<String>> = self
                    .shared
                    .mails
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(mail, _)| mail.to.clone())
                    .collect();
                panic!("no mail to {to} within {timeout:?}; recipients seen: {seen:?}");
            }
        }
    }

    /// Asserts that no mail to `to` arrives within `wait`.
    pub async fn assert_no_mail(&self, to: &str, wait: Duration) {
        tokio::time::sleep(wait).await;
        assert!(
            self.take(to).is_none(),
            "an unexpected mail to {to} arrived"
        );
    }

    fn take(&self, to: &str) -> Option<ReceivedMail> {
        let mut mails = self.shared.mails.lock().unwrap();
        let (mail, taken) = mails.iter_mut().find(|(mail, taken)| {
            !*taken && mail.to.iter().any(|rcpt| rcpt.eq_ignore_ascii_case(to))
        })?;
        *taken = true;
        Some(mail.clone())
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn acceptor(pki: &TestPki) -> TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.dir.join("cert.pem"))
            .expect("test cert")
            .collect::<Result<_, _>>()
            .expect("test cert pem");
    let key = PrivateKeyDer::from_pem_file(pki.dir.join("key.pem")).expect("test key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server tls config");
    TlsAcceptor::from(Arc::new(config))
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The state of one SMTP session between commands.
#[derive(Default)]
struct Session {
    greeted: bool,
    authenticated: Option<String>,
    mail_from: Option<String>,
    recipients: Vec<String>,
}

impl Session {
    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut tls = false;
    let mut reader: BufReader<Box<dyn Stream>> = if shared.mode == TlsMode::Implicit {
        let acceptor = shared.tls.clone().expect("implicit TLS has a certificate");
        tls = true;
        BufReader::new(Box::new(acceptor.accept(stream).await?))
    } else {
        BufReader::new(Box::new(stream))
    };
    reply(&mut reader, "220 test.smtp ESMTP casegate test server").await?;
    let mut session = Session::default();
    loop {
        let Some(line) = read_line(&mut reader).await? else {
            return Ok(());
        };
        let upper = line.to_ascii_uppercase();
        let verb = upper.split(' ').next().unwrap_or("");
        match verb {
            "EHLO" => {
                session = Session {
                    greeted: true,
                    authenticated: session.authenticated,
                    ..Session::default()
                };
                let mut lines = vec!["250-test.smtp".to_owned(), "250-8BITMIME".to_owned()];
                if shared.mode == TlsMode::StartTls && !tls {
                    lines.push("250-STARTTLS".to_owned());
                }
                // A STARTTLS server takes credentials only over TLS.
                if shared.credentials.is_some() && (shared.mode != TlsMode::StartTls || tls) {
                    lines.push("250-AUTH PLAIN".to_owned());
                }
                lines.push("250 SIZE 1048576".to_owned());
                reply(&mut reader, &lines.join("\r\n")).await?;
            }
            "HELO" => {
                session.greeted = true;
                reply(&mut reader, "250 test.smtp").await?;
            }
            "STARTTLS" if shared.mode == TlsMode::StartTls && !tls => {
                reply(&mut reader, "220 2.0.0 ready to start TLS").await?;
                let acceptor = shared.tls.clone().expect("STARTTLS has a certificate");
                // RFC 3207: anything sent before the handshake is discarded, and the session
                // starts over (the client must EHLO again).
                let plain = reader.into_inner();
                reader = BufReader::new(Box::new(acceptor.accept(plain).await?));
                tls = true;
                session = Session::default();
            }
            "AUTH" => {
                let answer = authenticate(&mut reader, &shared, &line).await?;
                match answer {
                    Some(user) => {
                        session.authenticated = Some(user);
                        reply(&mut reader, "235 2.7.0 authenticated").await?;
                    }
                    None => reply(&mut reader, "535 5.7.8 bad credentials").await?,
                }
            }
            "MAIL" => {
                if !session.greeted {
                    reply(&mut reader, "503 5.5.1 EHLO first").await?;
                } else if shared.credentials.is_some() && session.authenticated.is_none() {
                    reply(&mut reader, "530 5.7.0 authentication required").await?;
                } else {
                    session.reset_transaction();
                    session.mail_from =
                        Some(angle_address(&line["MAIL FROM:".len().min(line.len())..]));
                    reply(&mut reader, "250 2.1.0 ok").await?;
                }
            }
            "RCPT" => {
                if session.mail_from.is_none() {
                    reply(&mut reader, "503 5.5.1 MAIL first").await?;
                } else {
                    session
                        .recipients
                        .push(angle_address(&line["RCPT TO:".len().min(line.len())..]));
                    reply(&mut reader, "250 2.1.5 ok").await?;
                }
            }
            "DATA" => {
                if session.recipients.is_empty() {
                    reply(&mut reader, "503 5.5.1 RCPT first").await?;
                    continue;
                }
                let failing = shared
                    .fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    session.reset_transaction();
                    reply(&mut reader, "451 4.3.0 test server told to fail").await?;
                    continue;
                }
                reply(&mut reader, "354 end data with <CR><LF>.<CR><LF>").await?;
                let raw = read_data(&mut reader).await?;
                let mail = parse_mail(
                    raw,
                    session.mail_from.take().unwrap_or_default(),
                    std::mem::take(&mut session.recipients),
                    tls,
                    session.authenticated.clone(),
                );
                shared.mails.lock().unwrap().push((mail, false));
                shared.arrived.notify_waiters();
                reply(&mut reader, "250 2.0.0 queued").await?;
            }
            "RSET" => {
                session.reset_transaction();
                reply(&mut reader, "250 2.0.0 ok").await?;
            }
            "NOOP" => reply(&mut reader, "250 2.0.0 ok").await?,
            "QUIT" => {
                reply(&mut reader, "221 2.0.0 bye").await?;
                return Ok(());
            }
            _ => reply(&mut reader, "502 5.5.2 command not implemented").await?,
        }
    }
}

/// AUTH PLAIN, with the initial response on the line or after a 334.
async fn authenticate(
    reader: &mut BufReader<Box<dyn Stream>>,
    shared: &Shared,
    line: &str,
) -> std::io::Result<Option<String>> {
    let mut words = line.split(' ').skip(1);
    let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
    let Some((user, password)) = &shared.credentials else {
        return Ok(None);
    };
    if mechanism != "PLAIN" {
        return Ok(None);
    }
    let response = match words.next() {
        Some(initial) => initial.to_owned(),
        None => {
            reply(reader, "334 ").await?;
            read_line(reader).await?.unwrap_or_default()
        }
    };
    let Ok(decoded) = BASE64.decode(response.trim()) else {
        return Ok(None);
    };
    let parts: Vec<&[u8]> = decoded.split(|byte| *byte == 0).collect();
    let matches =
        parts.len() == 3 && parts[1] == user.as_bytes() && parts[2] == password.as_bytes();
    Ok(matches.then(|| user.clone()))
}

async fn reply(reader: &mut BufReader<Box<dyn Stream>>, text: &str) -> std::io::Result<()> {
    let stream = reader.get_mut();
    stream.write_all(text.as_bytes()).await?;
    stream.write_all(b"\r\n").await?;
    stream.flush().await
}

/// One line without its CRLF; `None` at end of stream.
async fn read_line(reader: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<Option<String>> {
    let mut bytes = Vec::new();
    let read = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut bytes)
        .await?;
    if read == 0 {
        return Ok(None);
    }
    if !bytes.ends_with(b"\n") {
        return Err(std::io::Error::other("smtp line too long"));
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The message after DATA up to the lone ".", dot-unstuffed, lines joined by CRLF.
async fn read_data(reader: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<String> {
    let mut message = String::new();
    loop {
        let Some(line) = read_line(reader).await? else {
            return Err(std::io::Error::other("connection closed inside DATA"));
        };
        if line == "." {
            return Ok(message);
        }
        let line = line.strip_prefix('.').unwrap_or(&line);
        message.push_str(line);
        message.push_str("\r\n");
        if message.len() > MAX_MESSAGE {
            return Err(std::io::Error::other("message too large"));
        }
    }
}

/// `<a@b> SIZE=1` -> `a@b`.
fn angle_address(argument: &str) -> String {
    let argument = argument.trim();
    match (argument.find('<'), argument.find('>')) {
        (Some(open), Some(close)) if open < close => argument[open + 1..close].to_owned(),
        _ => argument.split(' ').next().unwrap_or("").to_owned(),
    }
}

fn parse_mail(
    raw: String,
    envelope_from: String,
    to: Vec<String>,
    tls: bool,
    auth_user: Option<String>,
) -> ReceivedMail {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    for (_, value) in headers.iter_mut() {
        *value = decode_words(value);
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let encoding = find("Content-Transfer-Encoding").to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = BASE64.decode(compact).expect("base64 body");
            String::from_utf8(bytes).expect("utf-8 body")
        }
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.to_owned(),
    };
    ReceivedMail {
        from: find("From"),
        header_to: find("To"),
        subject: find("Subject"),
        body: decoded.replace("\r\n", "\n"),
        headers,
        to,
        envelope_from,
        tls,
        auth_user,
        raw,
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let mut bytes = Vec::with_capacity(body.len());
    let input = body.replace("=\r\n", "");
    let raw = input.as_bytes();
    let mut index = 0;
    while index < raw.len() {
        if raw[index] == b'=' && index + 2 < raw.len() {
            let hex = std::str::from_utf8(&raw[index + 1..index + 3]).unwrap_or("zz");
            if let Ok(value) = u8::from_str_radix(hex, 16) {
                bytes.push(value);
                index += 3;
                continue;
            }
        }
        bytes.push(raw[index]);
        index += 1;
    }
    String::from_utf8(bytes).expect("utf-8 quoted-printable body")
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`); whitespace between
/// two adjacent encoded words is dropped, as the RFC says.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut previous_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        let after = &rest[start + 2..];
        let Some(word) = encoded_word(after) else {
            out.push_str(&rest[..start + 2]);
            rest = after;
            previous_was_word = false;
            continue;
        };
        if !(previous_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&word.0);
        rest = &after[word.1..];
        previous_was_word = true;
    }
    out.push_str(rest);
    out
}

/// Decodes `charset?X?text?=` at the start of `text`; returns the text and the bytes consumed.
fn encoded_word(text: &str) -> Option<(String, usize)> {
    let mut parts = text.splitn(3, '?');
    let _charset = parts.next()?;
    let kind = parts.next()?;
    let remainder = parts.next()?;
    let end = remainder.find("?=")?;
    let payload = &remainder[..end];
    let consumed = text.len() - remainder.len() + end + 2;
    let bytes = match kind {
        "B" | "b" => BASE64.decode(payload).ok()?,
        "Q" | "q" => decode_quoted_printable(&payload.replace('_', " ")).into_bytes(),
        _ => return None,
    };
    Some((String::from_utf8(bytes).ok()?, consumed))
}
