//! A count-based circuit breaker with resilience4j's semantics.
//!
//! - CLOSED judges the last `sliding_window_size` outcomes. Once the window
//!   holds `minimum_calls`, a failure rate or slow-call rate at or above its
//!   threshold opens the breaker.
//! - OPEN rejects every call until `wait_in_open` has passed; the first call
//!   after that moves it to HALF_OPEN (lazily, as resilience4j does without
//!   automatic transition) and goes through.
//! - HALF_OPEN hands out `permitted_calls_in_half_open` permits. When all
//!   their outcomes are in, their rates alone decide: OPEN again, or CLOSED
//!   with an empty window.
//!
//! Each state change bumps an epoch. A [`Permit`] remembers the epoch it was
//! issued in, so the outcome of a call that started before a change (say, a
//! slow call from before the breaker opened) cannot count towards, or use up,
//! the trial of a later state.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::BreakerConfig;

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    /// Calls go through; outcomes fill the sliding window.
    Closed,
    /// Calls are rejected without reaching the target.
    Open,
    /// A few trial calls go through to probe the target.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same spelling as the wire format, so logs and JSON agree.
        f.write_str(match self {
            Self::Closed => "CLOSED",
            Self::Open => "OPEN",
            Self::HalfOpen => "HALF_OPEN",
        })
    }
}

/// One state change, as recorded and reported on `/circuit-breakers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// State before the change.
    pub from: BreakerState,
    /// State after the change.
    pub to: BreakerState,
    /// Wall-clock time of the change, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Why, e.g. "failure rate 60.0% >= 50.0% over 10 calls".
    pub reason: String,
}

/// A call refused by the breaker; the target was not called.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker {name} is {state}: call not permitted")]
pub struct Rejected {
    /// The breaker's name (usually the target service).
    pub name: String,
    /// The state that refused the call (OPEN, or HALF_OPEN with no permit left).
    pub state: BreakerState,
}

/// What a permitted call came to, as far as the breaker is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The target answered properly (including "your request is wrong").
    Success,
    /// The target failed or did not answer in time.
    Failure,
}

/// A breaker's state and counters at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerSnapshot {
    /// The breaker's name.
    pub name: String,
    /// Current state (an OPEN breaker whose wait is over still reads OPEN
    /// until the next call attempt).
    pub state: BreakerState,
    /// Outcomes in the window being judged: the sliding window in CLOSED (and
    /// the one that tripped it, in OPEN), the trial calls in HALF_OPEN.
    pub calls_in_window: u32,
    /// Failed outcomes among `calls_in_window`.
    pub failures_in_window: u32,
    /// Slow outcomes among `calls_in_window`.
    pub slow_in_window: u32,
    /// `failures_in_window` over `calls_in_window`, percent (0 when empty).
    pub failure_rate: f64,
    /// `slow_in_window` over `calls_in_window`, percent (0 when empty).
    pub slow_call_rate: f64,
    /// Calls rejected since the breaker was created.
    pub not_permitted: u64,
    /// State changes since the breaker was created.
    pub transitions: u64,
    /// The configuration the breaker runs with.
    pub config: BreakerConfig,
}

/// A circuit breaker guarding calls to one target. Cheap to share: all state
/// sits behind one short-held lock.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: String,
    config: BreakerConfig,
    limits: Limits,
    inner: Mutex<Inner>,
}

/// The counts the breaker actually uses: the configured ones clamped so a
/// bad config degrades instead of wedging the breaker (a window of zero calls
/// could never reach its minimum).
#[derive(Clone, Copy, Debug)]
struct Limits {
    window_size: u32,
    minimum_calls: u32,
    permitted_in_half_open: u32,
}

