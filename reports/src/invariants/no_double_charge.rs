//! No order is charged twice: at the provider (the money that really
//! moved), no order has more than one charge that took money. The provider
//! dedupes by idempotency key, so a double charge means two different keys
//! for one order: a payments service that retried without its key.

use std::collections::BTreeMap;

use super::{Checker, InvariantResult, Tally};
use crate::history::History;
use crate::state::FinalState;

pub(super) const CHECKER: Checker = Checker {
    name: "no_double_charge",
    rule: "no order charged more than once at the provider",
    check,
};

fn check(_history: &History, state: &FinalState) -> InvariantResult {
    let mut t = Tally::new(CHECKER.name);
    let mut keys: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for c in state.charges.iter().filter(|c| c.took_money()) {
        if let Some(id) = c.order_id {
            keys.entry(id).or_default().push(&c.idempotency_key);
        }
    }
    t.checked(keys.len() as u64);
    for (id, k) in keys.iter().filter(|(_, k)| k.len() > 1) {
        t.violation(*id, || {
            format!(
                "order {id} was charged {} times (keys {})",
                k.len(),
                k.join(", ")
            )
        });
    }
    // The provider's own books say the same; trust neither alone.
    if let Some(ledger) = &state.ledger {
        for id in &ledger.orders_charged_twice {
            if keys.get(id).is_none_or(|k| k.len() < 2) {
                t.violation(*id, || {
                    format!("the provider's ledger lists order {id} as charged twice")
                });
            }
        }
    }
    t.finish(format!("{} orders charged, each once", keys.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixtures::{charge, clean};
    use crate::invariants::Offender;

    #[test]
    fn passes_a_clean_run() {
        let (h, s) = clean();
        let r = check(&h, &s);
        assert!(r.passed, "{}", r.detail);
        assert_eq!(r.checked, 3);
    }

    #[test]
    fn finds_a_double_charge() {
        let (h, mut s) = clean();
        let mut again = charge(4, 1000, "CHARGED");
        again.idempotency_key = "retry-without-key".into();
        s.charges.push(again);
        let r = check(&h, &s);
        assert!(!r.passed);
        assert_eq!(r.violations, 1);
        assert_eq!(r.first_offending, vec![Offender::Id(4)]);
        assert_eq!(
            r.detail,
            "order 4 was charged 2 times (keys order-4, retry-without-key)"
        );
    }

    #[test]
    fn believes_the_ledger_too() {
        let (h, mut s) = clean();
        s.ledger.as_mut().unwrap().orders_charged_twice = vec![1];
        let r = check(&h, &s);
        assert_eq!(r.first_offending, vec![Offender::Id(1)]);
    }
}
