//! The listening side: accepting TCP connections, TLS, HTTP/1.1 and HTTP/2 on one port, and the
//! timeouts and limits that keep one client from holding resources it does not use.

pub mod activity;
pub mod balance;
pub mod body_pace;
pub mod connection;
pub mod h1;
mod head;
mod lifetime;
pub mod listener;
mod preface;
pub mod slots;
pub mod tls;
mod trim;
pub mod workers;

pub use crate::config::Limits;
pub use connection::{ConnectionInfo, SharedByRequests};
pub use workers::serve;
