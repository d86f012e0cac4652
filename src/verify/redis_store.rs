//! [`RedisCodeStore`]: pending codes, abuse counters and invitation cooldowns in Redis, shared by
//! every replica that uses the same Redis and key prefix.
//!
//! Same rules as [`super::MemoryCodeStore`], kept the same way: a share's sends, a client's sends
//! and a client's failures are lists of unix seconds, oldest first, trimmed to the last hour; a
//! pending code is a hash (`kid`, `tag`, `expires_at`, `attempts`). Every check-and-count is ONE
//! Lua script, which Redis runs alone, so no interleaving of replicas lets more than a limit
//! through, and a guess is counted in the same step that hands out the code to compare with.
//!
//! Memory stays bounded without a sweeper: every key expires (`EXPIRE`, relative, so the callers'
//! clock and Redis's need not agree) an hour after its last event, a code an hour after it stopped
//! working, an invitation cooldown when it ends.
//!
//! A failed call (Redis down, a timeout of the connection, an error reply) is
//! [`CodeStoreUnavailable`]; the caller refuses what it was about to do. The connection's own
//! timeouts bound how long that takes (`redis::aio::ConnectionManager` reconnects by itself).

use std::fmt::Write as _;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{ErrorKind, RedisError, Script};

use super::client::ClientKey;
use super::code::CodeMac;
use super::limits::{Limit, Limited, VerifySettings};
use super::store::{
    Attempt, AttemptRefusal, CodeStatus, CodeStore, CodeStoreUnavailable, InviteReservation,
    PendingCode, StoreFuture, whole_secs,
};

/// Lua helpers every counting script starts with: the same sliding hour as the memory store's
/// `Window`.
const WINDOW_LUA: &str = r"
local HOUR = 3600
-- Forgets the events of list `key` an hour old or older; how many are left.
local function count(key, now)
  while true do
    local first = redis.call('LINDEX', key, 0)
    if not first or tonumber(first) + HOUR > now then break end
    redis.call('LPOP', key)
  end
  return redis.call('LLEN', key)
end
-- Seconds until one more event fits under `limit` (0: it fits now).
local function wait(key, now, limit)
  local n = count(key, now)
  if n < limit then return 0 end
  local at = redis.call('LINDEX', key, n - limit)
  if not at then return 1 end
  return math.max(tonumber(at) + HOUR - now, 1)
end
local function push(key, now, ttl)
  redis.call('RPUSH', key, now)
  redis.call('EXPIRE', key, ttl)
end
";

/// KEYS: share sends, client sends. ARGV: now, cooldown, codes per share, sends per address.
/// Returns {0, 0} when counted, else {which limit (1 cooldown, 2 per share, 3 per address), wait}.
const RESERVE_SEND_LUA: &str = r"
local now = tonumber(ARGV[1])
local last = redis.call('LINDEX', KEYS[1], -1)
if last then
  local ready_at = tonumber(last) + tonumber(ARGV[2])
  if ready_at > now then return {1, ready_at - now} end
end
local w = wait(KEYS[1], now, tonumber(ARGV[3]))
if w > 0 then return {2, w} end
w = wait(KEYS[2], now, tonumber(ARGV[4]))
if w > 0 then return {3, w} end
push(KEYS[1], now, HOUR)
push(KEYS[2], now, HOUR)
return {0, 0}
";

/// KEYS: code. ARGV: kid, tag, expires_at, now.
const PUT_CODE_LUA: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'kid', ARGV[1], 'tag', ARGV[2], 'expires_at', ARGV[3], 'attempts', 0)
redis.call('EXPIRE', KEYS[1], math.max(tonumber(ARGV[3]) + 3600 - tonumber(ARGV[4]), 1))
return 1
";

/// KEYS: code. ARGV: kid, tag. Deletes the code only if it is still that one.
const DROP_CODE_LUA: &str = r"
local code = redis.call('HMGET', KEYS[1], 'kid', 'tag')
if code[1] == ARGV[1] and code[2] == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 1
";

