//! The validated config: [`load`] and [`parse`] read the TOML file as written (`file.rs`), then build
//! types that cannot hold a bad state, collecting every problem with its file:line:column.
//!
//! Validation has no side effects beyond reading the files the config names (secrets, and a check
//! that the TLS files can be opened and that the access log's directory exists), so
//! `casegate check` can run exactly what `serve` runs.

mod diagnostics;
mod duration;
mod file;
mod guest_forward_headers;
mod hsts;
mod log;
mod loopback_congestion;
mod mail;
mod secret_source;
mod state;
mod trusted_proxies;
mod unknown_keys;
mod verify;

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Uri};
use subtle::ConstantTimeEq;
pub use toml::Spanned;

pub use diagnostics::{ConfigErrors, Diagnostics, Problem};
pub use duration::{DurationError, format_duration, is_whole_seconds, parse_duration, parse_ttl};
pub use log::{AccessTarget, DEFAULT_LOG_LEVEL, Log, LogFormat};
pub use mail::{Mail, MailDelivery, SmtpCredentials, SmtpRelay, SmtpSecurity};
pub use secret_source::{SecretError, SecretText};
pub use state::{State, StateBackend};

use file::RawConfig;

use crate::loopback_congestion::LoopbackCongestion;
use crate::pages::Templates;
use crate::policy::{self, List, Policy, ScopeSpec, TargetError};
use crate::proxy::cidr::TrustedProxies;
use crate::share::keys::{KeyRing, decode_key, validate_kid};
use crate::share::{CaseGrammar, Secret};
use crate::verify::VerifySettings;

/// A config file is a page or two of TOML; anything this large is the wrong file.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The `case_pattern` when none is given: the case ids most case apps use, and nothing that can
/// change the shape of a path.
pub const DEFAULT_CASE_PATTERN: &str = "[A-Za-z0-9_-]{1,64}";

/// A whole, valid configuration. Every field has been checked; nothing here needs checking again.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: Server,
    pub upstream: Upstream,
    pub keys: Keys,
    pub links: Links,
    pub session: Session,
    /// Sorted by name; at least one.
    pub scopes: Vec<Scope>,
    /// The scopes' rules, compiled.
    pub policy: Arc<Policy>,
    /// The admin API; `None` when the config has no `[admin]`, and then none is served.
    pub admin: Option<Admin>,
    pub state: State,
    /// `[verify]`: codes and limits for scopes with `verify_email`.
    pub verify: VerifySettings,
    /// How mail is sent; `None` when the config has no `[mail]`, and then none is.
    pub mail: Option<Mail>,
    pub pages: Pages,
    /// `[log]`: the access log and the process log's level.
    pub log: Log,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub listen: SocketAddr,
    pub public_url: PublicUrl,
    /// Absent: plain HTTP (behind a TLS-terminating load balancer, or on loopback).
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    /// How long a stopping gateway lets requests in flight finish before it closes them.
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` names the client (load balancers); empty: nobody's.
    pub trusted_proxies: TrustedProxies,
    /// Threads serving connections; `None`: one per available core (the runtime's default).
    pub workers: Option<NonZeroUsize>,
    /// The `Strict-Transport-Security` value sent over https; `None`: switched off.
    pub hsts: Option<HeaderValue>,
    /// Whether each worker sends its small socket writes together with io_uring
    /// (`src/write_batch.rs`); `false` keeps io_uring out of the process altogether.
    pub io_uring: bool,
    /// The congestion control of TCP connections whose other end is this host
    /// (`crate::loopback_congestion`).
    pub loopback_congestion: LoopbackCongestion,
}

/// The origin recipients see, used in minted links and redirects: scheme and authority only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    scheme: PublicScheme,
    authority: Authority,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicScheme {
    Http,
    Https,
}

/// Certificate chain and private key, PEM, resolved against the config file's directory. They were
/// openable at validation time; the server parses them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The resource limits a connection lives under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The whole request head must arrive within this time (slowloris).
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// A connection with nothing in flight is closed after this time.
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Upper bound on a guest's request body.
    pub max_body_bytes: u64,
    pub max_connections: usize,
    /// Connections one peer address may hold at once (peers in `trusted_proxies` are exempt: they
    /// carry many clients).
    pub max_connections_per_address: usize,
    /// Every request body gets this long to arrive before `body_min_rate` is asked of it.
    pub body_read_timeout: Duration,
    /// Bytes per second a request body must average after `body_read_timeout` (slow bodies).
    pub body_min_rate: u64,
    /// HTTP/2 streams one connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub h2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_address: 512,
            body_read_timeout: Duration::from_secs(30),
            body_min_rate: 1024,
            h2_max_concurrent_streams: 128,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Upstream {
    /// `http://host[:port]/`: no userinfo, no path, no query.
    pub url: Uri,
    /// Requests with neither a link nor a guest cookie are forwarded untouched (staff traffic)
    /// instead of refused.
    pub passthrough: bool,
    pub connect_timeout: Duration,
    /// Time until the upstream's response headers arrive.
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    /// A pooled connection that carried this many responses is closed rather than kept.
    pub pool_max_requests: u32,
    /// A pooled connection opened this long ago is closed rather than kept.
    pub pool_max_age: Duration,
    /// Added to every guest request. Values are marked sensitive, so `Debug` hides them.
    pub guest_headers: Vec<(HeaderName, HeaderValue)>,
    /// Client headers forwarded for guests beyond the built-in allowlist.
    pub guest_forward_headers: Vec<HeaderName>,
}

/// `[pages]`: what recipients read, the embedded templates with the operator's overrides.
#[derive(Clone, Debug)]
pub struct Pages {
    /// The override directory, resolved against the config file's directory.
    pub dir: Option<PathBuf>,
    /// Parsed and checked; built here so `casegate check` reports every bad override file.
    pub templates: Arc<Templates>,
}

/// The signing keys, decoded. Their text is not kept: it was dropped as soon as it was decoded.
#[derive(Clone, Debug)]
pub struct Keys {
    /// The kid new links are signed with; always a key of `ring`.
    pub active: String,
    /// Every key links may be verified with; at least one.
    pub ring: Arc<KeyRing>,
}

