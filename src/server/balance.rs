//! Spreading connections evenly over the workers.
//!
//! Each worker accepts on its own `SO_REUSEPORT` socket, and the kernel picks the socket by a
//! hash of the connection's addresses, blind to how many connections each worker already serves.
//! Sixty-four keep-alive connections opened at once came to 26 and 39 on two workers (strace of
//! `accept4`, ten tries, 28 and 37 the most common); nginx's workers, which take turns on one
//! socket, got 31 to 34 each. The guests of the busier worker wait longer for their turn, and the
//! latency tail is theirs. So a worker that serves two or more connections more than another
//! hands the one it has just accepted to the worker with the fewest, which then serves it as its
//! own (its reactor, its upstream pool). That is one message between two threads per connection
//! handed, never per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::slots::ConnectionSlot;
use crate::metrics::WorkerConnections;

/// A connection one worker accepted and admitted (its slots are taken), for another to serve.
#[derive(Debug)]
pub struct Handed {
    /// Out of the accepting worker's reactor: the serving worker registers it with its own.
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    pub slot: ConnectionSlot,
}

/// Where a worker receives the connections handed to it.
pub type Inbox = mpsc::UnboundedReceiver<Handed>;

/// The connections each worker serves, and the way to hand one over.
#[derive(Debug)]
pub struct Balance {
    loads: Box<[Load]>,
    inboxes: Box<[mpsc::UnboundedSender<Handed>]>,
}

/// One worker's count of open connections, on a cache line of its own: it changes with every
/// connection that opens or closes on that worker, and the others only read it as they accept.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Load {
    open: AtomicUsize,
}

/// A connection counted as open on a worker until this is dropped.
#[derive(Debug)]
pub struct Counted {
    balance: Arc<Balance>,
    worker: usize,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.balance.loads[self.worker]
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A worker's connections, once two more than another's, go to the one with the fewest. One
/// more is let be: handing over would only swap which of the two has it.
const HAND_OVER_AT: usize = 2;

impl Balance {
    /// A balance of `workers` workers, and each worker's inbox, in order.
    pub fn new(workers: usize) -> (Arc<Balance>, Vec<Inbox>) {
        let (inboxes, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let balance = Balance {
            loads: (0..workers).map(|_| Load::default()).collect(),
            inboxes: inboxes.into_boxed_slice(),
        };
        (Arc::new(balance), receivers)
    }

    /// Which worker should serve a connection that `worker` has just accepted: itself, unless
    /// another serves at least [`HAND_OVER_AT`] fewer; then the one with the fewest. The counts
    /// are read without a lock: two workers accepting at the same moment may both choose the
    /// same lightest one, and the next connections even that out.
    pub fn serving_worker(&self, worker: usize) -> usize {
        let open = |load: &Load| load.open.load(Ordering::Relaxed);
        let mine = self.loads.get(worker).map_or(0, open);
        let lightest = self
            .loads
            .iter()
            .enumerate()
            .min_by_key(|(_, load)| open(load));
        match lightest {
            Some((other, load)) if open(load) + HAND_OVER_AT <= mine => other,
            _ => worker,
        }
    }

    /// Counts a connection as open on `worker` for as long as the guard lives.
    pub fn count(self: &Arc<Self>, worker: usize) -> Counted {
        self.loads[worker].open.fetch_add(1, Ordering::Relaxed);
        Counted {
            balance: Arc::clone(self),
            worker,
        }
    }

    /// Hands a connection to `worker`; given back if that worker no longer takes any (it has
    /// stopped).
    pub fn hand_to(&self, worker: usize, handed: Handed) -> Result<(), Handed> {
        self.inboxes[worker]
            .send(handed)
            .map_err(|refused| refused.0)
    }

    #[cfg(test)]
    fn open(&self, worker: usize) -> usize {
        self.loads[worker].open.load(Ordering::Relaxed)
    }
}

impl WorkerConnections for Balance {
    fn open_per_worker(&self) -> Vec<usize> {
        self.loads
            .iter()
            .map(|load| load.open.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_keeps_its_connections_until_it_has_two_more_than_another() {
        let (balance, _inboxes) = Balance::new(3);
        assert_eq!(balance.serving_worker(0), 0);
        let _first = balance.count(0);
        assert_eq!(balance.serving_worker(0), 0, "one more is let be");
        let second = balance.count(0);
        assert_eq!(balance.serving_worker(0), 1, "the first of the lightest");
        let _third = balance.count(1);
        assert_eq!(balance.serving_worker(0), 2);
        assert_eq!(balance.serving_worker(2), 2);
        drop(second);
        assert_eq!(balance.open(0), 1);
        assert_eq!(balance.serving_worker(0), 0);
    }

    #[test]
    fn a_burst_of_connections_accepted_by_one_worker_ends_up_spread_evenly() {
        let (balance, _inboxes) = Balance::new(2);
        let mut open = Vec::new();
        for _ in 0..64 {
            let worker = balance.serving_worker(0);
            open.push(balance.count(worker));
        }
        assert_eq!((balance.open(0), balance.open(1)), (33, 31));
        drop(open);
        assert_eq!((balance.open(0), balance.open(1)), (0, 0));
    }

    #[test]
    fn a_stopped_worker_gives_the_connection_back() {
        let (balance, mut inboxes) = Balance::new(2);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = listener.local_addr().unwrap();
        let handed = |stream| Handed {
            stream,
            peer,
            slot: ConnectionSlot::for_test(),
        };
        let stream = std::net::TcpStream::connect(peer).unwrap();
        balance.hand_to(1, handed(stream)).unwrap();
        assert!(inboxes[1].try_recv().is_ok());
        drop(inboxes.pop());
        let stream = std::net::TcpStream::connect(peer).unwrap();
        assert!(balance.hand_to(1, handed(stream)).is_err());
    }
}
