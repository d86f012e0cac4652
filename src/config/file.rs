//! The config file exactly as written in TOML: plain serde structs, one per table, each refusing
//! unknown keys. Optional keys stay `Option` here; defaults and meaning are applied in `mod.rs`.
//! Values that get checked later are `Spanned` so a problem can point at the value itself.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diagnostics::Diagnostics;
use super::unknown_keys::{MAX_UNKNOWN_KEYS, is_unknown_key, remove_key_at};

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
    /// Optional: without it, no admin API is served.
    pub admin: Option<Spanned<AdminSection>>,
    /// Optional: every key has a default.
    pub state: Option<StateSection>,
    /// Optional: every key has a default.
    pub verify: Option<VerifySection>,
    /// Optional: without it, no mail is sent (invitations are refused).
    pub mail: Option<Spanned<MailSection>>,
    /// Optional: without it, the embedded pages and emails are used.
    pub pages: Option<PagesSection>,
    /// Optional: every key has a default.
    pub log: Option<LogSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Spanned<String>,
    pub public_url: Spanned<String>,
    pub tls: Option<TlsSection>,
    pub limits: Option<LimitsSection>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    pub workers: Option<Spanned<i64>>,
    /// `true` (the default max-age), `false` (no header) or a max-age such as `"180d"`.
    pub hsts: Option<Spanned<HstsSetting>>,
    /// Whether a worker may send its small writes together through io_uring (default `true`).
    pub io_uring: Option<bool>,
    /// The congestion control of connections with this host (default `"reno"`; `"system"`).
    pub loopback_congestion_control: Option<Spanned<String>>,
}

/// `[server] hsts` as written: a switch or a max-age.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum HstsSetting {
    Switch(bool),
    MaxAge(String),
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
    pub max_connections_per_address: Option<Spanned<i64>>,
    pub body_read_timeout: Option<Spanned<String>>,
    pub body_min_rate: Option<Spanned<i64>>,
    pub h2_max_concurrent_streams: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    pub url: Spanned<String>,
    pub passthrough: Option<bool>,
    pub connect_timeout: Option<Spanned<String>>,
    pub response_timeout: Option<Spanned<String>>,
    pub pool_idle_timeout: Option<Spanned<String>>,
    pub pool_max_requests: Option<Spanned<i64>>,
    pub pool_max_age: Option<Spanned<String>>,
    pub guest_headers: Option<BTreeMap<Spanned<String>, Spanned<SecretRef>>>,
    pub guest_forward_headers: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Where a secret's text comes from: `{ env = "NAME" }`, `{ file = "path" }` or `{ value = "..." }`.
/// All three are optional here so that "none" and "several" get a clear message, not serde's.
///
/// `Deserialize` is written by hand: serde's own messages quote what they refused
/// (`invalid type: string "a2V5..."`), and what an operator writes in place of `{ env = ... }` is
/// very often the secret itself. Every refusal here is a [`SecretShapeError`], which quotes nothing.
#[derive(Clone, Debug)]
pub struct SecretRef {
    pub env: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub value: Option<Spanned<String>>,
    /// Whether a key other than `env`, `file` or `value` was written. Its name is not kept: what
    /// is written there is often the secret itself.
    pub unknown_key: bool,
}

/// Why a secret source has the wrong shape. No variant carries text from the file, so every
/// message can be shown whatever was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretShapeError {
    /// A string, number, array or anything else where `{ env = ... }` belongs.
    NotASource,
    /// `env`, `file` or `value` given twice.
    DuplicateField,
    /// `env`, `file` or `value` holding something other than a string; the error's key path
    /// names which.
    NotAString,
}

/// Every [`SecretShapeError`], so an error from inside a secret table can be recognised as one
/// of ours: anything else is serde's text, which may quote the secret.
const SECRET_SHAPE_ERRORS: [SecretShapeError; 3] = [
    SecretShapeError::NotASource,
    SecretShapeError::DuplicateField,
    SecretShapeError::NotAString,
];

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
    pub default_ttl: Option<Spanned<String>>,
    pub max_ttl: Option<Spanned<String>>,
    pub case_pattern: Option<Spanned<String>>,
    pub clock_skew: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    pub login_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    pub cookie: Spanned<String>,
    pub ttl: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    pub listen: Spanned<String>,
    pub max_body_bytes: Option<Spanned<i64>>,
    pub clients: Option<Vec<Spanned<AdminClientSection>>>,
}

