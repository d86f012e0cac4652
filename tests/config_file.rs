//! The config as an operator meets it: the shipped example loads, and each broken config is
//! reported at the exact file:line:column with a message that says what to fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use casegate::config::{self, Config, ConfigErrors, PublicScheme, StateBackend};
use casegate::share::keys::{KeyRing, decode_key};
use casegate::share::{LinkClaims, LinkRules, token};

const KEY_TEXT: &str = "a2V5LW1hdGVyaWFsLWZvci10ZXN0cy1vbmx5LTMyYnl0ZXM";
const AUTH_TEXT: &str = "Basic cmVhZG9ubHk6c2VjcmV0";
const ADMIN_TOKEN: &str = "admin-token-for-the-case-app-0123456789";
const OTHER_ADMIN_TOKEN: &str = "admin-token-for-the-billing-app-0123456";

/// A small valid config; the broken ones below each change one thing in it. Line numbers in the
/// expectations refer to this text.
const BASE: &str = r#"[server]
listen = "127.0.0.1:8443"
public_url = "https://share.example.org"

[upstream]
url = "http://127.0.0.1:8080"

[upstream.guest_headers]
Authorization = { env = "LEGACY_AUTH" }

[keys]
active = "k1"

[keys.secrets]
k1 = { env = "CASEGATE_KEY_K1" }

[links]
prefix = "/s/"
landing = "/cases/{case}"
default_ttl = "24h"
max_ttl = "30d"

[session]
cookie = "__Host-casegate"
ttl = "12h"

[scopes.view]
allow = ["GET /cases/{case}", "GET /cases/{case}/**"]
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "CASEGATE_KEY_K1" => Some(KEY_TEXT.to_owned()),
        "LEGACY_AUTH" => Some(AUTH_TEXT.to_owned()),
        "CASEGATE_ADMIN_TOKEN" => Some(ADMIN_TOKEN.to_owned()),
        "CASEGATE_REDIS_URL" => Some(REDIS_URL_WITH_PASSWORD.to_owned()),
        "NOT_A_REDIS_URL" => Some("http://app:hunter2-redis@redis:6379".to_owned()),
        _ => None,
    }
}

const REDIS_URL_WITH_PASSWORD: &str = "rediss://app:hunter2-redis@redis.internal:6380/1";

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    config::parse(Path::new("test.toml"), text, &env)
}

/// Asserts that `text` has exactly one problem, at `position` (line:column), containing
/// `fragment`; returns it.
fn assert_one_problem(name: &str, text: &str, position: &str, fragment: &str) -> String {
    let found = problems(text);
    let expected_start = format!("test.toml:{position}: ");
    assert!(
        found.len() == 1 && found[0].starts_with(&expected_start) && found[0].contains(fragment),
        "{name}: expected one problem at {position} containing {fragment:?}, found {found:#?}"
    );
    found[0].clone()
}

fn problems(text: &str) -> Vec<String> {
    problems_at(Path::new("test.toml"), text)
}

/// The problems of `text` read as the config file at `path`, whose directory anchors relative
/// file paths.
fn problems_at(path: &Path, text: &str) -> Vec<String> {
    match config::parse(path, text, &env) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.problems().iter().map(ToString::to_string).collect(),
    }
}

/// Asserts that `text` has exactly the problems listed, in file order, each starting with its
/// entry (`test.toml:line:column: key.path: start of the message`).
fn assert_problems<S: AsRef<str>>(text: &str, expected: &[S]) {
    let found = problems(text);
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        let expected = expected.as_ref();
        assert!(
            found.starts_with(expected),
            "expected {expected:?}, found {found:?}"
        );
    }
}

/// The ring holds k1 and signs with the key `KEY_TEXT` decodes to: a link it mints verifies with a
/// ring built from that text alone. The text itself is not kept in the config to compare.
fn assert_signs_with_the_key_text(config: &Config) {
    assert!(config.keys.ring.contains("k1"));
    let expected =
        KeyRing::new("k1", vec![("k1".to_owned(), decode_key(KEY_TEXT).unwrap())]).unwrap();
    let now = casegate::clock::unix_now();
    let claims = LinkClaims {
        share_id: "share0123456789abcdef".to_owned(),
        case: "42".to_owned(),
        scope: "view".to_owned(),
        issued_at: now,
        expires_at: now + 3600,
        not_before: None,
        email: None,
        lang: None,
    };
    let token = token::mint(&config.keys.ring, &claims);
    let rules = LinkRules {
        now,
        max_ttl_secs: 86_400,
        clock_skew_secs: 60,
        case_grammar: &config.links.case_grammar,
        scope_exists: &|_| true,
    };
    let verified = token::verify(&expected, &token, &rules).unwrap();
    assert_eq!(verified.case, "42");
}

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "the base config has no {from:?}");
    BASE.replacen(from, to, 1)
}

#[test]
fn the_shipped_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/casegate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = config::parse(&path, &text, &env).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.server.listen, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(config.server.public_url.scheme(), PublicScheme::Https);
    assert_eq!(
        config.server.public_url.origin(),
        "https://share.example.org"
    );
    assert_eq!(config.server.limits, config::Limits::default());
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(30));
    assert!(config.server.trusted_proxies.is_empty());
    assert_eq!(config.upstream.url.to_string(), "http://127.0.0.1:8080/");
    assert!(!config.upstream.passthrough);
    assert_eq!(config.keys.active, "k1");
    assert_signs_with_the_key_text(&config);
    assert_eq!(config.links.max_ttl, Duration::from_secs(30 * 86_400));
    assert_eq!(config.links.case_pattern.get_ref(), "[A-Za-z0-9_-]{1,64}");
    assert_eq!(config.session.cookie, "__Host-casegate");
    let names: Vec<&str> = config
        .scopes
        .iter()
        .map(|scope| scope.name.as_str())
        .collect();
    assert_eq!(names, ["guest", "legacy", "view"]);
    assert_eq!(config.scope("guest").unwrap().extends, ["view"]);
    assert!(config.scope("view").unwrap().pin_language);
    assert!(config.links.enabled);
    assert!(config.admin.is_none());
    assert_eq!(
        config.state.path,
        path.parent().unwrap().join("var/casegate")
    );
    // Billing stays hidden from every scope that shows the case, the read-only one first.
    for scope in ["view", "guest"] {
        for path in ["/cases/42/billing", "/cases/42/billing/2024"] {
            let target = casegate::policy::canonicalise(path.as_bytes()).unwrap();
            let decision = config.policy.decide(scope, "GET", &target, "42", "s1");
            assert!(!decision.is_allowed(), "{scope} may GET {path}");
        }
        // Asked for by the browser on every page: not a refusal in the log each time.
        let favicon = casegate::policy::canonicalise(b"/favicon.ico").unwrap();
        assert!(
            config
                .policy
                .decide(scope, "GET", &favicon, "42", "s1")
                .is_allowed()
        );
    }
}

/// The shipped config with the lines starting with `comment` commented out and the commented
/// examples starting with `uncomment` switched on; it must be valid.
fn shipped_config_with(comment: &[&str], uncomment: &[&str]) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/casegate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = comment.iter().fold(text, |text, key| {
        text.replace(&format!("\n{key}"), &format!("\n# {key}"))
    });
    let text = uncomment
        .iter()
        .fold(text, |text, key| text.replace(&format!("# {key}"), key));
    config::parse(&path, &text, &env).unwrap_or_else(|errors| panic!("{errors}"))
}

