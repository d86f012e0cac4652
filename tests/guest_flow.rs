//! The core promise, over real sockets: a link opens exactly one case, read-only, and nothing else
//! reaches the upstream.

mod common;

use casegate::clock::unix_now;
use casegate::share::LinkClaims;
use common::{COOKIE, TestGateway, cookie_for};

#[tokio::test]
async fn a_link_becomes_a_cookie_and_a_redirect_without_touching_the_upstream() {
    let gw = TestGateway::start().await;
    let link = gw.link_path("42", "view");
    let response = gw.get(&link, &[]).await;

    assert_eq!(response.status, 303);
    assert_eq!(
        response.header("location"),
        Some("http://share.test/cases/42")
    );
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let set_cookie = response.header("set-cookie").expect("a guest cookie");
    assert!(
        set_cookie.starts_with(&format!("{}=", cookie_for("42"))),
        "{set_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} missing in {set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain-http public_url must not set Secure"
    );
    let value = set_cookie.split(';').next().unwrap();
    assert!(value.len() < 512, "cookie is {} bytes", value.len());
    assert!(!response.text().contains(&link[3..]), "the token is echoed");
    assert!(
        gw.upstream.take().is_empty(),
        "the link exchange reached the upstream"
    );
}

#[tokio::test]
async fn head_on_a_link_also_exchanges_it() {
    let gw = TestGateway::start().await;
    let link = gw.link_path("42", "view");
    let response = gw.request("HEAD", &link, &[], b"").await;
    assert_eq!(response.status, 303);
    assert!(response.header("set-cookie").is_some());
}

#[tokio::test]
async fn the_guest_reaches_its_case_and_the_upstream_sees_only_what_casegate_vouches_for() {
    let gw = TestGateway::start().await;
    let cookie = gw.open_link("42", "view").await;
    let response = gw
        .get(
            "/cases/42?tab=video",
            &[
                &format!("Cookie: staff=s3cr3t; {cookie}"),
                "X-Casegate-Case: 43",
                "X-Forwarded-For: 10.9.9.9",
                "X-Original-URL: /admin",
                "X-HTTP-Method-Override: DELETE",
                "X_Casegate_Case: 43",
                "Authorization: Bearer stolen",
                "Accept-Language: de",
            ],
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("cache-control"), Some("private, no-store"));
    assert_eq!(response.header("x-robots-tag"), Some("noindex"));

    let received = gw.upstream.take();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.request_line, "GET /cases/42?tab=video HTTP/1.1");
    assert_eq!(request.header("x-casegate-case"), Some("42"));
    assert_eq!(request.header_count("x-casegate-case"), 1);
    assert_eq!(request.header("x-casegate-scope"), Some("view"));
    assert_eq!(request.header("x-casegate-lang"), Some("sv-SE"));
    assert_eq!(
        request.header("accept-language"),
        Some("sv-SE"),
        "view pins the share's language"
    );
    assert_eq!(request.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(request.header("x-forwarded-proto"), Some("http"));
    assert_eq!(request.header("x-forwarded-host"), Some("share.test"));
    assert_eq!(
        request.header("host"),
        Some(gw.upstream.addr.to_string().as_str())
    );
    assert!(
        request
            .header("x-casegate-share")
            .is_some_and(|id| id.len() >= 22)
    );
    for absent in [
        "cookie",
        "authorization",
        "x-original-url",
        "x-http-method-override",
        "x_casegate_case",
    ] {
        assert_eq!(
            request.header(absent),
            None,
            "{absent} reached the upstream"
        );
    }
}

