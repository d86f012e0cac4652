//! What one access-log line says: borrowed from a record as its request ends, or from the copy of
//! it a worker's shelf holds until the writer formats it.

use std::net::IpAddr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Line<'a> {
    pub facts: Facts,
    pub method: &'a str,
    pub path: &'a str,
    /// Share id, case and scope, when a credential named them.
    pub share: Option<[&'a str; 3]>,
}

/// Everything a line says but its strings: what a shelf keeps of a record as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Facts {
    pub client: IpAddr,
    pub status: u16,
    pub decision: &'static str,
    pub reason: Option<&'static str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub total: Duration,
    pub upstream: Option<Duration>,
}
