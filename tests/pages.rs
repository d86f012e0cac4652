//! What a recipient reads, in their language: every page in English and Swedish, the language
//! chosen from the share, then Accept-Language, then English, over real sockets through the real
//! gateway; operator overrides from `[pages] dir`, and `casegate check` pointing at every broken
//! override file by line.

mod common;

use std::path::Path;
use std::process::Command;

use casegate::clock::unix_now;
use casegate::gateway::ShareRequest;
use casegate::pages::{Lang, Page, Templates, Vars, respond};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;

use common::raw_client::RawResponse;
use common::upstream::TestUpstream;
use common::{TestGateway, config_text};

/// Every page template, with the variables the verification flow fills in.
const PAGES: [&str; 22] = [
    "invalid_link",
    "expired_link",
    "link_not_yet_valid",
    "revoked_link",
    "sharing_disabled",
    "no_session",
    "session_expired",
    "session_invalid",
    "not_allowed",
    "bad_request",
    "misdirected_request",
    "payload_too_large",
    "upgrade_refused",
    "upstream_unavailable",
    "upstream_timeout",
    "internal_error",
    "verify",
    "code_sent",
    "wrong_code",
    "code_expired",
    "too_many_attempts",
    "rate_limited",
];

async fn body_text(response: http::Response<http_body_util::Full<bytes::Bytes>>) -> String {
    let bytes = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

fn verification_vars() -> Vars<'static> {
    Vars::new()
        .set("masked_email", "j***@clinic.example")
        .set("form_action", "/s/verify/code")
        .set("resend_action", "/s/verify/send")
        .set("csrf", "csrf-token-value")
        .set("code_ttl_minutes", "5")
        .set("attempts_left", "3")
        .set("retry_after_minutes", "10")
        .set("retry_after_seconds", "30")
        .set("back_url", "/s/verify")
        .set("login_url", "https://app.clinic.example/login")
}

#[tokio::test]
async fn every_page_exists_in_english_and_swedish_with_its_title_and_lang() {
    let templates = Templates::embedded();
    let vars = verification_vars();
    for name in PAGES {
        let mut seen = Vec::new();
        for lang in Lang::ALL {
            let response = respond(&templates, StatusCode::OK, name, lang, &vars, false);
            assert_eq!(response.headers()["content-language"], lang.tag());
            let html = body_text(response).await;
            let title = templates.message(&format!("{name}.title"), lang);
            assert!(!title.is_empty(), "{name} {lang:?} has no title");
            let title = title.replace('\'', "&#39;");
            for expected in [
                format!("<html lang=\"{}\">", lang.tag()),
                format!("<title>{title}</title>"),
                format!("<h1>{title}</h1>"),
                "<meta name=\"viewport\"".to_owned(),
            ] {
                assert!(html.contains(&expected), "{name} {lang:?} lacks {expected}");
            }
            assert!(!html.contains("{{"), "{name} {lang:?} left a placeholder");
            seen.push(title);
        }
        assert_ne!(
            seen[0], seen[1],
            "{name}: the Swedish title is the English one"
        );
    }
}

#[tokio::test]
async fn forms_label_their_inputs_and_carry_the_csrf_token() {
    let templates = Templates::embedded();
    let vars = verification_vars();
    for lang in Lang::ALL {
        for name in ["code_sent", "wrong_code"] {
            let html = templates.page(name, lang, &vars);
            assert!(html.contains("<label for=\"code\">"), "{name} {lang:?}");
            assert!(
                html.contains("<input id=\"code\" name=\"code\""),
                "{name} {lang:?}"
            );
            assert!(
                html.contains("action=\"/s/verify/code\""),
                "{name} {lang:?}"
            );
            assert!(
                html.contains("action=\"/s/verify/send\""),
                "{name} {lang:?}"
            );
        }
        for name in [
            "verify",
            "code_sent",
            "wrong_code",
            "code_expired",
            "too_many_attempts",
        ] {
            let html = templates.page(name, lang, &vars);
            assert!(
                html.contains("<input type=\"hidden\" name=\"csrf\" value=\"csrf-token-value\">"),
                "{name} {lang:?}"
            );
        }
        let verify = templates.page("verify", lang, &vars);
        assert!(verify.contains("j***@clinic.example"));
        assert!(verify.contains("href=\"https://app.clinic.example/login\""));
        let without_login =
            templates.page("verify", lang, &verification_vars().set("login_url", ""));
        assert!(
            !without_login.contains("href="),
            "{lang:?}: login link without login_url"
        );
    }
}

