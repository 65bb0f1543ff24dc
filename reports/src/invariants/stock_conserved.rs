//! Stock is conserved: for every product, the initial stock less the
//! quantities of its confirmed orders is exactly what is left. Stock held
//! or lost for orders that did not go through shows up here as a shortfall.

use std::collections::BTreeMap;

use super::{Checker, InvariantResult, Tally};
use crate::history::History;
use crate::state::{FinalState, CONFIRMED};

pub(super) const CHECKER: Checker = Checker {
    name: "stock_conserved",
    rule: "initial stock - confirmed quantities = final stock, per product",
    check,
};

fn check(_history: &History, state: &FinalState) -> InvariantResult {
    let mut t = Tally::new(CHECKER.name);
    let mut sold: BTreeMap<i64, i64> = BTreeMap::new();
    for o in state.orders.iter().filter(|o| o.status == CONFIRMED) {
        *sold.entry(o.product_id).or_default() += o.quantity;
    }
    for p in &state.products {
        t.checked(1);
        let confirmed = sold.remove(&p.id).unwrap_or(0);
        let expected = p.initial_stock - confirmed;
        if p.stock != expected {
            t.violation(p.id, || {
                format!(
                    "product {}: stock {}, expected {} initial - {confirmed} confirmed = {expected}",
                    p.id, p.stock, p.initial_stock
                )
            });
        }
    }
    for (id, q) in sold {
        t.violation(id, || {
            format!("{q} units of product {id} confirmed, but the catalog has no such product")
        });
    }
    t.finish(format!(
        "{} products, each at initial stock less its confirmed orders",
        state.products.len()
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
        assert_eq!(r.checked, 2);
    }

    #[test]
    fn finds_a_stock_mismatch() {
        let (h, mut s) = clean();
        // One unit of product 1 held for a cancelled order and never given back.
        s.products[0].stock = 7;
        let r = check(&h, &s);
        assert!(!r.passed);
        assert_eq!(r.first_offending, vec![Offender::Id(1)]);
        assert_eq!(
            r.detail,
            "product 1: stock 7, expected 10 initial - 2 confirmed = 8"
        );
    }
}
