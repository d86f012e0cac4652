//! Links and cookies that must not open anything: expired, early, forged, replayed across cases,
//! confused with each other. Each is answered with a plain page and never reaches the upstream.

mod common;

use casegate::clock::unix_now;
use casegate::share::cookie;
use casegate::share::keys::{KeyRing, decode_key};
use casegate::share::token::{LinkClaims, mint, new_share_id};

use common::{COOKIE, TEST_KEY, TestGateway, cookie_for};

fn ring(kid: &str, key: &str) -> KeyRing {
    KeyRing::new(kid, vec![(kid.to_owned(), decode_key(key).unwrap())]).unwrap()
}

fn claims(case: &str, scope: &str, issued: i64, expires: i64) -> LinkClaims {
    LinkClaims {
        share_id: new_share_id().unwrap(),
        case: case.to_owned(),
        scope: scope.to_owned(),
        issued_at: issued,
        expires_at: expires,
        not_before: None,
        email: None,
        lang: None,
    }
}

#[tokio::test]
async fn refused_links_get_the_right_page_and_never_a_cookie() {
    let gw = TestGateway::start().await;
    let now = unix_now();
    let ours = ring("k1", TEST_KEY);
    let stranger = ring("k1", "c3RyYW5nZXJzLWtleS1pcy0zMi1ieXRlcy1sb25nISE");
    let other_kid = ring("k9", TEST_KEY);
    let valid = mint(&ours, &claims("42", "view", now, now + 3600));
    let mut early = claims("42", "view", now, now + 7200);
    early.not_before = Some(now + 3600);
    let tampered = {
        let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
        let forged_claims = mint(&ours, &claims("43", "view", now, now + 3600));
        parts[1] = forged_claims.split('.').nth(1).unwrap().to_owned();
        parts.join(".")
    };
    let unsigned = {
        let header = "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ"; // {"alg":"none","kid":"k1"}
        let payload = valid.split('.').nth(1).unwrap();
        format!("{header}.{payload}.")
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "expired two minutes ago",
            mint(&ours, &claims("42", "view", now - 7200, now - 120)),
            410,
            "expired_link",
        ),
        (
            "not valid for another hour",
            mint(&ours, &early),
            403,
            "link_not_yet_valid",
        ),
        (
            "signed with another key",
            mint(&stranger, &claims("42", "view", now, now + 60)),
            403,
            "invalid_link",
        ),
        (
            "an unknown kid",
            mint(&other_kid, &claims("42", "view", now, now + 60)),
            403,
            "invalid_link",
        ),
        (
            "claims swapped under a valid signature",
            tampered,
            403,
            "invalid_link",
        ),
        // The empty signature leaves a trailing dot, which the target grammar already refuses;
        // under the link prefix that is a damaged link.
        ("alg none", unsigned, 403, "invalid_link"),
        // Pasted from a mail with what followed it: the page says the link is damaged.
        (
            "a full stop after the link",
            format!("{valid}."),
            403,
            "invalid_link",
        ),
        (
            "a slash after the link",
            format!("{valid}/"),
            403,
            "invalid_link",
        ),
        (
            "a lifetime over max_ttl",
            mint(&ours, &claims("42", "view", now, now + 31 * 86400)),
            403,
            "invalid_link",
        ),
        (
            "an unknown scope",
            mint(&ours, &claims("42", "admin", now, now + 60)),
            403,
            "invalid_link",
        ),
        (
            "a case id outside the grammar",
            mint(&ours, &claims("42/../43", "view", now, now + 60)),
            403,
            "invalid_link",
        ),
        (
            "padding in the base64",
            format!("{valid}="),
            403,
            "invalid_link",
        ),
        ("garbage", "not-a-token".to_owned(), 403, "invalid_link"),
        ("a 5 KiB token", "a".repeat(5000), 403, "invalid_link"),
    ];
    for (what, token, status, code) in cases {
        let response = gw
            .get(&format!("/s/{token}"), &["Accept: application/json"])
            .await;
        assert_eq!(response.status, status, "{what}");
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect(what);
        assert_eq!(body["error"]["code"], code, "{what}");
        assert_eq!(response.header("set-cookie"), None, "{what}");
        assert!(
            !response.text().contains(&token[..token.len().min(40)]),
            "{what}: token echoed"
        );
        let html = gw.get(&format!("/s/{token}"), &["Accept: text/html"]).await;
        assert_eq!(html.status, status, "{what} (html)");
        assert!(
            html.header("content-type")
                .is_some_and(|t| t.starts_with("text/html"))
        );
    }
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn refused_cookies_get_401_and_never_reach_the_upstream() {
    let gw = TestGateway::start().await;
    let now = unix_now();
    let ours = ring("k1", TEST_KEY);
    let stranger = ring("k1", "c3RyYW5nZXJzLWtleS1pcy0zMi1ieXRlcy1sb25nISE");
    let guest = |case: &str, expires_at: i64| common::guest(case, "view", now, expires_at);
    let good = cookie::seal(&ours, &guest("42", now + 600)).unwrap();
    let link_token = mint(&ours, &claims("42", "view", now, now + 600));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            format!(
                "{COOKIE}={}",
                cookie::seal(&ours, &guest("42", now - 1)).unwrap()
            ),
            "session_expired",
        ),
        (
            "sealed with another key",
            format!(
                "{COOKIE}={}",
                cookie::seal(&stranger, &guest("42", now + 600)).unwrap()
            ),
            "session_invalid",
        ),
        (
            "a link token used as a cookie",
            format!("{COOKIE}={link_token}"),
            "session_invalid",
        ),
        (
            "two good cookies of our name",
            format!("{COOKIE}={good}; {COOKIE}={good}"),
            "session_invalid",
        ),
        (
            "a truncated cookie",
            format!("{COOKIE}={}", &good[..good.len() - 5]),
            "session_invalid",
        ),
    ];
    for (what, header, code) in cases {
        let response = gw
            .get(
                "/cases/42",
                &[&format!("Cookie: {header}"), "Accept: application/json"],
            )
            .await;
        assert_eq!(response.status, 401, "{what}");
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect(what);
        assert_eq!(body["error"]["code"], code, "{what}");
        // A cookie that can never work again is dropped, so the next page is "open your link".
        let cleared = response.header("set-cookie").unwrap_or_default();
        assert!(
            cleared.starts_with(&format!("{COOKIE}=;")) && cleared.contains("Max-Age=0"),
            "{what}: {cleared:?}"
        );
    }
    // The good cookie alone works, and so it does beside one of its name that does not open
    // (set for another path, say), and a cookie presented as a link does not.
    for header in [
        format!("Cookie: {COOKIE}={good}"),
        format!("Cookie: {COOKIE}={good}; {COOKIE}=v2.k1.AAAA.BBBB"),
    ] {
        let ok = gw.get("/cases/42", &[&header]).await;
        assert_eq!(ok.status, 200, "{header}");
        assert_eq!(gw.upstream.take().len(), 1);
    }
    let as_link = gw.get(&format!("/s/{good}"), &[]).await;
    assert_eq!(as_link.status, 403);
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn a_link_for_one_case_never_opens_another() {
    let gw = TestGateway::start().await;
    let cookie42 = gw.open_link("42", "view").await;
    let cookie43 = gw.open_link("43", "view").await;
    assert_eq!(
        gw.get("/cases/43", &[&format!("Cookie: {cookie42}")])
            .await
            .status,
        403
    );
    assert_eq!(
        gw.get("/cases/42", &[&format!("Cookie: {cookie43}")])
            .await
            .status,
        403
    );
    assert_eq!(
        gw.get("/cases/43", &[&format!("Cookie: {cookie43}")])
            .await
            .status,
        200
    );
    let received = gw.upstream.take();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("x-casegate-case"), Some("43"));
}

