//! The series every request records, kept once per thread slot and summed when rendered. Two
//! workers adding to the same atomics would pass their cache lines back and forth between the
//! cores on every request; `perf annotate` put most of `record_request`'s time on its first
//! `lock add`. Each thread adds to its own slot instead, as nginx's workers count apart, and
//! since no other thread adds there, without locked instructions at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::labels::{Decision, UpstreamClass};
use super::primitives::{Counter, Histogram, Writers};

/// More slots than workers are usual. The first `SLOTS - 1` threads to record own a slot each;
/// every thread after them shares the last one, with atomic adds.
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

/// The calling thread's slot, and how it may add to it.
pub(super) struct Mine<'a> {
    series: &'a RequestSeries,
    writers: Writers,
}

impl Mine<'_> {
    pub fn count_request(&self, decision: Decision) {
        self.series.requests[decision as usize].inc_as(self.writers);
    }

    pub fn count_upstream_response(&self, class: UpstreamClass) {
        self.series.upstream_responses[class as usize].inc_as(self.writers);
    }

    pub fn observe_request(&self, total: Duration) {
        self.series.request_duration.observe_as(total, self.writers);
    }

    pub fn observe_gateway(&self, own: Duration) {
        self.series.gateway_duration.observe_as(own, self.writers);
    }
}

impl PerThread {
    /// The slot of the calling thread.
    pub fn mine(&self) -> Mine<'_> {
        let (slot, writers) = thread_slot();
        Mine {
            series: &self.slots[slot],
            writers,
        }
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
fn thread_slot() -> (usize, Writers) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: (usize, Writers) = match NEXT.fetch_add(1, Ordering::Relaxed) {
            owned if owned < SLOTS - 1 => (owned, Writers::Owner),
            _ => (SLOTS - 1, Writers::Shared),
        };
    }
    SLOT.with(|slot| *slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds per thread, all threads at once: those past the owned slots share the last one.
    /// (Whether a slot is ever given to two owners is checked below, not left to a lost add.)
    const ADDS: u64 = 1_000;

    #[test]
    fn counts_from_every_thread_add_up() {
        let series = PerThread::default();
        let threads = SLOTS + 3;
        let ready = std::sync::Barrier::new(threads);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mine = series.mine();
                    ready.wait();
                    for _ in 0..ADDS {
                        mine.count_request(Decision::Allowed);
                        mine.count_upstream_response(UpstreamClass::Error);
                        mine.observe_request(Duration::from_millis(2));
                    }
                });
            }
        });
        let total = u64::try_from(threads).unwrap() * ADDS;
        assert_eq!(series.requests(Decision::Allowed), total);
        assert_eq!(series.upstream_responses(UpstreamClass::Error), total);
        assert_eq!(series.request_duration().count(), total);
        assert_eq!(series.gateway_duration().count(), 0);
    }

    #[test]
    fn each_thread_owns_a_slot_until_they_run_out() {
        let taken: Vec<(usize, Writers)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..SLOTS + 2).map(|_| scope.spawn(thread_slot)).collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        let mut owned: Vec<usize> = taken
            .iter()
            .filter(|(_, writers)| *writers == Writers::Owner)
            .map(|(slot, _)| *slot)
            .collect();
        owned.sort_unstable();
        owned.dedup();
        let owners = taken.iter().filter(|(_, w)| *w == Writers::Owner).count();
        assert_eq!(
            owned.len(),
            owners,
            "an owned slot was given twice: {taken:?}"
        );
        assert!(owned.iter().all(|slot| *slot < SLOTS - 1), "{taken:?}");
        assert!(
            taken
                .iter()
                .filter(|(_, writers)| *writers == Writers::Shared)
                .all(|(slot, _)| *slot == SLOTS - 1),
            "{taken:?}"
        );
        // This process's other threads may have taken slots first; these ten threads are more
        // than the owned slots, so at least three of them share.
        assert!(taken.len() - owners >= 3, "{taken:?}");
    }

    #[test]
    fn slots_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<RequestSeries>(), 128);
        assert_eq!(std::mem::size_of::<RequestSeries>() % 128, 0);
    }
}
