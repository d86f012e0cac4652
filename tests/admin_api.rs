//! The admin API over real sockets, against the real gateway and its real store: every endpoint,
//! every error code, share statuses moving as a guest uses the link, and revocations that take
//! effect on the gateway at once and survive a restart.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw_client::{RawResponse, parse_response, send_raw};
use common::upstream::TestUpstream;
use common::{TestGateway, config_text};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// May share `view` and `guest`.
const APP_TOKEN: &str = "case-app-admin-token-0123456789abcdefghij";
/// May share `view` only.
const VIEWER_TOKEN: &str = "viewer-admin-token-0123456789abcdefghijkl";
const MAX_BODY: usize = 1024;

fn admin_section() -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"
max_body_bytes = {MAX_BODY}

[[admin.clients]]
name = "case-app"
token = {{ value = "{APP_TOKEN}" }}
scopes = ["view", "guest"]

[[admin.clients]]
name = "viewer-app"
token = {{ value = "{VIEWER_TOKEN}" }}
scopes = ["view"]
"#
    )
}

async fn start() -> TestGateway {
    TestGateway::start_with("", &admin_section()).await
}

/// A request to the admin API: `Connection: close`, the bearer token if any, a JSON body if any.
struct Call<'a> {
    method: &'a str,
    target: &'a str,
    token: Option<&'a str>,
    headers: Vec<String>,
    body: Option<Vec<u8>>,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, target: &'a str) -> Call<'a> {
        Call {
            method,
            target,
            token: Some(APP_TOKEN),
            headers: Vec::new(),
            body: None,
        }
    }

    fn token(mut self, token: Option<&'a str>) -> Call<'a> {
        self.token = token;
        self
    }

    fn header(mut self, line: &str) -> Call<'a> {
        self.headers.push(line.to_owned());
        self
    }

    fn json(mut self, value: &Value) -> Call<'a> {
        self.body = Some(value.to_string().into_bytes());
        self.header("Content-Type: application/json")
    }

    fn raw_body(mut self, body: &[u8]) -> Call<'a> {
        self.body = Some(body.to_vec());
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut text = format!(
            "{} {} HTTP/1.1\r\nHost: admin.test\r\nConnection: close\r\n",
            self.method, self.target
        );
        if let Some(token) = self.token {
            text.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for line in &self.headers {
            text.push_str(line);
            text.push_str("\r\n");
        }
        if let Some(body) = &self.body {
            text.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(self.body.as_deref().unwrap_or_default());
        bytes
    }

    async fn send(self, gw: &TestGateway) -> Answer {
        let response = send_raw(admin_addr(gw), &self.bytes())
            .await
            .expect("an answer from the admin API");
        Answer::from(response)
    }
}

fn admin_addr(gw: &TestGateway) -> SocketAddr {
    gw.admin_addr().expect("the admin API is listening")
}

/// A response with its body parsed as JSON; every admin answer must be uncached JSON.
struct Answer {
    raw: RawResponse,
    json: Value,
}

