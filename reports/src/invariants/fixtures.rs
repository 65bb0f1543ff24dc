//! A small crafted run that breaks nothing, for the checkers' tests to
//! break one way at a time.
//!
//! Orders: 1 confirmed (sync), 2 cancelled before any charge (declined),
//! 3 cancelled after a charge (refunded), 4 confirmed (async, acknowledged
//! as PENDING), 5 cancelled whose placement was unknown at the client.

use crate::history::{History, OpKind, Operation, Outcome};
use crate::state::{
    FinalState, Ledger, Notification, Order, Product, ProviderCharge, Reservation, TopicEvents,
};

pub(crate) fn op(id: u64, kind: OpKind, outcome: Outcome, order_id: Option<i64>) -> Operation {
    Operation {
        id,
        kind,
        invoke_us: id * 1000,
        complete_us: (outcome != Outcome::Unknown).then_some(id * 1000 + 500),
        outcome,
        status: match outcome {
            Outcome::Ok => Some(201),
            Outcome::Fail => Some(422),
            Outcome::Unknown => None,
        },
        order_id,
        idempotency_key: (kind == OpKind::PlaceOrder).then(|| format!("k-{id}")),
        flow: (kind == OpKind::PlaceOrder).then(|| "sync".to_string()),
        order_status: None,
        journey: Some(id),
        intended_us: Some(id * 1000),
        detail: None,
        trace_id: None,
    }
}

pub(crate) fn order(id: i64, status: &str, product_id: i64, quantity: i64, total: i64) -> Order {
    Order {
        id,
        status: status.into(),
        saga_step: "done".into(),
        flow: "sync".into(),
        quantity,
        product_id,
        total_cents: total,
        idempotency_key: Some(format!("k-{id}")),
        created_at: None,
        settled_at: None,
        trace_id: None,
    }
}

pub(crate) fn charge(order_id: i64, amount: i64, status: &str) -> ProviderCharge {
    ProviderCharge {
        idempotency_key: format!("order-{order_id}"),
        order_id: Some(order_id),
        amount_cents: amount,
        status: status.into(),
    }
}

pub(crate) fn reservation(
    order_id: i64,
    product_id: i64,
    quantity: i64,
    status: &str,
) -> Reservation {
    Reservation {
        order_id,
        product_id,
        quantity,
        status: status.into(),
    }
}

pub(crate) fn clean() -> (History, FinalState) {
    use OpKind::*;
    use Outcome::*;
    let mut ops = vec![
        op(1, PlaceOrder, Ok, Some(1)),
        op(2, PlaceOrder, Ok, Some(2)),
        op(3, PlaceOrder, Ok, Some(3)),
        op(4, PlaceOrder, Ok, Some(4)),
        op(5, PlaceOrder, Unknown, None),
        op(6, PlaceOrder, Fail, None),
        op(7, ListProducts, Ok, None),
        op(8, CreateUser, Ok, None),
        op(9, GetOrder, Ok, Some(4)),
    ];
    ops[0].order_status = Some("CONFIRMED".into());
    // The load generator reports the status in `detail`.
    ops[1].detail = Some("CANCELLED".into());
    ops[2].order_status = Some("CANCELLED".into());
    ops[3].order_status = Some("PENDING".into());
    ops[3].flow = Some("async".into());
    ops[3].status = Some(202);

    let mut orders = vec![
        order(1, "CONFIRMED", 1, 2, 2000),
        order(2, "CANCELLED", 2, 1, 500),
        order(3, "CANCELLED", 1, 1, 1000),
        order(4, "CONFIRMED", 2, 2, 1000),
        order(5, "CANCELLED", 1, 1, 1000),
    ];
    orders[3].flow = "async".into();

    let state = FinalState {
        orders,
        charges: vec![
            charge(1, 2000, "CHARGED"),
            ProviderCharge {
                idempotency_key: "order-2".into(),
                order_id: None,
                amount_cents: 0,
                status: "VOIDED".into(),
            },
            charge(3, 1000, "REFUNDED"),
            charge(4, 1000, "CHARGED"),
        ],
        ledger: Some(Ledger {
            charges: 3,
            charged_cents: 4000,
            refunded_cents: 1000,
            net_cents: 3000,
            voided: 1,
            orders_charged_twice: vec![],
        }),
        products: vec![
            Product {
                id: 1,
                stock: 8,
                initial_stock: 10,
            },
            Product {
                id: 2,
                stock: 3,
                initial_stock: 5,
            },
        ],
        reservations: vec![
            reservation(1, 1, 2, "COMMITTED"),
            reservation(2, 2, 1, "RELEASED"),
            reservation(3, 1, 1, "RELEASED"),
            reservation(4, 2, 2, "COMMITTED"),
            // A release that came before any reserve leaves a tombstone.
            reservation(5, 0, 0, "RELEASED"),
        ],
        notifications: vec![
            Notification {
                order_id: 1,
                kind: "order_confirmed".into(),
            },
            Notification {
                order_id: 4,
                kind: "order_confirmed".into(),
            },
        ],
        events: Some(vec![
            TopicEvents {
                topic: "orders".into(),
                group: Some("payments".into()),
                produced: 10,
                consumed: 9,
                dead_lettered: 1,
            },
            TopicEvents {
                topic: "orders".into(),
                group: Some("notifications".into()),
                produced: 10,
                consumed: 10,
                dead_lettered: 0,
            },
        ]),
    };
    (History::new(ops), state)
}
