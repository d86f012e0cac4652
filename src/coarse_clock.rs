//! A monotonic clock for times that need no better than a few milliseconds: when a keep-alive
//! connection started waiting, when an upstream connection went back to the pool, when a
//! connection last moved a byte. Each is read on every request and only ever compared with
//! timeouts of a second or more.
//!
//! Read from `CLOCK_MONOTONIC_COARSE`, the kernel's monotonic time as of its last tick: a load
//! from the vDSO page, some 12 ns here, where the precise clock (`Instant::now`) reads the TSC,
//! some 44 ns on this kind of VM. A reading is within one tick (1-4 ms, the kernel's `HZ`) of
//! the precise clock's, either way; the times a request is logged with still come from the
//! precise one.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock;

/// The precise clock and the coarse one read together once; a coarse reading is turned into an
/// `Instant` by the distance it has moved since.
struct Anchor {
    precise: Instant,
    coarse: Duration,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// Now, to within one tick of the kernel's clock. Falls back on the precise clock on a kernel
/// without the coarse one.
pub fn now() -> Instant {
    let anchor = ANCHOR.get_or_init(|| Anchor {
        precise: Instant::now(),
        coarse: coarse_monotonic().unwrap_or_default(),
    });
    match coarse_monotonic() {
        Some(coarse) => anchor.precise + coarse.saturating_sub(anchor.coarse),
        None => Instant::now(),
    }
}

fn coarse_monotonic() -> Option<Duration> {
    clock::ask_coarse_clock(libc::clock_gettime, libc::CLOCK_MONOTONIC_COARSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's tick is at most 10 ms (HZ = 100); the anchor adds at most one more.
    const TWO_TICKS: Duration = Duration::from_millis(20);

    #[test]
    fn reads_within_a_tick_or_two_of_the_precise_clock_and_never_runs_backwards() {
        let mut last = now();
        for _ in 0..50 {
            let precise = Instant::now();
            let coarse = now();
            let apart = if coarse > precise {
                coarse - precise
            } else {
                precise - coarse
            };
            assert!(
                apart <= TWO_TICKS,
                "coarse clock {apart:?} away from the precise one"
            );
            assert!(coarse >= last, "the coarse clock went backwards");
            last = coarse;
            std::thread::sleep(Duration::from_millis(3));
        }
    }

    #[test]
    fn moves_on_with_the_precise_clock() {
        let start = now();
        std::thread::sleep(Duration::from_millis(100));
        let moved = now() - start;
        assert!(
            moved >= Duration::from_millis(100) - TWO_TICKS && moved <= Duration::from_secs(5),
            "100 ms of sleep moved the coarse clock {moved:?}"
        );
    }
}
