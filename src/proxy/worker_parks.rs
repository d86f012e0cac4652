//! Whether a worker has waited for events since a given moment, which is what makes tokio's
//! record of a socket's readiness at least as fresh as that moment.
//!
//! Each worker runs a current-thread runtime, which parks only when it has no task to run: it
//! counts the park (`RuntimeMetrics::worker_park_count`), then waits in its driver, which records
//! every event that reached its sockets (bytes, a close, a reset) as their readiness before any
//! task runs again. So when the count, read on the worker's own thread, has moved since a moment,
//! tokio has seen every event that came before that wait ended. The upstream pool uses this to
//! skip asking the kernel about an idle connection (`MSG_PEEK`, a system call) when the worker
//! has waited since the connection was put back (`pool.rs`).
//!
//! Only a current-thread runtime's count says this: a multi-thread runtime counts each of its
//! threads apart, and a count of another thread's parks says nothing about this one's sockets.
//! There, and outside a runtime, there is no count, and the pool asks the kernel every time.

use tokio::runtime::{Handle, RuntimeFlavor, RuntimeMetrics};

/// The park count of the worker that first used it. Each worker's pool has its own and uses it
/// on the worker's thread, so the first use binds the right runtime; asked on another thread, it
/// gives no count.
#[derive(Default)]
pub enum WorkerParks {
    /// Not used yet.
    #[default]
    Unbound,
    /// The current-thread runtime of the thread marked `thread` ([`this_thread`]).
    Counted {
        metrics: RuntimeMetrics,
        thread: usize,
    },
    /// Not in a current-thread runtime: no count.
    Uncounted,
}

thread_local! {
    static THREAD_MARK: u8 = const { 0 };
}

/// This thread, told apart from the others running by the address of a thread-local: no atomic
/// operation, where `std::thread::current()` takes a reference count.
fn this_thread() -> usize {
    THREAD_MARK.with(|mark| std::ptr::from_ref(mark) as usize)
}

impl WorkerParks {
    /// How many times the worker has parked so far; `None` where that says nothing (above).
    pub fn count(&mut self) -> Option<u64> {
        if let WorkerParks::Unbound = self {
            *self = match Handle::try_current() {
                Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::CurrentThread => {
                    WorkerParks::Counted {
                        metrics: handle.metrics(),
                        thread: this_thread(),
                    }
                }
                _ => WorkerParks::Uncounted,
            };
        }
        match self {
            // A current-thread runtime has one worker, number 0.
            WorkerParks::Counted { metrics, thread } if *thread == this_thread() => {
                Some(metrics.worker_park_count(0))
            }
            _ => None,
        }
    }
}

/// Whether the worker parked between `then` and `now` (both from [`WorkerParks::count`]); no
/// when either is unknown.
pub fn waited_between(then: Option<u64>, now: Option<u64>) -> bool {
    matches!((then, now), (Some(then), Some(now)) if now != then)
}

/// Lets the runtime run out of work, so that it parks and its driver records every event: a
/// wait for events, for tests.
#[cfg(test)]
pub(crate) async fn wait_for_events() {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn the_count_moves_when_the_worker_waits_for_events_and_not_otherwise() {
        let mut parks = WorkerParks::default();
        let before = parks.count();
        assert!(before.is_some(), "a current-thread runtime has a count");
        // Work without an await never parks.
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(parks.count(), before);
        assert!(!waited_between(before, parks.count()));
        // A sleep leaves the runtime nothing to run: it parks until the timer fires.
        wait_for_events().await;
        assert!(waited_between(before, parks.count()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_thread_runtime_gives_no_count() {
        let mut parks = WorkerParks::default();
        assert_eq!(parks.count(), None);
        wait_for_events().await;
        assert!(!waited_between(parks.count(), parks.count()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn asked_on_another_thread_it_gives_no_count() {
        let mut parks = WorkerParks::default();
        assert!(parks.count().is_some());
        let elsewhere = std::thread::spawn(move || parks.count()).join().unwrap();
        assert_eq!(elsewhere, None);
    }

    #[test]
    fn outside_a_runtime_there_is_no_count() {
        assert_eq!(WorkerParks::default().count(), None);
        assert!(!waited_between(None, Some(3)));
        assert!(!waited_between(Some(3), None));
    }
}