/// One `[[admin.clients]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminClientSection {
    pub name: Spanned<String>,
    pub token: Spanned<SecretRef>,
    pub scopes: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// `"embedded"` (the default) or `"redis"`.
    pub backend: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub use_flush_interval: Option<Spanned<String>>,
    pub compact_after_bytes: Option<Spanned<i64>>,
    /// Redis only: the server, as text or from a secret source (it may carry a password).
    pub url: Option<Spanned<UrlSource>>,
    pub key_prefix: Option<Spanned<String>>,
    pub max_staleness: Option<Spanned<String>>,
    pub resync_interval: Option<Spanned<String>>,
}

/// A URL that may carry credentials: written out (`"redis://..."`), or read from a secret source
/// (`{ env = "NAME" }`, `{ file = "path" }`) so the password need not sit in the config file.
#[derive(Debug)]
pub enum UrlSource {
    Text(String),
    Secret(SecretRef),
}

/// `[log]`: the access log and the process log's level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: Option<Spanned<String>>,
    pub level: Option<Spanned<String>>,
    pub access: Option<Spanned<String>>,
    pub buffer: Option<Spanned<i64>>,
}

/// `[mail]`: how invitations (and codes) are sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    pub smtp: Option<Spanned<String>>,
    pub from: Spanned<String>,
    pub username: Option<Spanned<SecretRef>>,
    pub password: Option<Spanned<SecretRef>>,
    pub mode: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub ca: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagesSection {
    /// Override templates: `<dir>/<lang>/<name>.html|.txt` and `<dir>/<lang>/messages.toml`.
    pub dir: Option<Spanned<String>>,
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
    pub verify_email: Option<bool>,
    pub landing: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    pub code_ttl: Option<Spanned<String>>,
    pub max_attempts: Option<Spanned<i64>>,
    pub resend_cooldown: Option<Spanned<String>>,
    pub max_codes_per_hour: Option<Spanned<i64>>,
    pub max_sends_per_address_per_hour: Option<Spanned<i64>>,
    pub max_failures_per_address_per_hour: Option<Spanned<i64>>,
}

/// The tables whose values are secrets, by section: errors inside them are shown only when they are
/// a [`SecretShapeError`].
const SECRET_TABLES: [(&str, &str); 2] = [("keys", "secrets"), ("upstream", "guest_headers")];

/// Tables every config must have.
const REQUIRED_SECTIONS: [&str; 6] = ["server", "upstream", "keys", "links", "session", "scopes"];
/// Every table a config may have, in the order they are listed in messages.
const SECTIONS: [&str; 12] = [
    "server", "upstream", "keys", "links", "session", "scopes", "admin", "state", "verify", "mail",
    "pages", "log",
];

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
                "admin" => raw.admin = section(name, value, diag),
                "state" => raw.state = section(name, value, diag),
                "verify" => raw.verify = section(name, value, diag),
                "mail" => raw.mail = section(name, value, diag),
                "pages" => raw.pages = section(name, value, diag),
                "log" => raw.log = section(name, value, diag),
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
            for missing in REQUIRED_SECTIONS
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
/// tables are read one at a time: each still reports its own. An unknown key is reported and taken
/// out, and the table read again, so it hides neither other unknown keys nor the checks that run
/// on the table's values; any other problem ends the table.
fn section<'de, T: Deserialize<'de>>(
    name: &str,
    mut value: Spanned<DeValue<'de>>,
    diag: &mut Diagnostics<'_>,
) -> Option<T> {
    let table_span = value.span();
    let secret_spans = secret_spans(name, &value);
    let mut removed = 0;
    loop {
        let error = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(section) => return Some(section),
            Err(error) => error,
        };
        let span = error.span().unwrap_or_else(|| table_span.clone());
        report_shape_error(name, &error, span.clone(), &secret_spans, diag);
        let recovered = removed < MAX_UNKNOWN_KEYS
            && is_unknown_key(&error)
            && remove_key_at(value.get_mut(), span.start);
        if !recovered {
            return None;
        }
        removed += 1;
    }
}