impl Limits {
    fn new(config: &BreakerConfig) -> Self {
        let window_size = config.sliding_window_size.max(1);
        Self {
            window_size,
            // As resilience4j: a minimum above the window size means "a full window".
            minimum_calls: config.minimum_calls.clamp(1, window_size),
            permitted_in_half_open: config.permitted_calls_in_half_open.max(1),
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// Bumped on every transition; permits from an older epoch are stale.
    epoch: u64,
    window: Window,
    opened_at: Instant,
    /// HALF_OPEN permits handed out and not given back (recorded ones included).
    issued: u32,
    not_permitted: u64,
    transitions: Vec<Transition>,
}

/// The last `capacity` outcomes with running counts.
#[derive(Debug)]
struct Window {
    capacity: u32,
    samples: VecDeque<Sample>,
    failures: u32,
    slow: u32,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    failed: bool,
    slow: bool,
}

impl Window {
    fn new(capacity: u32) -> Self {
        Self {
            capacity,
            samples: VecDeque::with_capacity(capacity as usize),
            failures: 0,
            slow: 0,
        }
    }

    fn len(&self) -> u32 {
        // Never above `capacity`, itself a u32.
        self.samples.len() as u32
    }

    fn push(&mut self, sample: Sample) {
        if self.len() >= self.capacity {
            if let Some(oldest) = self.samples.pop_front() {
                self.failures -= u32::from(oldest.failed);
                self.slow -= u32::from(oldest.slow);
            }
        }
        self.failures += u32::from(sample.failed);
        self.slow += u32::from(sample.slow);
        self.samples.push_back(sample);
    }

    fn rate(&self, count: u32) -> f64 {
        if self.samples.is_empty() {
            0.0
        } else {
            f64::from(count) * 100.0 / f64::from(self.len())
        }
    }

    fn failure_rate(&self) -> f64 {
        self.rate(self.failures)
    }

    fn slow_call_rate(&self) -> f64 {
        self.rate(self.slow)
    }
}

/// The verdict on a full enough window: trip (with why) or healthy (with why).
enum Verdict {
    Trip(String),
    Healthy(String),
}

fn judge(window: &Window, config: &BreakerConfig) -> Verdict {
    let calls = window.len();
    let failure_rate = window.failure_rate();
    let slow_rate = window.slow_call_rate();
    let failure_threshold = config.failure_rate_threshold;
    let slow_threshold = config.slow_call_rate_threshold;
    let mut tripped = Vec::new();
    if failure_rate >= failure_threshold {
        tripped.push(format!(
            "failure rate {failure_rate:.1}% >= {failure_threshold:.1}%"
        ));
    }
    if slow_rate >= slow_threshold {
        tripped.push(format!(
            "slow-call rate {slow_rate:.1}% >= {slow_threshold:.1}%"
        ));
    }
    if tripped.is_empty() {
        Verdict::Healthy(format!(
            "failure rate {failure_rate:.1}% < {failure_threshold:.1}% and slow-call rate \
             {slow_rate:.1}% < {slow_threshold:.1}% over {calls} calls"
        ))
    } else {
        Verdict::Trip(format!("{} over {calls} calls", tripped.join(" and ")))
    }
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        // A clock set before 1970 is not worth failing a call over.
        .unwrap_or(0)
}

fn log(name: &str, transition: Option<Transition>) {
    if let Some(t) = transition {
        tracing::info!(
            breaker = name,
            from = %t.from,
            to = %t.to,
            reason = %t.reason,
            "circuit breaker transition"
        );
    }
}

impl Inner {
    fn transition(&mut self, to: BreakerState, reason: String, limits: &Limits) -> Transition {
        let from = self.state;
        self.state = to;
        self.epoch += 1;
        self.issued = 0;
        match to {
            // The window that tripped the breaker stays visible while OPEN.
            BreakerState::Open => self.opened_at = Instant::now(),
            BreakerState::HalfOpen => self.window = Window::new(limits.permitted_in_half_open),
            BreakerState::Closed => self.window = Window::new(limits.window_size),
        }
        let transition = Transition {
            from,
            to,
            at_unix_ms: unix_ms_now(),
            reason,
        };
        self.transitions.push(transition.clone());
        transition
    }
}

impl CircuitBreaker {
    /// A CLOSED breaker with an empty window.
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        let limits = Limits::new(&config);
        Self {
            name: name.into(),
            config,
            limits,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                epoch: 0,
                window: Window::new(limits.window_size),
                opened_at: Instant::now(),
                issued: 0,
                not_permitted: 0,
                transitions: Vec::new(),
            }),
        }
    }

    /// The breaker's name (usually the target service).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration the breaker runs with.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Asks for one permit for one call. A permitted call must end in
    /// [`record`](Self::record) or [`release`](Self::release); prefer
    /// [`permit`](Self::permit), whose guard does that even on cancellation.
    pub fn acquire(&self) -> Result<(), Rejected> {
        self.acquire_in_epoch().map(|_epoch| ())
    }

    /// Asks for one permit, as a guard that gives the permit back when
    /// dropped without an outcome (the call was cancelled).
    pub fn permit(&self) -> Result<Permit<'_>, Rejected> {
        let epoch = self.acquire_in_epoch()?;
        Ok(Permit {
            breaker: self,
            epoch,
            settled: false,
        })
    }

    /// Records the outcome of a permitted call that took `elapsed`.
    ///
    /// Outcomes arriving while OPEN are dropped: they belong to calls that
    /// started before the breaker opened and can no longer change anything.
    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        self.record_in_epoch(None, outcome, elapsed);
    }

    /// Gives a permit back without an outcome (the call was cancelled, or its
    /// result says nothing about the target).
    pub fn release(&self) {
        self.release_in_epoch(None);
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.inner.lock().state
    }

    /// State and counters, for `/circuit-breakers`.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let inner = self.inner.lock();
        BreakerSnapshot {
            name: self.name.clone(),
            state: inner.state,
            calls_in_window: inner.window.len(),
            failures_in_window: inner.window.failures,
            slow_in_window: inner.window.slow,
            failure_rate: inner.window.failure_rate(),
            slow_call_rate: inner.window.slow_call_rate(),
            not_permitted: inner.not_permitted,
            transitions: inner.transitions.len() as u64,
            config: self.config.clone(),
        }
    }

    /// Every transition since the breaker was created, oldest first.
    pub fn transitions(&self) -> Vec<Transition> {
        self.inner.lock().transitions.clone()
    }

    fn acquire_in_epoch(&self) -> Result<u64, Rejected> {
        let mut inner = self.inner.lock();
        let mut moved = None;
        if inner.state == BreakerState::Open
            && inner.opened_at.elapsed() >= self.config.wait_in_open
        {
            let reason = format!("wait in open of {:?} elapsed", self.config.wait_in_open);
            moved = Some(inner.transition(BreakerState::HalfOpen, reason, &self.limits));
        }
        let permitted = match inner.state {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => inner.issued < self.limits.permitted_in_half_open,
        };
        let result = if permitted {
            if inner.state == BreakerState::HalfOpen {
                inner.issued += 1;
            }
            Ok(inner.epoch)
        } else {
            inner.not_permitted += 1;
            Err(Rejected {
                name: self.name.clone(),
                state: inner.state,
            })
        };
        drop(inner);
        log(&self.name, moved);
        result
    }

    fn record_in_epoch(&self, epoch: Option<u64>, outcome: Outcome, elapsed: Duration) {
        let sample = Sample {
            failed: outcome == Outcome::Failure,
            slow: elapsed > self.config.slow_call_duration,
        };
        let mut inner = self.inner.lock();
        if epoch.is_some_and(|epoch| epoch != inner.epoch) {
            return;
        }
        let moved = match inner.state {
            BreakerState::Open => None,
            BreakerState::Closed => {
                inner.window.push(sample);
                if inner.window.len() < self.limits.minimum_calls {
                    None
                } else if let Verdict::Trip(reason) = judge(&inner.window, &self.config) {
                    Some(inner.transition(BreakerState::Open, reason, &self.limits))
                } else {
                    None
                }
            }
            BreakerState::HalfOpen => {
                // Without an epoch, an outcome beyond the permits handed out
                // in this state must be from an older call: ignore it.
                if inner.window.len() >= inner.issued {
                    return;
                }
                inner.window.push(sample);
                if inner.window.len() < self.limits.permitted_in_half_open {
                    None
                } else {
                    let (to, reason) = match judge(&inner.window, &self.config) {
                        Verdict::Trip(reason) => (BreakerState::Open, reason),
                        Verdict::Healthy(reason) => (BreakerState::Closed, reason),
                    };
                    Some(inner.transition(to, format!("half-open trial: {reason}"), &self.limits))
                }
            }
        };
        drop(inner);
        log(&self.name, moved);
    }

    fn release_in_epoch(&self, epoch: Option<u64>) {
        let mut inner = self.inner.lock();
        if epoch.is_some_and(|epoch| epoch != inner.epoch) {
            return;
        }
        // Only HALF_OPEN counts permits; only unrecorded ones can come back.
        if inner.state == BreakerState::HalfOpen && inner.issued > inner.window.len() {
            inner.issued -= 1;
        }
    }
}

