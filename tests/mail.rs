//! Mail and invitations over real sockets: the in-process SMTP server receives what casegate
//! sends, and the link in the mail opens the case through the real gateway.

mod common;

use std::time::Duration;

use common::pki::TestPki;
use common::smtp::TestSmtp;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

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
