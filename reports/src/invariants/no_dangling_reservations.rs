//! No stock is held for an order that did not go through: after the
//! system quiesced, no reservation is still `RESERVED` for an order that is
//! not confirmed (or not there at all), and none is `COMMITTED` for one.
//! (`RELEASED` rows, tombstones included, hold nothing.)

use std::collections::HashMap;

use super::{Checker, InvariantResult, Tally};
use crate::history::History;
use crate::state::{FinalState, COMMITTED, CONFIRMED, RESERVED};

pub(super) const CHECKER: Checker = Checker {
    name: "no_dangling_reservations",
    rule: "no stock reserved or committed for an order that is not confirmed",
    check,
};

fn check(_history: &History, state: &FinalState) -> InvariantResult {
    let mut t = Tally::new(CHECKER.name);
    let status: HashMap<i64, &str> = state
        .orders
        .iter()
        .map(|o| (o.id, o.status.as_str()))
        .collect();
    for r in &state.reservations {
        t.checked(1);
        let order = status.get(&r.order_id).copied();
        let holds = r.status == RESERVED || r.status == COMMITTED;
        if holds && order != Some(CONFIRMED) {
            t.violation(r.order_id, || {
                let order = order.map_or("not on the server".to_string(), |s| format!("is {s}"));
                format!(
                    "order {} {order} but {} units of product {} are {}",
                    r.order_id, r.quantity, r.product_id, r.status
                )
            });
        }
    }
    t.finish(format!(
        "{} reservations, none holding stock for an order not confirmed",
        state.reservations.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixtures::{clean, reservation};
    use crate::invariants::Offender;

    #[test]
    fn passes_a_clean_run() {
        let (h, s) = clean();
        let r = check(&h, &s);
        assert!(r.passed, "{}", r.detail);
        assert_eq!(r.checked, 5);
    }

    #[test]
    fn finds_a_dangling_reservation() {
        let (h, mut s) = clean();
        s.reservations[2].status = "RESERVED".into();
        s.reservations.push(reservation(42, 2, 1, "RESERVED"));
        let r = check(&h, &s);
        assert!(!r.passed);
        assert_eq!(r.first_offending, vec![Offender::Id(3), Offender::Id(42)]);
        assert_eq!(
            r.detail,
            "order 3 is CANCELLED but 1 units of product 1 are RESERVED; \
             order 42 not on the server but 1 units of product 2 are RESERVED"
        );
    }

    #[test]
    fn finds_stock_committed_for_a_cancelled_order() {
        let (h, mut s) = clean();
        s.reservations[1].status = "COMMITTED".into();
        let r = check(&h, &s);
        assert_eq!(r.first_offending, vec![Offender::Id(2)]);
    }
}
