//! Building a [`Gateway`] snapshot from a validated config. Everything that can be wrong was caught
//! by validation; what remains here is conversion into the shapes the request path reads.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use http::uri::{Authority, Scheme};

use super::Gateway;
use super::settings::{LinkSettings, SessionSettings};
use crate::config::{Config, PublicScheme};
use crate::proxy::client::{ClientSettings, UpstreamClient};
use crate::proxy::response::PublicOrigin;
use crate::proxy::upstream::{Upstream, UpstreamError};

/// A validated config that still cannot become a gateway. Each variant names a check validation
/// should have made; seeing one is a bug worth reporting.
#[derive(Debug)]
pub enum BuildError {
    Upstream(UpstreamError),
    PublicHost,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Upstream(reason) => write!(f, "upstream.url: {reason}"),
            BuildError::PublicHost => {
                f.write_str("server.public_url: host is not a valid header value")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Upstream(error) => Some(error),
            BuildError::PublicHost => None,
        }
    }
}

impl Gateway {
    /// Builds the snapshot the request path reads. Cheap enough to run on every reload.
    pub fn build(config: &Config) -> Result<Gateway, BuildError> {
        let upstream = Upstream::new(&config.upstream.url, config.upstream.guest_headers.clone())
            .map_err(BuildError::Upstream)?;
        let client = UpstreamClient::new(&ClientSettings {
            connect_timeout: config.upstream.connect_timeout,
            response_timeout: config.upstream.response_timeout,
            pool_idle_timeout: config.upstream.pool_idle_timeout,
        });
        let public_url = &config.server.public_url;
        let public = PublicOrigin {
            scheme: match public_url.scheme() {
                PublicScheme::Https => Scheme::HTTPS,
                PublicScheme::Http => Scheme::HTTP,
            },
            authority: Authority::clone(public_url.authority()),
        };
        let public_host = HeaderValue::from_str(public_url.authority().as_str())
            .map_err(|_| BuildError::PublicHost)?;
        let links = &config.links;
        Ok(Gateway {
            keys: Arc::clone(&config.keys.ring),
            policy: Arc::clone(&config.policy),
            links: LinkSettings {
                prefix: links.prefix.clone(),
                landing: links.landing.clone(),
                default_ttl_secs: secs(links.default_ttl),
                max_ttl_secs: secs(links.max_ttl),
                clock_skew_secs: secs(links.clock_skew),
                case_grammar: links.case_grammar.clone(),
            },
            session: SessionSettings {
                cookie_name: config.session.cookie.clone(),
                ttl_secs: secs(config.session.ttl),
                secure: public_url.is_https(),
            },
            passthrough: config.upstream.passthrough,
            upstream,
            client,
            public,
            public_host,
            max_body_bytes: config.server.limits.max_body_bytes,
            tunnel_idle_timeout: config.server.limits.idle_timeout,
            language_pinned_scopes: config
                .scopes
                .iter()
                .filter(|scope| scope.pin_language)
                .map(|scope| scope.name.clone())
                .collect::<HashSet<String>>(),
            sharing_enabled: links.enabled,
        })
    }
}

fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
