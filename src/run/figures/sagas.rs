//! How each order's saga ended, read from the final state.

use std::collections::HashSet;

use gauntlet_reports::metrics::SagaOutcomes;
use gauntlet_reports::state::{FinalState, Order, CANCELLED, CONFIRMED};

/// How one saga ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SagaEnd {
    Completed,
    Compensated,
    Failed,
}

/// Tells how each order's saga ended, from the final state: a cancelled
/// order whose saga had taken stock or money (and gave it back) was
/// compensated; one that had taken nothing simply failed.
pub(super) struct SagaJudge {
    took_stock: HashSet<i64>,
    took_money: HashSet<i64>,
}

impl SagaJudge {
    pub(super) fn new(state: &FinalState) -> Self {
        SagaJudge {
            took_stock: state
                .reservations
                .iter()
                .filter(|r| r.product_id != 0)
                .map(|r| r.order_id)
                .collect(),
            took_money: state
                .charges
                .iter()
                .filter(|c| c.took_money())
                .filter_map(|c| c.order_id)
                .collect(),
        }
    }

    /// `None` for an order that is not terminal.
    pub(super) fn judge(&self, o: &Order) -> Option<SagaEnd> {
        match o.status.as_str() {
            CONFIRMED => Some(SagaEnd::Completed),
            CANCELLED if self.took_stock.contains(&o.id) || self.took_money.contains(&o.id) => {
                Some(SagaEnd::Compensated)
            }
            CANCELLED => Some(SagaEnd::Failed),
            _ => None,
        }
    }
}

/// Counts one saga's end in `s`.
pub(super) fn tally(s: &mut SagaOutcomes, end: SagaEnd) {
    match end {
        SagaEnd::Completed => s.completed += 1,
        SagaEnd::Compensated => s.compensated += 1,
        SagaEnd::Failed => s.failed += 1,
    }
}

/// How sagas ended, from the final state (see [`SagaJudge`]).
pub(super) fn saga_outcomes(state: &FinalState) -> SagaOutcomes {
    let judge = SagaJudge::new(state);
    let mut s = SagaOutcomes::default();
    for end in state.orders.iter().filter_map(|o| judge.judge(o)) {
        tally(&mut s, end);
    }
    s
}