/// Records why a table did not deserialize, at `span`, never quoting what a secret table holds.
fn report_shape_error(
    name: &str,
    error: &toml::de::Error,
    span: Range<usize>,
    secret_spans: &[Range<usize>],
    diag: &mut Diagnostics<'_>,
) {
    let path = key_path(name, error);
    let message = error.message();
    let in_secret_table = is_secret_path(&path)
        || secret_spans
            .iter()
            .any(|secret| secret.contains(&span.start));
    let ours = SECRET_SHAPE_ERRORS
        .iter()
        .any(|shape| shape.to_string() == message);
    if in_secret_table && !ours {
        // serde's text for a value it refused quotes the value, which here is a secret.
        diag.error(
            span,
            format_args!(
                "{path}: must be a table of secret sources like k1 = {{ env = \"NAME\" }} \
                 (what was written is not shown: it may be the secret)"
            ),
        );
    } else {
        diag.error(span, format_args!("{path}: {message}"));
    }
}

/// Whether a dotted key path is a secret table or inside one.
fn is_secret_path(path: &str) -> bool {
    SECRET_TABLES.iter().any(|(section, table)| {
        path.strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.strip_prefix(table))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// The spans of a section's secret table and of every key and value in it, so an error is known
/// to come from inside one even when toml gives it no key path.
fn secret_spans(section: &str, value: &Spanned<DeValue<'_>>) -> Vec<Range<usize>> {
    let DeValue::Table(table) = value.get_ref() else {
        return Vec::new();
    };
    let mut spans = Vec::new();
    let tables = SECRET_TABLES
        .iter()
        .filter(|(owner, _)| *owner == section)
        .map(|(_, table)| *table);
    for table_name in tables {
        for (key, secrets) in table
            .iter()
            .filter(|(key, _)| key.get_ref().as_ref() == table_name)
        {
            spans.push(key.span());
            spans.push(secrets.span());
            if let DeValue::Table(entries) = secrets.get_ref() {
                for (entry_key, entry) in entries {
                    spans.push(entry_key.span());
                    spans.push(entry.span());
                }
            }
        }
    }
    spans
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

// === impl UrlSource ===

impl<'de> Deserialize<'de> for UrlSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UrlSourceVisitor)
    }
}

/// A string, or a table read as a [`SecretRef`]. Nothing it refuses is quoted: the text may be
/// a URL with its password.
struct UrlSourceVisitor;

/// Why a URL source has the wrong shape.
const NOT_A_URL_SOURCE: &str = "must be a URL like \"redis://host:6379/0\" or a secret source \
     like { env = \"NAME\" } (what was written is not shown: it may hold a password)";

