//! Who a request is from. Behind a load balancer the TCP peer is the balancer, and the client is
//! in the `X-Forwarded-For` it added; but anyone can send that header, so it is believed only
//! from a peer in `[server] trusted_proxies`, and only as far as it passes through trusted hops.
//!
//! From a trusted peer the header is read right to left (the right end was written by the hop
//! nearest to us): trusted addresses are skipped, and the first untrusted one is the client. An
//! entry that is not a plain IP address (`unknown`, a port, garbage) ends the walk at the last
//! trusted hop reached, so junk is never taken for a client. From any other peer the header is
//! ignored (and, like `Forwarded` and `X-Real-IP`, never forwarded: see `hop.rs`).
//!
//! The result is used for the per-address verification limits, the access log and the process
//! log, and is what the upstream's `X-Forwarded-For` starts with.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::cidr::TrustedProxies;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client of one request, and the path it took to us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddress {
    /// The TCP peer, unless that is a trusted proxy that said whom it forwarded.
    pub ip: IpAddr,
    /// The `X-Forwarded-For` the upstream receives: the client, the trusted proxies between it
    /// and us, and the peer, oldest first. Nothing a client could choose, beyond its own address
    /// as a trusted proxy saw it.
    pub forwarded_for: HeaderValue,
}

impl ClientAddress {
    /// A request straight from `peer`, with no proxy in between that we believe.
    pub fn direct(peer: IpAddr) -> ClientAddress {
        ClientAddress {
            ip: peer,
            forwarded_for: ip_header_value(peer),
        }
    }

    /// Resolves the client of a request that arrived from `peer` with `headers`.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> ClientAddress {
        if !trusted.contains(peer) {
            return ClientAddress::direct(peer);
        }
        // Nearest hop first: the peer, then X-Forwarded-For from its right end.
        let mut path = vec![peer];
        'walk: for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(value) = value.to_str() else {
                break;
            };
            for entry in value.rsplit(',') {
                let Ok(hop) = entry.trim_matches([' ', '\t']).parse::<IpAddr>() else {
                    break 'walk;
                };
                path.push(hop);
                if !trusted.contains(hop) {
                    break 'walk;
                }
            }
        }
        // The last address reached: the first untrusted one, or the farthest trusted hop when
        // the header ran out or turned to junk.
        let ip = path.last().copied().unwrap_or(peer);
        let chain: Vec<String> = path.iter().rev().map(IpAddr::to_string).collect();
        ClientAddress {
            ip,
            // IP addresses and ", " are always valid header characters.
            forwarded_for: HeaderValue::from_str(&chain.join(", "))
                .unwrap_or_else(|_| ip_header_value(peer)),
        }
    }
}

fn ip_header_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::cidr::Cidr;

    fn trusted(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(ranges.iter().map(|r| Cidr::parse(r).unwrap()).collect())
    }

    fn resolve(peer: &str, xff: &[&[u8]], ranges: &[&str]) -> (String, String) {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_bytes(value).unwrap());
        }
        let resolved = ClientAddress::resolve(peer.parse().unwrap(), &headers, &trusted(ranges));
        (
            resolved.ip.to_string(),
            resolved.forwarded_for.to_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        for ranges in [&[][..], &["10.0.0.0/8"][..]] {
            assert_eq!(
                resolve("192.0.2.7", &[b"198.51.100.1"], ranges),
                ("192.0.2.7".into(), "192.0.2.7".into())
            );
        }
    }

    #[test]
    fn a_trusted_peer_names_the_client_in_its_last_entry() {
        assert_eq!(
            resolve("10.0.0.5", &[b"198.51.100.1"], &["10.0.0.0/8"]),
            ("198.51.100.1".into(), "198.51.100.1, 10.0.0.5".into())
        );
    }

    #[test]
    fn trusted_hops_are_skipped_and_what_the_client_wrote_before_them_is_dropped() {
        // The client sent "1.1.1.1" itself; the edge proxy appended the client's real address,
        // an inner proxy appended the edge's.
        assert_eq!(
            resolve(
                "10.0.0.5",
                &[b"1.1.1.1, 198.51.100.1, 10.0.0.9"],
                &["10.0.0.0/8"]
            ),
            (
                "198.51.100.1".into(),
                "198.51.100.1, 10.0.0.9, 10.0.0.5".into()
            )
        );
        // The same path spread over several header lines reads the same.
        assert_eq!(
            resolve(
                "10.0.0.5",
                &[b"1.1.1.1", b"198.51.100.1", b"10.0.0.9"],
                &["10.0.0.0/8"]
            ),
            (
                "198.51.100.1".into(),
                "198.51.100.1, 10.0.0.9, 10.0.0.5".into()
            )
        );
    }

    #[test]
    fn junk_ends_the_walk_at_the_last_trusted_hop() {
        let cases: [(&[&[u8]], &str); 6] = [
            (&[b"unknown, 10.0.0.9"], "10.0.0.9"),
            (&[b"198.51.100.1:4711, 10.0.0.9"], "10.0.0.9"),
            (&[b"[2001:db8::1], 10.0.0.9"], "10.0.0.9"),
            (&[b"198.51.100.1,, 10.0.0.9"], "10.0.0.9"),
            (&[b"198.51.100.1", b"\xff\xfe", b"10.0.0.9"], "10.0.0.9"),
            (&[b"198.51.100.1, 10.0.0.9 x"], "10.0.0.5"),
        ];
        for (xff, want) in cases {
            let (client, chain) = resolve("10.0.0.5", xff, &["10.0.0.0/8"]);
            assert_eq!(client, want, "{xff:?}");
            assert!(chain.starts_with(want), "{chain}");
        }
    }

    #[test]
    fn a_header_of_only_trusted_hops_or_none_leaves_the_farthest_one() {
        assert_eq!(
            resolve("10.0.0.5", &[b"10.0.0.9"], &["10.0.0.0/8"]).0,
            "10.0.0.9"
        );
        assert_eq!(
            resolve("10.0.0.5", &[], &["10.0.0.0/8"]),
            ("10.0.0.5".into(), "10.0.0.5".into())
        );
    }

    #[test]
    fn ipv6_and_mapped_peers_are_matched_like_the_ranges_say() {
        assert_eq!(
            resolve("::1", &[b"2001:db8::7"], &["::1/128"]),
            ("2001:db8::7".into(), "2001:db8::7, ::1".into())
        );
        assert_eq!(
            resolve("::ffff:10.0.0.5", &[b"198.51.100.1"], &["10.0.0.0/8"]).0,
            "198.51.100.1"
        );
    }
}
