//! Who per-address counters count: the TCP peer address the connection came from. Headers such as
//! `X-Forwarded-For` are never read here (a client can send any), so a guesser cannot reset their
//! counter by sending another one; trusted proxies come with issue 6.

use std::net::IpAddr;

/// An IPv4 address, or the /64 network of an IPv6 one: a single IPv6 client is usually given a
/// whole /64, so counting single addresses would give them 2^64 fresh counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4([u8; 4]),
    V6Net([u8; 8]),
}

impl ClientKey {
    pub fn of(peer: IpAddr) -> ClientKey {
        match peer {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.octets()),
                None => {
                    let octets = v6.octets();
                    let mut network = [0u8; 8];
                    network.copy_from_slice(&octets[..8]);
                    ClientKey::V6Net(network)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ClientKey {
        ClientKey::of(text.parse().unwrap())
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_network_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}
