//! The final state of a run, read from every service's database through
//! its read endpoints after the system has quiesced. Each list has the JSON
//! shape of the endpoint it comes from (extra fields are ignored), so the
//! runner can paste the answers in as they are:
//!
//! | field | endpoint |
//! |---|---|
//! | `orders` | orders `GET /orders` |
//! | `charges` | provider `GET /charges` |
//! | `ledger` | provider `GET /ledger` |
//! | `products` | catalog `GET /products` |
//! | `reservations` | catalog `GET /reservations` |
//! | `notifications` | notifications `GET /notifications` |
//! | `events` | the event path's accounting (async runs only) |

use serde::{Deserialize, Serialize};

/// Order statuses.
pub const CONFIRMED: &str = "CONFIRMED";
pub const CANCELLED: &str = "CANCELLED";
pub const PENDING: &str = "PENDING";

/// Reservation statuses.
pub const RESERVED: &str = "RESERVED";
pub const COMMITTED: &str = "COMMITTED";
pub const RELEASED: &str = "RELEASED";

/// Provider charge statuses that moved money (`VOIDED` keys never did).
pub const CHARGED: &str = "CHARGED";
pub const REFUNDED: &str = "REFUNDED";

/// The notification every confirmed order gets, once.
pub const ORDER_CONFIRMED: &str = "order_confirmed";

/// Everything the invariants read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FinalState {
    pub orders: Vec<Order>,
    pub charges: Vec<ProviderCharge>,
    pub ledger: Option<Ledger>,
    pub products: Vec<Product>,
    pub reservations: Vec<Reservation>,
    pub notifications: Vec<Notification>,
    /// Produced / consumed / dead-lettered per topic; `None` when the run
    /// had no event path (sync only).
    pub events: Option<Vec<TopicEvents>>,
}

/// An order as orders stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    /// `PENDING`, `CONFIRMED` or `CANCELLED`.
    pub status: String,
    /// Where its saga stands (`reserve` … `notify`, `done`).
    pub saga_step: String,
    /// `sync` or `async`.
    pub flow: String,
    pub quantity: i64,
    pub product_id: i64,
    /// Price × quantity, in cents.
    pub total_cents: i64,
    /// The client's `Idempotency-Key`, when the endpoint reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When it was written, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// When it became terminal, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<i64>,
    /// The W3C trace id of the request that placed it, when the system
    /// reports one: the trace to open when an invariant names this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Order {
    pub fn is_terminal(&self) -> bool {
        self.status == CONFIRMED || self.status == CANCELLED
    }
}

/// A charge as the provider booked it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderCharge {
    pub idempotency_key: String,
    pub order_id: Option<i64>,
    pub amount_cents: i64,
    /// `CHARGED`, `REFUNDED` or `VOIDED` (a key refunded before any charge).
    pub status: String,
}

impl ProviderCharge {
    /// True when money was taken under this key (even if given back).
    pub fn took_money(&self) -> bool {
        self.status == CHARGED || self.status == REFUNDED
    }
}

/// The provider's books, as `GET /ledger` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub charges: i64,
    pub charged_cents: i64,
    pub refunded_cents: i64,
    pub net_cents: i64,
    pub voided: i64,
    pub orders_charged_twice: Vec<i64>,
}

/// A product's stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub stock: i64,
    pub initial_stock: i64,
}

/// Stock held for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub order_id: i64,
    /// 0 for a tombstone (a release that came before any reserve).
    pub product_id: i64,
    pub quantity: i64,
    /// `RESERVED`, `COMMITTED` or `RELEASED`.
    pub status: String,
}

/// A notification sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub order_id: i64,
    pub kind: String,
}

/// What happened to the events of one topic (for one consumer group, when
/// several read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicEvents {
    pub topic: String,
    /// The consumer group these counts are for, when per group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Events published to the topic.
    pub produced: u64,
    /// Distinct events the group processed.
    pub consumed: u64,
    /// Events the group sent to `<topic>.dlq`.
    pub dead_lettered: u64,
}

impl TopicEvents {
    /// `topic` or `topic (group)`, for messages.
    pub fn label(&self) -> String {
        match &self.group {
            Some(g) => format!("{} ({g})", self.topic),
            None => self.topic.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_services_answers_as_they_are() {
        // Extra fields (user_id, requests, name, ...) are ignored.
        let state: FinalState = serde_json::from_str(
            r#"{
            "orders": [{"id":1,"user_id":1,"product_id":1,"quantity":2,"total_cents":2500,
                        "flow":"sync","status":"CONFIRMED","saga_step":"done"}],
            "charges": [{"id":1,"idempotency_key":"order-1","order_id":1,"amount_cents":2500,
                         "status":"CHARGED","requests":2}],
            "ledger": {"charges":1,"charged_cents":2500,"refunded_cents":0,"net_cents":2500,
                       "voided":0,"orders_charged_twice":[]},
            "products": [{"id":1,"name":"Widget","price_cents":1250,"stock":8,"initial_stock":10}],
            "reservations": [{"order_id":1,"product_id":1,"quantity":2,"status":"COMMITTED"}],
            "notifications": [{"id":1,"order_id":1,"kind":"order_confirmed"}]
        }"#,
        )
        .unwrap();
        assert!(state.orders[0].is_terminal());
        assert!(state.charges[0].took_money());
        assert!(state.events.is_none());
    }
}