/// KEYS: code, client failures. ARGV: now, max attempts, failures per address.
/// Returns {outcome, attempts left or wait, expires_at, kid, tag}; outcome 0 = counted,
/// 1 no code, 2 expired, 3 exhausted, 4 limited (then the second field is the wait).
const BEGIN_ATTEMPT_LUA: &str = r"
local now = tonumber(ARGV[1])
local max_attempts = tonumber(ARGV[2])
local code = redis.call('HMGET', KEYS[1], 'kid', 'tag', 'expires_at', 'attempts')
if not code[1] or not code[2] or not code[3] or not code[4] then return {1, 0, 0, '', ''} end
local expires_at = tonumber(code[3])
if expires_at <= now then return {2, 0, 0, '', ''} end
local attempts = tonumber(code[4])
if attempts >= max_attempts then return {3, 0, 0, '', ''} end
local w = wait(KEYS[2], now, tonumber(ARGV[3]))
if w > 0 then return {4, w, 0, '', ''} end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
push(KEYS[2], now, HOUR)
return {0, max_attempts - attempts - 1, expires_at, code[1], code[2]}
";

/// KEYS: code, client failures. ARGV: kid, tag.
const CODE_USED_LUA: &str = r"
local code = redis.call('HMGET', KEYS[1], 'kid', 'tag')
if code[1] == ARGV[1] and code[2] == ARGV[2] then redis.call('DEL', KEYS[1]) end
redis.call('RPOP', KEYS[2])
return 1
";

/// KEYS: share sends, client sends. ARGV: now, cooldown, codes per share, sends per address.
const NEXT_SEND_IN_LUA: &str = r"
local now = tonumber(ARGV[1])
local result = 0
local last = redis.call('LINDEX', KEYS[1], -1)
if last then
  result = math.max(result, tonumber(last) + tonumber(ARGV[2]) - now)
  result = math.max(result, wait(KEYS[1], now, tonumber(ARGV[3])))
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  result = math.max(result, wait(KEYS[2], now, tonumber(ARGV[4])))
end
return result
";

/// KEYS: invitation. ARGV: now, cooldown. Returns {1, 0} when reserved, {0, wait} when not.
const RESERVE_INVITE_LUA: &str = r"
local now = tonumber(ARGV[1])
local cooldown = tonumber(ARGV[2])
local previous = redis.call('GET', KEYS[1])
if previous then
  local since = now - tonumber(previous)
  if since < cooldown then
    return {0, math.min(math.max(cooldown - since, 1), cooldown)}
  end
end
redis.call('SET', KEYS[1], now, 'EX', math.max(cooldown, 1))
return {1, 0}
";

/// KEYS: invitation. ARGV: the reservation's time. Frees it only if no later one took its place.
const RELEASE_INVITE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// The codes store several replicas share through one Redis.
#[derive(Clone)]
pub struct RedisCodeStore {
    connection: ConnectionManager,
    key_prefix: String,
    scripts: Scripts,
}

/// The scripts, each loaded into Redis (`SCRIPT LOAD`) on first use and called by hash after that;
/// a Redis that restarted and forgot them gets them again.
#[derive(Clone)]
struct Scripts {
    reserve_send: Script,
    put_code: Script,
    drop_code: Script,
    begin_attempt: Script,
    code_used: Script,
    next_send_in: Script,
    reserve_invite: Script,
    release_invite: Script,
}

/// The keys of one share and one client.
struct Keys {
    code: String,
    share_sends: String,
    client_sends: String,
    client_failures: String,
}

// === impl RedisCodeStore ===

impl RedisCodeStore {
    /// A store on `connection`, with every key it writes starting with `key_prefix` (e.g. the
    /// `[state] key_prefix`, so one Redis can serve several gateways' deployments apart).
    pub fn new(connection: ConnectionManager, key_prefix: impl Into<String>) -> RedisCodeStore {
        let counting = |body: &str| Script::new(&format!("{WINDOW_LUA}{body}"));
        RedisCodeStore {
            connection,
            key_prefix: key_prefix.into(),
            scripts: Scripts {
                reserve_send: counting(RESERVE_SEND_LUA),
                put_code: Script::new(PUT_CODE_LUA),
                drop_code: Script::new(DROP_CODE_LUA),
                begin_attempt: counting(BEGIN_ATTEMPT_LUA),
                code_used: Script::new(CODE_USED_LUA),
                next_send_in: counting(NEXT_SEND_IN_LUA),
                reserve_invite: Script::new(RESERVE_INVITE_LUA),
                release_invite: Script::new(RELEASE_INVITE_LUA),
            },
        }
    }