impl<'de> Visitor<'de> for UrlSourceVisitor {
    type Value = UrlSource;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NOT_A_URL_SOURCE)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<UrlSource, E> {
        Ok(UrlSource::Text(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<UrlSource, E> {
        Ok(UrlSource::Text(text))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UrlSource, A::Error> {
        SecretRefVisitor.visit_map(map).map(UrlSource::Secret)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<UrlSource, E> {
        Err(E::custom(NOT_A_URL_SOURCE))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<UrlSource, E> {
        Err(E::custom(NOT_A_URL_SOURCE))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<UrlSource, E> {
        Err(E::custom(NOT_A_URL_SOURCE))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<UrlSource, E> {
        Err(E::custom(NOT_A_URL_SOURCE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<UrlSource, A::Error> {
        Err(de::Error::custom(NOT_A_URL_SOURCE))
    }
}

// === impl SecretRef ===

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SecretRefVisitor)
    }
}

/// The one key of the map toml hands a visitor for a date or time (toml_datetime keeps the name
/// private). Read as a key it would pass for an unknown key; it is a value that is not a table.
/// `shape_errors_never_quote_what_was_written` fails should toml rename it.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

/// Accepts a table of `env`, `file` and `value`; every other shape is [`SecretShapeError::NotASource`].
struct SecretRefVisitor;

/// A refusal that never quotes what it refused.
fn refuse<E: de::Error, T>(shape: SecretShapeError) -> Result<T, E> {
    Err(E::custom(shape))
}

impl<'de> Visitor<'de> for SecretRefVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{ env = \"NAME\" }, { file = \"path\" } or { value = \"...\" }")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        let mut source = SecretRef {
            env: None,
            file: None,
            value: None,
            unknown_key: false,
        };
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "env" => &mut source.env,
                "file" => &mut source.file,
                "value" => &mut source.value,
                TOML_DATETIME_KEY => return refuse(SecretShapeError::NotASource),
                _ => {
                    // Recorded rather than refused, so the rest of the section is still read;
                    // validation reports it at the source.
                    source.unknown_key = true;
                    map.next_value::<de::IgnoredAny>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return refuse(SecretShapeError::DuplicateField);
            }
            let text: Spanned<SourceText> = map.next_value()?;
            let span = text.span();
            *slot = Some(Spanned::new(span, text.into_inner().0));
        }
        Ok(source)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_none<E: de::Error>(self) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_unit<E: de::Error>(self) -> Result<SecretRef, E> {
        refuse(SecretShapeError::NotASource)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<SecretRef, A::Error> {
        refuse(SecretShapeError::NotASource)
    }
}

/// The string held by `env`, `file` or `value`; anything else is refused without being quoted.
struct SourceText(String);

impl<'de> Deserialize<'de> for SourceText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_string(SourceTextVisitor)
    }
}

struct SourceTextVisitor;

impl<'de> Visitor<'de> for SourceTextVisitor {
    type Value = SourceText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<SourceText, E> {
        Ok(SourceText(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<SourceText, E> {
        Ok(SourceText(text))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SourceText, E> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SourceText, E> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<SourceText, E> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SourceText, E> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<SourceText, E> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SourceText, E> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<SourceText, E> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_none<E: de::Error>(self) -> Result<SourceText, E> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_unit<E: de::Error>(self) -> Result<SourceText, E> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<SourceText, A::Error> {
        refuse(SecretShapeError::NotAString)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<SourceText, A::Error> {
        refuse(SecretShapeError::NotAString)
    }
}

// === impl SecretShapeError ===

impl fmt::Display for SecretShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecretShapeError::NotASource => {
                "must be { env = \"NAME\" }, { file = \"path\" } or { value = \"...\" } \
                 (what was written is not shown: it may be the secret)"
            }
            SecretShapeError::DuplicateField => "gives env, file or value twice",
            SecretShapeError::NotAString => {
                "must be a string (what was written is not shown: it may be the secret)"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_secret_tables_are_recognised() {
        let cases = [
            ("the key table itself", "keys.secrets", true),
            ("a key's source", "keys.secrets.k1", true),
            ("a field of a key's source", "keys.secrets.k1.value", true),
            (
                "a guest header",
                "upstream.guest_headers.Authorization",
                true,
            ),
            ("the active kid is not a secret", "keys.active", false),
            ("the keys section as a whole", "keys", false),
            (
                "a table that only starts like one",
                "keys.secrets_old",
                false,
            ),
            ("the upstream url", "upstream.url", false),
        ];
        for (name, path, expected) in cases {
            assert_eq!(is_secret_path(path), expected, "{name}");
        }
    }

    #[test]
    fn shape_errors_never_quote_what_was_written() {
        let cases = [
            ("a string", "k = \"hunter2-secret\""),
            ("an integer", "k = 4242424242"),
            ("a float", "k = 4242.4242"),
            ("a boolean", "k = true"),
            ("a date", "k = 2042-04-24"),
            ("an array", "k = [\"hunter2-secret\"]"),
            ("a value that is an integer", "k = { value = 4242424242 }"),
            ("a value that is a float", "k = { value = 4242.4242 }"),
            ("a value that is a date", "k = { value = 2042-04-24 }"),
        ];
        for (name, text) in cases {
            let error = toml::from_str::<BTreeMap<String, SecretRef>>(text)
                .expect_err(name)
                .message()
                .to_owned();
            assert!(
                SECRET_SHAPE_ERRORS
                    .iter()
                    .any(|shape| shape.to_string() == error),
                "{name}: {error}"
            );
            for fragment in ["hunter2", "4242", "2042"] {
                assert!(!error.contains(fragment), "{name}: {error}");
            }
        }
    }

    #[test]
    fn an_unknown_key_in_a_secret_source_is_recorded_without_its_name() {
        let cases = [
            (
                "a key beside env",
                "k = { env = \"A\", hunter2-secret = 1 }",
            ),
            ("the only key", "k = { hunter2-secret = \"x\" }"),
            (
                "a key holding a table",
                "k = { val = { hunter2-secret = 1 } }",
            ),
        ];
        for (name, text) in cases {
            let sources = toml::from_str::<BTreeMap<String, SecretRef>>(text)
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            let source = &sources["k"];
            assert!(source.unknown_key, "{name}");
            assert!(!format!("{source:?}").contains("hunter2"), "{name}");
        }
    }
}
