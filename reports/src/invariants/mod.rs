//! Invariants, Jepsen style: properties checked on the recorded
//! [`History`] and the [`FinalState`] read from every service's database
//! after the system quiesced. One checker per file; each returns an
//! [`InvariantResult`] naming the first offending ids.
//!
//! | name | what must hold |
//! |---|---|
//! | `acknowledged_orders` | every order acknowledged to a client exists once, terminal, as the client was told |
//! | `unknown_orders` | every order no client acknowledgment covers (placement unknown or failed) is terminal |
//! | `no_double_charge` | no order charged more than once at the provider |
//! | `revenue_matches` | provider charges − refunds = total of confirmed orders |
//! | `stock_conserved` | initial stock − confirmed quantities = final stock, per product |
//! | `no_dangling_reservations` | no stock held for an order that is not confirmed |
//! | `events_accounted` | every event produced was consumed or dead-lettered |
//! | `notified_once` | every confirmed order notified exactly once, and no other |

mod acknowledged_orders;
mod events_accounted;
mod no_dangling_reservations;
mod no_double_charge;
mod notified_once;
mod revenue_matches;
mod stock_conserved;
mod unknown_orders;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::History;
use crate::state::FinalState;

/// How many offending ids a result lists.
pub const MAX_OFFENDERS: usize = 10;

/// A checker: a name and a function of the run.
pub struct Checker {
    pub name: &'static str,
    /// One line: what must hold.
    pub rule: &'static str,
    pub check: fn(&History, &FinalState) -> InvariantResult,
}

/// Every checker, in report order.
pub const CHECKERS: [Checker; 8] = [
    acknowledged_orders::CHECKER,
    unknown_orders::CHECKER,
    no_double_charge::CHECKER,
    revenue_matches::CHECKER,
    stock_conserved::CHECKER,
    no_dangling_reservations::CHECKER,
    events_accounted::CHECKER,
    notified_once::CHECKER,
];

/// Every invariant's name (gates may name them).
pub const NAMES: [&str; 8] = [
    acknowledged_orders::CHECKER.name,
    unknown_orders::CHECKER.name,
    no_double_charge::CHECKER.name,
    revenue_matches::CHECKER.name,
    stock_conserved::CHECKER.name,
    no_dangling_reservations::CHECKER.name,
    events_accounted::CHECKER.name,
    notified_once::CHECKER.name,
];

/// Runs every checker.
/// The checkers whose numeric offenders are order ids (the others name
/// products, topics or keys).
const ORDER_OFFENDERS: [&str; 6] = [
    acknowledged_orders::CHECKER.name,
    unknown_orders::CHECKER.name,
    no_double_charge::CHECKER.name,
    revenue_matches::CHECKER.name,
    no_dangling_reservations::CHECKER.name,
    notified_once::CHECKER.name,
];

pub fn check_all(history: &History, state: &FinalState) -> Vec<InvariantResult> {
    CHECKERS
        .iter()
        .map(|c| {
            let mut result = (c.check)(history, state);
            if ORDER_OFFENDERS.contains(&c.name) {
                result.traces = traces_of(&result.first_offending, state);
            }
            result
        })
        .collect()
}

/// The trace ids of the offending orders that have one, in offender order.
fn traces_of(offenders: &[Offender], state: &FinalState) -> Vec<String> {
    offenders
        .iter()
        .filter_map(|o| match o {
            Offender::Id(id) => state.orders.iter().find(|order| order.id == *id),
            Offender::Key(_) => None,
        })
        .filter_map(|order| order.trace_id.clone())
        .collect()
}

/// An id that breaks an invariant: an order or product id, or a key or
/// topic name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Offender {
    Id(i64),
    Key(String),
}

impl fmt::Display for Offender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(i) => write!(f, "{i}"),
            Self::Key(k) => f.write_str(k),
        }
    }
}

impl From<i64> for Offender {
    fn from(i: i64) -> Self {
        Self::Id(i)
    }
}

impl From<String> for Offender {
    fn from(s: String) -> Self {
        Self::Key(s)
    }
}

impl From<&str> for Offender {
    fn from(s: &str) -> Self {
        Self::Key(s.to_string())
    }
}

/// One invariant's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvariantResult {
    pub name: String,
    pub passed: bool,
    /// How many things were checked (orders, products, topics...).
    pub checked: u64,
    /// How many of them broke it.
    pub violations: u64,
    /// The first offending ids, at most [`MAX_OFFENDERS`].
    pub first_offending: Vec<Offender>,
    /// What was found, for people.
    pub detail: String,
    /// True when the invariant did not apply to this run (it passed
    /// vacuously); the detail says why.
    #[serde(default)]
    pub skipped: bool,
    /// The trace ids of the offending orders, when the system traced them:
    /// the traces to open in a trace viewer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<String>,
}

/// Collects one checker's findings.
pub(crate) struct Tally {
    name: &'static str,
    checked: u64,
    violations: u64,
    offenders: Vec<Offender>,
    /// One line per kind of violation, with its first example.
    notes: Vec<String>,
}

