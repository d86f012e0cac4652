//! What the Redis backend is configured with: the server's URL (a secret: it may carry a
//! password, so it is only ever shown redacted), the prefix of every key it uses, how long the
//! gateway may serve guests on revocations it could not refresh, and how often it re-reads the
//! whole state.

use std::fmt;
use std::time::Duration;

use redis::IntoConnectionInfo;

/// Every key casegate writes starts with this unless `[state] key_prefix` says otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "casegate:";
/// `[state] max_staleness`: how long guests are served on the last-known revocations.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(60);
/// `[state] resync_interval`: how often the whole state is read again from Redis.
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// A validated `redis://` or `rediss://` URL. `Debug` and [`RedisUrl::redacted`] replace the
/// password with `***`; the full text is only handed to the Redis client.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    text: String,
    redacted: String,
}

/// Why a URL is not one casegate connects to. Messages never contain the URL's password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisUrlError {
    /// Not `redis://` or `rediss://` (unix sockets, `valkey://` and anything else).
    Scheme,
    /// The client cannot read it: no host, a bad port or database number, and so on.
    Unparsable { reason: String },
    /// `rediss://...#insecure` turns certificate checks off.
    Insecure,
}

impl fmt::Display for RedisUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisUrlError::Scheme => f.write_str(
                "must start with redis:// or rediss:// (TLS), e.g. redis://127.0.0.1:6379/0",
            ),
            RedisUrlError::Unparsable { reason } => write!(
                f,
                "is not a usable Redis URL ({reason}); write redis://[user:password@]host[:port][/db]"
            ),
            RedisUrlError::Insecure => f.write_str(
                "#insecure turns off certificate checks; casegate always verifies the server",
            ),
        }
    }
}

impl std::error::Error for RedisUrlError {}

impl RedisUrl {
    pub fn parse(text: &str) -> Result<RedisUrl, RedisUrlError> {
        let Some(url) = redis::parse_redis_url(text) else {
            // parse_redis_url also refuses what the URL parser cannot read; tell the two apart
            // by the scheme, the part an operator most often gets wrong.
            return Err(
                if text.starts_with("redis://") || text.starts_with("rediss://") {
                    RedisUrlError::Unparsable {
                        reason: "malformed URL".to_owned(),
                    }
                } else {
                    RedisUrlError::Scheme
                },
            );
        };
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(RedisUrlError::Scheme);
        }
        if url.fragment().is_some() {
            return Err(RedisUrlError::Insecure);
        }
        if let Err(error) = text.into_connection_info() {
            // The client's own reason ("Missing hostname", "Invalid database number") names
            // no part of the URL, so it cannot leak the password.
            return Err(RedisUrlError::Unparsable {
                reason: error.to_string(),
            });
        }
        let mut shown = url.clone();
        if shown.password().is_some() {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = shown.set_password(Some("***"));
        }
        Ok(RedisUrl {
            text: text.to_owned(),
            redacted: shown.to_string(),
        })
    }

    /// The URL with its password replaced by `***`: for logs and messages.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URL as written, password included: only for the Redis client.
    pub(crate) fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// `[state] backend = "redis"`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    pub url: RedisUrl,
    /// Starts every key casegate reads or writes (`casegate:log`, `casegate:revoked`, ...), so
    /// several deployments can share one Redis database.
    pub key_prefix: String,
    /// How long guests are still served on the last-known revocations after the gateway last
    /// heard from Redis; past it they are refused (503) until Redis answers again.
    pub max_staleness: Duration,
    /// How often the whole state is read again (also after every reconnect).
    pub resync_interval: Duration,
}

impl RedisSettings {
    /// The documented defaults for everything but the URL.
    pub fn new(url: RedisUrl) -> RedisSettings {
        RedisSettings {
            url,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            max_staleness: DEFAULT_MAX_STALENESS,
            resync_interval: DEFAULT_RESYNC_INTERVAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let url = RedisUrl::parse("redis://app:hunter2@redis.internal:6380/2").expect("valid");
        assert_eq!(url.redacted(), "redis://app:***@redis.internal:6380/2");
        assert_eq!(format!("{url:?}"), "redis://app:***@redis.internal:6380/2");
        assert_eq!(format!("{url}"), "redis://app:***@redis.internal:6380/2");
        let only_password = RedisUrl::parse("rediss://:hunter2@redis.internal").expect("valid");
        assert!(!only_password.redacted().contains("hunter2"));
        assert_eq!(only_password.expose(), "rediss://:hunter2@redis.internal");
    }

    #[test]
    fn urls_casegate_cannot_use_are_refused_without_quoting_them() {
        let cases = [
            (
                "another scheme",
                "http://hunter2@redis:6379",
                RedisUrlError::Scheme,
            ),
            (
                "a unix socket",
                "unix:///run/redis.sock",
                RedisUrlError::Scheme,
            ),
            (
                "valkey's scheme",
                "valkey://redis:6379",
                RedisUrlError::Scheme,
            ),
            ("no scheme", "127.0.0.1:6379", RedisUrlError::Scheme),
            (
                "certificate checks off",
                "rediss://redis:6379/#insecure",
                RedisUrlError::Insecure,
            ),
        ];
        for (name, text, expected) in cases {
            assert_eq!(RedisUrl::parse(text), Err(expected), "{name}");
        }
        for (name, text) in [
            (
                "a database that is not a number",
                "redis://u:hunter2@redis:6379/zero",
            ),
            (
                "a port that is not a number",
                "redis://u:hunter2@redis:port/0",
            ),
            ("no host", "redis://"),
        ] {
            let error = RedisUrl::parse(text).expect_err(name);
            assert!(
                matches!(error, RedisUrlError::Unparsable { .. }),
                "{name}: {error:?}"
            );
            assert!(!error.to_string().contains("hunter2"), "{name}: {error}");
        }
    }
}
