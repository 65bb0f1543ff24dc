//! Configuration of a resilience policy: per-attempt timeout, retry and
//! circuit breaker.
//!
//! Every struct takes its defaults from the documented constants below, so a
//! scenario only names what it changes. Durations are humantime strings
//! ("250ms", "5s"); unknown keys are rejected so a misspelt key fails loudly
//! instead of silently keeping its default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default per-attempt timeout: well above a healthy service's p99 on
/// loopback (a few ms), well below a user's patience for the whole saga.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default total attempts, first included: two retries ride out a restart or
/// a dropped connection without tripling the load on a target that is down.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default backoff base: long enough to let a connection pool recover, short
/// enough that a single retry costs little latency.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(50);
/// Default backoff cap: retries never wait longer than this, so a retried
/// call still fits inside a caller's own timeout.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(1);
/// Default window size: the last 20 calls, enough for a rate to mean
/// something, small enough to react within a second under load.
pub const DEFAULT_SLIDING_WINDOW_SIZE: u32 = 20;
/// Default minimum calls: no verdict on fewer than 10 calls, so two early
/// failures cannot open the breaker at a 100% rate.
pub const DEFAULT_MINIMUM_CALLS: u32 = 10;
/// Default failure-rate threshold (percent): half the calls failing means
/// the target is more broken than working.
pub const DEFAULT_FAILURE_RATE_THRESHOLD: f64 = 50.0;
/// Default slow-call-rate threshold (percent): open only when every call in
/// the window is slow; slowness alone is usually load, not breakage.
pub const DEFAULT_SLOW_CALL_RATE_THRESHOLD: f64 = 100.0;
/// Default slow-call duration: half the default timeout, so a target drifting
/// towards timeouts is noticed before calls start timing out.
pub const DEFAULT_SLOW_CALL_DURATION: Duration = Duration::from_secs(1);
/// Default wait in OPEN: long enough for a restarted service to come back,
/// short enough that a scenario sees recovery within its run.
pub const DEFAULT_WAIT_IN_OPEN: Duration = Duration::from_secs(5);
/// Default trial calls in HALF_OPEN: a few calls, so one unlucky call does
/// not decide, and a still-broken target sees only a trickle.
pub const DEFAULT_PERMITTED_CALLS_IN_HALF_OPEN: u32 = 3;

/// Everything one caller applies to its calls to one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceConfig {
    /// Deadline of a single attempt (not of the whole call with its retries).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How failed attempts are repeated.
    pub retry: RetryConfig,
    /// When to stop calling a failing target.
    pub breaker: BreakerConfig,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// Retry with capped exponential backoff and full jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Total attempts, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// Cap of the delay before the first retry; doubles with each retry.
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    /// Upper bound of any delay, however many retries came before.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

/// A count-based circuit breaker with resilience4j's semantics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Number of most recent calls (outcomes) the CLOSED state judges.
    pub sliding_window_size: u32,
    /// Calls the window must hold before any rate is judged (calls); values
    /// above `sliding_window_size` act as `sliding_window_size`.
    pub minimum_calls: u32,
    /// Percent of failed calls at or above which the breaker opens.
    pub failure_rate_threshold: f64,
    /// Percent of slow calls at or above which the breaker opens.
    pub slow_call_rate_threshold: f64,
    /// A call that takes longer than this is slow, whatever its outcome.
    #[serde(with = "humantime_serde")]
    pub slow_call_duration: Duration,
    /// How long the breaker stays OPEN before letting trial calls through.
    #[serde(with = "humantime_serde")]
    pub wait_in_open: Duration,
    /// Trial calls let through in HALF_OPEN; their rates decide the next state.
    pub permitted_calls_in_half_open: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            sliding_window_size: DEFAULT_SLIDING_WINDOW_SIZE,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            failure_rate_threshold: DEFAULT_FAILURE_RATE_THRESHOLD,
            slow_call_rate_threshold: DEFAULT_SLOW_CALL_RATE_THRESHOLD,
            slow_call_duration: DEFAULT_SLOW_CALL_DURATION,
            wait_in_open: DEFAULT_WAIT_IN_OPEN,
            permitted_calls_in_half_open: DEFAULT_PERMITTED_CALLS_IN_HALF_OPEN,
        }
    }
}

/// Every problem found in a [`ResilienceConfig`], reported in one go.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid resilience config: {}", problems.join("; "))]
pub struct ConfigError {
    /// One entry per bad key: the key, its value, and what it must be.
    pub problems: Vec<String>,
}

