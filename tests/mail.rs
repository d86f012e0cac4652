//! Mail and invitations over real sockets: the in-process SMTP server receives what casegate
//! sends, and the link in the mail opens the case through the real gateway.

mod common;

use std::path::Path;
use std::time::Duration;

use casegate::mail::{Mailer, OutgoingMail};
use common::TestGateway;
use common::pki::TestPki;
use common::raw_client::{RawResponse, admin_request, send_raw};
use common::smtp::TestSmtp;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn swedish_message(to: &str) -> Message {
    Message::builder()
        .from(
            "Delning av fall <noreply@clinic.example>"
                .parse::<Mailbox>()
                .unwrap(),
        )
        .to(to.parse::<Mailbox>().unwrap())
        .subject("Ett fall har delats med dig – öppna länken")
        .body(format!(
            "Hej!\n\nÖppna fallet: https://share.test/s/{}\n\n.en rad som börjar med punkt\n",
            "a".repeat(120)
        ))
        .unwrap()
}

#[tokio::test]
async fn the_test_smtp_server_decodes_what_lettre_sends() {
    let smtp = TestSmtp::start().await;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(smtp.addr().port())
        .build();
    transport
        .send(swedish_message("guest@clinic.example"))
        .await
        .unwrap();
    let mail = smtp.wait_for_mail("guest@clinic.example", WAIT).await;
    assert_eq!(mail.to, vec!["guest@clinic.example".to_owned()]);
    assert_eq!(
        mail.from, "\"Delning av fall\" <noreply@clinic.example>",
        "{}",
        mail.raw
    );
    assert_eq!(mail.subject, "Ett fall har delats med dig – öppna länken");
    assert!(
        mail.body.contains(&format!(
            "Öppna fallet: https://share.test/s/{}\n",
            "a".repeat(120)
        )),
        "{}",
        mail.body
    );
    assert!(
        mail.body.contains("\n.en rad som börjar med punkt\n"),
        "{}",
        mail.body
    );
    assert!(!mail.tls);
    assert_eq!(smtp.count(), 1);

    smtp.fail_next(1);
    let error = transport
        .send(swedish_message("guest@clinic.example"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("451") || error.is_transient(),
        "{error}"
    );
    assert_eq!(smtp.count(), 1);
    transport
        .send(swedish_message("guest@clinic.example"))
        .await
        .unwrap();
    smtp.wait_for_mail("guest@clinic.example", WAIT).await;
    assert_eq!(smtp.count(), 2);
}

#[tokio::test]
async fn the_test_smtp_server_offers_starttls_with_the_test_ca() {
    let pki = TestPki::new();
    let smtp = TestSmtp::start_starttls(&pki).await;
    let tls = TlsParameters::builder("localhost".to_owned())
        .add_root_certificate(Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .build_rustls()
        .unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("localhost")
        .port(smtp.addr().port())
        .tls(Tls::Required(tls))
        .build();
    transport
        .send(swedish_message("tls@clinic.example"))
        .await
        .unwrap();
    let mail = smtp.wait_for_mail("tls@clinic.example", WAIT).await;
    assert!(mail.tls);
}

// === the gateway's invitations ===

const ADMIN_TOKEN: &str = "case-app-admin-token-0123456789abcdefghij";
const FROM: &str = "Case sharing <noreply@clinic.example>";
const GUEST: &str = "guest@clinic.example";

fn admin_section() -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"
[[admin.clients]]
name = "case-app"
token = {{ value = "{ADMIN_TOKEN}" }}
scopes = ["view", "guest"]
"#
    )
}

fn mail_section(smtp_url: &str, extra: &str) -> String {
    format!("[mail]\nsmtp = \"{smtp_url}\"\nfrom = \"{FROM}\"\ntimeout = \"30s\"\n{extra}\n")
}

async fn gateway_mailing_to(smtp: &TestSmtp) -> TestGateway {
    gateway_with_mail(&mail_section(&smtp.url(), "")).await
}

async fn gateway_with_mail(mail: &str) -> TestGateway {
    TestGateway::start_with("", &format!("{}\n{mail}", admin_section())).await
}

/// An admin API answer: status, headers and JSON body.
struct Answer {
    status: u16,
    raw: RawResponse,
    json: Value,
}