#[derive(Clone, Debug)]
pub struct Links {
    /// Path prefix of links: starts and ends with `/`, canonical characters only, never just `/`.
    pub prefix: String,
    /// Where a guest lands after the link exchange: starts with a single `/`, may use `{case}` and
    /// `{share}`, may carry a query.
    pub landing: String,
    pub default_ttl: Duration,
    /// Never shorter than `default_ttl`.
    pub max_ttl: Duration,
    /// Compiled by the share module; the span points at the value, or at `[links]` for the default.
    pub case_pattern: Spanned<String>,
    /// `case_pattern`, compiled.
    pub case_grammar: CaseGrammar,
    pub clock_skew: Duration,
    /// The organisation's switch: when false, every link and guest session is refused with a page
    /// saying sharing is turned off, and the admin API mints nothing.
    pub enabled: bool,
    /// Offered on the verification landing page ("I have an account: log in"); absolute http(s).
    pub login_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Session {
    /// A cookie-name token; a `__Host-` or `__Secure-` name only with an https public URL.
    pub cookie: String,
    pub ttl: Duration,
}

#[derive(Clone, Debug)]
pub struct Scope {
    /// `[a-z0-9_-]{1,32}`.
    pub name: String,
    /// Names of other scopes whose rules this one includes; all exist and none leads back here.
    pub extends: Vec<String>,
    /// Rules as written, compiled by the policy module, which reports problems at their spans.
    pub allow: Vec<Spanned<String>>,
    pub deny: Vec<Spanned<String>>,
    /// Rules under which a guest may switch protocols (WebSocket); the request must also be allowed.
    pub upgrade: Vec<Spanned<String>>,
    /// Send the share's language upstream as `Accept-Language`.
    pub pin_language: bool,
    /// Guests must prove, with a code mailed to the link's `email`, that they read that mailbox.
    pub verify_email: bool,
    /// Where this scope's guests land after opening a link, instead of `[links] landing` (a
    /// scope for a legacy page that the common landing is not part of).
    pub landing: Option<String>,
}

/// The admin API's listener and the clients allowed to use it.
#[derive(Clone, Debug)]
pub struct Admin {
    /// Never the same address as `server.listen` (unless either asks for port 0).
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// At least one; names and tokens unique.
    pub clients: Vec<AdminClient>,
}

/// A system allowed to create and revoke shares. `Debug` never shows the token.
#[derive(Clone)]
pub struct AdminClient {
    /// `[A-Za-z0-9_.-]{1,64}`, unique: it is logged with every action and stored with every share.
    pub name: String,
    /// The bearer token, at least [`MIN_ADMIN_TOKEN_BYTES`] bytes; compare in constant time.
    pub token: Secret,
    /// The scopes this client may share; each is configured, none twice, at least one.
    pub scopes: Vec<String>,
}

/// An admin token shorter than this is guessable; `casegate keygen` prints 43 characters.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

/// A duration as the operator wrote it, or the default it took, marked as such.
fn as_written(raw: Option<&Spanned<String>>, value: Duration) -> String {
    match raw {
        Some(raw) => raw.get_ref().clone(),
        None => format!("{} (the default)", format_duration(value)),
    }
}

/// A working day: a guest who opened the link in the morning is not asked again that day, and a
/// cookie copied off a shared computer stops working by the next.
const DEFAULT_SESSION_TTL: Duration = secs(12 * 3600);

/// A day, as a Smilecloud guest link; most shares are looked at the day they are sent.
const DEFAULT_LINK_TTL: Duration = secs(24 * 3600);
/// Longer links are refused even when correctly signed.
const DEFAULT_MAX_LINK_TTL: Duration = secs(30 * 24 * 3600);
const DEFAULT_ADMIN_MAX_BODY_BYTES: usize = 64 * 1024;

// === impl AdminClient ===

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("name", &self.name)
            .field("token", &"***")
            .field("scopes", &self.scopes)
            .finish()
    }
}

// === impl Config ===

impl Config {
    pub fn scope(&self, name: &str) -> Option<&Scope> {
        self.scopes.iter().find(|scope| scope.name == name)
    }
}

// === impl PublicUrl ===

impl PublicUrl {
    pub fn scheme(&self) -> PublicScheme {
        self.scheme
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    pub fn is_https(&self) -> bool {
        self.scheme == PublicScheme::Https
    }

    /// `https://share.example.org[:port]`, without a trailing slash, ready for a path to follow.
    pub fn origin(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            PublicScheme::Http => "http",
            PublicScheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.authority)
    }
}

/// Reads the config file and validates it, with the process environment for `{ env = ... }`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_config_text(path)?;
    parse(path, &text, &|name| std::env::var(name).ok())
}

/// Validates config text. `path` names the file in messages and anchors relative file paths;
/// `env` answers `{ env = ... }` lookups, so tests need not touch the process environment.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut diag = Diagnostics::new(path, text);
    let raw = RawConfig::read(text, &mut diag);
    let base_dir = match path.parent() {
        Some(dir) => dir,
        // A path like "/" has no parent; relative files are then read from the working directory.
        None => Path::new(""),
    };
    let mut validator = Validator {
        diag: &mut diag,
        base_dir,
        env,
    };
    let config = validator.config(raw);
    diag.finish(config)
}