impl ResilienceConfig {
    /// Checks every key and reports all the bad ones together.
    ///
    /// The policy never panics on a bad config (it clamps counts to at least
    /// one), but a scenario should call this at load time so a typo such as a
    /// zero timeout is reported instead of quietly failing every call.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.timeout.is_zero() {
            problems.push("timeout = 0s: must be greater than zero".to_string());
        }
        let retry = &self.retry;
        if retry.max_attempts == 0 {
            problems.push("retry.max_attempts = 0: must be at least 1 (1 = no retry)".to_string());
        }
        if retry.base_delay > retry.max_delay {
            problems.push(format!(
                "retry.base_delay = {:?} exceeds retry.max_delay = {:?}: raise max_delay or lower base_delay",
                retry.base_delay, retry.max_delay
            ));
        }
        let breaker = &self.breaker;
        for (key, value) in [
            ("breaker.sliding_window_size", breaker.sliding_window_size),
            ("breaker.minimum_calls", breaker.minimum_calls),
            (
                "breaker.permitted_calls_in_half_open",
                breaker.permitted_calls_in_half_open,
            ),
        ] {
            if value == 0 {
                problems.push(format!("{key} = 0: must be at least 1"));
            }
        }
        for (key, value) in [
            (
                "breaker.failure_rate_threshold",
                breaker.failure_rate_threshold,
            ),
            (
                "breaker.slow_call_rate_threshold",
                breaker.slow_call_rate_threshold,
            ),
        ] {
            // Written so that NaN fails too.
            if !(value > 0.0 && value <= 100.0) {
                problems.push(format!("{key} = {value}: must be a percent in (0, 100]"));
            }
        }
        if breaker.slow_call_duration.is_zero() {
            problems.push(
                "breaker.slow_call_duration = 0s: must be greater than zero, or every call is slow"
                    .to_string(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_documented_values() {
        let config = ResilienceConfig::default();
        assert_eq!(config.timeout, Duration::from_secs(2));
        assert_eq!(config.retry.max_attempts, 3);
        assert_eq!(config.retry.base_delay, Duration::from_millis(50));
        assert_eq!(config.retry.max_delay, Duration::from_secs(1));
        let breaker = &config.breaker;
        assert_eq!(breaker.sliding_window_size, 20);
        assert_eq!(breaker.minimum_calls, 10);
        assert_eq!(breaker.failure_rate_threshold, 50.0);
        assert_eq!(breaker.slow_call_rate_threshold, 100.0);
        assert_eq!(breaker.slow_call_duration, Duration::from_secs(1));
        assert_eq!(breaker.wait_in_open, Duration::from_secs(5));
        assert_eq!(breaker.permitted_calls_in_half_open, 3);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn default_json_is_pinned() {
        let value = serde_json::to_value(ResilienceConfig::default()).unwrap();
        assert_eq!(
            value,
            json!({
                "timeout": "2s",
                "retry": { "max_attempts": 3, "base_delay": "50ms", "max_delay": "1s" },
                "breaker": {
                    "sliding_window_size": 20,
                    "minimum_calls": 10,
                    "failure_rate_threshold": 50.0,
                    "slow_call_rate_threshold": 100.0,
                    "slow_call_duration": "1s",
                    "wait_in_open": "5s",
                    "permitted_calls_in_half_open": 3
                }
            })
        );
    }

    #[test]
    fn custom_config_round_trips_through_json() {
        let text = r#"{
            "timeout": "250ms",
            "retry": { "max_attempts": 5, "base_delay": "10ms", "max_delay": "2s" },
            "breaker": {
                "sliding_window_size": 8,
                "minimum_calls": 4,
                "failure_rate_threshold": 25.5,
                "slow_call_rate_threshold": 80.0,
                "slow_call_duration": "300ms",
                "wait_in_open": "1m",
                "permitted_calls_in_half_open": 2
            }
        }"#;
        let config: ResilienceConfig = serde_json::from_str(text).unwrap();
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert_eq!(config.retry.max_attempts, 5);
        assert_eq!(config.breaker.wait_in_open, Duration::from_secs(60));
        assert_eq!(config.breaker.failure_rate_threshold, 25.5);

        let written = serde_json::to_value(&config).unwrap();
        assert_eq!(written["timeout"], json!("250ms"));
        assert_eq!(written["breaker"]["slow_call_duration"], json!("300ms"));
        assert_eq!(written["breaker"]["wait_in_open"], json!("1m"));
        let again: ResilienceConfig = serde_json::from_value(written).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn missing_keys_take_their_defaults() {
        let config: ResilienceConfig =
            serde_json::from_str(r#"{ "timeout": "300ms", "breaker": { "minimum_calls": 4 } }"#)
                .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(300));
        assert_eq!(config.retry, RetryConfig::default());
        assert_eq!(config.breaker.minimum_calls, 4);
        assert_eq!(
            config.breaker.sliding_window_size,
            DEFAULT_SLIDING_WINDOW_SIZE
        );
        let empty: ResilienceConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, ResilienceConfig::default());
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        let top = serde_json::from_str::<ResilienceConfig>(r#"{ "timeuot": "1s" }"#).unwrap_err();
        assert!(top.to_string().contains("unknown field `timeuot`"), "{top}");
        let nested = serde_json::from_str::<ResilienceConfig>(r#"{ "retry": { "attempts": 2 } }"#)
            .unwrap_err();
        assert!(
            nested.to_string().contains("unknown field `attempts`"),
            "{nested}"
        );
        let breaker = serde_json::from_str::<BreakerConfig>(r#"{ "window": 2 }"#).unwrap_err();
        assert!(
            breaker.to_string().contains("unknown field `window`"),
            "{breaker}"
        );
    }

    #[test]
    fn durations_must_be_humantime_strings() {
        assert!(serde_json::from_str::<ResilienceConfig>(r#"{ "timeout": 2 }"#).is_err());
        assert!(serde_json::from_str::<ResilienceConfig>(r#"{ "timeout": "2 parsecs" }"#).is_err());
    }

    #[test]
    fn validate_reports_every_bad_key_at_once() {
        let mut config = ResilienceConfig {
            timeout: Duration::ZERO,
            ..ResilienceConfig::default()
        };
        config.retry.max_attempts = 0;
        config.retry.base_delay = Duration::from_secs(3);
        config.breaker.sliding_window_size = 0;
        config.breaker.failure_rate_threshold = 0.0;
        config.breaker.slow_call_rate_threshold = f64::NAN;
        config.breaker.permitted_calls_in_half_open = 0;
        let error = config.validate().unwrap_err();
        let text = error.to_string();
        for key in [
            "timeout",
            "retry.max_attempts",
            "retry.base_delay",
            "breaker.sliding_window_size",
            "breaker.failure_rate_threshold",
            "breaker.slow_call_rate_threshold",
            "breaker.permitted_calls_in_half_open",
        ] {
            assert!(text.contains(key), "{key} missing from: {text}");
        }
        assert_eq!(error.problems.len(), 7, "{text}");
    }
}