async fn admin(gw: &TestGateway, method: &str, target: &str, body: Option<Value>) -> Answer {
    let body = body.map(|body| body.to_string());
    let text = admin_request(method, target, ADMIN_TOKEN, body.as_deref());
    let addr = gw.admin_addr().expect("the admin API listens");
    let raw = send_raw(addr, &text).await.expect("an answer");
    let json = serde_json::from_slice(&raw.body)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", raw.text()));
    Answer {
        status: raw.status,
        raw,
        json,
    }
}

async fn create(gw: &TestGateway, body: Value) -> Answer {
    admin(gw, "POST", "/v1/shares", Some(body)).await
}

async fn resend(gw: &TestGateway, id: &str) -> Answer {
    admin(gw, "POST", &format!("/v1/shares/{id}/resend"), None).await
}

fn error_code(answer: &Answer) -> &str {
    answer.json["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {} {}", answer.status, answer.json))
}

/// The link in a mail body: the line that starts with the gateway's public origin.
fn link_in(body: &str) -> String {
    body.lines()
        .map(str::trim)
        .find(|line| line.starts_with("http://share.test/s/"))
        .unwrap_or_else(|| panic!("no link in the mail:\n{body}"))
        .to_owned()
}

/// Opens the link through the gateway as the recipient would, then asks for the case.
async fn open_case(gw: &TestGateway, link: &str, case: &str) {
    let path = link.strip_prefix("http://share.test").unwrap();
    let cookie = gw.exchange(path).await;
    let response = gw
        .get(&format!("/cases/{case}"), &[&format!("Cookie: {cookie}")])
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
}

#[tokio::test]
async fn a_share_created_with_send_email_mails_a_link_that_opens_the_case() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;
    let created = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": true,
               "created_by": "dr.lind", "note": "second opinion"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let url = created.json["url"].as_str().unwrap().to_owned();

    let mail = smtp.wait_for_mail(GUEST, WAIT).await;
    assert_eq!(mail.to, vec![GUEST.to_owned()]);
    assert_eq!(mail.header_to, GUEST);
    assert_eq!(mail.from, "\"Case sharing\" <noreply@clinic.example>");
    assert_eq!(mail.envelope_from, "noreply@clinic.example");
    assert_eq!(mail.subject, "A case has been shared with you");
    assert!(
        mail.body
            .contains("A case has been shared with you (case 42).\nShared by: dr.lind\n"),
        "{}",
        mail.body
    );
    assert!(
        mail.body
            .contains("Message from the sender:\nsecond opinion\n"),
        "{}",
        mail.body
    );
    assert_eq!(
        link_in(&mail.body),
        url,
        "the mail carries the link the API answered"
    );
    assert_eq!(smtp.count(), 1, "one mail per invitation");
    open_case(&gw, &url, "42").await;
}

#[tokio::test]
async fn the_invitation_is_in_swedish_when_the_share_is() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;
    let created = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "lang": "sv-SE", "send_email": true}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let mail = smtp.wait_for_mail(GUEST, WAIT).await;
    assert_eq!(mail.subject, "Ett ärende har delats med dig");
    assert!(
        mail.body
            .contains("Ett ärende har delats med dig (ärende 42)."),
        "{}",
        mail.body
    );
    assert!(mail.body.contains("Öppna ärendet här:"), "{}", mail.body);
    open_case(&gw, &link_in(&mail.body), "42").await;
}

#[tokio::test]
async fn a_share_without_send_email_sends_nothing() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;
    let created = create(&gw, json!({"case": "42", "scope": "view", "email": GUEST})).await;
    assert_eq!(created.status, 201);
    smtp.assert_no_mail(GUEST, Duration::from_millis(300)).await;
    assert_eq!(smtp.count(), 0);
}