#[test]
fn variables_are_escaped_in_pages_and_kept_as_written_in_emails() {
    let templates = Templates::embedded();
    let hostile = "\"><script>alert('x')</script>&";
    let vars = verification_vars()
        .set("masked_email", hostile)
        .set("csrf", hostile);
    for lang in Lang::ALL {
        let html = templates.page("code_sent", lang, &vars);
        assert!(!html.contains("<script>"), "{lang:?}");
        assert!(
            html.contains("&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"),
            "{lang:?}"
        );
        let mail = Vars::new()
            .set("url", "https://share.test/s/a.b.c")
            .set("case", "42")
            .set("sender", "Dr. <Ann> & Co")
            .set("note", "Look at 'this' & that")
            .set("expires_at", "2030-01-01 12:00 UTC");
        let text = templates.text("invite", lang, &mail);
        for kept in [
            "Dr. <Ann> & Co",
            "Look at 'this' & that",
            "https://share.test/s/a.b.c",
        ] {
            assert!(text.contains(kept), "{lang:?} invite lacks {kept}:\n{text}");
        }
        assert!(!text.contains("{{"), "{lang:?}");
    }
}

#[test]
fn emails_leave_out_what_was_not_given() {
    let templates = Templates::embedded();
    let vars = Vars::new()
        .set("url", "https://share.test/s/a.b.c")
        .set("case", "42")
        .set("expires_at", "2030-01-01 12:00 UTC");
    let en = templates.text("invite", Lang::En, &vars);
    assert!(!en.contains("Shared by"), "{en}");
    assert!(!en.contains("Message from the sender"), "{en}");
    assert!(!en.contains("\n\n\n"), "sections left blank lines:\n{en}");
    let sv = templates.text("invite", Lang::Sv, &vars.set("sender", "Anna"));
    assert!(sv.contains("Delat av: Anna\n"), "{sv}");
    assert!(!sv.contains("Meddelande"), "{sv}");
    let code = Vars::new()
        .set("code", "123456")
        .set("code_ttl_minutes", "5");
    for lang in Lang::ALL {
        let text = templates.text("code", lang, &code);
        assert!(text.contains("123456") && text.contains('5'), "{lang:?}");
        assert!(!templates.message("code.subject", lang).is_empty());
        assert!(!templates.message("invite.subject", lang).is_empty());
    }
    assert_ne!(
        templates.message("code.subject", Lang::En),
        templates.message("code.subject", Lang::Sv)
    );
}

#[test]
fn accept_language_picks_the_best_supported_language() {
    use Lang::{En, Sv};
    let table: [(&str, Option<&str>, Lang); 18] = [
        ("no header is English", None, En),
        ("plain Swedish", Some("sv"), Sv),
        ("Swedish from Sweden", Some("sv-SE"), Sv),
        ("upper case", Some("SV-se"), Sv),
        (
            "Swedish from Finland, Swedish second",
            Some("fi-FI, sv-FI;q=0.8, en;q=0.5"),
            Sv,
        ),
        (
            "English preferred over Swedish",
            Some("en-GB,en;q=0.9,sv;q=0.8"),
            En,
        ),
        ("q-values beat order", Some("en;q=0.4, sv;q=0.9"), Sv),
        (
            "equal weights keep the header's order",
            Some("sv;q=0.5, en;q=0.5"),
            Sv,
        ),
        ("q=0 means not this one", Some("sv;q=0, en;q=0.1"), En),
        ("only a refused language", Some("sv;q=0"), En),
        ("only unsupported languages", Some("de-DE, fr;q=0.9"), En),
        (
            "unsupported first, Swedish later",
            Some("de, nb;q=0.9, sv;q=0.1"),
            Sv,
        ),
        ("a wildcard is English", Some("*"), En),
        ("a wildcard below Swedish", Some("sv, *;q=0.1"), Sv),
        ("garbage", Some(";;;,,,=q"), En),
        (
            "a broken q-value skips the entry",
            Some("sv;q=2, en;q=0.1"),
            En,
        ),
        ("a prefix is not a language", Some("svenska"), En),
        ("spaces everywhere", Some("  sv-SE ; q = 0.7 ,en;q=0.3"), Sv),
    ];
    for (what, header, expected) in table {
        let value = header.map(HeaderValue::from_static);
        assert_eq!(Lang::choose(None, value.as_ref()), expected, "{what}");
    }
    let non_utf8 = HeaderValue::from_bytes(b"sv, \xff").expect("obs-text is allowed");
    assert_eq!(
        Lang::choose(None, Some(&non_utf8)),
        En,
        "non-UTF-8 is ignored"
    );
}

