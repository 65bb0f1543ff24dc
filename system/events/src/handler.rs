//! What a consumer hands its handler, and what the handler answers.

use std::sync::Arc;

use futures::future::BoxFuture;
use rdkafka::message::{Headers, Message};

use crate::event::{Event, EVENT_ID_HEADER};

/// One message as received, owned, so a handler may keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka key, if any (an order id for events).
    pub key: Option<Vec<u8>>,
    /// The message body; empty for a message without one.
    pub payload: Vec<u8>,
    /// Headers in order; a header without a value has an empty one.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Producer's timestamp, milliseconds since the Unix epoch, if known.
    pub timestamp: Option<i64>,
    /// Which attempt at handling this message this is, from 1.
    pub attempt: u32,
}

impl Delivery {
    /// An owned copy of a received message, as attempt 1.
    pub(crate) fn from_message<M: Message>(m: &M) -> Self {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        let value = h.value.map(<[u8]>::to_vec).unwrap_or_default();
                        (h.key.to_string(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Delivery {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
            timestamp: m.timestamp().to_millis(),
            attempt: 1,
        }
    }

    /// The key as text (lossily, should it not be UTF-8).
    pub fn key_str(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }

    /// The last value of header `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The last value of header `name`, as text.
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The `event-id` header.
    pub fn event_id(&self) -> Option<String> {
        self.header_str(EVENT_ID_HEADER)
    }

    /// The body read as an [`Event`]. A body that is not one will never
    /// become one, so that is a [`HandleError::Permanent`].
    pub fn event(&self) -> Result<Event, HandleError> {
        Event::from_json(&self.payload).map_err(|e| {
            HandleError::Permanent(format!(
                "{}/{}@{} is not an event: {e}",
                self.topic, self.partition, self.offset
            ))
        })
    }
}

/// Why a handler did not handle a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Might work later (a dependency is down, the database is busy): the
    /// consumer retries with backoff, then dead-letters.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never work (malformed, violates a rule): dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A database that failed may work later.
impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        Self::Transient(format!("database: {e}"))
    }
}

impl HandleError {
    pub fn transient(e: impl std::fmt::Display) -> Self {
        Self::Transient(e.to_string())
    }

    pub fn permanent(e: impl std::fmt::Display) -> Self {
        Self::Permanent(e.to_string())
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Transient(m) | Self::Permanent(m) => m,
        }
    }
}

/// Handles one message. Called once per attempt; an `Ok` means the effect is
/// done (durably), and the message's offset may be committed.
///
/// Delivery is at least once: the same message can arrive again (after a
/// crash, a rebalance, a lost commit), so a handler makes its effect
/// idempotent, e.g. with [`crate::processed::first_time`].
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(&'a self, msg: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>>;
}

/// A handler from a function, e.g.
/// `handler_fn(|msg| Box::pin(async move { msg.event().map(|_| ()) }))`.
pub fn handler_fn<F>(f: F) -> Arc<dyn Handler>
where
    F: for<'a> Fn(&'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> + Send + Sync + 'static,
{
    struct FnHandler<F>(F);
    impl<F> Handler for FnHandler<F>
    where
        F: for<'a> Fn(&'a Delivery) -> BoxFuture<'a, Result<(), HandleError>>
            + Send
            + Sync
            + 'static,
    {
        fn handle<'a>(&'a self, msg: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
            (self.0)(msg)
        }
    }
    Arc::new(FnHandler(f))
}
