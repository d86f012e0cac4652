//! Who is calling: the `Authorization: Bearer` token matched against every configured client in
//! constant time. Tokens are kept only as SHA-256 digests, so every comparison has the same length
//! and the loop visits every client whatever matches: the timing says neither which client nor
//! how much of a token was right.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::ApiError;

/// One admin client as the API needs it.
pub struct Client {
    name: String,
    token_digest: [u8; 32],
    scopes: Vec<String>,
}

/// Every configured client.
pub struct Clients {
    clients: Vec<Client>,
}

// === impl Client ===

impl Client {
    pub fn new(name: &str, token: &[u8], scopes: &[String]) -> Client {
        Client {
            name: name.to_owned(),
            token_digest: Sha256::digest(token).into(),
            scopes: scopes.to_vec(),
        }
    }

    /// The configured name, used in logs and recorded on the shares it creates.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this client may share `scope` (AM System's "who can share").
    pub fn may_share(&self, scope: &str) -> bool {
        self.scopes.iter().any(|allowed| allowed == scope)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

// === impl Clients ===

impl Clients {
    pub fn new(clients: Vec<Client>) -> Clients {
        Clients { clients }
    }

    pub fn count(&self) -> usize {
        self.clients.len()
    }

    /// The client whose token the request carries. Missing, repeated, malformed and unknown
    /// credentials are all the same refusal.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Client, ApiError> {
        let token = bearer_token(headers).ok_or(ApiError::Unauthorized)?;
        let presented: [u8; 32] = Sha256::digest(token).into();
        // 0 means no match; otherwise the index + 1 of the (unique) matching client.
        let mut found: u32 = 0;
        for (index, client) in self.clients.iter().enumerate() {
            let position = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let matches = client.token_digest.ct_eq(&presented);
            found.conditional_assign(&position, matches);
        }
        let index = usize::try_from(found)
            .ok()
            .and_then(|found| found.checked_sub(1))
            .ok_or(ApiError::Unauthorized)?;
        self.clients.get(index).ok_or(ApiError::Unauthorized)
    }
}

/// The token of exactly one `Authorization: Bearer <token>` header (scheme case-insensitive, as
/// RFC 9110 says), or `None`.
fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.as_bytes();
    let (scheme, token) = value.split_at_checked(b"bearer ".len())?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token68 = |b: &u8| b.is_ascii_graphic();
    (!token.is_empty() && token.iter().all(token68)).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_TOKEN: &str = "case-app-token-0123456789abcdefghijklmnop";
    const OPS_TOKEN: &str = "ops-token-0123456789abcdefghijklmnopqrstuv";

    fn clients() -> Clients {
        Clients::new(vec![
            Client::new("case-app", APP_TOKEN.as_bytes(), &["view".to_owned()]),
            Client::new(
                "ops",
                OPS_TOKEN.as_bytes(),
                &["view".to_owned(), "guest".to_owned()],
            ),
        ])
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn each_token_authenticates_its_own_client() {
        let clients = clients();
        let cases = [
            (
                "the first client",
                format!("Bearer {APP_TOKEN}"),
                "case-app",
            ),
            ("the second client", format!("Bearer {OPS_TOKEN}"), "ops"),
            (
                "the scheme in any case",
                format!("bEaReR {OPS_TOKEN}"),
                "ops",
            ),
        ];
        for (name, value, want) in cases {
            let client = clients.authenticate(&headers(&[&value])).expect(name);
            assert_eq!(client.name(), want, "{name}");
        }
    }

    #[test]
    fn anything_but_one_exact_bearer_token_is_unauthorized() {
        let clients = clients();
        let truncated = format!("Bearer {}", &APP_TOKEN[..APP_TOKEN.len() - 1]);
        let extended = format!("Bearer {APP_TOKEN}x");
        let basic = format!("Basic {APP_TOKEN}");
        let two_spaces = format!("Bearer  {APP_TOKEN}");
        let trailing_space = format!("Bearer {APP_TOKEN} ");
        let app = format!("Bearer {APP_TOKEN}");
        let cases: &[(&str, Vec<&str>)] = &[
            ("no header", vec![]),
            ("an empty header", vec![""]),
            ("the scheme alone", vec!["Bearer"]),
            ("the scheme and a space", vec!["Bearer "]),
            ("a wrong token", vec!["Bearer not-a-configured-token"]),
            ("a truncated token", vec![&truncated]),
            ("a token with a suffix", vec![&extended]),
            ("another scheme", vec![&basic]),
            ("two spaces", vec![&two_spaces]),
            ("a trailing space", vec![&trailing_space]),
            ("two headers, even both right", vec![&app, &app]),
        ];
        for (name, values) in cases {
            assert!(
                matches!(
                    clients.authenticate(&headers(values)),
                    Err(ApiError::Unauthorized)
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn clients_share_only_their_scopes() {
        let clients = clients();
        let app = clients
            .authenticate(&headers(&[&format!("Bearer {APP_TOKEN}")]))
            .unwrap();
        assert!(app.may_share("view"));
        assert!(!app.may_share("guest"));
        assert!(!app.may_share("VIEW"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let text = format!("{:?}", Client::new("x", APP_TOKEN.as_bytes(), &[]));
        assert!(!text.contains(APP_TOKEN));
        assert!(!text.contains("digest"));
    }
}
