//! Opening a reconnecting connection to the configured Redis. The share state uses it, and so
//! can anything else that keeps shared state there (the one-time-code store): one place decides
//! the timeouts and the retry policy, and every message names the server without its password.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::settings::RedisSettings;

/// One connection attempt (TCP, TLS, AUTH, SELECT) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A command that gets no answer within this time fails (and the connection is replaced).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Reconnect attempts a failing command waits for before it fails: a command fails within a few
/// seconds while Redis is away, so callers answer 503 quickly rather than hang.
const RETRIES: usize = 2;
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(1);
/// The whole first connection, retries included.
const FIRST_CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Why no connection to Redis could be made. Display names the server with its password
/// redacted, never the URL as written.
#[derive(Debug)]
pub enum ConnectError {
    /// The client refused the URL, the server could not be reached, or refused the credentials.
    Redis {
        target: String,
        source: redis::RedisError,
    },
    /// No connection within [`FIRST_CONNECT_DEADLINE`].
    TimedOut { target: String },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Redis { target, source } => {
                write!(f, "cannot connect to Redis at {target}: {source}")
            }
            ConnectError::TimedOut { target } => write!(
                f,
                "cannot connect to Redis at {target}: no connection within {}s",
                FIRST_CONNECT_DEADLINE.as_secs()
            ),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Redis { source, .. } => Some(source),
            ConnectError::TimedOut { .. } => None,
        }
    }
}

/// Connects to `settings.url` and returns a manager that reconnects by itself whenever a
/// command finds the connection broken. Commands sent through it while Redis is away fail
/// within a few seconds (no endless waiting). Fails if Redis cannot be reached now.
pub async fn connect(settings: &RedisSettings) -> Result<ConnectionManager, ConnectError> {
    connect_with(settings, RESPONSE_TIMEOUT).await
}

/// As [`connect`], with its own response timeout: the follower's blocking reads wait on the
/// server by design and need a longer one than ordinary commands, and a connection of their own
/// (a blocked read holds up every command behind it on the same connection).
pub(crate) async fn connect_with(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> Result<ConnectionManager, ConnectError> {
    let target = settings.url.redacted().to_owned();
    let client =
        redis::Client::open(settings.url.expose()).map_err(|source| ConnectError::Redis {
            target: target.clone(),
            source,
        })?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(RETRIES)
        .set_min_delay(RETRY_MIN_DELAY)
        .set_max_delay(RETRY_MAX_DELAY);
    match tokio::time::timeout(
        FIRST_CONNECT_DEADLINE,
        ConnectionManager::new_with_config(client, config),
    )
    .await
    {
        Ok(Ok(manager)) => Ok(manager),
        Ok(Err(source)) => Err(ConnectError::Redis { target, source }),
        Err(_) => Err(ConnectError::TimedOut { target }),
    }
}
