//! Publishing to Kafka.
//!
//! Every publish waits for the broker's acknowledgement from all in-sync
//! replicas (`acks=all`) and gives up after a bounded delivery timeout, so a
//! broker outage surfaces as an error the caller can act on (the outbox keeps
//! its row and retries) rather than a future that never ends. A timed-out
//! publish may still have reached the broker: the outcome is unknown, the
//! caller retries, and consumers deduplicate by event id.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;

use crate::context::{Quiet, RECONNECT_BACKOFF_MAX_MS};
use crate::error::EventsError;
use crate::event::{Event, EVENT_ID_HEADER};

/// How long a message may take to be acknowledged before the publish fails
/// (librdkafka's `message.timeout.ms`): long enough to ride out a broker
/// hiccup, short enough that an outage is reported within seconds.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the producer waits to fill a batch (`linger.ms`): librdkafka's
/// own default (and the Java client's since Kafka 4.0). Each message waits
/// up to this long; a batch costs one produce request, one fetch for each
/// group that reads it, and the context switches between them.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);

/// How a producer is set up.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// `host:port[,host:port]` of the brokers.
    pub bootstrap: String,
    /// Names this client in the broker's logs and metrics.
    pub client_id: String,
    /// See [`DEFAULT_DELIVERY_TIMEOUT`].
    pub delivery_timeout: Duration,
    /// See [`DEFAULT_LINGER`].
    pub linger: Duration,
    /// Any other librdkafka producer property, applied last.
    pub overrides: Vec<(String, String)>,
}

impl ProducerSettings {
    pub fn new(bootstrap: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            client_id: client_id.into(),
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
            linger: DEFAULT_LINGER,
            overrides: Vec::new(),
        }
    }
}

/// A Kafka producer. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct EventProducer {
    inner: FutureProducer<Quiet>,
    bootstrap: String,
    delivery_timeout: Duration,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("bootstrap", &self.bootstrap)
            .field("delivery_timeout", &self.delivery_timeout)
            .finish_non_exhaustive()
    }
}

impl EventProducer {
    /// A producer with the default settings.
    pub fn new(bootstrap: &str, client_id: &str) -> Result<Self, EventsError> {
        Self::with_settings(ProducerSettings::new(bootstrap, client_id))
    }

    pub fn with_settings(settings: ProducerSettings) -> Result<Self, EventsError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &settings.bootstrap)
            .set("client.id", &settings.client_id)
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                millis(settings.delivery_timeout).to_string(),
            )
            .set("linger.ms", millis(settings.linger).to_string())
            .set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS)
            // The Java client's partitioner (murmur2 of the key), so a Java
            // or kafka-python producer puts a key on the same partition as
            // ours; librdkafka's default (crc32) would not.
            .set("partitioner", "murmur2_random")
            // The idempotent producer needs more of the protocol than a
            // plain one; ordering per key is kept by the callers instead
            // (the outbox relay has one message per key in flight).
            .set("enable.idempotence", "false");
        for (k, v) in &settings.overrides {
            config.set(k, v);
        }
        let inner = config
            .create_with_context(Quiet)
            .map_err(|source| EventsError::Client {
                what: "producer",
                bootstrap: settings.bootstrap.clone(),
                source,
            })?;
        Ok(Self {
            inner,
            bootstrap: settings.bootstrap,
            delivery_timeout: settings.delivery_timeout,
        })
    }

    /// Publishes `event` to `topic` under `key`, with its id in the
    /// `event-id` header. Returns where it landed: (partition, offset).
    pub async fn publish(
        &self,
        topic: &str,
        key: &str,
        event: &Event,
    ) -> Result<(i32, i64), EventsError> {
        let payload = event.to_json().map_err(|source| EventsError::Encode {
            event_id: event.event_id,
            source,
        })?;
        let id = event.event_id.to_string();
        self.publish_raw(
            topic,
            Some(key.as_bytes()),
            &payload,
            &[(EVENT_ID_HEADER, id.as_bytes())],
        )
        .await
    }

    /// Publishes any bytes: dead letters, outbox rows, injected poison.
    pub async fn publish_raw<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(K, V)],
    ) -> Result<(i32, i64), EventsError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k.as_ref(),
                value: Some(v.as_ref()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).payload(payload).headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        let publish_err = |reason: String| EventsError::Publish {
            topic: topic.to_string(),
            bootstrap: self.bootstrap.clone(),
            reason,
        };
        // librdkafka enforces `message.timeout.ms` itself; the outer bound
        // (twice that, plus the wait for room in the local queue) only
        // guards against a delivery report that never comes.
        let send = self
            .inner
            .send(record, Timeout::After(self.delivery_timeout));
        match tokio::time::timeout(self.delivery_timeout * 3, send).await {
            Err(_) => Err(publish_err(format!(
                "no delivery report within {:?}; outcome unknown",
                self.delivery_timeout * 3
            ))),
            Ok(Err((e, _))) => Err(publish_err(e.to_string())),
            Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
        }
    }

    /// Waits up to `timeout` for every queued message to be delivered.
    pub async fn flush(&self, timeout: Duration) -> Result<(), EventsError> {
        let inner = self.inner.clone();
        let flushed = tokio::task::spawn_blocking(move || inner.flush(timeout))
            .await
            .map_err(|e| EventsError::Task {
                what: "producer flush",
                reason: e.to_string(),
            })?;
        flushed.map_err(|e| EventsError::Publish {
            topic: "(all)".into(),
            bootstrap: self.bootstrap.clone(),
            reason: format!("flush: {e}"),
        })
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