#[test]
fn the_shipped_admin_example_is_valid_once_uncommented() {
    let config = shipped_config_with(
        &[],
        &[
            "[admin]",
            "listen = ",
            "[[admin.clients]]",
            "name = ",
            "token = ",
            "scopes = ",
        ],
    );
    let admin = config.admin.expect("the example's [admin]");
    assert_eq!(admin.listen, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(admin.clients[0].name, "case-app");
    assert_eq!(admin.clients[0].scopes, ["view", "guest"]);
}

#[test]
fn the_shipped_log_example_is_valid_once_uncommented_and_spells_the_defaults() {
    let example = ["[log]", "format = ", "level = ", "access = ", "buffer = "];
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/casegate.toml"))
            .unwrap();
    for line in example {
        assert!(
            shipped.contains(&format!("\n# {line}")),
            "no example {line:?}"
        );
    }
    let uncommented = shipped_config_with(&[], &example);
    let default = shipped_config_with(&[], &[]);
    // The example documents the defaults: switching it on changes nothing.
    assert_eq!(
        format!("{:?}", uncommented.log),
        format!("{:?}", default.log)
    );
    assert_eq!(uncommented.log.buffer, 8192);
    assert_eq!(uncommented.log.level, "info");
}

#[test]
fn the_shipped_redis_example_is_valid_once_uncommented() {
    let config = shipped_config_with(
        &["path = ", "compact_after_bytes = "],
        &[
            "backend = ",
            "url = ",
            "key_prefix = ",
            "max_staleness = ",
            "resync_interval = ",
        ],
    );
    let StateBackend::Redis(redis) = config.state.backend else {
        panic!("the example's backend is not redis");
    };
    assert_eq!(
        redis.url.redacted(),
        "rediss://app:***@redis.internal:6380/1"
    );
    assert_eq!(redis.key_prefix, "casegate:");
    assert_eq!(redis.max_staleness, Duration::from_secs(60));
    assert_eq!(redis.resync_interval, Duration::from_secs(30));
}

#[test]
fn the_base_config_is_valid_and_defaults_fill_the_rest() {
    let config = parse(BASE).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(
        config.server.workers, None,
        "default: the runtime's, one per core"
    );
    assert_eq!(config.upstream.connect_timeout, Duration::from_secs(5));
    assert_eq!(config.upstream.response_timeout, Duration::from_secs(30));
    assert_eq!(config.upstream.pool_idle_timeout, Duration::from_secs(90));
    assert_eq!(
        config.server.loopback_congestion.algorithm(),
        Some("reno"),
        "connections with this host are not paced unless asked"
    );
    let system = BASE.replace(
        "public_url = \"https://share.example.org\"",
        "public_url = \"https://share.example.org\"\nloopback_congestion_control = \"system\"",
    );
    assert_ne!(system, BASE);
    let system = parse(&system).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(system.server.loopback_congestion.algorithm(), None);
    assert_eq!(
        (
            config.upstream.pool_max_requests,
            config.upstream.pool_max_age
        ),
        (1000, Duration::from_secs(3600)),
        "nginx's defaults for its upstream connections"
    );
    assert_eq!(config.links.clock_skew, Duration::from_secs(60));
    let without_lifetimes = BASE.replace("default_ttl = \"24h\"\nmax_ttl = \"30d\"\n", "");
    assert_ne!(without_lifetimes, BASE);
    let defaults = parse(&without_lifetimes).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(defaults.links.default_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(defaults.links.max_ttl, Duration::from_secs(30 * 24 * 3600));
    let without_session_ttl = BASE.replace("ttl = \"12h\"\n", "");
    assert_ne!(without_session_ttl, BASE);
    let defaults = parse(&without_session_ttl).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(defaults.session.ttl, Duration::from_secs(12 * 3600));
    assert_eq!(config.upstream.guest_headers.len(), 1);
    let (name, value) = &config.upstream.guest_headers[0];
    assert_eq!(name, "authorization");
    assert_eq!(value, AUTH_TEXT);
    assert!(value.is_sensitive());
    let rule = &config.scope("view").unwrap().allow[1];
    assert_eq!(rule.get_ref(), "GET /cases/{case}/**");
    assert_eq!(&BASE[rule.span()], "\"GET /cases/{case}/**\"");
}

#[test]
fn workers_sets_the_number_of_runtime_threads() {
    let config = parse(&edit(
        "public_url = \"https://share.example.org\"",
        "public_url = \"https://share.example.org\"\nworkers = 2",
    ))
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.server.workers.map(|n| n.get()), Some(2));
}

#[test]
fn an_admin_section_without_clients_serves_only_metrics_and_health() {
    let config = parse(&format!("{BASE}\n[admin]\nlisten = \"127.0.0.1:9901\"\n"))
        .unwrap_or_else(|errors| panic!("an admin listener without clients is valid: {errors:?}"));
    let admin = config.admin.expect("the [admin] section is kept");
    assert!(admin.clients.is_empty());
}

#[test]
fn debug_output_never_shows_a_secret() {
    let config = parse(BASE).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(KEY_TEXT), "key leaked: {debug}");
    assert!(
        !debug.contains("cmVhZG9ubHk6c2VjcmV0"),
        "guest header leaked: {debug}"
    );
}

