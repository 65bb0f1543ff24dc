//! What each flow's own history and final state say: its orders, how its
//! sagas ended, and the invariants (named `flow/invariant` when more than
//! one flow ran).

use std::collections::BTreeMap;

use gauntlet_reports::check_all;
use gauntlet_reports::invariants::InvariantResult;
use gauntlet_reports::metrics::{OrderCounts, SagaOutcomes};
use gauntlet_reports::state::FinalState;

use super::sagas::saga_outcomes;
use crate::run::leg::Leg;

/// Orders, sagas and invariants over every flow whose final state was read.
#[derive(Default)]
pub(super) struct Checked {
    pub(super) orders: OrderCounts,
    /// `None` when no flow's state was read.
    pub(super) saga: Option<SagaOutcomes>,
    pub(super) invariants: Vec<InvariantResult>,
    /// Violations per invariant, summed over the flows.
    pub(super) violations: BTreeMap<String, u64>,
}

/// Checks each leg on its own history and state; `owns` (one per leg) is
/// its own orders' state, from [`own_state`].
pub(super) fn check(legs: &[Leg], owns: &[Option<FinalState>]) -> Checked {
    let mut c = Checked::default();
    for (leg, own) in legs.iter().zip(owns) {
        let (Some(state), Some(own)) = (&leg.state, own) else {
            continue;
        };
        let o = OrderCounts::from_run(&leg.history, own);
        c.orders.placed += o.placed;
        c.orders.acknowledged += o.acknowledged;
        c.orders.confirmed += o.confirmed;
        c.orders.cancelled += o.cancelled;
        c.orders.pending += o.pending;
        c.orders.lost += o.lost;
        let s = saga_outcomes(own);
        let total = c.saga.get_or_insert_with(SagaOutcomes::default);
        total.completed += s.completed;
        total.compensated += s.compensated;
        total.failed += s.failed;
        for mut r in check_all(&leg.history, state) {
            *c.violations.entry(r.name.clone()).or_default() += r.violations;
            if legs.len() > 1 {
                r.name = format!("{}/{}", leg.flow, r.name);
            }
            c.invariants.push(r);
        }
    }
    c
}

/// This flow's own orders: on a system running elsewhere the state also
/// holds earlier runs' (and, with `both`, the other flow's).
pub(super) fn own_state(leg: &Leg, state: &FinalState) -> FinalState {
    let since = leg
        .load
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    FinalState {
        orders: state
            .orders
            .iter()
            .filter(|o| o.created_at.is_none_or(|c| c >= since))
            .cloned()
            .collect(),
        ..state.clone()
    }
}
