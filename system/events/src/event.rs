//! The event envelope every message on the bus carries, as camelCase JSON:
//!
//! ```json
//! {"eventType":"OrderCreated","eventId":"6f1c…","timestamp":1718000000000,
//!  "orderId":42,"payload":{"userId":7}}
//! ```
//!
//! `timestamp` is milliseconds since the Unix epoch, like every `*_at` column
//! of the services' databases. The event id also travels as the Kafka header
//! [`EVENT_ID_HEADER`], so a consumer can deduplicate (or a dead-letter
//! reader can identify) a message whose body it cannot parse.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The Kafka header that carries [`Event::event_id`].
pub const EVENT_ID_HEADER: &str = "event-id";

/// What happened. Names are past tense: an event is a fact, not a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// Orders accepted an order (async flow) and wrote it with this event.
    OrderCreated,
    /// Catalog reserved the order's stock.
    StockReserved,
    /// Catalog could not reserve the stock (unknown product, not enough).
    StockReservationFailed,
    /// Catalog released a reservation (compensation).
    StockReleased,
    /// Payments charged the order.
    PaymentCompleted,
    /// Payments could not charge the order.
    PaymentFailed,
    /// Payments refunded a charge (compensation).
    PaymentRefunded,
    /// Orders moved the order to CONFIRMED.
    OrderConfirmed,
    /// Orders moved the order to CANCELLED.
    OrderCancelled,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::OrderCreated,
        EventType::StockReserved,
        EventType::StockReservationFailed,
        EventType::StockReleased,
        EventType::PaymentCompleted,
        EventType::PaymentFailed,
        EventType::PaymentRefunded,
        EventType::OrderConfirmed,
        EventType::OrderCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderCreated => "OrderCreated",
            Self::StockReserved => "StockReserved",
            Self::StockReservationFailed => "StockReservationFailed",
            Self::StockReleased => "StockReleased",
            Self::PaymentCompleted => "PaymentCompleted",
            Self::PaymentFailed => "PaymentFailed",
            Self::PaymentRefunded => "PaymentRefunded",
            Self::OrderConfirmed => "OrderConfirmed",
            Self::OrderCancelled => "OrderCancelled",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown event type '{0}'")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_string()))
    }
}

/// One event. Unknown fields are ignored when reading, so a newer producer
/// can add fields without breaking older consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_type: EventType,
    /// Unique per event (not per delivery): the deduplication key.
    pub event_id: Uuid,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The order the event is about; also the Kafka key, so all events of
    /// one order land on one partition, in order.
    pub order_id: i64,
    /// Event-specific fields.
    #[serde(default)]
    pub payload: serde_json::Value,
}

impl Event {
    /// A new event with a fresh id, stamped now. The id is a UUIDv7: its
    /// leading bits are the time, so ids made later sort later, and the
    /// indexes keyed by it (the outbox's, the processed events') take each
    /// new one on their last page, as they would an integer key. A random
    /// id lands on a page of its own: every event written cost one more
    /// page in its commit's WAL frames, and one more in the page cache.
    pub fn new(event_type: EventType, order_id: i64, payload: serde_json::Value) -> Self {
        Self::with_id(Uuid::now_v7(), event_type, order_id, now_ms(), payload)
    }

    /// An event with a given id and time: for replays, tests, and events
    /// derived deterministically from another (so a redelivered input
    /// produces the same output id and deduplicates downstream).
    pub fn with_id(
        event_id: Uuid,
        event_type: EventType,
        order_id: i64,
        timestamp: i64,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            event_type,
            event_id,
            timestamp,
            order_id,
            payload,
        }
    }

    /// The order id as the Kafka key.
    pub fn key(&self) -> String {
        self.order_id.to_string()
    }

    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The payload read as `T`.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.payload)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_format_is_camel_case() {
        let id = Uuid::parse_str("6f1c2a52-9d0e-4b7e-8a43-2f5d7c1e9b10").expect("valid uuid");
        let event = Event::with_id(
            id,
            EventType::OrderCreated,
            42,
            1_718_000_000_000,
            json!({"userId": 7}),
        );
        let text = String::from_utf8(event.to_json().expect("encodes")).expect("utf-8");
        assert_eq!(
            text,
            r#"{"eventType":"OrderCreated","eventId":"6f1c2a52-9d0e-4b7e-8a43-2f5d7c1e9b10","timestamp":1718000000000,"orderId":42,"payload":{"userId":7}}"#
        );
        assert_eq!(Event::from_json(text.as_bytes()).expect("decodes"), event);
    }

    #[test]
    fn unknown_fields_are_ignored_and_payload_defaults() {
        let text = r#"{"eventType":"PaymentFailed","eventId":"6f1c2a52-9d0e-4b7e-8a43-2f5d7c1e9b10","timestamp":1,"orderId":3,"extra":true}"#;
        let event = Event::from_json(text.as_bytes()).expect("decodes");
        assert_eq!(event.event_type, EventType::PaymentFailed);
        assert_eq!(event.payload, serde_json::Value::Null);
        assert_eq!(event.key(), "3");
    }

    #[test]
    fn unknown_event_type_is_an_error() {
        let text = r#"{"eventType":"OrderEaten","eventId":"6f1c2a52-9d0e-4b7e-8a43-2f5d7c1e9b10","timestamp":1,"orderId":3}"#;
        assert!(Event::from_json(text.as_bytes()).is_err());
        assert!("OrderEaten".parse::<EventType>().is_err());
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().ok(), Some(t));
        }
    }

    #[test]
    fn payload_reads_as_a_type() {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Created {
            user_id: i64,
        }
        let event = Event::new(EventType::OrderCreated, 1, json!({"userId": 9}));
        assert_eq!(event.payload_as::<Created>().expect("fits").user_id, 9);
    }
}