#[tokio::test]
async fn everything_outside_the_case_or_the_scope_is_refused_before_the_upstream() {
    let gw = TestGateway::start().await;
    let view = gw.open_link("42", "view").await;
    let guest = gw.open_link("42", "guest").await;
    let cases: &[(&str, &str, &str, u16)] = &[
        // (what, cookie, request line start, status)
        ("another case", &view, "GET /cases/43", 403),
        (
            "a case id with the right prefix",
            &view,
            "GET /cases/420",
            403,
        ),
        (
            "a case page of another case deep down",
            &view,
            "GET /cases/43/video",
            403,
        ),
        ("a route no rule names", &view, "GET /admin", 403),
        (
            "a write on a view-only share",
            &view,
            "POST /api/cases/42/comments",
            403,
        ),
        (
            "DELETE on a view-only share",
            &view,
            "DELETE /cases/42",
            403,
        ),
        ("a lowercase method", &view, "get /cases/42", 403),
        (
            "the billing page itself (** matches zero segments)",
            &guest,
            "GET /cases/42/billing",
            403,
        ),
        (
            "billing, denied in the guest scope",
            &guest,
            "GET /cases/42/billing/invoice",
            403,
        ),
        (
            "a team member other than oneself",
            &guest,
            "DELETE /api/cases/42/team/someone-else",
            403,
        ),
        ("a dot-dot escape", &view, "GET /cases/42/../43", 400),
        (
            "an encoded dot-dot escape",
            &view,
            "GET /cases/42/%2E%2E/43",
            400,
        ),
        (
            "a lowercase encoded dot-dot",
            &view,
            "GET /cases/42/%2e%2e/43",
            400,
        ),
        ("an encoded slash", &view, "GET /cases/42%2F..%2F43", 400),
        (
            "an encoded backslash",
            &view,
            "GET /cases/42/%5C..%5C43",
            400,
        ),
        ("a raw backslash", &view, "GET /cases/42/\\../43", 400),
        (
            "a path parameter",
            &view,
            "GET /cases/42;jsessionid=x/../43",
            400,
        ),
        ("double encoding", &view, "GET /cases/42/%252e%252e/43", 400),
        ("an empty segment", &view, "GET /cases//42", 400),
        ("an encoded NUL", &view, "GET /cases/42%00", 400),
        (
            "an overlong UTF-8 dot",
            &view,
            "GET /cases/42/%C0%AE%C0%AE/43",
            400,
        ),
        (
            "a fullwidth dot pair",
            &view,
            "GET /cases/42/%EF%BC%8E%EF%BC%8E/43",
            400,
        ),
        (
            "absolute-form",
            &view,
            "GET http://share.test/cases/42",
            400,
        ),
        ("asterisk-form", &view, "OPTIONS *", 400),
        ("an encoded case id", &view, "GET /cases/%34%32", 400),
    ];
    for (what, cookie, line, status) in cases {
        let request = format!(
            "{line} HTTP/1.1\r\nHost: share.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        );
        let response = gw.raw(request.as_bytes()).await;
        let got = response.as_ref().map(|r| r.status);
        assert_eq!(got, Some(*status), "{what}: {line}");
        assert!(
            gw.upstream.take().is_empty(),
            "{what}: {line} reached the upstream"
        );
    }
}

/// A scope whose rules do not include `[links] landing` names its own: its guests land on a page
/// they may see, not on a refusal right after opening the link.
#[tokio::test]
async fn a_scope_with_its_own_landing_sends_its_guests_there() {
    let gw = TestGateway::start().await;
    let opened = gw.get(&gw.link_path("42", "legacy"), &[]).await;
    assert_eq!(opened.status, 303);
    let location = opened.header("location").unwrap_or_default();
    assert!(location.ends_with("/legacy/case.php?id=42"), "{location}");
    let cookie = common::raw_client::cookie_pair(&opened);
    let landed = gw
        .get("/legacy/case.php?id=42", &[&format!("Cookie: {cookie}")])
        .await;
    assert_eq!(landed.status, 200);
    // Scopes without one land on [links] landing.
    let view = gw.get(&gw.link_path("42", "view"), &[]).await;
    let location = view.header("location").unwrap_or_default();
    assert!(location.ends_with("/cases/42"), "{location}");
}

#[tokio::test]
async fn query_bound_rules_pin_the_case_and_the_names() {
    let gw = TestGateway::start().await;
    let legacy = gw.open_link("42", "legacy").await;
    let cases = [
        ("/legacy/case.php?id=42", 200),
        ("/legacy/video.php?part=3&id=42", 200),
        ("/legacy/case.php?id=43", 403),
        ("/legacy/case.php?id=42&id=43", 403),
        ("/legacy/case.php?id=42&debug=1", 403),
        ("/legacy/case.php", 403),
        ("/legacy/video.php?id=42", 403),
    ];
    for (target, status) in cases {
        let response = gw.get(target, &[&format!("Cookie: {legacy}")]).await;
        assert_eq!(response.status, status, "{target}");
        let received = gw.upstream.take();
        if status == 200 {
            assert_eq!(received.len(), 1);
            assert_eq!(
                received[0].target(),
                target,
                "forwarded target differs from the judged one"
            );
        } else {
            assert!(received.is_empty(), "{target} reached the upstream");
        }
    }
}

#[tokio::test]
async fn without_a_session_nothing_is_forwarded_and_the_page_says_so() {
    let gw = TestGateway::start().await;
    let html = gw.get("/cases/42", &["Accept: text/html"]).await;
    assert_eq!(html.status, 401);
    assert!(
        html.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    let json = gw.get("/cases/42", &["Accept: application/json"]).await;
    assert_eq!(json.status, 401);
    let body: serde_json::Value = serde_json::from_slice(&json.body).expect("json body");
    assert_eq!(body["error"]["code"], "no_session");
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn passthrough_forwards_staff_requests_without_our_cookie_or_identity_claims() {
    let upstream = common::upstream::TestUpstream::start().await;
    let text = common::config_text(&upstream.url(), "", "")
        .replace("passthrough = false", "passthrough = true");
    let gw = TestGateway::start_from_text(upstream, &text).await;
    let response = gw
        .get(
            "/admin/anything",
            &[
                "Cookie: staff=s3cr3t",
                "X-Casegate-Case: 42",
                "Authorization: Basic c3RhZmY6eA==",
            ],
        )
        .await;
    assert_eq!(response.status, 200);
    let received = gw.upstream.take();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("cookie"), Some("staff=s3cr3t"));
    assert_eq!(
        received[0].header("authorization"),
        Some("Basic c3RhZmY6eA==")
    );
    assert_eq!(received[0].header("x-casegate-case"), None);
    // A bad guest cookie is still refused: passthrough is not a fallback for forged sessions.
    let forged = gw
        .get("/cases/42", &[&format!("Cookie: {COOKIE}=v2.k1.AAAA.BBBB")])
        .await;
    assert_eq!(forged.status, 401);
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn a_link_expired_within_the_clock_skew_is_refused_as_expired_not_given_a_dead_cookie() {
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("access.log");
    // The default [links] clock_skew, 60 s, still lets a link a second past its exp verify.
    let gw = TestGateway::start_with(
        "",
        &format!("[log]\naccess = {:?}\n", log.display().to_string()),
    )
    .await;
    let now = unix_now();
    let expired = |share_id: &str, expires_at: i64| {
        let minted = gw.snapshot.sign(LinkClaims {
            share_id: share_id.to_owned(),
            case: "42".to_owned(),
            scope: "view".to_owned(),
            issued_at: expires_at - 3600,
            expires_at,
            not_before: None,
            email: None,
            lang: None,
        });
        format!("/s/{}", minted.token)
    };
    let long_ago = gw
        .get(&expired("ExpiredLongAgo-0123456789", now - 3600), &[])
        .await;
    let just_now = gw
        .get(&expired("ExpiredJustNow-0123456789", now - 1), &[])
        .await;

    assert_eq!(long_ago.status, 410, "{}", long_ago.text());
    assert_eq!(just_now.status, long_ago.status, "{}", just_now.text());
    assert_eq!(
        just_now.text(),
        long_ago.text(),
        "the same expired-link page"
    );
    assert!(just_now.header("set-cookie").is_none(), "no cookie at all");
    assert!(
        gw.store()
            .share("ExpiredJustNow-0123456789", unix_now())
            .is_none(),
        "no use was counted"
    );
    gw.stop().await;

    let text = std::fs::read_to_string(&log).unwrap();
    let decisions: Vec<(u64, String)> = text
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                line["status"].as_u64().unwrap(),
                line["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(decisions.len(), 2, "{text}");
    assert_eq!(
        decisions[0], decisions[1],
        "logged as refused, like any expired link: {text}"
    );
    assert_ne!(decisions[1].1, "allowed", "{text}");
}
