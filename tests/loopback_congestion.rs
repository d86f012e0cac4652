//! `[server] loopback_congestion_control` (src/loopback_congestion.rs), end to end: a guest's
//! connection from this host and the pooled connection to an upstream on this host get the
//! configured algorithm; with `"system"` both keep the host's. The sockets are the gateway's own,
//! found among this test process's descriptors (the gateway runs in it) by their addresses.

mod common;

use std::mem::ManuallyDrop;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::FromRawFd;

use tokio::net::TcpStream;

use common::raw_client::keep_alive_exchange;
use common::upstream::TestUpstream;
use common::{TestGateway, config_text};

/// The host's default for new connections.
fn host_algorithm() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .expect("read /proc/sys/net/ipv4/tcp_congestion_control")
        .trim()
        .to_string()
}

/// The congestion control of each TCP socket of this process for which `wanted(local, peer)`
/// holds.
fn algorithms_where(wanted: impl Fn(SocketAddr, SocketAddr) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd") {
        let Ok(fd) = entry
            .expect("an fd entry")
            .file_name()
            .to_string_lossy()
            .parse()
        else {
            continue;
        };
        // SAFETY: only looked at, never closed (ManuallyDrop); a descriptor that is not a TCP
        // socket just fails the address calls.
        let socket = ManuallyDrop::new(unsafe { StdTcpStream::from_raw_fd(fd) });
        let (Ok(local), Ok(peer)) = (socket.local_addr(), socket.peer_addr()) else {
            continue;
        };
        if wanted(local, peer) {
            let algorithm =
                rustix::net::sockopt::tcp_congestion(&*socket).expect("getsockopt TCP_CONGESTION");
            found.push(algorithm);
        }
    }
    found
}

/// A gateway with `setting` (none: the default) in `[server]`, one guest request answered on a
/// connection that stays open, then the algorithms of the gateway's end of it and of its pooled
/// connection to the upstream.
async fn algorithms_with(setting: Option<&str>) -> (Vec<String>, Vec<String>) {
    let upstream = TestUpstream::start().await;
    let server_extra = setting
        .map(|name| format!("loopback_congestion_control = \"{name}\""))
        .unwrap_or_default();
    let text = config_text(&upstream.url(), &server_extra, "");
    let upstream_addr = upstream.addr;
    let gateway = TestGateway::start_from_text(upstream, &text).await;
    let cookie = gateway.open_link("42", "view").await;
    let mut guest = TcpStream::connect(gateway.addr).await.expect("connect");
    let answer = keep_alive_exchange(&mut guest, "/cases/42", &cookie).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let client_side = algorithms_where(|local, _| local == gateway.addr);
    let upstream_side = algorithms_where(|_, peer| peer == upstream_addr);
    drop(guest);
    (client_side, upstream_side)
}

/// An algorithm new sockets here do not get and, where possible, not the default (reno) either,
/// so that the configured name, not the default, shows. cubic may be chosen only with
/// CAP_NET_ADMIN when the host's default is another; the tests run as root (`.ci/run`).
fn other_than_host() -> &'static str {
    if host_algorithm() == "cubic" {
        "reno"
    } else {
        "cubic"
    }
}

#[tokio::test]
async fn connections_with_this_host_get_the_configured_algorithm() {
    let wanted = other_than_host();
    let (client_side, upstream_side) = algorithms_with(Some(wanted)).await;
    assert!(
        !client_side.is_empty(),
        "the guest's connection was not found"
    );
    assert!(
        !upstream_side.is_empty(),
        "no pooled upstream connection was found"
    );
    for algorithm in client_side.iter().chain(&upstream_side) {
        assert_eq!(algorithm, wanted, "{client_side:?} {upstream_side:?}");
    }
}

#[tokio::test]
async fn system_keeps_the_hosts_algorithm() {
    let host = host_algorithm();
    let (client_side, upstream_side) = algorithms_with(Some("system")).await;
    assert!(!client_side.is_empty() && !upstream_side.is_empty());
    for algorithm in client_side.iter().chain(&upstream_side) {
        assert_eq!(*algorithm, host, "{client_side:?} {upstream_side:?}");
    }
}

#[tokio::test]
async fn the_default_is_reno() {
    let (client_side, upstream_side) = algorithms_with(None).await;
    assert!(!client_side.is_empty() && !upstream_side.is_empty());
    for algorithm in client_side.iter().chain(&upstream_side) {
        assert_eq!(algorithm, "reno", "{client_side:?} {upstream_side:?}");
    }
}
