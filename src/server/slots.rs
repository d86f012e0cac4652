//! Connection slots: one of `max_connections` for every open connection, and one of
//! `max_connections_per_address` for the peer it came from, so that a single address cannot take
//! every slot of the listener. A slot is held for the connection's whole life, including a
//! WebSocket tunnel that outlives hyper's connection; so is the connection's count on the worker
//! serving it ([`super::balance`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use super::balance::Counted;

/// What an open connection holds; released when the last holder drops it.
#[derive(Debug)]
pub struct ConnectionSlot {
    _listener: OwnedSemaphorePermit,
    /// `None` for a trusted proxy, which carries many clients and is not capped per address.
    _address: Option<AddressSlot>,
    /// The connection counted on the worker serving it, once that one is chosen.
    worker: Option<Counted>,
}

impl ConnectionSlot {
    pub fn new(listener: OwnedSemaphorePermit, address: Option<AddressSlot>) -> ConnectionSlot {
        ConnectionSlot {
            _listener: listener,
            _address: address,
            worker: None,
        }
    }

    /// Counts the connection on the worker that serves it, for as long as it is open.
    pub fn counted_on(mut self, worker: Counted) -> ConnectionSlot {
        self.worker = Some(worker);
        self
    }

    #[cfg(test)]
    pub fn for_test() -> ConnectionSlot {
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .expect("a fresh semaphore has a permit");
        ConnectionSlot::new(permit, None)
    }
}

/// Open connections per peer address. An IPv6 peer is counted by its /64: one subscriber
/// usually holds a whole /64, and counting each of its 2^64 addresses apart would be no cap.
#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// When a refusal was last logged, and how many were not logged since: a flood of
    /// connections must not become a flood of log lines.
    refusals: Mutex<(Option<Instant>, u64)>,
}

/// At most one warning about refused connections per this long.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

impl PerAddress {
    pub fn new(limit: usize) -> PerAddress {
        PerAddress {
            limit,
            open: Arc::new(Mutex::new(HashMap::new())),
            refusals: Mutex::new((None, 0)),
        }
    }

    /// Counts a refusal; `Some(n)` when it is time to log it, with `n` refusals not logged since
    /// the last warning.
    pub fn refused(&self) -> Option<u64> {
        let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, unlogged) = &mut *refusals;
        let now = Instant::now();
        if last.is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_INTERVAL) {
            *unlogged += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(unlogged))
    }

    /// A slot for one more connection from `peer`, or `None` when it already holds `limit`.
    pub fn admit(&self, peer: IpAddr) -> Option<AddressSlot> {
        let key = address_key(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            key,
            open: Arc::clone(&self.open),
        })
    }

    /// Addresses holding at least one connection (the map never keeps an empty entry).
    pub fn addresses(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One connection's share of its address's count.
#[derive(Debug)]
pub struct AddressSlot {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The key a peer is counted under: an IPv4 address (also when mapped into IPv6), or an IPv6 /64.
fn address_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_up_to_its_limit_and_a_slot_back_when_one_closes() {
        let per_address = PerAddress::new(2);
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let first = per_address.admit(peer).expect("first");
        let _second = per_address.admit(peer).expect("second");
        assert!(per_address.admit(peer).is_none(), "third is over the limit");
        assert!(
            per_address.admit("192.0.2.8".parse().unwrap()).is_some(),
            "another address has its own count"
        );
        drop(first);
        assert!(
            per_address.admit(peer).is_some(),
            "a closed one frees a slot"
        );
    }

    #[test]
    fn an_empty_count_is_forgotten_so_the_map_does_not_grow_with_every_address_seen() {
        let per_address = PerAddress::new(1);
        for last in 0..=255u8 {
            drop(per_address.admit(IpAddr::from([198, 51, 100, last])));
        }
        assert_eq!(per_address.addresses(), 0);
    }

    #[test]
    fn ipv6_peers_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let per_address = PerAddress::new(1);
        let _held = per_address.admit("2001:db8:1:2::1".parse().unwrap());
        assert!(
            per_address
                .admit("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_none(),
            "same /64"
        );
        assert!(
            per_address
                .admit("2001:db8:1:3::1".parse().unwrap())
                .is_some(),
            "another /64"
        );
        let _v4 = per_address.admit("203.0.113.5".parse().unwrap());
        assert!(
            per_address
                .admit("::ffff:203.0.113.5".parse().unwrap())
                .is_none(),
            "the mapped form is the same address"
        );
    }
}
