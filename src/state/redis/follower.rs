//! The follower: one task per process that keeps the view in step with Redis. It reads the
//! change stream from where it left off, blocking on the server for at most [`FOLLOW_BLOCK`],
//! so a change committed by any replica reaches this one's view within a round trip; and it
//! reads the whole state again every `resync_interval`, after any failure (a reconnect), and
//! when the stream was trimmed past the last entry it read.
//!
//! Every successful read (new entries or none) and every resync tells the [`Heartbeat`] that
//! the view is current: that is what the gateway's fail-closed check and `/readyz` look at.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{RedisError, Value};
use tracing::{debug, warn};

use super::super::freshness::Heartbeat;
use super::super::view::View;
use super::change::{Change, bytes, number, share_record};
use super::keys::Keys;

/// How long one read waits on the server for new entries.
pub(crate) const FOLLOW_BLOCK: Duration = Duration::from_millis(400);
/// The follower's connection must outwait its own blocking reads.
pub(crate) const FOLLOW_RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Entries read at most per round trip.
const READ_COUNT: usize = 1000;
/// Fields read per HSCAN step: large enough to be quick, small enough not to stall Redis.
const SCAN_COUNT: usize = 1000;
/// Between two attempts while Redis fails (the connection's own retries come on top).
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// The id before every stream entry.
const STREAM_START: &str = "0-0";

pub(crate) struct Follower {
    pub(crate) conn: ConnectionManager,
    pub(crate) keys: Arc<Keys>,
    pub(crate) view: Arc<View>,
    pub(crate) heartbeat: Arc<Heartbeat>,
    pub(crate) resync_interval: Duration,
    /// The store, redacted, for log lines.
    pub(crate) target: String,
    /// The last stream entry applied (or known to be covered by a resync).
    last_id: String,
}

/// What a resync read, for its log line.
#[derive(Debug, Default)]
pub(crate) struct Resynced {
    pub(crate) changes: usize,
    pub(crate) skipped: usize,
}

impl Follower {
    pub(crate) fn new(
        conn: ConnectionManager,
        keys: Arc<Keys>,
        view: Arc<View>,
        heartbeat: Arc<Heartbeat>,
        resync_interval: Duration,
        target: String,
    ) -> Follower {
        Follower {
            conn,
            keys,
            view,
            heartbeat,
            resync_interval,
            target,
            last_id: STREAM_START.to_owned(),
        }
    }

