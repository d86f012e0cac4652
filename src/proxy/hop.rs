//! Header hygiene shared by both directions: hop-by-hop headers, the headers a peer names in
//! `Connection`, and client-supplied identity or override headers that a legacy app might trust.

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 section 7.6.1 plus the legacy ones proxies still see). They describe
/// one connection, never the message, so they are never forwarded in either direction.
///
/// `Expect` is treated as one too: hyper already answers `100-continue` to the client when the body
/// is first read, and an upstream that sees it may answer before reading the body and then parse the
/// body left on the pooled connection as the next request (the Expect-based 0.CL desync).
///
/// As text, for a `Connection` option (any case), compared with them before it is a name;
/// [`is_hop_by_hop`] compares a name with their `HeaderName`s.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "expect",
];

/// Exact names of headers that some server, framework or auth proxy treats as a statement about who
/// the client is, where it came from, or which method or URL it "really" asked for. Only casegate may
/// make such statements to the upstream, so a client's copies are removed before ours are added.
const CLIENT_IDENTITY_OR_OVERRIDE: [&str; 46] = [
    "forwarded",
    "x-forwarded",
    "proxy-client-ip",
    "wl-proxy-client-ip",
    "x-override-url",
    "x-http-destinationurl",
    "x-proxy-url",
    "x-http-host-override",
    "x-email",
    "x-username",
    "x-roles",
    "x-groups",
    "cf-access-authenticated-user-email",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
    "x-proxyuser-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-original-method",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "remote-user",
    "x-remote-user",
    "x-user",
    "x-authenticated-user",
    "x-authenticated-userid",
    "x-authenticated-groups",
    "x-auth-user",
    "x-webauth-user",
    "http2-settings",
    // httpoxy: CGI turns `Proxy` into HTTP_PROXY, which many HTTP libraries then use.
    "proxy",
    // IIS / ARR and friends: claims that the client connection was TLS, or its certificate.
    "front-end-https",
    "x-arr-ssl",
    "x-arr-clientcert",
    "x-url-scheme",
    "x-scheme",
];

/// Name prefixes with the same meaning as [`CLIENT_IDENTITY_OR_OVERRIDE`]: whole families of headers
/// (ours, the de-facto forwarding ones, oauth2-proxy's, Envoy's and Azure App Service's identity
/// headers, and client-certificate headers set by TLS-terminating proxies).
const CLIENT_IDENTITY_PREFIXES: [&str; 15] = [
    "x-casegate-",
    "x-forwarded-",
    "x-auth-request-",
    "x-envoy-",
    "x-original-",
    "x-remote-",
    "x-ms-client-principal",
    "x-ssl-client-",
    "ssl-client-",
    "x-client-cert",
    // Identity asserted by an authenticating proxy: AWS ALB, Google IAP, Istio, and the generic
    // `X-User-Id` / `X-User-Email` family.
    "x-amzn-oidc-",
    "x-goog-authenticated-",
    "x-goog-iap-",
    "x-istio-",
    "x-user-",
];

/// Credentials some APIs take in a header of their own. A guest acts only through its share, so
/// like `Cookie` and `Authorization` these never pass for a guest (staff on passthrough keep them).
const GUEST_CREDENTIALS: [&str; 12] = [
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "x-id-token",
    "x-refresh-token",
    "x-session-token",
    "x-session-id",
    "x-amz-security-token",
    "x-jwt-assertion",
    "cf-access-jwt-assertion",
];

/// Whether `name` is hop-by-hop ([`HOP_BY_HOP`]): about one connection, never forwarded (nor
/// configurable as a header casegate forwards or adds).
///
/// Asked of every field of every message, so every name is compared as a `HeaderName`: a
/// standard one against another is one number, and a standard one against the two that are not
/// (`keep-alive`, `proxy-connection`) is unequal at once. Spelling the name out as text would
/// read it from `http`'s table of standard names, a cache miss about every other field.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::UPGRADE
        || *name == header::PROXY_AUTHORIZATION
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::EXPECT
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers and every header the peer listed in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_hop_by_hop_and(headers, |_| false);
}

/// Removes what [`strip_hop_by_hop`] removes and every header whose name `also` picks.
///
/// Runs on every forwarded response, so it looks once at each name present (a handful) rather
/// than looking up or removing each name it knows, which hashes every one of them whether the
/// message has it or not. `Connection` is looked up only when the message has one, and read
/// before anything is removed, since it is itself hop-by-hop.
pub fn strip_hop_by_hop_and(headers: &mut HeaderMap, also: impl Fn(&str) -> bool) {
    let mut has_connection = false;
    let mut picked = Vec::new();
    for name in headers.keys() {
        has_connection |= *name == header::CONNECTION;
        if is_hop_by_hop(name) || also(name.as_str()) {
            picked.push(name.clone());
        }
    }
    let named = match has_connection {
        true => connection_named(headers),
        false => Vec::new(),
    };
    for name in named.iter().chain(&picked) {
        headers.remove(name);
    }
}

