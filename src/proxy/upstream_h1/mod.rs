//! casegate's own HTTP/1.1 client for the upstream: one request at a time per connection, run
//! inside the task of the request it serves.
//!
//! It replaced hyper's client connection (which ran each upstream connection as a task of its
//! own, with a channel between it and the request) for two reasons: that hand-over and hyper's
//! generic client machinery were a sixth of casegate's instructions per guest request, and a
//! response body that streams straight from the upstream's socket is what a zero-copy path for
//! large videos needs. What it must never do is lose its place in the byte stream, so it reads
//! strictly (RFC 9112) and keeps a connection only when the framing left no doubt: see
//! [`response_head`] for framing and reuse, [`chunked`] for the chunked grammar, and [`body`] for
//! when a connection goes back to the pool.

pub mod body;
pub mod chunked;
pub mod connection;
pub mod exchange;
pub mod passed_fields;
pub mod repeated_head;
pub mod request_head;
pub mod response_head;

pub use body::{BodyError, SpliceOffer, Spliceable, UpstreamBody};
pub use connection::UpstreamConnection;
pub use exchange::{Answered, ExchangeError, exchange};
pub use passed_fields::{PassedFields, UpstreamExtras};
pub use request_head::{RequestFraming, encode_request_head};
pub use response_head::BodyFraming;