#[tokio::test]
async fn resend_mails_the_same_share_again_and_is_rate_limited() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;
    let created = create(
        &gw,
        json!({"case": "42", "scope": "guest", "email": GUEST, "lang": "sv"}),
    )
    .await;
    assert_eq!(created.status, 201);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let url = created.json["url"].as_str().unwrap().to_owned();

    let resent = resend(&gw, &id).await;
    assert_eq!(resent.status, 200, "{}", resent.json);
    assert_eq!(resent.json["id"], id.as_str());
    assert_eq!(resent.json["email"], GUEST);
    assert!(
        resent.json.get("token").is_none(),
        "only the create answer carries a token"
    );
    let mail = smtp.wait_for_mail(GUEST, WAIT).await;
    assert_eq!(mail.subject, "Ett ärende har delats med dig");
    // Same id, case, scope, iat, exp, email and lang, signed with the same active key.
    assert_eq!(link_in(&mail.body), url);
    open_case(&gw, &url, "42").await;

    let too_soon = resend(&gw, &id).await;
    assert_eq!(too_soon.status, 429, "{}", too_soon.json);
    assert_eq!(error_code(&too_soon), "resend_too_soon");
    let retry_after: u64 = too_soon.raw.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=30).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    smtp.assert_no_mail(GUEST, Duration::from_millis(300)).await;
    assert_eq!(smtp.count(), 1);
}

#[tokio::test]
async fn a_resend_right_after_a_create_that_mailed_is_too_soon() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;
    let created = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": true}),
    )
    .await;
    assert_eq!(created.status, 201);
    smtp.wait_for_mail(GUEST, WAIT).await;
    let id = created.json["id"].as_str().unwrap();
    let again = resend(&gw, id).await;
    assert_eq!(error_code(&again), "resend_too_soon");
}

#[tokio::test]
async fn parallel_resends_send_one_mail() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;
    let created = create(&gw, json!({"case": "42", "scope": "view", "email": GUEST})).await;
    let id = created.json["id"].as_str().unwrap().to_owned();
    let answers = futures_join_all((0..8).map(|_| resend(&gw, &id)).collect::<Vec<_>>()).await;
    let sent = answers.iter().filter(|answer| answer.status == 200).count();
    let refused = answers
        .iter()
        .filter(|answer| answer.status == 429 && error_code(answer) == "resend_too_soon")
        .count();
    assert_eq!((sent, refused), (1, 7));
    smtp.wait_for_mail(GUEST, WAIT).await;
    smtp.assert_no_mail(GUEST, Duration::from_millis(300)).await;
}

/// Runs the futures concurrently on this task (no extra crate for one join).
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn resend_refuses_what_it_cannot_or_should_not_send() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;

    let unknown = resend(&gw, "AbCdEfGhIjKlMnOpQrSt").await;
    assert_eq!(
        (unknown.status, error_code(&unknown)),
        (404, "share_not_found")
    );

    let no_email = create(&gw, json!({"case": "42", "scope": "view"})).await;
    let answer = resend(&gw, no_email.json["id"].as_str().unwrap()).await;
    assert_eq!(
        (answer.status, error_code(&answer)),
        (422, "email_required")
    );

    let revoked = create(&gw, json!({"case": "42", "scope": "view", "email": GUEST})).await;
    let revoked_id = revoked.json["id"].as_str().unwrap();
    let revoke = admin(&gw, "DELETE", &format!("/v1/shares/{revoked_id}"), None).await;
    assert_eq!(revoke.status, 200);
    let answer = resend(&gw, revoked_id).await;
    assert_eq!(
        (answer.status, error_code(&answer)),
        (409, "share_not_active")
    );

    let short = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "ttl": 1}),
    )
    .await;
    assert_eq!(short.status, 201);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = resend(&gw, short.json["id"].as_str().unwrap()).await;
    assert_eq!(
        (answer.status, error_code(&answer)),
        (409, "share_not_active")
    );
    assert!(
        answer.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    smtp.assert_no_mail(GUEST, Duration::from_millis(100)).await;
    assert_eq!(smtp.count(), 0);
}

