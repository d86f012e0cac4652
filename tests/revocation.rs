//! Revocation and the organisation's sharing switch, over real sockets: a revoked share's link and
//! cookies answer 410 on their next request and never reach the upstream; revoking a case refuses
//! everything of that case issued up to then, including tokens minted outside casegate (PyJWT);
//! `[links] enabled = false` refuses every link and guest cookie unopened.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use casegate::clock::unix_now;
use casegate::share::keys::{KeyRing, decode_key};
use casegate::share::{Guest, cookie};
use casegate::state::{Revocation, ShareStatus};

use common::raw_client::RawResponse;
use common::upstream::TestUpstream;
use common::{COOKIE, TEST_KEY, TestGateway, cookie_for};

/// What a browser is told to do with our cookie when it can never work again.
/// The answer's `Set-Cookie` that drops the guest's session of `case`.
fn cleared_cookie(case: &str) -> String {
    format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
        cookie_for(case)
    )
}

fn assert_page(response: &RawResponse, status: u16, code: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.text());
    assert!(
        response.text().contains(code),
        "{what}: no {code} in {}",
        response.text()
    );
}

fn cookie_header(cookie: &str) -> String {
    format!("Cookie: {cookie}")
}

/// A guest request with `cookie`, answered within a second.
async fn browse(gw: &TestGateway, cookie: &str) -> RawResponse {
    let started = Instant::now();
    let response = gw.get("/cases/42", &[&cookie_header(cookie)]).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    response
}

