//! Gauntlet's event bus: the Kafka pieces of the reference system's
//! asynchronous order flow.
//!
//! - an **embedded broker** (tansu, in-memory) so a default run needs
//!   nothing installed, which can advertise a fault proxy's address so
//!   every client really talks through the proxy;
//! - **topics** created at start-up (the broker does not create them on
//!   first use), each with its `<topic>.dlq` dead-letter topic;
//! - the **event envelope** (camelCase JSON, past-tense event names, the
//!   event id also in an `event-id` header);
//! - a **producer** with `acks=all` and a bounded delivery timeout;
//! - a **consumer-group loop**: at-least-once, capped and jittered retries
//!   of transient errors, dead letters for permanent ones and exhausted
//!   retries, pause/resume for fault injection, counters, processing-time
//!   histogram and lag;
//! - the **transactional outbox** and its relay, and **processed-event**
//!   deduplication, both in the service's own SQLite database.
//!
//! The client is rdkafka (librdkafka built from its bundled source).
//!
//! # Working with the embedded broker
//!
//! What rdkafka 0.39 needs to know about tansu 0.6, found by running both:
//!
//! - Topics are never created on first use: call [`ensure_topics`] (with
//!   [`topics::with_dlqs`]) before producing or consuming.
//! - tansu's `Broker::main` installs process-wide SIGINT/SIGTERM handlers;
//!   [`EmbeddedBroker`] runs `Broker::serve` instead, so Ctrl-C still
//!   reaches the host program.
//! - tansu reports no bound port, and the advertised address must be fixed
//!   before it starts, so port 0 is resolved by probing for a free port
//!   first (see [`broker`]).
//! - tansu's ListOffsets answer for the end of a partition (what rdkafka's
//!   `fetch_watermarks` asks) is the newest record batch's base offset plus
//!   one, short of the true end whenever that batch holds several records;
//!   its Fetch responses carry the true end. Lag and topic inspection use
//!   the latter (see `watermarks.rs`); nothing here asks for `latest`
//!   offsets otherwise (`auto.offset.reset` is `earliest`).
//! - All data lives in the broker's memory: stopping it loses topics,
//!   messages and committed offsets.
//! - Consumption tops out near 100k messages/s per connection on two cores:
//!   the broker's fetch path costs it CPU per record (see the throughput
//!   benchmark). Production is several times faster.
//!
//! Clients are tuned for a harness that breaks things on purpose:
//! reconnects back off at most 1 s, publishes give up after a bounded
//! delivery timeout, and consumer sessions time out after 10 s. The producer
//! does not use the idempotent protocol; per-key order comes from the outbox
//! relay keeping one message per key in flight, and duplicates are absorbed
//! by consumers deduplicating on event id.
//!
//! # Layout
//!
//! - `broker.rs`: [`EmbeddedBroker`], start on a port, advertise an
//!   address, stop.
//! - `topics.rs`: [`TopicSpec`], [`ensure_topics`], [`dlq_topic`].
//! - `event.rs`: [`Event`], [`EventType`], the `event-id` header.
//! - `producer.rs`: [`EventProducer`], [`ProducerSettings`].
//! - `handler.rs`: [`Delivery`], [`Handler`], [`HandleError`],
//!   [`handler_fn`].
//! - `consumer.rs`: [`Consumer::start`], [`ConsumerConfig`],
//!   [`ConsumerHandle`] (pause, resume, stats, stop).
//! - `backoff.rs`: [`RetrySettings`] and the seeded full-jitter backoff.
//! - `dlq.rs`: the dead-letter headers and [`DeadLetter`] to read them.
//! - `stats.rs`: [`ConsumerStats`], [`PartitionLag`].
//! - `outbox.rs`: [`outbox::OUTBOX_DDL`], [`outbox::enqueue`],
//!   [`OutboxRelay`], [`outbox::backlog`].
//! - `share.rs`: [`Share`], one process's part of a group's partitions
//!   and of an outbox, when processes split them without a coordinator.
//! - `trace.rs`: W3C trace context through the outbox, the message's
//!   `traceparent` header and the consumer's handling span.
//! - `inspect.rs`: topic sizes, committed offsets and whole-topic reads,
//!   from outside any group (for invariants and DLQ sizes).
//! - `processed.rs`: [`processed::PROCESSED_DDL`], [`processed::first_time`].
//! - `watermarks.rs`: true high watermarks on the embedded broker.
//! - `context.rs`: librdkafka's logs and errors into `tracing`.
//! - `error.rs`: [`EventsError`].
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use gauntlet_events::{
//!     ensure_topics, handler_fn, topics, Consumer, ConsumerConfig, EmbeddedBroker, Event,
//!     EventProducer, EventType, TopicSpec,
//! };
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), gauntlet_events::EventsError> {
//! let broker = EmbeddedBroker::start("127.0.0.1:0".parse().expect("address"), None).await?;
//! let bootstrap = broker.bootstrap();
//! ensure_topics(&bootstrap, &topics::with_dlqs(&[TopicSpec::new("orders", 3)])).await?;
//!
//! let producer = EventProducer::new(&bootstrap, "orders")?;
//! let event = Event::new(EventType::OrderCreated, 42, serde_json::json!({"userId": 7}));
//! let (partition, offset) = producer.publish("orders", &event.key(), &event).await?;
//! println!("OrderCreated at {partition}/{offset}");
//!
//! let handler = handler_fn(|msg| {
//!     Box::pin(async move {
//!         let event = msg.event()?; // not an event: dead-lettered
//!         println!("{} for order {}", event.event_type, event.order_id);
//!         Ok(())
//!     })
//! });
//! let consumer = Consumer::start(
//!     ConsumerConfig::new(&bootstrap, "notifications", ["orders"]),
//!     handler,
//! )?;
//! // ... later
//! println!("{} handled", consumer.stats().processed);
//! consumer.stop().await;
//! broker.stop().await;
//! # Ok(())
//! # }
//! ```

pub mod backoff;
pub mod broker;
pub mod consumer;
mod context;
pub mod dlq;
pub mod error;
pub mod event;
pub mod handler;
pub mod inspect;
pub mod outbox;
pub mod processed;
pub mod producer;
pub mod share;
pub mod stats;
pub mod topics;
pub mod trace;
mod watermarks;
pub mod writer;

pub use backoff::RetrySettings;
pub use broker::EmbeddedBroker;
pub use consumer::{Consumer, ConsumerConfig, ConsumerHandle};
pub use dlq::DeadLetter;
pub use error::EventsError;
pub use event::{Event, EventType, EVENT_ID_HEADER};
pub use handler::{handler_fn, Delivery, HandleError, Handler};
pub use outbox::{OutboxRelay, RelaySettings};
pub use producer::{EventProducer, ProducerSettings};
pub use share::Share;
pub use stats::{ConsumerStats, PartitionLag};
pub use topics::{dlq_topic, ensure_topics, TopicSpec};
pub use writer::{WriteConn, WriteTx, Writer};
