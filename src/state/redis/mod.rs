//! The Redis backend: several gateways share revocations, share records and use counts through
//! one Redis, each keeping its own in-memory view (the hot path never waits on the network).
//!
//! - A commit ([`commit`]) is one Lua script call that updates the materialised keys and
//!   appends the resulting changes to a stream, atomically; the committing replica applies
//!   them to its view once Redis answered, then acknowledges (write before ack). Redis must
//!   persist with `appendonly yes` and `appendfsync always` for an acknowledged revoke to
//!   survive a power loss (see README "Several replicas on Redis").
//! - A follower ([`follower`]) per process reads the stream and applies other replicas'
//!   changes within a round trip, and reads the whole state again periodically and after any
//!   failure.
//! - While Redis is silent the view goes stale; past `max_staleness` guests are refused
//!   (see [`super::freshness`]). Redis failures are not permanent: the connection comes back
//!   on its own, the follower resyncs, and guests are served again.
//!
//! Keys are listed in [`keys`]. Changes are idempotent (see [`change`]), so a replica meeting
//! its own commit again in the stream, or in a resync, counts nothing twice.

mod change;
mod commit;
mod connect;
mod follower;
mod keys;
mod settings;

pub use connect::{ConnectError, connect};
pub use settings::{
    DEFAULT_KEY_PREFIX, DEFAULT_MAX_STALENESS, DEFAULT_RESYNC_INTERVAL, RedisSettings, RedisUrl,
    RedisUrlError,
};

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::backend::{Ack, Backend, Durability};
use super::freshness::{Freshness, Heartbeat, spawn_watchdog};
use super::record::Record;
use super::view::View;
use super::{OpenError, StoreError};
use follower::{FOLLOW_RESPONSE_TIMEOUT, Follower};
use keys::Keys;

/// A commit that Redis has not answered within this time is reported as failed (503). It may
/// still have been applied; revokes and creates are then simply done, and a use batch is kept
/// to be written again (so those uses may be counted twice, never lost).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle commit connection is checked.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    keys: Arc<Keys>,
    view: Arc<View>,
    heartbeat: Arc<Heartbeat>,
    /// Commits run here: `commit` is called from async code but is not async itself.
    runtime: Handle,
    follower: JoinHandle<()>,
    watchdog: JoinHandle<()>,
    keepalive: JoinHandle<()>,
}

impl RedisBackend {
    /// Connects (twice: one connection for commits, one for the follower's blocking reads),
    /// reads the whole state into `view` and starts following. Fails if Redis cannot be
    /// reached or read now: a replica that never saw the revocations must not start serving.
    pub(crate) async fn open(
        settings: &RedisSettings,
        view: Arc<View>,
    ) -> Result<RedisBackend, OpenError> {
        let conn = connect(settings).await.map_err(OpenError::Redis)?;
        let conn_for_keepalive = conn.clone();
        let follow_conn = connect::connect_with(settings, FOLLOW_RESPONSE_TIMEOUT)
            .await
            .map_err(OpenError::Redis)?;
        let keys = Arc::new(Keys::new(&settings.key_prefix));
        let heartbeat = Arc::new(Heartbeat::new(settings.max_staleness));
        let target = settings.url.redacted().to_owned();
        let mut follower = Follower::new(
            follow_conn,
            Arc::clone(&keys),
            Arc::clone(&view),
            Arc::clone(&heartbeat),
            settings.resync_interval,
            target.clone(),
        );
        let resynced = follower
            .resync()
            .await
            .map_err(|source| OpenError::RedisRead {
                target: target.clone(),
                source,
            })?;
        tracing::info!(
            store = %target,
            changes = resynced.changes,
            shares = view.share_count(),
            revoked = view.revoked_count(),
            "state: read the shared state from Redis"
        );
        Ok(RedisBackend {
            conn,
            keys,
            view,
            heartbeat: Arc::clone(&heartbeat),
            runtime: Handle::current(),
            follower: tokio::spawn(follower.run()),
            watchdog: spawn_watchdog(heartbeat, target),
            keepalive: tokio::spawn(keep_alive(conn_for_keepalive)),
        })
    }
}

impl Backend for RedisBackend {
    /// Every commit is as durable as Redis makes it (`appendfsync always`): `durability` does
    /// not change what is done.
    fn commit(&self, records: Vec<Record>, _durability: Durability) -> Ack<()> {
        let (done, ack) = oneshot::channel();
        let commit = match commit::arguments(&records) {
            Ok(commit) => commit,
            Err(refused) => {
                let _ = done.send(Err(refused));
                return ack;
            }
        };
        // Nothing to write (a sync point of an empty flush).
        if commit.is_empty() {
            let _ = done.send(Ok(()));
            return ack;
        }
        let mut conn = self.conn.clone();
        let keys = Arc::clone(&self.keys);
        let view = Arc::clone(&self.view);
        self.runtime.spawn(async move {
            let result =
                match tokio::time::timeout(WRITE_TIMEOUT, commit::run(&mut conn, &keys, &commit))
                    .await
                {
                    Ok(Ok(changes)) => {
                        for change in changes {
                            change.apply(&view);
                        }
                        Ok(())
                    }
                    Ok(Err(error)) => Err(error),
                    Err(_) => Err(StoreError::TimedOut {
                        after: WRITE_TIMEOUT,
                    }),
                };
            let _ = done.send(result);
        });
        ack
    }

    /// Redis keeps every record; casegate does not trim it (the operator's Redis memory holds a
    /// hundred bytes or so per revocation).
    fn compact(&self, _now: i64, _force: bool) -> Ack<bool> {
        let (done, ack) = oneshot::channel();
        let _ = done.send(Ok(false));
        ack
    }

    /// Redis failures pass: the connection is re-established on its own.
    fn has_failed(&self) -> bool {
        false
    }

    fn freshness(&self, now: Instant) -> Freshness {
        self.heartbeat.freshness(now)
    }

    fn is_shared(&self) -> bool {
        true
    }
}

/// Pings the commit connection every [`KEEP_ALIVE_EVERY`]: a connection broken while Redis was
/// away is only replaced when a command finds it broken, and that should not be an admin's
/// revoke.
async fn keep_alive(mut conn: ConnectionManager) {
    loop {
        tokio::time::sleep(KEEP_ALIVE_EVERY).await;
        // A failure starts the reconnect; the follower and the watchdog report the outage.
        let _: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        self.follower.abort();
        self.watchdog.abort();
        self.keepalive.abort();
    }
}
