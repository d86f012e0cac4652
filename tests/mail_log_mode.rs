//! `[mail] mode = "log"`: every mail goes to the log at warn level instead of a relay, and the
//! start says so loudly.
//!
//! A test binary of its own: it captures the log with a thread-local subscriber, and tracing caches
//! each call site's interest process-wide, so another test logging on another thread at the same
//! moment could make this one miss its event (seen once under load in tests/mail.rs).

use std::path::Path;

use casegate::mail::{Mailer, OutgoingMail};

mod common;

use common::log_capture::LogBuffer;

const FROM: &str = "Case sharing <noreply@clinic.example>";
const GUEST: &str = "guest@clinic.example";

fn mailer_for(mail: &str) -> Mailer {
    let text = format!(
        "{}\n{mail}",
        common::config_text("http://127.0.0.1:9", "", "")
    );
    let config = casegate::config::parse(Path::new("test.toml"), &text, &|_| None)
        .unwrap_or_else(|errors| panic!("config invalid:\n{errors}"));
    Mailer::new(config.mail.as_ref().expect("[mail]")).expect("mailer")
}

#[tokio::test]
async fn log_mode_writes_each_mail_to_the_log_and_warns_at_start() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test runs on a current-thread runtime: everything below logs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let mailer = mailer_for(&format!("[mail]\nfrom = \"{FROM}\"\nmode = \"log\"\n"));
    let started = logs.text();
    assert!(started.contains("WARN"), "{started}");
    assert!(started.contains("NO MAIL IS SENT"), "{started}");
    assert_eq!(mailer.destination(), "the log (mail.mode = \"log\")");

    mailer
        .send(OutgoingMail {
            to: GUEST.to_owned(),
            subject: "A case has been shared with you".to_owned(),
            text: "Open it: http://share.test/s/abc.def.ghi\n".to_owned(),
        })
        .await
        .unwrap();
    let written = logs.text();
    let line = written
        .lines()
        .find(|line| line.contains("mail written to the log"))
        .unwrap_or_else(|| panic!("no mail in the log:\n{written}"));
    assert!(
        line.contains("WARN") && line.contains("casegate::mail"),
        "{line}"
    );
    assert!(line.contains(GUEST), "{line}");
    assert!(line.contains("A case has been shared with you"), "{line}");
    assert!(line.contains("http://share.test/s/abc.def.ghi"), "{line}");
}