/// Sleeps until the wall clock is past `unix_secs`: a token issued then is issued after it.
async fn wait_until_after(unix_secs: i64) {
    while unix_now() <= unix_secs {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_share_revoked_by_id_refuses_the_guests_next_request_and_clears_the_cookie() {
    let gw = TestGateway::start().await;
    let link = gw.mint("42", "view");
    let guest = gw.exchange(&format!("/s/{}", link.token)).await;
    assert_eq!(browse(&gw, &guest).await.status, 200);
    assert_eq!(gw.upstream.take().len(), 1);

    gw.store()
        .revoke_share(&link.share_id, unix_now())
        .await
        .expect("a durable revoke");

    let refused = browse(&gw, &guest).await;
    // The test share's lang is sv-SE, so its pages are in Swedish.
    assert_page(
        &refused,
        410,
        "Länken har dragits tillbaka",
        "the next request",
    );
    assert_eq!(refused.headers_named("set-cookie"), [cleared_cookie("42")]);
    let json = gw
        .get(
            "/cases/42",
            &[&cookie_header(&guest), "Accept: application/json"],
        )
        .await;
    assert_page(&json, 410, "\"revoked_link\"", "the JSON answer");
    assert_eq!(json.headers_named("set-cookie"), [cleared_cookie("42")]);
    let link_again = gw.get(&format!("/s/{}", link.token), &[]).await;
    assert_page(&link_again, 410, "revoked_link", "the link itself");
    assert!(
        link_again.header("set-cookie").is_none(),
        "a revoked link must not set a cookie"
    );
    assert!(
        gw.upstream.take().is_empty(),
        "a revoked share reached the upstream"
    );

    let view = gw
        .store()
        .share(&link.share_id, unix_now())
        .expect("a share that was opened is known");
    assert_eq!(view.status, ShareStatus::Revoked);
    assert_eq!(view.uses, 1);
    assert_eq!(view.case.as_deref(), Some("42"));
}

#[tokio::test]
async fn a_revoked_cookie_never_falls_back_to_passthrough() {
    let upstream = TestUpstream::start().await;
    let text = common::config_text(&upstream.url(), "", "")
        .replace("passthrough = false", "passthrough = true");
    let gw = TestGateway::start_from_text(upstream, &text).await;
    let link = gw.mint("42", "view");
    let guest = gw.exchange(&format!("/s/{}", link.token)).await;
    gw.store()
        .revoke_share(&link.share_id, unix_now())
        .await
        .unwrap();

    let refused = browse(&gw, &guest).await;
    assert_page(
        &refused,
        410,
        "revoked_link",
        "a revoked cookie in passthrough mode",
    );
    assert_eq!(refused.headers_named("set-cookie"), [cleared_cookie("42")]);
    assert!(gw.upstream.take().is_empty());
    // Staff traffic without our cookie still passes.
    assert_eq!(gw.get("/cases/42", &[]).await.status, 200);
    assert_eq!(gw.upstream.take().len(), 1);
}

#[tokio::test]
async fn revoking_a_case_refuses_everything_of_it_issued_before_and_nothing_else() {
    let gw = TestGateway::start().await;
    let viewer = gw.open_link("42", "view").await;
    let commenter = gw.open_link("42", "guest").await;
    let unopened = gw.link_path("42", "view");
    let other_case = gw.open_link("43", "view").await;
    let other_case_link = gw.link_path("43", "view");

    let revoked_at = unix_now();
    let not_before = gw.store().revoke_case("42", revoked_at).await.unwrap();
    assert_eq!(not_before, revoked_at);
    assert_eq!(
        gw.store()
            .revocation("unknown-share-id-0123", "42", revoked_at),
        Some(Revocation::Case { not_before })
    );

    for (what, guest) in [("a view cookie", &viewer), ("a guest cookie", &commenter)] {
        let refused = browse(&gw, guest).await;
        assert_page(&refused, 410, "revoked_link", what);
        assert_eq!(
            refused.headers_named("set-cookie"),
            [cleared_cookie("42")],
            "{what}"
        );
    }
    assert_page(
        &gw.get(&unopened, &[]).await,
        410,
        "revoked_link",
        "an unopened link of the case",
    );
    assert!(gw.upstream.take().is_empty());

    let other = gw.get("/cases/43", &[&cookie_header(&other_case)]).await;
    assert_eq!(other.status, 200, "another case's cookie: {}", other.text());
    assert_eq!(gw.get(&other_case_link, &[]).await.status, 303);
    assert_eq!(gw.upstream.take().len(), 1);

    // Sharing the case again, once the clock has moved on, works.
    wait_until_after(not_before).await;
    let again = gw.open_link("42", "view").await;
    assert_eq!(browse(&gw, &again).await.status, 200);
    assert_eq!(gw.upstream.take().len(), 1);
}

/// Mints a link with PyJWT, as a case application would without casegate's help.
fn pyjwt_link(share_id: &str, case: &str, issued_at: i64) -> String {
    const SNIPPET: &str = r#"
import base64, os, sys
import jwt
key_b64 = os.environ["CASEGATE_LINK_KEY"]
key = base64.urlsafe_b64decode(key_b64 + "=" * (-len(key_b64) % 4))
jti, case, iat = sys.argv[1], sys.argv[2], int(sys.argv[3])
claims = {"jti": jti, "case": case, "scope": "view", "iat": iat, "exp": iat + 3600}
print(jwt.encode(claims, key, algorithm="HS256", headers={"kid": "k1"}))
"#;
    let output = Command::new("python3")
        .args(["-c", SNIPPET, share_id, case, &issued_at.to_string()])
        .env("CASEGATE_LINK_KEY", TEST_KEY)
        .output()
        .expect("python3 with PyJWT (pip install PyJWT)");
    assert!(
        output.status.success(),
        "PyJWT mint failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    format!("/s/{}", String::from_utf8(output.stdout).unwrap().trim())
}

#[tokio::test]
async fn tokens_minted_outside_casegate_are_revocable_and_become_known_on_first_use() {
    let gw = TestGateway::start().await;
    let now = unix_now();

    // Revoked by id before it was ever used: refused on first use.
    let revoked_id = "pyjwt-revoked-before-use-01";
    let revoked_link = pyjwt_link(revoked_id, "77", now);
    assert!(gw.store().share(revoked_id, now).is_none());
    gw.store().revoke_share(revoked_id, now).await.unwrap();
    assert_page(
        &gw.get(&revoked_link, &[]).await,
        410,
        "revoked_link",
        "an external token revoked by id",
    );
    let known = gw
        .store()
        .share(revoked_id, unix_now())
        .expect("revoked ids are known");
    assert_eq!(known.status, ShareStatus::Revoked);
    assert_eq!(known.uses, 0);

    // Never revoked: known, with the claims it carried, from its first use.
    let used_id = "pyjwt-used-then-revoked-02";
    assert!(gw.store().share(used_id, now).is_none());
    let guest = gw.exchange(&pyjwt_link(used_id, "42", now)).await;
    let seen = gw
        .store()
        .share(used_id, unix_now())
        .expect("known after first use");
    assert_eq!(seen.status, ShareStatus::Active);
    assert_eq!(seen.case.as_deref(), Some("42"));
    assert_eq!(seen.scope.as_deref(), Some("view"));
    assert_eq!(seen.created_at, Some(now));
    assert_eq!(seen.expires_at, Some(now + 3600));
    assert_eq!(seen.uses, 1);
    assert_eq!(seen.origin, "link");
    assert_eq!(browse(&gw, &guest).await.status, 200);
    assert_eq!(gw.upstream.take().len(), 1);

    gw.store().revoke_share(used_id, unix_now()).await.unwrap();
    assert_page(
        &browse(&gw, &guest).await,
        410,
        "revoked_link",
        "its cookie",
    );
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn a_revocation_survives_a_restart() {
    let gw = TestGateway::start().await;
    let link = gw.mint("42", "view");
    let guest = gw.exchange(&format!("/s/{}", link.token)).await;
    gw.store()
        .revoke_share(&link.share_id, unix_now())
        .await
        .unwrap();
    let text = common::config_text(&gw.upstream.url(), "", "");
    let (upstream, state_dir) = gw.stop_keeping_state().await;

    let gw = TestGateway::start_in(upstream, &text, state_dir).await;
    assert_page(
        &browse(&gw, &guest).await,
        410,
        "revoked_link",
        "after a restart",
    );
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn with_sharing_switched_off_links_and_cookies_get_the_sharing_disabled_page() {
    let upstream = TestUpstream::start().await;
    let text = common::config_text(&upstream.url(), "", "")
        .replace("max_ttl = \"30d\"", "max_ttl = \"30d\"\nenabled = false");
    let gw = TestGateway::start_from_text(upstream, &text).await;
    let now = unix_now();
    let ring = KeyRing::new("k1", vec![("k1".to_owned(), decode_key(TEST_KEY).unwrap())]).unwrap();
    let guest_42 = Guest {
        share_id: "sealed-by-this-gateways-key".to_owned(),
        ..common::guest("42", "view", now, now + 600)
    };
    let genuine_cookie = cookie::seal(&ring, &guest_42).unwrap();
    let link = gw.link_path("42", "view");
    let swedish = Guest {
        share_id: "a-swedish-share".to_owned(),
        case: "43".to_owned(),
        lang: Some("sv-SE".to_owned()),
        ..guest_42.clone()
    };
    let swedish_cookie = format!(
        "Cookie: {}={}",
        cookie_for("43"),
        cookie::seal(&ring, &swedish).unwrap()
    );
    let cookie = format!("Cookie: {COOKIE}={genuine_cookie}");
    let garbage = format!("Cookie: {COOKIE}=not-even-a-cookie");
    let cases: [(&str, &str, &[&str]); 4] = [
        ("a garbage link", "/s/garbage", &[]),
        ("a genuine cookie", "/cases/42", &[&cookie]),
        ("a garbage cookie", "/cases/42", &[&garbage]),
        (
            "a genuine cookie asking for JSON",
            "/cases/42",
            &[&cookie, "Accept: application/json"],
        ),
    ];
    for (what, target, headers) in cases {
        let response = gw.get(target, headers).await;
        assert_page(&response, 403, "sharing_disabled", what);
        if headers.iter().any(|header| header.contains("json")) {
            assert!(
                response.text().contains("\"code\":\"sharing_disabled\""),
                "{what}: {}",
                response.text()
            );
        } else {
            assert!(
                response
                    .text()
                    .contains("Sharing is turned off by the organisation"),
                "{what}: {}",
                response.text()
            );
        }
        assert!(response.header("set-cookie").is_none(), "{what}");
    }
    // A genuine link or cookie of a Swedish share: the page is in Swedish.
    for (what, target, headers) in [
        ("a valid link", link.as_str(), &[][..]),
        (
            "a cookie of a session",
            "/cases/43",
            &[swedish_cookie.as_str()][..],
        ),
    ] {
        let response = gw.get(target, headers).await;
        assert_page(&response, 403, "sharing_disabled", what);
        assert!(
            response.text().contains("Delning är avstängd"),
            "{what}: {}",
            response.text()
        );
    }
    // Without a link or cookie nothing changes: no session, as before.
    assert_page(
        &gw.get("/cases/42", &[]).await,
        401,
        "no_session",
        "no credential",
    );
    assert!(gw.upstream.take().is_empty(), "the upstream was reached");
}

/// The config of a second gateway in front of `gw`'s upstream, for a test to point at something
/// `gw` holds.
fn second_gateway_config(gw: &TestGateway) -> casegate::config::Config {
    let text = common::config_text(&gw.upstream.url(), "", "");
    casegate::config::parse(std::path::Path::new("test.toml"), &text, &|_| None).unwrap()
}

/// Starts a gateway that must fail to start, and returns why; `started` says what it would mean.
async fn start_refused(config: &casegate::config::Config, started: &str) -> casegate::StartError {
    match casegate::start(config).await {
        Ok(_) => panic!("{started}"),
        Err(error) => error,
    }
}

/// `SO_REUSEPORT` would let a second casegate of the same user join the port and take part of
/// the guests, with its own state: a share revoked on the first would still open on the second.
#[tokio::test]
async fn a_second_gateway_cannot_listen_on_the_same_port() {
    let gw = TestGateway::start().await;
    let mut config = second_gateway_config(&gw);
    config.server.listen = gw.addr;
    let other_state = tempfile::tempdir().unwrap();
    config.state.path = other_state.path().to_path_buf();
    let error = start_refused(&config, "a second gateway joined the first one's port").await;
    let message = error.to_string();
    assert!(
        matches!(&error, casegate::StartError::Bind { source, .. }
            if source.kind() == std::io::ErrorKind::AddrInUse),
        "{error:?}"
    );
    assert!(
        message.contains(&gw.addr.to_string()) && message.contains("another casegate"),
        "{message}"
    );
    // Every guest still reaches the one gateway, which knows every revocation.
    let link = gw.mint("42", "view");
    gw.store()
        .revoke_share(&link.share_id, casegate::clock::unix_now())
        .await
        .unwrap();
    let path = format!("/s/{}", link.token);
    for _ in 0..8 {
        assert_eq!(gw.get(&path, &[]).await.status, 410);
    }
}

#[tokio::test]
async fn a_second_gateway_cannot_use_the_same_state_directory() {
    let gw = TestGateway::start().await;
    let mut config = second_gateway_config(&gw);
    config.state.path = gw.state_dir().to_path_buf();
    let error = start_refused(&config, "two gateways shared one state directory").await;
    assert!(matches!(error, casegate::StartError::State(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&gw.state_dir().display().to_string()) && message.contains("locked"),
        "{message}"
    );
    // The running gateway is unaffected.
    assert_eq!(gw.get(&gw.link_path("42", "view"), &[]).await.status, 303);
}
