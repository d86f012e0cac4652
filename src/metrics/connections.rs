//! Open connections by protocol, counted by guards: whatever way a connection or tunnel ends
//! (closed, reset, timed out, shut down), dropping its guard takes it off the gauge.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use super::{Metrics, Protocol};

const UNKNOWN: u8 = 0;
const HTTP1: u8 = 1;
const HTTP2: u8 = 2;

/// One public connection. Its protocol is known only once hyper has read the first request (ALPN
/// or the HTTP/2 preface decide it), so the connection is counted from then on.
#[derive(Debug)]
pub struct ConnectionGauge {
    metrics: Arc<Metrics>,
    protocol: AtomicU8,
}

impl ConnectionGauge {
    pub fn new(metrics: Arc<Metrics>) -> ConnectionGauge {
        ConnectionGauge {
            metrics,
            protocol: AtomicU8::new(UNKNOWN),
        }
    }

    /// Called for every request; counts the connection the first time.
    pub fn saw_request(&self, version: http::Version) {
        let (code, protocol) = if version == http::Version::HTTP_2 {
            (HTTP2, Protocol::Http2)
        } else {
            (HTTP1, Protocol::Http1)
        };
        // Read first: only a connection's first request finds it unknown, and a plain read
        // spares the others the locked instruction of a compare-exchange.
        if self.protocol.load(Ordering::Relaxed) == UNKNOWN
            && self
                .protocol
                .compare_exchange(UNKNOWN, code, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.metrics.open_connections(protocol).inc();
        }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        let protocol = match self.protocol.load(Ordering::Relaxed) {
            HTTP1 => Protocol::Http1,
            HTTP2 => Protocol::Http2,
            _ => return,
        };
        self.metrics.open_connections(protocol).dec();
    }
}

/// One WebSocket tunnel, from the switch until either side closes it.
#[derive(Debug)]
pub struct TunnelGauge(Arc<Metrics>);

impl TunnelGauge {
    pub fn new(metrics: Arc<Metrics>) -> TunnelGauge {
        metrics.open_connections(Protocol::WebSocket).inc();
        TunnelGauge(metrics)
    }
}

impl Drop for TunnelGauge {
    fn drop(&mut self) {
        self.0.open_connections(Protocol::WebSocket).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_counts_once_under_its_protocol_until_dropped() {
        let metrics = Arc::new(Metrics::new());
        let gauge = ConnectionGauge::new(Arc::clone(&metrics));
        assert_eq!(metrics.open_connections(Protocol::Http1).get(), 0);
        gauge.saw_request(http::Version::HTTP_11);
        gauge.saw_request(http::Version::HTTP_11);
        assert_eq!(metrics.open_connections(Protocol::Http1).get(), 1);
        drop(gauge);
        assert_eq!(metrics.open_connections(Protocol::Http1).get(), 0);

        let silent = ConnectionGauge::new(Arc::clone(&metrics));
        drop(silent);
        assert_eq!(metrics.open_connections(Protocol::Http1).get(), 0);

        let tunnel = TunnelGauge::new(Arc::clone(&metrics));
        assert_eq!(metrics.open_connections(Protocol::WebSocket).get(), 1);
        drop(tunnel);
        assert_eq!(metrics.open_connections(Protocol::WebSocket).get(), 0);
    }
}
