//! The payment provider's injected behaviour: the body of its
//! `PUT /admin/faults`, a scenario's `[system.provider]` and a `provider`
//! fault step alike.

use serde::{Deserialize, Serialize};

/// The provider's injected behaviour. Rates are probabilities in [0, 1];
/// unset keys are 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderFaults {
    /// Requests answered `503 provider unavailable` without charging.
    pub failure_rate: f64,
    /// Charges declined (`402`): a business failure, not an outage.
    pub decline_rate: f64,
    /// Fixed delay before answering, in milliseconds.
    pub latency_ms: u64,
    /// Uniform jitter added to the delay, ± this many milliseconds.
    pub jitter_ms: u64,
    /// Charges carried out whose reply is then lost: the connection is
    /// dropped without an answer. Applies when a charge is first made, never
    /// to a replay of an idempotency key already charged.
    pub lost_reply_rate: f64,
}

/// A rate outside [0, 1].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} must be between 0 and 1, got {value}")]
pub struct RateOutOfRange {
    /// The key, e.g. `failure_rate`.
    pub name: &'static str,
    pub value: f64,
}

impl ProviderFaults {
    /// The first rate outside [0, 1], if any.
    pub fn validate(&self) -> Result<(), RateOutOfRange> {
        for (name, value) in [
            ("failure_rate", self.failure_rate),
            ("decline_rate", self.decline_rate),
            ("lost_reply_rate", self.lost_reply_rate),
        ] {
            if !(0.0..=1.0).contains(&value) || value.is_nan() {
                return Err(RateOutOfRange { name, value });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_outside_zero_to_one_are_named() {
        assert!(ProviderFaults::default().validate().is_ok());
        let bad = ProviderFaults {
            decline_rate: 1.5,
            ..ProviderFaults::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "decline_rate must be between 0 and 1, got 1.5"
        );
        let nan = ProviderFaults {
            lost_reply_rate: f64::NAN,
            ..ProviderFaults::default()
        };
        assert_eq!(nan.validate().unwrap_err().name, "lost_reply_rate");
    }
}