#[test]
fn the_share_language_beats_accept_language() {
    let english = HeaderValue::from_static("en-US,en;q=0.9");
    let swedish = HeaderValue::from_static("sv-SE");
    let table = [
        (Some("sv-SE"), Some(&english), Lang::Sv),
        (Some("sv"), None, Lang::Sv),
        (Some("en"), Some(&swedish), Lang::En),
        (Some("de-CH"), Some(&swedish), Lang::Sv),
        (Some(""), Some(&swedish), Lang::Sv),
        (None, Some(&swedish), Lang::Sv),
        (Some("de"), None, Lang::En),
    ];
    for (share, accept, expected) in table {
        assert_eq!(Lang::choose(share, accept), expected, "share {share:?}");
    }
}

fn assert_page(response: &RawResponse, status: u16, lang: Lang, page: Page, templates: &Templates) {
    let text = response.text();
    assert_eq!(response.status, status, "{text}");
    let title = templates
        .message(&format!("{}.title", page.code()), lang)
        .replace('\'', "&#39;");
    assert!(
        text.contains(&format!("<html lang=\"{}\">", lang.tag())) && text.contains(&title),
        "{page:?} not in {lang:?}:\n{text}"
    );
    assert!(text.contains(page.code()), "{page:?} lacks its code");
    assert_eq!(response.header("content-language"), Some(lang.tag()));
}