    fn keys(&self, share_id: &str, client: Option<ClientKey>) -> Keys {
        let prefix = &self.key_prefix;
        let client = client.map(client_text).unwrap_or_default();
        Keys {
            code: format!("{prefix}verify:code:{share_id}"),
            share_sends: format!("{prefix}verify:sends:share:{share_id}"),
            client_sends: format!("{prefix}verify:sends:client:{client}"),
            client_failures: format!("{prefix}verify:failures:client:{client}"),
        }
    }

    fn invite_key(&self, share_id: &str) -> String {
        format!("{}invite:{share_id}", self.key_prefix)
    }
}

impl CodeStore for RedisCodeStore {
    fn reserve_send<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, Result<(), Limited>> {
        let keys = self.keys(share_id, Some(client));
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let (outcome, wait): (i64, i64) = self
                .scripts
                .reserve_send
                .key(&keys.share_sends)
                .key(&keys.client_sends)
                .arg(now)
                .arg(settings.resend_cooldown_secs())
                .arg(settings.max_codes_per_hour)
                .arg(settings.max_sends_per_address_per_hour)
                .invoke_async(&mut connection)
                .await?;
            let limit = match outcome {
                0 => return Ok(Ok(())),
                1 => Limit::Cooldown,
                2 => Limit::CodesPerShare,
                3 => Limit::SendsPerAddress,
                _ => return Err(unexpected_reply("reserve_send")),
            };
            Ok(Err(Limited::new(limit, wait)))
        })
    }

    fn put_code<'a>(
        &'a self,
        share_id: &'a str,
        code: PendingCode,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        let keys = self.keys(share_id, None);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let _: i64 = self
                .scripts
                .put_code
                .key(&keys.code)
                .arg(&code.mac.kid)
                .arg(&code.mac.tag[..])
                .arg(code.expires_at)
                .arg(now)
                .invoke_async(&mut connection)
                .await?;
            Ok(())
        })
    }

    fn drop_code<'a>(&'a self, share_id: &'a str, mac: &'a CodeMac) -> StoreFuture<'a, ()> {
        let keys = self.keys(share_id, None);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let _: i64 = self
                .scripts
                .drop_code
                .key(&keys.code)
                .arg(&mac.kid)
                .arg(&mac.tag[..])
                .invoke_async(&mut connection)
                .await?;
            Ok(())
        })
    }

    fn begin_attempt<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, Result<Attempt, AttemptRefusal>> {
        let keys = self.keys(share_id, Some(client));
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let (outcome, number, expires_at, kid, tag): (i64, i64, i64, String, Vec<u8>) = self
                .scripts
                .begin_attempt
                .key(&keys.code)
                .key(&keys.client_failures)
                .arg(now)
                .arg(settings.max_attempts)
                .arg(settings.max_failures_per_address_per_hour)
                .invoke_async(&mut connection)
                .await?;
            let refusal = match outcome {
                0 => {
                    let attempts_left =
                        u32::try_from(number).map_err(|_| unexpected_reply("begin_attempt"))?;
                    let tag = <[u8; 32]>::try_from(tag.as_slice())
                        .map_err(|_| unexpected_reply("begin_attempt"))?;
                    return Ok(Ok(Attempt {
                        code: PendingCode {
                            mac: CodeMac { kid, tag },
                            expires_at,
                        },
                        attempts_left,
                    }));
                }
                1 => AttemptRefusal::NoCode,
                2 => AttemptRefusal::Expired,
                3 => AttemptRefusal::Exhausted,
                4 => AttemptRefusal::Limited(Limited::new(Limit::FailuresPerAddress, number)),
                _ => return Err(unexpected_reply("begin_attempt")),
            };
            Ok(Err(refusal))
        })
    }

    fn code_used<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        mac: &'a CodeMac,
    ) -> StoreFuture<'a, ()> {
        let keys = self.keys(share_id, Some(client));
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let _: i64 = self
                .scripts
                .code_used
                .key(&keys.code)
                .key(&keys.client_failures)
                .arg(&mac.kid)
                .arg(&mac.tag[..])
                .invoke_async(&mut connection)
                .await?;
            Ok(())
        })
    }

    fn status<'a>(
        &'a self,
        share_id: &'a str,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, CodeStatus> {
        let keys = self.keys(share_id, None);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            // One command reads one key: atomic without a script.
            let (expires_at, attempts): (Option<i64>, Option<u32>) = redis::cmd("HMGET")
                .arg(&keys.code)
                .arg("expires_at")
                .arg("attempts")
                .query_async(&mut connection)
                .await?;
            Ok(match (expires_at, attempts) {
                (Some(expires_at), Some(_)) if expires_at <= now => CodeStatus::Expired,
                (Some(_), Some(attempts)) if attempts >= settings.max_attempts => {
                    CodeStatus::Exhausted
                }
                (Some(_), Some(attempts)) => CodeStatus::Pending {
                    attempts_left: settings.max_attempts - attempts,
                },
                _ => CodeStatus::NoCode,
            })
        })
    }

    fn next_send_in<'a>(
        &'a self,
        share_id: &'a str,
        client: ClientKey,
        now: i64,
        settings: &'a VerifySettings,
    ) -> StoreFuture<'a, i64> {
        let keys = self.keys(share_id, Some(client));
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let wait: i64 = self
                .scripts
                .next_send_in
                .key(&keys.share_sends)
                .key(&keys.client_sends)
                .arg(now)
                .arg(settings.resend_cooldown_secs())
                .arg(settings.max_codes_per_hour)
                .arg(settings.max_sends_per_address_per_hour)
                .invoke_async(&mut connection)
                .await?;
            Ok(wait)
        })
    }

    fn reserve_invite<'a>(
        &'a self,
        share_id: &'a str,
        now: i64,
        cooldown: Duration,
    ) -> StoreFuture<'a, Result<InviteReservation, i64>> {
        let key = self.invite_key(share_id);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let (reserved, wait): (i64, i64) = self
                .scripts
                .reserve_invite
                .key(&key)
                .arg(now)
                .arg(whole_secs(cooldown))
                .invoke_async(&mut connection)
                .await?;
            Ok(match reserved {
                1 => Ok(InviteReservation {
                    share_id: share_id.to_owned(),
                    at: now,
                }),
                _ => Err(wait.max(1)),
            })
        })
    }

    fn release_invite<'a>(&'a self, reservation: &'a InviteReservation) -> StoreFuture<'a, ()> {
        let key = self.invite_key(&reservation.share_id);
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let _: i64 = self
                .scripts
                .release_invite
                .key(&key)
                .arg(reservation.at)
                .invoke_async(&mut connection)
                .await?;
            Ok(())
        })
    }
}

/// The client part of a counter key: `4:192.0.2.1` or `6:20010db800010002` (an IPv6 /64).
fn client_text(client: ClientKey) -> String {
    match client {
        ClientKey::V4([a, b, c, d]) => format!("4:{a}.{b}.{c}.{d}"),
        ClientKey::V6Net(network) => {
            let mut text = String::from("6:");
            for byte in network {
                let _ = write!(text, "{byte:02x}");
            }
            text
        }
    }
}

/// A script answered in a shape it never produces: someone else wrote our keys, or a bug. The
/// request is refused like any other store failure.
fn unexpected_reply(script: &'static str) -> CodeStoreUnavailable {
    CodeStoreUnavailable::from(RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "unexpected reply from a verification script",
        script.to_owned(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_are_spelled_apart_by_family() {
        assert_eq!(client_text(ClientKey::V4([192, 0, 2, 1])), "4:192.0.2.1");
        assert_eq!(
            client_text(ClientKey::V6Net([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2])),
            "6:20010db800010002"
        );
    }
}
