//! The admin API as `casegate share` sees it: one plain-HTTP/1.1 request at a time, bearer auth,
//! JSON answers, and errors that tell an operator what to do next.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::format::printable;

/// The environment variable holding the admin client's bearer token. Only the environment: a
/// command-line flag would show the token to everyone who can list processes.
pub const TOKEN_ENV: &str = "CASEGATE_ADMIN_TOKEN";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request, answer included; the admin API answers from memory and one fsync.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A list of every share of a large deployment fits; a runaway answer does not fill memory.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Where the admin API listens: `http://host:port` with an optional path prefix (a reverse proxy
/// may mount it under one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminUrl {
    authority: Authority,
    /// Empty, or starting with `/` and without a trailing `/`.
    prefix: String,
}

impl AdminUrl {
    pub fn parse(text: &str) -> Result<AdminUrl, String> {
        let uri: Uri = text
            .parse()
            .map_err(|error| format!("{text:?} is not a URL: {error}"))?;
        match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => {}
            Some(scheme) if *scheme == Scheme::HTTPS => {
                return Err(format!(
                    "{text}: only plain http is supported; keep the admin API on loopback or a \
                     private network, or reach it through an SSH tunnel"
                ));
            }
            _ => return Err(format!("{text}: expected http://host:port")),
        }
        let Some(authority) = uri.authority().cloned() else {
            return Err(format!("{text}: expected http://host:port"));
        };
        if authority.as_str().contains('@') {
            return Err(format!(
                "{text}: credentials do not belong in the URL; set {TOKEN_ENV}"
            ));
        }
        if uri.query().is_some() {
            return Err(format!("{text}: a query has no place in the admin URL"));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(AdminUrl { authority, prefix })
    }

    fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let path: PathAndQuery = format!("{}{path_and_query}", self.prefix).parse()?;
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }
}

impl std::fmt::Display for AdminUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}

/// The `Authorization` header value, marked sensitive so no debug output or hyper log shows it.
pub struct BearerToken(HeaderValue);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

impl BearerToken {
    /// Reads the token from [`TOKEN_ENV`]; the error names the variable, never its value.
    pub fn from_env() -> Result<BearerToken, String> {
        let Some(raw) = std::env::var_os(TOKEN_ENV) else {
            return Err(format!(
                "{TOKEN_ENV} is not set: export the bearer token of an [[admin.clients]] entry"
            ));
        };
        let Some(token) = raw.to_str() else {
            return Err(format!("{TOKEN_ENV} is not valid UTF-8"));
        };
        Self::new(token)
    }

    pub fn new(token: &str) -> Result<BearerToken, String> {
        if token.trim().is_empty() {
            return Err(format!("{TOKEN_ENV} is empty"));
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| format!("{TOKEN_ENV} holds characters an HTTP header cannot carry"))?;
        value.set_sensitive(true);
        Ok(BearerToken(value))
    }
}

/// Why a request did not produce a successful answer.
#[derive(Debug)]
pub enum AdminError {
    /// Nothing answered at the address (refused, no route, connect timeout).
    Unreachable { url: String, cause: String },
    /// Connected, but no complete answer within [`REQUEST_TIMEOUT`].
    TimedOut { url: String },
    /// The connection broke while sending or receiving.
    Transport { url: String, cause: String },
    /// The API refused, with its stable error code. `share` is the share the request did create
    /// anyway (a create whose invitation mail failed: `mail_failed`).
    Api {
        code: String,
        message: String,
        share: Option<serde_json::Value>,
    },
    /// The answer was not the API's JSON (another server on that port, a proxy's error page...).
    UnexpectedAnswer { status: StatusCode, reason: String },
    /// A create answered with a share whose link does not open (revoked or expired).
    ShareNotLive { id: String, status: String },
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Unreachable { url, cause } => write!(
                f,
                "the admin API is not reachable at {url} ({cause}); check [admin] listen in the \
                 gateway's config, that `casegate serve` is running, and --admin / \
                 CASEGATE_ADMIN_URL"
            ),
            AdminError::TimedOut { url } => write!(
                f,
                "the admin API at {url} did not answer within {}s",
                REQUEST_TIMEOUT.as_secs()
            ),
            AdminError::Transport { url, cause } => {
                write!(
                    f,
                    "the connection to the admin API at {url} failed: {cause}"
                )
            }
            AdminError::Api { code, message, .. } => write!(f, "{message} ({code})"),
            AdminError::UnexpectedAnswer { status, reason } => write!(
                f,
                "unexpected answer from the admin API ({status}): {reason}; is --admin pointing \
                 at casegate's [admin] listen address?"
            ),
            AdminError::ShareNotLive { id, status } => write!(
                f,
                "the admin API created share {} but reports it as {}: its link does not open, \
                 so it is not printed. Was its case revoked at the same moment? Create it again",
                printable(id),
                printable(status)
            ),
        }
    }
}

impl std::error::Error for AdminError {}

/// A successful answer: the JSON value and the exact bytes the API sent (for `--json`).
pub struct Answer {
    pub json: serde_json::Value,
    pub body: Bytes,
}