#[tokio::test]
async fn rotating_keys_keeps_old_links_and_cookies_working_until_the_old_key_is_removed() {
    let old_key = "b2xkLWtleS1iZWZvcmUtcm90YXRpb24tMzItYnl0ZXM";
    let now = unix_now();
    let old = ring("k0", old_key);
    let old_link = mint(&old, &claims("42", "view", now, now + 600));
    let old_cookie = cookie::seal(&old, &common::guest("42", "view", now, now + 600)).unwrap();

    // k1 active, k0 still verifying: both old credentials work, new ones are signed with k1.
    let upstream = common::upstream::TestUpstream::start().await;
    let rotated = common::config_text(&upstream.url(), "", "").replace(
        "[keys.secrets]\n",
        &format!("[keys.secrets]\nk0 = {{ value = \"{old_key}\" }}\n"),
    );
    let gw = TestGateway::start_from_text(upstream, &rotated).await;
    let response = gw.get(&format!("/s/{old_link}"), &[]).await;
    assert_eq!(response.status, 303);
    let new_cookie = response.header("set-cookie").unwrap();
    assert!(
        new_cookie.starts_with(&format!("{}=v2.k1.", cookie_for("42"))),
        "{new_cookie}"
    );
    let ok = gw
        .get("/cases/42", &[&format!("Cookie: {COOKIE}={old_cookie}")])
        .await;
    assert_eq!(ok.status, 200);
    assert!(
        gw.snapshot
            .mint_link(
                &casegate::gateway::ShareRequest {
                    case: "42",
                    scope: "view",
                    ttl: None,
                    email: None,
                    lang: None
                },
                now
            )
            .unwrap()
            .token
            .starts_with("eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIi")
    );
    gw.stop().await;

    // k0 removed: the old link and cookie stop working.
    let gw = TestGateway::start().await;
    assert_eq!(gw.get(&format!("/s/{old_link}"), &[]).await.status, 403);
    assert_eq!(
        gw.get("/cases/42", &[&format!("Cookie: {COOKIE}={old_cookie}")])
            .await
            .status,
        401
    );
    assert!(gw.upstream.take().is_empty());
}
