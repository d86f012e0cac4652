//! Everything between the decision and the upstream: header hygiene in and out, each worker's
//! upstream connections, and the rewriting of requests and responses for guests.

pub mod cidr;
pub mod client;
pub mod client_address;
pub mod field_line;
pub mod guest_allowlist;
pub mod hop;
pub mod pool;
pub mod request;
pub mod response;
pub mod upgrade;
pub mod upstream;
pub mod upstream_h1;
pub mod worker_parks;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};

/// The error type carried by bodies that flow through the gateway.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response the gateway hands to hyper: streamed bodies from
/// either peer and small fixed pages share one type.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body with nothing in it, for redirects, refusals without a page, and bodiless forwards.
pub fn empty_body() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}
