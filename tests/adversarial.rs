//! The adversarial corpus (issue 8, section 2): hundreds of hostile requests sent over real sockets
//! to the real gateway, each checked for its answer AND for what the recording upstream received:
//! nothing, or exactly the canonical request with casegate's own identity headers.
//!
//! The vectors are restated as our own data from public suites and write-ups: the WHATWG URL test
//! data (percent-encoded dot segments, backslashes, fullwidth characters), Envoy's and Istio's
//! path normalisation cases (`%2F`, `%5C`, merged slashes), Spring Security's StrictHttpFirewall
//! list (`;`, `%25`, `%00`, `//`, `/./`, `/../`), IIS and Tomcat quirks (`..;/`, 8.3 short names,
//! NTFS streams), and the HTTP request smuggling literature (CL.TE, TE.CL, TE obfuscation, CL.0).
//!
//! Most rows use the compact [`Ask`] form: a request line, header lines, and the status. A 200
//! means the upstream must have received exactly that request line, with every header the row
//! added gone (or, marked `+`, kept exactly); any other status means it received nothing.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::rows::{
    Check, Forwarded, GET_42, NOTHING, POST_HELLO, Row, Secrets, check_problems, exchange,
    framing_problems, judge,
};
use common::upstream::Received;
use common::upstream::TestUpstream;
use common::{TestGateway, config_text};

use Check::Body;

/// Short header-read timeout, so a row that leaves a request half-sent cannot stall the run.
const LIMITS: &str = "[server.limits]\nheader_read_timeout = \"2s\"\n";

/// The issue asks for at least this many rows in the corpus.
const AT_LEAST: usize = 150;

