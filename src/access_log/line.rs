//! What one access-log line says: borrowed from a record as its request ends, or from the copy of
//! it a worker's shelf holds until the writer formats it.

use std::net::IpAddr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Line<'a> {
    pub client: IpAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub decision: &'static str,
    pub reason: Option<&'static str>,
    /// Share id, case and scope, when a credential named them.
    pub share: Option<[&'a str; 3]>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub total: Duration,
    pub upstream: Option<Duration>,
}
