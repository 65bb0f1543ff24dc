//! From the JSON a run records (history from the load generator, final
//! state from the services) to invariants and gates: a clean run passes,
//! and a run with a double charge fails both its invariant and the gate
//! that names it.

use gauntlet_reports::gates::parse;
use gauntlet_reports::metrics::{Counts, OrderCounts, ALL};
use gauntlet_reports::{check_all, evaluate, FinalState, History, Metrics, Offender};

/// The figures the gates below read, from one history and final state:
/// the request counts (all and per flow), the order counts, the event
/// accounting and each invariant's violations.
fn metrics_of(
    history: &History,
    state: &FinalState,
    invariants: &[gauntlet_reports::InvariantResult],
) -> Metrics {
    let mut metrics = Metrics::default();
    let mut all = Counts::default();
    for op in &history.ops {
        all.add(op.outcome, op.status);
        if let Some(flow) = &op.flow {
            metrics
                .requests
                .entry(flow.clone())
                .or_default()
                .add(op.outcome, op.status);
        }
    }
    metrics.requests.insert(ALL.to_string(), all);
    metrics.orders = Some(OrderCounts::from_run(history, state));
    metrics.events.clone_from(&state.events);
    metrics.invariants = Some(
        invariants
            .iter()
            .map(|r| (r.name.clone(), r.violations))
            .collect(),
    );
    metrics
}

/// In the load generator's wire format.
const HISTORY: &str = r#"[
  {"id":1,"journey":1,"kind":"create_user","intended_us":100,"invoke_us":100,"complete_us":900,"outcome":"ok","status":201},
  {"id":2,"journey":2,"kind":"place_order","intended_us":1000,"invoke_us":1000,"complete_us":9000,"outcome":"ok","status":201,
   "order_id":1,"idempotency_key":"k-1","detail":"CONFIRMED"},
  {"id":3,"journey":3,"kind":"place_order","intended_us":2000,"invoke_us":2100,"complete_us":2500,"outcome":"ok","status":201,
   "order_id":2,"idempotency_key":"k-2","detail":"CANCELLED"},
  {"id":4,"journey":4,"kind":"place_order","intended_us":3000,"invoke_us":3000,"complete_us":33000,"outcome":"unknown",
   "idempotency_key":"k-4","detail":"timed out"}
]"#;

/// As the services answer: extra fields and all.
const STATE: &str = r#"{
  "orders": [
    {"id":1,"user_id":1,"product_id":1,"quantity":2,"total_cents":2500,"flow":"sync","status":"CONFIRMED","saga_step":"done"},
    {"id":2,"user_id":1,"product_id":1,"quantity":1,"total_cents":1250,"flow":"sync","status":"CANCELLED","saga_step":"done","cancel_reason":"payment declined"},
    {"id":3,"user_id":1,"product_id":1,"quantity":1,"total_cents":1250,"flow":"sync","status":"CANCELLED","saga_step":"done"}
  ],
  "charges": [
    {"id":1,"idempotency_key":"order-1","order_id":1,"amount_cents":2500,"status":"CHARGED","requests":2},
    {"id":2,"idempotency_key":"order-3","order_id":3,"amount_cents":1250,"status":"REFUNDED","requests":1}
  ],
  "ledger": {"charges":2,"charged_cents":3750,"refunded_cents":1250,"net_cents":2500,"voided":0,"orders_charged_twice":[]},
  "products": [{"id":1,"name":"Widget","price_cents":1250,"stock":8,"initial_stock":10}],
  "reservations": [
    {"order_id":1,"product_id":1,"quantity":2,"status":"COMMITTED"},
    {"order_id":2,"product_id":1,"quantity":1,"status":"RELEASED"},
    {"order_id":3,"product_id":1,"quantity":1,"status":"RELEASED"}
  ],
  "notifications": [{"id":1,"order_id":1,"kind":"order_confirmed"}]
}"#;

fn judge(
    history: &History,
    state: &FinalState,
) -> (
    Vec<gauntlet_reports::InvariantResult>,
    Vec<gauntlet_reports::GateResult>,
) {
    let invariants = check_all(history, state);
    let metrics = metrics_of(history, state, &invariants);
    let gates = [
        "invariants.violations == 0",
        "invariants.violations(no_double_charge) == 0",
        "orders.lost == 0",
        "orders.acknowledged == 2",
        "unknown_rate < 50%",
        "dlq.rate < 1%",
    ]
    .map(|g| parse(g).unwrap());
    (invariants, evaluate(&gates, &metrics))
}

#[test]
fn a_clean_sync_run_passes_and_async_only_checks_say_why_not() {
    let history: History = serde_json::from_str(HISTORY).unwrap();
    let state: FinalState = serde_json::from_str(STATE).unwrap();
    let (invariants, gates) = judge(&history, &state);
    for r in &invariants {
        assert!(r.passed, "{}: {}", r.name, r.detail);
    }
    let events = invariants
        .iter()
        .find(|r| r.name == "events_accounted")
        .unwrap();
    assert!(events.skipped);
    for g in &gates[..5] {
        assert!(g.passed, "{}: {}", g.gate, g.detail);
    }
    // A sync-only run has no DLQ: the gate fails and says so.
    assert!(!gates[5].passed);
    assert!(
        gates[5].detail.contains("only on the async flow"),
        "{}",
        gates[5].detail
    );
}

#[test]
fn a_double_charge_fails_its_invariant_and_gate() {
    let history: History = serde_json::from_str(HISTORY).unwrap();
    let mut state: FinalState = serde_json::from_str(STATE).unwrap();
    state.charges.push(serde_json::from_str(
        r#"{"idempotency_key":"order-1-retry","order_id":1,"amount_cents":2500,"status":"CHARGED"}"#,
    ).unwrap());
    let (invariants, gates) = judge(&history, &state);
    let failed: Vec<&str> = invariants
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.as_str())
        .collect();
    // Charged twice, and the money no longer adds up (and the ledger no
    // longer matches the charges it was read with).
    assert_eq!(failed, ["no_double_charge", "revenue_matches"]);
    assert_eq!(invariants[2].first_offending, vec![Offender::Id(1)]);
    assert!(!gates[0].passed && !gates[1].passed);
    assert_eq!(gates[1].actual, Some(1.0));
}