fn read_config_text(path: &Path) -> Result<String, ConfigErrors> {
    let cannot_read = |error: std::io::Error| {
        ConfigErrors::whole_file(path, format_args!("cannot read: {error}"))
    };
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if u64::try_from(bytes.len()).map_or(true, |len| len > MAX_CONFIG_BYTES) {
        return Err(ConfigErrors::whole_file(
            path,
            format_args!("larger than {MAX_CONFIG_BYTES} bytes; is it the right file?"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| ConfigErrors::whole_file(path, "is not UTF-8 text"))
}

/// Checks one section at a time, reporting into `diag`. Each method returns `None` when its part
/// is invalid, after checking all of that part so every problem gets reported.
struct Validator<'v, 't> {
    diag: &'v mut Diagnostics<'t>,
    base_dir: &'v Path,
    env: &'v dyn Fn(&str) -> Option<String>,
}

/// Inclusive bounds of a duration field; ranges keep typos such as `30d` for a timeout out.
struct Bounds {
    min: Duration,
    max: Duration,
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

const HANDSHAKE_BOUNDS: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: secs(5 * MINUTE),
};
const IDLE_BOUNDS: Bounds = Bounds {
    min: secs(1),
    max: secs(HOUR),
};
const TTL_BOUNDS: Bounds = Bounds {
    min: secs(MINUTE),
    max: secs(365 * DAY),
};
const SESSION_TTL_BOUNDS: Bounds = Bounds {
    min: secs(MINUTE),
    max: secs(30 * DAY),
};
const CLOCK_SKEW_BOUNDS: Bounds = Bounds {
    min: Duration::ZERO,
    max: secs(10 * MINUTE),
};
/// Long enough for a page or an API call, short enough that a stop never waits on a download for
/// long; the systemd unit's `TimeoutStopSec` must stay above the maximum in use.
const SHUTDOWN_GRACE_BOUNDS: Bounds = Bounds {
    min: secs(1),
    max: secs(HOUR),
};
const SHUTDOWN_GRACE: Duration = secs(30);
/// More threads than this is a typo, not a machine: 1024 is far past any core count we serve on.
const MAX_WORKERS: std::ops::RangeInclusive<usize> = 1..=1024;

const UPSTREAM_CONNECT_TIMEOUT: Duration = secs(5);
const UPSTREAM_RESPONSE_TIMEOUT: Duration = secs(30);
const UPSTREAM_POOL_IDLE_TIMEOUT: Duration = secs(90);
/// nginx's defaults for its upstream connections (`keepalive_requests`, `keepalive_time`): often
/// enough that a multi-worker app sees its connections spread again, rarely enough that the
/// reconnects cost nothing measurable (one in a thousand requests).
const UPSTREAM_POOL_MAX_REQUESTS: usize = 1000;
const UPSTREAM_POOL_MAX_REQUESTS_BOUNDS: std::ops::RangeInclusive<usize> = 1..=1_000_000_000;
const UPSTREAM_POOL_MAX_AGE: Duration = secs(HOUR);
const POOL_AGE_BOUNDS: Bounds = Bounds {
    min: secs(1),
    max: secs(DAY),
};
const CLOCK_SKEW: Duration = secs(60);
/// More scopes than any organisation shares by; it also bounds how long an `extends` chain is,
/// which the policy follows recursively.
const MAX_SCOPES: usize = 256;

/// Headers a guest header may not set besides the hop-by-hop ones (`proxy::hop`, one list for
/// the proxy and the config, so they cannot drift apart): the ones that frame or route the
/// request, and the ones casegate itself sets (the identity the upstream trusts).
const RESERVED_HEADERS: [&str; 4] = ["host", "content-length", "cookie", "forwarded"];
const RESERVED_HEADER_PREFIXES: [&str; 2] = ["x-casegate-", "x-forwarded-"];

impl Validator<'_, '_> {
    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let public_url = raw
            .server
            .as_ref()
            .and_then(|server| self.public_url(&server.public_url));
        let server = raw
            .server
            .and_then(|server| self.server(server, public_url.clone()));
        let upstream = raw.upstream.and_then(|upstream| self.upstream(upstream));
        let keys = raw.keys.and_then(|keys| self.keys(keys));
        // Where each landing is written, for the check that a scope's rules allow its landing.
        let landing_spans = LandingSpans::of(raw.links.as_ref(), raw.scopes.as_ref());
        let links = raw.links.and_then(|links| self.links(links));
        let session = raw
            .session
            .and_then(|session| self.session(session, public_url.as_ref()));
        // Admin clients name scopes; known from the raw table so a broken scope elsewhere does
        // not also make every client's scope look unknown.
        let scope_names: Option<BTreeSet<String>> = raw.scopes.as_ref().map(|scopes| {
            scopes
                .get_ref()
                .keys()
                .map(|name| name.get_ref().clone())
                .collect()
        });
        let scopes = raw.scopes.and_then(|scopes| self.scopes(scopes));
        let policy = scopes.as_ref().and_then(|scopes| self.policy(scopes));
        if let (Some(links), Some(scopes), Some(policy)) = (&links, &scopes, &policy) {
            self.unreachable_landings(links, scopes, policy, &landing_spans);
        }
        let admin = raw.admin.map(|admin| {
            self.admin(
                admin,
                server.as_ref().map(|server| server.listen),
                scope_names.as_ref(),
            )
        });
        if raw.mail.is_none() {
            for scope in scopes.iter().flatten().filter(|scope| scope.verify_email) {
                self.diag.error(
                    0..0,
                    format_args!(
                        "scopes.{}.verify_email: codes are sent by mail, so [mail] is required",
                        scope.name
                    ),
                );
            }
        }
        let state = self.state(raw.state.unwrap_or_default());
        let verify = self.verify(raw.verify.unwrap_or_default());
        let mail = raw.mail.map(|mail| self.mail(mail));
        let pages = self.pages(raw.pages);
        let log = self.log(raw.log.unwrap_or_default());
        Some(Config {
            server: server?,
            upstream: upstream?,
            keys: keys?,
            links: links?,
            session: session?,
            scopes: scopes?,
            policy: policy?,
            admin: match admin {
                Some(admin) => Some(admin?),
                None => None,
            },
            state: state?,
            verify: verify?,
            mail: match mail {
                Some(mail) => Some(mail?),
                None => None,
            },
            pages: pages?,
            log: log?,
        })
    }

    // --- [server] ---

    fn server(
        &mut self,
        raw: file::ServerSection,
        public_url: Option<PublicUrl>,
    ) -> Option<Server> {
        let listen = match raw.listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.diag.error(
                    raw.listen.span(),
                    format_args!(
                        "server.listen: {:?} is not an address like 127.0.0.1:8443 or [::]:8443 \
                         (an IP address and a port; host names are not resolved)",
                        raw.listen.get_ref()
                    ),
                );
                None
            }
        };
        let tls = raw.tls.map(|tls| {
            let cert = self.readable_file("server.tls.cert", &tls.cert);
            let key = self.readable_file("server.tls.key", &tls.key);
            Some(TlsFiles {
                cert: cert?,
                key: key?,
            })
        });
        let limits = self.limits(raw.limits.unwrap_or_default());
        let shutdown_grace = self.optional_duration(
            "server.shutdown_grace",
            raw.shutdown_grace.as_ref(),
            SHUTDOWN_GRACE,
            &SHUTDOWN_GRACE_BOUNDS,
        );
        let trusted_proxies = self.trusted_proxies(raw.trusted_proxies.as_ref());
        let workers = match raw.workers.as_ref() {
            None => Some(None),
            Some(raw) => self
                .count("server.workers", Some(raw), 1, MAX_WORKERS)
                .and_then(NonZeroUsize::new)
                .map(Some),
        };
        let hsts = self.hsts(raw.hsts.as_ref());
        let loopback_congestion =
            self.loopback_congestion(raw.loopback_congestion_control.as_ref());
        Some(Server {
            listen: listen?,
            public_url: public_url?,
            tls: match tls {
                Some(files) => Some(files?),
                None => None,
            },
            limits: limits?,
            shutdown_grace: shutdown_grace?,
            trusted_proxies: trusted_proxies?,
            workers: workers?,
            hsts: hsts?,
            io_uring: raw.io_uring.unwrap_or(true),
            loopback_congestion: loopback_congestion?,
        })
    }

    fn public_url(&mut self, raw: &Spanned<String>) -> Option<PublicUrl> {
        let (scheme, authority) = self.origin("server.public_url", raw)?;
        let scheme = if scheme == Scheme::HTTPS {
            PublicScheme::Https
        } else if scheme == Scheme::HTTP {
            PublicScheme::Http
        } else {
            self.diag.error(
                raw.span(),
                "server.public_url: must start with https:// or http://",
            );
            return None;
        };
        Some(PublicUrl { scheme, authority })
    }

    /// Parses a URL that must be an origin only: scheme, host, optional port, and nothing after.
    fn origin(&mut self, field: &str, raw: &Spanned<String>) -> Option<(Scheme, Authority)> {
        let text = raw.get_ref();
        let span = raw.span();
        let Ok(uri) = text.parse::<Uri>() else {
            self.diag.error(
                span,
                format_args!("{field}: {text:?} is not a URL like https://host:port"),
            );
            return None;
        };
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            self.diag.error(
                span,
                format_args!("{field}: {text:?} needs a scheme and a host, like http://host:port"),
            );
            return None;
        };
        if authority.as_str().contains('@') {
            self.diag.error(
                span,
                format_args!("{field}: must not contain a user name or password"),
            );
            return None;
        }
        if authority.host().is_empty() || authority.port_u16() == Some(0) {
            self.diag.error(
                span,
                format_args!("{field}: needs a host and a non-zero port if any"),
            );
            return None;
        }
        let path = uri.path();
        if (path != "/" && !path.is_empty()) || uri.query().is_some() || text.contains('#') {
            self.diag.error(
                span,
                format_args!("{field}: must be an origin only (scheme, host, optional port): no path, query or fragment"),
            );
            return None;
        }
        Some((scheme.clone(), authority.clone()))
    }

    fn readable_file(&mut self, field: &str, raw: &Spanned<String>) -> Option<PathBuf> {
        let path = self.base_dir.join(raw.get_ref());
        match std::fs::File::open(&path).and_then(|file| file.metadata()) {
            Ok(metadata) if metadata.is_file() => Some(path),
            Ok(_) => {
                self.diag.error(
                    raw.span(),
                    format_args!("{field}: {} is not a file", path.display()),
                );
                None
            }
            Err(error) => {
                self.diag.error(
                    raw.span(),
                    format_args!("{field}: cannot open {}: {error}", path.display()),
                );
                None
            }
        }
    }

    fn limits(&mut self, raw: file::LimitsSection) -> Option<Limits> {
        let default = Limits::default();
        let header_read_timeout = self.optional_duration(
            "server.limits.header_read_timeout",
            raw.header_read_timeout.as_ref(),
            default.header_read_timeout,
            &HANDSHAKE_BOUNDS,
        );
        let tls_handshake_timeout = self.optional_duration(
            "server.limits.tls_handshake_timeout",
            raw.tls_handshake_timeout.as_ref(),
            default.tls_handshake_timeout,
            &HANDSHAKE_BOUNDS,
        );
        let idle_timeout = self.optional_duration(
            "server.limits.idle_timeout",
            raw.idle_timeout.as_ref(),
            default.idle_timeout,
            &IDLE_BOUNDS,
        );
        let max_header_bytes = self.count(
            "server.limits.max_header_bytes",
            raw.max_header_bytes.as_ref(),
            default.max_header_bytes,
            1024..=1024 * 1024,
        );
        let max_headers = self.count(
            "server.limits.max_headers",
            raw.max_headers.as_ref(),
            default.max_headers,
            1..=1000,
        );
        let max_body_bytes = self.count(
            "server.limits.max_body_bytes",
            raw.max_body_bytes.as_ref(),
            usize::try_from(default.max_body_bytes).unwrap_or(usize::MAX),
            1..=1024 * 1024 * 1024,
        );
        let max_connections = self.count(
            "server.limits.max_connections",
            raw.max_connections.as_ref(),
            default.max_connections,
            1..=1_000_000,
        );
        let max_connections_per_address = self.count(
            "server.limits.max_connections_per_address",
            raw.max_connections_per_address.as_ref(),
            default.max_connections_per_address,
            1..=1_000_000,
        );
        let body_read_timeout = self.optional_duration(
            "server.limits.body_read_timeout",
            raw.body_read_timeout.as_ref(),
            default.body_read_timeout,
            &HANDSHAKE_BOUNDS,
        );
        let body_min_rate = self.count(
            "server.limits.body_min_rate",
            raw.body_min_rate.as_ref(),
            usize::try_from(default.body_min_rate).unwrap_or(usize::MAX),
            1..=1024 * 1024 * 1024,
        );
        let h2_max_concurrent_streams = self.count(
            "server.limits.h2_max_concurrent_streams",
            raw.h2_max_concurrent_streams.as_ref(),
            usize::try_from(default.h2_max_concurrent_streams).unwrap_or(usize::MAX),
            1..=1000,
        );
        Some(Limits {
            header_read_timeout: header_read_timeout?,
            tls_handshake_timeout: tls_handshake_timeout?,
            idle_timeout: idle_timeout?,
            max_header_bytes: max_header_bytes?,
            max_headers: max_headers?,
            max_body_bytes: u64::try_from(max_body_bytes?).ok()?,
            max_connections: max_connections?,
            max_connections_per_address: max_connections_per_address?,
            body_read_timeout: body_read_timeout?,
            body_min_rate: u64::try_from(body_min_rate?).ok()?,
            h2_max_concurrent_streams: u32::try_from(h2_max_concurrent_streams?).ok()?,
        })
    }

    // --- [upstream] ---

    fn upstream(&mut self, raw: file::UpstreamSection) -> Option<Upstream> {
        let url = self.upstream_url(&raw.url);
        let connect_timeout = self.optional_duration(
            "upstream.connect_timeout",
            raw.connect_timeout.as_ref(),
            UPSTREAM_CONNECT_TIMEOUT,
            &HANDSHAKE_BOUNDS,
        );
        let response_timeout = self.optional_duration(
            "upstream.response_timeout",
            raw.response_timeout.as_ref(),
            UPSTREAM_RESPONSE_TIMEOUT,
            &IDLE_BOUNDS,
        );
        let pool_idle_timeout = self.optional_duration(
            "upstream.pool_idle_timeout",
            raw.pool_idle_timeout.as_ref(),
            UPSTREAM_POOL_IDLE_TIMEOUT,
            &IDLE_BOUNDS,
        );
        let pool_max_requests = self.count(
            "upstream.pool_max_requests",
            raw.pool_max_requests.as_ref(),
            UPSTREAM_POOL_MAX_REQUESTS,
            UPSTREAM_POOL_MAX_REQUESTS_BOUNDS,
        );
        let pool_max_age = self.optional_duration(
            "upstream.pool_max_age",
            raw.pool_max_age.as_ref(),
            UPSTREAM_POOL_MAX_AGE,
            &POOL_AGE_BOUNDS,
        );
        let guest_headers = self.guest_headers(raw.guest_headers.unwrap_or_default());
        let guest_forward_headers = self.guest_forward_headers(raw.guest_forward_headers.as_ref());
        Some(Upstream {
            url: url?,
            passthrough: raw.passthrough.unwrap_or(false),
            connect_timeout: connect_timeout?,
            response_timeout: response_timeout?,
            pool_idle_timeout: pool_idle_timeout?,
            pool_max_requests: u32::try_from(pool_max_requests?).ok()?,
            pool_max_age: pool_max_age?,
            guest_headers: guest_headers?,
            guest_forward_headers: guest_forward_headers?,
        })
    }

    fn upstream_url(&mut self, raw: &Spanned<String>) -> Option<Uri> {
        let (scheme, authority) = self.origin("upstream.url", raw)?;
        if scheme != Scheme::HTTP {
            self.diag.error(
                raw.span(),
                format_args!("upstream.url: only http:// upstreams are supported, not {scheme}://"),
            );
            return None;
        }
        let built = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build();
        match built {
            Ok(uri) => Some(uri),
            Err(error) => {
                self.diag
                    .error(raw.span(), format_args!("upstream.url: {error}"));
                None
            }
        }
    }

    fn guest_headers(
        &mut self,
        raw: std::collections::BTreeMap<Spanned<String>, Spanned<file::SecretRef>>,
    ) -> Option<Vec<(HeaderName, HeaderValue)>> {
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut valid = true;
        for (raw_name, source) in raw {
            let text = raw_name.get_ref();
            let field = format!("upstream.guest_headers.{text}");
            let name = match HeaderName::from_bytes(text.as_bytes()) {
                Ok(name) if is_reserved_header(&name) => {
                    self.diag.error(
                        raw_name.span(),
                        format_args!(
                            "{field}: {name} is a header casegate or the connection controls; it cannot be a guest header"
                        ),
                    );
                    None
                }
                Ok(name) if headers.iter().any(|(seen, _)| *seen == name) => {
                    self.diag.error(
                        raw_name.span(),
                        format_args!("{field}: {name} is given twice (header names ignore case)"),
                    );
                    None
                }
                Ok(name) => Some(name),
                Err(_) => {
                    self.diag.error(
                        raw_name.span(),
                        format_args!("upstream.guest_headers: {text:?} is not a valid header name"),
                    );
                    None
                }
            };
            let value = self.secret(&field, &source).and_then(|secret| match HeaderValue::from_str(secret.expose()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    Some(value)
                }
                Err(_) => {
                    self.diag.error(
                        source.span(),
                        format_args!("{field}: the secret is not a valid header value (it holds a line break or control character)"),
                    );
                    None
                }
            });
            match (name, value) {
                (Some(name), Some(value)) => headers.push((name, value)),
                (Some(_), None) | (None, Some(_)) | (None, None) => valid = false,
            }
        }
        valid.then_some(headers)
    }

    // --- [keys] ---

    fn keys(&mut self, raw: file::KeysSection) -> Option<Keys> {
        let mut decoded = Vec::new();
        let mut valid = true;
        for (kid, source) in &raw.secrets {
            let kid_ok = match validate_kid(kid.get_ref()) {
                Ok(()) => true,
                Err(error) => {
                    self.diag
                        .error(kid.span(), format_args!("keys.secrets: {error}"));
                    false
                }
            };
            let field = format!("keys.secrets.{}", kid.get_ref());
            // The text lives only for this statement: the ring keeps the decoded key, nothing keeps
            // the text.
            let key =
                self.secret(&field, source)
                    .and_then(|text| match decode_key(text.expose()) {
                        Ok(key) => Some(key),
                        Err(error) => {
                            self.diag
                                .error(source.span(), format_args!("{field}: {error}"));
                            None
                        }
                    });
            match (kid_ok, key) {
                (true, Some(key)) => decoded.push((kid.get_ref().clone(), key)),
                (true, None) | (false, _) => valid = false,
            }
        }
        let active = raw.active.get_ref();
        if raw.secrets.is_empty() {
            self.diag.error(
                raw.active.span(),
                "keys.secrets: needs at least one key, e.g. k1 = { env = \"CASEGATE_KEY_K1\" }",
            );
            return None;
        }
        if !raw.secrets.keys().any(|kid| kid.get_ref() == active) {
            let known: Vec<&str> = raw
                .secrets
                .keys()
                .map(|kid| kid.get_ref().as_str())
                .collect();
            self.diag.error(
                raw.active.span(),
                format_args!(
                    "keys.active: {active:?} is not a key of [keys.secrets] (which has {})",
                    known.join(", ")
                ),
            );
            return None;
        }
        if !valid {
            return None;
        }
        let ring = KeyRing::new(active, decoded)
            .map_err(|error| {
                self.diag
                    .error(raw.active.span(), format_args!("keys: {error}"))
            })
            .ok()?;
        Some(Keys {
            active: active.clone(),
            ring: Arc::new(ring),
        })
    }

    fn secret(&mut self, field: &str, source: &Spanned<file::SecretRef>) -> Option<SecretText> {
        match secret_source::resolve(source, self.base_dir, self.env) {
            Ok(text) => Some(text),
            Err((span, error)) => {
                self.diag.error(span, format_args!("{field}: {error}"));
                None
            }
        }
    }

    // --- [links] ---

    fn links(&mut self, raw: Spanned<file::LinksSection>) -> Option<Links> {
        let links_span = raw.span();
        let raw = raw.into_inner();
        let prefix = self.link_prefix(&raw.prefix);
        let landing = self.landing_template("links.landing", &raw.landing);
        let default_ttl = self.optional_duration(
            "links.default_ttl",
            raw.default_ttl.as_ref(),
            DEFAULT_LINK_TTL,
            &TTL_BOUNDS,
        );
        let max_ttl = self.optional_duration(
            "links.max_ttl",
            raw.max_ttl.as_ref(),
            DEFAULT_MAX_LINK_TTL,
            &TTL_BOUNDS,
        );
        let ttls = match (default_ttl, max_ttl) {
            (Some(default_ttl), Some(max_ttl)) if default_ttl > max_ttl => {
                // Point at whichever of the two was written (a default was not).
                let span = raw
                    .default_ttl
                    .as_ref()
                    .or(raw.max_ttl.as_ref())
                    .map_or(links_span.clone(), |written| written.span());
                self.diag.error(
                    span,
                    format_args!(
                        "links.default_ttl: {} is longer than links.max_ttl ({})",
                        as_written(raw.default_ttl.as_ref(), default_ttl),
                        as_written(raw.max_ttl.as_ref(), max_ttl)
                    ),
                );
                None
            }
            (Some(default_ttl), Some(max_ttl)) => Some((default_ttl, max_ttl)),
            (Some(_), None) | (None, Some(_)) | (None, None) => None,
        };
        let case_pattern = match raw.case_pattern {
            Some(pattern) if pattern.get_ref().is_empty() => {
                self.diag
                    .error(pattern.span(), "links.case_pattern: is empty");
                None
            }
            Some(pattern) => Some(pattern),
            None => Some(Spanned::new(links_span, DEFAULT_CASE_PATTERN.to_owned())),
        };
        let case_grammar = case_pattern.as_ref().and_then(|pattern| {
            CaseGrammar::parse(pattern.get_ref())
                .map_err(|error| {
                    self.diag
                        .error(pattern.span(), format_args!("links.case_pattern: {error}"))
                })
                .ok()
        });
        let clock_skew = self.optional_duration(
            "links.clock_skew",
            raw.clock_skew.as_ref(),
            CLOCK_SKEW,
            &CLOCK_SKEW_BOUNDS,
        );
        let login_url = raw.login_url.as_ref().map(|url| self.login_url(url));
        Some(Links {
            prefix: prefix?,
            landing: landing?,
            default_ttl: ttls?.0,
            max_ttl: ttls?.1,
            case_pattern: case_pattern?,
            case_grammar: case_grammar?,
            clock_skew: clock_skew?,
            enabled: raw.enabled.unwrap_or(true),
            login_url: match login_url {
                Some(url) => Some(url?),
                None => None,
            },
        })
    }

    fn link_prefix(&mut self, raw: &Spanned<String>) -> Option<String> {
        let prefix = raw.get_ref();
        match prefix_fault(prefix) {
            Some(fault) => {
                self.diag
                    .error(raw.span(), format_args!("links.prefix: {prefix:?} {fault}"));
                None
            }
            None => Some(prefix.clone()),
        }
    }

    /// Refuses a scope whose rules do not allow the landing its guests are sent to after opening
    /// a link: they would meet a refusal at once.
    fn unreachable_landings(
        &mut self,
        links: &Links,
        scopes: &[Scope],
        policy: &Policy,
        spans: &LandingSpans,
    ) {
        for scope in scopes {
            let (key, template, span) = match &scope.landing {
                Some(own) => (
                    format!("scopes.{}.landing", scope.name),
                    own,
                    spans.scopes.get(&scope.name).cloned().unwrap_or(0..0),
                ),
                None => (
                    "links.landing".to_owned(),
                    &links.landing,
                    spans.links.clone(),
                ),
            };
            let allowed = fill_landing(template)
                .ok()
                .and_then(|filled| {
                    let target = policy::canonicalise(filled.as_bytes()).ok()?;
                    Some(
                        policy
                            .decide(&scope.name, "GET", &target, SAMPLE_CASE, SAMPLE_SHARE)
                            .is_allowed(),
                    )
                })
                // A template that does not fill or canonicalise was reported where it is read.
                .unwrap_or(true);
            if !allowed {
                self.diag.error(
                    span,
                    format_args!(
                        "{key}: scope {:?} does not allow GET {template}, where its guests land \
                         after opening a link; allow it, or give the scope a `landing` it allows",
                        scope.name
                    ),
                );
            }
        }
    }

    /// A landing template (`links.landing`, or a scope's own, named `key` in messages).
    fn landing_template(&mut self, key: &str, raw: &Spanned<String>) -> Option<String> {
        let landing = raw.get_ref();
        match landing_fault(landing) {
            Some(fault) => {
                self.diag
                    .error(raw.span(), format_args!("{key}: {landing:?} {fault}"));
                None
            }
            None => Some(landing.clone()),
        }
    }

    // --- [session] ---

    fn session(
        &mut self,
        raw: file::SessionSection,
        public_url: Option<&PublicUrl>,
    ) -> Option<Session> {
        let name = raw.cookie.get_ref();
        let cookie = if name.is_empty() || name.len() > 64 || !name.bytes().all(is_cookie_name_byte)
        {
            self.diag.error(
                raw.cookie.span(),
                format_args!("session.cookie: {name:?} is not a cookie name (1 to 64 letters, digits or !#$%&'*+-.^_`|~)"),
            );
            None
        } else if needs_https(name) && public_url.is_some_and(|url| !url.is_https()) {
            self.diag.error(
                raw.cookie.span(),
                format_args!(
                    "session.cookie: browsers accept a {} cookie only over https, but server.public_url is http; \
                     use a name without the prefix",
                    name.split_inclusive('-').next().unwrap_or(name)
                ),
            );
            None
        } else {
            Some(name.clone())
        };
        let ttl = self.optional_duration(
            "session.ttl",
            raw.ttl.as_ref(),
            DEFAULT_SESSION_TTL,
            &SESSION_TTL_BOUNDS,
        );
        Some(Session {
            cookie: cookie?,
            ttl: ttl?,
        })
    }

    // --- [scopes] ---

    fn scopes(&mut self, raw: Spanned<file::ScopesSection>) -> Option<Vec<Scope>> {
        let span = raw.span();
        let raw = raw.into_inner();
        if raw.is_empty() {
            self.diag.error(
                span,
                "scopes: needs at least one scope, e.g. [scopes.view] with allow = [...]",
            );
            return None;
        }
        if raw.len() > MAX_SCOPES {
            self.diag.error(
                span,
                format_args!("scopes: at most {MAX_SCOPES} scopes, not {}", raw.len()),
            );
            return None;
        }
        let names: BTreeSet<&str> = raw.keys().map(|name| name.get_ref().as_str()).collect();
        let mut valid = true;
        let mut scopes = Vec::new();
        for (name, scope) in &raw {
            match self.scope(name, scope, &names) {
                Some(scope) => scopes.push(scope),
                None => valid = false,
            }
        }
        if !valid {
            return None;
        }
        // Extends chains are checked once every scope's own names are known to exist.
        for ((name, raw_scope), scope) in raw.iter().zip(&scopes) {
            let raw_extends = raw_scope.get_ref().extends.iter().flatten();
            for (target, raw_target) in scope.extends.iter().zip(raw_extends) {
                if reaches(&scopes, target, &scope.name) {
                    self.diag.error(
                        raw_target.span(),
                        format_args!(
                            "scopes.{}.extends: {target:?} leads back to {:?}; extends cannot loop",
                            scope.name, scope.name
                        ),
                    );
                    valid = false;
                }
            }
            if valid && !allows_anything(&scopes, scope) {
                self.diag.error(
                    name.span(),
                    format_args!(
                        "scopes.{}: allows nothing; add allow rules or extends",
                        scope.name
                    ),
                );
                valid = false;
            }
        }
        valid.then_some(scopes)
    }

    /// Compiles every scope's rules, reporting each bad rule at its place in the file.
    fn policy(&mut self, scopes: &[Scope]) -> Option<Arc<Policy>> {
        let specs: Vec<(String, ScopeSpec)> = scopes
            .iter()
            .map(|scope| {
                let texts = |rules: &[Spanned<String>]| {
                    rules.iter().map(|rule| rule.get_ref().clone()).collect()
                };
                let spec = ScopeSpec {
                    allow: texts(&scope.allow),
                    deny: texts(&scope.deny),
                    extends: scope.extends.clone(),
                    upgrade: texts(&scope.upgrade),
                };
                (scope.name.clone(), spec)
            })
            .collect();
        match policy::compile(&specs) {
            Ok(policy) => Some(Arc::new(policy)),
            Err(errors) => {
                for error in errors {
                    let scope = scopes.iter().find(|scope| scope.name == error.scope);
                    let rule = scope.and_then(|scope| match error.entry {
                        Some(entry) if entry.list == List::Allow => scope.allow.get(entry.index),
                        Some(entry) if entry.list == List::Deny => scope.deny.get(entry.index),
                        Some(entry) if entry.list == List::Upgrade => {
                            scope.upgrade.get(entry.index)
                        }
                        Some(_) | None => scope.allow.first().or(scope.deny.first()),
                    });
                    let span = rule.map_or(0..0, Spanned::span);
                    self.diag.error(span, format_args!("scopes: {error}"));
                }
                None
            }
        }
    }

    fn scope(
        &mut self,
        name: &Spanned<String>,
        raw: &Spanned<file::ScopeSection>,
        names: &BTreeSet<&str>,
    ) -> Option<Scope> {
        let text = name.get_ref();
        let mut valid = true;
        if !is_scope_name(text) {
            self.diag.error(
                name.span(),
                format_args!(
                    "scopes: scope name {text:?} must be 1 to 32 characters of a-z 0-9 _ -"
                ),
            );
            valid = false;
        }
        let raw = raw.get_ref();
        let mut extends = Vec::new();
        for target in raw.extends.iter().flatten() {
            let target_name = target.get_ref();
            if target_name == text {
                self.diag.error(
                    target.span(),
                    format_args!("scopes.{text}.extends: a scope cannot extend itself"),
                );
                valid = false;
            } else if !names.contains(target_name.as_str()) {
                self.diag.error(
                    target.span(),
                    format_args!("scopes.{text}.extends: there is no scope {target_name:?}"),
                );
                valid = false;
            } else {
                extends.push(target_name.clone());
            }
        }
        let allow = raw.allow.clone().unwrap_or_default();
        let deny = raw.deny.clone().unwrap_or_default();
        let upgrade = raw.upgrade.clone().unwrap_or_default();
        for (list, rules) in [("allow", &allow), ("deny", &deny), ("upgrade", &upgrade)] {
            for rule in rules.iter().filter(|rule| rule.get_ref().trim().is_empty()) {
                self.diag.error(
                    rule.span(),
                    format_args!("scopes.{text}.{list}: a rule cannot be empty"),
                );
                valid = false;
            }
        }
        let landing = match &raw.landing {
            Some(landing) => {
                let checked = self.landing_template(&format!("scopes.{text}.landing"), landing);
                valid &= checked.is_some();
                checked
            }
            None => None,
        };
        valid.then(|| Scope {
            name: text.clone(),
            extends,
            allow,
            deny,
            upgrade,
            pin_language: raw.pin_language.unwrap_or(false),
            verify_email: raw.verify_email.unwrap_or(false),
            landing,
        })
    }

    // --- [admin] ---

    fn admin(
        &mut self,
        raw: Spanned<file::AdminSection>,
        server_listen: Option<SocketAddr>,
        scope_names: Option<&BTreeSet<String>>,
    ) -> Option<Admin> {
        let raw = raw.into_inner();
        let listen = match raw.listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) if server_listen.is_some_and(|server| same_listener(addr, server)) => {
                self.diag.error(
                    raw.listen.span(),
                    format_args!(
                        "admin.listen: {addr} is also server.listen; the admin API needs its own \
                         address, e.g. 127.0.0.1:9901"
                    ),
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                self.diag.error(
                    raw.listen.span(),
                    format_args!(
                        "admin.listen: {:?} is not an address like 127.0.0.1:9901 \
                         (an IP address and a port; host names are not resolved)",
                        raw.listen.get_ref()
                    ),
                );
                None
            }
        };
        let max_body_bytes = self.count(
            "admin.max_body_bytes",
            raw.max_body_bytes.as_ref(),
            DEFAULT_ADMIN_MAX_BODY_BYTES,
            1024..=16 * 1024 * 1024,
        );
        // With no clients the listener serves only /metrics, /healthz and /readyz.
        let raw_clients = raw.clients.unwrap_or_default();
        let mut clients = Vec::new();
        let mut valid = true;
        for (index, raw_client) in raw_clients.iter().enumerate() {
            let client = self.admin_client(index, raw_client.get_ref(), scope_names);
            let Some(client) = client else {
                valid = false;
                continue;
            };
            let field = format!("admin.clients[{index}]");
            if clients
                .iter()
                .any(|seen: &AdminClient| seen.name == client.name)
            {
                self.diag.error(
                    raw_client.get_ref().name.span(),
                    format_args!(
                        "{field}.name: {:?} names another client too; names must be unique",
                        client.name
                    ),
                );
                valid = false;
            }
            if clients.iter().any(|seen: &AdminClient| {
                bool::from(seen.token.as_bytes().ct_eq(client.token.as_bytes()))
            }) {
                // The token is not shown, only that it repeats: each client must be told apart.
                self.diag.error(
                    raw_client.get_ref().token.span(),
                    format_args!(
                        "{field}.token: is the same as another client's token; give each client its own"
                    ),
                );
                valid = false;
            }
            clients.push(client);
        }
        Some(Admin {
            listen: listen?,
            max_body_bytes: max_body_bytes?,
            clients: valid.then_some(clients)?,
        })
    }

    fn admin_client(
        &mut self,
        index: usize,
        raw: &file::AdminClientSection,
        scope_names: Option<&BTreeSet<String>>,
    ) -> Option<AdminClient> {
        let field = format!("admin.clients[{index}]");
        let name_text = raw.name.get_ref();
        let name = if is_client_name(name_text) {
            Some(name_text.clone())
        } else {
            self.diag.error(
                raw.name.span(),
                format_args!(
                    "{field}.name: {name_text:?} must be 1 to 64 characters of A-Z a-z 0-9 _ . -"
                ),
            );
            None
        };
        let token_field = format!("{field}.token");
        let token = self.secret(&token_field, &raw.token).and_then(|text| {
            if text.expose().len() >= MIN_ADMIN_TOKEN_BYTES {
                Some(Secret::from_bytes(text.expose().as_bytes().to_vec()))
            } else {
                self.diag.error(
                    raw.token.span(),
                    format_args!(
                        "{token_field}: is shorter than {MIN_ADMIN_TOKEN_BYTES} bytes; \
                             use a long random text such as the output of `casegate keygen`"
                    ),
                );
                None
            }
        });
        let mut scopes: Vec<String> = Vec::new();
        let mut scopes_valid = true;
        if raw.scopes.get_ref().is_empty() {
            self.diag.error(
                raw.scopes.span(),
                format_args!(
                    "{field}.scopes: needs at least one scope the client may share, e.g. [\"view\"]"
                ),
            );
            scopes_valid = false;
        }
        for scope in raw.scopes.get_ref() {
            let text = scope.get_ref();
            if scope_names.is_some_and(|names| !names.contains(text)) {
                self.diag.error(
                    scope.span(),
                    format_args!("{field}.scopes: there is no scope {text:?} in [scopes]"),
                );
                scopes_valid = false;
            } else if scopes.contains(text) {
                self.diag.error(
                    scope.span(),
                    format_args!("{field}.scopes: {text:?} is listed twice"),
                );
                scopes_valid = false;
            } else {
                scopes.push(text.clone());
            }
        }
        Some(AdminClient {
            name: name?,
            token: token?,
            scopes: scopes_valid.then_some(scopes)?,
        })
    }

    // --- [pages] ---

    fn pages(&mut self, raw: Option<file::PagesSection>) -> Option<Pages> {
        let dir = match raw.and_then(|raw| raw.dir) {
            Some(dir) if dir.get_ref().trim().is_empty() => {
                self.diag
                    .error(dir.span(), "pages.dir: is empty; name a directory");
                return None;
            }
            Some(dir) => {
                let path = self.base_dir.join(dir.get_ref());
                if !path.is_dir() {
                    self.diag.error(
                        dir.span(),
                        format_args!("pages.dir: {} is not a directory", path.display()),
                    );
                    return None;
                }
                Some(path)
            }
            None => None,
        };
        match Templates::load(dir.as_deref()) {
            Ok(templates) => Some(Pages {
                dir,
                templates: Arc::new(templates),
            }),
            Err(problems) => {
                for problem in problems {
                    self.diag.elsewhere(problem);
                }
                None
            }
        }
    }

    // --- shared field checks ---

    fn duration(
        &mut self,
        field: &str,
        raw: &Spanned<String>,
        bounds: &Bounds,
    ) -> Option<Duration> {
        let text = raw.get_ref();
        match parse_duration(text) {
            Ok(duration) if duration < bounds.min || duration > bounds.max => {
                self.diag.error(
                    raw.span(),
                    format_args!(
                        "{field}: {text} is out of range; use {} to {}",
                        format_duration(bounds.min),
                        format_duration(bounds.max)
                    ),
                );
                None
            }
            Ok(duration) => Some(duration),
            Err(error) => {
                self.diag
                    .error(raw.span(), format_args!("{field}: {text:?} {error}"));
                None
            }
        }
    }

    fn optional_duration(
        &mut self,
        field: &str,
        raw: Option<&Spanned<String>>,
        default: Duration,
        bounds: &Bounds,
    ) -> Option<Duration> {
        match raw {
            Some(raw) => self.duration(field, raw, bounds),
            None => Some(default),
        }
    }

    fn count(
        &mut self,
        field: &str,
        raw: Option<&Spanned<i64>>,
        default: usize,
        bounds: std::ops::RangeInclusive<usize>,
    ) -> Option<usize> {
        let Some(raw) = raw else {
            return Some(default);
        };
        match usize::try_from(*raw.get_ref()) {
            Ok(value) if bounds.contains(&value) => Some(value),
            Ok(_) | Err(_) => {
                self.diag.error(
                    raw.span(),
                    format_args!(
                        "{field}: must be between {} and {}, not {}",
                        bounds.start(),
                        bounds.end(),
                        raw.get_ref()
                    ),
                );
                None
            }
        }
    }
}

