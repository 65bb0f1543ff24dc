//! The journeys a load is made of, by weight.

use serde::{Deserialize, Serialize};

/// The journey weights when a scenario names no `[load.mix]`: mostly
/// ordering, as the harness is about the order flow, with enough browsing
/// and polling to load the read paths.
pub const DEFAULT_MIX: Mix = Mix {
    create_user: 1,
    browse: 3,
    place_order: 5,
    poll_order: 1,
};

/// Journey weights: each journey is picked with probability
/// weight / sum of weights. Weights left out of a `[load.mix]` are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Register a new customer (`POST /api/users`).
    #[serde(default)]
    pub create_user: u32,
    /// List products (`GET /api/products`).
    #[serde(default)]
    pub browse: u32,
    /// Place an order by a known customer (`POST /api/orders`).
    #[serde(default)]
    pub place_order: u32,
    /// Place an order, then read it (`GET /api/orders/{id}`) every poll
    /// interval until it is terminal, when it was answered pending.
    #[serde(default)]
    pub poll_order: u32,
}

impl Default for Mix {
    fn default() -> Self {
        DEFAULT_MIX
    }
}

impl Mix {
    /// The sum of the weights.
    pub fn total(&self) -> u64 {
        u64::from(self.create_user)
            + u64::from(self.browse)
            + u64::from(self.place_order)
            + u64::from(self.poll_order)
    }

    /// True when some journey places orders.
    pub fn orders(&self) -> bool {
        self.place_order > 0 || self.poll_order > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_left_out_are_zero_and_the_default_is_mostly_orders() {
        let mix: Mix = serde_json::from_str(r#"{"browse": 2}"#).unwrap();
        assert_eq!(mix.total(), 2);
        assert!(!mix.orders());
        assert_eq!(Mix::default().total(), 10);
        assert!(Mix::default().orders());
        assert!(serde_json::from_str::<Mix>(r#"{"browze": 2}"#).is_err());
    }
}