/// (what, request line without the version, header lines separated by `\n`, status).
///
/// `Host: share.test` is added unless the row sends its own `Host`; `Cookie: {V}` (a view cookie
/// for case 42) unless it sends its own `Cookie` or the line `-cookie`. After an empty line comes
/// the body, sent with its `Content-Length`. A header line starting with `+` must reach the
/// upstream exactly; every other header the row adds must not reach it with the row's value,
/// and must not reach it at all unless casegate sets that header itself.
type Ask = (&'static str, &'static str, &'static str, u16);

/// Headers casegate sets on every forwarded guest request: the client's copies are replaced.
const OURS: [&str; 8] = [
    "host",
    "x-casegate-case",
    "x-casegate-share",
    "x-casegate-scope",
    "x-casegate-lang",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

const PATHS: &[Ask] = &[
    ("the case itself", "GET /cases/42", "", 200),
    ("a page of the case", "GET /cases/42/notes", "", 200),
    (
        "a query passes byte for byte",
        "GET /cases/42/notes?page=2&sort=date",
        "",
        200,
    ),
    (
        "a slash in the query is data",
        "GET /cases/42?next=/cases/43",
        "",
        200,
    ),
    ("an escaped # in a segment", "GET /cases/42/a%23b", "", 200),
    ("NFC UTF-8 in a segment", "GET /cases/42/caf%C3%A9", "", 200),
    ("another case", "GET /cases/43", "", 403),
    ("a route no rule names", "GET /admin", "", 403),
    ("the root", "GET /", "", 403),
    (
        "upper-case path, which IIS reads as ours",
        "GET /CASES/42",
        "",
        403,
    ),
    ("mixed-case path", "GET /Cases/42", "", 403),
    ("plain dot-dot", "GET /cases/42/../43", "", 400),
    ("dot-dot at the end", "GET /cases/42/..", "", 400),
    ("dot-dot at the start", "GET /../cases/42", "", 400),
    ("dot-dot in the middle", "GET /cases/../cases/43", "", 400),
    ("dot at the start", "GET /./cases/42", "", 400),
    ("dot in the middle", "GET /cases/./42", "", 400),
    ("dot at the end", "GET /cases/42/.", "", 400),
    ("lower-case %2e%2e", "GET /cases/42/%2e%2e/43", "", 400),
    ("upper-case %2E%2E", "GET /cases/42/%2E%2E/43", "", 400),
    ("mixed .%2e", "GET /cases/42/.%2e/43", "", 400),
    ("mixed %2e.", "GET /cases/42/%2E./43", "", 400),
    (
        "mixed-case escape %2E%2e",
        "GET /cases/42/%2E%2e/43",
        "",
        400,
    ),
    ("a single %2e segment", "GET /cases/42/%2E/notes", "", 400),
    ("encoded slash, lower", "GET /cases/42%2f..%2f43", "", 400),
    ("encoded slash, upper", "GET /cases/42%2F..%2F43", "", 400),
    ("encoded slash inside a segment", "GET /cases%2F43", "", 400),
    (
        "dot-dot then encoded slash",
        "GET /cases/42/..%2F43",
        "",
        400,
    ),
    ("encoded backslash", "GET /cases/42/..%5C43", "", 400),
    (
        "encoded backslash, lower",
        "GET /cases/42/%5c..%5c43",
        "",
        400,
    ),
    ("raw backslash", "GET /cases/42\\..\\43", "", 400),
    (
        "raw backslash after dot-dot",
        "GET /cases/42/..\\43",
        "",
        400,
    ),
    (
        "double-encoded dots",
        "GET /cases/42/%252E%252E/43",
        "",
        400,
    ),
    (
        "double-encoded slash",
        "GET /cases/42%252F..%252F43",
        "",
        400,
    ),
    ("an encoded percent", "GET /cases/42/%25", "", 400),
    (
        "an encoded percent spelling %2e",
        "GET /cases/42/%25%32%65",
        "",
        400,
    ),
    ("NUL escape", "GET /cases/42%00", "", 400),
    (
        "NUL escape before an extension",
        "GET /cases/42/notes%00.html",
        "",
        400,
    ),
    (
        "NUL escape before dot-dot",
        "GET /cases/42/%00/../43",
        "",
        400,
    ),
    (
        "overlong dot, two bytes",
        "GET /cases/42/%C0%AE%C0%AE/43",
        "",
        400,
    ),
    (
        "overlong slash, two bytes",
        "GET /cases/42%C0%AF..%C0%AF43",
        "",
        400,
    ),
    (
        "overlong dot, three bytes",
        "GET /cases/42/%E0%80%AE%E0%80%AE/43",
        "",
        400,
    ),
    ("overlong backslash", "GET /cases/42/%C1%9C", "", 400),
    ("a lone continuation byte", "GET /cases/42/%80", "", 400),
    ("a Latin-1 byte", "GET /cases/42/%E9", "", 400),
    ("a UTF-16 surrogate", "GET /cases/42/%ED%A0%80", "", 400),
    ("a truncated sequence", "GET /cases/42/%E2%80", "", 400),
    ("IIS %u escapes", "GET /cases/42/%u002e%u002e/43", "", 400),
    (
        "fullwidth dots",
        "GET /cases/42/%EF%BC%8E%EF%BC%8E/43",
        "",
        400,
    ),
    (
        "fullwidth solidus",
        "GET /cases/42%EF%BC%8F..%EF%BC%8F43",
        "",
        400,
    ),
    (
        "fullwidth reverse solidus",
        "GET /cases/42/%EF%BC%BC",
        "",
        400,
    ),
    ("two-dot leader", "GET /cases/42/%E2%80%A5/43", "", 400),
    ("one-dot leader", "GET /cases/42/%E2%80%A4", "", 400),
    (
        "division slash",
        "GET /cases/42%E2%88%95..%E2%88%9543",
        "",
        400,
    ),
    ("fullwidth digits", "GET /cases/%EF%BC%94%EF%BC%93", "", 400),
    (
        "yen sign, a backslash in Shift-JIS best fit",
        "GET /cases/42/%C2%A5",
        "",
        400,
    ),
    (
        "dotless i, upper-cases to I",
        "GET /cases/42/b%C4%B1lling",
        "",
        400,
    ),
    (
        "sharp s, upper-cases to SS",
        "GET /cases/42/%C3%9F",
        "",
        400,
    ),
    (
        "Kelvin sign, lower-cases to k",
        "GET /cases/42/%E2%84%AA",
        "",
        400,
    ),
    ("zero-width space", "GET /cases/42/%E2%80%8B", "", 400),
    (
        "a right-to-left override",
        "GET /cases/42/%E2%80%AE",
        "",
        400,
    ),
    (
        "decomposed e-acute (not NFC)",
        "GET /cases/42/cafe%CC%81",
        "",
        400,
    ),
    (
        "lower-case escape of a permitted byte",
        "GET /cases/42/a%3fb",
        "",
        400,
    ),
    ("an escaped unreserved letter", "GET /cases/42/%41", "", 400),
    ("escaped digits of the case", "GET /cases/%34%32", "", 400),
    ("one escaped digit", "GET /cases/4%33", "", 400),
    ("a bare percent", "GET /cases/42/%", "", 400),
    ("a short escape", "GET /cases/42/%2", "", 400),
    ("a non-hex escape", "GET /cases/42/%zz", "", 400),
    (";jsessionid", "GET /cases/42;jsessionid=abc", "", 400),
    (
        ";jsessionid on a page",
        "GET /cases/42/notes;jsessionid=abc",
        "",
        400,
    ),
    (
        "a parameter in a directory segment",
        "GET /cases;x=1/42",
        "",
        400,
    ),
    ("Tomcat ..;/", "GET /cases/42/..;/43", "", 400),
    ("Tomcat .;/", "GET /cases/42/.;/notes", "", 400),
    ("an encoded semicolon", "GET /cases/42%3B.css", "", 400),
    ("an encoded semicolon, lower", "GET /cases/42%3b", "", 400),
    ("a leading double slash", "GET //cases/42", "", 400),
    (
        "a protocol-relative target",
        "GET //share.test/cases/43",
        "",
        400,
    ),
    ("an inner double slash", "GET /cases//42", "", 400),
    ("a trailing double slash", "GET /cases/42//", "", 400),
    ("a trailing slash", "GET /cases/42/", "", 400),
    ("a trailing dot", "GET /cases/42.", "", 400),
    ("trailing dots", "GET /cases/42/notes...", "", 400),
    ("a trailing encoded space", "GET /cases/42%20", "", 400),
    ("an encoded tab", "GET /cases/42%09", "", 400),
    ("an 8.3 short name", "GET /cases/42/BILLIN~1", "", 400),
    ("an NTFS stream", "GET /cases/42/billing::$DATA", "", 400),
    (
        "an NTFS named stream",
        "GET /cases/42/notes:hidden",
        "",
        400,
    ),
    ("an encoded colon", "GET /cases/42/notes%3Ahidden", "", 400),
    (
        "an encoded CRLF",
        "GET /cases/42/x%0D%0AX-Casegate-Case:%2043",
        "",
        400,
    ),
    ("an encoded DEL", "GET /cases/42/%7F", "", 400),
    (
        "an escaped ? then dot-dot",
        "GET /cases/42%3F/../43",
        "",
        400,
    ),
    ("an empty query", "GET /cases/42?", "", 400),
    (
        "an escaped unreserved in the query",
        "GET /cases/42?a=%2e%2e",
        "",
        400,
    ),
    (
        "a semicolon in the query",
        "GET /cases/42?a=b;_method=DELETE",
        "",
        400,
    ),
    ("NUL in the query", "GET /cases/42?a=%00", "", 400),
    ("CRLF in the query", "GET /cases/42?a=%0D%0A", "", 400),
    ("asterisk-form", "GET *", "", 400),
    ("absolute-form", "GET http://share.test/cases/42", "", 400),
    (
        "absolute-form in capitals",
        "GET HTTP://SHARE.TEST/cases/42",
        "",
        400,
    ),
    (
        "absolute-form to another host",
        "GET http://evil.test/cases/42",
        "",
        400,
    ),
    (
        "a static path climbing out",
        "GET /static/../cases/43",
        "",
        400,
    ),
    (
        "a static path with encoded slashes",
        "GET /static/..%2Fcases%2F43",
        "",
        400,
    ),
    ("a link path climbing out", "GET /s/../cases/43", "", 403),
    ("the link prefix alone", "GET /s/", "", 403),
];

const METHODS: &[Ask] = &[
    ("HEAD rides on an allowed GET", "HEAD /cases/42", "", 200),
    ("TRACE", "TRACE /cases/42", "", 403),
    ("TRACK", "TRACK /cases/42", "", 403),
    ("OPTIONS on the case", "OPTIONS /cases/42", "", 403),
    ("OPTIONS *", "OPTIONS *", "", 400),
    ("CONNECT to an authority", "CONNECT share.test:443", "", 400),
    ("CONNECT to a path", "CONNECT /cases/42", "", 403),
    ("PUT", "PUT /cases/42", "", 403),
    ("DELETE", "DELETE /cases/42", "", 403),
    ("PATCH", "PATCH /cases/42", "", 403),
    ("PROPFIND", "PROPFIND /cases/42", "", 403),
    ("MOVE", "MOVE /cases/42", "", 403),
    ("PURGE", "PURGE /cases/42", "", 403),
    ("DEBUG (IIS)", "DEBUG /cases/42", "", 403),
    ("a lower-case get", "get /cases/42", "", 403),
    ("a mixed-case GeT", "GeT /cases/42", "", 403),
    ("a method that starts with GET", "GETS /cases/42", "", 403),
    (
        "X-HTTP-Method-Override does not turn GET into DELETE",
        "GET /cases/42",
        "X-HTTP-Method-Override: DELETE",
        200,
    ),
    (
        "X-HTTP-Method-Override does not turn POST into GET",
        "POST /cases/42",
        "X-HTTP-Method-Override: GET",
        403,
    ),
    ("X-HTTP-Method", "GET /cases/42", "X-HTTP-Method: PUT", 200),
    (
        "X-Method-Override",
        "GET /cases/42",
        "X-Method-Override: PATCH",
        200,
    ),
    (
        "X-Original-Method",
        "GET /cases/42",
        "X-Original-Method: DELETE",
        200,
    ),
    (
        "_method in the query",
        "GET /cases/42?_method=DELETE",
        "",
        403,
    ),
    (
        "_METHOD in the query",
        "GET /cases/42?page=1&_METHOD=put",
        "",
        403,
    ),
    ("_method on a POST", "POST /cases/42?_method=GET", "", 403),
    (
        "a view cookie may not post a comment",
        "POST /api/cases/42/comments",
        "\n\nhello",
        403,
    ),
    (
        "a guest cookie may not remove another share",
        "DELETE /api/cases/42/team/c29tZW9uZS1lbHNlLXNoYXJl",
        "Cookie: {G}",
        403,
    ),
    (
        "a guest cookie may not post to another case",
        "POST /api/cases/43/comments",
        "Cookie: {G}\n\nhello",
        403,
    ),
];

const SPOOFING: &[Ask] = &[
    (
        "X-Forwarded-For",
        "GET /cases/42",
        "X-Forwarded-For: 10.0.0.1",
        200,
    ),
    (
        "X-Forwarded-For twice",
        "GET /cases/42",
        "X-Forwarded-For: 10.0.0.1\nX-Forwarded-For: 10.0.0.2",
        200,
    ),
    (
        "X-Forwarded-Host",
        "GET /cases/42",
        "X-Forwarded-Host: evil.test",
        200,
    ),
    (
        "X-Forwarded-Proto",
        "GET /cases/42",
        "X-Forwarded-Proto: https",
        200,
    ),
    (
        "X-Forwarded-Port",
        "GET /cases/42",
        "X-Forwarded-Port: 443",
        200,
    ),
    (
        "X-Forwarded-Prefix",
        "GET /cases/42",
        "X-Forwarded-Prefix: /admin",
        200,
    ),
    (
        "X-Forwarded-Server",
        "GET /cases/42",
        "X-Forwarded-Server: intranet",
        200,
    ),
    (
        "X-Forwarded-User",
        "GET /cases/42",
        "X-Forwarded-User: admin",
        200,
    ),
    (
        "X-Forwarded (bare)",
        "GET /cases/42",
        "X-Forwarded: for=10.0.0.1",
        200,
    ),
    (
        "Forwarded",
        "GET /cases/42",
        "Forwarded: for=10.0.0.1;host=evil.test;proto=https",
        200,
    ),
    ("X-Real-IP", "GET /cases/42", "X-Real-IP: 10.0.0.1", 200),
    ("X-Client-IP", "GET /cases/42", "X-Client-IP: 10.0.0.1", 200),
    (
        "True-Client-IP",
        "GET /cases/42",
        "True-Client-IP: 10.0.0.1",
        200,
    ),
    (
        "CF-Connecting-IP",
        "GET /cases/42",
        "CF-Connecting-IP: 10.0.0.1",
        200,
    ),
    (
        "WL-Proxy-Client-IP",
        "GET /cases/42",
        "WL-Proxy-Client-IP: 10.0.0.1",
        200,
    ),
    (
        "X-Original-URL",
        "GET /cases/42",
        "X-Original-URL: /cases/43",
        200,
    ),
    (
        "X-Rewrite-URL",
        "GET /cases/42",
        "X-Rewrite-URL: /cases/43",
        200,
    ),
    (
        "X-Original-URI",
        "GET /cases/42",
        "X-Original-URI: /cases/43",
        200,
    ),
    (
        "X-Override-URL",
        "GET /cases/42",
        "X-Override-URL: /cases/43",
        200,
    ),
    (
        "X-HTTP-DestinationURL",
        "GET /cases/42",
        "X-HTTP-DestinationURL: /cases/43",
        200,
    ),
    (
        "X-Envoy-Original-Path",
        "GET /cases/42",
        "X-Envoy-Original-Path: /cases/43",
        200,
    ),
    ("X-Host", "GET /cases/42", "X-Host: evil.test", 200),
    (
        "X-HTTP-Host-Override",
        "GET /cases/42",
        "X-HTTP-Host-Override: evil.test",
        200,
    ),
    (
        "X-Original-Host",
        "GET /cases/42",
        "X-Original-Host: evil.test",
        200,
    ),
    (
        "X-Casegate-Case",
        "GET /cases/42",
        "X-Casegate-Case: 43",
        200,
    ),
    (
        "X-Casegate-Share",
        "GET /cases/42",
        "X-Casegate-Share: someone-else",
        200,
    ),
    (
        "X-Casegate-Scope",
        "GET /cases/42",
        "X-Casegate-Scope: guest",
        200,
    ),
    (
        "X-Casegate-Lang",
        "GET /cases/42",
        "X-Casegate-Lang: de",
        200,
    ),
    (
        "an invented X-Casegate header",
        "GET /cases/42",
        "X-Casegate-Admin: 1",
        200,
    ),
    (
        "X-CASEGATE-CASE in capitals",
        "GET /cases/42",
        "X-CASEGATE-CASE: 43",
        200,
    ),
    (
        "X_Casegate_Case with underscores",
        "GET /cases/42",
        "X_Casegate_Case: 43",
        200,
    ),
    (
        "X-Casegate_Case half underscored",
        "GET /cases/42",
        "X-Casegate_Case: 43",
        200,
    ),
    (
        "X_Forwarded_For with underscores",
        "GET /cases/42",
        "X_Forwarded_For: 10.0.0.1",
        200,
    ),
    ("Remote-User", "GET /cases/42", "Remote-User: admin", 200),
    (
        "X-Remote-User",
        "GET /cases/42",
        "X-Remote-User: admin",
        200,
    ),
    (
        "X-Auth-Request-Email",
        "GET /cases/42",
        "X-Auth-Request-Email: chief@hospital.test",
        200,
    ),
    (
        "X-Authenticated-User",
        "GET /cases/42",
        "X-Authenticated-User: admin",
        200,
    ),
    (
        "X-WebAuth-User",
        "GET /cases/42",
        "X-WebAuth-User: admin",
        200,
    ),
    ("X-User-Id", "GET /cases/42", "X-User-Id: 1", 200),
    (
        "X-Amzn-Oidc-Identity",
        "GET /cases/42",
        "X-Amzn-Oidc-Identity: admin",
        200,
    ),
    (
        "X-Goog-Authenticated-User-Email",
        "GET /cases/42",
        "X-Goog-Authenticated-User-Email: a@b.test",
        200,
    ),
    (
        "Cf-Access-Authenticated-User-Email",
        "GET /cases/42",
        "Cf-Access-Authenticated-User-Email: a@b.test",
        200,
    ),
    (
        "X-Ms-Client-Principal-Name",
        "GET /cases/42",
        "X-Ms-Client-Principal-Name: admin",
        200,
    ),
    (
        "X-SSL-Client-Cert",
        "GET /cases/42",
        "X-SSL-Client-Cert: forged",
        200,
    ),
    (
        "Front-End-Https",
        "GET /cases/42",
        "Front-End-Https: on",
        200,
    ),
    (
        "httpoxy Proxy",
        "GET /cases/42",
        "Proxy: http://evil.test:3128",
        200,
    ),
    (
        "Authorization",
        "GET /cases/42",
        "Authorization: Basic YWRtaW46YWRtaW4=",
        200,
    ),
    ("X-Api-Key", "GET /cases/42", "X-Api-Key: staff-key", 200),
    (
        "X-Auth-Token",
        "GET /cases/42",
        "X-Auth-Token: staff-token",
        200,
    ),
    (
        "Cf-Access-Jwt-Assertion",
        "GET /cases/42",
        "Cf-Access-Jwt-Assertion: eyJ",
        200,
    ),
    ("Range passes", "GET /cases/42", "+Range: bytes=0-9", 200),
    (
        "Accept-Language is pinned to the share's",
        "GET /cases/42",
        "Accept-Language: de",
        200,
    ),
];

/// The guest allowlist: a header no list names never reaches the upstream, the browser's own do,
/// and so do the names in `[upstream] guest_forward_headers` (here `X-CSRF-Token`).
const UNLISTED: &[Ask] = &[
    (
        "an app's own tenant header",
        "GET /cases/42",
        "X-Tenant: other-hospital",
        200,
    ),
    (
        "a debug impersonation header",
        "GET /cases/42",
        "X-Debug-As: admin",
        200,
    ),
    (
        "an SSO agent's header",
        "GET /cases/42",
        "SM_USER: admin",
        200,
    ),
    (
        "an SSO agent's dashed header",
        "GET /cases/42",
        "Sm-User: admin",
        200,
    ),
    (
        "Via from the client",
        "GET /cases/42",
        "Via: 1.1 intranet-proxy",
        200,
    ),
    ("Max-Forwards", "GET /cases/42", "Max-Forwards: 0", 200),
    ("X-Request-Id", "GET /cases/42", "X-Request-Id: forged", 200),
    (
        "X-Correlation-Id",
        "GET /cases/42",
        "X-Correlation-Id: forged",
        200,
    ),
    (
        "a made-up header",
        "GET /cases/42",
        "X-Whatever-Next: 1",
        200,
    ),
    (
        "Accept and User-Agent pass",
        "GET /cases/42",
        "+Accept: text/html\n+User-Agent: Mozilla/5.0",
        200,
    ),
    (
        "conditional headers pass",
        "GET /cases/42",
        "+If-None-Match: \"v1\"\n+If-Modified-Since: Sat, 01 Jan 2026 00:00:00 GMT",
        200,
    ),
    (
        "X-Requested-With passes",
        "GET /cases/42",
        "+X-Requested-With: XMLHttpRequest",
        200,
    ),
    (
        "a configured extra header passes",
        "GET /cases/42",
        "+X-CSRF-Token: abc123",
        200,
    ),
    (
        "a configured extra header named in Connection is dropped",
        "GET /cases/42",
        "Connection: X-CSRF-Token\nX-CSRF-Token: abc123",
        200,
    ),
    (
        "traceparent passes",
        "GET /cases/42",
        "+traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        200,
    ),
];

const HOSTS: &[Ask] = &[
    (
        "our host in capitals",
        "GET /cases/42",
        "Host: SHARE.TEST",
        200,
    ),
    (
        "our host with its default port",
        "GET /cases/42",
        "Host: share.test:80",
        200,
    ),
    ("another host", "GET /cases/42", "Host: evil.test", 421),
    (
        "our host on another port",
        "GET /cases/42",
        "Host: share.test:8080",
        421,
    ),
    (
        "our host with a trailing dot",
        "GET /cases/42",
        "Host: share.test.",
        421,
    ),
    (
        "an address literal",
        "GET /cases/42",
        "Host: 127.0.0.1",
        421,
    ),
    ("an empty host", "GET /cases/42", "Host:", 421),
    (
        "a subdomain of ours",
        "GET /cases/42",
        "Host: a.share.test",
        421,
    ),
    (
        "two hosts",
        "GET /cases/42",
        "Host: share.test\nHost: evil.test",
        400,
    ),
    (
        "two equal hosts",
        "GET /cases/42",
        "Host: share.test\nHost: share.test",
        400,
    ),
    (
        "a host list",
        "GET /cases/42",
        "Host: share.test, evil.test",
        400,
    ),
    (
        "userinfo in the host",
        "GET /cases/42",
        "Host: share.test@evil.test",
        400,
    ),
    (
        "a path in the host",
        "GET /cases/42",
        "Host: share.test/cases/43",
        400,
    ),
    (
        "a link for another host",
        "GET {L}",
        "Host: evil.test\n-cookie",
        421,
    ),
];

const HOP_BY_HOP: &[Ask] = &[
    (
        "Connection: close",
        "GET /cases/42",
        "Connection: close",
        200,
    ),
    (
        "Connection naming X-Casegate-Share",
        "GET /cases/42",
        "Connection: X-Casegate-Share",
        200,
    ),
    (
        "Connection naming X-Casegate-Case",
        "GET /cases/42",
        "Connection: X-Casegate-Case, X-Forwarded-For",
        200,
    ),
    (
        "Connection naming Cookie",
        "GET /cases/42",
        "Connection: Cookie",
        200,
    ),
    (
        "Connection naming Authorization",
        "GET /cases/42",
        "Connection: Authorization\nAuthorization: Bearer x",
        200,
    ),
    (
        "Connection naming Host",
        "GET /cases/42",
        "Connection: Host",
        200,
    ),
    (
        "Connection naming Range removes it",
        "GET /cases/42",
        "Connection: Range\nRange: bytes=0-9",
        200,
    ),
    (
        "Keep-Alive",
        "GET /cases/42",
        "Keep-Alive: timeout=600",
        200,
    ),
    (
        "Proxy-Connection",
        "GET /cases/42",
        "Proxy-Connection: keep-alive",
        200,
    ),
    (
        "Proxy-Authorization",
        "GET /cases/42",
        "Proxy-Authorization: Basic eDp4",
        200,
    ),
    ("TE: trailers", "GET /cases/42", "TE: trailers", 200),
    ("Trailer", "GET /cases/42", "Trailer: X-Casegate-Case", 200),
    (
        "Upgrade without Connection",
        "GET /cases/42",
        "Upgrade: h2c",
        403,
    ),
    (
        "an h2c upgrade",
        "GET /cases/42",
        "Connection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAAQAAP__",
        403,
    ),
];

const COOKIES: &[Ask] = &[
    (
        "our cookie twice in one header",
        "GET /cases/42",
        "Cookie: {V}; {V}",
        401,
    ),
    (
        "our cookie twice in two headers",
        "GET /cases/42",
        "Cookie: {V}\nCookie: {V}",
        401,
    ),
    (
        "sessions of 42 and of 43: the one of 42 answers",
        "GET /cases/42",
        "Cookie: {V}; {V43}",
        200,
    ),
    (
        "43's session first, then 42's, in two headers",
        "GET /cases/42",
        "Cookie: {V43}\nCookie: {V}",
        200,
    ),
    (
        "two sessions of case 42 under two of our names",
        "GET /cases/42",
        "Cookie: casegate={VV}; {V}",
        401,
    ),
    (
        "a session of 43 beside one of 42 opens nothing of 44",
        "GET /cases/44",
        "Cookie: {V}; {V43}",
        403,
    ),
    (
        "an expired session beside ours is passed over",
        "GET /cases/42",
        "Cookie: {CEXPIRED}; {V}",
        200,
    ),
    (
        "a session sealed under another key beside ours is passed over",
        "GET /cases/42",
        "Cookie: {V}; {CSTRANGER}",
        200,
    ),
    (
        "other cookies around ours",
        "GET /cases/42",
        "Cookie: a=1; {V}; b=2",
        200,
    ),
    (
        "our name in capitals is not ours",
        "GET /cases/42",
        "Cookie: CASEGATE={VV}",
        401,
    ),
    (
        "a quoted value",
        "GET /cases/42",
        "Cookie: casegate=\"{VV}\"",
        401,
    ),
    (
        "an empty cookie of the old name beside ours is passed over",
        "GET /cases/42",
        "Cookie: casegate=; {V}",
        200,
    ),
    (
        "attributes sent as if cookies",
        "GET /cases/42",
        "Cookie: {V}; Path=/cases/43",
        200,
    ),
    ("no cookie at all", "GET /cases/42", "-cookie", 401),
];

const FORGERY: &[Ask] = &[
    ("a cookie of case 42 on case 43", "GET /cases/43", "", 403),
    (
        "a cookie of case 42 on a page of case 43",
        "GET /cases/43/notes",
        "",
        403,
    ),
    (
        "a cookie of case 43 on case 42",
        "GET /cases/42",
        "Cookie: {V43}",
        403,
    ),
    (
        "a cookie sealed with another key",
        "GET /cases/42",
        "Cookie: {CSTRANGER}",
        401,
    ),
    (
        "an expired cookie",
        "GET /cases/42",
        "Cookie: {CEXPIRED}",
        401,
    ),
    (
        "a link token as the cookie",
        "GET /cases/42",
        "Cookie: casegate={T}",
        401,
    ),
    (
        "a link token as a bearer",
        "GET /cases/42",
        "Authorization: Bearer {T}\n-cookie",
        401,
    ),
    (
        "a link token in the query",
        "GET /cases/42?token={T}",
        "-cookie",
        401,
    ),
    ("the cookie value as a link", "GET /s/{VV}", "-cookie", 403),
    ("a link with alg none", "GET /s/{TNONE}.", "-cookie", 403),
    (
        "a link with alg none, no signature part",
        "GET /s/{TNONE}",
        "-cookie",
        403,
    ),
    (
        "claims of case 43 under a case-42 signature",
        "GET /s/{TSWAP}",
        "-cookie",
        403,
    ),
    ("an unknown kid", "GET /s/{TKID}", "-cookie", 403),
    ("a kid with a path", "GET /s/{TKIDPATH}", "-cookie", 403),
    (
        "a jku naming a key to fetch",
        "GET /s/{TJKU}",
        "-cookie",
        403,
    ),
    (
        "a link signed with another key",
        "GET /s/{TSTRANGER}",
        "-cookie",
        403,
    ),
    ("a link with a byte appended", "GET /s/{T}x", "-cookie", 403),
    (
        "a link climbing out",
        "GET /s/{T}/../../cases/43",
        "-cookie",
        403,
    ),
    (
        "the link prefix in capitals is no link",
        "GET /S/{T}",
        "-cookie",
        401,
    ),
    (
        "a case-43 link opens only a case-43 session",
        "GET {L43}",
        "-cookie",
        303,
    ),
    (
        "a link with another case's cookie",
        "GET {L}",
        "Cookie: {V43}",
        303,
    ),
    ("a link posted to", "POST {L}", "-cookie", 403),
];

const CROSS_SITE: &[Ask] = &[
    (
        "a comment from our own page",
        "POST /api/cases/42/comments",
        "Cookie: {G}\n+Content-Type: text/plain\n+Origin: http://share.test\n+Sec-Fetch-Site: same-origin\n\nhello",
        200,
    ),
    (
        "a comment with no Origin (not a browser)",
        "POST /api/cases/42/comments",
        "Cookie: {G}\n\nhello",
        200,
    ),
    (
        "a comment from another site",
        "POST /api/cases/42/comments",
        "Cookie: {G}\nOrigin: http://evil.test\n\nhello",
        403,
    ),
    (
        "a comment from a sibling origin",
        "POST /api/cases/42/comments",
        "Cookie: {G}\nOrigin: http://other.share.test\n\nhello",
        403,
    ),
    (
        "a comment from our host over https",
        "POST /api/cases/42/comments",
        "Cookie: {G}\nOrigin: https://share.test\n\nhello",
        403,
    ),
    (
        "a comment from an opaque origin",
        "POST /api/cases/42/comments",
        "Cookie: {G}\nOrigin: null\n\nhello",
        403,
    ),
    (
        "a comment the browser calls cross-site",
        "POST /api/cases/42/comments",
        "Cookie: {G}\nSec-Fetch-Site: cross-site\n\nhello",
        403,
    ),
    (
        "a comment the browser calls same-site",
        "POST /api/cases/42/comments",
        "Cookie: {G}\nSec-Fetch-Site: same-site\n\nhello",
        403,
    ),
    (
        "two Origins, ours first",
        "POST /api/cases/42/comments",
        "Cookie: {G}\nOrigin: http://share.test\nOrigin: http://evil.test\n\nhello",
        403,
    ),
    (
        "a cross-site DELETE",
        "DELETE /api/cases/42/team/c29tZW9uZS1lbHNlLXNoYXJl",
        "Cookie: {G}\nOrigin: http://evil.test",
        403,
    ),
    (
        "a cross-site GET is a plain navigation",
        "GET /cases/42",
        "+Origin: http://evil.test\n+Sec-Fetch-Site: cross-site",
        200,
    ),
];

/// Raw rows: framing the compact form cannot express.
const SMUGGLING: &[Row] = &[
    Row {
        name: "CL.TE: a request hidden after the last chunk",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "TE.CL: the declared length would swallow the next request",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nContent-Length: 70\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "TE with a trailing space is chunked (OWS)",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked \r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "TE: Chunked in another letter case is chunked",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "a fragment is cut by the parser: what is judged is what is forwarded",
        raw: "GET /cases/42#/../../cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[200],
        upstream: GET_42,
    },
    Row {
        name: "a fragment cannot carry a request to another case into an allowed one",
        raw: "GET /cases/43#/../42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[403],
        upstream: NOTHING,
    },
    Row {
        name: "TE: identity, chunked",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: identity, chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "TE: gzip, chunked (a coding casegate does not decode)",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "TE with a bare CR inside the value",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\rX: y\r\nContent-Length: 5\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "TE quoted",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: \"chunked\"\r\nContent-Length: 5\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "TE with a leading comma",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: ,chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[200],
        upstream: POST_HELLO,
    },
    Row {
        name: "Transfer_Encoding is no framing header: the chunk bytes become a bad next request",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer_Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        replies: &[200, 400],
        upstream: &[Forwarded {
            line: "POST /api/cases/42/comments HTTP/1.1",
            checks: &[],
        }],
    },
    Row {
        name: "a Content-Length list, even of equal values",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a Content-Length list that disagrees",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5, 50\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a Content-Length with a space inside",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 5 0\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a Content-Length with a plus sign",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: +5\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a Content-Length in hex",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 0x5\r\n\r\nhello",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "CL.0 on a GET: the body is a second request",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nContent-Length: 42\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "CL.0 on a link exchange",
        raw: "GET {L} HTTP/1.1\r\nHost: share.test\r\nContent-Length: 42\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a malformed chunk size is a bad request, not an upstream failure",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5x\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a chunk size with a sign",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a chunk longer than its size",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
        replies: &[400],
        upstream: NOTHING,
    },
    Row {
        name: "a chunked body over max_body_bytes",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n",
        replies: &[413],
        upstream: NOTHING,
    },
    Row {
        name: "a declared length over max_body_bytes",
        raw: "POST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nContent-Length: 32\r\nConnection: close\r\n\r\n0123456789abcdef0123456789abcdef",
        replies: &[413],
        upstream: NOTHING,
    },
    Row {
        name: "pipelining: an allowed request, then one for another case",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\n\r\nGET /cases/43 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[200, 403],
        upstream: GET_42,
    },
    Row {
        name: "pipelining: a second request with another case's cookie",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\n\r\nGET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V43}\r\nConnection: close\r\n\r\n",
        replies: &[200, 403],
        upstream: GET_42,
    },
    Row {
        name: "pipelining: a second request for another host",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {V}\r\n\r\nGET /cases/42 HTTP/1.1\r\nHost: evil.test\r\nCookie: {V}\r\nConnection: close\r\n\r\n",
        replies: &[200, 421],
        upstream: GET_42,
    },
    Row {
        name: "pipelining: a cross-site POST after an allowed GET",
        raw: "GET /cases/42 HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\n\r\nPOST /api/cases/42/comments HTTP/1.1\r\nHost: share.test\r\nCookie: {G}\r\nOrigin: http://evil.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        replies: &[200, 403],
        upstream: GET_42,
    },
];

/// Upstream responses that try to leak: (what, path, headers the guest must not see, headers the
/// guest must see exactly).
type Leak = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

const LEAKS: &[Leak] = &[
    (
        "Set-Cookie, CORS and a public cache",
        "/cases/42/leaky",
        &[
            "set-cookie",
            "access-control-allow-origin",
            "access-control-allow-credentials",
        ],
        &[
            ("cache-control", "private, no-store"),
            ("referrer-policy", "no-referrer"),
        ],
    ),
    (
        "a redirect to the upstream's own origin",
        "/cases/42/redirect",
        &[],
        &[("location", "http://share.test/cases/42/summary")],
    ),
    (
        "a redirect to another case points at our origin, where it is judged again",
        "/cases/42/elsewhere",
        &[],
        &[("location", "http://share.test/cases/43")],
    ),
    (
        "hop-by-hop headers and one named in Connection",
        "/cases/42/hop",
        &[
            "x-internal-token",
            "keep-alive",
            "proxy-authenticate",
            "upgrade",
            "set-cookie2",
        ],
        &[("x-robots-tag", "noindex")],
    ),
];

/// The HTTP/2 rows, sent by `tests/common/h2_raw.py` with the `h2` library's own validation off:
/// (what, header list, body, expected outcome, the request line the upstream must see if any).
/// The outcome is a status, or `reset` (the stream or connection was refused: nothing answered).
type H2Ask = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
    Option<&'static str>,
);