#[tokio::test]
async fn a_mail_failure_is_a_502_that_carries_the_created_share_which_can_be_resent() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;
    smtp.fail_next(1);
    let failed = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": true}),
    )
    .await;
    assert_eq!(failed.status, 502, "{}", failed.json);
    assert_eq!(error_code(&failed), "mail_failed");
    let message = failed.json["error"]["message"].as_str().unwrap();
    let share = &failed.json["share"];
    let id = share["id"]
        .as_str()
        .expect("the created share is in the answer");
    assert!(message.contains(id) && message.contains("451"), "{message}");
    assert!(message.contains("/resend"), "{message}");
    assert_eq!(share["case"], "42");
    let url = share["url"].as_str().expect("with its link").to_owned();
    assert_eq!(smtp.count(), 0);

    let shown = admin(&gw, "GET", &format!("/v1/shares/{id}"), None).await;
    assert_eq!(
        shown.status, 200,
        "the share exists although its mail failed"
    );

    // The failed send does not hold the cooldown: the caller may resend at once.
    let resent = resend(&gw, id).await;
    assert_eq!(resent.status, 200, "{}", resent.json);
    let mail = smtp.wait_for_mail(GUEST, WAIT).await;
    assert_eq!(link_in(&mail.body), url);
    open_case(&gw, &url, "42").await;

    smtp.fail_next(1);
    let other = create(&gw, json!({"case": "43", "scope": "view", "email": GUEST})).await;
    let failed_resend = resend(&gw, other.json["id"].as_str().unwrap()).await;
    assert_eq!(
        (failed_resend.status, error_code(&failed_resend)),
        (502, "mail_failed")
    );
}

#[tokio::test]
async fn an_unreachable_relay_is_a_502_naming_it() {
    // A port nothing listens on. Not one learnt by binding port 0 and closing it: a test running
    // alongside can be given that port next, and the relay then answers (or hangs) instead of
    // refusing. Ports below the ephemeral range are never handed out that way, and nothing on
    // a test machine serves tcpmux.
    let port = 1;
    let gw = gateway_with_mail(&mail_section(&format!("smtp://127.0.0.1:{port}"), "")).await;
    let failed = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": true}),
    )
    .await;
    assert_eq!((failed.status, error_code(&failed)), (502, "mail_failed"));
    let message = failed.json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("smtp://127.0.0.1:{port}")),
        "{message}"
    );
}

#[tokio::test]
async fn without_mail_config_or_email_an_invitation_is_refused_and_nothing_is_created() {
    let without_mail = TestGateway::start_with("", &admin_section()).await;
    let refused = create(
        &without_mail,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": true}),
    )
    .await;
    assert_eq!(
        (refused.status, error_code(&refused)),
        (422, "mail_not_configured")
    );
    let plain = create(
        &without_mail,
        json!({"case": "42", "scope": "view", "email": GUEST}),
    )
    .await;
    let resend_refused = resend(&without_mail, plain.json["id"].as_str().unwrap()).await;
    assert_eq!(
        (resend_refused.status, error_code(&resend_refused)),
        (422, "mail_not_configured")
    );
    let listed = admin(&without_mail, "GET", "/v1/shares", None).await;
    assert_eq!(
        listed.json["shares"].as_array().unwrap().len(),
        1,
        "only the plain share"
    );

    let smtp = TestSmtp::start().await;
    let with_mail = gateway_mailing_to(&smtp).await;
    let no_email = create(
        &with_mail,
        json!({"case": "42", "scope": "view", "send_email": true}),
    )
    .await;
    assert_eq!(
        (no_email.status, error_code(&no_email)),
        (422, "email_required")
    );
    let not_bool = create(
        &with_mail,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": "yes"}),
    )
    .await;
    assert_eq!((not_bool.status, error_code(&not_bool)), (400, "bad_json"));
    let listed = admin(&with_mail, "GET", "/v1/shares", None).await;
    assert_eq!(listed.json["shares"].as_array().unwrap().len(), 0);
}

// === TLS and credentials ===