#[test]
fn each_broken_config_is_reported_at_the_value_to_fix() {
    let cases: [(&str, String, &str, &str); 50] = [
        (
            "a syntax error is reported where the parser stopped",
            edit("listen = \"127.0.0.1:8443\"", "listen = \"127.0.0.1:8443"),
            "2:25",
            "TOML syntax: invalid basic string",
        ),
        (
            "an unknown field in [server] is named",
            edit(
                "public_url = \"https://share.example.org\"",
                "public_url = \"https://share.example.org\"\nlistn = 1",
            ),
            "4:1",
            "server: unknown field `listn`, expected one of `listen`",
        ),
        (
            "a wrong type names the key",
            edit("max_ttl = \"30d\"", "max_ttl = 30"),
            "21:11",
            "links.max_ttl: invalid type: integer `30`, expected a string",
        ),
        (
            "a missing section is named",
            edit(
                "[upstream]\nurl = \"http://127.0.0.1:8080\"\n\n[upstream.guest_headers]\nAuthorization = { env = \"LEGACY_AUTH\" }\n",
                "",
            ),
            "1:1",
            "missing section [upstream]",
        ),
        (
            "a missing field is reported at its table",
            edit("url = \"http://127.0.0.1:8080\"", ""),
            "5:1",
            "upstream: missing field `url`",
        ),
        (
            "an unknown section is named",
            edit("[session]", "[sessions]\ncookie = \"x\"\n\n[session]"),
            "23:2",
            "unknown section `sessions`",
        ),
        (
            "a bad duration names its unit",
            edit("default_ttl = \"24h\"", "default_ttl = \"24x\""),
            "20:15",
            "links.default_ttl: \"24x\" has an unknown unit `x`",
        ),
        (
            "a default_ttl above max_ttl is refused",
            edit("max_ttl = \"30d\"", "max_ttl = \"12h\""),
            "20:15",
            "links.default_ttl: 24h is longer than links.max_ttl (12h)",
        ),
        (
            "a max_ttl below the default link lifetime is refused at max_ttl",
            edit("default_ttl = \"24h\"\n", "").replace("max_ttl = \"30d\"", "max_ttl = \"12h\""),
            "20:11",
            "links.default_ttl: 1d (the default) is longer than links.max_ttl (12h)",
        ),
        (
            "a __Host- cookie with an http public_url is refused",
            edit("public_url = \"https://", "public_url = \"http://"),
            "24:10",
            "session.cookie: browsers accept a __Host- cookie only over https",
        ),
        (
            "a bad header name in guest_headers is refused",
            edit("Authorization =", "\"Bad Header\" ="),
            "9:1",
            "\"Bad Header\" is not a valid header name",
        ),
        (
            "a guest header casegate owns is refused",
            edit("Authorization =", "X-Forwarded-For ="),
            "9:1",
            "x-forwarded-for is a header casegate or the connection controls",
        ),
        (
            "a missing environment variable is named",
            edit("{ env = \"LEGACY_AUTH\" }", "{ env = \"NOT_SET\" }"),
            "9:25",
            "upstream.guest_headers.Authorization: environment variable NOT_SET is not set",
        ),
        (
            "a secret with two sources is refused",
            edit(
                "{ env = \"CASEGATE_KEY_K1\" }",
                "{ env = \"CASEGATE_KEY_K1\", value = \"x\" }",
            ),
            "15:6",
            "keys.secrets.k1: needs exactly one of env, file or value, not several",
        ),
        (
            "a secret file that does not exist is named",
            edit(
                "{ env = \"CASEGATE_KEY_K1\" }",
                "{ file = \"no-such.key\" }",
            ),
            "15:15",
            "keys.secrets.k1: cannot read secret file no-such.key",
        ),
        (
            "an active key missing from the secrets is refused",
            edit("active = \"k1\"", "active = \"k2\""),
            "12:10",
            "keys.active: \"k2\" is not a key of [keys.secrets] (which has k1)",
        ),
        (
            "a listen address with a host name is refused",
            edit("listen = \"127.0.0.1:8443\"", "listen = \"localhost:8443\""),
            "2:10",
            "server.listen: \"localhost:8443\" is not an address",
        ),
        (
            "an upstream with a path is refused",
            edit(
                "url = \"http://127.0.0.1:8080\"",
                "url = \"http://127.0.0.1:8080/app\"",
            ),
            "6:7",
            "upstream.url: must be an origin only",
        ),
        (
            "an https upstream is refused",
            edit(
                "url = \"http://127.0.0.1:8080\"",
                "url = \"https://127.0.0.1:8443\"",
            ),
            "6:7",
            "upstream.url: only http:// upstreams are supported",
        ),
        (
            "an upstream with user info is refused",
            edit(
                "url = \"http://127.0.0.1:8080\"",
                "url = \"http://user:pw@127.0.0.1:8080\"",
            ),
            "6:7",
            "upstream.url: must not contain a user name or password",
        ),
        (
            "a public_url with a path is refused",
            edit(
                "\"https://share.example.org\"",
                "\"https://share.example.org/app\"",
            ),
            "3:14",
            "server.public_url: must be an origin only",
        ),
        (
            "a prefix without a trailing slash is refused",
            edit("prefix = \"/s/\"", "prefix = \"/s\""),
            "18:10",
            "links.prefix: \"/s\" must start and end with \"/\"",
        ),
        (
            "a bad scope name is refused",
            edit("[scopes.view]", "[scopes.View]"),
            "27:9",
            "scopes: scope name \"View\" must be 1 to 32 characters",
        ),
        (
            "extending an unknown scope is refused",
            edit("allow = [\"GET", "extends = [\"base\"]\nallow = [\"GET"),
            "28:12",
            "scopes.view.extends: there is no scope \"base\"",
        ),
        (
            "a zero limit is refused",
            edit(
                "[upstream]",
                "[server.limits]\nmax_headers = 0\n\n[upstream]",
            ),
            "6:15",
            "server.limits.max_headers: must be between 1 and 1000, not 0",
        ),
        (
            "a zero timeout is refused",
            edit(
                "[upstream]",
                "[server.limits]\nidle_timeout = \"0s\"\n\n[upstream]",
            ),
            "6:16",
            "server.limits.idle_timeout: 0s is out of range; use 1s to 1h",
        ),
        (
            "a per-address cap of zero is refused",
            edit(
                "[upstream]",
                "[server.limits]\nmax_connections_per_address = 0\n\n[upstream]",
            ),
            "6:31",
            "server.limits.max_connections_per_address: must be between 1 and 1000000, not 0",
        ),
        (
            "a body pace of nothing is refused",
            edit(
                "[upstream]",
                "[server.limits]\nbody_min_rate = 0\n\n[upstream]",
            ),
            "6:17",
            "server.limits.body_min_rate: must be between 1 and 1073741824, not 0",
        ),
        (
            "a body timeout past five minutes is refused",
            edit(
                "[upstream]",
                "[server.limits]\nbody_read_timeout = \"1h\"\n\n[upstream]",
            ),
            "6:21",
            "server.limits.body_read_timeout: 1h is out of range; use 100ms to 5m",
        ),
        (
            "more HTTP/2 streams than a thousand is refused",
            edit(
                "[upstream]",
                "[server.limits]\nh2_max_concurrent_streams = 5000\n\n[upstream]",
            ),
            "6:29",
            "server.limits.h2_max_concurrent_streams: must be between 1 and 1000, not 5000",
        ),
        (
            "a congestion control name the kernel could not have is refused",
            edit(
                "public_url = \"https://share.example.org\"",
                "public_url = \"https://share.example.org\"\nloopback_congestion_control = \"BBR 2\"",
            ),
            "4:31",
            "server.loopback_congestion_control: \"BBR 2\" is not a congestion control name",
        ),
        (
            "a pooled connection limited to no requests is refused",
            edit(
                "url = \"http://127.0.0.1:8080\"\n\n[upstream.guest_headers]",
                "url = \"http://127.0.0.1:8080\"\npool_max_requests = 0\n\n[upstream.guest_headers]",
            ),
            "7:21",
            "upstream.pool_max_requests: must be between 1 and 1000000000, not 0",
        ),
        (
            "a pooled connection's age past a day is refused",
            edit(
                "url = \"http://127.0.0.1:8080\"\n\n[upstream.guest_headers]",
                "url = \"http://127.0.0.1:8080\"\npool_max_age = \"2d\"\n\n[upstream.guest_headers]",
            ),
            "7:16",
            "upstream.pool_max_age: 2d is out of range; use 1s to 1d",
        ),
        (
            "an HSTS max-age that is not a duration is refused",
            edit(
                "public_url = \"https://share.example.org\"",
                "public_url = \"https://share.example.org\"\nhsts = \"forever\"",
            ),
            "4:8",
            "server.hsts:",
        ),
        (
            "a shutdown grace of nothing is refused",
            edit(
                "public_url = \"https://share.example.org\"",
                "public_url = \"https://share.example.org\"\nshutdown_grace = \"0s\"",
            ),
            "4:18",
            "server.shutdown_grace: 0s is out of range; use 1s to 1h",
        ),
        (
            "no worker threads at all is refused",
            edit(
                "public_url = \"https://share.example.org\"",
                "public_url = \"https://share.example.org\"\nworkers = 0",
            ),
            "4:11",
            "server.workers: must be between 1 and 1024, not 0",
        ),
        (
            "more worker threads than any machine has cores is refused",
            edit(
                "public_url = \"https://share.example.org\"",
                "public_url = \"https://share.example.org\"\nworkers = 4096",
            ),
            "4:11",
            "server.workers: must be between 1 and 1024, not 4096",
        ),
        (
            "a shutdown grace longer than an hour is refused",
            edit(
                "public_url = \"https://share.example.org\"",
                "public_url = \"https://share.example.org\"\nshutdown_grace = \"2h\"",
            ),
            "4:18",
            "server.shutdown_grace: 2h is out of range; use 1s to 1h",
        ),
        (
            "an unknown field in a nested table names the path",
            edit(
                "[upstream]",
                "[server.limits]\nmax_header = 1\n\n[upstream]",
            ),
            "6:1",
            "server.limits: unknown field `max_header`",
        ),
        (
            "a secret written as a bare string is refused without showing it",
            edit("{ env = \"CASEGATE_KEY_K1\" }", "\"not-the-key\""),
            "15:6",
            "keys.secrets.k1: must be { env = \"NAME\" }, { file = \"path\" } or { value = \"...\" } (what was written is not shown",
        ),
        (
            "a secret source with an unknown key is refused",
            edit("{ env = \"LEGACY_AUTH\" }", "{ envv = \"LEGACY_AUTH\" }"),
            "9:17",
            "upstream.guest_headers.Authorization: takes only env, file or value",
        ),
        (
            "a secret source whose value is not a string is refused at the value",
            edit("{ env = \"LEGACY_AUTH\" }", "{ env = 1 }"),
            "9:25",
            "upstream.guest_headers.Authorization.env: must be a string",
        ),
        (
            "a landing with a trailing slash is refused as the gateway would refuse it",
            edit(
                "landing = \"/cases/{case}\"",
                "landing = \"/cases/{case}/\"",
            ),
            "19:11",
            "links.landing: \"/cases/{case}/\" would be refused by the gateway's request check: trailing `/`",
        ),
        (
            "a landing with a path parameter is refused as the gateway would refuse it",
            edit(
                "landing = \"/cases/{case}\"",
                "landing = \"/cases/{case};v=1\"",
            ),
            "19:11",
            "links.landing: \"/cases/{case};v=1\" would be refused by the gateway's request check: `;` in the path",
        ),
        (
            "a scope's own landing is checked as links.landing is",
            edit(
                "[scopes.view]\n",
                "[scopes.view]\nlanding = \"/cases/{case}/\"\n",
            ),
            "28:11",
            "scopes.view.landing: \"/cases/{case}/\" would be refused by the gateway's request check: trailing `/`",
        ),
        (
            "a scope whose rules do not allow the landing is refused at the landing",
            format!("{BASE}\n[scopes.thin]\nallow = [\"GET /static/**\"]\n"),
            "19:11",
            "links.landing: scope \"thin\" does not allow GET /cases/{case}, where its guests land",
        ),
        (
            "a scope's own landing must be allowed by its rules",
            edit(
                "[scopes.view]\n",
                "[scopes.view]\nlanding = \"/static/start\"\n",
            ),
            "28:11",
            "scopes.view.landing: scope \"view\" does not allow GET /static/start, where its guests land",
        ),
        (
            "a prefix segment ending in a dot is refused as unreachable",
            edit("prefix = \"/s/\"", "prefix = \"/s./\""),
            "18:10",
            "links.prefix: \"/s./\" would be refused by the gateway's request check: path segment ends in `.`",
        ),
        (
            "a key id longer than tokens may carry is refused at the key id",
            BASE.replace("\"k1\"", "\"k0123456789abcdef0123456789abcdef\"")
                .replace("k1 = {", "k0123456789abcdef0123456789abcdef = {"),
            "15:1",
            "keys.secrets: key id \"k0123456789abcdef0123456789abcdef\" must be 1 to 32 characters",
        ),
        (
            "a scope that allows nothing is refused",
            edit(
                "allow = [\"GET /cases/{case}\", \"GET /cases/{case}/**\"]",
                "deny = [\"GET /x\"]",
            ),
            "27:9",
            "scopes.view: allows nothing",
        ),
    ];
    for (name, text, position, fragment) in cases {
        assert_one_problem(name, &text, position, fragment);
    }
}

