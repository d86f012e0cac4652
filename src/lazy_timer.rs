//! A timer kept from one wait to the next and moved only when it must ring sooner, the way
//! nginx's timers are lazy.
//!
//! A connection waits with a deadline again and again (for the next request, for the upstream's
//! answer), and each new deadline is nearly always later than the last. Setting a tokio timer for
//! each wait puts it into the runtime's wheel and takes it out again, each under the driver's
//! lock; keeping one timer and checking the real deadline only when it rings costs one early
//! wake-up per timer period instead.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

/// A tokio timer kept from one wait to the next, which also remembers which task's waker it
/// holds.
///
/// Polling a tokio `Sleep` hands it the task's waker each time: two compare-exchanges and a clone
/// and a drop of the waker, four locked instructions, some 20 ns on these VMs, whether or not it
/// held the same waker already. A connection's timer is polled at every wait by the same task, so
/// while it has not rung, and was not moved since, polling it again would change nothing: it is
/// skipped then.
#[derive(Debug)]
pub struct LazyTimer(Box<Kept>);

/// Boxed whole, so that a timer is one pointer in the futures that hold it: with the waker's
/// addresses beside the box, the upstream exchange's future grew past the size at which it was
/// built in place, and was copied (some 4 KiB, twice a request: callgrind).
#[derive(Debug)]
struct Kept {
    sleep: Pin<Box<Sleep>>,
    /// The waker the sleep was last handed, as `(data, vtable)` addresses, while the sleep still
    /// holds it: `None` after a reset or before the first poll. The sleep keeps its clone of the
    /// waker alive until it rings or is handed another, so the addresses cannot be reused by
    /// another task's waker while they are recorded here.
    holding: Option<(usize, usize)>,
}

impl LazyTimer {
    /// A timer that rings at `deadline` (until moved).
    pub fn new(deadline: Instant) -> LazyTimer {
        LazyTimer(Box::new(Kept {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            holding: None,
        }))
    }

    /// Waits until `deadline`. The timer is moved only when it must ring sooner; a later deadline
    /// is checked when the timer rings, and the timer set again then. Cancel safe: the timer is
    /// only ever moved, never lost, and may ring early for a wait that follows.
    pub async fn wait_until(&mut self, deadline: Instant) {
        let kept = &mut *self.0;
        if kept.sleep.deadline() > deadline {
            kept.reset(deadline);
        }
        poll_fn(|cx| kept.poll_until(cx, deadline)).await;
    }
}

impl Kept {
    fn poll_until(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        loop {
            if self.holding == Some(waker_identity(cx.waker())) && !self.sleep.is_elapsed() {
                return Poll::Pending;
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Pending => {
                    self.holding = Some(waker_identity(cx.waker()));
                    return Poll::Pending;
                }
                Poll::Ready(()) => {
                    if Instant::now() >= deadline {
                        self.holding = None;
                        return Poll::Ready(());
                    }
                    self.reset(deadline);
                }
            }
        }
    }

    fn reset(&mut self, deadline: Instant) {
        // A reset may ring the timer at once (a deadline already past) and hand the waker back:
        // the next poll is a real one.
        self.holding = None;
        self.sleep.as_mut().reset(deadline);
    }
}

/// What `Waker::will_wake` compares, without a clone of the waker (which would take and drop a
/// count on its task).
fn waker_identity(waker: &Waker) -> (usize, usize) {
    (
        waker.data() as usize,
        std::ptr::from_ref(waker.vtable()) as usize,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_later_deadline_is_kept_and_an_earlier_one_moves_the_timer() {
        let start = Instant::now();
        let mut timer = LazyTimer::new(start + Duration::from_millis(20));
        // Later than the timer: it rings at 20 ms, finds the deadline not yet come, waits on.
        let later = start + Duration::from_millis(150);
        tokio::time::timeout(Duration::from_secs(30), timer.wait_until(later))
            .await
            .expect("the timer did not wake the wait when it rang");
        assert!(Instant::now() >= later);
        // Earlier than the timer (set to a minute): the timer is moved to it.
        timer.0.reset(Instant::now() + Duration::from_secs(60));
        let earlier = Instant::now() + Duration::from_millis(50);
        tokio::time::timeout(Duration::from_secs(30), timer.wait_until(earlier))
            .await
            .expect("the timer was not moved to the earlier deadline");
        assert!(Instant::now() >= earlier);
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls a fresh wait on `timer` once with `waker`.
    fn poll_once(timer: &mut LazyTimer, deadline: Instant, waker: &Waker) -> Poll<()> {
        let mut context = Context::from_waker(waker);
        let wait = std::pin::pin!(timer.wait_until(deadline));
        wait.poll(&mut context)
    }

    /// The skipped polls must not cost a wake-up: the task the timer holds is woken when it rings,
    /// and a wait polled by another task (an upstream connection's timer goes from one client's
    /// task to another's) hands the timer that task's waker, which is then the one woken.
    #[tokio::test]
    async fn the_task_that_polled_last_is_woken_when_the_timer_rings() {
        let deadline = Instant::now() + Duration::from_millis(40);
        let mut timer = LazyTimer::new(deadline);
        let (first, second) = (Arc::new(Counted::default()), Arc::new(Counted::default()));
        let first_waker = Waker::from(Arc::clone(&first));
        for _ in 0..3 {
            assert!(poll_once(&mut timer, deadline, &first_waker).is_pending());
        }
        assert!(timer.0.holding.is_some(), "the timer took the first waker");
        let second_waker = Waker::from(Arc::clone(&second));
        assert!(poll_once(&mut timer, deadline, &second_waker).is_pending());
        assert_eq!(timer.0.holding, Some(waker_identity(&second_waker)));
        tokio::time::sleep_until(deadline + Duration::from_millis(30)).await;
        assert_eq!(
            (
                first.0.load(Ordering::SeqCst),
                second.0.load(Ordering::SeqCst)
            ),
            (0, 1),
            "the second task, which polled last, is the one woken"
        );
        assert!(poll_once(&mut timer, deadline, &second_waker).is_ready());
    }

    /// After it rang (and handed its waker back), the timer is polled again for real: a wait for a
    /// later deadline by the same task is woken when that comes.
    #[tokio::test]
    async fn a_timer_that_rang_is_polled_again_by_the_same_task() {
        let start = Instant::now();
        let mut timer = LazyTimer::new(start + Duration::from_millis(10));
        let counted = Arc::new(Counted::default());
        let waker = Waker::from(Arc::clone(&counted));
        let later = start + Duration::from_millis(60);
        assert!(poll_once(&mut timer, later, &waker).is_pending());
        tokio::time::sleep_until(start + Duration::from_millis(30)).await;
        assert_eq!(counted.0.load(Ordering::SeqCst), 1, "rang at 10 ms");
        // Rang early for a later deadline: the poll sets it again, and hands it the waker.
        assert!(poll_once(&mut timer, later, &waker).is_pending());
        tokio::time::sleep_until(later + Duration::from_millis(30)).await;
        assert_eq!(
            counted.0.load(Ordering::SeqCst),
            2,
            "rang again at the deadline"
        );
        assert!(poll_once(&mut timer, later, &waker).is_ready());
    }
}
