//! `casegate share` as an operator runs it: the real binary against the real gateway's admin API,
//! every subcommand as text and as JSON, and the errors an operator will meet (bad token, a scope
//! the client may not share, an admin API that is not there, no token at all).

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use casegate::clock::{format_utc, unix_now};
use casegate::gateway::ShareRequest;

use common::TestGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Client `case-app` may share `view` and `guest`; `viewer` only `view`.
const CASE_APP_TOKEN: &str = "case-app-admin-token-0123456789abcdefghij";
const VIEWER_TOKEN: &str = "viewer-admin-token-0123456789abcdefghijkl";

const ADMIN_SECTION: &str = r#"
[admin]
listen = "127.0.0.1:0"

[[admin.clients]]
name = "case-app"
token = { value = "case-app-admin-token-0123456789abcdefghij" }
scopes = ["view", "guest"]

[[admin.clients]]
name = "viewer"
token = { value = "viewer-admin-token-0123456789abcdefghijkl" }
scopes = ["view"]
"#;

async fn start() -> (TestGateway, SocketAddr) {
    let gateway = TestGateway::start_with("", ADMIN_SECTION).await;
    let admin = gateway.admin_addr().expect("the admin API listens");
    (gateway, admin)
}

/// Runs `casegate share ARGS` with the admin URL and token in the environment, off the runtime's
/// worker threads so the gateway in this process keeps answering.
async fn share(admin: SocketAddr, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_casegate"));
    command
        .arg("share")
        .args(args)
        .env("CASEGATE_ADMIN_URL", format!("http://{admin}"))
        .env("RUST_LOG", "warn");
    match token {
        Some(token) => command.env("CASEGATE_ADMIN_TOKEN", token),
        None => command.env_remove("CASEGATE_ADMIN_TOKEN"),
    };
    tokio::task::spawn_blocking(move || command.output().expect("run casegate share"))
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

/// Exit status `code`, `needle` on stderr, nothing on stdout.
fn assert_fails(output: &Output, code: i32, needle: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        stderr(output)
    );
    assert!(
        stderr(output).contains(needle),
        "{needle:?} not in: {}",
        stderr(output)
    );
    assert!(stdout(output).is_empty(), "stdout: {}", stdout(output));
}

fn json(output: &Output) -> serde_json::Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", stdout(output)))
}

/// Every one of `lines` is a whole line of `text` (`show`'s `key: value` lines).
#[track_caller]
fn assert_has_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "{line:?} missing in:\n{text}"
        );
    }
}

/// Creates a share with `--json` and returns the API's answer.
async fn create(admin: SocketAddr, case: &str, scope: &str) -> serde_json::Value {
    json(
        &share(
            admin,
            Some(CASE_APP_TOKEN),
            &["create", "--case", case, "--scope", scope, "--json"],
        )
        .await,
    )
}

