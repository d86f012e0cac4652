//! Verified shares end to end: the real gateway on a real socket, the real mail arriving at an
//! in-process SMTP server, the code read from it and typed back like a recipient would.

mod common;

use std::time::Duration;

use casegate::clock::unix_now;
use casegate::gateway::{MintError, ShareRequest};
use casegate::share::token::{self, LinkClaims};
use common::forms::{code_in, cookie_of, form_token};
use common::raw_client::RawResponse;
use common::smtp::TestSmtp;
use common::upstream::TestUpstream;
use common::{TEST_KEY, TestGateway, config_text};

const RECIPIENT: &str = "jane.doe@clinic.example";
const MAIL_WAIT: Duration = Duration::from_secs(10);

/// A gateway with a `checked` scope (verify_email) for case pages, mailing through `smtp`.
struct Setup {
    gw: TestGateway,
    smtp: TestSmtp,
}

async fn setup(verify: &str, login_url: Option<&str>) -> Setup {
    let smtp = TestSmtp::start().await;
    let upstream = TestUpstream::start().await;
    let extra = common::checked_scope_config(&smtp.url(), verify);
    let mut text = config_text(&upstream.url(), "", &extra);
    if let Some(url) = login_url {
        text = text.replace(
            "max_ttl = \"30d\"\n",
            &format!("max_ttl = \"30d\"\nlogin_url = \"{url}\"\n"),
        );
    }
    let gw = TestGateway::start_from_text(upstream, &text).await;
    Setup { gw, smtp }
}

/// A guest's browser: the cookie it holds.
struct Browser<'s> {
    setup: &'s Setup,
    cookie: String,
}

impl Setup {
    fn link(&self, case: &str, email: &str, lang: Option<&str>) -> String {
        let minted = self
            .gw
            .snapshot
            .mint_link(
                &ShareRequest {
                    case,
                    scope: "checked",
                    ttl: None,
                    email: Some(email),
                    lang,
                },
                unix_now(),
            )
            .expect("mint");
        format!("/s/{}", minted.token)
    }

    /// Opens a link: the guest lands on the verification page, not the case.
    async fn open(&self, link: &str) -> Browser<'_> {
        let response = self.gw.get(link, &[]).await;
        assert_eq!(response.status, 303, "{}", response.text());
        assert_eq!(
            response.header("location"),
            Some("http://share.test/s/verify")
        );
        let cookie = cookie_of(&response).expect("the link sets the guest cookie");
        Browser {
            setup: self,
            cookie,
        }
    }

    /// Opens a new link for case 42 to `email` in a fresh browser.
    async fn guest(&self, email: &str) -> Browser<'_> {
        self.open(&self.link("42", email, None)).await
    }

    fn upstream_requests(&self) -> usize {
        self.gw.upstream.take().len()
    }
}

impl Browser<'_> {
    fn cookie_header(&self) -> String {
        format!("Cookie: {}", self.cookie)
    }

    async fn get(&self, target: &str, extra: &[&str]) -> RawResponse {
        let cookie = self.cookie_header();
        let mut headers = vec![cookie.as_str()];
        headers.extend_from_slice(extra);
        self.setup.gw.get(target, &headers).await
    }

    async fn landing(&self) -> RawResponse {
        self.get("/s/verify", &["Accept: text/html"]).await
    }

    async fn post(&self, target: &str, body: &str, extra: &[&str]) -> RawResponse {
        let cookie = self.cookie_header();
        let mut headers = vec![
            cookie.as_str(),
            "Content-Type: application/x-www-form-urlencoded",
            "Accept: text/html",
        ];
        headers.extend_from_slice(extra);
        self.setup
            .gw
            .request("POST", target, &headers, body.as_bytes())
            .await
    }

    /// The form token of the page the guest is shown.
    async fn csrf(&self) -> String {
        let page = self.landing().await;
        form_token(&page.text()).expect("the page carries a form token")
    }

    async fn send_code(&self) -> RawResponse {
        let body = format!("csrf={}", self.csrf().await);
        self.post("/s/verify/send", &body, &[]).await
    }

    async fn enter(&self, code: &str) -> RawResponse {
        let body = format!("csrf={}&code={code}", self.csrf().await);
        self.post("/s/verify/code", &body, &[]).await
    }

    /// Asks for a code and reads it from the mail.
    async fn code_by_mail(&self, email: &str) -> String {
        let sent = self.send_code().await;
        assert_eq!(sent.status, 303, "{}", sent.text());
        assert_eq!(sent.header("location"), Some("http://share.test/s/verify"));
        let mail = self.setup.smtp.wait_for_mail(email, MAIL_WAIT).await;
        code_in(&mail.body).expect("the mail carries a 6-digit code")
    }

    /// Types the right code; the browser keeps the verified cookie.
    async fn verify(&mut self, email: &str) {
        let code = self.code_by_mail(email).await;
        let answer = self.enter(&code).await;
        assert_eq!(answer.status, 303, "{}", answer.text());
        assert_eq!(
            answer.header("location"),
            Some("http://share.test/cases/42")
        );
        self.cookie = cookie_of(&answer).expect("the verified cookie");
    }
}

