//! The policy a client wraps each inter-service call in: circuit breaker,
//! per-attempt timeout, and retries with backoff.
//!
//! Order of the layers, per attempt: the breaker is asked first (an open
//! breaker fails fast, before any timeout or retry), then the attempt runs
//! under its own timeout, then its outcome goes to the breaker, and only then
//! is a retry considered. So every retry is seen by the breaker, and a breaker
//! that opens half-way through a retry loop ends the loop.

use std::fmt::Display;
use std::future::Future;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::breaker::{CircuitBreaker, Outcome, Rejected};
use crate::config::ResilienceConfig;
use crate::retry::Backoff;

/// How an attempt failed, which decides retry and breaker accounting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure<E> {
    /// The target is (maybe briefly) unwell: a connection error, a 5xx, a
    /// 429. Counts as a breaker failure and may be retried.
    Transient(E),
    /// The target answered properly and the request is at fault, e.g. a 4xx.
    /// Never retried, and a breaker *success*: the target is healthy.
    Permanent(E),
}

/// Why [`Policy::call`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker refused the call: failed fast, the target was not called.
    #[error(transparent)]
    Rejected(Rejected),
    /// The last attempt timed out. Whether the target acted on it is
    /// UNKNOWN: a non-idempotent call must be checked, not blindly repeated.
    #[error("timed out after {attempts} attempt(s)")]
    Timeout {
        /// Attempts made, the timed-out one included.
        attempts: u32,
    },
    /// The last attempt failed with `error`.
    #[error("failed after {attempts} attempt(s): {error}")]
    Failed {
        /// The last attempt's error.
        error: E,
        /// Attempts made, the failed one included.
        attempts: u32,
        /// Whether the failure was transient (retries exhausted or not
        /// allowed) rather than permanent.
        transient: bool,
    },
}

/// What a policy has done since it was created.
///
/// `calls = successes + failures + rejected`, plus calls still running or
/// dropped by their caller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStats {
    /// Calls to [`Policy::call`].
    pub calls: u64,
    /// Attempts that reached the target (at least one per call not rejected).
    pub attempts: u64,
    /// Waits before a further attempt.
    pub retries: u64,
    /// Attempts that ran out of time.
    pub timeouts: u64,
    /// Calls refused by the breaker.
    pub rejected: u64,
    /// Calls that returned `Ok`.
    pub successes: u64,
    /// Calls that ended in [`CallError::Failed`] or [`CallError::Timeout`].
    pub failures: u64,
}

/// Timeout, retry and circuit breaker for calls to one target.
#[derive(Debug)]
pub struct Policy {
    name: String,
    config: ResilienceConfig,
    breaker: CircuitBreaker,
    backoff: Backoff,
    stats: Mutex<PolicyStats>,
}

impl Policy {
    /// A policy named after its target; `seed` drives the retry jitter.
    pub fn new(name: impl Into<String>, config: ResilienceConfig, seed: u64) -> Self {
        let name = name.into();
        Self {
            breaker: CircuitBreaker::new(name.clone(), config.breaker.clone()),
            backoff: Backoff::new(config.retry.clone(), seed),
            name,
            config,
            stats: Mutex::new(PolicyStats::default()),
        }
    }

    /// The policy's name (its target).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration the policy runs with.
    pub fn config(&self) -> &ResilienceConfig {
        &self.config
    }

    /// The breaker guarding the target.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Counters since the policy was created.
    pub fn stats(&self) -> PolicyStats {
        self.stats.lock().clone()
    }

    fn count(&self, bump: impl FnOnce(&mut PolicyStats)) {
        bump(&mut self.stats.lock());
    }

