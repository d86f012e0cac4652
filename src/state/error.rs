//! Why the store could not open, and why a durable write was not acknowledged.

use std::fmt;
use std::path::PathBuf;

/// Why the store could not open. Display names the file and, for corruption, the byte offset.
#[derive(Debug)]
pub enum OpenError {
    /// A file or the directory could not be read, created or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another store (in this or another process) holds the directory's lock.
    Locked { path: PathBuf },
    /// A file's content is damaged somewhere other than a torn last record: starting would lose
    /// or invent state, so we refuse.
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    /// The configured Redis could not be reached (its message names it, password redacted).
    Redis(crate::state::redis::ConnectError),
    /// Redis answered the connection but reading the state from it failed.
    RedisRead {
        /// The server, password redacted.
        target: String,
        source: redis::RedisError,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io { path, source } => write!(f, "state: {}: {source}", path.display()),
            OpenError::Locked { path } => write!(
                f,
                "state: {} is locked by another running casegate (one store per directory)",
                path.display()
            ),
            OpenError::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "state: {} is corrupt at byte offset {offset}: {reason}; refusing to start \
                 (restore the directory from a backup or remove the damaged file knowingly)",
                path.display()
            ),
            OpenError::Redis(error) => write!(f, "state: {error}"),
            OpenError::RedisRead { target, source } => {
                write!(
                    f,
                    "state: cannot read the shared state from Redis at {target}: {source}"
                )
            }
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { source, .. } => Some(source),
            OpenError::Redis(error) => Some(error),
            OpenError::RedisRead { source, .. } => Some(source),
            OpenError::Locked { .. } | OpenError::Corrupt { .. } => None,
        }
    }
}

/// Why a durable write failed: the write is NOT acknowledged, the caller answers 503.
#[derive(Debug)]
pub enum StoreError {
    /// Writing or syncing the journal failed just now.
    Io(std::io::Error),
    /// An earlier write failed; the store refuses further writes until restarted, because the
    /// journal's tail is in an unknown state.
    Failed,
    /// The store is shutting down (its writer has stopped).
    Closed,
    /// One record would exceed the journal's frame limit.
    TooLarge { bytes: usize },
    /// Redis refused the write or could not be reached. Not permanent: the next write tries
    /// again on a fresh connection.
    Redis(redis::RedisError),
    /// Redis did not answer a write within this time; it may or may not have applied it.
    TimedOut { after: std::time::Duration },
    /// Redis answered something casegate did not ask for (another program's key, a bug).
    UnexpectedReply(&'static str),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(source) => write!(f, "state write failed: {source}"),
            StoreError::Failed => f.write_str(
                "state store refuses writes after an earlier write failure; restart to recover",
            ),
            StoreError::Closed => f.write_str("state store is closed"),
            StoreError::TooLarge { bytes } => {
                write!(f, "state record of {bytes} bytes exceeds the frame limit")
            }
            StoreError::Redis(error) => write!(f, "shared state (Redis) write failed: {error}"),
            StoreError::TimedOut { after } => write!(
                f,
                "shared state (Redis) did not answer a write within {}s",
                after.as_secs()
            ),
            StoreError::UnexpectedReply(reason) => {
                write!(f, "shared state (Redis) answered unexpectedly: {reason}")
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(source) => Some(source),
            StoreError::Redis(source) => Some(source),
            StoreError::Failed
            | StoreError::Closed
            | StoreError::TooLarge { .. }
            | StoreError::TimedOut { .. }
            | StoreError::UnexpectedReply(_) => None,
        }
    }
}