/// The path part of a link URL (`/s/<token>`), to open it through the gateway.
fn link_path(url: &str) -> &str {
    url.strip_prefix("http://share.test")
        .unwrap_or_else(|| panic!("link on another origin: {url}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_prints_a_working_link_first_then_a_summary() {
    let (gateway, admin) = start().await;
    let output = share(
        admin,
        Some(CASE_APP_TOKEN),
        &[
            "create",
            "--case",
            "42",
            "--scope",
            "view",
            "--ttl",
            "2h",
            "--note",
            "second opinion",
            "--created-by",
            "dr.lind",
        ],
    )
    .await;
    assert_success(&output);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let url = lines[0];
    assert!(url.starts_with("http://share.test/s/"), "{text}");
    assert!(lines[1].starts_with("share "), "{text}");
    assert_eq!(lines[2], "case 42, scope view");
    assert!(
        lines[3].starts_with("expires in 2h (") || lines[3].starts_with("expires in 1h 59m ("),
        "{text}"
    );
    let opened = gateway.get(link_path(url), &[]).await;
    assert_eq!(opened.status, 303, "the printed link opens the case");

    let output = share(
        admin,
        Some(CASE_APP_TOKEN),
        &["create", "--case", "42", "--scope", "guest", "--json"],
    )
    .await;
    let created = json(&output);
    assert_eq!(created["case"], "42");
    assert_eq!(created["scope"], "guest");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["client"], "case-app");
    let token = created["token"].as_str().unwrap();
    assert!(created["url"].as_str().unwrap().ends_with(token));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_a_table_and_json_with_filters() {
    let (gateway, admin) = start().await;
    let opened = create(admin, "77", "view").await;
    let untouched = create(admin, "77", "view").await;
    let other_case = create(admin, "78", "view").await;
    let response = gateway
        .get(link_path(opened["url"].as_str().unwrap()), &[])
        .await;
    assert_eq!(response.status, 303);

    let output = share(admin, Some(CASE_APP_TOKEN), &["list", "--case", "77"]).await;
    assert_success(&output);
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in [
        "ID",
        "CASE",
        "SCOPE",
        "STATUS",
        "LEFT",
        "USES",
        "LAST USED",
        "CREATED BY",
        "NOTE",
    ] {
        assert!(lines[0].contains(column), "{column}: {table}");
    }
    let row = |share: &serde_json::Value| {
        let id = share["id"].as_str().unwrap();
        *lines
            .iter()
            .find(|line| line.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}: {table}"))
    };
    let opened_row = row(&opened);
    assert!(opened_row.contains(" active "), "{opened_row}");
    assert!(
        opened_row.contains(" 1 ")
            && (opened_row.contains("just now") || opened_row.contains("s ago")),
        "{opened_row}"
    );
    let untouched_row = row(&untouched);
    assert!(untouched_row.contains(" pending "), "{untouched_row}");
    assert!(untouched_row.contains(" 0 ") && untouched_row.contains("never"));
    assert!(untouched_row.contains("23h 59m") || untouched_row.contains(" 1d "));
    assert!(!table.contains(other_case["id"].as_str().unwrap()));

    let output = share(
        admin,
        Some(CASE_APP_TOKEN),
        &["list", "--case", "77", "--status", "active", "--json"],
    )
    .await;
    let listed = json(&output);
    let shares = listed["shares"].as_array().unwrap();
    assert_eq!(shares.len(), 1, "{listed}");
    assert_eq!(shares[0]["id"], opened["id"]);
    assert_eq!(shares[0]["uses"], 1);

    let output = share(admin, Some(CASE_APP_TOKEN), &["list", "--case", "nobody"]).await;
    assert_success(&output);
    assert_eq!(stdout(&output), "no shares\n");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_prints_every_field_as_key_value_lines() {
    let (gateway, admin) = start().await;
    let created = json(
        &share(
            admin,
            Some(CASE_APP_TOKEN),
            &[
                "create",
                "--case",
                "42",
                "--scope",
                "view",
                "--email",
                "anna@example.org",
                "--lang",
                "sv-SE",
                "--note",
                "referral",
                "--json",
            ],
        )
        .await,
    );
    let id = created["id"].as_str().unwrap();
    let output = share(admin, Some(CASE_APP_TOKEN), &["show", id]).await;
    assert_success(&output);
    let text = stdout(&output);
    assert_has_lines(
        &text,
        &[
            &format!("id:            {id}"),
            "case:          42",
            "scope:         view",
            "status:        pending",
            "uses:          0",
            "first_used_at: never",
            "email:         anna@example.org",
            "lang:          sv-SE",
            "note:          referral",
            "client:        case-app",
            "origin:        api",
        ],
    );
    assert!(text.contains(" UTC ("), "{text}");

    let shown = json(&share(admin, Some(CASE_APP_TOKEN), &["show", id, "--json"]).await);
    assert_eq!(shown["id"], id);
    assert_eq!(shown["email"], "anna@example.org");
    assert!(shown.get("token").is_none(), "only create shows the token");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_minted_elsewhere_shows_every_claim_it_carried_once_used() {
    let (gateway, admin) = start().await;
    // What `casegate mint --case 42 --scope view --ttl 2h --email ... --lang sv` signs.
    let minted = gateway
        .snapshot
        .mint_link(
            &ShareRequest {
                case: "42",
                scope: "view",
                ttl: Some(Duration::from_secs(7200)),
                email: Some("anna@example.org"),
                lang: Some("sv"),
            },
            unix_now(),
        )
        .expect("mint");
    let cookie = gateway.exchange(&format!("/s/{}", minted.token)).await;
    let page = gateway
        .get("/cases/42", &[&format!("Cookie: {cookie}")])
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let received = gateway.upstream.take();
    assert_eq!(received[0].header("x-casegate-lang"), Some("sv"));

    let output = share(admin, Some(CASE_APP_TOKEN), &["show", &minted.share_id]).await;
    assert_success(&output);
    let text = stdout(&output);
    assert_has_lines(
        &text,
        &[
            "case:          42",
            "scope:         view",
            "status:        active",
            "uses:          1",
            "email:         anna@example.org",
            "lang:          sv",
            "origin:        link",
        ],
    );
    assert!(
        text.contains(&format!(
            "expires_at:    {} (in ",
            format_utc(minted.expires_at)
        )),
        "{text}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_withdraws_one_link_and_revoke_case_every_link_of_the_case() {
    let (gateway, admin) = start().await;
    let first = create(admin, "88", "view").await;
    let second = create(admin, "88", "view").await;
    let third = create(admin, "89", "view").await;
    let id = first["id"].as_str().unwrap();

    let output = share(admin, Some(CASE_APP_TOKEN), &["revoke", id]).await;
    assert_success(&output);
    assert_eq!(
        stdout(&output),
        format!("revoked share {id} (case 88, scope view)\n")
    );
    let link = |share: &serde_json::Value| link_path(share["url"].as_str().unwrap()).to_owned();
    assert_eq!(gateway.get(&link(&first), &[]).await.status, 410);
    assert_eq!(gateway.get(&link(&second), &[]).await.status, 303);
    let again = json(&share(admin, Some(CASE_APP_TOKEN), &["revoke", id, "--json"]).await);
    assert_eq!(again["status"], "revoked", "revoking twice is fine");

    // An id the gateway never saw (a link minted elsewhere) can be revoked ahead of its first use.
    let external = "ExternalShareId-0123456789";
    let output = share(admin, Some(CASE_APP_TOKEN), &["revoke", external]).await;
    assert_success(&output);
    assert!(
        stdout(&output).contains("never seen"),
        "{}",
        stdout(&output)
    );

    let output = share(admin, Some(CASE_APP_TOKEN), &["revoke-case", "88"]).await;
    assert_success(&output);
    let text = stdout(&output);
    assert!(
        text.starts_with("revoked case 88: every link issued up to ") && text.contains(" UTC "),
        "{text}"
    );
    assert!(text.contains("(1 known share revoked)"), "{text}");
    assert_eq!(gateway.get(&link(&second), &[]).await.status, 410);
    assert_eq!(
        gateway.get(&link(&third), &[]).await.status,
        303,
        "another case"
    );

    let answer = json(
        &share(
            admin,
            Some(CASE_APP_TOKEN),
            &["revoke-case", "89", "--json"],
        )
        .await,
    );
    assert_eq!(answer["case"], "89");
    assert_eq!(answer["revoked_shares"], 1);
    assert!(answer["not_before"].as_i64().unwrap() > 0);
    let listed = json(
        &share(
            admin,
            Some(CASE_APP_TOKEN),
            &["list", "--status", "revoked", "--json"],
        )
        .await,
    );
    assert_eq!(listed["shares"].as_array().unwrap().len(), 4, "{listed}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_created_right_after_revoke_case_opens_and_says_when_it_expires() {
    let (gateway, admin) = start().await;
    let older = create(admin, "50", "view").await;
    common::at_the_start_of_a_second().await;
    assert_success(&share(admin, Some(CASE_APP_TOKEN), &["revoke-case", "50"]).await);
    let output = share(
        admin,
        Some(CASE_APP_TOKEN),
        &["create", "--case", "50", "--scope", "view"],
    )
    .await;
    assert_success(&output);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[3].starts_with("expires in 1d (") || lines[3].starts_with("expires in 23h 59m ("),
        "{text}"
    );
    assert_eq!(gateway.get(link_path(lines[0]), &[]).await.status, 303);
    let older_link = link_path(older["url"].as_str().unwrap());
    assert_eq!(gateway.get(older_link, &[]).await.status, 410);
    gateway.stop().await;
}

/// An admin API stand-in that answers every request with 201 and `share` as its JSON body: what
/// a create would get from a gateway that recorded a share its link does not open.
async fn admin_answering_created(share: serde_json::Value) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = share.to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            read_request(&mut stream).await;
            let answer = format!(
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    addr
}

/// Reads one request with a `Content-Length` body (all the CLI sends), so the answer does not
/// race a request still being written.
async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(read) = stream.read(&mut chunk).await else {
            return;
        };
        if read == 0 {
            return;
        }
        bytes.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&bytes);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_share_that_does_not_open_is_an_error_not_a_link() {
    let admin = admin_answering_created(serde_json::json!({
        "url": "http://share.test/s/dead-token",
        "token": "dead-token",
        "id": "DeadOnArrival-0123456789",
        "case": "50",
        "scope": "view",
        "status": "revoked",
        "created_at": 1_700_000_000,
        "expires_at": 1_700_086_400,
        "remaining_seconds": 0,
        "uses": 0,
        "revoked_at": 1_700_000_000,
        "origin": "api",
    }))
    .await;
    for json_flag in [&[][..], &["--json"][..]] {
        let mut args = vec!["create", "--case", "50", "--scope", "view"];
        args.extend_from_slice(json_flag);
        let output = share(admin, Some(CASE_APP_TOKEN), &args).await;
        assert_fails(&output, 1, "DeadOnArrival-0123456789");
        assert!(stderr(&output).contains("revoked"), "{}", stderr(&output));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refusals_print_message_and_code_and_exit_1() {
    let (gateway, admin) = start().await;
    let wrong_token = "wrong-token-that-must-never-be-printed-0123";
    for (token, args, code) in [
        (wrong_token, &["list"][..], "(unauthorized)"),
        (
            VIEWER_TOKEN,
            &["create", "--case", "42", "--scope", "guest"][..],
            "(scope_not_permitted)",
        ),
        (
            CASE_APP_TOKEN,
            &["create", "--case", "42", "--scope", "view", "--ttl", "365d"][..],
            "(ttl_too_long)",
        ),
        (
            CASE_APP_TOKEN,
            &["show", "NoSuchShare-0123456789"][..],
            "(share_not_found)",
        ),
        (
            CASE_APP_TOKEN,
            &["show", "../../etc"][..],
            "(invalid_share_id)",
        ),
    ] {
        let output = share(admin, Some(token), args).await;
        assert_fails(&output, 1, code);
        assert!(
            stderr(&output).starts_with("error: "),
            "{}",
            stderr(&output)
        );
        assert!(
            !stderr(&output).contains(token),
            "the token is never printed"
        );
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_admin_api_is_named_with_its_url() {
    // Port 1 (tcpmux): nothing on a test machine listens there, and unlike a port that was free
    // a moment ago, no test running alongside can be given it.
    let port: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let output = share(port, Some(CASE_APP_TOKEN), &["list"]).await;
    assert_fails(&output, 1, &format!("not reachable at http://{port}"));
    assert!(
        stderr(&output).contains("[admin] listen"),
        "{}",
        stderr(&output)
    );

    // --admin wins over CASEGATE_ADMIN_URL.
    let (gateway, admin) = start().await;
    let output = share(
        port,
        Some(CASE_APP_TOKEN),
        &["--admin", &format!("http://{admin}"), "list", "--json"],
    )
    .await;
    assert!(json(&output)["shares"].is_array());
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_or_a_bad_url_is_a_usage_error() {
    let port: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let output = share(port, None, &["list"]).await;
    assert_fails(&output, 2, "CASEGATE_ADMIN_TOKEN is not set");

    let output = share(
        port,
        Some(CASE_APP_TOKEN),
        &["--admin", "https://127.0.0.1:9901", "list"],
    )
    .await;
    assert_fails(&output, 2, "only plain http");
    assert!(!stderr(&output).contains(CASE_APP_TOKEN));
}
