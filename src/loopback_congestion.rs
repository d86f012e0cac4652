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
//!
//! The algorithm must be chosen before the connection is established. bbr marks a socket for
//! pacing when it starts on it (`sk_pacing_status`), and nothing unmarks it: a connection switched
//! to reno afterwards is still paced by the kernel's timer, at reno's rate. So listening sockets
//! get the loopback algorithm before they accept ([`LoopbackCongestion::prepare_listeners`]), and
//! the connections they accept from other hosts are given the host's back, which starts it on
//! them as if they had never left it; connections to the upstream get it before `connect`
//! ([`LoopbackCongestion::connect`]). Until stop 39 both were switched after the handshake and
//! stayed paced: `bpftrace` on `timer:hrtimer_expire_entry` counted some 10,000 pacing timers
//! (`tcp_pace_kick`) a GiB on casegate's reno connection to the downloading curl.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpSocket, TcpStream, ToSocketAddrs};
use tracing::warn;

/// The default: reno is built into every kernel and is the one algorithm an unprivileged process
/// may always choose. cubic, which paces no more, is not allowed to one (as casegate's systemd
/// unit runs it) on a host whose default is another: `net.ipv4.tcp_allowed_congestion_control`
/// then reads `reno bbr` (so on these VMs; the kernel refused cubic with EPERM, found in review).
/// Over loopback nothing is lost, so the two grow their windows alike.
pub const DEFAULT: &str = "reno";

/// The value that keeps the host's congestion control for loopback connections too.
pub const SYSTEM: &str = "system";

/// What loopback connections get; cloning shares the names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopbackCongestion {
    /// `None`: the host's, for every connection.
    algorithm: Option<Arc<str>>,
    /// Set once the listening sockets carry `algorithm`: the host's algorithm, which the
    /// connections they accept from other hosts are given back.
    listeners_carry: Option<Arc<str>>,
}

/// Whether the kernel's refusal has been logged: once per process is enough to explain it.
static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);

impl LoopbackCongestion {
    /// Leaves every connection with the host's congestion control.
    pub fn system() -> LoopbackCongestion {
        LoopbackCongestion {
            algorithm: None,
            listeners_carry: None,
        }
    }

    /// Gives loopback connections `algorithm` (a name the config has checked).
    pub fn named(algorithm: &str) -> LoopbackCongestion {
        LoopbackCongestion {
            algorithm: Some(algorithm.into()),
            listeners_carry: None,
        }
    }

    /// The algorithm loopback connections get; `None`: the host's.
    pub fn algorithm(&self) -> Option<&str> {
        self.algorithm.as_deref()
    }

    /// Gives the listening sockets the loopback algorithm, so that the connections they accept
    /// start with it, and answers what [`LoopbackCongestion::accepted`] needs to give the others
    /// back the host's. When the host's is already the one asked for, or a socket refuses (logged
    /// once), the listeners are left or put back as the host has them and connections from this
    /// host are switched one by one after they are accepted, as before stop 39.
    pub fn prepare_listeners(&self, listeners: &[impl AsFd]) -> LoopbackCongestion {
        let Some(algorithm) = self.algorithm() else {
            return self.clone();
        };
        let Some(first) = listeners.first() else {
            return self.clone();
        };
        let Ok(host) = rustix::net::sockopt::tcp_congestion(first) else {
            return self.clone();
        };
        if host == algorithm {
            return LoopbackCongestion::system();
        }
        for listener in listeners {
            if let Err(error) = rustix::net::sockopt::set_tcp_congestion(listener, algorithm) {
                log_refusal(algorithm, &io::Error::from(error));
                for listener in listeners {
                    let _ = rustix::net::sockopt::set_tcp_congestion(listener, &host);
                }
                return self.clone();
            }
        }
        LoopbackCongestion {
            algorithm: self.algorithm.clone(),
            listeners_carry: Some(host.into()),
        }
    }

    /// For a connection just accepted from `peer`: one from this host keeps or is switched to
    /// the loopback algorithm, one from another host keeps or is given back the host's. A kernel
    /// that refuses leaves what the connection has, which still works; the first refusal is
    /// logged with what to change.
    pub fn accepted(&self, stream: &TcpStream, peer: IpAddr) {
        let Some(algorithm) = self.algorithm() else {
            return;
        };
        let wanted = match (&self.listeners_carry, peer.to_canonical().is_loopback()) {
            (Some(_), true) | (None, false) => return,
            (None, true) => algorithm,
            (Some(host), false) => host,
        };
        if let Err(error) = rustix::net::sockopt::set_tcp_congestion(stream, wanted) {
            log_refusal(wanted, &io::Error::from(error));
        }
    }

    /// Connects to the first of `destination`'s addresses that answers, as
    /// `TcpStream::connect`, with the loopback algorithm chosen before the handshake for an
    /// address on this host.
    pub async fn connect(&self, destination: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last_error = None;
        for address in tokio::net::lookup_host(destination).await? {
            match self.connect_to(address).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the name resolved to no address",
            )
        }))
    }

    async fn connect_to(&self, address: SocketAddr) -> io::Result<TcpStream> {
        let socket = match address {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(algorithm) = self.algorithm()
            && address.ip().to_canonical().is_loopback()
            && let Err(error) = rustix::net::sockopt::set_tcp_congestion(&socket, algorithm)
        {
            log_refusal(algorithm, &io::Error::from(error));
        }
        socket.connect(address).await
    }
}

