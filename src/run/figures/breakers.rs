//! Breakers: every flow's transitions, and per link the times its breaker
//! opened and the attempts retried.

use std::collections::BTreeMap;

use gauntlet_reports::report::BreakerTransition;

use crate::run::leg::Leg;

/// Every flow's breaker transitions, `at_ms` from its measured start.
pub(super) fn transitions(legs: &[Leg]) -> Vec<BreakerTransition> {
    let mut breakers = Vec::new();
    for leg in legs {
        breakers.extend(
            leg.breakers
                .transitions(leg.measured_from_unix_ms)
                .into_iter()
                .map(|mut t| {
                    t.flow = Some(leg.flow.to_string());
                    t
                }),
        );
    }
    breakers
}

/// Per link, over every flow: the times its breaker opened, and the
/// attempts retried (each link watched is listed, 0 included).
pub(super) fn per_link(legs: &[Leg]) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let mut opened: BTreeMap<String, u64> = BTreeMap::new();
    let mut retries: BTreeMap<String, u64> = BTreeMap::new();
    for leg in legs {
        for (link, n) in leg.breakers.opened() {
            *opened.entry(link).or_default() += n;
        }
        for (link, n) in leg.breakers.retries() {
            *retries.entry(link).or_default() += n;
        }
    }
    (opened, retries)
}