/// A six-digit code that is not `code`.
fn other_than(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test]
async fn a_guest_proves_their_address_with_the_mailed_code_and_then_sees_the_case() {
    let s = setup("", None).await;
    let mut browser = s.guest(RECIPIENT).await;

    // Before verifying, the case is out of reach: a page load goes to the landing page, a script
    // gets 401, and the upstream sees neither.
    let navigation = browser.get("/cases/42", &["Accept: text/html"]).await;
    assert_eq!(navigation.status, 303);
    assert_eq!(
        navigation.header("location"),
        Some("http://share.test/s/verify")
    );
    let fetch = browser
        .get("/cases/42", &["Accept: application/json"])
        .await;
    assert_eq!(fetch.status, 401);
    assert!(
        fetch.text().contains("\"email_not_verified\""),
        "{}",
        fetch.text()
    );
    assert_eq!(s.upstream_requests(), 0);

    let landing = browser.landing().await;
    assert_eq!(landing.status, 200);
    let html = landing.text();
    assert!(html.contains("j***@clinic.example"), "{html}");
    assert!(!html.contains(RECIPIENT), "the full address is never shown");
    assert!(html.contains("action=\"/s/verify/send\""), "{html}");
    assert!(
        landing
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("form-action 'self'"))
    );

    let code = browser.code_by_mail(RECIPIENT).await;
    let mail_page = browser.landing().await.text();
    assert!(
        mail_page.contains("action=\"/s/verify/code\""),
        "{mail_page}"
    );
    assert!(!mail_page.contains(&code));

    browser.verify_with(&code).await;
    let case = browser.get("/cases/42", &["Accept: text/html"]).await;
    assert_eq!(case.status, 200, "{}", case.text());
    assert_eq!(s.upstream_requests(), 1);
    // Verified guests are sent on from the landing page.
    let again = browser.landing().await;
    assert_eq!(again.status, 303);
    assert_eq!(again.header("location"), Some("http://share.test/cases/42"));
}

impl Browser<'_> {
    async fn verify_with(&mut self, code: &str) {
        let answer = self.enter(code).await;
        assert_eq!(answer.status, 303, "{}", answer.text());
        assert_eq!(
            answer.header("location"),
            Some("http://share.test/cases/42")
        );
        self.cookie = cookie_of(&answer).expect("the verified cookie");
    }
}

#[tokio::test]
async fn codes_sent_verified_and_failed_are_counted() {
    let s = setup("", None).await;
    let mut browser = s.guest(RECIPIENT).await;
    let code = browser.code_by_mail(RECIPIENT).await;
    assert_eq!(browser.enter(&other_than(&code)).await.status, 400);
    browser.verify_with(&code).await;
    let scrape = s.gw.scrape();
    for line in [
        "casegate_verify_codes_sent_total 1\n",
        "casegate_verify_codes_failed_total 1\n",
        "casegate_verify_codes_verified_total 1\n",
    ] {
        assert!(scrape.contains(line), "{line} in\n{scrape}");
    }
}

