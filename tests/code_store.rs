//! One behavioural suite for every `CodeStore`: each test in `behaviour` runs once against the
//! in-process `MemoryCodeStore` and once against `RedisCodeStore` on a real redis-server (started
//! per test, from PATH), so the two cannot drift apart. Then what only a shared store has to
//! show: two replicas racing on one Redis, keys that expire, and failing closed when Redis is gone.

mod common;

use std::sync::Arc;
use std::time::Duration;

use casegate::verify::{CodeStore, RedisCodeStore};
use common::redis_server::RedisServer;
use redis::aio::ConnectionManager;

/// A Redis-backed store on `server`, as one gateway replica would hold it.
async fn connect(server: &RedisServer) -> ConnectionManager {
    let client = redis::Client::open(server.url()).expect("redis url");
    // Few retries: a test that kills Redis wants the failure, not a long reconnect.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_connection_timeout(Some(Duration::from_millis(500)));
    client
        .get_connection_manager_with_config(config)
        .await
        .expect("connect to the test redis-server")
}

async fn redis_store(server: &RedisServer, prefix: &str) -> RedisCodeStore {
    RedisCodeStore::new(connect(server).await, prefix)
}

/// Runs every named test of `behaviour` against both stores.
macro_rules! for_both_stores {
    ($($test:ident),* $(,)?) => {
        mod in_memory {
            $(
                #[tokio::test]
                async fn $test() {
                    let store = casegate::verify::MemoryCodeStore::new();
                    super::behaviour::$test(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let server = super::common::redis_server::RedisServer::start();
                    let store = super::redis_store(&server, "casegate-test:").await;
                    super::behaviour::$test(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

for_both_stores!(
    sends_wait_for_the_cooldown_and_stop_at_the_hourly_limit,
    one_address_sends_at_most_its_hourly_limit_across_shares,
    a_code_allows_max_attempts_guesses_then_none,
    expired_used_and_missing_codes_are_never_compared,
    dropping_a_code_spares_a_newer_one,
    an_address_that_keeps_guessing_is_stopped_across_shares_and_codes,
    a_right_guess_does_not_count_as_a_failure,
    ipv6_clients_of_one_network_share_their_counters,
    parallel_guesses_get_at_most_max_attempts_comparisons,
    parallel_sends_get_at_most_the_hourly_limit,
    a_second_invitation_within_the_cooldown_is_refused_with_the_time_left,
    a_released_invitation_allows_a_retry_at_once,
    releasing_an_old_invitation_keeps_a_newer_one,
);

/// The rules every store keeps; each takes the store under test.
mod behaviour {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use casegate::verify::limits::Limit;
    use casegate::verify::{
        AttemptRefusal, ClientKey, CodeMac, CodeStatus, CodeStore, InviteReservation, Limited,
        PendingCode, VerifySettings,
    };

    const HOUR: i64 = 3600;
    const NOW: i64 = 1_750_000_000;
    const CLIENT: ClientKey = ClientKey::V4([192, 0, 2, 1]);
    const OTHER_CLIENT: ClientKey = ClientKey::V4([192, 0, 2, 2]);
    const COOLDOWN: Duration = Duration::from_secs(30);

    fn settings() -> VerifySettings {
        VerifySettings::default()
    }

    fn pending(tag: u8, expires_at: i64) -> PendingCode {
        PendingCode {
            mac: CodeMac {
                kid: "k1".into(),
                tag: [tag; 32],
            },
            expires_at,
        }
    }

    pub async fn sends_wait_for_the_cooldown_and_stop_at_the_hourly_limit(
        store: Arc<dyn CodeStore>,
    ) {
        let s = settings();
        let send = |share: &'static str, at: i64| {
            let (store, s) = (Arc::clone(&store), s.clone());
            async move { store.reserve_send(share, CLIENT, at, &s).await.unwrap() }
        };
        assert_eq!(send("A", NOW).await, Ok(()));
        assert_eq!(
            send("A", NOW + 10).await,
            Err(Limited::new(Limit::Cooldown, 20))
        );
        assert_eq!(
            store.next_send_in("A", CLIENT, NOW + 10, &s).await.unwrap(),
            20
        );
        for i in 1..5 {
            assert_eq!(send("A", NOW + 30 * i).await, Ok(()));
        }
        assert_eq!(
            send("A", NOW + 600).await,
            Err(Limited::new(Limit::CodesPerShare, 3000))
        );
        assert_eq!(
            store
                .next_send_in("A", CLIENT, NOW + 600, &s)
                .await
                .unwrap(),
            3000
        );
        // Another share is counted on its own.
        assert_eq!(send("B", NOW + 600).await, Ok(()));
        // An hour after the first send, one more fits.
        assert_eq!(send("A", NOW + HOUR).await, Ok(()));
    }

    pub async fn one_address_sends_at_most_its_hourly_limit_across_shares(
        store: Arc<dyn CodeStore>,
    ) {
        let s = VerifySettings {
            max_sends_per_address_per_hour: 3,
            ..settings()
        };
        for share in ["A", "B", "C"] {
            assert_eq!(
                store.reserve_send(share, CLIENT, NOW, &s).await.unwrap(),
                Ok(())
            );
        }
        assert_eq!(
            store.reserve_send("D", CLIENT, NOW + 5, &s).await.unwrap(),
            Err(Limited::new(Limit::SendsPerAddress, HOUR - 5))
        );
        assert_eq!(
            store.next_send_in("D", CLIENT, NOW + 5, &s).await.unwrap(),
            HOUR - 5
        );
        assert_eq!(
            store
                .reserve_send("D", OTHER_CLIENT, NOW + 5, &s)
                .await
                .unwrap(),
            Ok(())
        );
    }

    pub async fn a_code_allows_max_attempts_guesses_then_none(store: Arc<dyn CodeStore>) {
        let s = settings();
        assert_eq!(
            store.status("A", NOW, &s).await.unwrap(),
            CodeStatus::NoCode
        );
        store
            .put_code("A", pending(1, NOW + 300), NOW)
            .await
            .unwrap();
        assert_eq!(
            store.status("A", NOW, &s).await.unwrap(),
            CodeStatus::Pending { attempts_left: 5 }
        );
        for left in (0..5).rev() {
            let attempt = store
                .begin_attempt("A", CLIENT, NOW, &s)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(attempt.attempts_left, left);
            assert_eq!(attempt.code, pending(1, NOW + 300));
        }
        assert_eq!(
            store
                .begin_attempt("A", CLIENT, NOW, &s)
                .await
                .unwrap()
                .unwrap_err(),
            AttemptRefusal::Exhausted
        );
        assert_eq!(
            store.status("A", NOW, &s).await.unwrap(),
            CodeStatus::Exhausted
        );
        // A new code starts with every try again.
        store
            .put_code("A", pending(2, NOW + 300), NOW)
            .await
            .unwrap();
        assert_eq!(
            store.status("A", NOW, &s).await.unwrap(),
            CodeStatus::Pending { attempts_left: 5 }
        );
    }

    pub async fn expired_used_and_missing_codes_are_never_compared(store: Arc<dyn CodeStore>) {
        let s = settings();
        let attempt = |at: i64| {
            let (store, s) = (Arc::clone(&store), s.clone());
            async move { store.begin_attempt("A", CLIENT, at, &s).await.unwrap() }
        };
        assert_eq!(attempt(NOW).await.unwrap_err(), AttemptRefusal::NoCode);
        store
            .put_code("A", pending(1, NOW + 300), NOW)
            .await
            .unwrap();
        assert_eq!(
            attempt(NOW + 300).await.unwrap_err(),
            AttemptRefusal::Expired
        );
        assert_eq!(
            store.status("A", NOW + 300, &s).await.unwrap(),
            CodeStatus::Expired
        );
        let granted = attempt(NOW).await.unwrap();
        store
            .code_used("A", CLIENT, &granted.code.mac)
            .await
            .unwrap();
        assert_eq!(attempt(NOW).await.unwrap_err(), AttemptRefusal::NoCode);
        assert_eq!(
            store.status("A", NOW, &s).await.unwrap(),
            CodeStatus::NoCode
        );
    }

    pub async fn dropping_a_code_spares_a_newer_one(store: Arc<dyn CodeStore>) {
        let s = settings();
        store
            .put_code("A", pending(1, NOW + 300), NOW)
            .await
            .unwrap();
        store
            .put_code("A", pending(2, NOW + 300), NOW)
            .await
            .unwrap();
        store.drop_code("A", &pending(1, 0).mac).await.unwrap();
        assert!(matches!(
            store.status("A", NOW, &s).await.unwrap(),
            CodeStatus::Pending { .. }
        ));
        store.drop_code("A", &pending(2, 0).mac).await.unwrap();
        assert_eq!(
            store.status("A", NOW, &s).await.unwrap(),
            CodeStatus::NoCode
        );
    }

    pub async fn an_address_that_keeps_guessing_is_stopped_across_shares_and_codes(
        store: Arc<dyn CodeStore>,
    ) {
        let s = VerifySettings {
            max_failures_per_address_per_hour: 7,
            ..settings()
        };
        for share in ["A", "B"] {
            store
                .put_code(share, pending(1, NOW + 300), NOW)
                .await
                .unwrap();
        }
        for _ in 0..5 {
            store
                .begin_attempt("A", CLIENT, NOW, &s)
                .await
                .unwrap()
                .unwrap();
        }
        for _ in 0..2 {
            store
                .begin_attempt("B", CLIENT, NOW, &s)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(
            store
                .begin_attempt("B", CLIENT, NOW + 1, &s)
                .await
                .unwrap()
                .unwrap_err(),
            AttemptRefusal::Limited(Limited::new(Limit::FailuresPerAddress, HOUR - 1))
        );
        // The refused guess used none of share B's tries.
        assert_eq!(
            store.status("B", NOW, &s).await.unwrap(),
            CodeStatus::Pending { attempts_left: 3 }
        );
        assert!(
            store
                .begin_attempt("B", OTHER_CLIENT, NOW, &s)
                .await
                .unwrap()
                .is_ok()
        );
    }

    pub async fn a_right_guess_does_not_count_as_a_failure(store: Arc<dyn CodeStore>) {
        let s = VerifySettings {
            max_failures_per_address_per_hour: 1,
            ..settings()
        };
        for round in 0..3 {
            store
                .put_code("A", pending(round, NOW + 300), NOW)
                .await
                .unwrap();
            let attempt = store
                .begin_attempt("A", CLIENT, NOW, &s)
                .await
                .unwrap()
                .unwrap_or_else(|refusal| panic!("round {round}: {refusal:?}"));
            store
                .code_used("A", CLIENT, &attempt.code.mac)
                .await
                .unwrap();
        }
    }

    pub async fn ipv6_clients_of_one_network_share_their_counters(store: Arc<dyn CodeStore>) {
        let s = VerifySettings {
            max_sends_per_address_per_hour: 1,
            ..settings()
        };
        let one = ClientKey::of("2001:db8:1:2::1".parse().unwrap());
        let same_network = ClientKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let other_network = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(store.reserve_send("A", one, NOW, &s).await.unwrap(), Ok(()));
        assert_eq!(
            store
                .reserve_send("B", same_network, NOW, &s)
                .await
                .unwrap(),
            Err(Limited::new(Limit::SendsPerAddress, HOUR))
        );
        assert_eq!(
            store
                .reserve_send("B", other_network, NOW, &s)
                .await
                .unwrap(),
            Ok(())
        );
    }

    pub async fn parallel_guesses_get_at_most_max_attempts_comparisons(store: Arc<dyn CodeStore>) {
        let s = Arc::new(settings());
        store
            .put_code("A", pending(1, NOW + 300), NOW)
            .await
            .unwrap();
        let granted = count_granted(200, |i| {
            let (store, s) = (Arc::clone(&store), Arc::clone(&s));
            async move {
                let client = ClientKey::V4([10, 0, (i / 256) as u8, (i % 256) as u8]);
                store
                    .begin_attempt("A", client, NOW, &s)
                    .await
                    .unwrap()
                    .is_ok()
            }
        })
        .await;
        assert_eq!(granted, 5);
    }

    pub async fn parallel_sends_get_at_most_the_hourly_limit(store: Arc<dyn CodeStore>) {
        let s = Arc::new(VerifySettings {
            resend_cooldown: Duration::ZERO,
            ..settings()
        });
        let granted = count_granted(100, |i| {
            let (store, s) = (Arc::clone(&store), Arc::clone(&s));
            async move {
                let client = ClientKey::V4([10, 1, (i / 256) as u8, (i % 256) as u8]);
                store
                    .reserve_send("A", client, NOW, &s)
                    .await
                    .unwrap()
                    .is_ok()
            }
        })
        .await;
        assert_eq!(granted, 5, "max_codes_per_hour");
    }

    /// One invitation reservation for `share` at `at`, with the admin API's 30 s cooldown.
    async fn invite(
        store: &Arc<dyn CodeStore>,
        share: &str,
        at: i64,
    ) -> Result<InviteReservation, i64> {
        store.reserve_invite(share, at, COOLDOWN).await.unwrap()
    }

    pub async fn a_second_invitation_within_the_cooldown_is_refused_with_the_time_left(
        store: Arc<dyn CodeStore>,
    ) {
        assert_eq!(invite(&store, "share-a", NOW).await.map(|r| r.at), Ok(NOW));
        assert_eq!(invite(&store, "share-a", NOW + 10).await, Err(20));
        assert!(
            invite(&store, "share-b", NOW).await.is_ok(),
            "other shares are not held up"
        );
        assert!(invite(&store, "share-a", NOW + 30).await.is_ok());
    }

    pub async fn a_released_invitation_allows_a_retry_at_once(store: Arc<dyn CodeStore>) {
        let first = invite(&store, "share-a", NOW).await.unwrap();
        store.release_invite(&first).await.unwrap();
        assert!(
            invite(&store, "share-a", NOW + 1).await.is_ok(),
            "a failed send holds nothing"
        );
        assert_eq!(invite(&store, "share-a", NOW + 2).await, Err(29));
    }

    pub async fn releasing_an_old_invitation_keeps_a_newer_one(store: Arc<dyn CodeStore>) {
        let old = invite(&store, "share-a", NOW).await.unwrap();
        let _newer = invite(&store, "share-a", NOW + 30).await.unwrap();
        store.release_invite(&old).await.unwrap();
        assert_eq!(
            invite(&store, "share-a", NOW + 31).await,
            Err(29),
            "the newer send's cooldown still runs"
        );
    }

    /// Runs `n` copies of `attempt` at once, each on its own task; how many answered `true`.
    async fn count_granted<F, Fut>(n: usize, attempt: F) -> usize
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        let granted = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (granted, attempt) = (Arc::clone(&granted), attempt(i));
                tokio::spawn(async move {
                    if attempt.await {
                        granted.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        granted.load(Ordering::SeqCst)
    }
}

// --- what only a shared store shows ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_200_guesses_at_one_code_get_max_attempts_comparisons() {
    use casegate::verify::{ClientKey, CodeMac, PendingCode, VerifySettings};

    let server = RedisServer::start();
    let replicas: [Arc<dyn CodeStore>; 2] = [
        Arc::new(redis_store(&server, "casegate:").await),
        Arc::new(redis_store(&server, "casegate:").await),
    ];
    let settings = Arc::new(VerifySettings::default());
    let now = casegate::clock::unix_now();
    let code = PendingCode {
        mac: CodeMac {
            kid: "k1".into(),
            tag: [7; 32],
        },
        expires_at: now + 300,
    };
    // Sent by replica A, guessed at through both.
    replicas[0]
        .put_code("share", code.clone(), now)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..200usize)
        .map(|i| {
            let store = Arc::clone(&replicas[i % 2]);
            let settings = Arc::clone(&settings);
            tokio::spawn(async move {
                let client = ClientKey::V4([10, 2, (i / 256) as u8, (i % 256) as u8]);
                store
                    .begin_attempt("share", client, now, &settings)
                    .await
                    .expect("redis answers")
                    .ok()
                    .map(|attempt| (i % 2, attempt))
            })
        })
        .collect();
    let mut compared = Vec::new();
    for task in tasks {
        if let Some(granted) = task.await.unwrap() {
            compared.push(granted);
        }
    }
    assert_eq!(compared.len(), 5, "max_attempts comparisons in all");
    let mut left: Vec<u32> = compared.iter().map(|(_, a)| a.attempts_left).collect();
    left.sort_unstable();
    assert_eq!(left, [0, 1, 2, 3, 4], "each try counted once");
    assert!(compared.iter().all(|(_, attempt)| attempt.code == code));
    println!(
        "granted per replica: A {}, B {}",
        compared.iter().filter(|(r, _)| *r == 0).count(),
        compared.iter().filter(|(r, _)| *r == 1).count()
    );
}

#[tokio::test]
async fn a_code_sent_by_one_replica_is_verified_on_another_and_the_prefix_keeps_deployments_apart()
{
    use casegate::verify::{ClientKey, CodeMac, CodeStatus, PendingCode, VerifySettings};

    let server = RedisServer::start();
    let replica_a = redis_store(&server, "casegate:").await;
    let replica_b = redis_store(&server, "casegate:").await;
    let elsewhere = redis_store(&server, "other-deployment:").await;
    let s = VerifySettings::default();
    let now = casegate::clock::unix_now();
    let client = ClientKey::V4([192, 0, 2, 9]);
    replica_a
        .reserve_send("share", client, now, &s)
        .await
        .unwrap()
        .unwrap();
    let code = PendingCode {
        mac: CodeMac {
            kid: "k1".into(),
            tag: [9; 32],
        },
        expires_at: now + 300,
    };
    replica_a
        .put_code("share", code.clone(), now)
        .await
        .unwrap();
    // B sees the cooldown A started, and the code A stored.
    assert!(
        replica_b
            .reserve_send("share", client, now + 1, &s)
            .await
            .unwrap()
            .is_err()
    );
    let attempt = replica_b
        .begin_attempt("share", client, now, &s)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempt.code, code);
    replica_b
        .code_used("share", client, &attempt.code.mac)
        .await
        .unwrap();
    assert_eq!(
        replica_a.status("share", now, &s).await.unwrap(),
        CodeStatus::NoCode
    );
    // Another prefix shares nothing.
    assert!(
        elsewhere
            .reserve_send("share", client, now + 1, &s)
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn every_key_expires_so_redis_memory_stays_bounded() {
    use casegate::verify::{ClientKey, CodeMac, PendingCode, VerifySettings};

    let server = RedisServer::start();
    let store = redis_store(&server, "casegate:").await;
    // A clock far from Redis's: expiry is relative, so the keys still live about an hour.
    let now = 1_750_000_000;
    let s = VerifySettings::default();
    let client = ClientKey::of("2001:db8::1".parse().unwrap());
    store
        .reserve_send("share", client, now, &s)
        .await
        .unwrap()
        .unwrap();
    let code = PendingCode {
        mac: CodeMac {
            kid: "k1".into(),
            tag: [1; 32],
        },
        expires_at: now + 300,
    };
    store.put_code("share", code, now).await.unwrap();
    let _ = store.begin_attempt("share", client, now, &s).await.unwrap();
    let _ = store
        .reserve_invite("share", now, Duration::from_secs(30))
        .await
        .unwrap();

    let mut connection = connect(&server).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "casegate:invite:share",
            "casegate:verify:code:share",
            "casegate:verify:failures:client:6:20010db800000000",
            "casegate:verify:sends:client:6:20010db800000000",
            "casegate:verify:sends:share:share",
        ]
    );
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        let most = if key.contains("invite") {
            30
        } else if key.contains(":code:") {
            300 + 3600
        } else {
            3600
        };
        assert!(
            ttl > 0 && ttl <= most,
            "{key} expires in {ttl} s, want 1..={most}"
        );
    }
}

#[tokio::test]
async fn with_redis_gone_every_operation_fails_and_none_is_allowed() {
    use casegate::verify::{ClientKey, CodeMac, VerifySettings};

    let mut server = RedisServer::start();
    let store = redis_store(&server, "casegate:").await;
    let s = VerifySettings::default();
    let client = ClientKey::V4([192, 0, 2, 1]);
    let now = casegate::clock::unix_now();
    let mac = CodeMac {
        kid: "k1".into(),
        tag: [1; 32],
    };
    server.kill();
    let started = std::time::Instant::now();
    assert!(store.reserve_send("A", client, now, &s).await.is_err());
    assert!(store.begin_attempt("A", client, now, &s).await.is_err());
    assert!(store.status("A", now, &s).await.is_err());
    assert!(store.next_send_in("A", client, now, &s).await.is_err());
    assert!(store.code_used("A", client, &mac).await.is_err());
    assert!(
        store
            .reserve_invite("A", now, Duration::from_secs(30))
            .await
            .is_err()
    );
    let error = store.drop_code("A", &mac).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the shared verification store cannot be reached"),
        "{error}"
    );
    println!("7 refused calls took {:?}", started.elapsed());

    // Back again: the same store (its connection reconnects on its own) answers, and the scripts
    // a restarted Redis forgot are loaded again.
    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.reserve_send("A", client, now, &s).await {
            Ok(answer) => {
                assert_eq!(answer, Ok(()));
                break;
            }
            Err(error) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no reconnect within 10 s: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