/// One permitted call. Settle it with [`record`](Self::record); dropped
/// unsettled (the call was cancelled), it gives the permit back.
#[derive(Debug)]
#[must_use = "a permit left unrecorded is released when dropped and its call counts for nothing"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    epoch: u64,
    settled: bool,
}

impl Permit<'_> {
    /// Records the call's outcome; ignored if the breaker has changed state
    /// since the permit was issued.
    pub fn record(mut self, outcome: Outcome, elapsed: Duration) {
        self.settled = true;
        self.breaker
            .record_in_epoch(Some(self.epoch), outcome, elapsed);
    }

    /// Gives the permit back without an outcome.
    pub fn release(self) {
        // Dropping does it.
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.release_in_epoch(Some(self.epoch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW_AFTER: Duration = Duration::from_millis(100);
    const FAST: Duration = Duration::from_millis(5);
    const SLOW: Duration = Duration::from_millis(150);
    const WAIT: Duration = Duration::from_secs(5);

    fn config(window: u32, minimum: u32, half_open: u32) -> BreakerConfig {
        BreakerConfig {
            sliding_window_size: window,
            minimum_calls: minimum,
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: SLOW_AFTER,
            wait_in_open: WAIT,
            permitted_calls_in_half_open: half_open,
        }
    }

    /// Runs one permitted call through the breaker, panicking if rejected.
    fn call(breaker: &CircuitBreaker, outcome: Outcome, elapsed: Duration) {
        breaker.acquire().expect("call should be permitted");
        breaker.record(outcome, elapsed);
    }

    fn trip(breaker: &CircuitBreaker) {
        while breaker.state() != BreakerState::Open {
            call(breaker, Outcome::Failure, FAST);
        }
    }

    fn states(breaker: &CircuitBreaker) -> Vec<(BreakerState, BreakerState)> {
        breaker
            .transitions()
            .iter()
            .map(|t| (t.from, t.to))
            .collect()
    }

    #[test]
    fn stays_closed_below_minimum_calls_even_at_full_failure() {
        let breaker = CircuitBreaker::new("users", config(10, 5, 2));
        for _ in 0..4 {
            call(&breaker, Outcome::Failure, FAST);
        }
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.calls_in_window, 4);
        assert_eq!(snapshot.failure_rate, 100.0);
        assert!(breaker.transitions().is_empty());

        call(&breaker, Outcome::Failure, FAST);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn opens_at_exactly_the_failure_rate_threshold() {
        let breaker = CircuitBreaker::new("catalog", config(10, 10, 2));
        for _ in 0..6 {
            call(&breaker, Outcome::Success, FAST);
        }
        for _ in 0..4 {
            call(&breaker, Outcome::Failure, FAST);
        }
        // 4 of 10 = 40%: below the threshold.
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.snapshot().failure_rate, 40.0);

        // The oldest success slides out: 5 of 10 = 50%, the threshold itself.
        call(&breaker, Outcome::Failure, FAST);
        assert_eq!(breaker.state(), BreakerState::Open);
        let transitions = breaker.transitions();
        assert_eq!(transitions.len(), 1);
        assert_eq!(
            transitions[0].reason,
            "failure rate 50.0% >= 50.0% over 10 calls"
        );
        let snapshot = breaker.snapshot();
        assert_eq!(
            (snapshot.calls_in_window, snapshot.failures_in_window),
            (10, 5)
        );
    }

    #[test]
    fn sliding_window_forgets_the_oldest_outcomes() {
        let breaker = CircuitBreaker::new("orders", config(10, 10, 2));
        for _ in 0..4 {
            call(&breaker, Outcome::Failure, FAST);
        }
        for _ in 0..10 {
            call(&breaker, Outcome::Success, FAST);
        }
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.calls_in_window, 10);
        assert_eq!(snapshot.failures_in_window, 0);
        // Four more failures are 40% of the window, not 8 of 18.
        for _ in 0..4 {
            call(&breaker, Outcome::Failure, FAST);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.snapshot().failure_rate, 40.0);
    }

    #[test]
    fn opens_on_slow_call_rate() {
        let breaker = CircuitBreaker::new("provider", config(4, 4, 2));
        // A call lasting exactly the slow-call duration is not slow.
        call(&breaker, Outcome::Success, SLOW_AFTER);
        for _ in 0..3 {
            call(&breaker, Outcome::Success, SLOW);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.snapshot().slow_call_rate, 75.0);

        call(&breaker, Outcome::Success, SLOW);
        assert_eq!(breaker.state(), BreakerState::Open);
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.failures_in_window, 0);
        assert_eq!(snapshot.slow_in_window, 4);
        assert_eq!(
            breaker.transitions()[0].reason,
            "slow-call rate 100.0% >= 100.0% over 4 calls"
        );
    }

    #[test]
    fn a_call_can_be_both_failed_and_slow() {
        let breaker = CircuitBreaker::new("payments", config(4, 4, 2));
        for _ in 0..4 {
            call(&breaker, Outcome::Failure, SLOW);
        }
        let snapshot = breaker.snapshot();
        assert_eq!(
            (snapshot.failures_in_window, snapshot.slow_in_window),
            (4, 4)
        );
        assert_eq!(
            breaker.transitions()[0].reason,
            "failure rate 100.0% >= 50.0% and slow-call rate 100.0% >= 100.0% over 4 calls"
        );
    }

    #[test]
    fn minimum_calls_above_the_window_means_a_full_window() {
        let breaker = CircuitBreaker::new("users", config(3, 50, 1));
        call(&breaker, Outcome::Failure, FAST);
        call(&breaker, Outcome::Failure, FAST);
        assert_eq!(breaker.state(), BreakerState::Closed);
        call(&breaker, Outcome::Failure, FAST);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn open_rejects_until_wait_in_open_has_passed() {
        let breaker = CircuitBreaker::new("users", config(4, 2, 2));
        trip(&breaker);

        let rejected = breaker.acquire().unwrap_err();
        assert_eq!(
            rejected,
            Rejected {
                name: "users".to_string(),
                state: BreakerState::Open
            }
        );
        assert_eq!(
            rejected.to_string(),
            "circuit breaker users is OPEN: call not permitted"
        );

        tokio::time::advance(WAIT - Duration::from_millis(1)).await;
        assert!(breaker.acquire().is_err());
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.snapshot().not_permitted, 2);

        tokio::time::advance(Duration::from_millis(1)).await;
        // Still OPEN until someone asks: the move is lazy.
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.acquire(), Ok(()));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.snapshot().not_permitted, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_permits_exactly_the_configured_calls() {
        let breaker = CircuitBreaker::new("users", config(4, 2, 3));
        trip(&breaker);
        tokio::time::advance(WAIT).await;

        for _ in 0..3 {
            assert_eq!(breaker.acquire(), Ok(()));
        }
        let rejected = breaker.acquire().unwrap_err();
        assert_eq!(rejected.state, BreakerState::HalfOpen);
        assert_eq!(
            rejected.to_string(),
            "circuit breaker users is HALF_OPEN: call not permitted"
        );

        // A permit given back can be handed out again; a recorded one cannot.
        breaker.release();
        assert_eq!(breaker.acquire(), Ok(()));
        breaker.record(Outcome::Success, FAST);
        breaker.release();
        breaker.release();
        breaker.release(); // one more than outstanding: must not free a recorded permit
        assert_eq!(breaker.acquire(), Ok(()));
        assert_eq!(breaker.acquire(), Ok(()));
        assert!(breaker.acquire().is_err());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_closes_on_successes_with_a_fresh_window() {
        let breaker = CircuitBreaker::new("users", config(4, 2, 3));
        trip(&breaker);
        tokio::time::advance(WAIT).await;

        call(&breaker, Outcome::Success, FAST);
        call(&breaker, Outcome::Failure, FAST);
        // Not all trial outcomes are in yet.
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.snapshot().calls_in_window, 2);
        call(&breaker, Outcome::Success, FAST);

        // 1 failure in 3 = 33.3% < 50%.
        assert_eq!(breaker.state(), BreakerState::Closed);
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.calls_in_window, 0);
        assert_eq!(snapshot.failures_in_window, 0);
        // The fresh window needs its minimum again before it can trip.
        call(&breaker, Outcome::Failure, FAST);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_reopens_on_failure_and_waits_again() {
        let breaker = CircuitBreaker::new("users", config(4, 2, 2));
        trip(&breaker);
        tokio::time::advance(WAIT).await;

        call(&breaker, Outcome::Success, FAST);
        call(&breaker, Outcome::Failure, FAST);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(
            breaker.transitions().last().map(|t| t.reason.clone()),
            Some("half-open trial: failure rate 50.0% >= 50.0% over 2 calls".to_string())
        );

        assert!(breaker.acquire().is_err());
        tokio::time::advance(WAIT - Duration::from_millis(1)).await;
        assert!(breaker.acquire().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(breaker.acquire(), Ok(()));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_reopens_on_slow_calls() {
        let breaker = CircuitBreaker::new("provider", config(4, 2, 2));
        trip(&breaker);
        tokio::time::advance(WAIT).await;
        call(&breaker, Outcome::Success, SLOW);
        call(&breaker, Outcome::Success, SLOW);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn every_transition_is_recorded_in_order_with_its_reason() {
        let before = unix_ms_now();
        let breaker = CircuitBreaker::new("payments", config(4, 2, 1));
        trip(&breaker);
        tokio::time::advance(WAIT).await;
        call(&breaker, Outcome::Failure, FAST);
        tokio::time::advance(WAIT).await;
        call(&breaker, Outcome::Success, FAST);

        use BreakerState::*;
        assert_eq!(
            states(&breaker),
            vec![
                (Closed, Open),
                (Open, HalfOpen),
                (HalfOpen, Open),
                (Open, HalfOpen),
                (HalfOpen, Closed)
            ]
        );
        let reasons: Vec<String> = breaker
            .transitions()
            .into_iter()
            .map(|t| t.reason)
            .collect();
        assert_eq!(
            reasons,
            vec![
                "failure rate 100.0% >= 50.0% over 2 calls",
                "wait in open of 5s elapsed",
                "half-open trial: failure rate 100.0% >= 50.0% over 1 calls",
                "wait in open of 5s elapsed",
                "half-open trial: failure rate 0.0% < 50.0% and slow-call rate 0.0% < 100.0% over 1 calls",
            ]
        );
        let stamps: Vec<u64> = breaker.transitions().iter().map(|t| t.at_unix_ms).collect();
        assert!(stamps.iter().all(|&at| at >= before), "{stamps:?}");
        assert!(
            stamps.windows(2).all(|pair| pair[0] <= pair[1]),
            "{stamps:?}"
        );
        assert_eq!(breaker.snapshot().transitions, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_permit_cannot_touch_a_later_state() {
        let breaker = CircuitBreaker::new("users", config(4, 2, 1));
        let stale_recorded = breaker.permit().unwrap();
        let stale_dropped = breaker.permit().unwrap();
        trip(&breaker);
        tokio::time::advance(WAIT).await;
        let trial = breaker.permit().unwrap();

        // Outcomes of calls from before the breaker opened neither count in
        // the trial nor free the trial's only permit.
        stale_recorded.record(Outcome::Failure, FAST);
        drop(stale_dropped);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.snapshot().calls_in_window, 0);
        assert!(breaker.permit().is_err());

        trial.record(Outcome::Success, FAST);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.snapshot().calls_in_window, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_while_open_are_dropped() {
        let breaker = CircuitBreaker::new("users", config(4, 2, 1));
        trip(&breaker);
        let before = breaker.snapshot();
        breaker.record(Outcome::Success, FAST);
        breaker.release();
        let after = breaker.snapshot();
        assert_eq!(before, after);
        assert_eq!(after.state, BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_permit_is_given_back_in_half_open() {
        let breaker = CircuitBreaker::new("users", config(4, 2, 1));
        trip(&breaker);
        tokio::time::advance(WAIT).await;
        let permit = breaker.permit().unwrap();
        assert!(breaker.permit().is_err());
        drop(permit);
        assert!(breaker.permit().is_ok());
    }

    #[test]
    fn state_reads_the_same_in_json_and_display() {
        for (state, text) in [
            (BreakerState::Closed, "CLOSED"),
            (BreakerState::Open, "OPEN"),
            (BreakerState::HalfOpen, "HALF_OPEN"),
        ] {
            assert_eq!(state.to_string(), text);
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{text}\"")
            );
            let back: BreakerState = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(back, state);
        }
    }

    #[test]
    fn snapshot_json_is_pinned() {
        let breaker = CircuitBreaker::new("users", config(4, 2, 1));
        call(&breaker, Outcome::Failure, SLOW);
        let value = serde_json::to_value(breaker.snapshot()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "name": "users",
                "state": "CLOSED",
                "calls_in_window": 1,
                "failures_in_window": 1,
                "slow_in_window": 1,
                "failure_rate": 100.0,
                "slow_call_rate": 100.0,
                "not_permitted": 0,
                "transitions": 0,
                "config": {
                    "sliding_window_size": 4,
                    "minimum_calls": 2,
                    "failure_rate_threshold": 50.0,
                    "slow_call_rate_threshold": 100.0,
                    "slow_call_duration": "100ms",
                    "wait_in_open": "5s",
                    "permitted_calls_in_half_open": 1
                }
            })
        );
    }
}