fn is_reserved_header(name: &HeaderName) -> bool {
    if crate::proxy::hop::is_hop_by_hop(name) {
        return true;
    }
    let name = name.as_str();
    RESERVED_HEADERS.contains(&name)
        || RESERVED_HEADER_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// Two listen addresses that would collide: the same port on the same or an overlapping
/// (unspecified) address. Port 0 picks a free port, so it never collides.
fn same_listener(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn is_client_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_scope_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// RFC 6265 cookie-name: an RFC 7230 token.
fn is_cookie_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Browsers only accept `__Host-` and `__Secure-` cookies (in any case) from secure origins.
fn needs_https(cookie: &str) -> bool {
    let lower = cookie.to_ascii_lowercase();
    lower.starts_with("__host-") || lower.starts_with("__secure-")
}

/// What a link prefix or landing is refused for. Both are checked with the gateway's own
/// request-target check, so a config cannot name a path every request to which would be refused.
#[derive(Debug, PartialEq, Eq)]
enum PathFault {
    PrefixShape,
    PrefixCharacter(char),
    UnclosedPlaceholder,
    UnknownPlaceholder(String),
    /// What [`policy::canonicalise`] says about the path as a request would carry it.
    Target(TargetError),
}

impl fmt::Display for PathFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathFault::PrefixShape => f.write_str(
                "must start and end with \"/\" and name at least one segment, like \"/s/\"",
            ),
            PathFault::PrefixCharacter(c) => write!(
                f,
                "has {c:?}; a prefix takes only A-Z a-z 0-9 - . _ ~ between its slashes"
            ),
            PathFault::UnclosedPlaceholder => f.write_str("has a \"{\" without a closing \"}\""),
            PathFault::UnknownPlaceholder(name) => write!(
                f,
                "has an unknown placeholder {{{name}}}; use {{case}} or {{share}}"
            ),
            PathFault::Target(error) => {
                write!(
                    f,
                    "would be refused by the gateway's request check: {error}"
                )
            }
        }
    }
}