const H2: &[H2Ask] = &[
    (
        "a plain GET",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42"),
            ("cookie", "{V}"),
        ],
        "",
        "200",
        Some("GET /cases/42 HTTP/1.1"),
    ),
    (
        "CRLF in a header value",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42"),
            ("cookie", "{V}"),
            ("x-note", "a\r\nX-Casegate-Case: 43"),
        ],
        "",
        "reset",
        None,
    ),
    (
        "LF in a header value",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42"),
            ("cookie", "{V}"),
            ("x-note", "a\nHost: evil.test"),
        ],
        "",
        "reset",
        None,
    ),
    (
        "CRLF in :path",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (
                ":path",
                "/cases/42 HTTP/1.1\r\nX-Casegate-Case: 43\r\n\r\nGET /cases/43",
            ),
            ("cookie", "{V}"),
        ],
        "",
        "reset",
        None,
    ),
    (
        ":path without a leading slash",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "cases/42"),
            ("cookie", "{V}"),
        ],
        "",
        "reset",
        None,
    ),
    (
        "two :path pseudo-headers",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42"),
            (":path", "/cases/43"),
            ("cookie", "{V}"),
        ],
        "",
        "reset",
        None,
    ),
    (
        "a pseudo-header after a regular one",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            ("cookie", "{V}"),
            (":path", "/cases/42"),
        ],
        "",
        "reset",
        None,
    ),
    (
        "an unknown pseudo-header",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42"),
            (":case", "43"),
            ("cookie", "{V}"),
        ],
        "",
        "reset",
        None,
    ),
    (
        ":authority of another host",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "evil.test"),
            (":path", "/cases/42"),
            ("cookie", "{V}"),
        ],
        "",
        "421",
        None,
    ),
    (
        ":authority ours, host another",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42"),
            ("host", "evil.test"),
            ("cookie", "{V}"),
        ],
        "",
        "421",
        None,
    ),
    (
        "a dot-dot in :path",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42/../43"),
            ("cookie", "{V}"),
        ],
        "",
        "400",
        None,
    ),
    (
        "connection-specific header: transfer-encoding",
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/api/cases/42/comments"),
            ("transfer-encoding", "chunked"),
            ("cookie", "{G}"),
        ],
        "5\r\nhello\r\n0\r\n\r\n",
        "reset",
        None,
    ),
    (
        "connection-specific header: connection",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42"),
            ("connection", "x-casegate-share"),
            ("cookie", "{V}"),
        ],
        "",
        "reset",
        None,
    ),
    (
        "content-length shorter than the DATA",
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/api/cases/42/comments"),
            ("content-length", "2"),
            ("cookie", "{G}"),
        ],
        "hello",
        "reset",
        None,
    ),
    (
        "content-length longer than the DATA",
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/api/cases/42/comments"),
            ("content-length", "50"),
            ("cookie", "{G}"),
        ],
        "hello",
        "reset",
        None,
    ),
    (
        "an upper-case header name",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42"),
            ("X-Casegate-Case", "43"),
            ("cookie", "{V}"),
        ],
        "",
        "reset",
        None,
    ),
    (
        "a spoofed identity header is replaced",
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/cases/42"),
            ("x-casegate-case", "43"),
            ("x-forwarded-host", "evil.test"),
            ("cookie", "{V}"),
        ],
        "",
        "200",
        Some("GET /cases/42 HTTP/1.1"),
    ),
    (
        "a cross-site POST",
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "share.test"),
            (":path", "/api/cases/42/comments"),
            ("origin", "http://evil.test"),
            ("content-length", "5"),
            ("cookie", "{G}"),
        ],
        "hello",
        "403",
        None,
    ),
];

