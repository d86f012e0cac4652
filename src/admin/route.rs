//! Which endpoint a request is for. Every path the API knows is here, with the methods it takes:
//! an unknown path is 404, a known path with another method is 405 naming the allowed ones.

use http::Method;

use super::error::ApiError;
use crate::share::token::is_share_id;

/// One endpoint of the admin API, with the path parameter it names.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /v1/shares?case=&status=`
    ListShares,
    /// `POST /v1/shares`
    CreateShare,
    /// `GET /v1/shares/{id}`
    GetShare { id: &'a str },
    /// `DELETE /v1/shares/{id}`
    RevokeShare { id: &'a str },
    /// `POST /v1/shares/{id}/resend`: email the share's link again.
    ResendShare { id: &'a str },
    /// `POST /v1/cases/{case}/revoke`; the case is checked against the gateway's case pattern.
    RevokeCase { case: &'a str },
    /// `POST /v1/reload`: re-read the config file and swap in what it says.
    Reload,
}

impl<'a> Route<'a> {
    /// Routes on the path alone (without its query); share ids are checked here, since their
    /// grammar is fixed.
    pub fn parse(method: &Method, path: &'a str) -> Result<Route<'a>, ApiError> {
        let segments: Vec<&str> = match path.strip_prefix("/v1/") {
            Some(rest) => rest.split('/').collect(),
            None => return Err(ApiError::NotFound),
        };
        match segments.as_slice() {
            ["shares"] => match *method {
                Method::GET => Ok(Route::ListShares),
                Method::POST => Ok(Route::CreateShare),
                _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
            },
            ["shares", id] if !id.is_empty() => {
                let route = match *method {
                    Method::GET => Route::GetShare { id },
                    Method::DELETE => Route::RevokeShare { id },
                    _ => {
                        return Err(ApiError::MethodNotAllowed {
                            allow: "GET, DELETE",
                        });
                    }
                };
                if !is_share_id(id) {
                    return Err(ApiError::InvalidShareId);
                }
                Ok(route)
            }
            ["shares", id, "resend"] if !id.is_empty() => match *method {
                Method::POST if is_share_id(id) => Ok(Route::ResendShare { id }),
                Method::POST => Err(ApiError::InvalidShareId),
                _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            },
            ["reload"] => match *method {
                Method::POST => Ok(Route::Reload),
                _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            },
            ["cases", case, "revoke"] if !case.is_empty() => match *method {
                Method::POST => Ok(Route::RevokeCase { case }),
                _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            },
            _ => Err(ApiError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AbCdEfGhIjKlMnOp_-12";

    #[test]
    fn every_endpoint_is_found_with_its_methods() {
        let cases: &[(&str, Method, &str, Route<'_>)] = &[
            ("list", Method::GET, "/v1/shares", Route::ListShares),
            ("create", Method::POST, "/v1/shares", Route::CreateShare),
            (
                "get one",
                Method::GET,
                "/v1/shares/AbCdEfGhIjKlMnOp_-12",
                Route::GetShare { id: ID },
            ),
            (
                "revoke one",
                Method::DELETE,
                "/v1/shares/AbCdEfGhIjKlMnOp_-12",
                Route::RevokeShare { id: ID },
            ),
            (
                "revoke a case",
                Method::POST,
                "/v1/cases/C-42/revoke",
                Route::RevokeCase { case: "C-42" },
            ),
            (
                "resend one",
                Method::POST,
                "/v1/shares/AbCdEfGhIjKlMnOp_-12/resend",
                Route::ResendShare { id: ID },
            ),
            ("reload", Method::POST, "/v1/reload", Route::Reload),
        ];
        for (name, method, path, want) in cases {
            assert_eq!(
                Route::parse(method, path).ok().as_ref(),
                Some(want),
                "{name}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_stable_code() {
        let long_id = format!("/v1/shares/{}", "a".repeat(129));
        let cases: &[(&str, Method, &str, &str)] = &[
            ("the root", Method::GET, "/", "not_found"),
            ("no version", Method::GET, "/shares", "not_found"),
            ("another version", Method::GET, "/v2/shares", "not_found"),
            ("a trailing slash", Method::GET, "/v1/shares/", "not_found"),
            ("a double slash", Method::GET, "/v1//shares", "not_found"),
            (
                "too deep",
                Method::GET,
                "/v1/shares/AbCdEfGhIjKlMnOp/x",
                "not_found",
            ),
            (
                "a case without action",
                Method::POST,
                "/v1/cases/42",
                "not_found",
            ),
            (
                "an empty case",
                Method::POST,
                "/v1/cases//revoke",
                "not_found",
            ),
            (
                "put on the collection",
                Method::PUT,
                "/v1/shares",
                "method_not_allowed",
            ),
            (
                "delete on the collection",
                Method::DELETE,
                "/v1/shares",
                "method_not_allowed",
            ),
            (
                "post on a share",
                Method::POST,
                "/v1/shares/AbCdEfGhIjKlMnOp",
                "method_not_allowed",
            ),
            (
                "get on a resend",
                Method::GET,
                "/v1/shares/AbCdEfGhIjKlMnOp/resend",
                "method_not_allowed",
            ),
            (
                "a resend of a bad id",
                Method::POST,
                "/v1/shares/short/resend",
                "invalid_share_id",
            ),
            (
                "get on a case revoke",
                Method::GET,
                "/v1/cases/42/revoke",
                "method_not_allowed",
            ),
            (
                "a short share id",
                Method::GET,
                "/v1/shares/short",
                "invalid_share_id",
            ),
            ("a long share id", Method::GET, &long_id, "invalid_share_id"),
            (
                "an encoded share id",
                Method::DELETE,
                "/v1/shares/AbCdEfGhIjKlMnOp%2E",
                "invalid_share_id",
            ),
            (
                "a dotted share id",
                Method::GET,
                "/v1/shares/AbCdEfGhIjKl.MnOp",
                "invalid_share_id",
            ),
        ];
        for (name, method, path, code) in cases {
            match Route::parse(method, path) {
                Ok(route) => panic!("{name}: routed to {route:?}"),
                Err(error) => assert_eq!(error.status_and_code().1, *code, "{name}"),
            }
        }
    }

    #[test]
    fn a_wrong_method_names_the_allowed_ones() {
        let Err(ApiError::MethodNotAllowed { allow }) =
            Route::parse(&Method::PATCH, "/v1/shares/AbCdEfGhIjKlMnOp")
        else {
            panic!("not a 405");
        };
        assert_eq!(allow, "GET, DELETE");
    }
}
