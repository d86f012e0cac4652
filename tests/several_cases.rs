//! One browser given links to several cases (a consultant sent three cases): each case keeps its
//! own session, a request acts as the session of the case it asks for, and revoking or
//! replacing one leaves the others alone.

mod common;

use casegate::clock::unix_now;
use common::raw_client::RawResponse;
use common::{COOKIE, TestGateway, cookie_for};

/// The link's answer, which must be the 303 that sets the guest cookie of `case`.
async fn open_in_browser(gw: &TestGateway, case: &str, jar: &[String]) -> RawResponse {
    let link = gw.link_path(case, "view");
    let response = gw.get(&link, &[&cookie_line(jar)]).await;
    assert_eq!(response.status, 303, "{}", response.text());
    let set = response.headers_named("set-cookie");
    assert!(
        set[0].starts_with(&format!("{}=v2.", cookie_for(case))),
        "{set:?}"
    );
    response
}

/// One browser's cookies after opening a link to each of `cases` in turn; no link drops an
/// earlier case's session.
async fn open_all(gw: &TestGateway, cases: &[&str]) -> Vec<String> {
    let mut jar = Vec::new();
    for case in cases {
        let response = open_in_browser(gw, case, &jar).await;
        assert!(
            cleared(&response).is_empty(),
            "opening case {case} dropped a session: {:?}",
            response.headers_named("set-cookie")
        );
        jar.push(set_pair(&response, case));
    }
    jar
}

/// The `name=value` the answer set for `case`.
fn set_pair(response: &RawResponse, case: &str) -> String {
    let prefix = format!("{}=", cookie_for(case));
    let line = response
        .headers_named("set-cookie")
        .into_iter()
        .find(|line| line.starts_with(&prefix))
        .expect("the case's cookie");
    line.split(';').next().unwrap().to_owned()
}

fn cookie_line(jar: &[String]) -> String {
    if jar.is_empty() {
        // A header the gateway ignores, so every request has the same shape.
        return "X-Jar: empty".to_owned();
    }
    format!("Cookie: {}", jar.join("; "))
}

/// The names the answer asks the browser to drop.
fn cleared(response: &RawResponse) -> Vec<String> {
    response
        .headers_named("set-cookie")
        .into_iter()
        .filter(|line| line.contains("Max-Age=0"))
        .map(|line| line.split('=').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_browser_keeps_one_session_per_case_and_each_request_acts_as_its_cases() {
    let gw = TestGateway::start().await;
    let jar = open_all(&gw, &["42", "43"]).await;

    for case in ["42", "43", "42"] {
        let response = gw
            .get(&format!("/cases/{case}"), &[&cookie_line(&jar)])
            .await;
        assert_eq!(response.status, 200, "case {case}: {}", response.text());
        let seen = gw.upstream.take();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].header("x-casegate-case"), Some(case));
        assert_eq!(seen[0].header("cookie"), None, "our cookies went upstream");
    }
    // Neither session opens a case the browser was not given.
    let refused = gw.get("/cases/44", &[&cookie_line(&jar)]).await;
    assert_eq!(refused.status, 403);
    assert!(gw.upstream.take().is_empty());
}

#[tokio::test]
async fn revoking_one_cases_share_clears_only_that_session() {
    let gw = TestGateway::start().await;
    let link_42 = gw.mint("42", "view");
    let response = gw.get(&format!("/s/{}", link_42.token), &[]).await;
    let mut jar = vec![set_pair(&response, "42")];
    let second = open_in_browser(&gw, "43", &jar).await;
    jar.push(set_pair(&second, "43"));

    gw.store()
        .revoke_share(&link_42.share_id, unix_now())
        .await
        .expect("a durable revoke");
    let refused = gw.get("/cases/42", &[&cookie_line(&jar)]).await;
    assert_eq!(refused.status, 410, "{}", refused.text());
    assert_eq!(cleared(&refused), [cookie_for("42")]);
    let still = gw.get("/cases/43", &[&cookie_line(&jar)]).await;
    assert_eq!(still.status, 200);
    let seen = gw.upstream.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-casegate-case"), Some("43"));
}