/// A stand-in token for checking a prefix: links are `{prefix}{token}`.
const SAMPLE_TOKEN: &str = "token";
/// Stand-ins for the placeholders of a landing, shaped like what they are filled with.
const SAMPLE_CASE: &str = "case";
const SAMPLE_SHARE: &str = "share0123456789abcdef";

/// Why a link prefix is unusable, or `None`. A link is the prefix followed by the token, so it is
/// checked as one.
fn prefix_fault(prefix: &str) -> Option<PathFault> {
    let Some(inner) = prefix
        .strip_prefix('/')
        .and_then(|rest| rest.strip_suffix('/'))
        .filter(|inner| !inner.is_empty())
    else {
        return Some(PathFault::PrefixShape);
    };
    if let Err(error) = policy::canonicalise(format!("{prefix}{SAMPLE_TOKEN}").as_bytes()) {
        return Some(PathFault::Target(error));
    }
    // The prefix is matched byte for byte, so it keeps to characters no client re-encodes.
    inner
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '/')))
        .map(PathFault::PrefixCharacter)
}

/// Why a landing template is unusable, or `None`. Filled in, it must be a target the gateway itself
/// accepts, which also keeps it a same-origin path: a leading `//` is an empty segment.
fn landing_fault(landing: &str) -> Option<PathFault> {
    match fill_landing(landing) {
        Ok(filled) => policy::canonicalise(filled.as_bytes())
            .err()
            .map(PathFault::Target),
        Err(fault) => Some(fault),
    }
}

