//! Building a [`Gateway`] snapshot from a validated config and the share state store. Everything
//! that can be wrong was caught by validation; what remains here is conversion into the shapes the
//! request path reads.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use http::uri::{Authority, Scheme};

use super::Gateway;
use super::mint::{LinkMinter, verify_scopes};
use super::session_cookies::CookieBase;
use super::settings::{LinkSettings, SessionSettings, secs};
use crate::config::{Config, PublicScheme, PublicUrl};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::policy::ScopeNameHasher;
use crate::proxy::client::ClientSettings;
use crate::proxy::pool::PoolLimits;
use crate::proxy::response::PublicOrigin;
use crate::proxy::upstream::{Upstream, UpstreamError};
use crate::state::StateStore;
use crate::verify::{CodeStore, MemoryCodeStore};

/// A validated config that still cannot become a gateway. Each variant names a check validation
/// should have made; seeing one is a bug worth reporting.
#[derive(Debug)]
pub enum BuildError {
    Upstream(UpstreamError),
    PublicHost,
    /// A scope verifies addresses but no mailer was given to send the codes.
    NoMailer,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Upstream(reason) => write!(f, "upstream.url: {reason}"),
            BuildError::PublicHost => {
                f.write_str("server.public_url: host is not a valid header value")
            }
            BuildError::NoMailer => {
                f.write_str("a scope has verify_email = true but there is no [mail] to send codes")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Upstream(error) => Some(error),
            BuildError::PublicHost | BuildError::NoMailer => None,
        }
    }
}

/// The parts of a gateway that can fail to build, made from the config alone.
struct Checked {
    upstream: Upstream,
    public_host: HeaderValue,
}

impl Checked {
    fn new(config: &Config) -> Result<Checked, BuildError> {
        let upstream = Upstream::new(&config.upstream.url, config.upstream.guest_headers.clone())
            .map_err(BuildError::Upstream)?
            .forwarding(config.upstream.guest_forward_headers.clone());
        let public_host = HeaderValue::from_str(config.server.public_url.authority().as_str())
            .map_err(|_| BuildError::PublicHost)?;
        Ok(Checked {
            upstream,
            public_host,
        })
    }
}

impl Gateway {
    /// Runs every check [`Gateway::build`] makes, without a store: `casegate check` has no side
    /// effects, and opening the store creates and locks its directory.
    pub fn check(config: &Config) -> Result<(), BuildError> {
        Checked::new(config).map(drop)
    }

    /// Builds the first snapshot the request path reads, with codes and counters kept in this
    /// process. The store and `metrics` outlive it: later snapshots come from
    /// [`Gateway::rebuild`] and share them.
    pub fn build(
        config: &Config,
        store: Arc<StateStore>,
        mailer: Option<Mailer>,
        metrics: Arc<Metrics>,
    ) -> Result<Gateway, BuildError> {
        Gateway::build_with_codes(
            config,
            store,
            mailer,
            metrics,
            Arc::new(MemoryCodeStore::new()),
        )
    }

    /// Like [`Gateway::build`], with the verification codes, rate-limit counters and invitation
    /// cooldowns kept in `codes` (e.g. a [`crate::verify::RedisCodeStore`] shared by replicas).
    /// Later snapshots share it too.
    pub fn build_with_codes(
        config: &Config,
        store: Arc<StateStore>,
        mailer: Option<Mailer>,
        metrics: Arc<Metrics>,
        codes: Arc<dyn CodeStore>,
    ) -> Result<Gateway, BuildError> {
        Gateway::build_sharing(config, mailer, store, metrics, codes)
    }

    /// Builds the snapshot a reload swaps in: from a new config and mailer, with this snapshot's
    /// store, metrics and pending codes, so counters keep counting and a guest halfway through
    /// email verification can still type the code already sent.
    pub fn rebuild(&self, config: &Config, mailer: Option<Mailer>) -> Result<Gateway, BuildError> {
        let mut gateway = Gateway::build_sharing(
            config,
            mailer,
            Arc::clone(&self.store),
            Arc::clone(&self.metrics),
            Arc::clone(&self.codes),
        )?;
        // `server.limits` needs a restart (the listener holds the rest of them), so the limits the
        // request path reads stay as they were too: one set of limits, never half of each.
        gateway.max_body_bytes = self.max_body_bytes;
        gateway.tunnel_idle_timeout = self.tunnel_idle_timeout;
        Ok(gateway)
    }

    fn build_sharing(
        config: &Config,
        mailer: Option<Mailer>,
        store: Arc<StateStore>,
        metrics: Arc<Metrics>,
        codes: Arc<dyn CodeStore>,
    ) -> Result<Gateway, BuildError> {
        let Checked {
            upstream,
            public_host,
        } = Checked::new(config)?;
        let verify_scopes = verify_scopes(config);
        if !verify_scopes.is_empty() && mailer.is_none() {
            return Err(BuildError::NoMailer);
        }
        let client = ClientSettings {
            connect_timeout: config.upstream.connect_timeout,
            response_timeout: config.upstream.response_timeout,
            pool: PoolLimits {
                idle_timeout: config.upstream.pool_idle_timeout,
                max_requests: config.upstream.pool_max_requests,
                max_age: config.upstream.pool_max_age,
            },
        };
        Ok(Gateway {
            keys: Arc::clone(&config.keys.ring),
            policy: Arc::clone(&config.policy),
            links: LinkSettings::new(&config.links, &config.scopes),
            session: SessionSettings {
                cookie_name: CookieBase::new(&config.session.cookie),
                ttl_secs: secs(config.session.ttl),
                secure: config.server.public_url.is_https(),
            },
            passthrough: config.upstream.passthrough,
            upstream,
            client,
            public: public_origin(&config.server.public_url),
            public_host,
            max_body_bytes: config.server.limits.max_body_bytes,
            tunnel_idle_timeout: config.server.limits.idle_timeout,
            language_pinned_scopes: config
                .scopes
                .iter()
                .filter(|scope| scope.pin_language)
                .map(|scope| scope.name.clone())
                .collect::<HashSet<String, ScopeNameHasher>>(),
            sharing_enabled: config.links.enabled,
            minter: LinkMinter::new(config),
            templates: Arc::clone(&config.pages.templates),
            store,
            verify_scopes: Arc::new(verify_scopes),
            verify: config.verify.clone(),
            codes,
            mailer,
            login_url: config.links.login_url.clone(),
            metrics,
            trusted_proxies: config.server.trusted_proxies.clone(),
            hsts: config.server.hsts.clone(),
        })
    }
}

/// The public origin as the response rewriting reads it.
pub(super) fn public_origin(url: &PublicUrl) -> PublicOrigin {
    PublicOrigin {
        scheme: match url.scheme() {
            PublicScheme::Https => Scheme::HTTPS,
            PublicScheme::Http => Scheme::HTTP,
        },
        authority: Authority::clone(url.authority()),
    }
}