#[tokio::test]
async fn a_newer_link_to_the_same_case_replaces_its_session_and_the_old_name_goes() {
    let gw = TestGateway::start().await;
    let first = open_in_browser(&gw, "42", &[]).await;
    let tagged = set_pair(&first, "42");
    // A session of case 42 under the name every session had before this one, and one of 43.
    let (_, value) = tagged.split_once('=').unwrap();
    let old_name = format!("{COOKIE}={value}");
    let other = open_in_browser(&gw, "43", &[]).await;
    let jar = vec![old_name, set_pair(&other, "43")];
    let again = open_in_browser(&gw, "42", &jar).await;
    // The new cookie replaces 42's by name; the old name's session of 42 is dropped; 43 stays.
    assert_eq!(cleared(&again), [COOKIE]);
    let jar = vec![set_pair(&again, "42"), set_pair(&other, "43")];
    for case in ["42", "43"] {
        let response = gw
            .get(&format!("/cases/{case}"), &[&cookie_line(&jar)])
            .await;
        assert_eq!(response.status, 200, "case {case}");
    }
    // Both names for case 42 at once cannot both be this browser's: refused, and both dropped.
    let both = vec![
        format!("{COOKIE}={value}"),
        set_pair(&again, "42"),
        set_pair(&other, "43"),
    ];
    let refused = gw.get("/cases/42", &[&cookie_line(&both)]).await;
    assert_eq!(refused.status, 401);
    let mut dropped = cleared(&refused);
    dropped.sort();
    let mut every = vec![COOKIE.to_owned(), cookie_for("42"), cookie_for("43")];
    every.sort();
    assert_eq!(dropped, every);
}

#[tokio::test]
async fn past_eight_sessions_a_new_link_drops_the_one_that_expires_first() {
    let gw = TestGateway::start().await;
    let mut jar = Vec::new();
    for case in 1..=8 {
        let response = open_in_browser(&gw, &case.to_string(), &jar).await;
        assert!(cleared(&response).is_empty(), "case {case}");
        jar.push(set_pair(&response, &case.to_string()));
        // A second between them, so the first expires first.
        if case == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
    }
    let ninth = open_in_browser(&gw, "9", &jar).await;
    assert_eq!(cleared(&ninth), [cookie_for("1")]);
}

#[tokio::test]
async fn a_revoked_newest_session_does_not_answer_for_routes_of_no_case() {
    let gw = TestGateway::start().await;
    let older = open_in_browser(&gw, "43", &[]).await;
    let mut jar = vec![set_pair(&older, "43")];
    // A second later, so the share of case 42 is the newest.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let link_42 = gw.mint("42", "view");
    let newest = gw
        .get(&format!("/s/{}", link_42.token), &[&cookie_line(&jar)])
        .await;
    jar.push(set_pair(&newest, "42"));
    // Before the revoke, /static/ (a rule with no case) is the newest share's.
    assert_eq!(
        gw.get("/static/app.css", &[&cookie_line(&jar)])
            .await
            .status,
        200
    );
    assert_eq!(gw.upstream.take()[0].header("x-casegate-case"), Some("42"));

    gw.store()
        .revoke_share(&link_42.share_id, unix_now())
        .await
        .expect("a durable revoke");
    let asset = gw.get("/static/app.css", &[&cookie_line(&jar)]).await;
    assert_eq!(asset.status, 200, "{}", asset.text());
    assert!(cleared(&asset).is_empty());
    assert_eq!(gw.upstream.take()[0].header("x-casegate-case"), Some("43"));
    // The revoked case itself still says so, and drops its cookie.
    let refused = gw.get("/cases/42", &[&cookie_line(&jar)]).await;
    assert_eq!(refused.status, 410);
    assert_eq!(cleared(&refused), [cookie_for("42")]);
}

#[tokio::test]
async fn a_case_no_session_opens_is_not_allowed_and_says_to_open_its_link_again() {
    let gw = TestGateway::start().await;
    let jar = open_all(&gw, &["42", "43"]).await;
    // Case 44's session is gone (revoked, expired, dropped): the page says what to do, in the
    // shares' language (the test links are Swedish).
    let refused = gw
        .get("/cases/44", &[&cookie_line(&jar), "Accept: text/html"])
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.text().contains("kan du öppna den igen"),
        "{}",
        refused.text()
    );
    assert!(cleared(&refused).is_empty(), "the other sessions stay");
}

#[tokio::test]
async fn a_stray_cookie_of_a_sessions_own_name_is_passed_over() {
    let gw = TestGateway::start().await;
    let opened = open_in_browser(&gw, "42", &[]).await;
    // A cookie of the same name set for another path (by the app's own script, say).
    let jar = vec![format!("{}=x", cookie_for("42")), set_pair(&opened, "42")];
    let response = gw.get("/cases/42", &[&cookie_line(&jar)]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    // Two that open, under one name, are still refused.
    let twice = vec![set_pair(&opened, "42"), set_pair(&opened, "42")];
    assert_eq!(
        gw.get("/cases/42", &[&cookie_line(&twice)]).await.status,
        401
    );
}

#[tokio::test]
async fn a_link_leaves_a_live_session_whose_name_a_dead_cookie_repeats() {
    let gw = TestGateway::start().await;
    let jar = open_all(&gw, &["43"]).await;
    // A dead cookie under case 43's name (set for another path) beside the live one.
    let with_stray = vec![format!("{}=x", cookie_for("43")), jar[0].clone()];
    let opened = open_in_browser(&gw, "42", &with_stray).await;
    assert!(
        cleared(&opened).is_empty(),
        "clearing 43's name would drop its live session: {:?}",
        opened.headers_named("set-cookie")
    );
}
