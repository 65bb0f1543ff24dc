//! Waking users on time: the open model's pacing clock below tokio's
//! millisecond.
//!
//! tokio's timer wheel ticks in whole milliseconds and rounds a deadline
//! *up* to the next tick, so `sleep_until(due)` returns 0–1 ms after `due`
//! (and a little more for the wake-up). Latency counts from `due` (that is
//! what keeps coordinated omission out), so that lateness would be
//! reported as the system's: on an endpoint answering in 1–2 ms, half the
//! figure. Here a user sleeps on tokio's wheel until just before its slot
//! (cheap, coarse), then queues for the last stretch on one Linux timerfd
//! (the kernel's high-resolution timers, armed for the earliest waiter,
//! with no timer slack) registered with the runtime's own I/O driver. When
//! it fires, the runtime thread waiting in `epoll_wait` wakes, and one
//! pacing task on that thread wakes exactly the users that are due.
//!
//! Why not a thread of our own waiting on a futex with a deadline, as this
//! was at first: every wake-up then crossed threads twice (the waking
//! thread, then a runtime worker unparked to run the user, which unparked
//! its sibling in turn), and the system under test paid for it. On a
//! 2-core machine the scheduler spread the system's own threads over both
//! cores after those hand-offs, and `gauntlet serve`'s gateway took about
//! 0.6 ms a request under our load against 0.4 ms under oha's at the same
//! rate (its own request-duration histogram, 100/s): our figures were
//! a third higher than oha's, and it was not our clock. From the runtime's
//! own thread the user is sent from the thread the timer woke, as a
//! runtime timer would send it, with nothing else woken.
//!
//! Even so, a user's request is built some microseconds after the timer
//! fires (the driver's dispatch, then the pacing task and the user's turn).
//! So users are woken [`LEAD`] ahead of their slot, and a request that
//! leaves before its slot has its latency counted from when it left: the
//! lead takes the generator's own hand-off out of the figure without
//! hiding any of the system's time, and a user later than the lead still
//! counts from its slot (no coordinated omission).
//!
//! At high rates slots are a few microseconds apart, and a timer fired
//! once per slot would cost more than the requests. So each firing wakes
//! every user due within [`COALESCE`] after the one it fired for, and a
//! user whose wait would be shorter than that is not queued at all:
//! nobody is ever woken late by this, some are woken up to `COALESCE`
//! early (their latency then counts from when they left), and the timer
//! fires at most once per `COALESCE`. Below one slot per `COALESCE` every
//! user still wakes on its own slot.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long before a slot the coarse tokio sleep ends: more than the
/// wheel's rounding (1 ms) plus a busy runtime's wake-up delay, so the
/// coarse sleep never overshoots the slot.
const COARSE_MARGIN: Duration = Duration::from_millis(3);

/// How far ahead of its slot a user is woken: about the 99th percentile
/// of the hand-off from the timer's firing to the request being sent
/// (the median is about 60 µs, its tail a few tenths of a millisecond
/// where a core has to be woken first: the `versus_oha` bench prints it as
/// "send after slot"). So 99% of requests leave at or before their slot,
/// and count from when they left: the generator's own wake-up is in none
/// of them, and a stall of the generator or the system longer than this
/// still counts whole from the slot.
pub(crate) const LEAD: Duration = Duration::from_micros(250);

/// How far after the waiter the timer fired for it wakes the others too,
/// and the shortest wait it takes on: at most one firing per 100 µs, which
/// at 100,000 slots a second is one per ten slots, while an early send is
/// a tenth of a millisecond at the most. The `max_rate` bench measures the
/// rate this lets the generator hold.
pub(crate) const COALESCE: Duration = Duration::from_micros(100);

/// Whether a slot `due` at `now` is far enough off to wait for: further
/// than the lead and the coalescing window together. A nearer one is sent
/// at once, at most that early (its latency then counts from the send).
pub(crate) fn must_wait(due: Instant, now: Instant) -> bool {
    due > now + LEAD + COALESCE
}

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
    /// timer must be armed again.
    fn push(&mut self, at: std::time::Instant, wake: oneshot::Sender<()>) -> bool {
        self.seq += 1;
        let seq = self.seq;
        self.due.push(Reverse(Waiter { at, seq, wake }));
        self.due.peek().is_some_and(|w| w.0.seq == seq)
    }

    /// Once the earliest waiter is due at `now`, wakes it and everyone due
    /// within [`COALESCE`] of `now`; how many were woken.
    fn wake_due(&mut self, now: std::time::Instant) -> usize {
        if self.due.peek().is_none_or(|w| w.0.at > now) {
            return 0;
        }
        let until = now + COALESCE;
        let mut woken = 0;
        while self.due.peek().is_some_and(|w| w.0.at <= until) {
            if let Some(Reverse(w)) = self.due.pop() {
                let _ = w.wake.send(());
                woken += 1;
            }
        }
        woken
    }

    fn earliest(&self) -> Option<std::time::Instant> {
        self.due.peek().map(|w| w.0.at)
    }
}