fn log_refusal(algorithm: &str, error: &io::Error) {
    if REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
        return;
    }
    warn!(
        algorithm,
        %error,
        "a connection keeps the congestion control it has: the kernel refused {algorithm} \
         ([server] loopback_congestion_control, or the host's for a connection from another \
         host; is it in net.ipv4.tcp_allowed_congestion_control?); set \
         loopback_congestion_control to \"system\" to stop trying"
    );
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    use crate::direct_tcp::{connected_on as accepted_on, connected_pair as pair};

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    fn algorithm_of(socket: &impl AsFd) -> String {
        rustix::net::sockopt::tcp_congestion(socket).unwrap()
    }

    /// An algorithm other than the one new sockets get here, so that a switch can be seen.
    fn other_than(current: &str) -> &'static str {
        if current == "reno" { "cubic" } else { "reno" }
    }

    #[tokio::test]
    async fn a_prepared_listener_starts_loopback_connections_with_the_algorithm() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = algorithm_of(&listener);
        let wanted = other_than(&host);
        let prepared = LoopbackCongestion::named(wanted).prepare_listeners(&[&listener]);
        assert_eq!(prepared.listeners_carry.as_deref(), Some(host.as_str()));
        assert_eq!(algorithm_of(&listener), wanted);
        let (_client, accepted) = accepted_on(&listener).await;
        assert_eq!(
            algorithm_of(&accepted),
            wanted,
            "had from the listener, never the host's"
        );
        prepared.accepted(&accepted, LOCALHOST);
        assert_eq!(algorithm_of(&accepted), wanted);
    }

    #[tokio::test]
    async fn a_prepared_listener_gives_connections_from_other_hosts_the_hosts_algorithm() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = algorithm_of(&listener);
        let prepared = LoopbackCongestion::named(other_than(&host)).prepare_listeners(&[&listener]);
        for peer in [
            REMOTE,
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ] {
            let (_client, accepted) = accepted_on(&listener).await;
            prepared.accepted(&accepted, peer);
            assert_eq!(algorithm_of(&accepted), host, "{peer}");
        }
    }

    #[tokio::test]
    async fn a_host_that_already_has_the_algorithm_keeps_its_listeners() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = algorithm_of(&listener);
        let prepared = LoopbackCongestion::named(&host).prepare_listeners(&[&listener]);
        assert_eq!(prepared, LoopbackCongestion::system());
        let (_client, accepted) = accepted_on(&listener).await;
        prepared.accepted(&accepted, REMOTE);
        assert_eq!(algorithm_of(&accepted), host);
    }

    #[tokio::test]
    async fn an_unprepared_loopback_connection_is_switched_when_accepted() {
        let (_client, accepted) = pair().await;
        let wanted = other_than(&algorithm_of(&accepted));
        LoopbackCongestion::named(wanted).accepted(&accepted, LOCALHOST);
        assert_eq!(algorithm_of(&accepted), wanted);
        let (_client, mapped) = pair().await;
        let v4_in_v6 = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        LoopbackCongestion::named(wanted).accepted(&mapped, v4_in_v6);
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
        LoopbackCongestion::named(wanted).accepted(&accepted, REMOTE);
        LoopbackCongestion::named(wanted).accepted(&accepted, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        LoopbackCongestion::system().accepted(&accepted, LOCALHOST);
        assert_eq!(algorithm_of(&accepted), host);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(
            LoopbackCongestion::system().prepare_listeners(&[&listener]),
            LoopbackCongestion::system()
        );
        assert_eq!(algorithm_of(&listener), host);
    }

    #[tokio::test]
    async fn an_algorithm_the_kernel_does_not_have_leaves_listeners_and_connections_working() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = algorithm_of(&listener);
        let asked = LoopbackCongestion::named("no-such-cc");
        let prepared = asked.prepare_listeners(&[&listener]);
        assert_eq!(
            prepared, asked,
            "not prepared: switched one by one, as refused"
        );
        assert_eq!(algorithm_of(&listener), host);
        let (mut client, mut accepted) = accepted_on(&listener).await;
        prepared.accepted(&accepted, LOCALHOST);
        assert_eq!(algorithm_of(&accepted), host);
        client.write_all(b"still open").await.unwrap();
        let mut read = [0u8; 10];
        accepted.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"still open");
    }

    #[tokio::test]
    async fn a_connection_to_this_host_has_the_algorithm_from_its_first_packet() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = algorithm_of(&listener);
        let wanted = other_than(&host);
        let stream = LoopbackCongestion::named(wanted)
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        assert_eq!(algorithm_of(&stream), wanted);
        let stream = LoopbackCongestion::system()
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        assert_eq!(algorithm_of(&stream), host);
    }

    #[tokio::test]
    async fn connect_tries_each_address_in_turn() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = {
            let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
            gone.local_addr().unwrap()
        };
        let open = listener.local_addr().unwrap();
        let reno = LoopbackCongestion::named("reno");
        let stream = reno.connect(&[closed, open][..]).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), open);
        let error = reno.connect(&[closed][..]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