/// What an operator may write where `{ env = ... }` belongs, with the secret in it: whatever the
/// shape, the report names the place and never the text.
#[test]
fn a_secret_written_in_the_wrong_shape_is_never_shown() {
    const NUMBER: &str = "987654321987654321";
    // Each shape, and how far into it the problem is reported: at the whole source, or at the
    // value after `{ value = `.
    let shapes = [
        ("a bare string", format!("\"{KEY_TEXT}\""), KEY_TEXT, 0),
        ("a number", NUMBER.to_owned(), NUMBER, 0),
        ("an array", format!("[\"{KEY_TEXT}\"]"), KEY_TEXT, 0),
        (
            "an unknown field holding the secret",
            format!("{{ val = \"{KEY_TEXT}\" }}"),
            KEY_TEXT,
            0,
        ),
        (
            "the secret written as a key",
            format!("{{ \"{KEY_TEXT}\" = \"x\" }}"),
            KEY_TEXT,
            0,
        ),
        (
            "a number as the value",
            format!("{{ value = {NUMBER} }}"),
            NUMBER,
            10,
        ),
        (
            "an array as the value",
            format!("{{ value = [\"{KEY_TEXT}\"] }}"),
            KEY_TEXT,
            10,
        ),
        (
            "a table as the value",
            format!("{{ value = {{ v = \"{KEY_TEXT}\" }} }}"),
            KEY_TEXT,
            10,
        ),
    ];
    // Where each secret table's source starts in BASE, and the key path it is reported under.
    let places = [
        ("{ env = \"CASEGATE_KEY_K1\" }", 15, 6, "keys.secrets.k1"),
        (
            "{ env = \"LEGACY_AUTH\" }",
            9,
            17,
            "upstream.guest_headers.Authorization",
        ),
    ];
    for (from, line, column, path) in places {
        for (shape, written, secret, offset) in &shapes {
            let errors = parse(&edit(from, written)).unwrap_err();
            let shown = errors.to_string();
            let debug = format!("{errors:?}");
            assert!(
                !shown.contains(secret) && !debug.contains(secret),
                "{shape} under {path} shows the secret: {shown}"
            );
            let expected_start = format!("test.toml:{line}:{}: {path}", column + offset);
            assert!(
                errors.problems().len() == 1 && shown.starts_with(&expected_start),
                "{shape} under {path}: expected one problem starting {expected_start:?}, found {shown}"
            );
        }
    }
}

/// serde's refusal of a whole secret table quotes what it refused; that is not shown either.
#[test]
fn a_secret_table_written_as_a_value_is_never_shown() {
    let cases = [
        (
            "keys.secrets as a string",
            edit(
                "[keys.secrets]\nk1 = { env = \"CASEGATE_KEY_K1\" }",
                &format!("secrets = \"{KEY_TEXT}\""),
            ),
            "test.toml:14:11: keys.secrets: ",
        ),
        (
            "guest_headers as a string",
            edit(
                "[upstream.guest_headers]\nAuthorization = { env = \"LEGACY_AUTH\" }",
                &format!("guest_headers = \"{KEY_TEXT}\""),
            ),
            "test.toml:8:17: upstream.guest_headers: ",
        ),
    ];
    for (name, text, expected_start) in cases {
        let shown = parse(&text).unwrap_err().to_string();
        assert!(
            !shown.contains(KEY_TEXT),
            "{name} shows the secret: {shown}"
        );
        assert!(shown.starts_with(expected_start), "{name}: {shown}");
    }
}

#[test]
fn problems_in_several_sections_are_all_reported_in_file_order() {
    let text = BASE
        .replace("listen = \"127.0.0.1:8443\"", "listen = \"nowhere\"")
        .replace(
            "url = \"http://127.0.0.1:8080\"",
            "url = \"https://127.0.0.1:8080\"",
        )
        .replace("{ env = \"CASEGATE_KEY_K1\" }", "{ env = \"UNSET_KEY\" }")
        .replace("default_ttl = \"24h\"", "default_ttl = \"1.5h\"")
        .replace("ttl = \"12h\"", "ttl = \"12\"")
        .replace("[scopes.view]", "[scopes.view]\nextends = [\"view\"]");
    let expected = [
        "test.toml:2:10: server.listen: \"nowhere\" is not an address",
        "test.toml:6:7: upstream.url: only http:// upstreams are supported",
        "test.toml:15:14: keys.secrets.k1: environment variable UNSET_KEY is not set",
        "test.toml:20:15: links.default_ttl: \"1.5h\" cannot have a fraction",
        "test.toml:25:7: session.ttl: \"12\" has no unit",
        "test.toml:28:12: scopes.view.extends: a scope cannot extend itself",
    ];
    assert_problems(&text, &expected);
}

#[test]
fn unknown_keys_hide_neither_each_other_nor_the_other_problems_of_their_section() {
    let text = BASE
        .replace(
            "public_url = \"https://share.example.org\"\n",
            "public_url = \"https://share.example.org\"\ntrusted_proxies = [\"0.0.0.0/0\"]\n\n\
             [server.limits]\nunknown_limit = 5\nidle_timeout = \"2h\"\nother_limit = 6\n",
        )
        .replace(
            "[scopes.view]",
            "[scopes.view]\nbogus_key = 1\nextends = [\"view\"]",
        );
    let limits = "expected one of `header_read_timeout`, `tls_handshake_timeout`, `idle_timeout`, \
                  `max_header_bytes`, `max_headers`, `max_body_bytes`, `max_connections`, \
                  `max_connections_per_address`, `body_read_timeout`, `body_min_rate`, \
                  `h2_max_concurrent_streams`";
    let expected = [
        "test.toml:4:20: server.trusted_proxies: \"0.0.0.0/0\" covers every address".to_owned(),
        format!("test.toml:7:1: server.limits: unknown field `unknown_limit`, {limits}"),
        "test.toml:8:16: server.limits.idle_timeout: 2h is out of range; use 1s to 1h".to_owned(),
        format!("test.toml:9:1: server.limits: unknown field `other_limit`, {limits}"),
        "test.toml:34:1: scopes.view: unknown field `bogus_key`, expected one of `extends`, \
         `allow`, `deny`, `upgrade`, `pin_language`, `verify_email`"
            .to_owned(),
        "test.toml:35:12: scopes.view.extends: a scope cannot extend itself".to_owned(),
    ];
    assert_problems(&text, &expected);
}