#[tokio::test]
async fn a_used_code_is_gone() {
    let s = setup("", None).await;
    let mut browser = s.guest(RECIPIENT).await;
    let code = browser.code_by_mail(RECIPIENT).await;
    let unverified = browser.cookie.clone();
    browser.verify_with(&code).await;
    // The same code typed again from the unverified session finds nothing to compare with.
    let replay = Browser {
        setup: &s,
        cookie: unverified,
    };
    let answer = replay.enter(&code).await;
    assert_eq!(answer.status, 303);
    assert_eq!(
        answer.header("location"),
        Some("http://share.test/s/verify")
    );
    assert!(answer.header("set-cookie").is_none());
}

#[tokio::test]
async fn five_wrong_codes_use_up_the_code_and_the_right_one_is_then_refused() {
    let s = setup("", None).await;
    let browser = s.guest(RECIPIENT).await;
    let code = browser.code_by_mail(RECIPIENT).await;
    let wrong = other_than(&code);
    for left in (1..5).rev() {
        let answer = browser.enter(&wrong).await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert!(
            answer.text().contains(&format!("{left}")),
            "{}",
            answer.text()
        );
    }
    let fifth = browser.enter(&wrong).await;
    assert_eq!(fifth.status, 429);
    let right = browser.enter(&code).await;
    assert_eq!(right.status, 429, "{}", right.text());
    assert!(right.header("retry-after").is_some());
    assert!(right.header("set-cookie").is_none());
    assert_eq!(
        browser
            .get("/cases/42", &["Accept: text/html"])
            .await
            .status,
        303
    );
    assert_eq!(s.upstream_requests(), 0);
}

#[tokio::test]
async fn two_hundred_parallel_guesses_get_at_most_five_comparisons() {
    let s = setup("", None).await;
    let browser = s.guest(RECIPIENT).await;
    let code = browser.code_by_mail(RECIPIENT).await;
    let token = browser.csrf().await;
    let body = format!("csrf={token}&code={}", other_than(&code));
    let guesses = (0..200).map(|_| browser.post("/s/verify/code", &body, &[]));
    let answers = futures_join_all(guesses).await;
    let compared = answers.iter().filter(|answer| answer.status == 400).count();
    let refused = answers.iter().filter(|answer| answer.status == 429).count();
    // The fifth wrong guess is answered with "too many attempts" too.
    assert_eq!(compared, 4, "statuses: {:?}", statuses(&answers));
    assert_eq!(refused, 196, "statuses: {:?}", statuses(&answers));
    let right = browser.enter(&code).await;
    assert_eq!(right.status, 429);
}

fn statuses(answers: &[RawResponse]) -> Vec<u16> {
    answers.iter().map(|answer| answer.status).collect()
}

/// Runs every future at once on the test's runtime.
async fn futures_join_all<F: std::future::Future<Output = RawResponse>>(
    futures: impl Iterator<Item = F>,
) -> Vec<RawResponse> {
    let mut set = Vec::new();
    for future in futures {
        set.push(future);
    }
    let mut answers = Vec::with_capacity(set.len());
    let mut pinned: Vec<_> = set.into_iter().map(Box::pin).collect();
    // Poll them all concurrently: join by spawning is impossible for borrowed futures, so this
    // drives them together through `join_all`-like polling.
    answers.extend(join_all(&mut pinned).await);
    answers
}

