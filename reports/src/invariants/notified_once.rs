//! Customers hear once: every confirmed order has exactly one
//! `order_confirmed` notification, and no other order has any.

use std::collections::{BTreeMap, HashMap};

use super::{Checker, InvariantResult, Tally};
use crate::history::History;
use crate::state::{FinalState, CONFIRMED, ORDER_CONFIRMED};

pub(super) const CHECKER: Checker = Checker {
    name: "notified_once",
    rule: "every confirmed order notified exactly once, and no other",
    check,
};

fn check(_history: &History, state: &FinalState) -> InvariantResult {
    let mut t = Tally::new(CHECKER.name);
    let mut sent: BTreeMap<i64, u64> = BTreeMap::new();
    for n in state
        .notifications
        .iter()
        .filter(|n| n.kind == ORDER_CONFIRMED)
    {
        *sent.entry(n.order_id).or_default() += 1;
    }
    let status: HashMap<i64, &str> = state
        .orders
        .iter()
        .map(|o| (o.id, o.status.as_str()))
        .collect();
    let mut confirmed = 0;
    for o in state.orders.iter().filter(|o| o.status == CONFIRMED) {
        confirmed += 1;
        t.checked(1);
        match sent.get(&o.id).copied().unwrap_or(0) {
            1 => {}
            0 => t.violation(o.id, || {
                format!("order {} is CONFIRMED but was never notified", o.id)
            }),
            n => t.violation(o.id, || format!("order {} was notified {n} times", o.id)),
        }
    }
    for id in sent.keys() {
        match status.get(id).copied() {
            Some(CONFIRMED) => {}
            other => {
                t.checked(1);
                t.violation(*id, || {
                    let is = other.map_or("not on the server".to_string(), |s| format!("is {s}"));
                    format!("order {id} {is} but was notified as confirmed")
                });
            }
        }
    }
    t.finish(format!("{confirmed} confirmed orders, each notified once"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixtures::clean;
    use crate::invariants::Offender;
    use crate::state::Notification;

    #[test]
    fn passes_a_clean_run() {
        let (h, s) = clean();
        let r = check(&h, &s);
        assert!(r.passed, "{}", r.detail);
        assert_eq!(r.detail, "2 confirmed orders, each notified once");
    }

    #[test]
    fn finds_a_missing_notification() {
        let (h, mut s) = clean();
        s.notifications.retain(|n| n.order_id != 4);
        let r = check(&h, &s);
        assert!(!r.passed);
        assert_eq!(r.first_offending, vec![Offender::Id(4)]);
        assert_eq!(r.detail, "order 4 is CONFIRMED but was never notified");
    }

    #[test]
    fn finds_a_duplicate_and_a_wrong_notification() {
        let (h, mut s) = clean();
        for order_id in [1, 3] {
            s.notifications.push(Notification {
                order_id,
                kind: "order_confirmed".into(),
            });
        }
        let r = check(&h, &s);
        assert_eq!(r.violations, 2);
        assert_eq!(r.first_offending, vec![Offender::Id(1), Offender::Id(3)]);
        assert_eq!(
            r.detail,
            "order 1 was notified 2 times; order 3 is CANCELLED but was notified as confirmed"
        );
    }
}