fn write_ca(pki: &TestPki) -> String {
    let path = pki.dir.join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn starttls_with_the_configured_ca_and_credentials_delivers_over_tls() {
    let pki = TestPki::new();
    let smtp = TestSmtp::start_starttls_with_auth(&pki, "relay-user", "relay-password").await;
    let extra = format!(
        "ca = \"{}\"\nusername = {{ value = \"relay-user\" }}\npassword = {{ value = \"relay-password\" }}",
        write_ca(&pki)
    );
    let gw = gateway_with_mail(&mail_section(&smtp.url(), &extra)).await;
    let created = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": true}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let mail = smtp.wait_for_mail(GUEST, WAIT).await;
    assert!(mail.tls, "the mail crossed the network encrypted");
    assert_eq!(mail.auth_user.as_deref(), Some("relay-user"));
}

#[tokio::test]
async fn smtp_without_credentials_still_upgrades_when_the_relay_offers_starttls() {
    let pki = TestPki::new();
    let smtp = TestSmtp::start_starttls(&pki).await;
    let mailer = mailer_for(&mail_section(
        &smtp.url(),
        &format!("ca = \"{}\"", write_ca(&pki)),
    ));
    mailer.send(outgoing(GUEST)).await.unwrap();
    assert!(smtp.wait_for_mail(GUEST, WAIT).await.tls);

    // A relay that offers no STARTTLS gets the mail in clear text only without credentials.
    let plain = TestSmtp::start().await;
    let mailer = mailer_for(&mail_section(&plain.url(), ""));
    mailer.send(outgoing(GUEST)).await.unwrap();
    assert!(!plain.wait_for_mail(GUEST, WAIT).await.tls);
    let with_login = TestSmtp::start_with_auth("relay-user", "relay-password").await;
    let mailer = mailer_for(&mail_section(
        &with_login.url(),
        "username = { value = \"relay-user\" }\npassword = { value = \"relay-password\" }",
    ));
    let error = mailer.send(outgoing(GUEST)).await.unwrap_err();
    assert!(error.to_string().contains(&with_login.url()), "{error}");
    assert_eq!(with_login.count(), 0, "no password was sent over plain TCP");
}

#[tokio::test]
async fn a_relay_whose_certificate_is_not_trusted_gets_no_mail() {
    let pki = TestPki::new();
    let smtp = TestSmtp::start_starttls_with_auth(&pki, "relay-user", "relay-password").await;
    // No `ca`: the test CA is not among the public roots, so TLS fails and, with credentials
    // set, nothing is sent in clear text either.
    let extra = "username = { value = \"relay-user\" }\npassword = { value = \"relay-password\" }";
    let gw = gateway_with_mail(&mail_section(&smtp.url(), extra)).await;
    let failed = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": true}),
    )
    .await;
    assert_eq!((failed.status, error_code(&failed)), (502, "mail_failed"));
    assert_eq!(smtp.count(), 0);
}

/// The Mailer alone, from a parsed config, as the gateway builds it.
fn mailer_for(mail: &str) -> Mailer {
    let text = format!(
        "{}\n{mail}",
        common::config_text("http://127.0.0.1:9", "", "")
    );
    let config = casegate::config::parse(Path::new("test.toml"), &text, &|_| None)
        .unwrap_or_else(|errors| panic!("config invalid:\n{errors}"));
    Mailer::new(config.mail.as_ref().expect("[mail]")).expect("mailer")
}

fn outgoing(to: &str) -> OutgoingMail {
    OutgoingMail {
        to: to.to_owned(),
        subject: "Koden är 123456".to_owned(),
        text: "Din kod: 123456\n".to_owned(),
    }
}

#[tokio::test]
async fn smtps_speaks_tls_from_the_first_byte() {
    let pki = TestPki::new();
    let smtp = TestSmtp::start_implicit_tls(&pki).await;
    let extra = format!("ca = \"{}\"", write_ca(&pki));
    let mailer = mailer_for(&mail_section(&smtp.url(), &extra));
    mailer.send(outgoing(GUEST)).await.unwrap();
    let mail = smtp.wait_for_mail(GUEST, WAIT).await;
    assert!(mail.tls);
    assert_eq!(mail.subject, "Koden är 123456");
    // lettre ends the data with CRLF . CRLF after the body's own line end: one empty line more.
    assert_eq!(mail.body.trim_end(), "Din kod: 123456");
}

#[tokio::test]
async fn a_relay_that_never_answers_is_bounded_by_the_timeout() {
    // Accepts connections and says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let mailer = mailer_for(&format!(
        "[mail]\nsmtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"{FROM}\"\ntimeout = \"1s\"\n"
    ));
    let started = std::time::Instant::now();
    let error = mailer.send(outgoing(GUEST)).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        error
            .to_string()
            .contains(&format!("smtp://127.0.0.1:{port}")),
        "{error}"
    );
}

