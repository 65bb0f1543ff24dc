//! Orders no client acknowledgment covers are terminal: a placement whose
//! outcome was unknown at the client (a timeout, a dropped connection) or
//! that failed may still have created an order; if it did, that order must
//! have been seen through to `CONFIRMED` or `CANCELLED`, not left hanging.

use std::collections::HashSet;

use super::{Checker, InvariantResult, Tally};
use crate::history::{History, Outcome};
use crate::state::FinalState;

pub(super) const CHECKER: Checker = Checker {
    name: "unknown_orders",
    rule: "every order no client acknowledgment covers is terminal",
    check,
};

fn check(history: &History, state: &FinalState) -> InvariantResult {
    let mut t = Tally::new(CHECKER.name);
    let acked: HashSet<i64> = history
        .placements()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| o.order_id)
        .collect();
    let unknown: Vec<_> = history
        .placements()
        .filter(|o| o.outcome == Outcome::Unknown)
        .collect();
    let unknown_ids: HashSet<i64> = unknown.iter().filter_map(|o| o.order_id).collect();
    let unknown_keys: HashSet<&str> = unknown
        .iter()
        .filter_map(|o| o.idempotency_key.as_deref())
        .collect();
    let mut from_unknown = 0;
    let mut others = 0;
    for o in state.orders.iter().filter(|o| !acked.contains(&o.id)) {
        t.checked(1);
        let was_unknown = unknown_ids.contains(&o.id)
            || o.idempotency_key
                .as_deref()
                .is_some_and(|k| unknown_keys.contains(k));
        if was_unknown {
            from_unknown += 1;
        } else {
            others += 1;
        }
        if !o.is_terminal() {
            let why = if was_unknown {
                "whose placement was unknown at the client"
            } else {
                "acknowledged to no client"
            };
            t.violation(o.id, || {
                format!(
                    "order {}, {why}, is still {} (saga at {})",
                    o.id, o.status, o.saga_step
                )
            });
        }
    }
    t.finish(format!(
        "{} placements unknown at the client; {} unacknowledged orders on the server \
         ({from_unknown} traced to an unknown placement, {others} not), all terminal",
        unknown.len(),
        from_unknown + others
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixtures::clean;
    use crate::invariants::Offender;

    #[test]
    fn passes_a_clean_run() {
        let (h, s) = clean();
        let r = check(&h, &s);
        assert!(r.passed, "{}", r.detail);
        assert_eq!(r.checked, 1);
        assert_eq!(
            r.detail,
            "1 placements unknown at the client; 1 unacknowledged orders on the server \
             (1 traced to an unknown placement, 0 not), all terminal"
        );
    }

    #[test]
    fn finds_an_unknown_placement_left_pending() {
        let (h, mut s) = clean();
        s.orders[4].status = "PENDING".into();
        s.orders[4].saga_step = "compensate".into();
        let r = check(&h, &s);
        assert!(!r.passed);
        assert_eq!(r.first_offending, vec![Offender::Id(5)]);
        assert_eq!(
            r.detail,
            "order 5, whose placement was unknown at the client, is still PENDING (saga at compensate)"
        );
    }
}
