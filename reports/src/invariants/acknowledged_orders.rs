//! No acknowledged order is lost: every `place_order` a client saw succeed
//! names an order that exists on the server exactly once, in a terminal
//! state, and in the state the client was told when it was told one.

use super::{Checker, InvariantResult, Offender, Tally};
use crate::history::{History, Outcome};
use crate::state::{FinalState, CANCELLED, CONFIRMED};

pub(super) const CHECKER: Checker = Checker {
    name: "acknowledged_orders",
    rule: "every acknowledged order exists once, terminal, as the client was told",
    check,
};

fn check(history: &History, state: &FinalState) -> InvariantResult {
    let mut t = Tally::new(CHECKER.name);
    let mut acknowledged = 0;
    for op in history.placements().filter(|o| o.outcome == Outcome::Ok) {
        acknowledged += 1;
        t.checked(1);
        let rows: Vec<_> = match (op.order_id, &op.idempotency_key) {
            (Some(id), _) => state.orders.iter().filter(|o| o.id == id).collect(),
            (None, Some(key)) => state
                .orders
                .iter()
                .filter(|o| o.idempotency_key.as_ref() == Some(key))
                .collect(),
            (None, None) => {
                t.violation(format!("op {}", op.id), || {
                    format!(
                        "op {} was acknowledged with no order id nor key to find it by",
                        op.id
                    )
                });
                continue;
            }
        };
        let who: Offender = match (op.order_id, &op.idempotency_key) {
            (Some(id), _) => id.into(),
            (None, key) => key.clone().unwrap_or_default().into(),
        };
        match rows.as_slice() {
            [] => t.violation(who.clone(), || {
                format!(
                    "order {who} was acknowledged (op {}) but is not on the server",
                    op.id
                )
            }),
            [o] if !o.is_terminal() => t.violation(o.id, || {
                format!(
                    "order {} was acknowledged but is still {} (saga at {})",
                    o.id, o.status, o.saga_step
                )
            }),
            [o] => {
                let told = op.told_status();
                if let Some(told) = told.filter(|s| *s == CONFIRMED || *s == CANCELLED) {
                    if told != o.status {
                        t.violation(o.id, || {
                            format!(
                                "order {}: the client was told {told}, the server says {}",
                                o.id, o.status
                            )
                        });
                    }
                }
            }
            many => t.violation(who.clone(), || {
                format!("order {who} is on the server {} times", many.len())
            }),
        }
    }
    t.finish(format!(
        "{acknowledged} acknowledged placements, each on the server once and terminal"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixtures::clean;

    #[test]
    fn passes_a_clean_run() {
        let (h, s) = clean();
        let r = check(&h, &s);
        assert!(r.passed, "{}", r.detail);
        assert_eq!(r.checked, 4);
        assert_eq!(
            r.detail,
            "4 acknowledged placements, each on the server once and terminal"
        );
    }

    #[test]
    fn finds_a_lost_acknowledged_order() {
        let (h, mut s) = clean();
        s.orders.retain(|o| o.id != 3);
        let r = check(&h, &s);
        assert!(!r.passed);
        assert_eq!(r.violations, 1);
        assert_eq!(r.first_offending, vec![Offender::Id(3)]);
        assert_eq!(
            r.detail,
            "order 3 was acknowledged (op 3) but is not on the server"
        );
    }

    #[test]
    fn finds_a_non_terminal_or_contradicted_order() {
        let (h, mut s) = clean();
        s.orders[3].status = "PENDING".into();
        s.orders[3].saga_step = "charge".into();
        s.orders[0].status = "CANCELLED".into();
        let r = check(&h, &s);
        assert_eq!(r.violations, 2);
        assert_eq!(r.first_offending, vec![Offender::Id(1), Offender::Id(4)]);
        assert_eq!(
            r.detail,
            "order 1: the client was told CONFIRMED, the server says CANCELLED; \
             order 4 was acknowledged but is still PENDING (saga at charge)"
        );
    }

    #[test]
    fn reads_what_the_client_was_told_from_the_detail_too() {
        let (h, mut s) = clean();
        assert_eq!(h.ops[1].detail.as_deref(), Some("CANCELLED"));
        s.orders[1].status = "CONFIRMED".into();
        let r = check(&h, &s);
        assert_eq!(r.first_offending, vec![Offender::Id(2)]);
        assert_eq!(
            r.detail,
            "order 2: the client was told CANCELLED, the server says CONFIRMED"
        );
    }

    #[test]
    fn finds_an_order_in_two_states() {
        let (h, mut s) = clean();
        let mut twin = s.orders[1].clone();
        twin.status = "CONFIRMED".into();
        s.orders.push(twin);
        let r = check(&h, &s);
        assert_eq!(r.first_offending, vec![Offender::Id(2)]);
        assert_eq!(r.detail, "order 2 is on the server 2 times");
    }
}
