//! Resilience for Gauntlet's inter-service calls.
//!
//! Every HTTP call one service of the reference system makes to another goes
//! through a [`Policy`]: the [`CircuitBreaker`] is asked first (an open
//! breaker fails fast without touching the target), the attempt runs under a
//! per-attempt timeout, and a transient failure is retried after a capped,
//! fully jittered, seeded [`Backoff`], but only when the caller says the call
//! may be repeated (it is idempotent or carries an idempotency key).
//!
//! The breaker follows resilience4j: a count-based sliding window judged on
//! failure rate and slow-call rate once it holds a minimum of calls; OPEN
//! for a fixed wait; a HALF_OPEN trial of a few calls that decides between
//! CLOSED and OPEN again. Every transition is kept, with its reason, for the
//! services' `/circuit-breakers` endpoint and the run report.
//!
//! All timing uses tokio's clock, so tests drive it with `time::pause()`.
//!
//! # Layout
//!
//! - `config.rs`: [`ResilienceConfig`], [`RetryConfig`], [`BreakerConfig`],
//!   their documented defaults and [`ResilienceConfig::validate`].
//! - `breaker.rs`: [`CircuitBreaker`], its states, permits, snapshots and
//!   transitions.
//! - `retry.rs`: [`Backoff`], capped exponential backoff with full jitter.
//! - `policy.rs`: [`Policy`], the three above wrapped around one call, with
//!   [`Failure`] (what an attempt reports) and [`CallError`] (what the caller
//!   gets).
//!
//! # Example
//!
//! ```
//! use gauntlet_resilience::{CallError, Failure, Policy, ResilienceConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config: ResilienceConfig =
//!     serde_json::from_str(r#"{ "timeout": "250ms", "retry": { "base_delay": "1ms" } }"#)
//!         .expect("valid config");
//! let catalog = Policy::new("catalog", config, 42);
//!
//! // The first attempt hits a restarting instance; the retry gets through.
//! let reserved: Result<&str, CallError<String>> = catalog
//!     .call(true, |attempt| async move {
//!         if attempt == 0 {
//!             Err(Failure::Transient("connection refused".to_string()))
//!         } else {
//!             Ok("reserved")
//!         }
//!     })
//!     .await;
//! assert_eq!(reserved.ok(), Some("reserved"));
//!
//! let stats = catalog.stats();
//! assert_eq!((stats.attempts, stats.retries, stats.successes), (2, 1, 1));
//! assert_eq!(catalog.breaker().snapshot().failures_in_window, 1);
//! # }
//! ```

pub mod breaker;
pub mod config;
pub mod policy;
pub mod retry;

pub use breaker::{
    BreakerSnapshot, BreakerState, CircuitBreaker, Outcome, Permit, Rejected, Transition,
};
pub use config::{
    BreakerConfig, ConfigError, ResilienceConfig, RetryConfig, DEFAULT_BASE_DELAY,
    DEFAULT_FAILURE_RATE_THRESHOLD, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_DELAY, DEFAULT_MINIMUM_CALLS,
    DEFAULT_PERMITTED_CALLS_IN_HALF_OPEN, DEFAULT_SLIDING_WINDOW_SIZE, DEFAULT_SLOW_CALL_DURATION,
    DEFAULT_SLOW_CALL_RATE_THRESHOLD, DEFAULT_TIMEOUT, DEFAULT_WAIT_IN_OPEN,
};
pub use policy::{CallError, Failure, Policy, PolicyStats};
pub use retry::Backoff;