pub struct AdminClient {
    url: AdminUrl,
    token: BearerToken,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    pub fn new(url: AdminUrl, token: BearerToken) -> AdminClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        AdminClient { url, token, http }
    }

    pub async fn get(&self, path_and_query: &str) -> Result<Answer, AdminError> {
        self.send(Method::GET, path_and_query, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, AdminError> {
        self.send(Method::POST, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer, AdminError> {
        self.send(Method::DELETE, path, None).await
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, AdminError> {
        let url = self.url.to_string();
        // Paths are built from percent-encoded parts, so this only fails on a bug; say so plainly.
        let uri = self
            .url
            .uri(path_and_query)
            .map_err(|error| AdminError::Transport {
                url: url.clone(),
                cause: format!("cannot build the request URL: {error}"),
            })?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.token.0.clone())
            .header(ACCEPT, "application/json");
        let payload = match body {
            Some(json) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|error| AdminError::Transport {
                url: url.clone(),
                cause: format!("cannot build the request: {error}"),
            })?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|error| connection_error(&url, &error))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|error| AdminError::Transport {
                    url: url.clone(),
                    cause: format!("reading the answer: {error}"),
                })?
                .to_bytes();
            Ok::<_, AdminError>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| AdminError::TimedOut { url: url.clone() })??;
        interpret(status, body)
    }
}

/// Turns a status and body into the API's value or its error.
fn interpret(status: StatusCode, body: Bytes) -> Result<Answer, AdminError> {
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(json) => json,
        Err(_) => {
            return Err(AdminError::UnexpectedAnswer {
                status,
                reason: "the body is not JSON".to_owned(),
            });
        }
    };
    if status.is_success() {
        return Ok(Answer { json, body });
    }
    let error = json.get("error");
    let field = |name: &str| {
        error
            .and_then(|error| error.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    match (field("code"), field("message")) {
        (Some(code), Some(message)) => Err(AdminError::Api {
            code,
            message,
            share: json.get("share").filter(|share| share.is_object()).cloned(),
        }),
        _ => Err(AdminError::UnexpectedAnswer {
            status,
            reason: "no {\"error\": {\"code\", \"message\"}} in the body".to_owned(),
        }),
    }
}

/// Says "not reachable" for every failure to connect, naming the OS's reason (connection refused,
/// no route to host, timed out) found in the error's causes.
fn connection_error(url: &str, error: &hyper_util::client::legacy::Error) -> AdminError {
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        // The OS error's kind reads best ("connection refused"); without one, the innermost cause.
        cause = match inner.downcast_ref::<std::io::Error>() {
            Some(io_error) => io_error.kind().to_string(),
            None => inner.to_string(),
        };
        source = inner.source();
    }
    if error.is_connect() {
        AdminError::Unreachable {
            url: url.to_owned(),
            cause,
        }
    } else {
        AdminError::Transport {
            url: url.to_owned(),
            cause,
        }
    }
}

/// Percent-encodes one path segment or query value: everything but unreserved characters, so an
/// id or case can never add a path segment or a query parameter.
pub fn encode_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_url_accepts_host_port_and_an_optional_prefix() {
        let url = AdminUrl::parse("http://127.0.0.1:9901").unwrap();
        assert_eq!(url.to_string(), "http://127.0.0.1:9901");
        assert_eq!(
            url.uri("/v1/shares").unwrap().to_string(),
            "http://127.0.0.1:9901/v1/shares"
        );
        let url = AdminUrl::parse("http://admin.internal/casegate/").unwrap();
        assert_eq!(
            url.uri("/v1/shares/abc").unwrap().to_string(),
            "http://admin.internal/casegate/v1/shares/abc"
        );
    }

    #[test]
    fn admin_url_refuses_https_credentials_queries_and_non_urls() {
        for (text, expected) in [
            ("https://127.0.0.1:9901", "only plain http"),
            ("http://user:pw@127.0.0.1:9901", "credentials"),
            ("http://127.0.0.1:9901/?x=1", "query"),
            ("127.0.0.1:9901", "expected http://host:port"),
            ("ftp://127.0.0.1", "expected http://host:port"),
            ("http://[::1", "is not a URL"),
        ] {
            let error = AdminUrl::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn bearer_token_is_sensitive_and_never_in_its_errors() {
        let token = BearerToken::new("s3cret-token-value").unwrap();
        assert!(token.0.is_sensitive());
        assert_eq!(token.0.to_str().unwrap(), "Bearer s3cret-token-value");
        assert!(format!("{:?}", token.0).contains("Sensitive"));
        assert_eq!(format!("{token:?}"), "BearerToken(***)");
        let error = BearerToken::new("line\nbreak-s3cret").unwrap_err();
        assert!(!error.contains("s3cret"), "{error}");
        assert!(BearerToken::new("  ").is_err());
    }

    #[test]
    fn components_are_encoded_so_they_cannot_change_the_path() {
        assert_eq!(encode_component("Ab9-_.~"), "Ab9-_.~");
        assert_eq!(encode_component("../x"), "..%2Fx");
        assert_eq!(encode_component("a?b=c&d#e"), "a%3Fb%3Dc%26d%23e");
        assert_eq!(encode_component("å"), "%C3%A5");
    }

    #[test]
    fn api_errors_carry_code_and_message() {
        let body = Bytes::from_static(
            br#"{"error": {"code": "scope_not_permitted", "message": "client may not share scope guest"}}"#,
        );
        match interpret(StatusCode::FORBIDDEN, body) {
            Err(error @ AdminError::Api { .. }) => assert_eq!(
                error.to_string(),
                "client may not share scope guest (scope_not_permitted)"
            ),
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn non_json_or_shapeless_answers_are_unexpected() {
        for (status, body) in [
            (StatusCode::OK, &b"<html>hello</html>"[..]),
            (StatusCode::BAD_GATEWAY, &b"{\"oops\": 1}"[..]),
            (StatusCode::NOT_FOUND, &b""[..]),
        ] {
            assert!(matches!(
                interpret(status, Bytes::from_static(body)),
                Err(AdminError::UnexpectedAnswer { .. })
            ));
        }
        let answer =
            interpret(StatusCode::CREATED, Bytes::from_static(b"{\"id\": \"x\"}")).unwrap();
        assert_eq!(answer.json["id"], "x");
    }
}
