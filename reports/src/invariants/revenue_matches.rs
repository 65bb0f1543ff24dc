//! The money adds up: what the provider kept (charges − refunds) equals the
//! total of the confirmed orders, order by order. A cancelled order must
//! have been refunded; a confirmed one charged its total exactly once.

use std::collections::BTreeMap;

use super::{Checker, InvariantResult, Tally};
use crate::history::History;
use crate::state::{FinalState, CHARGED, CONFIRMED};

pub(super) const CHECKER: Checker = Checker {
    name: "revenue_matches",
    rule: "provider charges - refunds = total of confirmed orders",
    check,
};

fn check(_history: &History, state: &FinalState) -> InvariantResult {
    let mut t = Tally::new(CHECKER.name);
    // order id → (net kept by the provider, what it should be, status)
    let mut books: BTreeMap<i64, (i64, i64, &str)> = BTreeMap::new();
    for o in &state.orders {
        let expected = if o.status == CONFIRMED {
            o.total_cents
        } else {
            0
        };
        books.insert(o.id, (0, expected, o.status.as_str()));
    }
    let (mut charged, mut refunded) = (0i64, 0i64);
    for c in state.charges.iter().filter(|c| c.took_money()) {
        charged += c.amount_cents;
        let kept = if c.status == CHARGED {
            c.amount_cents
        } else {
            0
        };
        refunded += c.amount_cents - kept;
        match c.order_id {
            Some(id) => books.entry(id).or_insert((0, 0, "absent")).0 += kept,
            None if kept != 0 => t.violation(c.idempotency_key.clone(), || {
                format!(
                    "charge {} kept {kept} cents for no order",
                    c.idempotency_key
                )
            }),
            None => {}
        }
    }
    t.checked(books.len() as u64);
    for (id, (kept, expected, status)) in &books {
        if kept != expected {
            t.violation(*id, || {
                let status = if *status == "absent" {
                    "not on the server".to_string()
                } else {
                    status.to_string()
                };
                format!(
                    "order {id} ({status}): the provider kept {kept} cents, expected {expected}"
                )
            });
        }
    }
    let net = charged - refunded;
    let revenue: i64 = books.values().map(|(_, e, _)| e).sum();
    if let Some(ledger) = &state.ledger {
        if ledger.net_cents != net {
            t.violation("ledger", || {
                format!(
                    "the provider's ledger says {} cents net, its charges add up to {net}",
                    ledger.net_cents
                )
            });
        }
    }
    t.finish(format!(
        "charges {charged} - refunds {refunded} = {net} cents = revenue of confirmed orders {revenue} cents"
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
        assert_eq!(
            r.detail,
            "charges 4000 - refunds 1000 = 3000 cents = revenue of confirmed orders 3000 cents"
        );
    }

    #[test]
    fn finds_a_cancelled_order_never_refunded() {
        let (h, mut s) = clean();
        s.charges[2].status = "CHARGED".into();
        let r = check(&h, &s);
        assert!(!r.passed);
        assert_eq!(
            r.first_offending,
            vec![Offender::Id(3), Offender::Key("ledger".into())]
        );
        assert_eq!(
            r.detail,
            "order 3 (CANCELLED): the provider kept 1000 cents, expected 0; \
             the provider's ledger says 3000 cents net, its charges add up to 4000"
        );
        assert_eq!(r.violations, 2);
    }

    #[test]
    fn finds_a_confirmed_order_never_charged() {
        let (h, mut s) = clean();
        s.charges.retain(|c| c.order_id != Some(4));
        s.ledger = None;
        let r = check(&h, &s);
        assert_eq!(r.first_offending, vec![Offender::Id(4)]);
        assert_eq!(
            r.detail,
            "order 4 (CONFIRMED): the provider kept 0 cents, expected 1000"
        );
    }
}
