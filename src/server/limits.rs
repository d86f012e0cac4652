//! The resource limits a connection lives under. Every one of them is enforced, not advisory.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Whole request head must arrive within this time (slowloris).
    pub header_read_timeout: Duration,
    /// TLS handshake must complete within this time.
    pub tls_handshake_timeout: Duration,
    /// A connection with no request in flight and no bytes moving is closed after this time.
    pub idle_timeout: Duration,
    /// Upper bound on the bytes of a request head (HTTP/1 buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Upper bound on the number of request header fields (HTTP/1).
    pub max_headers: usize,
    /// Upper bound on a guest's request body.
    pub max_body_bytes: u64,
    /// Connections beyond this are closed at once after accept.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 1024 * 1024,
            max_connections: 10_000,
        }
    }
}