#[tokio::test]
async fn the_corpus_refuses_every_bypass_and_forwards_only_the_canonical_request() {
    let upstream = TestUpstream::start().await;
    let text = config_text(
        &upstream.url(),
        "",
        &format!("{LIMITS}max_body_bytes = 16\n"),
    )
    .replace(
        "passthrough = false\n",
        "passthrough = false\nguest_forward_headers = [\"X-CSRF-Token\"]\n",
    );
    let gw = TestGateway::start_from_text(upstream, &text).await;
    let secrets = Secrets::open(&gw).await;
    assert!(
        gw.upstream.take().is_empty(),
        "opening links reached the upstream"
    );
    let mut failures = Vec::new();
    let mut rows = 0;
    for table in [
        PATHS, METHODS, SPOOFING, UNLISTED, HOSTS, HOP_BY_HOP, COOKIES, FORGERY, CROSS_SITE,
    ] {
        for ask in table {
            rows += 1;
            failures.extend(run_ask(&gw, &secrets, ask).await);
        }
    }
    for row in SMUGGLING {
        rows += 1;
        let expected: Vec<(&str, &[Check])> =
            row.upstream.iter().map(|f| (f.line, f.checks)).collect();
        let (problems, _) = judge(
            &gw,
            &secrets.fill(row.raw),
            row.name,
            row.replies,
            &expected,
        )
        .await;
        failures.extend(problems);
    }
    for leak in LEAKS {
        rows += 1;
        failures.extend(run_leak(&gw, &secrets, leak).await);
    }
    rows += H2.len();
    failures.extend(run_h2(&gw, &secrets).await);
    assert!(
        failures.is_empty(),
        "{} of {rows} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        rows >= AT_LEAST,
        "the corpus has {rows} rows, fewer than {AT_LEAST}"
    );
    gw.stop().await;
}