/// One unknown key in every table a config may have, nested ones included, and nothing else wrong.
const AN_UNKNOWN_KEY_IN_EVERY_TABLE: &str = r#"[server]
listen = "127.0.0.1:8443"
public_url = "https://share.example.org"
listen_backlog = 128

[server.limits]
max_header = 1

[upstream]
url = "http://127.0.0.1:8080"
retries = 3

[upstream.guest_headers]
Authorization = { env = "LEGACY_AUTH", header = "x" }

[keys]
active = "k1"
previous = "k0"

[keys.secrets]
k1 = { env = "CASEGATE_KEY_K1", kid = "k1" }

[links]
prefix = "/s/"
landing = "/cases/{case}"
max_tll = "30d"

[session]
cookie = "__Host-casegate"
secure = true

[scopes.view]
allow = ["GET /cases/{case}"]
alow = ["GET /cases/{case}/**"]

[admin]
listen = "127.0.0.1:9901"
bind = "127.0.0.1:9902"

[[admin.clients]]
name = "case-app"
token = { env = "CASEGATE_ADMIN_TOKEN" }
scopes = ["view"]
scope = "view"

[state]
engine = "redis"

[verify]
code_length = 6

[mail]
smtp = "smtp://127.0.0.1:2525"
from = "a@b.example"
port = 25

[pages]
directory = "pages"

[log]
file = "access.log"
"#;

#[test]
fn an_unknown_key_is_reported_at_its_own_line_in_every_table_and_nested_table() {
    // A secret source is blamed as a whole: the key written in it may be the secret.
    let expected = [
        "test.toml:4:1: server: unknown field `listen_backlog`, expected one of `listen`",
        "test.toml:7:1: server.limits: unknown field `max_header`, expected one of",
        "test.toml:11:1: upstream: unknown field `retries`, expected one of `url`",
        "test.toml:14:17: upstream.guest_headers.Authorization: takes only env, file or value",
        "test.toml:18:1: keys: unknown field `previous`, expected `active` or `secrets`",
        "test.toml:21:6: keys.secrets.k1: takes only env, file or value",
        "test.toml:26:1: links: unknown field `max_tll`, expected one of `prefix`",
        "test.toml:30:1: session: unknown field `secure`, expected `cookie` or `ttl`",
        "test.toml:34:1: scopes.view: unknown field `alow`, expected one of `extends`, `allow`",
        "test.toml:38:1: admin: unknown field `bind`, expected one of `listen`",
        "test.toml:44:1: admin.clients: unknown field `scope`, expected one of `name`",
        "test.toml:47:1: state: unknown field `engine`, expected one of `backend`",
        "test.toml:50:1: verify: unknown field `code_length`, expected one of `code_ttl`",
        "test.toml:55:1: mail: unknown field `port`, expected one of `smtp`",
        "test.toml:58:1: pages: unknown field `directory`, expected `dir`",
        "test.toml:61:1: log: unknown field `file`, expected one of `format`",
    ];
    assert_problems(AN_UNKNOWN_KEY_IN_EVERY_TABLE, &expected);
}

#[test]
fn more_unknown_keys_than_a_section_sheds_are_still_refused() {
    let typos: String = (0..150).map(|n| format!("typo_{n:03} = {n}\n")).collect();
    let text = edit("[upstream]", &format!("{typos}\n[upstream]"));
    let found = problems(&text);
    // Every key up to the bound is reported, the one that finds the bound too, and then the
    // section is given up on.
    assert_eq!(found.len(), 101, "{found:#?}");
    assert!(
        found
            .iter()
            .all(|problem| problem.contains("server: unknown field `typo_")),
        "{found:#?}"
    );
}

#[test]
fn a_syntax_error_does_not_hide_problems_elsewhere() {
    let text = BASE
        .replace("listen = \"127.0.0.1:8443\"", "listen = 127.0.0.1:8443")
        .replace("prefix = \"/s/\"", "prefix = \"s\"");
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("test.toml:2:15: TOML syntax: invalid float"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("test.toml:18:10: links.prefix:"),
        "{found:#?}"
    );
}

#[test]
fn more_scopes_than_the_cap_are_refused_and_a_chain_at_the_cap_is_fine() {
    // A chain: each scope extends the one before, as deep as the scopes allow.
    let chain = |count: usize| {
        (1..count)
            .map(|index| {
                let parent = if index == 1 {
                    "view".to_owned()
                } else {
                    format!("s{}", index - 1)
                };
                format!("\n[scopes.s{index}]\nextends = [\"{parent}\"]\n")
            })
            .collect::<String>()
    };
    let at_cap = format!("{BASE}{}", chain(256));
    assert!(problems(&at_cap).is_empty(), "{:#?}", problems(&at_cap));
    let over = format!("{BASE}{}", chain(257));
    let found = problems(&over);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("scopes: at most 256 scopes, not 257"),
        "{found:#?}"
    );
}

#[test]
fn scopes_that_extend_each_other_in_a_loop_are_refused() {
    let text = format!("{BASE}extends = [\"other\"]\n\n[scopes.other]\nextends = [\"view\"]\n");
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0]
            .starts_with("test.toml:29:12: scopes.view.extends: \"other\" leads back to \"view\""),
        "{found:#?}"
    );
    assert!(
        found[1]
            .starts_with("test.toml:32:12: scopes.other.extends: \"view\" leads back to \"other\""),
        "{found:#?}"
    );
}

#[test]
fn relative_files_are_read_beside_the_config_file() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/k1.key"), format!("{KEY_TEXT}\n")).unwrap();
    let text = BASE.replace(
        "{ env = \"CASEGATE_KEY_K1\" }",
        "{ file = \"secrets/k1.key\" }",
    );
    let config = config::parse(&dir.join("casegate.toml"), &text, &env)
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert_signs_with_the_key_text(&config);
}

#[test]
fn tls_files_must_exist() {
    let text = BASE.replace(
        "[upstream]",
        "[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n\n[upstream]",
    );
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("test.toml:6:8: server.tls.cert: cannot open tls/cert.pem"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("test.toml:7:7: server.tls.key: cannot open tls/key.pem"),
        "{found:#?}"
    );
}

#[test]
fn an_access_log_file_needs_a_directory_that_exists_and_check_creates_nothing() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("a-file"), "").unwrap();
    let config_path = dir.join("casegate.toml");
    let shown = |name: &str| dir.join(name).display().to_string();
    // `[log]` is line 30 after BASE's 28 lines and a blank one; the value starts at column 10.
    let cases = [
        (
            "a file in a missing directory",
            "missing/access.log",
            Some(format!(
                "cannot write {}: directory {} does not exist",
                shown("missing/access.log"),
                shown("missing")
            )),
        ),
        (
            "a file under a file",
            "a-file/access.log",
            Some(format!(
                "cannot write {}: {} is not a directory",
                shown("a-file/access.log"),
                shown("a-file")
            )),
        ),
        (
            "a directory",
            "logs",
            Some(format!("cannot write {}: it is a directory", shown("logs"))),
        ),
        ("a file in a directory that exists", "logs/access.log", None),
        ("a file beside the config", "access.log", None),
    ];
    for (name, access, problem) in cases {
        let text = format!("{BASE}\n[log]\naccess = {access:?}\n");
        let found = problems_at(&config_path, &text);
        match problem {
            None => assert!(found.is_empty(), "{name}: {found:#?}"),
            Some(problem) => {
                let expected = format!("{}:31:10: log.access: {problem}", config_path.display());
                assert!(
                    found.len() == 1 && found[0].starts_with(&expected),
                    "{name}: expected {expected:?}, found {found:#?}"
                );
            }
        }
    }
    for never_created in ["missing", "logs/access.log", "access.log"] {
        assert!(!dir.join(never_created).exists(), "{never_created}");
    }
}