    /// Runs `attempt` under the breaker with a per-attempt timeout. `retryable` says whether the call
    /// may be repeated (idempotent, or carries an idempotency key); when false there is exactly one attempt.
    ///
    /// `attempt` gets the attempt number, starting at 0. Dropping the
    /// returned future mid-attempt gives the breaker permit back unrecorded.
    pub async fn call<T, E, F, Fut>(
        &self,
        retryable: bool,
        mut attempt: F,
    ) -> Result<T, CallError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
        E: Display,
    {
        self.count(|s| s.calls += 1);
        let max_attempts = if retryable {
            self.config.retry.max_attempts.max(1)
        } else {
            1
        };
        let mut number = 0;
        loop {
            let permit = match self.breaker.permit() {
                Ok(permit) => permit,
                Err(rejected) => {
                    self.count(|s| s.rejected += 1);
                    return Err(CallError::Rejected(rejected));
                }
            };
            self.count(|s| s.attempts += 1);
            let started = Instant::now();
            let result = tokio::time::timeout(self.config.timeout, attempt(number)).await;
            let elapsed = started.elapsed();
            let attempts = number + 1;
            let last = attempts >= max_attempts;
            match result {
                Ok(Ok(value)) => {
                    permit.record(Outcome::Success, elapsed);
                    self.count(|s| s.successes += 1);
                    return Ok(value);
                }
                Ok(Err(Failure::Permanent(error))) => {
                    permit.record(Outcome::Success, elapsed);
                    self.count(|s| s.failures += 1);
                    return Err(CallError::Failed {
                        error,
                        attempts,
                        transient: false,
                    });
                }
                Ok(Err(Failure::Transient(error))) => {
                    permit.record(Outcome::Failure, elapsed);
                    if last {
                        self.count(|s| s.failures += 1);
                        return Err(CallError::Failed {
                            error,
                            attempts,
                            transient: true,
                        });
                    }
                    tracing::debug!(policy = %self.name, attempt = number, %error, "attempt failed, retrying");
                }
                Err(_elapsed) => {
                    permit.record(Outcome::Failure, elapsed);
                    self.count(|s| s.timeouts += 1);
                    if last {
                        self.count(|s| s.failures += 1);
                        return Err(CallError::Timeout { attempts });
                    }
                    tracing::debug!(policy = %self.name, attempt = number, timeout = ?self.config.timeout, "attempt timed out, retrying");
                }
            }
            self.count(|s| s.retries += 1);
            tokio::time::sleep(self.backoff.delay(number)).await;
            number = attempts;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::breaker::BreakerState;
    use crate::config::{BreakerConfig, RetryConfig};

    const TIMEOUT: Duration = Duration::from_millis(200);
    const WAIT: Duration = Duration::from_secs(5);

    fn config() -> ResilienceConfig {
        ResilienceConfig {
            timeout: TIMEOUT,
            retry: RetryConfig {
                max_attempts: 3,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_secs(1),
            },
            breaker: BreakerConfig {
                sliding_window_size: 10,
                minimum_calls: 10,
                failure_rate_threshold: 50.0,
                slow_call_rate_threshold: 100.0,
                slow_call_duration: Duration::from_millis(100),
                wait_in_open: WAIT,
                permitted_calls_in_half_open: 1,
            },
        }
    }

    /// Counts how often the target is called, and with which attempt numbers.
    #[derive(Clone, Default)]
    struct Target {
        seen: Arc<Mutex<Vec<u32>>>,
    }

    impl Target {
        fn hit(&self, number: u32) {
            self.seen.lock().push(number);
        }

        fn calls(&self) -> usize {
            self.seen.lock().len()
        }

        fn numbers(&self) -> Vec<u32> {
            self.seen.lock().clone()
        }
    }

    async fn always_transient(
        policy: &Policy,
        target: &Target,
        retryable: bool,
    ) -> CallError<String> {
        let result: Result<(), _> = policy
            .call(retryable, |n| {
                target.hit(n);
                async { Err(Failure::Transient("503 Service Unavailable".to_string())) }
            })
            .await;
        result.unwrap_err()
    }

    fn trip(policy: &Policy) {
        let breaker = policy.breaker();
        while breaker.state() != BreakerState::Open {
            breaker.acquire().unwrap();
            breaker.record(Outcome::Failure, Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_takes_one_attempt() {
        let policy = Policy::new("users", config(), 1);
        let target = Target::default();
        let result: Result<u32, CallError<String>> = policy
            .call(true, |n| {
                target.hit(n);
                async { Ok(201) }
            })
            .await;
        assert_eq!(result.unwrap(), 201);
        assert_eq!(target.numbers(), vec![0]);
        assert_eq!(
            policy.stats(),
            PolicyStats {
                calls: 1,
                attempts: 1,
                successes: 1,
                ..PolicyStats::default()
            }
        );
        assert_eq!(policy.breaker().snapshot().calls_in_window, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_transient_failure_up_to_max_attempts() {
        let policy = Policy::new("catalog", config(), 1);
        let target = Target::default();
        let error = always_transient(&policy, &target, true).await;
        match error {
            CallError::Failed {
                ref error,
                attempts,
                transient,
            } => {
                assert_eq!(error, "503 Service Unavailable");
                assert_eq!(attempts, 3);
                assert!(transient);
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "failed after 3 attempt(s): 503 Service Unavailable"
        );
        assert_eq!(target.numbers(), vec![0, 1, 2]);
        let stats = policy.stats();
        assert_eq!((stats.attempts, stats.retries, stats.failures), (3, 2, 1));
        assert_eq!(policy.breaker().snapshot().failures_in_window, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn recovers_on_a_later_attempt_after_seeded_backoff() {
        let seed = 11;
        let policy = Policy::new("catalog", config(), seed);
        let target = Target::default();
        let started = Instant::now();
        let result: Result<&str, CallError<String>> = policy
            .call(true, |n| {
                target.hit(n);
                async move {
                    if n < 2 {
                        Err(Failure::Transient("connection reset".to_string()))
                    } else {
                        Ok("reserved")
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), "reserved");
        assert_eq!(target.calls(), 3);

        // The waits are the seeded draws, nothing more (the timer rounds up
        // to whole milliseconds).
        let replay = Backoff::new(config().retry, seed);
        let expected = replay.delay(0) + replay.delay(1);
        let waited = started.elapsed();
        assert!(
            waited >= expected && waited <= expected + Duration::from_millis(3),
            "waited {waited:?}, expected {expected:?}"
        );
        let stats = policy.stats();
        assert_eq!((stats.retries, stats.successes, stats.failures), (2, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_when_not_retryable() {
        let policy = Policy::new("payments", config(), 1);
        let target = Target::default();
        let error = always_transient(&policy, &target, false).await;
        assert!(
            matches!(
                error,
                CallError::Failed {
                    attempts: 1,
                    transient: true,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(target.calls(), 1);
        assert_eq!(policy.stats().retries, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried_nor_held_against_the_target() {
        let policy = Policy::new("users", config(), 1);
        let target = Target::default();
        for _ in 0..20 {
            let result: Result<(), CallError<String>> = policy
                .call(true, |n| {
                    target.hit(n);
                    async { Err(Failure::Permanent("404 Not Found".to_string())) }
                })
                .await;
            let error = result.unwrap_err();
            assert!(
                matches!(
                    error,
                    CallError::Failed {
                        attempts: 1,
                        transient: false,
                        ..
                    }
                ),
                "{error:?}"
            );
        }
        assert_eq!(target.calls(), 20);
        let snapshot = policy.breaker().snapshot();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.calls_in_window, 10);
        assert_eq!(snapshot.failures_in_window, 0);
        let stats = policy.stats();
        assert_eq!(
            (stats.calls, stats.attempts, stats.retries, stats.failures),
            (20, 20, 0, 20)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_attempt_times_out() {
        let policy = Policy::new("provider", config(), 1);
        let target = Target::default();
        let started = Instant::now();
        let result: Result<(), CallError<String>> = policy
            .call(false, |n| {
                target.hit(n);
                async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(())
                }
            })
            .await;
        let error = result.unwrap_err();
        assert!(
            matches!(error, CallError::Timeout { attempts: 1 }),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "timed out after 1 attempt(s)");
        // Gave up at the timeout, not when the target would have answered.
        let waited = started.elapsed();
        assert!(
            waited >= TIMEOUT && waited < TIMEOUT + Duration::from_millis(5),
            "{waited:?}"
        );
        let stats = policy.stats();
        assert_eq!((stats.timeouts, stats.failures, stats.successes), (1, 1, 0));
        // A timeout is a failure, and slow, for the breaker.
        let snapshot = policy.breaker().snapshot();
        assert_eq!(
            (snapshot.failures_in_window, snapshot.slow_in_window),
            (1, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_after_a_timeout() {
        let policy = Policy::new("provider", config(), 1);
        let target = Target::default();
        let result: Result<u32, CallError<String>> = policy
            .call(true, |n| {
                target.hit(n);
                async move {
                    if n == 0 {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    Ok(n)
                }
            })
            .await;
        assert_eq!(result.unwrap(), 1);
        let stats = policy.stats();
        assert_eq!(
            (
                stats.attempts,
                stats.timeouts,
                stats.retries,
                stats.successes
            ),
            (2, 1, 1, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_rejects_without_calling_the_target() {
        let policy = Policy::new("users", config(), 1);
        trip(&policy);
        let target = Target::default();
        let error = always_transient(&policy, &target, true).await;
        match &error {
            CallError::Rejected(rejected) => {
                assert_eq!(rejected.name, "users");
                assert_eq!(rejected.state, BreakerState::Open);
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "circuit breaker users is OPEN: call not permitted"
        );
        assert_eq!(target.calls(), 0);
        let stats = policy.stats();
        assert_eq!((stats.calls, stats.attempts, stats.rejected), (1, 0, 1));
        assert_eq!(policy.breaker().snapshot().not_permitted, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_breaker_opening_mid_retry_ends_the_retries() {
        let mut config = config();
        config.retry.max_attempts = 10;
        config.breaker.minimum_calls = 2;
        config.breaker.sliding_window_size = 2;
        let policy = Policy::new("orders", config, 1);
        let target = Target::default();
        let error = always_transient(&policy, &target, true).await;
        assert!(matches!(error, CallError::Rejected(_)), "{error:?}");
        assert_eq!(target.calls(), 2);
        let stats = policy.stats();
        assert_eq!((stats.attempts, stats.retries, stats.rejected), (2, 2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn stats_add_up_over_mixed_calls() {
        let policy = Policy::new("payments", config(), 1);
        let target = Target::default();
        let ok: Result<(), CallError<String>> = policy.call(true, |_| async { Ok(()) }).await;
        assert!(ok.is_ok());
        let permanent: Result<(), CallError<String>> = policy
            .call(true, |_| async {
                Err(Failure::Permanent("409".to_string()))
            })
            .await;
        assert!(permanent.is_err());
        always_transient(&policy, &target, true).await;
        trip(&policy);
        always_transient(&policy, &target, true).await;

        assert_eq!(
            policy.stats(),
            PolicyStats {
                calls: 4,
                attempts: 5,
                retries: 2,
                timeouts: 0,
                rejected: 1,
                successes: 1,
                failures: 2,
            }
        );
        let json = serde_json::to_value(policy.stats()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "calls": 4, "attempts": 5, "retries": 2, "timeouts": 0,
                "rejected": 1, "successes": 1, "failures": 2
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_call_gives_its_permit_back() {
        let policy = Policy::new("provider", config(), 1);
        trip(&policy);
        tokio::time::advance(WAIT).await;
        let started = Arc::new(AtomicU32::new(0));

        // The caller gives up (say, its own client disconnected) while the
        // only half-open attempt is in flight.
        let call = policy.call(true, |_| {
            started.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), Failure<String>>>()
        });
        let outcome = tokio::time::timeout(Duration::from_millis(10), call).await;
        assert!(outcome.is_err(), "the call should still have been running");
        assert_eq!(started.load(Ordering::SeqCst), 1);

        // No outcome was recorded, and the trial permit is free again.
        let breaker = policy.breaker();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.snapshot().calls_in_window, 0);
        assert_eq!(breaker.acquire(), Ok(()));
    }

    #[test]
    fn policy_and_its_call_future_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        fn assert_send<T: Send>(_: &T) {}
        let policy = Policy::new("users", config(), 1);
        assert_send_sync(&policy);
        let call = policy.call(true, |_| async { Ok::<_, Failure<String>>(()) });
        assert_send(&call);
    }
}