/// Sends one compact row and answers what went wrong, if anything.
async fn run_ask(gw: &TestGateway, secrets: &Secrets, ask: &Ask) -> Vec<String> {
    let (what, line, extra, status) = *ask;
    let (head, body) = extra.split_once("\n\n").unwrap_or((extra, ""));
    let lines: Vec<&str> = head.lines().filter(|l| !l.is_empty()).collect();
    let mut text = format!("{line} HTTP/1.1\r\n");
    let names = |l: &str| {
        l.trim_start_matches('+')
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    if !lines.iter().any(|l| names(l) == "host") {
        text.push_str("Host: share.test\r\n");
    }
    if !lines
        .iter()
        .any(|l| names(l) == "cookie" || *l == "-cookie")
    {
        text.push_str("Cookie: {V}\r\n");
    }
    let mut kept = Vec::new();
    let mut added = Vec::new();
    for l in &lines {
        if *l == "-cookie" {
            continue;
        }
        let header = l.trim_start_matches('+');
        text.push_str(header);
        text.push_str("\r\n");
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        let pair = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        if l.starts_with('+') {
            kept.push(pair);
        } else {
            added.push(pair);
        }
    }
    if !body.is_empty() {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("Connection: close\r\n\r\n");
    text.push_str(body);
    let raw = secrets.fill(&text);
    let forwarded_line = format!("{} HTTP/1.1", String::from_utf8_lossy(&secrets.fill(line)));
    let body_check = [Body(body)];
    let expected: Vec<(&str, &[Check])> = if status == 200 {
        vec![(forwarded_line.as_str(), &body_check[..])]
    } else {
        Vec::new()
    };
    let (mut problems, received) = judge(gw, &raw, what, &[status], &expected).await;
    for request in &received {
        problems.extend(header_problems(what, request, &kept, &added, secrets));
    }
    problems
}

/// The claims a compact row makes about the headers it added.
fn header_problems(
    what: &str,
    request: &Received,
    kept: &[(String, String)],
    added: &[(String, String)],
    secrets: &Secrets,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, value) in kept {
        if request.header_count(name) != 1 || request.header(name) != Some(value.as_str()) {
            problems.push(format!(
                "{what}: {name} must arrive as {value:?}: {:?}",
                request.headers
            ));
        }
    }
    for (name, value) in added {
        let value = String::from_utf8_lossy(&secrets.fill(value)).into_owned();
        let copied = request
            .headers
            .iter()
            .any(|(n, v)| n == name && *v == value);
        let ours = OURS.contains(&name.as_str()) || name == "accept-language";
        if copied || (!ours && request.header(name).is_some()) {
            problems.push(format!(
                "{what}: the client's {name} reached the upstream: {:?}",
                request.headers
            ));
        }
    }
    problems
}

/// Fetches one leaky upstream response as a guest and checks what the guest got to see.
async fn run_leak(gw: &TestGateway, secrets: &Secrets, leak: &Leak) -> Vec<String> {
    let (what, path, hidden, shown) = *leak;
    let raw = secrets.fill(&format!(
        "GET {path} HTTP/1.1\r\nHost: share.test\r\nCookie: {{V}}\r\nConnection: close\r\n\r\n"
    ));
    let responses = exchange(gw.addr, &raw).await;
    let received = gw.upstream.take();
    let mut problems = Vec::new();
    if received.len() != 1 || received[0].target() != path {
        problems.push(format!("{what}: upstream received {received:?}"));
    }
    let Some((_, headers)) = responses.first() else {
        return vec![format!("{what}: no response")];
    };
    let get = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    for name in hidden {
        if !get(name).is_empty() {
            problems.push(format!("{what}: {name} reached the guest: {headers:?}"));
        }
    }
    for (name, value) in shown {
        if get(name) != [*value] {
            problems.push(format!("{what}: {name} must be {value:?}: {headers:?}"));
        }
    }
    problems
}

/// Runs the HTTP/2 rows through the Python client and checks outcomes and the upstream.
async fn run_h2(gw: &TestGateway, secrets: &Secrets) -> Vec<String> {
    let requests: Vec<serde_json::Value> = H2
        .iter()
        .map(|(_, headers, body, _, _)| {
            let headers: Vec<[String; 2]> = headers
                .iter()
                .map(|(n, v)| {
                    [
                        (*n).to_owned(),
                        String::from_utf8_lossy(&secrets.fill(v)).into_owned(),
                    ]
                })
                .collect();
            serde_json::json!({ "headers": headers, "body": body })
        })
        .collect();
    let input = serde_json::json!({ "port": gw.addr.port(), "requests": requests }).to_string();
    let output = tokio::task::spawn_blocking(move || run_python_h2(&input))
        .await
        .expect("h2 client thread");
    let outcomes: Vec<String> = serde_json::from_str(&output)
        .unwrap_or_else(|error| panic!("h2 client printed {output:?}: {error}"));
    assert_eq!(outcomes.len(), H2.len(), "one outcome per HTTP/2 row");
    // The client sends every row before the upstream is looked at, so rows are told apart by
    // the request lines the upstream saw, in order.
    let received = gw.upstream.take();
    let mut problems = Vec::new();
    let expected_lines: Vec<&str> = H2.iter().filter_map(|row| row.4).collect();
    let lines: Vec<&str> = received.iter().map(|r| r.request_line.as_str()).collect();
    if lines != expected_lines {
        problems.push(format!(
            "h2: upstream received {lines:?}, expected {expected_lines:?}"
        ));
    }
    for request in &received {
        problems.extend(
            framing_problems(request, gw.upstream.addr)
                .into_iter()
                .map(|p| format!("h2: {p}")),
        );
        problems.extend(
            check_problems(request, &[])
                .into_iter()
                .map(|p| format!("h2: {p}")),
        );
    }
    for ((what, _, _, expected, _), outcome) in H2.iter().zip(&outcomes) {
        if outcome != expected {
            problems.push(format!("h2 {what}: got {outcome}, expected {expected}"));
        }
    }
    problems
}

fn run_python_h2(input: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/h2_raw.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the HTTP/2 rows: apt-get install python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write rows to the h2 client");
    let output = child.wait_with_output().expect("h2 client");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the HTTP/2 client failed (needs the h2 package: pip install h2, or apt-get install python3-h2): {stderr}"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_compact_rows_are_well_formed() {
    // A row whose request line has no method and target would test nothing.
    for table in [
        PATHS, METHODS, SPOOFING, UNLISTED, HOSTS, HOP_BY_HOP, COOKIES, FORGERY, CROSS_SITE,
    ] {
        for (what, line, _, status) in table {
            assert!(line.split_once(' ').is_some(), "{what}: {line}");
            assert!((200..600).contains(status), "{what}");
        }
    }
}
