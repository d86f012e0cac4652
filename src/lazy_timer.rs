//! A timer kept from one wait to the next and moved only when it must ring sooner, the way
//! nginx's timers are lazy.
//!
//! A connection waits with a deadline again and again (for the next request, for the upstream's
//! answer), and each new deadline is nearly always later than the last. Setting a tokio timer for
//! each wait puts it into the runtime's wheel and takes it out again, each under the driver's
//! lock; keeping one timer and checking the real deadline only when it rings costs one early
//! wake-up per timer period instead.

use std::pin::Pin;

use tokio::time::{Instant, Sleep};

/// Waits until `deadline` on `timer`, which is moved only when it must ring sooner. A later
/// deadline is checked when the timer rings, and the timer set again then. Cancel safe: the timer
/// is only ever moved, never lost, and may ring early for a wait that follows.
pub async fn wait_until(mut timer: Pin<&mut Sleep>, deadline: Instant) {
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    loop {
        timer.as_mut().await;
        if Instant::now() >= deadline {
            return;
        }
        timer.as_mut().reset(deadline);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_later_deadline_is_kept_and_an_earlier_one_moves_the_timer() {
        let start = Instant::now();
        let mut timer = Box::pin(tokio::time::sleep_until(start + Duration::from_millis(20)));
        // Later than the timer: it rings at 20 ms, finds the deadline not yet come, waits on.
        let later = start + Duration::from_millis(150);
        wait_until(timer.as_mut(), later).await;
        assert!(Instant::now() >= later);
        // Earlier than the timer (set to a minute): the timer is moved to it.
        timer
            .as_mut()
            .reset(Instant::now() + Duration::from_secs(60));
        let earlier = Instant::now() + Duration::from_millis(50);
        tokio::time::timeout(Duration::from_secs(30), wait_until(timer.as_mut(), earlier))
            .await
            .expect("the timer was not moved to the earlier deadline");
        assert!(Instant::now() >= earlier);
    }
}
