//! The TCP congestion control of connections whose other end is on this host (`[server]
//! loopback_congestion_control`): a TLS terminator or load balancer in front of casegate on the
//! same machine, an upstream app on 127.0.0.1.
//!
//! Why: a host whose default is bbr (common, and so on these VMs) paces every connection,
//! loopback ones too. With no fq qdisc, the kernel paces a socket itself, by a high-resolution
//! timer that releases a burst at a time; over loopback, where there is no network queue to
//! spare, that buys nothing and costs CPU. A 1 GiB video sent through casegate to a reader on the
//! same host cost casegate 0.33 CPU-seconds paced (bbr) and 0.18-0.21 unpaced (cubic or reno),
//! and the download went from 67% to 76-91% of the direct one (benches/load/big_download.sh,
//! benches/HISTORY.md, stop 37).
//! Connections to and from other hosts keep the host's choice: pacing is what protects real
//! networks.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpStream;
use tracing::warn;

/// The default: reno is built into every kernel and is the one algorithm an unprivileged process
/// may always choose. cubic, which paces no more, is not allowed to one (as casegate's systemd
/// unit runs it) on a host whose default is another: `net.ipv4.tcp_allowed_congestion_control`
/// then reads `reno bbr` (so on these VMs; the kernel refused cubic with EPERM, found in review).
/// Over loopback nothing is lost, so the two grow their windows alike.
pub const DEFAULT: &str = "reno";

/// The value that keeps the host's congestion control for loopback connections too.
pub const SYSTEM: &str = "system";

/// What loopback connections are switched to; cloning shares the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopbackCongestion(Option<Arc<str>>);

/// Whether the kernel's refusal has been logged: once per process is enough to explain it.
static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);

impl LoopbackCongestion {
    /// Leaves every connection with the host's congestion control.
    pub fn system() -> LoopbackCongestion {
        LoopbackCongestion(None)
    }

    /// Switches loopback connections to `algorithm` (a name the config has checked).
    pub fn named(algorithm: &str) -> LoopbackCongestion {
        LoopbackCongestion(Some(algorithm.into()))
    }

    /// The algorithm loopback connections get; `None`: the host's.
    pub fn algorithm(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Switches `stream` to the configured algorithm when `peer` is this host. A kernel that
    /// refuses (the algorithm not built or not allowed) leaves the host's choice, which still
    /// works; the first refusal is logged with what to change.
    pub fn apply(&self, stream: &TcpStream, peer: IpAddr) {
        let Some(algorithm) = self.algorithm() else {
            return;
        };
        if !peer.to_canonical().is_loopback() {
            return;
        }
        if let Err(error) = rustix::net::sockopt::set_tcp_congestion(stream, algorithm) {
            log_refusal(algorithm, &io::Error::from(error));
        }
    }
}

fn log_refusal(algorithm: &str, error: &io::Error) {
    if REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
        return;
    }
    warn!(
        algorithm,
        %error,
        "loopback connections keep the host's congestion control: the kernel refused \
         [server] loopback_congestion_control (is it in \
         net.ipv4.tcp_allowed_congestion_control?); set it to \"system\" to stop trying"
    );
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    use crate::direct_tcp::connected_pair as pair;

    fn algorithm_of(stream: &TcpStream) -> String {
        rustix::net::sockopt::tcp_congestion(stream).unwrap()
    }

    /// An algorithm other than the one new sockets get here, so that a switch can be seen.
    fn other_than(current: &str) -> &'static str {
        if current == "reno" { "cubic" } else { "reno" }
    }

    #[tokio::test]
    async fn a_loopback_connection_gets_the_configured_algorithm() {
        let (_client, accepted) = pair().await;
        let wanted = other_than(&algorithm_of(&accepted));
        LoopbackCongestion::named(wanted).apply(&accepted, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(algorithm_of(&accepted), wanted);
        let (_client, mapped) = pair().await;
        let v4_in_v6 = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        LoopbackCongestion::named(wanted).apply(&mapped, v4_in_v6);
        assert_eq!(
            algorithm_of(&mapped),
            wanted,
            "::ffff:127.0.0.1 is loopback"
        );
    }

    #[tokio::test]
    async fn other_peers_and_system_keep_the_hosts_algorithm() {
        let (_client, accepted) = pair().await;
        let host = algorithm_of(&accepted);
        let wanted = other_than(&host);
        let remote = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        LoopbackCongestion::named(wanted).apply(&accepted, remote);
        LoopbackCongestion::named(wanted).apply(&accepted, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        LoopbackCongestion::system().apply(&accepted, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(algorithm_of(&accepted), host);
    }

    #[tokio::test]
    async fn an_algorithm_the_kernel_does_not_have_leaves_the_connection_working() {
        let (mut client, mut accepted) = pair().await;
        let host = algorithm_of(&accepted);
        LoopbackCongestion::named("no-such-cc").apply(&accepted, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(algorithm_of(&accepted), host);
        client.write_all(b"still open").await.unwrap();
        let mut read = [0u8; 10];
        accepted.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"still open");
    }
}
