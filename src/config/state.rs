//! `[state]`: where shares, revocations and use counts are kept. `backend = "embedded"` (the
//! default) keeps them in a directory of this machine (`path`); `backend = "redis"` shares them
//! with every gateway on the same Redis (`url`), each serving from its own copy in memory and
//! refusing guests once that copy is older than `max_staleness`.
//!
//! A key that only one backend reads is refused with the other, so an operator who switches
//! backends is told what no longer applies instead of believing it still does.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::file::{StateSection, UrlSource};
use super::{Bounds, Validator, secs};
use crate::state::redis::{
    DEFAULT_KEY_PREFIX, DEFAULT_MAX_STALENESS, DEFAULT_RESYNC_INTERVAL, RedisSettings, RedisUrl,
};

const DEFAULT_STATE_PATH: &str = "var/casegate";
const DEFAULT_USE_FLUSH_INTERVAL: Duration = secs(2);
const DEFAULT_COMPACT_AFTER_BYTES: u64 = 64 * 1024 * 1024;
/// Use records wait at most this long in memory; a crash loses at most one interval of them.
const FLUSH_BOUNDS: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: secs(5 * 60),
};
/// Below a second the follower's own round trips would count as silence; above an hour a
/// revoke could go unenforced for longer than anyone would accept.
const STALENESS_BOUNDS: Bounds = Bounds {
    min: secs(1),
    max: secs(3600),
};
const RESYNC_BOUNDS: Bounds = Bounds {
    min: secs(1),
    max: secs(3600),
};
const MAX_KEY_PREFIX_LEN: usize = 64;

/// Where and how the share state (revocations, share records) is kept.
#[derive(Clone, Debug)]
pub struct State {
    pub backend: StateBackend,
    /// The embedded store's directory, resolved against the config file's directory. Created
    /// when the store opens, not at validation. Not used by the Redis backend.
    pub path: PathBuf,
    /// How often batched use records are written (both backends).
    pub use_flush_interval: Duration,
    /// Compact once the journal holds this many bytes (embedded only).
    pub compact_after_bytes: u64,
}

/// `[state] backend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateBackend {
    /// A journal and snapshots in `path`: one gateway.
    Embedded,
    /// Shared through Redis by every gateway configured with the same URL and key prefix.
    Redis(RedisSettings),
}

// === impl Validator ===

impl Validator<'_, '_> {
    pub(super) fn state(&mut self, raw: StateSection) -> Option<State> {
        let redis = match raw.backend.as_ref().map(|b| (b, b.get_ref().as_str())) {
            None | Some((_, "embedded")) => Some(false),
            Some((_, "redis")) => Some(true),
            Some((backend, other)) => {
                self.diag.error(
                    backend.span(),
                    format_args!("state.backend: {other:?} is not \"embedded\" or \"redis\""),
                );
                None
            }
        };
        let path = match &raw.path {
            Some(path) if path.get_ref().trim().is_empty() => {
                self.diag
                    .error(path.span(), "state.path: is empty; name a directory");
                None
            }
            Some(path) => Some(self.base_dir.join(path.get_ref())),
            None => Some(self.base_dir.join(DEFAULT_STATE_PATH)),
        };
        let use_flush_interval = self.optional_duration(
            "state.use_flush_interval",
            raw.use_flush_interval.as_ref(),
            DEFAULT_USE_FLUSH_INTERVAL,
            &FLUSH_BOUNDS,
        );
        let compact_after_bytes = self.count(
            "state.compact_after_bytes",
            raw.compact_after_bytes.as_ref(),
            usize::try_from(DEFAULT_COMPACT_AFTER_BYTES).unwrap_or(usize::MAX),
            64 * 1024..=1 << 40,
        );
        let backend = match redis {
            Some(true) => {
                self.embedded_only(&raw);
                self.redis(&raw).map(StateBackend::Redis)
            }
            Some(false) => {
                self.redis_only(&raw);
                Some(StateBackend::Embedded)
            }
            None => None,
        };
        Some(State {
            backend: backend?,
            path: path?,
            use_flush_interval: use_flush_interval?,
            compact_after_bytes: u64::try_from(compact_after_bytes?).ok()?,
        })
    }

