//! Protocol switches (HTTP/1.1 `Upgrade`). Only WebSocket is ever forwarded, and only where a scope's
//! `upgrade` rule opts in; h2c, TLS upgrades and CONNECT tunnels are refused. An accepted switch
//! becomes a byte splice between the client and the upstream that ends when the share does.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request};
use tokio::io::AsyncWriteExt;
use tracing::debug;

use super::upstream_h1::UpstreamConnection;

use crate::server::activity::{Activity, TrackedIo};
use crate::server::h1::upgrade::OnUpgrade;
use crate::server::slots::ConnectionSlot;

/// What protocol switch a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeAsk {
    /// An ordinary request.
    None,
    /// `Connection: upgrade` with `Upgrade: websocket` and nothing else.
    WebSocket,
    /// Any other switch: h2c, TLS, several protocols, CONNECT, or `Upgrade` without `Connection`.
    Unsupported,
}

/// Classifies the request's protocol switch, strictly: anything unusual is `Unsupported`.
pub fn upgrade_ask<B>(request: &Request<B>) -> UpgradeAsk {
    if request.method() == Method::CONNECT {
        return UpgradeAsk::Unsupported;
    }
    let headers = request.headers();
    let mut upgrades = headers.get_all(header::UPGRADE).iter();
    let Some(first) = upgrades.next() else {
        return UpgradeAsk::None;
    };
    let only_one = upgrades.next().is_none();
    let websocket = first
        .to_str()
        .is_ok_and(|value| value.trim().eq_ignore_ascii_case("websocket"));
    let connection_says_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if only_one && websocket && connection_says_upgrade && request.method() == Method::GET {
        UpgradeAsk::WebSocket
    } else {
        UpgradeAsk::Unsupported
    }
}

/// Puts back the two hop-by-hop headers a WebSocket handshake needs after hygiene removed them.
pub fn restore_websocket_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// What bounds a tunnel once the protocol has switched.
pub struct Tunnel {
    /// The tunnel never outlives the guest's session; `None` for passthrough traffic.
    pub lifetime: Option<Duration>,
    /// Closed when no bytes move either way for this long.
    pub idle_timeout: Duration,
    /// The listener's connection slot, held until the tunnel closes so that tunnels count
    /// against `max_connections` like any other connection.
    pub slot: Option<Arc<ConnectionSlot>>,
    /// Counts the tunnel among open WebSocket connections until it closes.
    pub gauge: crate::metrics::TunnelGauge,
}

/// Copies bytes both ways between the upgraded client connection and the upstream's (which
/// switched with its 101) until either side closes, the tunnel is idle for too long, or its
/// lifetime runs out.
pub fn splice(client: OnUpgrade, upstream: Box<UpstreamConnection>, tunnel: Tunnel) {
    tokio::spawn(async move {
        let client = match client.await {
            Ok(client) => client,
            Err(error) => {
                debug!(%error, "protocol switch failed");
                return;
            }
        };
        // The upstream may have spoken first, in the same read as its 101.
        let (upstream, early) = upstream.into_parts();
        let activity = Activity::new();
        let mut client = TrackedIo::new(client, Arc::clone(&activity));
        let mut upstream = TrackedIo::new(upstream, Arc::clone(&activity));
        if !early.is_empty()
            && let Err(error) = client.write_all(&early).await
        {
            debug!(%error, "tunnel closed with an error");
            return;
        }
        let lifetime = tunnel.lifetime.unwrap_or(Duration::MAX);
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(error) = result {
                    debug!(%error, "tunnel closed with an error");
                }
            }
            () = activity.idle_for(tunnel.idle_timeout) => debug!("closing idle tunnel"),
            () = sleep_or_forever(lifetime) => debug!("closing tunnel: the share session ended"),
        }
        drop(tunnel.slot);
        drop(tunnel.gauge);
    });
}

/// `tokio::time::sleep` panics on durations that overflow its clock; `Duration::MAX` means never.
async fn sleep_or_forever(limit: Duration) {
    match tokio::time::Instant::now().checked_add(limit) {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Headers = &'static [(&'static str, &'static str)];

    #[test]
    fn only_a_plain_websocket_handshake_counts_as_websocket() {
        let cases: [(&str, Headers, UpgradeAsk); 9] = [
            ("GET", &[], UpgradeAsk::None),
            (
                "GET",
                &[("connection", "Upgrade"), ("upgrade", "websocket")],
                UpgradeAsk::WebSocket,
            ),
            (
                "GET",
                &[
                    ("connection", "keep-alive, upgrade"),
                    ("upgrade", "WebSocket"),
                ],
                UpgradeAsk::WebSocket,
            ),
            ("GET", &[("upgrade", "websocket")], UpgradeAsk::Unsupported),
            (
                "GET",
                &[
                    ("connection", "Upgrade, HTTP2-Settings"),
                    ("upgrade", "h2c"),
                ],
                UpgradeAsk::Unsupported,
            ),
            (
                "GET",
                &[("connection", "upgrade"), ("upgrade", "websocket, h2c")],
                UpgradeAsk::Unsupported,
            ),
            (
                "GET",
                &[
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("upgrade", "h2c"),
                ],
                UpgradeAsk::Unsupported,
            ),
            (
                "POST",
                &[("connection", "upgrade"), ("upgrade", "websocket")],
                UpgradeAsk::Unsupported,
            ),
            ("CONNECT", &[], UpgradeAsk::Unsupported),
        ];
        for (method, headers, expected) in cases {
            let mut builder = Request::builder().method(method).uri("/ws");
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            let request = builder.body(()).unwrap();
            assert_eq!(upgrade_ask(&request), expected, "{method} {headers:?}");
        }
    }
}