    /// Follows until the task is aborted (when the store is dropped).
    pub(crate) async fn run(mut self) {
        let mut last_resync = Instant::now();
        let mut resync_due = false;
        let mut failing = false;
        loop {
            if resync_due || last_resync.elapsed() >= self.resync_interval {
                match self.resync().await {
                    Ok(resynced) => {
                        // The watchdog says, once, that guests are served again.
                        debug!(store = %self.target, changes = resynced.changes, after_failure = failing, "state: read the whole state from Redis");
                        failing = false;
                        resync_due = false;
                        last_resync = Instant::now();
                    }
                    Err(error) => {
                        self.failed(&error, &mut failing);
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                }
            }
            match self.read().await {
                Ok(trimmed_past_us) => {
                    if trimmed_past_us {
                        warn!(store = %self.target, "state: the change stream was trimmed past this replica's position; reading the whole state again");
                        resync_due = true;
                    }
                }
                Err(error) => {
                    self.failed(&error, &mut failing);
                    resync_due = true;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// Logs the first failure of a run of them; the watchdog logs what it means for guests.
    fn failed(&self, error: &RedisError, failing: &mut bool) {
        if *failing {
            debug!(store = %self.target, %error, "state: Redis still failing");
        } else {
            warn!(store = %self.target, %error, "state: following Redis failed; retrying");
            *failing = true;
        }
    }

    /// Reads new entries (waiting up to [`FOLLOW_BLOCK`] for some) and applies them. Answers
    /// whether entries this replica never read were trimmed from the stream.
    async fn read(&mut self) -> Result<bool, RedisError> {
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(u64::try_from(FOLLOW_BLOCK.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.keys.log)
            .arg(&self.last_id)
            .query_async(&mut self.conn)
            .await?;
        self.heartbeat.heard();
        let entries: Vec<StreamId> = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect();
        let Some(newest) = entries.last().map(|entry| entry.id.clone()) else {
            return Ok(false);
        };
        let before = std::mem::replace(&mut self.last_id, newest);
        for entry in &entries {
            self.apply_entry(entry);
        }
        self.trimmed_past(&before).await
    }

    fn apply_entry(&self, entry: &StreamId) {
        let change = Change::from_fields(|name| entry.map.get(name).and_then(bytes));
        match change {
            Ok(change) => change.apply(&self.view),
            Err(reason) => warn!(
                store = %self.target,
                entry = %entry.id,
                reason,
                "state: skipping a change stream entry casegate cannot read"
            ),
        }
    }

    /// Whether the stream lost entries after `position` (trimmed by `MAXLEN`): its largest
    /// deleted id is then at or past it.
    async fn trimmed_past(&mut self, position: &str) -> Result<bool, RedisError> {
        let info: Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&self.keys.log)
            .query_async(&mut self.conn)
            .await?;
        let deleted = stream_info_field(&info, "max-deleted-entry-id");
        Ok(match (deleted.and_then(stream_id), stream_id(position)) {
            (Some(deleted), Some(position)) => deleted > position,
            _ => false,
        })
    }

    /// Reads every materialised key with HSCAN and applies it; the stream is then followed
    /// from the entry that was newest before the scan began, so nothing committed meanwhile is
    /// missed (what is read twice is harmless, see [`Change`]).
    pub(crate) async fn resync(&mut self) -> Result<Resynced, RedisError> {
        let newest: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.keys.log)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn)
            .await?;
        let position = newest
            .ids
            .first()
            .map_or_else(|| STREAM_START.to_owned(), |entry| entry.id.clone());
        let mut resynced = Resynced::default();
        let keys = Arc::clone(&self.keys);
        self.scan(&keys.revoked, &mut resynced, |id, at| {
            Ok(Change::Record(super::super::record::Record::RevokedShare {
                id: utf8(id)?.into(),
                at: number(utf8(at)?)?,
            }))
        })
        .await?;
        self.scan(&keys.cases, &mut resynced, |case, not_before| {
            Ok(Change::Record(super::super::record::Record::RevokedCase {
                case: utf8(case)?.into(),
                not_before: number(utf8(not_before)?)?,
            }))
        })
        .await?;
        self.scan(&keys.shares, &mut resynced, |_, record| {
            share_record(record)
        })
        .await?;
        self.scan(&keys.uses, &mut resynced, |id, uses| {
            Ok(Change::Uses {
                id: utf8(id)?.into(),
                uses: utf8(uses)?
                    .parse()
                    .map_err(|_| "a use count is not a number")?,
                first_used: None,
                last_used: None,
            })
        })
        .await?;
        self.scan(&keys.first_used, &mut resynced, |id, at| {
            Ok(Change::Uses {
                id: utf8(id)?.into(),
                uses: 0,
                first_used: Some(number(utf8(at)?)?),
                last_used: None,
            })
        })
        .await?;
        self.scan(&keys.last_used, &mut resynced, |id, at| {
            Ok(Change::Uses {
                id: utf8(id)?.into(),
                uses: 0,
                first_used: None,
                last_used: Some(number(utf8(at)?)?),
            })
        })
        .await?;
        if resynced.skipped > 0 {
            warn!(store = %self.target, skipped = resynced.skipped, "state: resync skipped fields casegate cannot read");
        }
        self.last_id = position;
        self.heartbeat.heard();
        Ok(resynced)
    }

    /// HSCANs one hash to its end, applying what `read` makes of each field and value.
    async fn scan(
        &mut self,
        key: &str,
        resynced: &mut Resynced,
        read: impl Fn(&[u8], &[u8]) -> Result<Change, &'static str>,
    ) -> Result<(), RedisError> {
        let mut cursor = String::from("0");
        loop {
            let (next, items): (String, Vec<Vec<u8>>) = redis::cmd("HSCAN")
                .arg(key)
                .arg(&cursor)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut self.conn)
                .await?;
            for pair in items.chunks_exact(2) {
                match read(&pair[0], &pair[1]) {
                    Ok(change) => {
                        change.apply(&self.view);
                        resynced.changes += 1;
                    }
                    Err(_) => resynced.skipped += 1,
                }
            }
            if next == "0" {
                return Ok(());
            }
            cursor = next;
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, &'static str> {
    std::str::from_utf8(bytes).map_err(|_| "a field is not UTF-8")
}

/// A stream id `ms-seq` as a comparable pair.
fn stream_id(text: &str) -> Option<(u64, u64)> {
    let (ms, seq) = text.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// One field of an `XINFO STREAM` answer (a flat array in RESP2, a map in RESP3).
fn stream_info_field<'a>(info: &'a Value, name: &str) -> Option<&'a str> {
    let value = match info {
        Value::Array(items) => items
            .chunks_exact(2)
            .find(|pair| bytes(&pair[0]) == Some(name.as_bytes()))
            .map(|pair| &pair[1]),
        Value::Map(pairs) => pairs
            .iter()
            .find(|(key, _)| bytes(key) == Some(name.as_bytes()))
            .map(|(_, value)| value),
        _ => None,
    }?;
    std::str::from_utf8(bytes(value)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_by_time_then_sequence() {
        assert!(stream_id("1700000000000-1") > stream_id("1700000000000-0"));
        assert!(stream_id("1700000000001-0") > stream_id("1700000000000-9"));
        assert_eq!(stream_id("0-0"), Some((0, 0)));
        assert_eq!(stream_id("garbage"), None);
    }
}