#[tokio::test]
async fn a_recipient_that_is_not_an_address_is_refused_before_any_connection() {
    let smtp = TestSmtp::start().await;
    let mailer = mailer_for(&mail_section(&smtp.url(), ""));
    let error = mailer.send(outgoing("not an address")).await.unwrap_err();
    assert!(error.to_string().contains("recipient"), "{error}");
    assert_eq!(smtp.count(), 0);
}

// === mode = "log" ===
// Writing mail to the log is tested in tests/mail_log_mode.rs, a process of its own.

#[tokio::test]
async fn log_mode_keeps_a_configured_relay_unused() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_with_mail(&mail_section(&smtp.url(), "mode = \"log\"")).await;
    let created = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": true}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    smtp.assert_no_mail(GUEST, Duration::from_millis(300)).await;
}

// === [mail] validation ===

fn mail_config_errors(mail: &str) -> String {
    let text = format!(
        "{}\n{mail}",
        common::config_text("http://127.0.0.1:9", "", "")
    );
    match casegate::config::parse(Path::new("test.toml"), &text, &|name| {
        (name == "SMTP_PASSWORD").then(|| "from-the-env".to_owned())
    }) {
        Ok(_) => String::new(),
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn mail_config_is_checked_with_every_problem_named() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "smtp mode needs a relay",
            "[mail]\nfrom = \"a@b.example\"",
            &["mail: needs smtp = "],
        ),
        (
            "a URL with credentials",
            "[mail]\nsmtp = \"smtp://u:p@mail.example.org\"\nfrom = \"a@b.example\"",
            &["mail.smtp: must not carry credentials"],
        ),
        (
            "another scheme, a bad from, a bad mode and a short timeout at once",
            "[mail]\nsmtp = \"http://mail.example.org\"\nfrom = \"not a mailbox\"\nmode = \"print\"\ntimeout = \"10ms\"",
            &[
                "mail.smtp: ",
                "mail.from: ",
                "mail.mode: ",
                "mail.timeout: ",
            ],
        ),
        (
            "a username without password",
            "[mail]\nsmtp = \"smtp://mail.example.org:587\"\nfrom = \"a@b.example\"\nusername = { value = \"u\" }",
            &["username and password go together"],
        ),
        (
            "a password from an unset variable",
            "[mail]\nsmtp = \"smtp://mail.example.org:587\"\nfrom = \"a@b.example\"\nusername = { value = \"u\" }\npassword = { env = \"NOT_SET_ANYWHERE\" }",
            &["mail.password: "],
        ),
        (
            "a ca that is not a certificate",
            "[mail]\nsmtp = \"smtp://mail.example.org\"\nfrom = \"a@b.example\"\nca = \"Cargo.toml\"",
            &["mail.ca: "],
        ),
        (
            "an unknown key",
            "[mail]\nsmtp = \"smtp://mail.example.org\"\nfrom = \"a@b.example\"\nport = 25",
            &["unknown field `port`"],
        ),
        (
            "a secret written in place",
            "[mail]\nsmtp = \"smtp://mail.example.org\"\nfrom = \"a@b.example\"\nusername = \"u\"\npassword = \"hunter2-secret\"",
            &["mail.password"],
        ),
    ];
    for (name, mail, needles) in cases {
        let errors = mail_config_errors(mail);
        assert!(!errors.is_empty(), "{name}: accepted");
        for needle in *needles {
            assert!(
                errors.contains(needle),
                "{name}: no {needle:?} in:\n{errors}"
            );
        }
        assert!(
            !errors.contains("hunter2-secret"),
            "{name}: a secret in a message"
        );
    }
    let valid = [
        "[mail]\nsmtp = \"smtps://mail.example.org\"\nfrom = \"Case sharing <noreply@clinic.example>\"\nusername = { value = \"u\" }\npassword = { env = \"SMTP_PASSWORD\" }",
        "[mail]\nfrom = \"noreply@clinic.example\"\nmode = \"log\"",
    ];
    for mail in valid {
        assert_eq!(mail_config_errors(mail), "", "{mail}");
    }
}

// === casegate share --send-email / resend (the real binary) ===

