//! The config file exactly as written in TOML: plain serde structs, one per table, each refusing
//! unknown keys. Optional keys stay `Option` here; defaults and meaning are applied in `mod.rs`.
//! Values that get checked later are `Spanned` so a problem can point at the value itself.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diagnostics::Diagnostics;

/// The top-level tables, each deserialized on its own so one broken table does not hide the
/// problems of the others. `None` means missing or broken, and the reason was already recorded.
#[derive(Debug, Default)]
pub struct RawConfig {
    pub server: Option<ServerSection>,
    pub upstream: Option<UpstreamSection>,
    pub keys: Option<KeysSection>,
    pub links: Option<Spanned<LinksSection>>,
    pub session: Option<SessionSection>,
    pub scopes: Option<Spanned<ScopesSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Spanned<String>,
    pub public_url: Spanned<String>,
    pub tls: Option<TlsSection>,
    pub limits: Option<LimitsSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub header_read_timeout: Option<Spanned<String>>,
    pub tls_handshake_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub max_headers: Option<Spanned<i64>>,
    pub max_body_bytes: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    pub url: Spanned<String>,
    pub passthrough: Option<bool>,
    pub connect_timeout: Option<Spanned<String>>,
    pub response_timeout: Option<Spanned<String>>,
    pub pool_idle_timeout: Option<Spanned<String>>,
    pub guest_headers: Option<BTreeMap<Spanned<String>, Spanned<SecretRef>>>,
}

/// Where a secret's text comes from: `{ env = "NAME" }`, `{ file = "path" }` or `{ value = "..." }`.
/// All three are optional here so that "none" and "several" get a clear message, not serde's.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a secret source: { env = \"NAME\" }, { file = \"path\" } or { value = \"...\" }"
)]
pub struct SecretRef {
    pub env: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub value: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    pub active: Spanned<String>,
    pub secrets: BTreeMap<Spanned<String>, Spanned<SecretRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinksSection {
    pub prefix: Spanned<String>,
    pub landing: Spanned<String>,
    pub default_ttl: Spanned<String>,
    pub max_ttl: Spanned<String>,
    pub case_pattern: Option<Spanned<String>>,
    pub clock_skew: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    pub cookie: Spanned<String>,
    pub ttl: Spanned<String>,
}

/// `[scopes.NAME]` tables by name.
pub type ScopesSection = BTreeMap<Spanned<String>, Spanned<ScopeSection>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSection {
    pub extends: Option<Vec<Spanned<String>>>,
    pub allow: Option<Vec<Spanned<String>>>,
    pub deny: Option<Vec<Spanned<String>>>,
    pub upgrade: Option<Vec<Spanned<String>>>,
    pub pin_language: Option<bool>,
}

const SECTIONS: [&str; 6] = ["server", "upstream", "keys", "links", "session", "scopes"];

impl RawConfig {
    /// Parses the document, recording every syntax error, then reads each top-level table on its
    /// own, recording unknown tables, missing ones and each table's first shape error.
    pub fn read(text: &str, diag: &mut Diagnostics<'_>) -> RawConfig {
        let (document, syntax_errors) = DeTable::parse_recoverable(text);
        for error in &syntax_errors {
            diag.syntax_error(error.span().unwrap_or(0..0), error.message());
        }
        let mut raw = RawConfig::default();
        let mut seen = Vec::new();
        for (key, value) in document.into_inner() {
            let name = key.get_ref().as_ref();
            seen.push(name.to_owned());
            match name {
                "server" => raw.server = section(name, value, diag),
                "upstream" => raw.upstream = section(name, value, diag),
                "keys" => raw.keys = section(name, value, diag),
                "links" => raw.links = section(name, value, diag),
                "session" => raw.session = section(name, value, diag),
                "scopes" => raw.scopes = section(name, value, diag),
                unknown => diag.error(
                    key.span(),
                    format_args!(
                        "unknown section `{unknown}`; expected one of {}",
                        SECTIONS.join(", ")
                    ),
                ),
            }
        }
        // A table whose header failed to parse is not missing, it is broken, and that is reported.
        if !diag.has_syntax_errors() {
            for missing in SECTIONS
                .iter()
                .filter(|name| !seen.iter().any(|seen| seen == *name))
            {
                diag.error(0..0, format_args!("missing section [{missing}]"));
            }
        }
        raw
    }
}

/// Deserializes one top-level table. serde stops at a table's first problem, which is why the
/// tables are read one at a time: each still reports its own.
fn section<'de, T: Deserialize<'de>>(
    name: &str,
    value: Spanned<DeValue<'de>>,
    diag: &mut Diagnostics<'_>,
) -> Option<T> {
    let table_span = value.span();
    T::deserialize(ValueDeserializer::from(value))
        .map_err(|error| {
            let span = error.span().unwrap_or(table_span);
            diag.error(
                span,
                format_args!("{}: {}", key_path(name, &error), error.message()),
            );
        })
        .ok()
}

/// The dotted path of the key an error is about (`server.limits.max_headers`). toml keeps the
/// path private and only shows it in `Display` (as "in `limits.max_headers`"), so it is read from
/// there.
fn key_path(section: &str, error: &toml::de::Error) -> String {
    let display = error.to_string();
    let inner = display
        .lines()
        .filter_map(|line| line.strip_prefix("in `")?.strip_suffix('`'))
        .next_back();
    match inner {
        Some(inner) => format!("{section}.{inner}"),
        None => section.to_owned(),
    }
}
