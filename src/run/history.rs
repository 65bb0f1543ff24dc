//! The load generator's operations as the report's history: the shape
//! the invariants read and `history.json` keeps, each operation tagged
//! with its flow and, from the final state, the trace of its order.

use std::collections::BTreeMap;

use gauntlet_loadgen as loadgen;
use gauntlet_reports::history::{History, Operation};
use gauntlet_reports::state::FinalState;

/// The load generator's history in the reports' shape, each operation
/// tagged with the flow it ran in and the trace of its order.
pub(super) fn to_history(
    ops: &[loadgen::Operation],
    flow: &str,
    state: Option<&FinalState>,
) -> History {
    let traces: BTreeMap<i64, &str> = state
        .iter()
        .flat_map(|s| &s.orders)
        .filter_map(|o| Some((o.id, o.trace_id.as_deref()?)))
        .collect();
    let ops = ops
        .iter()
        .map(|op| Operation {
            id: op.id,
            journey: op.journey,
            // One type for both (`gauntlet_model`'s): nothing to translate.
            kind: op.kind,
            intended_us: Some(op.intended_us),
            invoke_us: op.invoke_us,
            complete_us: Some(op.complete_us),
            outcome: op.outcome,
            status: op.status,
            order_id: op.order_id,
            idempotency_key: op.idempotency_key.as_deref().map(str::to_string),
            flow: Some(flow.to_string()),
            order_status: None,
            detail: op.detail.as_deref().map(str::to_string),
            trace_id: op
                .order_id
                .and_then(|id| traces.get(&id))
                .map(|t| t.to_string()),
        })
        .collect();
    History::new(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gauntlet_reports::history::{OpKind, Outcome};
    use gauntlet_reports::state::Order;

    /// An operation at `10 * id` µs, sent 2 µs after it was due and
    /// answered 5 µs later.
    fn op(
        id: u64,
        kind: loadgen::OpKind,
        outcome: loadgen::Outcome,
        status: Option<u16>,
        order_id: Option<i64>,
    ) -> loadgen::Operation {
        loadgen::Operation {
            id,
            journey: Some(100 + id),
            kind,
            intended_us: 10 * id,
            invoke_us: 10 * id + 2,
            complete_us: 10 * id + 7,
            outcome,
            status,
            order_id,
            idempotency_key: None,
            detail: None,
        }
    }

    fn order(id: i64, trace_id: Option<&str>) -> Order {
        Order {
            id,
            status: "CONFIRMED".into(),
            saga_step: "done".into(),
            flow: "sync".into(),
            quantity: 1,
            product_id: 1,
            total_cents: 1_250,
            idempotency_key: None,
            created_at: None,
            settled_at: None,
            trace_id: trace_id.map(str::to_string),
        }
    }

    #[test]
    fn each_operation_keeps_its_kind_outcome_and_times_and_is_tagged_with_its_flow() {
        use gauntlet_loadgen::{OpKind as K, Outcome as O};
        let mut place = op(2, K::PlaceOrder, O::Fail, Some(503), None);
        place.idempotency_key = Some("k-2".into());
        place.detail = Some("payments unavailable".into());
        let mut get = op(4, K::GetOrder, O::Ok, Some(200), Some(9));
        get.journey = None;
        get.detail = Some("CONFIRMED".into());
        let ops = [
            op(1, K::CreateUser, O::Ok, Some(201), None),
            place,
            op(3, K::PlaceOrder, O::Unknown, None, None),
            get,
            op(5, K::ListProducts, O::Ok, Some(200), None),
        ];
        let h = to_history(&ops, "async", None);

        let got: Vec<(u64, OpKind, Outcome)> =
            h.ops.iter().map(|o| (o.id, o.kind, o.outcome)).collect();
        assert_eq!(
            got,
            [
                (1, OpKind::CreateUser, Outcome::Ok),
                (2, OpKind::PlaceOrder, Outcome::Fail),
                (3, OpKind::PlaceOrder, Outcome::Unknown),
                (4, OpKind::GetOrder, Outcome::Ok),
                (5, OpKind::ListProducts, Outcome::Ok),
            ]
        );
        assert_eq!(
            h.ops[1],
            Operation {
                id: 2,
                journey: Some(102),
                kind: OpKind::PlaceOrder,
                intended_us: Some(20),
                invoke_us: 22,
                complete_us: Some(27),
                outcome: Outcome::Fail,
                status: Some(503),
                order_id: None,
                idempotency_key: Some("k-2".into()),
                flow: Some("async".into()),
                order_status: None,
                detail: Some("payments unavailable".into()),
                trace_id: None,
            }
        );
        // No answer, no status; an operation outside any journey (the
        // set-up's) stays outside.
        assert_eq!(h.ops[2].status, None);
        assert_eq!(h.ops[3].journey, None);
        assert_eq!(h.ops[3].order_id, Some(9));
        // The order's status the client was told stays in `detail`.
        assert_eq!(h.ops[3].detail.as_deref(), Some("CONFIRMED"));
        assert_eq!(h.ops[3].order_status, None);
        assert!(h.ops.iter().all(|o| o.flow.as_deref() == Some("async")));
    }

    #[test]
    fn trace_ids_come_from_the_final_state_by_order_id() {
        use gauntlet_loadgen::{OpKind as K, Outcome as O};
        let ops = [
            op(1, K::PlaceOrder, O::Ok, Some(202), Some(5)),
            op(2, K::GetOrder, O::Ok, Some(200), Some(5)),
            // Stored without a trace.
            op(3, K::PlaceOrder, O::Ok, Some(202), Some(6)),
            // Not in the final state (lost).
            op(4, K::PlaceOrder, O::Ok, Some(202), Some(7)),
            // No order at all.
            op(5, K::CreateUser, O::Ok, Some(201), None),
        ];
        let state = FinalState {
            orders: vec![
                order(5, Some("4bf92f3577b34da6a3ce929d0e0e4736")),
                order(6, None),
            ],
            ..FinalState::default()
        };
        let traces = |h: &History| -> Vec<Option<String>> {
            h.ops.iter().map(|o| o.trace_id.clone()).collect()
        };
        let trace = Some("4bf92f3577b34da6a3ce929d0e0e4736".to_string());

        let h = to_history(&ops, "sync", Some(&state));
        assert_eq!(traces(&h), [trace.clone(), trace, None, None, None]);

        // Without a final state (it could not be read), no trace at all.
        let h = to_history(&ops, "sync", None);
        assert_eq!(traces(&h), [None::<String>, None, None, None, None]);
    }
}