    /// Keys of the embedded store, refused with Redis: the state is not in a directory.
    fn embedded_only(&mut self, raw: &StateSection) {
        self.refuse_keys(
            &[
                ("state.path", raw.path.as_ref().map(Spanned::span)),
                (
                    "state.compact_after_bytes",
                    raw.compact_after_bytes.as_ref().map(Spanned::span),
                ),
            ],
            "not used with backend = \"redis\" (the state lives in Redis); remove it",
        );
    }

    /// Keys of the Redis backend, refused with the embedded store.
    fn redis_only(&mut self, raw: &StateSection) {
        self.refuse_keys(
            &[
                ("state.url", raw.url.as_ref().map(Spanned::span)),
                (
                    "state.key_prefix",
                    raw.key_prefix.as_ref().map(Spanned::span),
                ),
                (
                    "state.max_staleness",
                    raw.max_staleness.as_ref().map(Spanned::span),
                ),
                (
                    "state.resync_interval",
                    raw.resync_interval.as_ref().map(Spanned::span),
                ),
            ],
            "only used with backend = \"redis\"; set that too, or remove it",
        );
    }

    /// One problem per key that is present (has a span), each saying `why`.
    fn refuse_keys(&mut self, keys: &[(&str, Option<std::ops::Range<usize>>)], why: &str) {
        for (field, span) in keys {
            if let Some(span) = span {
                self.diag
                    .error(span.clone(), format_args!("{field}: {why}"));
            }
        }
    }

    fn redis(&mut self, raw: &StateSection) -> Option<RedisSettings> {
        let url = match &raw.url {
            Some(url) => self.redis_url(url),
            None => {
                let span = raw.backend.as_ref().map_or(0..0, Spanned::span);
                self.diag.error(
                    span,
                    "state: backend = \"redis\" needs url = \"redis://host:6379/0\" \
                     (or url = { env = \"NAME\" } to keep a password out of the file)",
                );
                None
            }
        };
        let key_prefix = match &raw.key_prefix {
            Some(prefix) => self.key_prefix(prefix),
            None => Some(DEFAULT_KEY_PREFIX.to_owned()),
        };
        let max_staleness = self.optional_duration(
            "state.max_staleness",
            raw.max_staleness.as_ref(),
            DEFAULT_MAX_STALENESS,
            &STALENESS_BOUNDS,
        );
        let resync_interval = self.optional_duration(
            "state.resync_interval",
            raw.resync_interval.as_ref(),
            DEFAULT_RESYNC_INTERVAL,
            &RESYNC_BOUNDS,
        );
        Some(RedisSettings {
            url: url?,
            key_prefix: key_prefix?,
            max_staleness: max_staleness?,
            resync_interval: resync_interval?,
        })
    }

    /// The URL as written or read from its secret source. Problems never quote the URL: it
    /// may carry a password.
    fn redis_url(&mut self, raw: &Spanned<UrlSource>) -> Option<RedisUrl> {
        let parsed = match raw.get_ref() {
            UrlSource::Text(text) => RedisUrl::parse(text),
            UrlSource::Secret(source) => {
                let source = Spanned::new(raw.span(), source.clone());
                let text = self.secret("state.url", &source)?;
                RedisUrl::parse(text.expose())
            }
        };
        match parsed {
            Ok(url) => Some(url),
            Err(error) => {
                self.diag
                    .error(raw.span(), format_args!("state.url: {error}"));
                None
            }
        }
    }

    fn key_prefix(&mut self, raw: &Spanned<String>) -> Option<String> {
        let prefix = raw.get_ref();
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_-:.{}".contains(c);
        if prefix.is_empty() || prefix.len() > MAX_KEY_PREFIX_LEN || !prefix.chars().all(allowed) {
            self.diag.error(
                raw.span(),
                format_args!(
                    "state.key_prefix: {prefix:?} must be 1 to {MAX_KEY_PREFIX_LEN} characters of \
                     A-Z a-z 0-9 _ - : . {{ }}, e.g. \"casegate:\""
                ),
            );
            return None;
        }
        Some(prefix.clone())
    }
}
