//! Two gateway replicas started as in production with `[state] backend = "redis"`, sharing
//! their verification codes and limits through one real redis-server, over real sockets: a code mailed by replica A is typed on
//! replica B, a limit counted on A holds on B, and while Redis is gone both refuse to send or
//! check codes (503 `temporarily_unavailable`, fail closed), then recover once it is back.

mod common;

use casegate::RunningGateway;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::forms::{code_in, cookie_of, form_token};
use common::raw_client::RawResponse;
use common::redis_server::RedisServer;
use common::smtp::TestSmtp;
use common::upstream::TestUpstream;

const MAIL_WAIT: Duration = Duration::from_secs(10);

/// One replica: the gateway as `casegate serve` starts it, with `[state] backend = "redis"`, so
/// its revocations and its codes, limits and cooldowns all live in the one Redis.
struct Replica {
    addr: SocketAddr,
    _running: RunningGateway,
}

impl Replica {
    async fn start(config: &casegate::config::Config) -> Replica {
        let running = casegate::start(config).await.expect("start a replica");
        Replica {
            addr: running.local_addr,
            _running: running,
        }
    }

    async fn get(&self, target: &str, headers: &[&str]) -> RawResponse {
        common::request(self.addr, "GET", target, headers, b"").await
    }

    async fn post_form(&self, target: &str, cookie: &str, body: &str) -> RawResponse {
        let headers = [
            cookie,
            "Content-Type: application/x-www-form-urlencoded",
            "Accept: text/html",
        ];
        common::request(self.addr, "POST", target, &headers, body.as_bytes()).await
    }

    /// The form token the landing page gives a guest holding `cookie`.
    async fn csrf(&self, cookie: &str) -> String {
        let page = self.get("/s/verify", &[cookie, "Accept: text/html"]).await;
        form_token(&page.text()).unwrap_or_else(|| panic!("no form token: {}", page.text()))
    }

    async fn ask_for_code(&self, cookie: &str) -> RawResponse {
        let body = format!("csrf={}", self.csrf(cookie).await);
        self.post_form("/s/verify/send", cookie, &body).await
    }

    async fn enter(&self, cookie: &str, code: &str) -> RawResponse {
        let body = format!("csrf={}&code={code}", self.csrf(cookie).await);
        self.post_form("/s/verify/code", cookie, &body).await
    }
}

async fn config(smtp: &TestSmtp, redis: &RedisServer) -> casegate::config::Config {
    let upstream = TestUpstream::start().await;
    let extra = format!(
        r#"
[scopes.checked]
allow = ["GET /cases/{{case}}"]
verify_email = true

[mail]
smtp = "{}"
from = "Case sharing <noreply@clinic.example>"

[log]
access = "off"

[state]
backend = "redis"
url = "{}"
max_staleness = "2s"
"#,
        smtp.url(),
        redis.url()
    );
    // The upstream is never reached: a guest is verified, not forwarded, in these tests.
    let text = common::config_text(&upstream.url(), "", &extra);
    casegate::config::parse(Path::new("test.toml"), &text, &|_| None)
        .unwrap_or_else(|errors| panic!("{errors}"))
}

