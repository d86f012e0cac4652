//! The three kinds of metric the registry knows, each a handful of atomics: recording one is a
//! relaxed add, with no lock and no allocation, so the request path can afford it everywhere.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Which threads add to a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writers {
    /// Only one thread (its per-thread slot's owner, `per_thread.rs`): it adds with a plain load
    /// and store. An atomic add is a locked instruction, a full barrier of about 20 cycles, and a
    /// guest request records eight of them. Readers on other threads still read whole values.
    Owner,
    /// Any thread: atomic adds.
    Shared,
}

fn add(value: &AtomicU64, amount: u64, writers: Writers) {
    match writers {
        Writers::Owner => value.store(
            value.load(Ordering::Relaxed).wrapping_add(amount),
            Ordering::Relaxed,
        ),
        Writers::Shared => {
            value.fetch_add(amount, Ordering::Relaxed);
        }
    }
}

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.inc_as(Writers::Shared);
    }

    /// Adds one; [`Writers::Owner`] only from the one thread that adds to this counter.
    pub fn inc_as(&self, writers: Writers) {
        add(&self.0, 1, writers);
    }

    /// Adds `by` (bytes, not events), from any thread.
    pub fn add(&self, by: u64) {
        add(&self.0, by, Writers::Shared);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level that goes up and down (open connections).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds, in seconds, of every latency histogram: from half a millisecond (the gateway's
/// own work on a refusal) to ten seconds (a slow upstream).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram over [`LATENCY_BUCKETS`]. Each observation lands in exactly one bucket
/// (the cumulative counts Prometheus wants are summed when rendering), and the sum is kept in
/// whole microseconds so it fits an integer atomic.
#[derive(Debug, Default)]
pub struct Histogram {
    /// `buckets[i]` counts observations in (LATENCY_BUCKETS[i-1], LATENCY_BUCKETS[i]]; the
    /// last slot counts those above every bound (+Inf).
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        self.observe_as(elapsed, Writers::Shared);
    }

    /// Records one observation; [`Writers::Owner`] only from the one thread that records here.
    pub fn observe_as(&self, elapsed: Duration, writers: Writers) {
        let secs = elapsed.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        add(&self.buckets[slot], 1, writers);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        add(&self.sum_micros, micros, writers);
        add(&self.count, 1, writers);
    }

    /// One histogram holding the observations of all of `parts`, for rendering.
    pub fn merged<'a>(parts: impl Iterator<Item = &'a Histogram>) -> Histogram {
        let merged = Histogram::default();
        for part in parts {
            for (total, bucket) in merged.buckets.iter().zip(&part.buckets) {
                total.fetch_add(bucket.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            let sum = part.sum_micros.load(Ordering::Relaxed);
            merged.sum_micros.fetch_add(sum, Ordering::Relaxed);
            let count = part.count.load(Ordering::Relaxed);
            merged.count.fetch_add(count, Ordering::Relaxed);
        }
        merged
    }

    /// Cumulative counts, one per bound and a last one for +Inf, as the exposition format wants.
    pub fn cumulative(&self) -> [u64; LATENCY_BUCKETS.len() + 1] {
        let mut total = 0;
        let mut out = [0; LATENCY_BUCKETS.len() + 1];
        for (slot, bucket) in out.iter_mut().zip(&self.buckets) {
            total += bucket.load(Ordering::Relaxed);
            *slot = total;
        }
        out
    }

    pub fn sum_secs(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1_000_000.0
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_counts_in_its_bucket_and_every_later_one() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(60));
        let cumulative = histogram.cumulative();
        assert_eq!(cumulative[0], 1, "0.3 ms is under the 0.5 ms bound");
        assert_eq!(cumulative[5], 1, "30 ms is over the 25 ms bound");
        assert_eq!(cumulative[6], 2, "30 ms is under the 50 ms bound");
        assert_eq!(
            cumulative[LATENCY_BUCKETS.len() - 1],
            2,
            "60 s is over 10 s"
        );
        assert_eq!(
            cumulative[LATENCY_BUCKETS.len()],
            3,
            "+Inf counts everything"
        );
        assert_eq!(histogram.count(), 3);
        assert!((histogram.sum_secs() - 60.0303).abs() < 1e-9);
    }

    #[test]
    fn an_observation_on_a_bound_counts_in_that_bound() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(1));
        assert_eq!(histogram.cumulative()[0], 0);
        assert_eq!(histogram.cumulative()[1], 1);
    }

    #[test]
    fn a_gauge_goes_down_again() {
        let gauge = Gauge::default();
        gauge.inc();
        gauge.inc();
        gauge.dec();
        assert_eq!(gauge.get(), 1);
    }
}
