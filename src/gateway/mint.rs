//! Minting share links: the command line's `mint`, the admin API (through [`Gateway::mint_link`])
//! and the demo turn "share case X with scope Y for T" into a signed URL here, under the same rules
//! `verify` applies.
//!
//! [`LinkMinter`] needs only the config, not the state store, so `casegate mint` can sign links
//! while a gateway holds the store's lock.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Gateway;
use super::build::public_origin;
use super::settings::LinkSettings;
use crate::config::Config;
use crate::policy::Policy;
use crate::proxy::response::PublicOrigin;
use crate::share::KeyRing;
use crate::share::token::{self, LinkClaims};

/// What signing a link needs from the config: keys, scopes, link rules and the public origin.
#[derive(Clone)]
pub struct LinkMinter {
    keys: Arc<KeyRing>,
    policy: Arc<Policy>,
    links: LinkSettings,
    public: PublicOrigin,
    /// Scopes with `verify_email`: their links must name the address the code goes to.
    verify_scopes: Arc<HashSet<String>>,
}

/// What the sharer asks for.
#[derive(Debug)]
pub struct ShareRequest<'a> {
    pub case: &'a str,
    pub scope: &'a str,
    /// `None`: the configured `default_ttl`.
    pub ttl: Option<Duration>,
    pub email: Option<&'a str>,
    pub lang: Option<&'a str>,
}

/// A signed link and what it grants.
#[derive(Debug, serde::Serialize)]
pub struct MintedLink {
    pub url: String,
    pub token: String,
    pub share_id: String,
    pub case: String,
    pub scope: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Why a link was not minted.
#[derive(Debug, PartialEq, Eq)]
pub enum MintError {
    UnknownScope,
    BadCase,
    TtlTooLong {
        max_secs: i64,
    },
    TtlZero,
    BadEmail,
    /// The scope verifies the recipient's address (`verify_email`), so the link needs one.
    EmailRequired,
    BadLang,
    /// The system's random number generator failed: no share id can be made.
    NoRandomness,
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MintError::UnknownScope => f.write_str("no such scope in the config"),
            MintError::BadCase => f.write_str("case id does not match the configured case_pattern"),
            MintError::TtlTooLong { max_secs } => {
                write!(f, "ttl is longer than links.max_ttl ({max_secs} s)")
            }
            MintError::TtlZero => f.write_str("ttl must be at least one second"),
            MintError::BadEmail => f.write_str("email is not a plausible address"),
            MintError::EmailRequired => f.write_str(
                "the scope verifies the recipient's address (verify_email), so email is required",
            ),
            MintError::BadLang => f.write_str("lang is not a language tag such as en or sv-SE"),
            MintError::NoRandomness => f.write_str("the system random number generator failed"),
        }
    }
}

impl std::error::Error for MintError {}

impl Gateway {
    /// Signs a link with the active key; see [`LinkMinter::mint_link`].
    pub fn mint_link(&self, request: &ShareRequest<'_>, now: i64) -> Result<MintedLink, MintError> {
        self.minter.mint_link(request, now)
    }

    /// The templates of this config (recipient pages and emails); the admin API writes
    /// invitations with them.
    pub fn templates(&self) -> &crate::pages::Templates {
        &self.templates
    }

    /// Re-signs recorded claims with the active key; see [`LinkMinter::sign`].
    pub fn sign_link(&self, claims: LinkClaims) -> MintedLink {
        self.minter.sign(claims)
    }

    /// Whether `scope` names a configured scope (the admin API tells "no such scope" apart from
    /// "not yours to share").
    pub fn scope_exists(&self, scope: &str) -> bool {
        self.minter.scope_exists(scope)
    }

    /// Whether `case` matches `links.case_pattern`, as the case of every link must.
    pub fn is_valid_case(&self, case: &str) -> bool {
        self.minter.is_valid_case(case)
    }
}

impl LinkMinter {
    /// The minter for a validated config. Infallible: everything it reads was checked.
    pub fn new(config: &Config) -> LinkMinter {
        LinkMinter {
            keys: Arc::clone(&config.keys.ring),
            policy: Arc::clone(&config.policy),
            links: LinkSettings::new(&config.links, &config.scopes),
            public: public_origin(&config.server.public_url),
            verify_scopes: Arc::new(verify_scopes(config)),
        }
    }

    pub fn scope_exists(&self, scope: &str) -> bool {
        self.policy.scope_exists(scope)
    }

    pub fn is_valid_case(&self, case: &str) -> bool {
        self.links.case_grammar.matches(case)
    }

    /// Signs a link with the active key. Refuses anything `verify` would refuse later, so a minted
    /// link always opens (until it expires or is revoked).
    pub fn mint_link(&self, request: &ShareRequest<'_>, now: i64) -> Result<MintedLink, MintError> {
        if !self.scope_exists(request.scope) {
            return Err(MintError::UnknownScope);
        }
        if !self.is_valid_case(request.case) {
            return Err(MintError::BadCase);
        }
        let ttl_secs = match request.ttl {
            Some(ttl) => i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            None => self.links.default_ttl_secs,
        };
        if ttl_secs <= 0 {
            return Err(MintError::TtlZero);
        }
        if ttl_secs > self.links.max_ttl_secs {
            return Err(MintError::TtlTooLong {
                max_secs: self.links.max_ttl_secs,
            });
        }
        if request.email.is_some_and(|email| !token::is_email(email)) {
            return Err(MintError::BadEmail);
        }
        if request.email.is_none() && self.verify_scopes.contains(request.scope) {
            return Err(MintError::EmailRequired);
        }
        if request.lang.is_some_and(|lang| !token::is_lang_tag(lang)) {
            return Err(MintError::BadLang);
        }
        let share_id = token::new_share_id().map_err(|_| MintError::NoRandomness)?;
        let claims = LinkClaims {
            share_id,
            case: request.case.to_owned(),
            scope: request.scope.to_owned(),
            issued_at: now,
            expires_at: now + ttl_secs,
            not_before: None,
            email: request.email.map(str::to_owned),
            lang: request.lang.map(str::to_owned),
        };
        Ok(self.sign(claims))
    }

    /// Signs `claims` as they are, with the active key: a resent invitation carries the recorded
    /// share's own id, case, scope and times, so revoking it still works and its life is not
    /// extended. The claims must come from a share this gateway minted or accepted.
    pub fn sign(&self, claims: LinkClaims) -> MintedLink {
        let signed = token::mint(&self.keys, &claims);
        MintedLink {
            url: format!(
                "{}{}{}",
                self.public.as_url_prefix(),
                self.links.prefix,
                signed
            ),
            token: signed,
            share_id: claims.share_id,
            case: claims.case,
            scope: claims.scope,
            expires_at: claims.expires_at,
        }
    }
}

/// The names of the scopes whose guests verify their address.
pub(super) fn verify_scopes(config: &Config) -> HashSet<String> {
    config
        .scopes
        .iter()
        .filter(|scope| scope.verify_email)
        .map(|scope| scope.name.clone())
        .collect()
}
