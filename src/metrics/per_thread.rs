//! The series every request records, kept once per thread slot and summed when rendered. Two
//! workers adding to the same atomics would pass their cache lines back and forth between the
//! cores on every request; `perf annotate` put most of `record_request`'s time on its first
//! `lock add`. Each thread adds to its own slot instead, as nginx's workers count apart.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::labels::{Decision, UpstreamClass};
use super::primitives::{Counter, Histogram};

/// More slots than workers are usual; threads beyond them share slots, which costs speed only.
const SLOTS: usize = 8;

/// One slot's series. Aligned to two cache lines, as CPUs fetch lines in pairs: no slot shares a
/// line, or its neighbour, with another.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct RequestSeries {
    pub requests: [Counter; Decision::ALL.len()],
    pub upstream_responses: [Counter; UpstreamClass::ALL.len()],
    /// From the request head arriving to the response head leaving the gateway.
    pub request_duration: Histogram,
    /// The same, minus the wait for the upstream's response head: casegate's own cost.
    pub gateway_duration: Histogram,
}

#[derive(Debug, Default)]
pub(super) struct PerThread {
    slots: [RequestSeries; SLOTS],
}

impl PerThread {
    /// The slot of the calling thread.
    pub fn mine(&self) -> &RequestSeries {
        &self.slots[thread_slot()]
    }

    pub fn requests(&self, decision: Decision) -> u64 {
        self.sum(|slot| slot.requests[decision as usize].get())
    }

    pub fn upstream_responses(&self, class: UpstreamClass) -> u64 {
        self.sum(|slot| slot.upstream_responses[class as usize].get())
    }

    pub fn request_duration(&self) -> Histogram {
        Histogram::merged(self.slots.iter().map(|slot| &slot.request_duration))
    }

    pub fn gateway_duration(&self) -> Histogram {
        Histogram::merged(self.slots.iter().map(|slot| &slot.gateway_duration))
    }

    fn sum(&self, count: impl Fn(&RequestSeries) -> u64) -> u64 {
        self.slots.iter().map(count).sum()
    }
}

/// Threads take slots in the order they first record: the workers, started together, get
/// slots of their own.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
    }
    SLOT.with(|slot| *slot)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counts_from_every_thread_add_up() {
        let series = PerThread::default();
        std::thread::scope(|scope| {
            for _ in 0..SLOTS + 3 {
                scope.spawn(|| {
                    let mine = series.mine();
                    mine.requests[Decision::Allowed as usize].inc();
                    mine.upstream_responses[UpstreamClass::Error as usize].inc();
                    mine.request_duration.observe(Duration::from_millis(2));
                });
            }
        });
        let threads = u64::try_from(SLOTS + 3).unwrap();
        assert_eq!(series.requests(Decision::Allowed), threads);
        assert_eq!(series.upstream_responses(UpstreamClass::Error), threads);
        assert_eq!(series.request_duration().count(), threads);
        assert_eq!(series.gateway_duration().count(), 0);
    }

    #[test]
    fn slots_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<RequestSeries>(), 128);
        assert_eq!(std::mem::size_of::<RequestSeries>() % 128, 0);
    }
}
