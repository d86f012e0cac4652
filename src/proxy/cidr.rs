//! Address ranges for `[server] trusted_proxies`: [`Cidr`] (`10.0.0.0/8`, `2001:db8::/32`, or a
//! single address) and [`TrustedProxies`], the list the client-address resolution asks.
//!
//! Parsing is strict, since a typo here decides whose `X-Forwarded-For` is believed: a range
//! whose address has bits set past its prefix (`10.0.0.1/8`) is refused rather than silently
//! widened, and so is a range that covers every address (it would believe anyone).

use std::fmt;
use std::net::IpAddr;

/// An IPv4 or IPv6 network: the addresses whose first `prefix_len` bits are `network`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a `trusted_proxies` entry is not a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// Neither an address nor `address/prefix`.
    NotAnAddress,
    /// A prefix that is not a number up to 32 (IPv4) or 128 (IPv6).
    BadPrefix { max: u8 },
    /// `10.0.0.1/8`: the address has bits past the prefix; `network` is what was probably meant.
    HostBitsSet { network: Cidr },
    /// `/0`: every address, so anyone could say who the client is.
    Everything,
    /// `::ffff:10.0.0.1`: peers are matched as the IPv4 address they carry, so write that.
    Ipv4Mapped,
}

/// The peers whose `X-Forwarded-For` is believed. Empty (the default): nobody's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    ranges: Vec<Cidr>,
}

// === impl Cidr ===

impl Cidr {
    /// `address` or `address/prefix`, IPv4 or IPv6; IPv6 without brackets.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| CidrError::NotAnAddress)?;
        if let IpAddr::V6(v6) = address
            && v6.to_ipv4_mapped().is_some()
        {
            return Err(CidrError::Ipv4Mapped);
        }
        let max = max_prefix(address);
        let prefix_len = match prefix {
            None => max,
            // Digits only: `u8::from_str` would also take a leading `+`.
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|&len| len <= max)
                    .ok_or(CidrError::BadPrefix { max })?
            }
            Some(_) => return Err(CidrError::BadPrefix { max }),
        };
        if prefix_len == 0 {
            return Err(CidrError::Everything);
        }
        let network = Cidr {
            network: masked(address, prefix_len),
            prefix_len,
        };
        if network.network != address {
            return Err(CidrError::HostBitsSet { network });
        }
        Ok(network)
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a
    /// dual-stack listener reports IPv4 peers) counts as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix_len) == self.network
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

fn max_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `address` with every bit past the first `prefix_len` cleared.
fn masked(address: IpAddr, prefix_len: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    }
}

// === impl CidrError ===

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::NotAnAddress => f.write_str(
                "is not an address or a range like 10.0.0.0/8, 192.168.1.7 or 2001:db8::/32",
            ),
            CidrError::BadPrefix { max } => {
                write!(
                    f,
                    "has a prefix length that is not a number from 1 to {max}"
                )
            }
            CidrError::HostBitsSet { network } => write!(
                f,
                "has address bits set past its prefix length; the range is written {network}"
            ),
            CidrError::Everything => f.write_str(
                "covers every address, so any client could choose the address it is counted and \
                 logged as; list the load balancers' own addresses or subnets",
            ),
            CidrError::Ipv4Mapped => f.write_str(
                "is an IPv4-mapped IPv6 address; peers are matched as the IPv4 address they \
                 carry, so write that (e.g. 10.0.0.1 or 10.0.0.0/8)",
            ),
        }
    }
}

impl std::error::Error for CidrError {}

// === impl TrustedProxies ===

impl TrustedProxies {
    pub fn new(ranges: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies { ranges }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|range| range.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_and_single_addresses_are_read_in_both_families() {
        let cases = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("192.168.1.7", "192.168.1.7/32"),
            ("192.168.1.7/32", "192.168.1.7/32"),
            ("::1/128", "::1/128"),
            ("::1", "::1/128"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("fd00::/8", "fd00::/8"),
        ];
        for (text, shown) in cases {
            assert_eq!(Cidr::parse(text).unwrap().to_string(), shown, "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let cases = [
            ("", CidrError::NotAnAddress),
            ("10.0.0", CidrError::NotAnAddress),
            ("localhost", CidrError::NotAnAddress),
            ("[::1]", CidrError::NotAnAddress),
            ("10.0.0.0/", CidrError::BadPrefix { max: 32 }),
            ("10.0.0.0/33", CidrError::BadPrefix { max: 32 }),
            ("10.0.0.0/+8", CidrError::BadPrefix { max: 32 }),
            ("10.0.0.0/8/8", CidrError::BadPrefix { max: 32 }),
            ("::/129", CidrError::BadPrefix { max: 128 }),
            ("10.0.0.0/ 8", CidrError::BadPrefix { max: 32 }),
            ("0.0.0.0/0", CidrError::Everything),
            ("::/0", CidrError::Everything),
            ("::ffff:10.0.0.1", CidrError::Ipv4Mapped),
        ];
        for (text, want) in cases {
            assert_eq!(Cidr::parse(text), Err(want), "{text:?}");
        }
        match Cidr::parse("10.0.0.1/8") {
            Err(CidrError::HostBitsSet { network }) => {
                assert_eq!(network.to_string(), "10.0.0.0/8")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn membership_follows_the_prefix_bit_by_bit() {
        let net = Cidr::parse("10.1.128.0/17").unwrap();
        assert!(net.contains(ip("10.1.128.0")));
        assert!(net.contains(ip("10.1.255.255")));
        assert!(!net.contains(ip("10.1.127.255")));
        assert!(!net.contains(ip("10.2.128.0")));
        let v6 = Cidr::parse("2001:db8:ab00::/40").unwrap();
        assert!(v6.contains(ip("2001:db8:abff::1")));
        assert!(!v6.contains(ip("2001:db8:ac00::1")));
        let single = Cidr::parse("192.168.1.7").unwrap();
        assert!(single.contains(ip("192.168.1.7")));
        assert!(!single.contains(ip("192.168.1.8")));
    }

    #[test]
    fn families_never_match_each_other_except_mapped_ipv4() {
        let v4 = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(v4.contains(ip("::ffff:10.0.0.1")));
        assert!(!v4.contains(ip("::a00:1")), "IPv4-compatible is not mapped");
        let v6 = Cidr::parse("::/1").unwrap();
        assert!(!v6.contains(ip("10.0.0.1")));
    }

    #[test]
    fn an_empty_list_trusts_nobody() {
        let none = TrustedProxies::default();
        assert!(none.is_empty());
        assert!(!none.contains(ip("127.0.0.1")));
        let some = TrustedProxies::new(vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("::1").unwrap(),
        ]);
        assert!(some.contains(ip("10.9.9.9")));
        assert!(some.contains(ip("::1")));
        assert!(!some.contains(ip("127.0.0.1")));
    }
}
