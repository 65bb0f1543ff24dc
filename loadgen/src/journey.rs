//! The user journeys, and the seeded choices each one makes.
//!
//! A journey's choices come from its own RNG, seeded by the run's seed and
//! the journey's number (the open model's arrival index), so one seed gives
//! the same journeys whichever goose user happens to run them.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::{LoadConfig, Mix};

/// What a journey does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JourneyKind {
    /// Sign a new customer up.
    CreateUser,
    /// List the products.
    Browse,
    /// Place an order as a known customer.
    PlaceOrder,
    /// Place an order, and follow it to a terminal state when it was
    /// answered pending.
    PollOrder,
}

/// The choices of one journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyPlan {
    /// The journey's number.
    pub index: u64,
    pub kind: JourneyKind,
    /// The new customer's name (create user).
    pub name: &'static str,
    /// Picks the customer: an index into the customers, modulo their count.
    pub customer_draw: u32,
    /// Picks the product: an index into the catalog, modulo its size.
    pub product_draw: u32,
    /// Units ordered, 1 to `max_quantity`.
    pub quantity: u32,
}

/// Names for the customers the load signs up.
const NAMES: [&str; 12] = [
    "Ada", "Alan", "Barbara", "Dennis", "Edsger", "Frances", "Grace", "Ken", "Leslie", "Margaret",
    "Niklaus", "Radia",
];

/// Draws journeys for one run.
#[derive(Debug, Clone)]
pub struct Planner {
    seed: u64,
    mix: Mix,
    max_quantity: u32,
}

impl Planner {
    /// The planner of `config`'s run.
    pub fn new(config: &LoadConfig) -> Self {
        Planner {
            seed: config.seed,
            mix: config.mix,
            max_quantity: config.max_quantity.max(1),
        }
    }

    /// Journey `index`'s choices: a pure function of the seed, the mix and
    /// the index.
    pub fn plan(&self, index: u64) -> JourneyPlan {
        let mut rng = StdRng::seed_from_u64(splitmix64(self.seed ^ splitmix64(index)));
        let total = self.mix.total().max(1);
        let draw = rng.gen_range(0..total);
        let kind = if draw < u64::from(self.mix.create_user) {
            JourneyKind::CreateUser
        } else if draw < u64::from(self.mix.create_user) + u64::from(self.mix.browse) {
            JourneyKind::Browse
        } else if draw
            < u64::from(self.mix.create_user)
                + u64::from(self.mix.browse)
                + u64::from(self.mix.place_order)
        {
            JourneyKind::PlaceOrder
        } else {
            JourneyKind::PollOrder
        };
        JourneyPlan {
            index,
            kind,
            name: NAMES[rng.gen_range(0..NAMES.len())],
            customer_draw: rng.gen(),
            product_draw: rng.gen(),
            quantity: rng.gen_range(1..=self.max_quantity),
        }
    }

    /// The first `n` journeys of the open model, in arrival order.
    pub fn sequence(&self, n: u64) -> Vec<JourneyPlan> {
        (0..n).map(|i| self.plan(i)).collect()
    }
}

/// The closed model's journey number: the user's number in the high half,
/// its count of journeys in the low half.
pub(crate) fn closed_index(user: usize, count: u64) -> u64 {
    ((user as u64) << 32) | (count & 0xffff_ffff)
}

/// A well-mixed 64-bit hash (SplitMix64's finaliser), so neighbouring
/// seeds and indices give unrelated RNG streams.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Model, DEFAULT_EXPECTED_LATENCY};

    fn config(seed: u64) -> LoadConfig {
        let mut c = LoadConfig::new(
            "http://127.0.0.1:1",
            Model::Open {
                start_rate: 1.0,
                stages: vec![],
                warmup_rate: None,
                max_users: None,
                expected_latency: DEFAULT_EXPECTED_LATENCY,
            },
        );
        c.seed = seed;
        c
    }

    #[test]
    fn one_seed_gives_one_sequence() {
        let a = Planner::new(&config(42)).sequence(500);
        let b = Planner::new(&config(42)).sequence(500);
        let c = Planner::new(&config(43)).sequence(500);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_mix_is_followed() {
        let mut c = config(1);
        c.mix = Mix {
            create_user: 1,
            browse: 0,
            place_order: 3,
            poll_order: 0,
        };
        c.max_quantity = 3;
        let plans = Planner::new(&c).sequence(4000);
        let orders = plans
            .iter()
            .filter(|p| p.kind == JourneyKind::PlaceOrder)
            .count();
        assert!(!plans.iter().any(|p| p.kind == JourneyKind::Browse));
        assert!((2800..3200).contains(&orders), "{orders}");
        assert!(plans.iter().all(|p| (1..=3).contains(&p.quantity)));
    }

    #[test]
    fn closed_indices_do_not_collide() {
        assert_ne!(closed_index(1, 0), closed_index(0, 1));
        assert_eq!(closed_index(2, 5), (2 << 32) | 5);
    }
}
