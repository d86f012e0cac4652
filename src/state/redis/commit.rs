//! Committing records to Redis: one Lua script call per commit, so everything a commit holds is
//! applied to the materialised keys and appended to the stream atomically (a script runs
//! without any other command in between), and answered with the resulting changes, which the
//! caller applies to its own view before it acknowledges.
//!
//! A use batch of a flush is one call too, however many shares it holds.

use std::sync::LazyLock;

use redis::aio::ConnectionManager;
use redis::{Script, Value};

use super::super::StoreError;
use super::super::frame::MAX_PAYLOAD;
use super::super::record::{Origin, Record};
use super::change::Change;
use super::keys::Keys;

/// About how many entries the stream keeps (`XADD MAXLEN ~`). A replica that falls further
/// behind than this reads the whole state again instead (see the follower).
pub(crate) const STREAM_MAX_LEN: u64 = 100_000;

/// KEYS: log, revoked, cases, shares, uses, first_used, last_used (see [`Keys`]).
/// ARGV: the stream's approximate maximum length, then one group per change:
///   r id at | c case not_before | s id record api(1/0) | u id added_uses first last
/// (`first`/`last` empty when unknown). Times are compared as numbers and stored as the text
/// they came as; Lua numbers are doubles, exact far beyond any Unix time.
/// Answers one flat `[field, value, ...]` array per change: exactly what it appended to the
/// stream, with the values as they stand after the change.
const COMMIT_LUA: &str = r#"
local maxlen = ARGV[1]
local out = {}
local function append(fields)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(fields))
  out[#out + 1] = fields
end
local function keep(key, id, value, earlier)
  if value == '' then return end
  local current = redis.call('HGET', key, id)
  if current then
    local a, b = tonumber(value), tonumber(current)
    if (earlier and a >= b) or ((not earlier) and a <= b) then return end
  end
  redis.call('HSET', key, id, value)
end
local i = 2
while i <= #ARGV do
  local kind = ARGV[i]
  if kind == 'r' then
    local id = ARGV[i + 1]
    keep(KEYS[2], id, ARGV[i + 2], true)
    append({'k', 'r', 'id', id, 'at', redis.call('HGET', KEYS[2], id)})
    i = i + 3
  elseif kind == 'c' then
    local case = ARGV[i + 1]
    keep(KEYS[3], case, ARGV[i + 2], false)
    append({'k', 'c', 'case', case, 'nb', redis.call('HGET', KEYS[3], case)})
    i = i + 3
  elseif kind == 's' then
    local id = ARGV[i + 1]
    if ARGV[i + 3] == '1' then
      redis.call('HSET', KEYS[4], id, ARGV[i + 2])
    else
      redis.call('HSETNX', KEYS[4], id, ARGV[i + 2])
    end
    append({'k', 's', 'id', id, 'rec', redis.call('HGET', KEYS[4], id)})
    i = i + 4
  elseif kind == 'u' then
    local id = ARGV[i + 1]
    local total = redis.call('HINCRBY', KEYS[5], id, ARGV[i + 2])
    keep(KEYS[6], id, ARGV[i + 3], true)
    keep(KEYS[7], id, ARGV[i + 4], false)
    append({'k', 'u', 'id', id, 'n', tostring(total),
            'f', redis.call('HGET', KEYS[6], id) or '',
            'l', redis.call('HGET', KEYS[7], id) or ''})
    i = i + 5
  else
    return redis.error_reply('casegate commit: unknown change kind')
  end
end
return out
"#;

static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(COMMIT_LUA));

/// One commit's script arguments.
pub(crate) struct Commit {
    args: Vec<Vec<u8>>,
    /// Whether running it twice leaves the same state (no use counts to add): only then may a
    /// failed attempt be retried when it is unknown whether Redis saw it.
    idempotent: bool,
}

impl Commit {
    /// Whether there is anything to write (beyond the stream length).
    pub(crate) fn is_empty(&self) -> bool {
        self.args.len() <= 1
    }
}

/// The script's arguments for `records`, checked before anything is sent: a record the journal
/// could not hold is refused here too, so the two backends accept the same writes.
pub(crate) fn arguments(records: &[Record]) -> Result<Commit, StoreError> {
    let mut args = vec![STREAM_MAX_LEN.to_string().into_bytes()];
    let mut idempotent = true;
    let text = |value: &str| value.as_bytes().to_vec();
    let time = |value: Option<i64>| value.map_or_else(Vec::new, |at| at.to_string().into_bytes());
    for record in records {
        match record {
            Record::RevokedShare { id, at } => {
                args.extend([text("r"), text(id), time(Some(*at))]);
            }
            Record::RevokedCase { case, not_before } => {
                args.extend([text("c"), text(case), time(Some(*not_before))]);
            }
            Record::Share { id, state } => {
                // A share's record is written only when it says something: a use batch of a
                // share known elsewhere carries counters alone.
                if state.has_claims() || state.origin == Origin::Api {
                    let mut encoded = Vec::new();
                    Record::Share {
                        id: id.clone(),
                        state: state.without_counters(),
                    }
                    .encode(&mut encoded);
                    if encoded.len() > MAX_PAYLOAD {
                        return Err(StoreError::TooLarge {
                            bytes: encoded.len(),
                        });
                    }
                    let api = if state.origin == Origin::Api {
                        "1"
                    } else {
                        "0"
                    };
                    args.extend([text("s"), text(id), encoded, text(api)]);
                }
                if state.has_counters() {
                    idempotent = false;
                    args.extend([
                        text("u"),
                        text(id),
                        state.uses.to_string().into_bytes(),
                        time(state.first_used_at),
                        time(state.last_used_at),
                    ]);
                }
            }
            // Marks the end of a journal snapshot; nothing to share.
            Record::End { .. } => {}
        }
    }
    Ok(Commit { args, idempotent })
}

/// Runs the commit script and reads back the changes it made.
///
/// A connection broken while Redis was away is replaced only when a command finds it broken, and
/// that command fails: so one failure of that kind is followed by one more attempt, on the fresh
/// connection. When the connection was refused the script was never sent; when it dropped, it
/// may have run, so then only an idempotent commit is tried again.
pub(crate) async fn run(
    conn: &mut ConnectionManager,
    keys: &Keys,
    commit: &Commit,
) -> Result<Vec<Change>, StoreError> {
    match invoke(conn, keys, commit).await {
        Err(error)
            if error.is_connection_refusal()
                || (commit.idempotent && error.is_connection_dropped()) =>
        {
            invoke(conn, keys, commit).await
        }
        result => result,
    }
    .map_err(StoreError::Redis)
    .and_then(|answer| changes(&answer))
}

async fn invoke(
    conn: &mut ConnectionManager,
    keys: &Keys,
    commit: &Commit,
) -> redis::RedisResult<Value> {
    let mut invocation = COMMIT.prepare_invoke();
    for key in keys.in_script_order() {
        invocation.key(key);
    }
    for arg in &commit.args {
        invocation.arg(arg.as_slice());
    }
    invocation.invoke_async(conn).await
}

fn changes(answer: &Value) -> Result<Vec<Change>, StoreError> {
    let Value::Array(changes) = answer else {
        return Err(StoreError::UnexpectedReply(
            "the commit script did not answer with an array",
        ));
    };
    changes
        .iter()
        .map(|change| Change::from_value(change).map_err(StoreError::UnexpectedReply))
        .collect()
}
