//! The open model's shared clock: free users take arrival slots in order.
//!
//! One atomic counter is the whole coordination. A user that is free takes
//! the next slot `k` and sleeps until it is due; one that comes back late
//! (every user was busy when the slot fell due) sends at once, and the
//! journey's latency still counts from the slot's time, so a backlog shows
//! as latency instead of vanishing (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use crate::schedule::Schedule;
use crate::wake::Waker;

pub(crate) struct Pacer {
    schedule: Schedule,
    start: Instant,
    next: AtomicU64,
    waker: Waker,
}

impl Pacer {
    pub fn new(schedule: Schedule, start: Instant) -> Self {
        Pacer {
            schedule,
            start,
            next: AtomicU64::new(0),
            waker: Waker::start(),
        }
    }

    /// Waits for a slot's time, less the waking lead, and never past it
    /// but for the machine's own wake-up (see `wake`).
    pub async fn sleep_until(&self, due: Instant) {
        self.waker.sleep_until(due).await;
    }

    /// The next arrival's index and when it is due; `None` once every
    /// arrival has been taken.
    pub fn take(&self) -> Option<(u64, Instant)> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let at = self.schedule.time_of(k)?;
        Some((k, self.start + at))
    }

    /// When the schedule ends: a slot not started by then is dropped.
    pub fn end(&self) -> Instant {
        self.start + self.schedule.duration()
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
}
