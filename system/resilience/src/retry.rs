//! Capped exponential backoff with full jitter.
//!
//! Before retry `n` (0 for the first retry) a caller waits a delay drawn
//! uniformly from `[0, min(max_delay, base_delay * 2^n)]`. Full jitter rather
//! than a fixed or "equal" jitter because it spreads the retries of many
//! callers that failed together the most, so they do not come back in a herd.
//! The generator is seeded from the scenario, so a run can be replayed.

use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::RetryConfig;

/// Draws retry delays; shared by every call of one policy.
#[derive(Debug)]
pub struct Backoff {
    config: RetryConfig,
    rng: Mutex<StdRng>,
}

impl Backoff {
    /// A backoff whose delays are fully determined by `config` and `seed`
    /// (and by the order in which they are drawn).
    pub fn new(config: RetryConfig, seed: u64) -> Self {
        Self {
            config,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// The retry settings.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// The largest delay before retry `retry`: `min(max_delay, base_delay * 2^retry)`,
    /// saturating at `max_delay` instead of overflowing.
    pub fn cap(&self, retry: u32) -> Duration {
        let RetryConfig {
            base_delay,
            max_delay,
            ..
        } = self.config;
        if base_delay.is_zero() {
            // Zero times any power of two, even one too big to compute.
            return Duration::ZERO;
        }
        1u32.checked_shl(retry)
            .and_then(|factor| base_delay.checked_mul(factor))
            .map_or(max_delay, |delay| delay.min(max_delay))
    }

    /// A delay drawn uniformly from `[0, cap(retry)]`; `retry` starts at 0.
    pub fn delay(&self, retry: u32) -> Duration {
        // Nanosecond resolution; a cap beyond u64 nanoseconds (584 years)
        // is as good as 584 years.
        let cap = u64::try_from(self.cap(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.lock().gen_range(0..=cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RetryConfig {
        RetryConfig {
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        }
    }

    fn draw(backoff: &Backoff, count: u32) -> Vec<Duration> {
        (0..count).map(|retry| backoff.delay(retry % 8)).collect()
    }

    #[test]
    fn same_seed_gives_same_delays() {
        let first = draw(&Backoff::new(config(), 42), 50);
        let second = draw(&Backoff::new(config(), 42), 50);
        assert_eq!(first, second);
        let other = draw(&Backoff::new(config(), 43), 50);
        assert_ne!(first, other);
    }

    #[test]
    fn cap_doubles_then_saturates_at_max_delay() {
        let backoff = Backoff::new(config(), 1);
        let caps: Vec<u64> = (0..8)
            .map(|retry| backoff.cap(retry).as_millis() as u64)
            .collect();
        assert_eq!(caps, vec![50, 100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn every_delay_lies_within_its_cap() {
        let backoff = Backoff::new(config(), 7);
        for retry in 0..12 {
            for _ in 0..200 {
                let delay = backoff.delay(retry);
                assert!(delay <= backoff.cap(retry), "retry {retry}: {delay:?}");
            }
        }
    }

    #[test]
    fn jitter_is_full_not_partial() {
        // Full jitter reaches both ends of [0, cap]; "equal jitter" would
        // never go below half the cap.
        let backoff = Backoff::new(config(), 9);
        let delays: Vec<Duration> = (0..1000).map(|_| backoff.delay(4)).collect();
        let low = delays.iter().min().copied().unwrap_or_default();
        let high = delays.iter().max().copied().unwrap_or_default();
        assert!(low < Duration::from_millis(40), "lowest {low:?}");
        assert!(high > Duration::from_millis(760), "highest {high:?}");
    }

    #[test]
    fn huge_retry_numbers_saturate_without_panicking() {
        let backoff = Backoff::new(config(), 3);
        for retry in [31, 32, 33, 63, 64, 1000, u32::MAX] {
            assert_eq!(backoff.cap(retry), Duration::from_secs(1));
            assert!(backoff.delay(retry) <= Duration::from_secs(1));
        }
        // A base so big that doubling it overflows Duration.
        let huge = Backoff::new(
            RetryConfig {
                max_attempts: 3,
                base_delay: Duration::MAX,
                max_delay: Duration::MAX,
            },
            3,
        );
        assert_eq!(huge.cap(1000), Duration::MAX);
        let _ = huge.delay(1000);
    }

    #[test]
    fn zero_base_delay_means_no_wait() {
        let backoff = Backoff::new(
            RetryConfig {
                base_delay: Duration::ZERO,
                ..config()
            },
            5,
        );
        assert_eq!(backoff.delay(0), Duration::ZERO);
        assert_eq!(backoff.delay(1000), Duration::ZERO);
    }

    #[test]
    fn max_delay_below_base_delay_still_caps() {
        let backoff = Backoff::new(
            RetryConfig {
                base_delay: Duration::from_secs(2),
                max_delay: Duration::from_millis(300),
                ..config()
            },
            5,
        );
        assert_eq!(backoff.cap(0), Duration::from_millis(300));
        assert!(backoff.delay(0) <= Duration::from_millis(300));
    }
}