impl From<RawResponse> for Answer {
    fn from(raw: RawResponse) -> Answer {
        assert_eq!(
            raw.header("content-type"),
            Some("application/json"),
            "{}",
            raw.text()
        );
        assert_eq!(raw.header("cache-control"), Some("no-store"));
        let json = serde_json::from_slice(&raw.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", raw.text()));
        Answer { raw, json }
    }
}

impl Answer {
    fn status(&self) -> u16 {
        self.raw.status
    }

    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status(), self.code()),
            (status, code),
            "{}",
            self.raw.text()
        );
        assert!(
            self.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

async fn create(gw: &TestGateway, body: Value) -> Answer {
    Call::new("POST", "/v1/shares").json(&body).send(gw).await
}

async fn create_ok(gw: &TestGateway, body: Value) -> Value {
    let answer = create(gw, body).await;
    assert_eq!(answer.status(), 201, "{}", answer.raw.text());
    answer.json
}

async fn show(gw: &TestGateway, id: &str) -> Value {
    let answer = Call::new("GET", &format!("/v1/shares/{id}")).send(gw).await;
    assert_eq!(answer.status(), 200, "{}", answer.raw.text());
    answer.json
}

/// The path of a link URL, to open it through the gateway.
fn link_path(url: &str) -> String {
    let path = url
        .strip_prefix("http://share.test")
        .unwrap_or_else(|| panic!("a link on the public origin: {url}"));
    path.to_owned()
}

#[tokio::test]
async fn a_created_share_carries_its_link_and_shows_up_everywhere() {
    let gw = start().await;
    let created = create_ok(
        &gw,
        json!({"case": "42", "scope": "view", "ttl": "2h", "email": "a@b.example", "lang": "sv-SE",
               "note": "second opinion", "created_by": "dr.lind"}),
    )
    .await;
    let id = created["id"].as_str().expect("an id").to_owned();
    let token = created["token"].as_str().expect("a token");
    assert_eq!(
        created["url"].as_str(),
        Some(format!("http://share.test/s/{token}").as_str())
    );
    assert_eq!(created["case"], "42");
    assert_eq!(created["scope"], "view");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["uses"], 0);
    assert_eq!(created["client"], "case-app");
    assert_eq!(created["origin"], "api");
    assert_eq!(created["note"], "second opinion");
    assert_eq!(created["created_by"], "dr.lind");
    assert_eq!(created["email"], "a@b.example");
    assert_eq!(created["lang"], "sv-SE");
    let created_at = created["created_at"].as_i64().expect("created_at");
    assert_eq!(created["expires_at"].as_i64(), Some(created_at + 7200));
    let remaining = created["remaining_seconds"].as_i64().expect("remaining");
    assert!((7190..=7200).contains(&remaining), "{remaining}");
    assert!(created["first_used_at"].is_null() && created["revoked_at"].is_null());

    let shown = show(&gw, &id).await;
    assert_eq!(shown["id"], id.as_str());
    assert!(shown.get("token").is_none() && shown.get("url").is_none());

    let listed = Call::new("GET", "/v1/shares?case=42").send(&gw).await;
    assert_eq!(listed.status(), 200);
    let shares = listed.json["shares"].as_array().expect("a list");
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0]["id"], id.as_str());
    gw.stop().await;
}

#[tokio::test]
async fn a_create_answers_201_with_its_location_and_the_link_opens() {
    let gw = start().await;
    let answer = create(&gw, json!({"case": "42", "scope": "view"})).await;
    assert_eq!(answer.status(), 201);
    let id = answer.json["id"].as_str().unwrap();
    assert_eq!(
        answer.raw.header("location"),
        Some(format!("/v1/shares/{id}").as_str())
    );
    // The default ttl (24h) applies.
    let created_at = answer.json["created_at"].as_i64().unwrap();
    assert_eq!(
        answer.json["expires_at"].as_i64(),
        Some(created_at + 86_400)
    );
    let opened = gw
        .get(&link_path(answer.json["url"].as_str().unwrap()), &[])
        .await;
    assert_eq!(opened.status, 303, "{}", opened.text());
    gw.stop().await;
}