impl Tally {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            checked: 0,
            violations: 0,
            offenders: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn checked(&mut self, n: u64) {
        self.checked += n;
    }

    /// Counts one violation by `who`; `why` says what it was, and is kept
    /// for the first few.
    pub(crate) fn violation(&mut self, who: impl Into<Offender>, why: impl FnOnce() -> String) {
        self.violations += 1;
        let who = who.into();
        if self.offenders.len() < MAX_OFFENDERS && !self.offenders.contains(&who) {
            self.offenders.push(who);
            if self.notes.len() < 3 {
                self.notes.push(why());
            }
        }
    }

    /// The result; `ok` is the detail when nothing broke.
    pub(crate) fn finish(self, ok: String) -> InvariantResult {
        let passed = self.violations == 0;
        let detail = if passed {
            ok
        } else {
            let more = if self.violations as usize > self.notes.len() {
                format!("; {} in all", self.violations)
            } else {
                String::new()
            };
            format!("{}{more}", self.notes.join("; "))
        };
        InvariantResult {
            name: self.name.to_string(),
            passed,
            checked: self.checked,
            violations: self.violations,
            first_offending: self.offenders,
            detail,
            skipped: false,
            traces: Vec::new(),
        }
    }

    /// A pass that says the invariant does not apply to this run.
    pub(crate) fn not_applicable(self, why: &str) -> InvariantResult {
        InvariantResult {
            name: self.name.to_string(),
            passed: true,
            checked: 0,
            violations: 0,
            first_offending: Vec::new(),
            detail: format!("not applicable: {why}"),
            skipped: true,
            traces: Vec::new(),
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_checkers_names_and_unique() {
        for (c, n) in CHECKERS.iter().zip(NAMES) {
            assert_eq!(c.name, n);
        }
        let mut n = NAMES.to_vec();
        n.sort_unstable();
        n.dedup();
        assert_eq!(n.len(), NAMES.len());
    }

    #[test]
    fn a_clean_run_passes_every_checker() {
        let (h, s) = fixtures::clean();
        for r in check_all(&h, &s) {
            assert!(r.passed, "{}: {}", r.name, r.detail);
            assert_eq!(r.violations, 0);
            assert!(r.first_offending.is_empty());
            assert!(r.checked > 0, "{} checked nothing", r.name);
        }
    }

    #[test]
    fn placements_refused_at_the_edge_were_never_placed() {
        // 401s and 429s from the gateway: no order, no charge, no stock
        // taken. Every checker still passes, and none counts them as lost.
        let (mut h, s) = fixtures::clean();
        let next = h.ops.iter().map(|o| o.id).max().unwrap_or(0) + 1;
        for (i, status) in [401, 429, 429].into_iter().enumerate() {
            let mut op = fixtures::op(
                next + i as u64,
                crate::history::OpKind::PlaceOrder,
                crate::history::Outcome::Fail,
                None,
            );
            op.status = Some(status);
            h.ops.push(op);
        }
        for r in check_all(&h, &s) {
            assert!(r.passed, "{}: {}", r.name, r.detail);
        }
        let counts = crate::metrics::OrderCounts::from_run(&h, &s);
        assert_eq!(counts.lost, 0);
        assert_eq!(counts.acknowledged, 4);
    }

    #[test]
    fn an_offending_order_names_its_trace() {
        let (h, mut s) = fixtures::clean();
        for o in &mut s.orders {
            o.trace_id = Some(format!("{:032x}", o.id));
        }
        s.notifications.clear();
        let results = check_all(&h, &s);
        let notified = results
            .iter()
            .find(|r| r.name == notified_once::CHECKER.name)
            .expect("notified_once ran");
        assert!(!notified.passed);
        let expected: Vec<String> = notified
            .first_offending
            .iter()
            .map(|o| {
                format!(
                    "{:032x}",
                    o.to_string().parse::<i64>().expect("an order id")
                )
            })
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(notified.traces, expected);
        // Products are not orders: a drifted product names no trace.
        s.products[0].stock += 1;
        let stock = check_all(&h, &s)
            .into_iter()
            .find(|r| r.name == stock_conserved::CHECKER.name)
            .expect("stock_conserved ran");
        assert!(!stock.passed && stock.traces.is_empty(), "{stock:?}");
    }

    #[test]
    fn offenders_serialise_as_plain_ids_and_keys() {
        let v = vec![Offender::Id(7), Offender::Key("orders".into())];
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"[7,"orders"]"#);
        let back: Vec<Offender> = serde_json::from_str(r#"[7,"orders"]"#).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn the_tally_caps_offenders() {
        let mut t = Tally::new("x");
        for i in 0..25 {
            t.checked(1);
            t.violation(i, || format!("order {i} bad"));
        }
        let r = t.finish(String::new());
        assert!(!r.passed);
        assert_eq!(r.violations, 25);
        assert_eq!(r.first_offending.len(), MAX_OFFENDERS);
        assert_eq!(r.detail, "order 0 bad; order 1 bad; order 2 bad; 25 in all");
    }
}
