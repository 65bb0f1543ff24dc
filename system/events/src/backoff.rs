//! Capped exponential backoff with full jitter, from a seeded generator.
//!
//! The n-th retry waits a uniformly random time in `[0, min(max, base·2ⁿ⁻¹)]`
//! ("full jitter"): retries of many consumers spread out instead of arriving
//! together, and the same seed gives the same delays, so a run can be
//! reproduced.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Attempts a handler gets before a message is dead-lettered.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// First retry waits up to this long: a blip (a busy database) passes.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(20);
/// No retry waits longer: a partition is held up at most about
/// `max_attempts × max_delay` by one failing message.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(1);

/// How a failing message is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Handler attempts per message, the first included (at least 1). When
    /// the last one fails transiently the message is dead-lettered.
    pub max_attempts: u32,
    /// Upper bound of the first retry's delay (humantime, e.g. "20ms").
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    /// Upper bound of any retry's delay (humantime, e.g. "1s").
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Seeds the jitter.
    pub seed: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            seed: 1,
        }
    }
}

/// A stream of retry delays.
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    rng: StdRng,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration, seed: u64) -> Self {
        Self {
            base,
            max: max.max(base),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The delay before retry number `retry` (1 = the first retry).
    pub(crate) fn delay(&mut self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let cap = self.base.saturating_mul(1u32 << exp).min(self.max);
        let cap_us = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.gen_range(0..=cap_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_exponential_cap() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(100), 7);
        for retry in 1..40 {
            let cap = Duration::from_millis(10 * (1u64 << (retry - 1).min(20)))
                .min(Duration::from_millis(100));
            let d = b.delay(retry);
            assert!(d <= cap, "retry {retry}: {d:?} > {cap:?}");
        }
    }

    #[test]
    fn same_seed_same_delays_and_jitter_varies() {
        let run = |seed| {
            let mut b = Backoff::new(Duration::from_millis(50), Duration::from_secs(1), seed);
            (1..=8).map(|r| b.delay(r)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let delays = run(3);
        assert!(delays.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn settings_parse_humantime() {
        let s: RetrySettings = serde_json::from_str(
            r#"{"max_attempts":3,"base_delay":"5ms","max_delay":"2s","seed":9}"#,
        )
        .expect("parses");
        assert_eq!(s.base_delay, Duration::from_millis(5));
        assert_eq!(s.max_delay, Duration::from_secs(2));
        assert!(serde_json::from_str::<RetrySettings>(r#"{"attempts":3}"#).is_err());
    }
}
