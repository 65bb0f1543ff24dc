//! Dead letters: a message that failed permanently, or transiently more
//! times than allowed, goes to `<topic>.dlq` unchanged (key, body, original
//! headers) with these headers added, and its consumer moves on.

use crate::handler::Delivery;

/// The error of the last attempt.
pub const DLQ_ERROR: &str = "dlq-error";
/// `transient` (retries exhausted), `permanent`, or `panic`.
pub const DLQ_ERROR_KIND: &str = "dlq-error-kind";
/// Attempts made, in decimal.
pub const DLQ_ATTEMPTS: &str = "dlq-attempts";
pub const DLQ_ORIGINAL_TOPIC: &str = "dlq-original-topic";
pub const DLQ_ORIGINAL_PARTITION: &str = "dlq-original-partition";
pub const DLQ_ORIGINAL_OFFSET: &str = "dlq-original-offset";
/// The consumer group that gave up on the message.
pub const DLQ_GROUP: &str = "dlq-group";

/// Error texts longer than this are cut, so a huge error cannot make the
/// dead letter too large to publish.
const MAX_ERROR_BYTES: usize = 4096;

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Transient,
    Permanent,
    Panic,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Panic => "panic",
        }
    }
}

/// The headers of the dead letter of `msg`: its own, then ours.
pub(crate) fn dead_letter_headers(
    msg: &Delivery,
    group: &str,
    kind: FailureKind,
    error: &str,
    attempts: u32,
) -> Vec<(String, Vec<u8>)> {
    let mut error = error.to_string();
    if error.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
    }
    let mut headers = msg.headers.clone();
    for (k, v) in [
        (DLQ_ERROR, error),
        (DLQ_ERROR_KIND, kind.as_str().to_string()),
        (DLQ_ATTEMPTS, attempts.to_string()),
        (DLQ_ORIGINAL_TOPIC, msg.topic.clone()),
        (DLQ_ORIGINAL_PARTITION, msg.partition.to_string()),
        (DLQ_ORIGINAL_OFFSET, msg.offset.to_string()),
        (DLQ_GROUP, group.to_string()),
    ] {
        headers.push((k.to_string(), v.into_bytes()));
    }
    headers
}

/// What a dead letter says about its failure, read back from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub error: String,
    pub kind: Option<String>,
    pub attempts: u32,
    pub original_topic: String,
    pub original_partition: i32,
    pub original_offset: i64,
    pub group: Option<String>,
}

impl DeadLetter {
    /// Reads the dead-letter headers of a message from a `.dlq` topic;
    /// `None` if any of the required ones is missing or malformed.
    pub fn from_delivery(msg: &Delivery) -> Option<DeadLetter> {
        Some(DeadLetter {
            error: msg.header_str(DLQ_ERROR)?,
            kind: msg.header_str(DLQ_ERROR_KIND),
            attempts: msg.header_str(DLQ_ATTEMPTS)?.parse().ok()?,
            original_topic: msg.header_str(DLQ_ORIGINAL_TOPIC)?,
            original_partition: msg.header_str(DLQ_ORIGINAL_PARTITION)?.parse().ok()?,
            original_offset: msg.header_str(DLQ_ORIGINAL_OFFSET)?.parse().ok()?,
            group: msg.header_str(DLQ_GROUP),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            topic: "orders".into(),
            partition: 2,
            offset: 17,
            key: Some(b"42".to_vec()),
            payload: b"not json".to_vec(),
            headers: vec![("event-id".into(), b"abc".to_vec())],
            timestamp: None,
            attempt: 3,
        }
    }

    #[test]
    fn headers_round_trip() {
        let msg = delivery();
        let mut dead = msg.clone();
        dead.headers = dead_letter_headers(&msg, "g", FailureKind::Transient, "boom", 3);
        assert_eq!(dead.headers[0], ("event-id".to_string(), b"abc".to_vec()));
        let info = DeadLetter::from_delivery(&dead).expect("all headers");
        assert_eq!(
            info,
            DeadLetter {
                error: "boom".into(),
                kind: Some("transient".into()),
                attempts: 3,
                original_topic: "orders".into(),
                original_partition: 2,
                original_offset: 17,
                group: Some("g".into()),
            }
        );
        assert!(DeadLetter::from_delivery(&msg).is_none());
    }

    #[test]
    fn long_errors_are_cut_on_a_char_boundary() {
        let msg = delivery();
        let error = "é".repeat(MAX_ERROR_BYTES);
        let headers = dead_letter_headers(&msg, "g", FailureKind::Permanent, &error, 1);
        let (_, v) = headers
            .iter()
            .find(|(k, _)| k == DLQ_ERROR)
            .expect("error header");
        assert!(v.len() <= MAX_ERROR_BYTES);
        assert!(std::str::from_utf8(v).is_ok());
    }
}
