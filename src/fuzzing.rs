//! Entry points for the fuzz targets (`fuzz/`) and the property tests (`tests/properties.rs`) into
//! parsers the rest of the crate keeps private. Not an API: hidden from the docs, and nothing in
//! casegate itself calls it.
//!
//! Everything else the properties need (`share::token::verify`, `share::cookie::open`,
//! `policy::canonicalise`, `config::parse`) is public already; this module only adds what a
//! client of the crate could not otherwise reach: a cookie carrying arbitrary authentic bytes, and
//! the admin API's readers of a request body, path and query with the answer they would give.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http::{Method, StatusCode};
use hyper::body::Body;

pub use crate::admin::create_request::CreateShare;
pub use crate::admin::query::ListFilter;
pub use crate::admin::route::Route;

use crate::admin::{ApiError, respond};
use crate::share::KeyRing;

/// A guest cookie value whose MAC is valid for `payload`, whatever the payload holds, under the
/// ring's active key: the only way past the MAC to the payload decoder without the key's bytes.
pub fn seal_cookie_payload(keys: &KeyRing, payload: &[u8]) -> String {
    crate::share::cookie::seal_payload(keys, payload)
}

/// What the admin API answers when it refuses a request: the status and the JSON document.
#[derive(Debug)]
pub struct AdminRefusal {
    pub status: StatusCode,
    /// `{"error": {"code", "message"}}`, exactly as sent.
    pub body: Vec<u8>,
}

/// Reads `body` as the admin API reads the body of `POST /v1/shares`.
pub fn admin_create_share(body: &[u8]) -> Result<CreateShare, AdminRefusal> {
    CreateShare::parse(body).map_err(|error| refusal(&error))
}

/// Routes a request as the admin API does (404, 405 or a bad share id otherwise).
pub fn admin_route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, AdminRefusal> {
    Route::parse(method, path).map_err(|error| refusal(&error))
}

/// Reads the query of `GET /v1/shares` as the admin API does.
pub fn admin_list_filter(query: Option<&str>) -> Result<ListFilter<'_>, AdminRefusal> {
    ListFilter::parse(query).map_err(|error| refusal(&error))
}

fn refusal(error: &ApiError) -> AdminRefusal {
    let response = respond::error(error);
    let status = response.status();
    let mut body = response.into_body();
    // The error body is one complete in-memory frame: it is ready on the first poll.
    let mut context = Context::from_waker(Waker::noop());
    let mut bytes = Vec::new();
    while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut context) {
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    AdminRefusal {
        status,
        body: bytes,
    }
}
