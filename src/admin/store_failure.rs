//! The admin API over a store whose journal writes really fail (`/dev/full`, see
//! `state::write_failure`): every write endpoint answers 503 `store_unavailable`, and afterwards
//! the API shows that nothing changed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use super::AdminApi;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::reload::Snapshot;
use crate::state::write_failure::store_on_full_disk;

const TOKEN: &str = "case-app-admin-token-0123456789abcdefghij";
const SHARE_ID: &str = "Zk3v0V0m1wz2Hqk7qv1N8g";

fn config() -> crate::config::Config {
    let key = crate::share::keys::generate_key().expect("a random key");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://share.test"
[upstream]
url = "http://127.0.0.1:9"
[keys]
active = "k1"
[keys.secrets]
k1 = {{ value = "{key}" }}
[links]
prefix = "/s/"
landing = "/cases/{{case}}"
default_ttl = "24h"
max_ttl = "7d"
[session]
cookie = "casegate"
ttl = "12h"
[scopes.view]
allow = ["GET /cases/{{case}}"]
[admin]
listen = "127.0.0.1:0"
[[admin.clients]]
name = "case-app"
token = {{ value = "{TOKEN}" }}
scopes = ["view"]
"#
    );
    crate::config::parse(Path::new("store_failure.toml"), &text, &|_| None)
        .unwrap_or_else(|errors| panic!("test config is valid: {errors:?}"))
}

struct Answer {
    status: StatusCode,
    json: Value,
}

async fn call(api: &AdminApi, method: Method, target: &str, body: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(target)
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
    let response = api.handle(request, peer).await;
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).expect("a JSON answer");
    Answer { status, json }
}

#[tokio::test]
async fn every_write_answers_503_store_unavailable_and_nothing_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config();
    let store = Arc::new(store_on_full_disk(dir.path()));
    let gateway = Gateway::build(&config, Arc::clone(&store), None, Arc::new(Metrics::new()))
        .expect("gateway builds");
    let admin = config.admin.as_ref().expect("[admin] configured");
    let api = AdminApi::new(
        Arc::new(Snapshot::new(Arc::new(gateway))),
        Arc::clone(&store),
        admin,
        None,
    );

    let writes = [
        (
            Method::POST,
            "/v1/shares".to_owned(),
            r#"{"case":"42","scope":"view"}"#,
        ),
        (Method::DELETE, format!("/v1/shares/{SHARE_ID}"), ""),
        (Method::POST, "/v1/cases/42/revoke".to_owned(), ""),
        // Again, after the writer has given up: still 503, still nothing written.
        (
            Method::POST,
            "/v1/shares".to_owned(),
            r#"{"case":"42","scope":"view"}"#,
        ),
    ];
    for (method, target, body) in writes {
        let answer = call(&api, method.clone(), &target, body).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {target}"
        );
        assert_eq!(
            answer.json["error"]["code"], "store_unavailable",
            "{method} {target}"
        );
        assert!(answer.json.get("token").is_none(), "{method} {target}");
    }

    let listed = call(&api, Method::GET, "/v1/shares", "").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json["shares"], Value::Array(Vec::new()));
    let shown = call(&api, Method::GET, &format!("/v1/shares/{SHARE_ID}"), "").await;
    assert_eq!(shown.status, StatusCode::NOT_FOUND);
    assert_eq!(shown.json["error"]["code"], "share_not_found");
    assert_eq!(store.revocation(SHARE_ID, "42", 0), None);
    assert_eq!(store.revocation("any-share-of-case-42", "42", 0), None);

    // Readiness says the store cannot write, and every refused write was counted as failed.
    let ready = call(&api, Method::GET, "/readyz", "").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.json
    );
    assert_eq!(ready.json["checks"]["state"]["ok"], false, "{}", ready.json);
    let problem = ready.json["checks"]["state"]["problem"]
        .as_str()
        .unwrap_or("");
    assert!(problem.contains("journal write failed"), "{problem}");
    let scrape = api.gateway().metrics().render();
    for (series, count) in [
        ("operation=\"create_share\",result=\"failed\"", 2),
        ("operation=\"revoke_share\",result=\"failed\"", 1),
        ("operation=\"revoke_case\",result=\"failed\"", 1),
        ("operation=\"create_share\",result=\"ok\"", 0),
    ] {
        let line = format!("casegate_state_writes_total{{{series}}} {count}\n");
        assert!(scrape.contains(&line), "{line} in\n{scrape}");
    }
}