/// The pacing clock of one load run; its task ends when this is dropped.
pub(crate) struct Waker {
    state: Arc<Mutex<State>>,
    /// `None` where there is no timerfd (not Linux, no runtime, or the
    /// kernel refused one): users fall back to tokio's timer, late by up
    /// to its tick.
    timer: Option<Arc<timer::Timer>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Waker {
    /// Arms the clock on the current runtime.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let timer = match timer::Timer::new() {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                tracing::warn!(error = %e, "no high-resolution timer: pacing falls back to tokio's millisecond timer");
                None
            }
        };
        let task = timer.clone().map(|t| tokio::spawn(pace(state.clone(), t)));
        Waker { state, timer, task }
    }

    /// Returns at `due` less [`LEAD`], give or take some microseconds, or
    /// up to [`COALESCE`] earlier (together with an earlier waiter, or at
    /// once when that is all there is to wait), and never later.
    pub async fn sleep_until(&self, due: Instant) {
        if !must_wait(due, Instant::now()) {
            return;
        }
        let Some(wake_at) = due.checked_sub(LEAD) else {
            return;
        };
        if let Some(coarse) = wake_at.checked_sub(COARSE_MARGIN) {
            if Instant::now() < coarse {
                tokio::time::sleep_until(coarse).await;
            }
        }
        if !must_wait(due, Instant::now()) {
            return;
        }
        let Some(timer) = &self.timer else {
            tokio::time::sleep_until(wake_at).await;
            return;
        };
        let (wake, woken) = oneshot::channel();
        {
            let mut st = self.state.lock();
            if st.stop {
                return;
            }
            // Armed under the lock, so the pacing task's own re-arming
            // cannot overtake it with a later deadline.
            if st.push(wake_at.into_std(), wake) {
                timer.arm(wake_at.into_std());
            }
        }
        // The pacing task only drops a waiter by waking it, or when stopping.
        let _ = woken.await;
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        st.stop = true;
        // Waiters still queued wake now (their senders drop).
        st.due.clear();
        drop(st);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The pacing task: each time the timer fires, wakes who is due and arms
/// it for the next earliest waiter.
async fn pace(state: Arc<Mutex<State>>, timer: Arc<timer::Timer>) {
    loop {
        if timer.fired().await.is_err() {
            // The driver is gone (the runtime is shutting down).
            return;
        }
        let mut st = state.lock();
        if st.stop {
            return;
        }
        st.wake_due(std::time::Instant::now());
        if let Some(at) = st.earliest() {
            timer.arm(at);
        }
    }
}

#[cfg(target_os = "linux")]
mod timer {
    //! A one-shot CLOCK_MONOTONIC timerfd (the clock `Instant` reads on
    //! Linux) in the runtime's I/O driver.

    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use tokio::io::unix::AsyncFd;

    pub(super) struct Timer(AsyncFd<OwnedFd>);

    impl Timer {
        pub fn new() -> io::Result<Timer> {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(io::Error::other("not inside a tokio runtime"));
            }
            // SAFETY: timerfd_create takes plain integers; the descriptor it
            // returns is owned by nobody else.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: an OwnedFd stays open, and is the same descriptor, for
            // as long as the AsyncFd owns it.
            let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
            Ok(Timer(fd))
        }

        /// Fires once at `at` (at once if that has passed), replacing any
        /// earlier arming.
        pub fn arm(&self, at: std::time::Instant) {
            let left = at.saturating_duration_since(std::time::Instant::now());
            // Zero would disarm it: a deadline already passed fires in 1 ns.
            let left = left.max(std::time::Duration::from_nanos(1));
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                },
            };
            // SAFETY: a valid descriptor of ours and a valid itimerspec; the
            // old value is not asked for. It cannot fail on a timerfd with
            // valid arguments.
            unsafe {
                libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut());
            }
        }

        /// Waits until the timer has fired since the last call.
        pub async fn fired(&self) -> io::Result<()> {
            let mut ready = self.0.readable().await?;
            // Readiness is cleared before the expiry count is read, so a
            // firing after the read is seen as new readiness, not lost.
            ready.clear_ready();
            let mut count = [0u8; 8];
            // SAFETY: reads at most 8 bytes into an 8-byte buffer. EAGAIN
            // (already read) is fine: the caller looks at the clock anyway.
            unsafe {
                libc::read(self.0.as_raw_fd(), count.as_mut_ptr().cast(), count.len());
            }
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod timer {
    //! No timerfd: pacing uses tokio's own timer.
    use std::io;

    pub(super) struct Timer;

    impl Timer {
        pub fn new() -> io::Result<Timer> {
            Err(io::Error::other("no timerfd on this system"))
        }
        pub fn arm(&self, _at: std::time::Instant) {}
        pub async fn fired(&self) -> io::Result<()> {
            std::future::pending().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn users_wake_in_slot_order_and_on_time() {
        let waker = Arc::new(Waker::start());
        assert!(waker.timer.is_some(), "a timerfd on Linux");
        let start = Instant::now() + Duration::from_millis(5);
        // Forty slots 250 µs apart, taken in reverse: each still wakes at its
        // own time (its lead ahead, or with an earlier one when the timer
        // itself fired late), in slot order.
        let mut tasks = Vec::new();
        for i in (0..40u64).rev() {
            let w = waker.clone();
            let due = start + Duration::from_micros(250 * i);
            tasks.push(tokio::spawn(async move {
                w.sleep_until(due).await;
                let now = Instant::now();
                (
                    i,
                    now.saturating_duration_since(due),
                    now + LEAD + COALESCE >= due,
                )
            }));
        }
        let mut lateness = Vec::new();
        for t in tasks {
            let (i, late, not_early) = t.await.expect("task");
            assert!(not_early, "slot {i} woke early");
            lateness.push(late);
        }
        // How late is measured by the benches, on a quiet machine; here
        // only that nobody woke early, and everybody woke.
        assert_eq!(lateness.len(), 40);
    }

    #[test]
    fn only_a_new_earliest_waiter_moves_the_timer() {
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

    #[test]
    fn a_firing_wakes_the_earliest_once_due_and_everyone_within_coalesce_of_it() {
        let mut st = State::default();
        let t = std::time::Instant::now();
        let us = |n: u64| Duration::from_micros(n);
        let mut woken = Vec::new();
        for at in [0, 40, 100, 101, 400] {
            let (wake, rx) = oneshot::channel();
            st.push(t + us(1_000 + at), wake);
            woken.push(rx);
        }
        assert_eq!(
            st.wake_due(t + us(999)),
            0,
            "nobody before the earliest is due"
        );
        assert_eq!(
            st.wake_due(t + us(1_000)),
            3,
            "the earliest, +40 and +100 µs"
        );
        assert_eq!(st.wake_due(t + us(1_001)), 0, "+101 µs is not due yet");
        assert_eq!(st.earliest(), Some(t + us(1_101)));
        assert_eq!(st.wake_due(t + us(1_101)), 1);
        assert_eq!(st.wake_due(t + us(1_400)), 1);
        assert_eq!(st.earliest(), None);
        for (i, mut rx) in woken.into_iter().enumerate() {
            assert_eq!(rx.try_recv(), Ok(()), "waiter {i} was woken");
        }
    }

    #[tokio::test]
    async fn a_slot_already_due_returns_at_once_and_drop_stops_the_task() {
        let waker = Waker::start();
        let t0 = Instant::now();
        waker.sleep_until(t0).await;
        waker.sleep_until(t0 - Duration::from_millis(5)).await;
        assert!(t0.elapsed() < Duration::from_millis(50));
        let task = waker.task.as_ref().map(|t| t.abort_handle());
        drop(waker);
        tokio::task::yield_now().await;
        if let Some(task) = task {
            // Aborted: finished once the runtime has run its cancellation.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !task.is_finished() && Instant::now() < deadline {
                tokio::task::yield_now().await;
            }
            assert!(task.is_finished());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_that_arrives_while_the_timer_is_set_later_moves_it_earlier() {
        let waker = Arc::new(Waker::start());
        let t0 = Instant::now();
        let late = {
            let w = waker.clone();
            tokio::spawn(async move { w.sleep_until(t0 + Duration::from_millis(40)).await })
        };
        // Let the late one queue (and arm the timer for itself) first.
        tokio::time::sleep(Duration::from_millis(5)).await;
        waker.sleep_until(t0 + Duration::from_millis(10)).await;
        let woke = t0.elapsed();
        assert!(
            woke < Duration::from_millis(35),
            "the early one waited for the late one: {woke:?}"
        );
        late.await.expect("the late one wakes too");
        assert!(t0.elapsed() + LEAD + COALESCE >= Duration::from_millis(40));
    }
}