async fn join_all<F: std::future::Future<Output = RawResponse> + Unpin>(
    futures: &mut [F],
) -> Vec<RawResponse> {
    use std::task::Poll;
    let mut results: Vec<Option<RawResponse>> = (0..futures.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in futures.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match std::pin::Pin::new(&mut *future).poll(cx) {
                    Poll::Ready(answer) => *slot = Some(answer),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn an_expired_code_is_refused_and_a_new_one_can_be_asked_for() {
    // Expiry is kept in whole seconds, so a code lives between code_ttl - 1 s and code_ttl: 3 s
    // leaves the fresh code at least 2 s to be read from the mailbox and entered, on a busy machine.
    let s = setup("code_ttl = \"3s\"\nresend_cooldown = \"0s\"", None).await;
    let browser = s.guest(RECIPIENT).await;
    let code = browser.code_by_mail(RECIPIENT).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let late = browser.enter(&code).await;
    assert_eq!(late.status, 400, "{}", late.text());
    assert!(late.header("set-cookie").is_none());
    assert!(late.text().contains("action=\"/s/verify/send\""));
    let mut browser = browser;
    let fresh = browser.code_by_mail(RECIPIENT).await;
    browser.verify_with(&fresh).await;
}

#[tokio::test]
async fn a_second_code_within_the_cooldown_is_refused_with_retry_after() {
    let s = setup("", None).await;
    let browser = s.guest(RECIPIENT).await;
    browser.code_by_mail(RECIPIENT).await;
    let again = browser.send_code().await;
    assert_eq!(again.status, 429, "{}", again.text());
    let retry: i64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert!(again.text().contains(&retry.to_string()));
    assert!(
        again.text().contains("href=\"/s/verify\""),
        "a way back to the code already sent: {}",
        again.text()
    );
    s.smtp
        .assert_no_mail(RECIPIENT, Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn a_share_gets_at_most_max_codes_per_hour() {
    let s = setup("resend_cooldown = \"0s\"\nmax_codes_per_hour = 2", None).await;
    let link = s.link("42", RECIPIENT, None);
    let browser = s.open(&link).await;
    browser.code_by_mail(RECIPIENT).await;
    browser.code_by_mail(RECIPIENT).await;
    let third = browser.send_code().await;
    assert_eq!(third.status, 429);
    let retry: i64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 3500 && retry <= 3600, "{retry}");
    // Opening the link again is the same share: no fresh allowance.
    let reopened = s.open(&link).await;
    assert_eq!(reopened.send_code().await.status, 429);
}

#[tokio::test]
async fn forms_without_our_token_or_from_another_origin_are_refused() {
    let s = setup("", None).await;
    let browser = s.guest(RECIPIENT).await;
    let other = s.guest("someone@else.example").await;
    let token = browser.csrf().await;
    let others_token = other.csrf().await;
    let ours = format!("csrf={token}");
    let cases: [(&str, String, &[&str]); 6] = [
        ("no token", String::new(), &[]),
        (
            "a token of another session",
            format!("csrf={others_token}"),
            &[],
        ),
        ("a mangled token", format!("csrf={token}x"), &[]),
        (
            "our token from another origin",
            ours.clone(),
            &["Origin: https://evil.example"],
        ),
        (
            "our token from an opaque origin",
            ours.clone(),
            &["Origin: null"],
        ),
        (
            "our token from an opaque origin on another site",
            ours.clone(),
            &["Origin: null", "Sec-Fetch-Site: cross-site"],
        ),
    ];
    for (name, body, extra) in cases {
        for path in ["/s/verify/send", "/s/verify/code"] {
            let answer = browser.post(path, &body, extra).await;
            assert_eq!(answer.status, 403, "{name} on {path}: {}", answer.text());
            assert!(
                answer.text().contains("form_refused"),
                "{name}: {}",
                answer.text()
            );
        }
    }
    assert_eq!(s.smtp.count(), 0, "no refused form sent a mail");
    // The form pages ask for a same-origin Referer policy, so browsers send their real Origin...
    let landing = browser.landing().await;
    assert_eq!(landing.header("referrer-policy"), Some("same-origin"));
    // ...and a browser that still sends `Origin: null` for its own form (privacy settings) is
    // believed only with the Sec-Fetch-Site it cannot be made to fake.
    let same_origin = browser
        .post(
            "/s/verify/send",
            &ours,
            &["Origin: null", "Sec-Fetch-Site: same-origin"],
        )
        .await;
    assert_eq!(same_origin.status, 303, "{}", same_origin.text());
    s.smtp.wait_for_mail(RECIPIENT, MAIL_WAIT).await;
    let evaluated = browser
        .post(
            "/s/verify/code",
            &format!("{ours}&code=000000"),
            &["Origin: http://share.test"],
        )
        .await;
    assert_eq!(
        evaluated.status,
        400,
        "a wrong code, evaluated: {}",
        evaluated.text()
    );
}

#[tokio::test]
async fn a_code_of_one_share_does_not_verify_another() {
    let s = setup("", None).await;
    let a = s.guest(RECIPIENT).await;
    let b = s.guest(RECIPIENT).await;
    let code_a = a.code_by_mail(RECIPIENT).await;
    let code_b = b.code_by_mail(RECIPIENT).await;
    if code_a == code_b {
        // One chance in a million that both shares drew the same digits; nothing to learn then.
        return;
    }
    let answer = b.enter(&code_a).await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.header("set-cookie").is_none());
}

#[tokio::test]
async fn a_verified_cookie_of_one_share_does_not_verify_another() {
    let s = setup("", None).await;
    let link_a = s.link("42", RECIPIENT, None);
    let mut a = s.open(&link_a).await;
    a.verify(RECIPIENT).await;
    // The same browser opens a second share's link (forwarded from another address): it gets
    // that share's unverified session, not A's verification.
    let link_b = s.link("42", "other@clinic.example", None);
    let opened = s.gw.get(&link_b, &[&a.cookie_header()]).await;
    assert_eq!(opened.status, 303);
    assert_eq!(
        opened.header("location"),
        Some("http://share.test/s/verify")
    );
    let b = Browser {
        setup: &s,
        cookie: cookie_of(&opened).unwrap(),
    };
    assert_eq!(b.get("/cases/42", &["Accept: text/html"]).await.status, 303);
    // Opening A's own link again keeps A verified.
    let link_a_again =
        s.gw.get(&s.link("42", RECIPIENT, None), &[&a.cookie_header()])
            .await;
    assert_eq!(
        link_a_again.header("location"),
        Some("http://share.test/s/verify")
    );
}

#[tokio::test]
async fn the_login_link_is_offered_only_when_configured() {
    let with = setup("", Some("https://cases.clinic.example/login")).await;
    let page = with.guest(RECIPIENT).await.landing().await.text();
    assert!(
        page.contains("href=\"https://cases.clinic.example/login\""),
        "{page}"
    );
    let without = setup("", None).await;
    let page = without.guest(RECIPIENT).await.landing().await.text();
    assert!(!page.contains("login"), "{page}");
}

#[tokio::test]
async fn a_swedish_share_gets_swedish_pages_and_a_swedish_mail() {
    let s = setup("", None).await;
    let browser = s.open(&s.link("42", RECIPIENT, Some("sv"))).await;
    let page = browser.landing().await;
    assert!(page.text().contains("lang=\"sv\""), "{}", page.text());
    assert_eq!(page.header("content-language"), Some("sv"));
    browser.send_code().await;
    let mail = s.smtp.wait_for_mail(RECIPIENT, MAIL_WAIT).await;
    assert!(mail.subject.contains("kod"), "{}", mail.subject);
    let code = code_in(&mail.body).unwrap();
    let wrong = browser.enter(&other_than(&code)).await;
    assert!(wrong.text().contains("lang=\"sv\""));
}

#[tokio::test]
async fn links_without_an_email_are_neither_minted_nor_accepted_for_a_verifying_scope() {
    let s = setup("", None).await;
    let refused = s.gw.snapshot.mint_link(
        &ShareRequest {
            case: "42",
            scope: "checked",
            ttl: None,
            email: None,
            lang: None,
        },
        unix_now(),
    );
    assert_eq!(refused.unwrap_err(), MintError::EmailRequired);
    // Signed elsewhere (PyJWT, say) without an email: refused at the exchange, no cookie.
    let keys = casegate::share::KeyRing::new(
        "k1",
        vec![(
            "k1".to_owned(),
            casegate::share::keys::decode_key(TEST_KEY).unwrap(),
        )],
    )
    .unwrap();
    let now = unix_now();
    let claims = LinkClaims {
        share_id: token::new_share_id().unwrap(),
        case: "42".into(),
        scope: "checked".into(),
        issued_at: now,
        expires_at: now + 600,
        not_before: None,
        email: None,
        lang: None,
    };
    let answer =
        s.gw.get(&format!("/s/{}", token::mint(&keys, &claims)), &[])
            .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert!(answer.text().contains("invalid_link"), "{}", answer.text());
    assert!(answer.header("set-cookie").is_none());
    assert_eq!(s.upstream_requests(), 0);
}

#[tokio::test]
async fn a_failed_mail_takes_its_code_back() {
    let s = setup("resend_cooldown = \"0s\"", None).await;
    let browser = s.guest(RECIPIENT).await;
    s.smtp.fail_next(1);
    let failed = browser.send_code().await;
    assert!(failed.status >= 500, "{}", failed.text());
    let page = browser.landing().await.text();
    assert!(page.contains("action=\"/s/verify/send\""), "{page}");
    let mut browser = browser;
    browser.verify(RECIPIENT).await;
}

#[tokio::test]
async fn other_scopes_and_requests_without_a_session_are_unaffected() {
    let s = setup("", None).await;
    let cookie = s.gw.open_link("42", "view").await;
    let case = s.gw.get("/cases/42", &[&format!("Cookie: {cookie}")]).await;
    assert_eq!(case.status, 200);
    let no_session = s.gw.get("/s/verify", &[]).await;
    assert_eq!(no_session.status, 401, "{}", no_session.text());
    // A guest of a scope that verifies nothing is sent on to the case.
    let landing = s.gw.get("/s/verify", &[&format!("Cookie: {cookie}")]).await;
    assert_eq!(landing.status, 303);
    assert_eq!(
        landing.header("location"),
        Some("http://share.test/cases/42")
    );
}

#[tokio::test]
async fn a_second_cases_verification_leaves_the_first_cases_session_alone() {
    let s = setup("", None).await;
    let mut first = s.guest(RECIPIENT).await;
    first.verify(RECIPIENT).await;
    // The same browser opens a verifying link to case 43, mailed to another address.
    let other = "other@clinic.example";
    let opened =
        s.gw.get(&s.link("43", other, None), &[&first.cookie_header()])
            .await;
    assert_eq!(opened.status, 303);
    assert_eq!(
        opened.header("location"),
        Some("http://share.test/s/verify")
    );
    assert_eq!(
        opened.headers_named("set-cookie").len(),
        1,
        "nothing dropped"
    );
    let both = Browser {
        setup: &s,
        cookie: format!("{}; {}", first.cookie, cookie_of(&opened).unwrap()),
    };
    // Case 42 still opens; case 43 waits for its address.
    assert_eq!(
        both.get("/cases/42", &["Accept: text/html"]).await.status,
        200
    );
    let waiting = both.get("/cases/43", &["Accept: text/html"]).await;
    assert_eq!(waiting.status, 303);
    assert_eq!(
        waiting.header("location"),
        Some("http://share.test/s/verify")
    );
    assert_eq!(s.upstream_requests(), 1);
    // The verification pages are about case 43's share: its address, its code.
    let landing = both.landing().await.text();
    assert!(landing.contains("o***@clinic.example"), "{landing}");
    let code = both.code_by_mail(other).await;
    let answer = both.enter(&code).await;
    assert_eq!(answer.status, 303, "{}", answer.text());
    assert_eq!(
        answer.header("location"),
        Some("http://share.test/cases/43")
    );
    let after = Browser {
        setup: &s,
        cookie: format!("{}; {}", first.cookie, cookie_of(&answer).unwrap()),
    };
    for case in ["42", "43"] {
        let page = after
            .get(&format!("/cases/{case}"), &["Accept: text/html"])
            .await;
        assert_eq!(page.status, 200, "case {case}: {}", page.text());
    }
    assert_eq!(s.upstream_requests(), 2);
}