#[tokio::test]
async fn refusals_without_a_share_follow_accept_language() {
    let gw = TestGateway::start().await;
    let templates = Templates::embedded();
    let table = [
        (None, Lang::En),
        (Some("Accept-Language: sv-SE,sv;q=0.9,en;q=0.8"), Lang::Sv),
        (Some("Accept-Language: de, en;q=0.5"), Lang::En),
        (Some("Accept-Language: fi, sv;q=0.2"), Lang::Sv),
    ];
    for (header, lang) in table {
        let headers: Vec<&str> = header.into_iter().collect();
        let invalid = gw.get("/s/not.a.token", &headers).await;
        assert_page(&invalid, 403, lang, Page::InvalidLink, &templates);
        let no_session = gw.get("/cases/42", &headers).await;
        assert_page(&no_session, 401, lang, Page::SessionMissing, &templates);
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_shares_language_beats_the_browsers_for_html_and_json() {
    let gw = TestGateway::start().await;
    let templates = Templates::embedded();
    let mint = |lang: Option<&str>| {
        let request = ShareRequest {
            case: "42",
            scope: "view",
            ttl: None,
            email: None,
            lang,
        };
        gw.snapshot.mint_link(&request, unix_now()).expect("mint")
    };
    let table = [
        (Some("sv-SE"), "Accept-Language: en-US,en;q=0.9", Lang::Sv),
        (Some("en"), "Accept-Language: sv", Lang::En),
        (None, "Accept-Language: sv", Lang::Sv),
        (Some("de"), "Accept-Language: sv, en;q=0.5", Lang::Sv),
    ];
    for (share_lang, accept, lang) in table {
        let link = mint(share_lang);
        let cookie = gw.exchange(&format!("/s/{}", link.token)).await;
        let cookie = format!("Cookie: {cookie}");
        // Outside the share's scope: refused after the cookie named the share.
        let html = gw.get("/admin", &[&cookie, accept]).await;
        assert_page(&html, 403, lang, Page::NotAllowed, &templates);
        let json = gw
            .get("/admin", &[&cookie, accept, "Accept: application/json"])
            .await;
        assert_eq!(json.status, 403);
        let body: serde_json::Value = serde_json::from_slice(&json.body).expect("JSON");
        assert_eq!(
            body["error"]["code"], "not_allowed",
            "the code never changes"
        );
        assert_eq!(
            body["error"]["message"],
            templates.message("not_allowed.message", lang),
            "share {share_lang:?} with {accept}"
        );
    }
    // A revoked link is refused in its own language, whatever the browser prefers.
    let link = mint(Some("sv"));
    gw.store()
        .revoke_share(&link.share_id, unix_now())
        .await
        .expect("revoke");
    let revoked = gw
        .get(&format!("/s/{}", link.token), &["Accept-Language: en"])
        .await;
    assert_page(&revoked, 410, Lang::Sv, Page::RevokedLink, &templates);
    // So is an expired one: its claims are read once its MAC verified, for the language only.
    let now = unix_now();
    let expired = gw.snapshot.sign(casegate::share::LinkClaims {
        share_id: "expired-share-0000000".into(),
        case: "42".into(),
        scope: "view".into(),
        issued_at: now - 7200,
        expires_at: now - 3600,
        not_before: None,
        email: None,
        lang: Some("sv".into()),
    });
    let page = gw
        .get(&format!("/s/{}", expired.token), &["Accept-Language: en"])
        .await;
    assert_page(&page, 410, Lang::Sv, Page::ExpiredLink, &templates);
    // A forged token cannot pick the language of its refusal: the browser's decides.
    let (forged, _) = expired.token.rsplit_once('.').expect("three parts");
    let forged = format!("{forged}.{}", "A".repeat(43));
    let page = gw
        .get(&format!("/s/{forged}"), &["Accept-Language: en"])
        .await;
    assert_page(&page, 403, Lang::En, Page::InvalidLink, &templates);
    gw.stop().await;
}

#[tokio::test]
async fn an_override_directory_replaces_one_page_and_one_message_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sv = dir.path().join("sv");
    std::fs::create_dir_all(&sv).expect("sv dir");
    std::fs::write(
        sv.join("invalid_link.html"),
        "<h1>{{title}}</h1>\n<p>Ring kliniken på 08-123 45 67.</p>\n",
    )
    .expect("write page");
    std::fs::write(
        sv.join("messages.toml"),
        "[no_session]\ntitle = \"Öppna länken från kliniken igen\"\n",
    )
    .expect("write messages");
    std::fs::write(dir.path().join(".DS_Store"), "ignored").expect("hidden file");
    let upstream = TestUpstream::start().await;
    let extra = format!("[pages]\ndir = {:?}\n", dir.path().display().to_string());
    let gw = TestGateway::start_from_text(upstream, &config_text_with(&extra)).await;
    let swedish = ["Accept-Language: sv"];

    let invalid = gw.get("/s/not.a.token", &swedish).await;
    assert_eq!(invalid.status, 403);
    assert!(
        invalid.text().contains("Ring kliniken på 08-123 45 67."),
        "{}",
        invalid.text()
    );
    assert!(
        invalid
            .text()
            .contains("<title>Länken fungerar inte</title>"),
        "embedded title kept"
    );

    let no_session = gw.get("/cases/42", &swedish).await;
    assert!(
        no_session
            .text()
            .contains("<h1>Öppna länken från kliniken igen</h1>")
    );
    let json = gw
        .get(
            "/cases/42",
            &["Accept-Language: sv", "Accept: application/json"],
        )
        .await;
    let body: serde_json::Value = serde_json::from_slice(&json.body).expect("JSON");
    let embedded = Templates::embedded();
    assert_eq!(
        body["error"]["message"],
        embedded.message("no_session.message", Lang::Sv),
        "an overridden title leaves the same page's message embedded"
    );

    // English has no overrides: everything is embedded.
    let english = gw.get("/s/not.a.token", &[]).await;
    assert!(!english.text().contains("Ring kliniken"));
    assert!(
        english
            .text()
            .contains("<title>This link doesn&#39;t work</title>")
    );
    gw.stop().await;
}

fn config_text_with(extra: &str) -> String {
    // The upstream is never reached by these tests' requests.
    config_text("http://127.0.0.1:9", "", extra)
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dir");
    }
    std::fs::write(path, text).expect("write");
}