/// Opens a fresh `checked` link to `email` on `replica`: the guest cookie header it sets.
async fn guest(config: &casegate::config::Config, replica: &Replica, email: &str) -> String {
    let link = common::checked_link(&casegate::gateway::LinkMinter::new(config), email);
    let opened = replica.get(&link, &[]).await;
    assert_eq!(opened.status, 303, "{}", opened.text());
    format!("Cookie: {}", cookie_of(&opened).expect("guest cookie"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_mailed_by_one_replica_is_verified_on_the_other_and_limits_hold_on_both() {
    let redis = RedisServer::start();
    let smtp = TestSmtp::start().await;
    let config = config(&smtp, &redis).await;
    let a = Replica::start(&config).await;
    let b = Replica::start(&config).await;

    let email = "jane@clinic.example";
    let cookie = guest(&config, &a, email).await;
    let sent = a.ask_for_code(&cookie).await;
    assert_eq!(sent.status, 303, "{}", sent.text());
    let code = code_in(&smtp.wait_for_mail(email, MAIL_WAIT).await.body).expect("a code");

    // The resend cooldown A started holds on B: no second mail.
    let again = b.ask_for_code(&cookie).await;
    assert_eq!(again.status, 429, "{}", again.text());
    smtp.assert_no_mail(email, Duration::from_millis(300)).await;

    // B's landing page knows the code A sent; a wrong guess on B counts for A too.
    let landing = b.get("/s/verify", &[&cookie, "Accept: text/html"]).await;
    assert!(
        landing.text().contains("action=\"/s/verify/code\""),
        "{}",
        landing.text()
    );
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let refused = b.enter(&cookie, &wrong).await;
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains('3'), "attempts left shown");
    let refused = a.enter(&cookie, &wrong).await;
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains('2'), "the tries B used count on A");

    // The right code, typed on B, verifies: the guest reaches the case with the new cookie.
    let verified = b.enter(&cookie, &code).await;
    assert_eq!(verified.status, 303, "{}", verified.text());
    assert_eq!(
        verified.header("location"),
        Some("http://share.test/cases/42")
    );
    // ...and the code is used up on A as well.
    let reused = a.enter(&cookie, &code).await;
    assert_eq!(reused.status, 303);
    assert_eq!(
        reused.header("location"),
        Some("http://share.test/s/verify"),
        "no code pending: back to the landing page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_gone_no_code_is_sent_or_checked_and_both_recover_after() {
    let mut redis = RedisServer::start();
    let smtp = TestSmtp::start().await;
    let config = config(&smtp, &redis).await;
    let a = Replica::start(&config).await;
    let b = Replica::start(&config).await;
    let email = "joe@clinic.example";
    let cookie = guest(&config, &a, email).await;
    assert_eq!(a.ask_for_code(&cookie).await.status, 303);
    let code = code_in(&smtp.wait_for_mail(email, MAIL_WAIT).await.body).expect("a code");
    // Form tokens are bound to the session, not to the store: a browser that loaded its page
    // before Redis went away still holds valid ones.
    let other_email = "ann@clinic.example";
    let other = guest(&config, &b, other_email).await;
    let other_csrf = b.csrf(&other).await;
    let csrf = b.csrf(&cookie).await;

    redis.kill();
    let landing = b.get("/s/verify", &[&other, "Accept: text/html"]).await;
    assert_eq!(landing.status, 503, "{}", landing.text());
    let send = b
        .post_form("/s/verify/send", &other, &format!("csrf={other_csrf}"))
        .await;
    assert_eq!(send.status, 503, "{}", send.text());
    let json = b
        .get("/s/verify", &[&other, "Accept: application/json"])
        .await;
    assert!(
        json.text().contains("\"temporarily_unavailable\""),
        "{}",
        json.text()
    );
    let check = b
        .post_form(
            "/s/verify/code",
            &cookie,
            &format!("csrf={csrf}&code={code}"),
        )
        .await;
    assert_eq!(check.status, 503, "no code is accepted while Redis is gone");
    smtp.assert_no_mail(other_email, Duration::from_millis(300))
        .await;

    // Redis back (it kept the code: append-only, fsynced): the same code still works, on A.
    redis.restart();
    // Each replica's connection notices on its next call that Redis went away and came back; that
    // call fails (closed), the reconnect follows on its own.
    let started = std::time::Instant::now();
    for replica in [&a, &b] {
        while replica.get("/s/verify", &[&cookie]).await.status == 503 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no reconnect within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!("both answering {:?} after the restart", started.elapsed());
    let verified = a.enter(&cookie, &code).await;
    assert_eq!(verified.status, 303, "{}", verified.text());
    assert_eq!(
        verified.header("location"),
        Some("http://share.test/cases/42")
    );
    // And B sends codes again.
    assert_eq!(b.ask_for_code(&other).await.status, 303);
    smtp.wait_for_mail(other_email, MAIL_WAIT).await;
}