#[test]
fn an_unreadable_file_is_one_problem_about_the_whole_file() {
    let path = PathBuf::from("/nonexistent/casegate.toml");
    let errors = config::load(&path).unwrap_err();
    assert_eq!(errors.problems().len(), 1);
    assert!(
        errors
            .to_string()
            .starts_with("/nonexistent/casegate.toml: cannot read:"),
        "{errors}"
    );
}

/// `[admin]` and `[state]` as appended to BASE (which has 28 lines): `[admin]` is line 30.
fn admin_text() -> String {
    format!(
        r#"{BASE}
[admin]
listen = "127.0.0.1:9901"

[[admin.clients]]
name = "case-app"
token = {{ env = "CASEGATE_ADMIN_TOKEN" }}
scopes = ["view"]

[[admin.clients]]
name = "billing"
token = {{ value = "{OTHER_ADMIN_TOKEN}" }}
scopes = ["view", "guest"]

[scopes.guest]
extends = ["view"]

[state]
path = "state/casegate"
use_flush_interval = "500ms"
compact_after_bytes = 1048576
"#
    )
}

fn edit_admin(from: &str, to: &str) -> String {
    let text = admin_text();
    assert!(text.contains(from), "the admin config has no {from:?}");
    text.replacen(from, to, 1)
}

#[test]
fn admin_state_and_the_sharing_switch_are_read() {
    let config = parse(&admin_text()).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(config.links.enabled);
    let admin = config.admin.expect("an [admin] section");
    assert_eq!(admin.listen, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(admin.max_body_bytes, 65_536);
    let clients: Vec<(&str, &[u8], Vec<&str>)> = admin
        .clients
        .iter()
        .map(|client| {
            (
                client.name.as_str(),
                client.token.as_bytes(),
                client.scopes.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        clients,
        [
            ("case-app", ADMIN_TOKEN.as_bytes(), vec!["view"]),
            (
                "billing",
                OTHER_ADMIN_TOKEN.as_bytes(),
                vec!["view", "guest"]
            ),
        ]
    );
    // Relative to the config file's directory, like every file the config names.
    assert_eq!(config.state.path, Path::new("state/casegate"));
    assert_eq!(config.state.use_flush_interval, Duration::from_millis(500));
    assert_eq!(config.state.compact_after_bytes, 1_048_576);

    let switched_off = edit("max_ttl = \"30d\"", "max_ttl = \"30d\"\nenabled = false");
    let config = parse(&switched_off).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(!config.links.enabled);
}

#[test]
fn without_admin_or_state_there_is_no_admin_api_and_state_has_defaults() {
    let dir = Path::new("/etc/casegate");
    let config =
        config::parse(&dir.join("casegate.toml"), BASE, &env).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.admin.is_none());
    assert!(config.links.enabled);
    assert_eq!(config.state.path, dir.join("var/casegate"));
    assert_eq!(config.state.use_flush_interval, Duration::from_secs(2));
    assert_eq!(config.state.compact_after_bytes, 64 * 1024 * 1024);
}

#[test]
fn debug_output_never_shows_an_admin_token() {
    let config = parse(&admin_text()).unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("case-app"), "{debug}");
    for token in [ADMIN_TOKEN, OTHER_ADMIN_TOKEN] {
        assert!(!debug.contains(token), "admin token leaked: {debug}");
    }
}

#[test]
fn each_broken_admin_or_state_config_is_reported_at_the_value_to_fix() {
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "an admin listen that is not an address",
            edit_admin("listen = \"127.0.0.1:9901\"", "listen = \"localhost:9901\""),
            "31:10",
            "admin.listen: \"localhost:9901\" is not an address",
        ),
        (
            "the server's own address",
            edit_admin("listen = \"127.0.0.1:9901\"", "listen = \"127.0.0.1:8443\""),
            "31:10",
            "admin.listen: 127.0.0.1:8443 is also server.listen",
        ),
        (
            "every interface on the server's port",
            edit_admin("listen = \"127.0.0.1:9901\"", "listen = \"0.0.0.0:8443\""),
            "31:10",
            "is also server.listen",
        ),
        (
            "an admin body limit out of range",
            edit_admin(
                "listen = \"127.0.0.1:9901\"",
                "listen = \"127.0.0.1:9901\"\nmax_body_bytes = 10",
            ),
            "32:18",
            "admin.max_body_bytes: must be between 1024 and 16777216, not 10",
        ),
        (
            "a client name with a space",
            edit_admin("name = \"case-app\"", "name = \"case app\""),
            "34:8",
            "admin.clients[0].name: \"case app\" must be 1 to 64 characters",
        ),
        (
            "two clients of one name",
            edit_admin("name = \"billing\"", "name = \"case-app\""),
            "39:8",
            "admin.clients[1].name: \"case-app\" names another client too",
        ),
        (
            "a short token",
            edit_admin(
                &format!("{{ value = \"{OTHER_ADMIN_TOKEN}\" }}"),
                "{ value = \"short-token\" }",
            ),
            "40:9",
            "admin.clients[1].token: is shorter than 32 bytes",
        ),
        (
            "a token from an unset variable",
            edit_admin("CASEGATE_ADMIN_TOKEN", "UNSET_ADMIN_TOKEN"),
            "35:17",
            "admin.clients[0].token: environment variable UNSET_ADMIN_TOKEN is not set",
        ),
        (
            "two clients sharing a token",
            edit_admin(
                &format!("{{ value = \"{OTHER_ADMIN_TOKEN}\" }}"),
                &format!("{{ value = \"{ADMIN_TOKEN}\" }}"),
            ),
            "40:9",
            "admin.clients[1].token: is the same as another client's token",
        ),
        (
            "a scope that is not configured",
            edit_admin("scopes = [\"view\"]", "scopes = [\"edit\"]"),
            "36:11",
            "admin.clients[0].scopes: there is no scope \"edit\" in [scopes]",
        ),
        (
            "a scope listed twice",
            edit_admin("scopes = [\"view\"]", "scopes = [\"view\", \"view\"]"),
            "36:19",
            "admin.clients[0].scopes: \"view\" is listed twice",
        ),
        (
            "a client that may share nothing",
            edit_admin("scopes = [\"view\"]", "scopes = []"),
            "36:10",
            "admin.clients[0].scopes: needs at least one scope",
        ),
        (
            "a client without scopes",
            edit_admin("scopes = [\"view\"]\n", ""),
            "33:1",
            "missing field `scopes`",
        ),
        (
            "an unknown key in a client",
            edit_admin(
                "scopes = [\"view\"]",
                "scopes = [\"view\"]\nscope = \"view\"",
            ),
            "37:1",
            "unknown field `scope`",
        ),
        (
            "a flush interval out of range",
            edit_admin(
                "use_flush_interval = \"500ms\"",
                "use_flush_interval = \"1h\"",
            ),
            "48:22",
            "state.use_flush_interval: 1h is out of range; use 100ms to 5m",
        ),
        (
            "a compaction threshold too small",
            edit_admin("compact_after_bytes = 1048576", "compact_after_bytes = 100"),
            "49:23",
            "state.compact_after_bytes: must be between 65536",
        ),
        (
            "an empty state path",
            edit_admin("path = \"state/casegate\"", "path = \"\""),
            "47:8",
            "state.path: is empty",
        ),
        (
            "an unknown key in [state]",
            edit_admin("path = \"state/casegate\"", "engine = \"redis\""),
            "47:1",
            "state: unknown field `engine`",
        ),
        (
            "a sharing switch that is not a boolean",
            edit("max_ttl = \"30d\"", "max_ttl = \"30d\"\nenabled = \"no\""),
            "22:11",
            "links.enabled: invalid type: string \"no\", expected a boolean",
        ),
    ];
    for (name, text, position, fragment) in cases {
        assert_one_problem(name, &text, position, fragment);
    }
}