#[tokio::test]
async fn listing_filters_by_case_and_status_newest_first() {
    let gw = start().await;
    let first = create_ok(&gw, json!({"case": "42", "scope": "view"})).await;
    let other_case = create_ok(&gw, json!({"case": "43", "scope": "view"})).await;
    // One second apart, so that "newest first" has an order to show.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = create_ok(&gw, json!({"case": "42", "scope": "guest"})).await;
    let revoke = Call::new(
        "DELETE",
        &format!("/v1/shares/{}", first["id"].as_str().unwrap()),
    )
    .send(&gw)
    .await;
    assert_eq!(revoke.status(), 200);

    let ids = |answer: &Answer| -> Vec<String> {
        answer.json["shares"]
            .as_array()
            .expect("shares")
            .iter()
            .map(|share| share["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |share: &Value| share["id"].as_str().unwrap().to_owned();
    let cases = [
        (
            "everything",
            "/v1/shares",
            vec![id(&second), id(&first), id(&other_case)],
        ),
        (
            "one case",
            "/v1/shares?case=42",
            vec![id(&second), id(&first)],
        ),
        (
            "revoked ones",
            "/v1/shares?status=revoked",
            vec![id(&first)],
        ),
        (
            "pending of a case",
            "/v1/shares?case=42&status=pending",
            vec![id(&second)],
        ),
        ("a case with none", "/v1/shares?case=44", vec![]),
        ("no active ones yet", "/v1/shares?status=active", vec![]),
    ];
    for (name, target, want) in cases {
        let answer = Call::new("GET", target).send(&gw).await;
        assert_eq!(answer.status(), 200, "{name}");
        let mut got = ids(&answer);
        if name == "everything" {
            // first and other_case were created in the same second: their order is not defined.
            got[1..].sort();
            let mut tail = want[1..].to_vec();
            tail.sort();
            assert_eq!(got[0], want[0], "{name}");
            assert_eq!(got[1..], tail[..], "{name}");
        } else {
            assert_eq!(got, want, "{name}");
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_share_goes_from_pending_to_active_to_expired() {
    let gw = start().await;
    let created = create_ok(&gw, json!({"case": "42", "scope": "view", "ttl": "2s"})).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["status"], "pending");

    let opened = gw
        .get(&link_path(created["url"].as_str().unwrap()), &[])
        .await;
    assert_eq!(opened.status, 303);
    let active = show(&gw, id).await;
    assert_eq!(active["status"], "active", "{active}");
    assert_eq!(active["uses"], 1);
    assert!(active["first_used_at"].as_i64().is_some());
    assert_eq!(active["first_used_at"], active["last_used_at"]);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let expired = show(&gw, id).await;
    assert_eq!(expired["status"], "expired", "{expired}");
    assert_eq!(expired["remaining_seconds"], 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_revoked_share_is_revoked_at_once_for_link_and_cookie_and_stays_so() {
    let gw = start().await;
    let created = create_ok(&gw, json!({"case": "42", "scope": "view"})).await;
    let id = created["id"].as_str().unwrap();
    let link = link_path(created["url"].as_str().unwrap());
    let opened = gw.get(&link, &[]).await;
    let cookie = opened
        .header("set-cookie")
        .and_then(|value| value.split(';').next())
        .expect("a guest cookie")
        .to_owned();
    assert_eq!(
        gw.get("/cases/42", &[&format!("Cookie: {cookie}")])
            .await
            .status,
        200
    );
    gw.upstream.take();

    let revoked = Call::new("DELETE", &format!("/v1/shares/{id}"))
        .send(&gw)
        .await;
    assert_eq!(revoked.status(), 200, "{}", revoked.raw.text());
    assert_eq!(revoked.json["status"], "revoked");
    assert_eq!(revoked.json["case"], "42");
    assert!(revoked.json["revoked_at"].as_i64().is_some());
    assert!(revoked.json.get("token").is_none());

    assert_eq!(gw.get(&link, &[]).await.status, 410);
    assert_eq!(
        gw.get("/cases/42", &[&format!("Cookie: {cookie}")])
            .await
            .status,
        410
    );
    assert!(
        gw.upstream.take().is_empty(),
        "a revoked guest reached the upstream"
    );

    let again = Call::new("DELETE", &format!("/v1/shares/{id}"))
        .send(&gw)
        .await;
    assert_eq!(again.status(), 200, "revoking twice is fine");
    assert_eq!(again.json["revoked_at"], revoked.json["revoked_at"]);
    gw.stop().await;
}

#[tokio::test]
async fn a_token_minted_elsewhere_is_revocable_by_id_before_its_first_use() {
    let gw = start().await;
    let minted = gw.mint("42", "view");
    let (link, id) = (format!("/s/{}", minted.token), minted.share_id);
    let unknown = Call::new("GET", &format!("/v1/shares/{id}"))
        .send(&gw)
        .await;
    unknown.assert_error(404, "share_not_found");

    let revoked = Call::new("DELETE", &format!("/v1/shares/{id}"))
        .send(&gw)
        .await;
    assert_eq!(revoked.status(), 200, "{}", revoked.raw.text());
    assert_eq!(revoked.json["status"], "revoked");
    assert!(revoked.json["case"].is_null() && revoked.json["scope"].is_null());
    assert_eq!(revoked.json["origin"], "link");
    assert_eq!(gw.get(&link, &[]).await.status, 410);
    gw.stop().await;
}

#[tokio::test]
async fn revoking_a_case_refuses_every_earlier_credential_of_that_case_only() {
    let gw = start().await;
    let api_share = create_ok(&gw, json!({"case": "42", "scope": "view"})).await;
    let second_share = create_ok(&gw, json!({"case": "42", "scope": "guest"})).await;
    let other_case = create_ok(&gw, json!({"case": "43", "scope": "view"})).await;
    let external_link = gw.link_path("42", "view");
    let api_link = link_path(api_share["url"].as_str().unwrap());
    let cookie = gw.open_link("42", "view").await;

    let answer = Call::new("POST", "/v1/cases/42/revoke").send(&gw).await;
    assert_eq!(answer.status(), 200, "{}", answer.raw.text());
    assert_eq!(answer.json["case"], "42");
    // The two API shares; the externally minted link and the cookie's share are known only after
    // their first use (the cookie's share is known: its link was opened).
    let revoked_shares = answer.json["revoked_shares"].as_u64().unwrap();
    assert_eq!(revoked_shares, 3, "{}", answer.json);
    let not_before = answer.json["not_before"].as_i64().unwrap();
    assert!(not_before >= api_share["created_at"].as_i64().unwrap());

    assert_eq!(gw.get(&api_link, &[]).await.status, 410);
    assert_eq!(gw.get(&external_link, &[]).await.status, 410);
    assert_eq!(
        gw.get("/cases/42", &[&format!("Cookie: {cookie}")])
            .await
            .status,
        410
    );
    for share in [&api_share, &second_share] {
        assert_eq!(
            show(&gw, share["id"].as_str().unwrap()).await["status"],
            "revoked"
        );
    }
    let other = link_path(other_case["url"].as_str().unwrap());
    assert_eq!(
        gw.get(&other, &[]).await.status,
        303,
        "another case is untouched"
    );

    // A share created after the revoke (in a later second) works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = create_ok(&gw, json!({"case": "42", "scope": "view"})).await;
    assert_eq!(fresh["status"], "pending");
    assert_eq!(
        gw.get(&link_path(fresh["url"].as_str().unwrap()), &[])
            .await
            .status,
        303
    );

    let again = Call::new("POST", "/v1/cases/42/revoke").send(&gw).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json["revoked_shares"], 1,
        "only the fresh share was still live"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_share_created_in_the_second_its_case_was_revoked_opens_while_older_links_stay_withdrawn()
{
    let gw = start().await;
    let older = create_ok(&gw, json!({"case": "50", "scope": "view"})).await;
    // "Withdraw everything, send a fresh link", both within one second.
    common::at_the_start_of_a_second().await;
    let revoked = Call::new("POST", "/v1/cases/50/revoke").send(&gw).await;
    assert_eq!(revoked.status(), 200, "{}", revoked.raw.text());
    let not_before = revoked.json["not_before"].as_i64().unwrap();
    let fresh = create_ok(&gw, json!({"case": "50", "scope": "view"})).await;

    assert_eq!(fresh["status"], "pending", "{fresh}");
    let created_at = fresh["created_at"].as_i64().unwrap();
    assert!(created_at > not_before, "issued after the cut-off: {fresh}");
    assert_eq!(fresh["expires_at"].as_i64(), Some(created_at + 86_400));
    let remaining = fresh["remaining_seconds"].as_i64().unwrap();
    assert!(remaining > 86_000, "{fresh}");
    let fresh_link = link_path(fresh["url"].as_str().unwrap());
    assert_eq!(gw.get(&fresh_link, &[]).await.status, 303);
    let older_link = link_path(older["url"].as_str().unwrap());
    assert_eq!(gw.get(&older_link, &[]).await.status, 410);

    // Revoking the case again still withdraws the fresh link: it was issued before this revoke.
    let again = Call::new("POST", "/v1/cases/50/revoke").send(&gw).await;
    assert_eq!(again.json["revoked_shares"], 1, "{}", again.raw.text());
    assert_eq!(gw.get(&fresh_link, &[]).await.status, 410);
    gw.stop().await;
}

#[tokio::test]
async fn a_case_revoked_ahead_of_the_gateways_clock_gets_no_new_share_until_the_clock_passes_it() {
    let gw = start().await;
    // As a replica whose clock runs ten seconds ahead would have revoked it.
    let ahead = casegate::clock::unix_now() + 10;
    gw.store().revoke_case("50", ahead).await.unwrap();
    let refused = create(&gw, json!({"case": "50", "scope": "view"})).await;
    refused.assert_error(503, "case_revoked_ahead");
    let retry_after: i64 = refused
        .raw
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((10..=12).contains(&retry_after), "{retry_after}");
    let listed = Call::new("GET", "/v1/shares?case=50").send(&gw).await;
    assert_eq!(listed.json["shares"], json!([]), "nothing was recorded");
    gw.stop().await;
}

#[tokio::test]
async fn revocations_answered_are_durable_across_a_restart() {
    let gw = start().await;
    let by_id = create_ok(&gw, json!({"case": "42", "scope": "view"})).await;
    let by_case = create_ok(&gw, json!({"case": "43", "scope": "view"})).await;
    let kept = create_ok(&gw, json!({"case": "44", "scope": "view"})).await;
    let id = by_id["id"].as_str().unwrap();
    assert_eq!(
        Call::new("DELETE", &format!("/v1/shares/{id}"))
            .send(&gw)
            .await
            .status(),
        200
    );
    assert_eq!(
        Call::new("POST", "/v1/cases/43/revoke")
            .send(&gw)
            .await
            .status(),
        200
    );

    let (upstream, state_dir) = gw.stop_keeping_state().await;
    let text = config_text(&upstream.url(), "", &admin_section());
    let gw = TestGateway::start_in(upstream, &text, state_dir).await;
    assert_eq!(show(&gw, id).await["status"], "revoked");
    assert_eq!(
        show(&gw, by_case["id"].as_str().unwrap()).await["status"],
        "revoked"
    );
    assert_eq!(
        show(&gw, kept["id"].as_str().unwrap()).await["status"],
        "pending"
    );
    for (share, status) in [(&by_id, 410), (&by_case, 410), (&kept, 303)] {
        let opened = gw
            .get(&link_path(share["url"].as_str().unwrap()), &[])
            .await;
        assert_eq!(opened.status, status, "{share}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_client_shares_only_the_scopes_it_is_configured_for() {
    let gw = start().await;
    let body = json!({"case": "42", "scope": "guest"});
    let refused = Call::new("POST", "/v1/shares")
        .token(Some(VIEWER_TOKEN))
        .json(&body)
        .send(&gw)
        .await;
    refused.assert_error(403, "scope_not_permitted");
    let allowed = Call::new("POST", "/v1/shares")
        .token(Some(VIEWER_TOKEN))
        .json(&json!({"case": "42", "scope": "view"}))
        .send(&gw)
        .await;
    assert_eq!(allowed.status(), 201);
    assert_eq!(allowed.json["client"], "viewer-app");
    assert_eq!(
        create(&gw, body).await.status(),
        201,
        "case-app may share guest"
    );
    gw.stop().await;
}

#[tokio::test]
async fn without_a_valid_bearer_token_nothing_is_answered_but_401() {
    let gw = start().await;
    let wrong = format!("{}x", &APP_TOKEN[..APP_TOKEN.len() - 1]);
    let cases: &[(&str, Option<&str>, &[&str])] = &[
        ("no header", None, &[]),
        ("a wrong token", Some(&wrong), &[]),
        (
            "a basic credential",
            None,
            &["Authorization: Basic Y2FzZTphcHA="],
        ),
        ("an empty bearer", None, &["Authorization: Bearer "]),
    ];
    for (name, token, headers) in cases {
        for (method, target) in [
            ("GET", "/v1/shares"),
            ("POST", "/v1/cases/42/revoke"),
            ("GET", "/nowhere"),
        ] {
            let mut call = Call::new(method, target).token(*token);
            for line in *headers {
                call = call.header(line);
            }
            let answer = call.send(&gw).await;
            answer.assert_error(401, "unauthorized");
            assert_eq!(
                answer.raw.header("www-authenticate"),
                Some("Bearer"),
                "{name}"
            );
            assert!(
                !answer.raw.text().contains(&wrong[..20]),
                "{name}: token echoed"
            );
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn malformed_creates_are_refused_with_stable_codes() {
    let gw = start().await;
    let long_note = "n".repeat(501);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "an unknown field",
            json!({"case": "42", "scope": "view", "exp": 1}),
            400,
            "unknown_field",
        ),
        ("no case", json!({"scope": "view"}), 400, "missing_field"),
        ("no scope", json!({"case": "42"}), 400, "missing_field"),
        (
            "a number for a case",
            json!({"case": 42, "scope": "view"}),
            400,
            "bad_json",
        ),
        (
            "a null email",
            json!({"case": "42", "scope": "view", "email": null}),
            400,
            "bad_json",
        ),
        ("an array", json!([{"case": "42"}]), 400, "bad_json"),
        (
            "an unconfigured scope",
            json!({"case": "42", "scope": "admin"}),
            422,
            "unknown_scope",
        ),
        (
            "a case with a slash",
            json!({"case": "4/2", "scope": "view"}),
            422,
            "invalid_case",
        ),
        (
            "a ttl over max_ttl",
            json!({"case": "42", "scope": "view", "ttl": "31d"}),
            422,
            "ttl_too_long",
        ),
        (
            "a zero ttl",
            json!({"case": "42", "scope": "view", "ttl": 0}),
            422,
            "invalid_ttl",
        ),
        (
            "a ttl in words",
            json!({"case": "42", "scope": "view", "ttl": "tomorrow"}),
            422,
            "invalid_ttl",
        ),
        (
            "a bad email",
            json!({"case": "42", "scope": "view", "email": "not an address"}),
            422,
            "invalid_email",
        ),
        (
            "a bad lang",
            json!({"case": "42", "scope": "view", "lang": "sv_SE"}),
            422,
            "invalid_lang",
        ),
        (
            "a long note",
            json!({"case": "42", "scope": "view", "note": long_note}),
            422,
            "field_too_long",
        ),
    ];
    for (name, body, status, code) in cases {
        let answer = create(&gw, body).await;
        assert_eq!(
            (answer.status(), answer.code()),
            (status, code),
            "{name}: {}",
            answer.raw.text()
        );
    }
    let unknown = create(
        &gw,
        json!({"case": "42", "scope": "view", "secret_flag": true}),
    )
    .await;
    assert!(
        unknown.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secret_flag")
    );
    let syntax = Call::new("POST", "/v1/shares")
        .header("Content-Type: application/json")
        .raw_body(b"{\"case\": \"42\",")
        .send(&gw)
        .await;
    syntax.assert_error(400, "bad_json");
    let duplicate = Call::new("POST", "/v1/shares")
        .header("Content-Type: application/json")
        .raw_body(br#"{"case":"42","scope":"view","scope":"guest"}"#)
        .send(&gw)
        .await;
    duplicate.assert_error(400, "bad_json");
    let not_json = Call::new("POST", "/v1/shares")
        .header("Content-Type: application/x-www-form-urlencoded")
        .raw_body(b"case=42&scope=view")
        .send(&gw)
        .await;
    not_json.assert_error(415, "unsupported_media_type");
    let listed = Call::new("GET", "/v1/shares").send(&gw).await;
    assert_eq!(listed.json["shares"], json!([]), "nothing was created");
    gw.stop().await;
}

#[tokio::test]
async fn oversize_bodies_are_refused_declared_or_streamed() {
    let gw = start().await;
    let note = "n".repeat(MAX_BODY);
    let declared = create(&gw, json!({"case": "42", "scope": "view", "note": note})).await;
    declared.assert_error(413, "body_too_large");

    // Chunked: no length up front, so the limit fires while streaming.
    let mut request = format!(
        "POST /v1/shares HTTP/1.1\r\nHost: admin.test\r\nConnection: close\r\n\
         Authorization: Bearer {APP_TOKEN}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..4 {
        request.extend_from_slice(format!("{:x}\r\n{}\r\n", 400, " ".repeat(400)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let streamed = Answer::from(
        send_raw(admin_addr(&gw), &request)
            .await
            .expect("an answer"),
    );
    streamed.assert_error(413, "body_too_large");
    gw.stop().await;
}

#[tokio::test]
async fn paths_methods_queries_and_ids_are_checked() {
    let gw = start().await;
    let long_id = "a".repeat(129);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("GET", "/".into(), 404, "not_found"),
        ("GET", "/v1/share".into(), 404, "not_found"),
        ("GET", "/v1/shares/".into(), 404, "not_found"),
        ("GET", "/v1/cases/42".into(), 404, "not_found"),
        ("PUT", "/v1/shares".into(), 405, "method_not_allowed"),
        (
            "POST",
            "/v1/shares/AAAAAAAAAAAAAAAAAAAA".into(),
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/v1/cases/42/revoke".into(),
            405,
            "method_not_allowed",
        ),
        ("GET", "/v1/shares/short".into(), 400, "invalid_share_id"),
        (
            "DELETE",
            format!("/v1/shares/{long_id}"),
            400,
            "invalid_share_id",
        ),
        ("GET", "/v1/shares?limit=5".into(), 400, "invalid_query"),
        ("GET", "/v1/shares?status=open".into(), 400, "invalid_query"),
        (
            "GET",
            "/v1/shares?case=42&case=43".into(),
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/v1/shares/AAAAAAAAAAAAAAAAAAAA?x=1".into(),
            400,
            "invalid_query",
        ),
        ("GET", "/v1/shares?case=..".into(), 422, "invalid_case"),
        ("POST", "/v1/cases/4.2/revoke".into(), 422, "invalid_case"),
        (
            "GET",
            "/v1/shares/AAAAAAAAAAAAAAAAAAAA".into(),
            404,
            "share_not_found",
        ),
    ];
    for (method, target, status, code) in cases {
        let answer = Call::new(method, &target).send(&gw).await;
        assert_eq!(
            (answer.status(), answer.code()),
            (status, code),
            "{method} {target}: {}",
            answer.raw.text()
        );
    }
    let wrong_method = Call::new("PATCH", "/v1/shares/AAAAAAAAAAAAAAAAAAAA")
        .send(&gw)
        .await;
    assert_eq!(wrong_method.raw.header("allow"), Some("GET, DELETE"));
    let wrong_method = Call::new("GET", "/v1/cases/42/revoke").send(&gw).await;
    assert_eq!(wrong_method.raw.header("allow"), Some("POST"));
    gw.stop().await;
}

#[tokio::test]
async fn with_sharing_turned_off_no_share_is_created_but_revokes_still_work() {
    let upstream = TestUpstream::start().await;
    let text = config_text(&upstream.url(), "", &admin_section())
        .replace("prefix = \"/s/\"", "prefix = \"/s/\"\nenabled = false");
    let gw = TestGateway::start_from_text(upstream, &text).await;
    let refused = create(&gw, json!({"case": "42", "scope": "view"})).await;
    refused.assert_error(403, "sharing_disabled");
    let revoke = Call::new("POST", "/v1/cases/42/revoke").send(&gw).await;
    assert_eq!(revoke.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn one_connection_serves_several_requests() {
    let gw = start().await;
    let mut stream = TcpStream::connect(admin_addr(&gw)).await.unwrap();
    let request = format!(
        "GET /v1/shares HTTP/1.1\r\nHost: admin.test\r\nAuthorization: Bearer {APP_TOKEN}\r\n\r\n"
    );
    for round in 0..3 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        // Read until the whole (small, Content-Length framed) answer is in.
        while !answer_complete(&received) {
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
                .await
                .expect("an answer in time")
                .unwrap();
            assert!(read > 0, "round {round}: connection closed");
            received.extend_from_slice(&buffer[..read]);
        }
        let response = parse_response(&received).expect("a response");
        assert_eq!(response.status, 200, "round {round}");
    }
    gw.stop().await;
}

fn answer_complete(bytes: &[u8]) -> bool {
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    bytes.len() >= head_end + 4 + length
}
