//! Turning an answer or an [`ApiError`] into the HTTP response: always JSON, never cached, and
//! for errors `{"error": {"code", "message"}}` with the headers the status calls for.

use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use super::error::{ApiError, retry_after_secs};

/// The body type of every admin response: small, complete JSON documents.
pub type ApiBody = Full<Bytes>;

/// A successful answer: `status` with `value` as its JSON body.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<ApiBody> {
    match serde_json::to_vec(value) {
        Ok(body) => with_headers(status, body),
        // Our own types always serialise; should one ever not, the client learns it failed.
        Err(_) => with_headers(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body("internal", "the answer could not be encoded"),
        ),
    }
}

/// The error document for `error`, with `WWW-Authenticate` on 401 and `Allow` on 405.
pub fn error(error: &ApiError) -> Response<ApiBody> {
    let (status, code) = error.status_and_code();
    let mut document =
        serde_json::json!({ "error": { "code": code, "message": error.to_string() } });
    if let ApiError::MailFailed {
        share: Some(share), ..
    } = error
    {
        document["share"] = (**share).clone();
    }
    let mut response = with_headers(status, document.to_string().into_bytes());
    let headers = response.headers_mut();
    match error {
        ApiError::Unauthorized => {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        ApiError::MethodNotAllowed { allow } => {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::ResendTooSoon { retry_after }
        | ApiError::CaseRevokedAhead { retry_after, .. } => {
            headers.insert(
                RETRY_AFTER,
                HeaderValue::from(retry_after_secs(*retry_after)),
            );
        }
        _ => {}
    }
    response
}

fn error_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({ "error": { "code": code, "message": message } })
        .to_string()
        .into_bytes()
}

fn with_headers(status: StatusCode, body: Vec<u8>) -> Response<ApiBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Answers name shares and carry a fresh link token: no cache may keep them.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::error::QueryProblem;
    use http_body_util::BodyExt;

    async fn body_of(response: Response<ApiBody>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn errors_are_json_documents_with_code_and_message() {
        let response = error(&ApiError::InvalidQuery(QueryProblem::BadStatus));
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        let body = body_of(response).await;
        assert_eq!(body["error"]["code"], "invalid_query");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("pending")
        );
    }

    #[test]
    fn a_401_asks_for_a_bearer_token_and_a_405_names_the_methods() {
        let unauthorized = error(&ApiError::Unauthorized);
        assert_eq!(unauthorized.status(), 401);
        assert_eq!(unauthorized.headers()[WWW_AUTHENTICATE], "Bearer");
        let wrong_method = error(&ApiError::MethodNotAllowed {
            allow: "GET, DELETE",
        });
        assert_eq!(wrong_method.status(), 405);
        assert_eq!(wrong_method.headers()[ALLOW], "GET, DELETE");
        assert!(wrong_method.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[tokio::test]
    async fn answers_are_uncached_json() {
        let response = json(StatusCode::CREATED, &serde_json::json!({ "id": "x" }));
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(body_of(response).await["id"], "x");
    }
}