/// Every option the peer listed in `Connection`, over all its lines ([`options_of`]).
pub fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(options_of)
}

/// The options of one `Connection` line, trimmed, as sent (any case).
pub fn options_of(line: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    options_in(line.as_bytes())
}

/// The options of a `Connection` line's bytes, as [`options_of`].
pub fn options_in(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&byte| byte == b',').map(<[u8]>::trim_ascii)
}

/// The header names the peer listed in `Connection` (RFC 9110 section 7.6.1): hop-by-hop too.
/// Names hop-by-hop anyway are left out (`keep-alive`, on nearly every HTTP/1.1 request and
/// response): building their `HeaderName` would allocate for nothing.
pub fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    connection_options(headers)
        .filter_map(field_named_by)
        .collect()
}

/// The field a `Connection` option names, when it is not hop-by-hop anyway (and is a name).
pub fn field_named_by(option: &[u8]) -> Option<HeaderName> {
    let hop_by_hop = HOP_BY_HOP
        .iter()
        .any(|name| option.eq_ignore_ascii_case(name.as_bytes()));
    match hop_by_hop {
        true => None,
        false => HeaderName::from_bytes(option).ok(),
    }
}

/// Removes every client-supplied header that claims identity, origin or an override, and every header
/// whose name contains `_` (CGI-style servers fold `X_User` and `X-User` into the same variable, so an
/// underscore spelling can smuggle a header past a filter that only knows the dash spelling).
pub fn strip_client_identity(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_client_identity(name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Whether a header carries a guest's credentials for the upstream: cookies, `Authorization`, and
/// the API-key and token headers of [`GUEST_CREDENTIALS`]. None of them passes for a guest.
pub fn is_guest_credential(name: &str) -> bool {
    name == "cookie" || name == "authorization" || GUEST_CREDENTIALS.contains(&name)
}

/// Whether a header claims identity, origin or an override (see [`strip_client_identity`]).
pub fn is_client_identity(name: &str) -> bool {
    name.contains('_')
        || CLIENT_IDENTITY_OR_OVERRIDE.contains(&name)
        || CLIENT_IDENTITY_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::HeaderValue;

    /// A header map from name/value pairs, in order (shared by the proxy's header tests).
    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_by_name_and_by_text_agree() {
        for name in HOP_BY_HOP {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
            // As a name read off the wire, in any case.
            let shouted = HeaderName::from_bytes(name.to_ascii_uppercase().as_bytes()).unwrap();
            assert!(is_hop_by_hop(&shouted), "{name}");
        }
        for name in [
            "content-length",
            "keep-alive-x",
            "x-connection",
            "proxy",
            "vary",
            "etag",
        ] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Secret-Thing"),
            ("connection", "close"),
            ("x-secret-thing", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("expect", "100-continue"),
            ("accept", "text/html"),
        ]);
        strip_hop_by_hop(&mut map);
        let left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn a_guests_credentials_are_recognised_and_nothing_else() {
        for name in [
            "cookie",
            "authorization",
            "x-api-key",
            "x-auth-token",
            "cf-access-jwt-assertion",
        ] {
            assert!(is_guest_credential(name), "{name}");
        }
        assert!(!is_guest_credential("accept"));
    }

    #[test]
    fn identity_and_override_headers_from_the_client_are_removed() {
        let cases = [
            ("x-casegate-case", true),
            ("X-Casegate-Share", true),
            ("x-forwarded-for", true),
            ("x-forwarded-host", true),
            ("forwarded", true),
            ("x-real-ip", true),
            ("x-original-url", true),
            ("x-rewrite-url", true),
            ("x-http-method-override", true),
            ("x-method-override", true),
            ("remote-user", true),
            ("x-auth-request-email", true),
            ("x_forwarded_for", true),
            ("x_casegate_case", true),
            ("proxy", true),
            ("front-end-https", true),
            ("x-arr-clientcert", true),
            ("x-ms-client-principal-name", true),
            ("x-ssl-client-cert", true),
            ("ssl-client-verify", true),
            ("x-client-cert-dn", true),
            ("x-webauth-user", true),
            ("x-originating-ip", true),
            ("x-forwarded", true),
            ("wl-proxy-client-ip", true),
            ("x-override-url", true),
            ("x-http-host-override", true),
            ("x-amzn-oidc-identity", true),
            ("x-goog-authenticated-user-email", true),
            ("x-user-id", true),
            ("cf-access-authenticated-user-email", true),
            ("accept-language", false),
            ("range", false),
            ("if-none-match", false),
            ("user-agent", false),
            ("x-requested-with", false),
            ("x-csrf-token", false),
        ];
        for (name, removed) in cases {
            let mut map = headers(&[(name, "spoofed")]);
            strip_client_identity(&mut map);
            assert_eq!(map.is_empty(), removed, "header {name}");
        }
    }
}
