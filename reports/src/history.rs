//! The history of a run: every client operation as the load generator saw
//! it, Jepsen style. An operation is invoked, then completes `ok` or
//! `fail`, or its outcome stays `unknown` (a timeout or a dropped
//! connection: the server may or may not have acted on it).
//!
//! In JSON a history is an array of operations, in the load generator's
//! wire format (fields this crate does not use are ignored):
//!
//! ```json
//! [{"id": 3, "journey": 9, "kind": "place_order", "intended_us": 10,
//!   "invoke_us": 12, "complete_us": 40, "outcome": "ok", "status": 202,
//!   "order_id": 5, "idempotency_key": "k-9", "detail": "PENDING"}]
//! ```

use serde::{Deserialize, Serialize};

/// Every operation of a run, in invocation order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History {
    pub ops: Vec<Operation>,
}

impl History {
    pub fn new(ops: Vec<Operation>) -> Self {
        Self { ops }
    }

    /// The `place_order` operations.
    pub fn placements(&self) -> impl Iterator<Item = &Operation> {
        self.ops.iter().filter(|o| o.kind == OpKind::PlaceOrder)
    }
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Unique within the run, in invocation order.
    pub id: u64,
    /// The journey it belongs to, when it belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey: Option<u64>,
    pub kind: OpKind,
    /// When it was meant to be sent (the open model's arrival slot), in
    /// microseconds since the run started; queueing before `invoke_us`
    /// counts as latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_us: Option<u64>,
    /// When it was sent, same clock.
    pub invoke_us: u64,
    /// When its answer arrived (or the client gave up), same clock.
    #[serde(default)]
    pub complete_us: Option<u64>,
    pub outcome: Outcome,
    /// The HTTP status, when an answer arrived.
    #[serde(default)]
    pub status: Option<u16>,
    /// The order it created or read, when known.
    #[serde(default)]
    pub order_id: Option<i64>,
    /// The `Idempotency-Key` sent with a `place_order`.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The order flow of a `place_order` (`sync` or `async`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// The order status the answer carried (`CONFIRMED`, `CANCELLED`,
    /// `PENDING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_status: Option<String>,
    /// What went wrong, or the order's state, in a few words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The W3C trace id of the order it placed or read, as the system
    /// recorded it: the trace to open for this operation's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Operation {
    /// Microseconds from the intended send (or the actual one, if earlier)
    /// to the answer, when it completed.
    pub fn latency_us(&self) -> Option<u64> {
        let start = self
            .intended_us
            .map_or(self.invoke_us, |i| i.min(self.invoke_us));
        self.complete_us.map(|c| c.saturating_sub(start))
    }

    /// The order status the client was told: `order_status`, or a `detail`
    /// that is one (the load generator reports it there).
    pub fn told_status(&self) -> Option<&str> {
        const STATUSES: [&str; 3] = ["CONFIRMED", "CANCELLED", "PENDING"];
        self.order_status
            .as_deref()
            .or(self.detail.as_deref())
            .filter(|s| STATUSES.contains(s))
    }
}

pub use gauntlet_model::{OpKind, Outcome};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_json_is_an_array_of_operations() {
        let json = r#"[
          {"id": 1, "kind": "place_order", "invoke_us": 1200, "complete_us": 4810,
           "outcome": "ok", "status": 201, "order_id": 7, "idempotency_key": "k-1",
           "flow": "sync", "order_status": "CONFIRMED"},
          {"id": 2, "kind": "browse", "invoke_us": 1300, "outcome": "unknown",
           "status": null, "order_id": null, "idempotency_key": null}
        ]"#;
        let h: History = serde_json::from_str(json).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.ops[0].latency_us(), Some(3610));
        assert_eq!(h.ops[1].outcome, Outcome::Unknown);
        assert_eq!(h.placements().count(), 1);
        let again: History = serde_json::from_value(serde_json::to_value(&h).unwrap()).unwrap();
        assert_eq!(again, h);
    }

    #[test]
    fn reads_the_load_generators_wire_format() {
        // As the load generator pins it.
        let json = r#"[{"id":3,"journey":9,"kind":"place_order","intended_us":10,"invoke_us":12,"complete_us":40,"outcome":"ok","status":202,"order_id":5,"idempotency_key":"k-9","detail":"PENDING"},
                       {"id":4,"kind":"list_products","intended_us":50,"invoke_us":50,"complete_us":60,"outcome":"fail","status":503,"detail":"service unavailable"},
                       {"id":5,"kind":"get_order","intended_us":70,"invoke_us":70,"complete_us":90,"outcome":"unknown"}]"#;
        let h: History = serde_json::from_str(json).unwrap();
        let op = &h.ops[0];
        assert_eq!(op.kind, OpKind::PlaceOrder);
        assert_eq!(op.journey, Some(9));
        assert_eq!(op.latency_us(), Some(30));
        assert_eq!(op.told_status(), Some("PENDING"));
        assert_eq!(h.ops[1].kind, OpKind::ListProducts);
        assert_eq!(h.ops[1].told_status(), None);
        assert_eq!(h.ops[2].kind.endpoint(), "GET /api/orders/{id}");
    }
}
