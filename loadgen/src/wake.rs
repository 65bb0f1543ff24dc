//! Waking users on time: the open model's pacing clock below tokio's
//! millisecond.
//!
//! tokio's timer wheel ticks in whole milliseconds and rounds a deadline
//! *up* to the next tick, so `sleep_until(due)` returns 0–1 ms after `due`
//! (and a little more for the wake-up). Latency counts from `due` (that is
//! what keeps coordinated omission out), so that lateness would be
//! reported as the system's: on an endpoint answering in 1–2 ms, half the
//! figure. Here a user sleeps on tokio's wheel until just before its slot
//! (cheap, coarse), then hands the last stretch to one thread that waits
//! on a futex with a deadline (the kernel's high-resolution timers: tens of
//! microseconds late, not a millisecond) and wakes exactly the users that
//! are due. No spinning: the thread sleeps whenever nothing is due.
//!
//! Even so, a user's request is built some tens of microseconds after the
//! thread wakes (the thread's own wake-up, then the hand-off to a runtime
//! worker). So users are woken [`LEAD`] ahead of their slot, and a request
//! that leaves before its slot has its latency counted from when it left:
//! the lead takes the generator's own hand-off out of the figure without
//! hiding any of the system's time, and a user later than the lead still
//! counts from its slot (no coordinated omission).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long before a slot the coarse tokio sleep ends: more than the
/// wheel's rounding (1 ms) plus a busy runtime's wake-up delay, so the
/// coarse sleep never overshoots the slot.
const COARSE_MARGIN: Duration = Duration::from_millis(3);

/// How far ahead of its slot a user is woken: about the median hand-off
/// from the waking thread's wake-up to the request being sent, measured by
/// the `max_rate` bench's latency part (its "slot->send" step).
pub(crate) const LEAD: Duration = Duration::from_micros(60);

/// One user waiting for its slot.
struct Waiter {
    at: std::time::Instant,
    /// Ties broken by arrival, so the heap's order is total.
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct State {
    due: BinaryHeap<Reverse<Waiter>>,
    seq: u64,
    stop: bool,
}

impl State {
    /// Queues a waiter; true if it is now the earliest, which is when the
    /// thread's deadline moves.
    fn push(&mut self, at: std::time::Instant, wake: oneshot::Sender<()>) -> bool {
        self.seq += 1;
        let seq = self.seq;
        self.due.push(Reverse(Waiter { at, seq, wake }));
        self.due.peek().is_some_and(|w| w.0.seq == seq)
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// The waking thread of one load run; stopped and joined when dropped.
pub(crate) struct Waker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Waker {
    /// Starts the thread. Without one (the system refused a thread), users
    /// fall back to tokio's timer, late by up to its tick.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("loadgen-wake".into())
            .spawn(move || {
                exact_timers();
                run(&s)
            })
            .map_err(|e| tracing::warn!(error = %e, "no waking thread: pacing falls back to tokio's millisecond timer"))
            .ok();
        Waker { shared, thread }
    }

    /// Returns at `due` less [`LEAD`], give or take tens of microseconds,
    /// and never earlier.
    pub async fn sleep_until(&self, due: Instant) {
        let Some(due) = due.checked_sub(LEAD) else {
            return;
        };
        if let Some(coarse) = due.checked_sub(COARSE_MARGIN) {
            if Instant::now() < coarse {
                tokio::time::sleep_until(coarse).await;
            }
        }
        if Instant::now() >= due {
            return;
        }
        if self.thread.is_none() {
            tokio::time::sleep_until(due).await;
            return;
        }
        let (wake, woken) = oneshot::channel();
        let earliest = self.shared.state.lock().push(due.into_std(), wake);
        // The thread sleeps until the earliest waiter's time, so only a new
        // earliest changes its deadline; waking it for any other waiter is a
        // futex round trip per request that changes nothing.
        if earliest {
            self.shared.changed.notify_one();
        }
        // The thread only drops a waiter by waking it, or when stopping.
        let _ = woken.await;
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.changed.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks the kernel to fire this thread's timers on time: by default Linux
/// may defer a sleeping thread's wake-up by up to 50 µs (its "timer
/// slack") to batch wake-ups, which would be the generator's lateness.
fn exact_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and touches only the
    // calling thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

fn run(shared: &Shared) {
    let mut st = shared.state.lock();
    loop {
        if st.stop {
            // Waiters still queued wake now (their senders drop).
            st.due.clear();
            return;
        }
        let now = std::time::Instant::now();
        // Never early: a wait that returns before its deadline loops.
        while st.due.peek().is_some_and(|w| w.0.at <= now) {
            if let Some(Reverse(w)) = st.due.pop() {
                let _ = w.wake.send(());
            }
        }
        match st.due.peek().map(|w| w.0.at) {
            Some(at) => {
                shared.changed.wait_until(&mut st, at);
            }
            None => shared.changed.wait(&mut st),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn users_wake_in_slot_order_and_on_time() {
        let waker = Arc::new(Waker::start());
        let start = Instant::now() + Duration::from_millis(5);
        // Forty slots 250 µs apart, taken in reverse: each still wakes at its
        // own time (its lead ahead), in slot order.
        let mut tasks = Vec::new();
        for i in (0..40u64).rev() {
            let w = waker.clone();
            let due = start + Duration::from_micros(250 * i);
            tasks.push(tokio::spawn(async move {
                w.sleep_until(due).await;
                let now = Instant::now();
                (i, now.saturating_duration_since(due), now + LEAD >= due)
            }));
        }
        let mut lateness = Vec::new();
        for t in tasks {
            let (i, late, not_early) = t.await.expect("task");
            assert!(not_early, "slot {i} woke early");
            lateness.push(late);
        }
        // How late is measured by the `max_rate` bench, on a quiet machine;
        // here only that nobody woke early, and everybody woke.
        assert_eq!(lateness.len(), 40);
    }

    #[test]
    fn only_a_new_earliest_waiter_moves_the_threads_deadline() {
        let mut st = State::default();
        let t = std::time::Instant::now();
        let mut push = |at_us: u64| {
            let (wake, _woken) = oneshot::channel();
            st.push(t + Duration::from_micros(at_us), wake)
        };
        assert!(push(10_000), "the first waiter sets the deadline");
        assert!(!push(20_000), "a later one leaves it");
        assert!(push(5_000), "an earlier one moves it");
        assert!(!push(5_000), "a tie queues behind the one already there");
        assert!(!push(7_000));
        assert!(push(1), "an earlier one moves it");
    }

    #[tokio::test]
    async fn a_slot_already_due_returns_at_once_and_drop_stops_the_thread() {
        let waker = Waker::start();
        let t0 = Instant::now();
        waker.sleep_until(t0).await;
        waker.sleep_until(t0 - Duration::from_millis(5)).await;
        assert!(t0.elapsed() < Duration::from_millis(50));
        drop(waker);
    }
}