/// Where `links.landing` and each scope's own `landing` are written.
struct LandingSpans {
    links: std::ops::Range<usize>,
    scopes: std::collections::BTreeMap<String, std::ops::Range<usize>>,
}

impl LandingSpans {
    fn of(
        links: Option<&Spanned<file::LinksSection>>,
        scopes: Option<&Spanned<file::ScopesSection>>,
    ) -> LandingSpans {
        LandingSpans {
            links: links.map_or(0..0, |links| links.get_ref().landing.span()),
            scopes: scopes
                .map(|scopes| {
                    scopes
                        .get_ref()
                        .iter()
                        .filter_map(|(name, scope)| {
                            let landing = scope.get_ref().landing.as_ref()?;
                            Some((name.get_ref().clone(), landing.span()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A landing template with its placeholders filled with sample values.
fn fill_landing(landing: &str) -> Result<String, PathFault> {
    let mut filled = String::with_capacity(landing.len() + SAMPLE_SHARE.len());
    let mut remaining = landing;
    while let Some(open) = remaining.find('{') {
        let (before, from_brace) = remaining.split_at(open);
        filled.push_str(before);
        let Some(close) = from_brace.find('}') else {
            return Err(PathFault::UnclosedPlaceholder);
        };
        match from_brace.get(1..close).unwrap_or("") {
            "case" => filled.push_str(SAMPLE_CASE),
            "share" => filled.push_str(SAMPLE_SHARE),
            unknown => return Err(PathFault::UnknownPlaceholder(unknown.to_owned())),
        }
        remaining = from_brace.get(close + 1..).unwrap_or("");
    }
    filled.push_str(remaining);
    Ok(filled)
}

/// Whether following `extends` from `from` ever arrives at `target`.
fn reaches(scopes: &[Scope], from: &str, target: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(name) = stack.pop() {
        if name == target {
            return true;
        }
        if !seen.insert(name) {
            continue;
        }
        if let Some(scope) = scopes.iter().find(|scope| scope.name == name) {
            stack.extend(scope.extends.iter().map(String::as_str));
        }
    }
    false
}

/// Whether a scope, with everything it extends, has at least one allow rule.
fn allows_anything(scopes: &[Scope], scope: &Scope) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![scope];
    while let Some(current) = stack.pop() {
        if !current.allow.is_empty() {
            return true;
        }
        if !seen.insert(current.name.as_str()) {
            continue;
        }
        stack.extend(
            current
                .extends
                .iter()
                .filter_map(|name| scopes.iter().find(|scope| &scope.name == name)),
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_templates_are_targets_the_gateway_accepts() {
        use TargetError as T;
        let cases = [
            ("a path with the case is fine", "/cases/{case}", None),
            (
                "the share placeholder is fine",
                "/cases/{case}/shared/{share}",
                None,
            ),
            (
                "a legacy query is fine",
                "/legacy/case.php?id={case}&view=1",
                None,
            ),
            ("the root is fine", "/", None),
            (
                "a trailing slash is refused as the gateway refuses it",
                "/cases/{case}/",
                Some(PathFault::Target(T::TrailingSlash)),
            ),
            (
                "a path parameter is refused as the gateway refuses it",
                "/cases;jsessionid=1/{case}",
                Some(PathFault::Target(T::PathParameter)),
            ),
            (
                "a semicolon in the query is refused as the gateway refuses it",
                "/case.php?id={case};view=1",
                Some(PathFault::Target(T::DisallowedCharacter { byte: b';' })),
            ),
            (
                "a segment ending in a dot is refused",
                "/cases./{case}",
                Some(PathFault::Target(T::TrailingDotOrSpace)),
            ),
            (
                "an empty query is refused",
                "/cases/{case}?",
                Some(PathFault::Target(T::EmptyQuery)),
            ),
            (
                "a relative path is refused",
                "cases/{case}",
                Some(PathFault::Target(T::NotOriginForm)),
            ),
            (
                "a protocol-relative path is refused",
                "//evil.example/{case}",
                Some(PathFault::Target(T::EmptySegment)),
            ),
            (
                "dot segments are refused",
                "/cases/../admin",
                Some(PathFault::Target(T::DotSegment)),
            ),
            (
                "an unknown placeholder is refused",
                "/cases/{id}",
                Some(PathFault::UnknownPlaceholder("id".to_owned())),
            ),
            (
                "an unclosed placeholder is refused",
                "/cases/{case",
                Some(PathFault::UnclosedPlaceholder),
            ),
            (
                "a fragment is refused",
                "/cases/{case}#top",
                Some(PathFault::Target(T::Fragment)),
            ),
            (
                "encoded dots are refused",
                "/cases/%2E%2E",
                Some(PathFault::Target(T::EncodedUnreserved)),
            ),
            (
                "a backslash is refused",
                "/cases\\{case}",
                Some(PathFault::Target(T::Backslash)),
            ),
        ];
        for (name, landing, expected) in cases {
            assert_eq!(landing_fault(landing), expected, "{name}");
        }
    }

    #[test]
    fn link_prefixes_are_reachable_by_the_links_they_start() {
        use TargetError as T;
        let cases = [
            ("a one-segment prefix is fine", "/s/", None),
            ("a nested prefix is fine", "/share/v1/", None),
            ("unreserved characters are fine", "/a-b.c_d~e/", None),
            (
                "the root alone is refused",
                "/",
                Some(PathFault::PrefixShape),
            ),
            (
                "a missing trailing slash is refused",
                "/s",
                Some(PathFault::PrefixShape),
            ),
            (
                "a missing leading slash is refused",
                "s/",
                Some(PathFault::PrefixShape),
            ),
            (
                "a segment ending in a dot is refused as the gateway refuses it",
                "/s./",
                Some(PathFault::Target(T::TrailingDotOrSpace)),
            ),
            (
                "an empty segment is refused",
                "/s//",
                Some(PathFault::Target(T::EmptySegment)),
            ),
            (
                "a dot segment is refused",
                "/s/../",
                Some(PathFault::Target(T::DotSegment)),
            ),
            (
                "a path parameter is refused",
                "/s;x/",
                Some(PathFault::Target(T::PathParameter)),
            ),
            (
                "a character the gateway accepts but a client may re-encode is refused",
                "/s@x/",
                Some(PathFault::PrefixCharacter('@')),
            ),
            (
                "a percent escape is refused",
                "/%41/",
                Some(PathFault::Target(T::EncodedUnreserved)),
            ),
        ];
        for (name, prefix, expected) in cases {
            assert_eq!(prefix_fault(prefix), expected, "{name}");
        }
    }

    #[test]
    fn header_names_casegate_owns_are_reserved() {
        let cases = [
            ("authorization may be injected", "authorization", false),
            (
                "an app-specific header may be injected",
                "x-legacy-user",
                false,
            ),
            ("host is reserved", "host", true),
            ("a hop-by-hop header is reserved", "connection", true),
            ("our identity headers are reserved", "x-casegate-case", true),
            ("forwarding headers are reserved", "x-forwarded-for", true),
            (
                "the standard forwarding header is reserved",
                "forwarded",
                true,
            ),
            ("cookies are reserved", "cookie", true),
        ];
        for (name, header, expected) in cases {
            let header = HeaderName::from_static(header);
            assert_eq!(is_reserved_header(&header), expected, "{name}");
        }
    }

    #[test]
    fn cookie_prefixes_that_need_https_are_recognised_in_any_case() {
        let cases = [
            ("__Host- needs https", "__Host-casegate", true),
            ("__Secure- needs https", "__Secure-casegate", true),
            (
                "browsers match the prefix in any case",
                "__HOST-casegate",
                true,
            ),
            ("a plain name does not", "casegate", false),
            ("a near miss does not", "_Host-casegate", false),
        ];
        for (name, cookie, expected) in cases {
            assert_eq!(needs_https(cookie), expected, "{name}");
        }
    }
}