#[test]
fn casegate_check_reports_every_broken_override_with_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("casegate.toml");
    write(&config, &config_text_with("[pages]\ndir = \"pages\"\n"));
    let pages = dir.path().join("pages");
    write(
        &pages.join("sv/verify.html"),
        "<h1>{{title}}</h1>\n<p>Vi skickar en kod.</p>\n<p>{{masked_mail}}</p>\n",
    );
    write(
        &pages.join("en/code_sent.html"),
        "<h1>{{title}}</h1>\n{{#login_url}}\n<a href=\"{{login_url}}\">Log in</a>\n",
    );
    write(
        &pages.join("en/messages.toml"),
        "[revoked_link]\ntitle = \"Gone\"\ntitel = \"typo\"\n",
    );
    write(&pages.join("sv/revoked.html"), "<h1>{{title}}</h1>\n");
    write(&pages.join("de/invalid_link.html"), "<h1>{{title}}</h1>\n");

    let out = Command::new(env!("CARGO_BIN_EXE_casegate"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("run casegate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a broken override must fail the check:\n{stderr}"
    );
    let at = |relative: &str| pages.join(relative).display().to_string();
    for expected in [
        format!(
            "{}:3:4: unknown placeholder `masked_mail`",
            at("sv/verify.html")
        ),
        format!(
            "{}:2:1: `{{{{#login_url}}}}` is never closed",
            at("en/code_sent.html")
        ),
        format!(
            "{}:3:1: unknown message `revoked_link.titel`",
            at("en/messages.toml")
        ),
        format!("{}: not a template casegate has", at("sv/revoked.html")),
        format!("{}: not a language directory", at("de")),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }

    // Fixed, the same directory passes.
    write(
        &pages.join("sv/verify.html"),
        "<h1>{{title}}</h1>\n<p>{{masked_email}}</p>\n",
    );
    write(
        &pages.join("en/code_sent.html"),
        "<h1>{{title}}</h1>\n{{#login_url}}\n<a href=\"{{login_url}}\">Log in</a>\n{{/login_url}}\n",
    );
    write(
        &pages.join("en/messages.toml"),
        "[revoked_link]\ntitle = \"Gone\"\n",
    );
    std::fs::remove_file(pages.join("sv/revoked.html")).expect("remove");
    std::fs::remove_dir_all(pages.join("de")).expect("remove");
    let out = Command::new(env!("CARGO_BIN_EXE_casegate"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("run casegate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_override_directory_is_a_config_error_at_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("casegate.toml");
    let text = config_text_with("[pages]\ndir = \"nowhere\"\n");
    write(&config, &text);
    let line = text
        .lines()
        .position(|line| line.starts_with("dir = \"nowhere\""))
        .map(|index| index + 1)
        .expect("the dir line");
    let errors = casegate::config::load(&config).expect_err("refused");
    let problem = errors.problems().first().expect("a problem");
    assert_eq!(
        (problem.file.as_path(), problem.line),
        (config.as_path(), line)
    );
    assert!(problem.message.contains("pages.dir"), "{}", problem.message);
}

/// A refusal is written as the client asked wherever on the request path it was made: the
/// target refused before anything else, the link exchange, a verification page, and a request
/// already sent upstream (whose fields are read only once it is refused). JSON, in the
/// browser's language, every time.
#[tokio::test]
async fn refusals_from_every_part_of_the_path_are_json_in_the_browsers_language() {
    let gw = TestGateway::start().await;
    // A share without a language of its own: the browser's decides every refusal's.
    let request = ShareRequest {
        case: "42",
        scope: "view",
        ttl: None,
        email: None,
        lang: None,
    };
    let link = gw.snapshot.mint_link(&request, unix_now()).expect("mint");
    let cookie = format!(
        "Cookie: {}",
        gw.exchange(&format!("/s/{}", link.token)).await
    );
    let embedded = Templates::embedded();
    let refusals = [
        ("/cases/42/%2e%2e/x", None, 400, "bad_request"),
        ("/s/not.a.token", None, 403, "invalid_link"),
        ("/s/verify/send", None, 403, "not_allowed"),
        // The test upstream answers this one after the gateway's 1 s response timeout.
        (
            "/cases/42/slow",
            Some(cookie.as_str()),
            504,
            "upstream_timeout",
        ),
    ];
    for (target, cookie, status, code) in refusals {
        let mut headers = vec!["Accept-Language: sv", "Accept: application/json"];
        headers.extend(cookie);
        let response = gw.get(target, &headers).await;
        assert_eq!(response.status, status, "{target}");
        let body: serde_json::Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|error| panic!("{target}: not JSON ({error}): {}", response.text()));
        assert_eq!(body["error"]["code"], code, "{target}");
        let swedish = embedded.message(&format!("{code}.message"), Lang::Sv);
        assert!(!swedish.is_empty(), "{code}");
        assert_eq!(body["error"]["message"], swedish, "{target}");
    }
    gw.stop().await;
}
