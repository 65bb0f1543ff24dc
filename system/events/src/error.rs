//! The crate's one error type. Each variant names what failed, where, and
//! (where there is one) what to do about it.

use std::net::SocketAddr;
use std::time::Duration;

use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot start the embedded Kafka broker on {addr}: {reason}")]
    BrokerStart { addr: SocketAddr, reason: String },

    #[error(
        "the embedded Kafka broker on {addr} did not accept connections within {waited:?}; \
         is another process using the port?"
    )]
    BrokerNotReady { addr: SocketAddr, waited: Duration },

    #[error("invalid advertised address '{address}' for the embedded broker: {reason} (expected host:port)")]
    Advertised { address: String, reason: String },

    #[error("cannot create the Kafka {what} for {bootstrap}: {source}")]
    Client {
        what: &'static str,
        bootstrap: String,
        source: KafkaError,
    },

    #[error("cannot create topic '{topic}' via {bootstrap}: {reason}")]
    CreateTopic {
        topic: String,
        bootstrap: String,
        reason: String,
    },

    #[error(
        "cannot publish to '{topic}' via {bootstrap}: {reason} \
         (is the broker reachable and does the topic exist?)"
    )]
    Publish {
        topic: String,
        bootstrap: String,
        reason: String,
    },

    #[error("cannot encode event {event_id} as JSON: {source}")]
    Encode {
        event_id: uuid::Uuid,
        source: serde_json::Error,
    },

    #[error("{what} on consumer group '{group}': {source}")]
    Consumer {
        what: &'static str,
        group: String,
        source: KafkaError,
    },

    #[error("{what} failed: {reason}")]
    Task { what: &'static str, reason: String },

    #[error("outbox database error: {0}")]
    Db(#[from] sqlx::Error),
}