/// Runs `casegate share ARGS` against the gateway's admin API, off the runtime's threads.
async fn share_cli(gw: &TestGateway, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_casegate"));
    command
        .arg("share")
        .args(args)
        .env(
            "CASEGATE_ADMIN_URL",
            format!("http://{}", gw.admin_addr().unwrap()),
        )
        .env("CASEGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output().expect("run casegate share"))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_cli_creates_with_send_email_and_resends() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;
    let created = share_cli(
        &gw,
        &[
            "create",
            "--case",
            "42",
            "--scope",
            "view",
            "--email",
            GUEST,
            "--lang",
            "sv",
            "--send-email",
        ],
    )
    .await;
    assert!(created.status.success(), "{}", text(&created.stderr));
    let stdout = text(&created.stdout);
    let url = stdout.lines().next().unwrap().to_owned();
    assert!(stdout.contains(&format!("sent to {GUEST}")), "{stdout}");
    let mail = smtp.wait_for_mail(GUEST, WAIT).await;
    assert_eq!(link_in(&mail.body), url);
    assert_eq!(mail.subject, "Ett ärende har delats med dig");
    let id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("share "))
        .unwrap()
        .to_owned();

    let too_soon = share_cli(&gw, &["resend", &id]).await;
    assert_eq!(too_soon.status.code(), Some(1));
    assert!(
        text(&too_soon.stderr).contains("(resend_too_soon)"),
        "{}",
        text(&too_soon.stderr)
    );

    let plain = create(&gw, json!({"case": "43", "scope": "view", "email": GUEST})).await;
    let plain_id = plain.json["id"].as_str().unwrap();
    let resent = share_cli(&gw, &["resend", plain_id]).await;
    assert!(resent.status.success(), "{}", text(&resent.stderr));
    assert_eq!(
        text(&resent.stdout),
        format!("invitation for share {plain_id} sent to {GUEST}\n")
    );
    let mail = smtp.wait_for_mail(GUEST, WAIT).await;
    open_case(&gw, &link_in(&mail.body), "43").await;
}

#[tokio::test]
async fn the_cli_shows_the_created_share_when_its_mail_failed() {
    let smtp = TestSmtp::start().await;
    let gw = gateway_mailing_to(&smtp).await;
    smtp.fail_next(1);
    let output = share_cli(
        &gw,
        &[
            "create",
            "--case",
            "42",
            "--scope",
            "view",
            "--email",
            GUEST,
            "--send-email",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        stdout.starts_with("http://share.test/s/"),
        "the link is still printed: {stdout}"
    );
    assert!(
        stderr.contains("(mail_failed)") && stderr.contains("resend"),
        "{stderr}"
    );
    let id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("share "))
        .unwrap();
    let resent = share_cli(&gw, &["resend", id]).await;
    assert!(resent.status.success(), "{}", text(&resent.stderr));
    smtp.wait_for_mail(GUEST, WAIT).await;

    let no_email = share_cli(
        &gw,
        &["create", "--case", "42", "--scope", "view", "--send-email"],
    )
    .await;
    assert_eq!(
        no_email.status.code(),
        Some(2),
        "clap refuses --send-email without --email"
    );
}

#[tokio::test]
async fn an_operator_override_of_the_invite_template_is_what_is_sent() {
    let smtp = TestSmtp::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("en")).unwrap();
    std::fs::write(
        dir.path().join("en/invite.txt"),
        "Dear colleague,\n\nClinic North shares case {{case}} with you: {{url}}\nValid until {{expires_at}}.\n",
    )
    .unwrap();
    let pages = format!("[pages]\ndir = \"{}\"\n", dir.path().display());
    let gw = gateway_with_mail(&format!("{}\n{pages}", mail_section(&smtp.url(), ""))).await;
    let created = create(
        &gw,
        json!({"case": "42", "scope": "view", "email": GUEST, "send_email": true}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let mail = smtp.wait_for_mail(GUEST, WAIT).await;
    let url = created.json["url"].as_str().unwrap();
    assert!(
        mail.body.starts_with(&format!(
            "Dear colleague,\n\nClinic North shares case 42 with you: {url}\n"
        )),
        "{}",
        mail.body
    );
}
