//! What a user's requests race: the run's cancellation and the request
//! timeout, each made once per user and re-armed for every request.
//!
//! A `tokio::time::timeout` per request puts an entry into the runtime's
//! timer wheel, under the wheel's one lock, when it is first polled, and
//! takes it out again, under the lock, when it is dropped; a `cancelled()`
//! per request adds and removes a waiter under the token's lock. At the
//! rates the `max_rate` bench reaches, that was about a tenth of the
//! generator's own CPU. A sleep kept by the user and moved later for each
//! request costs one atomic compare-and-swap instead: tokio leaves the
//! entry where it is and files it again when its old time comes (once per
//! timeout period, not twice per request), and the cancellation's waiter
//! stays registered for the user's whole life.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How raced work ended.
pub(crate) enum Raced<T> {
    Done(T),
    /// The timeout passed first.
    TimedOut,
    /// The run was cancelled first.
    Cancelled,
}

/// One user's request timer and cancellation.
pub(crate) struct Watch {
    timer: Pin<Box<Sleep>>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Watch {
    /// A watch on `cancel`. Made inside the runtime: the timer needs its
    /// driver.
    pub fn new(cancel: &CancellationToken) -> Self {
        Watch {
            // Not polled before a request resets it.
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            cancelled: Box::pin(cancel.clone().cancelled_owned()),
        }
    }

    /// Runs `work` until it ends, `timeout` from now passes, or the run is
    /// cancelled. When several are ready at once, the work's end counts
    /// first, then the timeout (as `tokio::time::timeout` under a biased
    /// select would have it). A timeout past the clock's range never fires.
    pub async fn race<F: Future>(&mut self, timeout: Duration, work: F) -> Raced<F::Output> {
        let armed = match Instant::now().checked_add(timeout) {
            Some(deadline) => {
                self.timer.as_mut().reset(deadline);
                true
            }
            None => false,
        };
        let mut work = pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = work.as_mut().poll(cx) {
                return Poll::Ready(Raced::Done(v));
            }
            if armed && self.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Raced::TimedOut);
            }
            if self.cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Raced::Cancelled);
            }
            Poll::Pending
        })
        .await
    }

    /// Runs `work` unless the run is cancelled first: `None` then.
    pub async fn unless_cancelled<F: Future>(&mut self, work: F) -> Option<F::Output> {
        match self.race(Duration::MAX, work).await {
            Raced::Done(v) => Some(v),
            Raced::TimedOut | Raced::Cancelled => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_that_ends_in_time_is_done_and_the_timer_is_reused() {
        let cancel = CancellationToken::new();
        let mut watch = Watch::new(&cancel);
        for i in 0..3u32 {
            let work = async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                i
            };
            let r = watch.race(Duration::from_millis(50), work).await;
            assert!(matches!(r, Raced::Done(n) if n == i), "round {i}");
        }
        // The timer of the last round, moved later each time, has not fired
        // on the next one early.
        let t0 = Instant::now();
        let r = watch
            .race(Duration::from_millis(50), std::future::pending::<()>())
            .await;
        assert!(matches!(r, Raced::TimedOut));
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(50),
            "fired early: {waited:?}"
        );
        assert!(
            waited <= Duration::from_millis(52),
            "fired late: {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_after_an_idle_spell_still_fires_on_time() {
        let cancel = CancellationToken::new();
        let mut watch = Watch::new(&cancel);
        let r = watch.race(Duration::from_millis(20), async {}).await;
        assert!(matches!(r, Raced::Done(())));
        // Long past the first deadline: the timer has fired meanwhile.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = Instant::now();
        let r = watch
            .race(Duration::from_millis(30), std::future::pending::<()>())
            .await;
        assert!(matches!(r, Raced::TimedOut));
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(30),
            "fired early: {waited:?}"
        );
        assert!(
            waited <= Duration::from_millis(32),
            "fired late: {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_the_run_ends_work_in_flight_and_every_later_race() {
        let cancel = CancellationToken::new();
        let mut watch = Watch::new(&cancel);
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            c.cancel();
        });
        let r = watch
            .race(Duration::from_secs(10), std::future::pending::<()>())
            .await;
        assert!(matches!(r, Raced::Cancelled));
        let r = watch.unless_cancelled(std::future::pending::<()>()).await;
        assert!(r.is_none());
        // Work that is already done still counts first.
        let r = watch.race(Duration::from_secs(10), async { 7 }).await;
        assert!(matches!(r, Raced::Done(7)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_beyond_the_clock_never_fires() {
        let cancel = CancellationToken::new();
        let mut watch = Watch::new(&cancel);
        let slow = async {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            1
        };
        assert!(matches!(
            watch.race(Duration::MAX, slow).await,
            Raced::Done(1)
        ));
    }
}