#[test]
fn an_admin_token_written_in_the_wrong_shape_is_never_shown() {
    for written in [
        format!("\"{ADMIN_TOKEN}\""),
        format!("{{ val = \"{ADMIN_TOKEN}\" }}"),
        format!("[\"{ADMIN_TOKEN}\"]"),
    ] {
        let text = edit_admin("{ env = \"CASEGATE_ADMIN_TOKEN\" }", &written);
        let errors = parse(&text).unwrap_err();
        let shown = format!("{errors} {errors:?}");
        assert!(!shown.contains(ADMIN_TOKEN), "{written}: {shown}");
        assert!(
            errors.problems().len() == 1 && shown.starts_with("test.toml:35:9: admin.clients"),
            "{written}: {shown}"
        );
    }
}

#[test]
fn every_admin_and_state_problem_is_reported_at_once_in_file_order() {
    let text = admin_text()
        .replace("listen = \"127.0.0.1:9901\"", "listen = \"127.0.0.1:8443\"")
        .replace("name = \"case-app\"", "name = \"case app\"")
        .replace("scopes = [\"view\", \"guest\"]", "scopes = [\"edit\"]")
        .replace("compact_after_bytes = 1048576", "compact_after_bytes = -1");
    let expected = [
        "test.toml:31:10: admin.listen:",
        "test.toml:34:8: admin.clients[0].name:",
        "test.toml:41:11: admin.clients[1].scopes: there is no scope \"edit\"",
        "test.toml:49:23: state.compact_after_bytes:",
    ];
    assert_problems(&text, &expected);
}

/// BASE with a `[state]` section of these lines; `[state]` is line 30.
fn state_text(lines: &str) -> String {
    format!("{BASE}\n[state]\n{lines}\n")
}

#[test]
fn a_redis_backend_is_read_with_its_defaults_and_its_url_from_a_secret_source() {
    let config = parse(&state_text(
        "backend = \"redis\"\nurl = { env = \"CASEGATE_REDIS_URL\" }",
    ))
    .expect("valid");
    let StateBackend::Redis(redis) = &config.state.backend else {
        panic!("not the redis backend: {:?}", config.state.backend);
    };
    assert_eq!(
        redis.url.redacted(),
        "rediss://app:***@redis.internal:6380/1"
    );
    assert_eq!(redis.key_prefix, "casegate:");
    assert_eq!(redis.max_staleness, Duration::from_secs(60));
    assert_eq!(redis.resync_interval, Duration::from_secs(30));
    assert_eq!(config.state.use_flush_interval, Duration::from_secs(2));
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let config = parse(&state_text(
        "backend = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\nkey_prefix = \"clinic-a:\"\n\
         max_staleness = \"10s\"\nresync_interval = \"5m\"\nuse_flush_interval = \"1s\"",
    ))
    .expect("valid");
    let StateBackend::Redis(redis) = &config.state.backend else {
        panic!("not the redis backend");
    };
    assert_eq!(redis.url.redacted(), "redis://127.0.0.1:6379/0");
    assert_eq!(redis.key_prefix, "clinic-a:");
    assert_eq!(redis.max_staleness, Duration::from_secs(10));
    assert_eq!(redis.resync_interval, Duration::from_secs(300));
    assert_eq!(config.state.use_flush_interval, Duration::from_secs(1));
    assert_eq!(
        parse(&state_text("backend = \"embedded\""))
            .expect("valid")
            .state
            .backend,
        StateBackend::Embedded
    );
}

#[test]
fn each_broken_redis_state_config_is_reported_at_the_value_to_fix() {
    let redis = |rest: &str| state_text(&format!("backend = \"redis\"\n{rest}"));
    let cases = [
        (
            "an unknown backend",
            state_text("backend = \"postgres\""),
            "31:11",
            "state.backend: \"postgres\" is not \"embedded\" or \"redis\"",
        ),
        (
            "redis without a url",
            state_text("backend = \"redis\""),
            "31:11",
            "state: backend = \"redis\" needs url",
        ),
        (
            "another scheme",
            redis("url = \"http://redis:6379\""),
            "32:7",
            "state.url: must start with redis:// or rediss://",
        ),
        (
            "an unparsable url",
            redis("url = \"redis://app:hunter2-redis@redis:port/0\""),
            "32:7",
            "state.url: is not a usable Redis URL",
        ),
        (
            "a database that is no number",
            redis("url = \"redis://app:hunter2-redis@redis/zero\""),
            "32:7",
            "state.url: is not a usable Redis URL",
        ),
        (
            "certificate checks turned off",
            redis("url = \"rediss://redis:6380/0#insecure\""),
            "32:7",
            "state.url: #insecure turns off certificate checks",
        ),
        (
            "a secret source naming another scheme",
            redis("url = { env = \"NOT_A_REDIS_URL\" }"),
            "32:7",
            "state.url: must start with redis://",
        ),
        (
            "a secret source that is not set",
            redis("url = { env = \"UNSET_REDIS_URL\" }"),
            "32:15",
            "state.url: environment variable UNSET_REDIS_URL is not set",
        ),
        (
            "a url that is a number",
            redis("url = 6379"),
            "32:7",
            "state.url: must be a URL like",
        ),
        (
            "staleness zero",
            redis("url = \"redis://r:6379\"\nmax_staleness = \"0s\""),
            "33:17",
            "state.max_staleness: 0s is out of range; use 1s to 1h",
        ),
        (
            "staleness too long",
            redis("url = \"redis://r:6379\"\nmax_staleness = \"2h\""),
            "33:17",
            "state.max_staleness: 2h is out of range",
        ),
        (
            "a resync too often",
            redis("url = \"redis://r:6379\"\nresync_interval = \"100ms\""),
            "33:19",
            "state.resync_interval: 100ms is out of range",
        ),
        (
            "a key prefix with a space",
            redis("url = \"redis://r:6379\"\nkey_prefix = \"clinic a:\""),
            "33:14",
            "state.key_prefix: \"clinic a:\" must be 1 to 64 characters",
        ),
        (
            "an empty key prefix",
            redis("url = \"redis://r:6379\"\nkey_prefix = \"\""),
            "33:14",
            "state.key_prefix: \"\" must be",
        ),
        (
            "a directory with redis",
            redis("url = \"redis://r:6379\"\npath = \"var/casegate\""),
            "33:8",
            "state.path: not used with backend = \"redis\"",
        ),
        (
            "a compaction threshold with redis",
            redis("url = \"redis://r:6379\"\ncompact_after_bytes = 1048576"),
            "33:23",
            "state.compact_after_bytes: not used with backend = \"redis\"",
        ),
        (
            "a url without redis",
            state_text("url = \"redis://r:6379\""),
            "31:7",
            "state.url: only used with backend = \"redis\"",
        ),
        (
            "a staleness without redis",
            state_text("max_staleness = \"5s\""),
            "31:17",
            "state.max_staleness: only used with backend = \"redis\"",
        ),
        (
            "a key prefix without redis",
            state_text("key_prefix = \"a:\""),
            "31:14",
            "state.key_prefix: only used with backend = \"redis\"",
        ),
        (
            "a resync interval without redis",
            state_text("resync_interval = \"5s\""),
            "31:19",
            "state.resync_interval: only used with backend = \"redis\"",
        ),
    ];
    for (name, text, position, fragment) in cases {
        let problem = assert_one_problem(name, &text, position, fragment);
        assert!(
            !problem.contains("hunter2"),
            "{name} shows the password: {problem}"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Whatever the text, validation answers (never panics) and every problem points inside it.
    #[test]
    fn every_problem_points_inside_the_file(cut in 0..BASE.len(), insert in "[ -~\n]{0,12}") {
        let mut text = BASE.as_bytes()[..cut].to_vec();
        text.extend_from_slice(insert.as_bytes());
        text.extend_from_slice(&BASE.as_bytes()[cut..]);
        let text = String::from_utf8(text).unwrap();
        let lines = text.lines().count().max(1);
        if let Err(errors) = parse(&text) {
            for problem in errors.problems() {
                proptest::prop_assert!((1..=lines + 1).contains(&problem.line), "{problem}");
                proptest::prop_assert!(problem.column >= 1, "{problem}");
            }
        }
    }

    /// Durations never panic, and what is accepted formats back to the same length of time.
    #[test]
    fn durations_round_trip_or_refuse(text in "[0-9a-z.+-]{0,12}") {
        if let Ok(duration) = config::parse_duration(&text) {
            proptest::prop_assert_eq!(config::parse_duration(&config::format_duration(duration)), Ok(duration));
        }
    }
}

#[test]
fn trusted_proxies_are_read_and_every_bad_entry_is_reported_at_its_line() {
    let config = parse(&edit(
        "public_url = \"https://share.example.org\"",
        "public_url = \"https://share.example.org\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\", \"::1/128\"]",
    ))
    .unwrap_or_else(|errors| panic!("{errors}"));
    let trusted = &config.server.trusted_proxies;
    for (address, believed) in [
        ("10.200.0.1", true),
        ("192.168.1.7", true),
        ("192.168.1.8", false),
        ("::1", true),
        ("127.0.0.1", false),
    ] {
        assert_eq!(
            trusted.contains(address.parse().unwrap()),
            believed,
            "{address}"
        );
    }
    assert!(
        parse(BASE).unwrap().server.trusted_proxies.is_empty(),
        "nobody is trusted by default"
    );

    let text = edit(
        "public_url = \"https://share.example.org\"",
        "public_url = \"https://share.example.org\"\ntrusted_proxies = [\n  \"10.0.0.0/8\",\n  \"10.0.0.1/8\",\n  \"lb.internal\",\n  \"10.0.0.0/33\",\n  \"0.0.0.0/0\",\n  \"10.0.0.0/8\",\n  \"::ffff:10.0.0.1\",\n]",
    );
    let expected = [
        "test.toml:6:3: server.trusted_proxies: \"10.0.0.1/8\" has address bits set past its prefix length; the range is written 10.0.0.0/8",
        "test.toml:7:3: server.trusted_proxies: \"lb.internal\" is not an address or a range",
        "test.toml:8:3: server.trusted_proxies: \"10.0.0.0/33\" has a prefix length that is not a number from 1 to 32",
        "test.toml:9:3: server.trusted_proxies: \"0.0.0.0/0\" covers every address",
        "test.toml:10:3: server.trusted_proxies: 10.0.0.0/8 is listed twice",
        "test.toml:11:3: server.trusted_proxies: \"::ffff:10.0.0.1\" is an IPv4-mapped IPv6 address",
    ];
    assert_problems(&text, &expected);
    let not_a_list = edit(
        "public_url = \"https://share.example.org\"",
        "public_url = \"https://share.example.org\"\ntrusted_proxies = \"10.0.0.0/8\"",
    );
    assert!(
        problems(&not_a_list)[0]
            .starts_with("test.toml:4:19: server.trusted_proxies: invalid type"),
        "{:?}",
        problems(&not_a_list)
    );
}

#[test]
fn hsts_is_on_by_default_and_can_be_adjusted_or_switched_off() {
    let header = |text: &str| {
        parse(text)
            .unwrap_or_else(|errors| panic!("{errors}"))
            .server
            .hsts
            .map(|value| value.to_str().unwrap().to_owned())
    };
    assert_eq!(header(BASE).as_deref(), Some("max-age=31536000"));
    let https = "public_url = \"https://share.example.org\"";
    let with = |line: &str| edit(https, &format!("{https}\n{line}"));
    assert_eq!(
        header(&with("hsts = true")).as_deref(),
        Some("max-age=31536000")
    );
    assert_eq!(
        header(&with("hsts = \"180d\"")).as_deref(),
        Some("max-age=15552000")
    );
    assert_eq!(header(&with("hsts = \"0s\"")).as_deref(), Some("max-age=0"));
    assert_eq!(header(&with("hsts = false")), None);
}

#[test]
fn io_uring_is_on_by_default_and_can_be_switched_off() {
    let io_uring = |text: &str| {
        parse(text)
            .unwrap_or_else(|errors| panic!("{errors}"))
            .server
            .io_uring
    };
    assert!(io_uring(BASE));
    let https = "public_url = \"https://share.example.org\"";
    let with = |line: &str| edit(https, &format!("{https}\n{line}"));
    assert!(io_uring(&with("io_uring = true")));
    assert!(!io_uring(&with("io_uring = false")));
    let problems = problems(&with("io_uring = \"off\""));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("4:12") && problems[0].contains("io_uring"),
        "{problems:?}"
    );
}

#[test]
fn the_exhaustion_limits_have_their_documented_defaults_and_can_be_set() {
    let defaults = parse(BASE)
        .unwrap_or_else(|errors| panic!("{errors}"))
        .server
        .limits;
    assert_eq!(defaults.max_connections_per_address, 512);
    assert_eq!(defaults.body_read_timeout, Duration::from_secs(30));
    assert_eq!(defaults.body_min_rate, 1024);
    assert_eq!(defaults.h2_max_concurrent_streams, 128);
    let set = parse(&edit(
        "[upstream]",
        "[server.limits]\nmax_connections_per_address = 8\nbody_read_timeout = \"2s\"\n\
         body_min_rate = 100\nh2_max_concurrent_streams = 16\n\n[upstream]",
    ))
    .unwrap_or_else(|errors| panic!("{errors}"))
    .server
    .limits;
    assert_eq!(set.max_connections_per_address, 8);
    assert_eq!(set.body_read_timeout, Duration::from_secs(2));
    assert_eq!(set.body_min_rate, 100);
    assert_eq!(set.h2_max_concurrent_streams, 16);
}

#[test]
fn guest_forward_headers_are_read_and_every_unsafe_name_is_reported_at_its_line() {
    let url = "url = \"http://127.0.0.1:8080\"";
    let config = parse(&edit(
        url,
        &format!("{url}\nguest_forward_headers = [\"X-CSRF-Token\", \"x-app-version\"]"),
    ))
    .unwrap_or_else(|errors| panic!("{errors}"));
    let names: Vec<&str> = config
        .upstream
        .guest_forward_headers
        .iter()
        .map(|name| name.as_str())
        .collect();
    assert_eq!(names, ["x-csrf-token", "x-app-version"]);
    assert!(
        parse(BASE)
            .unwrap()
            .upstream
            .guest_forward_headers
            .is_empty(),
        "no extra header by default"
    );

    let text = edit(
        url,
        &format!(
            "{url}\nguest_forward_headers = [\n  \"X-CSRF-Token\",\n  \"x-csrf-token\",\n  \"Cookie\",\n  \"X-Api-Key\",\n  \"X-Forwarded-User\",\n  \"X_User\",\n  \"Connection\",\n  \"Expect\",\n  \"Accept\",\n  \"bad header\",\n]"
        ),
    );
    let expected = [
        "test.toml:9:3: upstream.guest_forward_headers: \"x-csrf-token\" is listed twice",
        "test.toml:10:3: upstream.guest_forward_headers: \"Cookie\" is a credential",
        "test.toml:11:3: upstream.guest_forward_headers: \"X-Api-Key\" is a credential",
        "test.toml:12:3: upstream.guest_forward_headers: \"X-Forwarded-User\" claims an identity",
        "test.toml:13:3: upstream.guest_forward_headers: \"X_User\" claims an identity",
        "test.toml:14:3: upstream.guest_forward_headers: \"Connection\" claims an identity or is a header casegate or the connection controls",
        // 100-continue from a guest would let a body race the upstream's answer (0.CL desync).
        "test.toml:15:3: upstream.guest_forward_headers: \"Expect\" claims an identity or is a header casegate or the connection controls",
        "test.toml:16:3: upstream.guest_forward_headers: \"Accept\" is forwarded for guests already",
        "test.toml:17:3: upstream.guest_forward_headers: \"bad header\" is not a valid header name",
    ];
    assert_problems(&text, &expected);
}
