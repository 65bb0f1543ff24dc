//! Topic creation. The embedded broker does not create topics on first use
//! (and a real cluster may be configured not to either), so every service
//! creates the topics it uses at start-up, dead-letter topics included.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::context::Quiet;
use crate::error::EventsError;

/// How long topic creation may take, broker round trip included.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);
/// Suffix of a topic's dead-letter topic.
pub const DLQ_SUFFIX: &str = ".dlq";

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    /// Partitions (at least 1). Events of one key stay in order only within
    /// a partition; more partitions let more consumers of a group share the
    /// work.
    pub partitions: i32,
}

impl TopicSpec {
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
        }
    }

    /// This topic's dead-letter topic, with as many partitions.
    pub fn dlq(&self) -> TopicSpec {
        TopicSpec::new(dlq_topic(&self.name), self.partitions)
    }
}

/// The dead-letter topic of `topic`: `<topic>.dlq`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// Each of `topics` followed by its dead-letter topic.
pub fn with_dlqs(topics: &[TopicSpec]) -> Vec<TopicSpec> {
    topics.iter().flat_map(|t| [t.clone(), t.dlq()]).collect()
}

/// Creates every topic that does not exist yet (replication factor 1). A
/// topic that already exists is left as it is, whatever its partitions.
pub async fn ensure_topics(bootstrap: &str, topics: &[TopicSpec]) -> Result<(), EventsError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<Quiet> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create_with_context(Quiet)
        .map_err(|source| EventsError::Client {
            what: "admin client",
            bootstrap: bootstrap.to_string(),
            source,
        })?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(CREATE_TIMEOUT))
        .operation_timeout(Some(CREATE_TIMEOUT));
    let create_err = |topic: &str, reason: String| EventsError::CreateTopic {
        topic: topic.to_string(),
        bootstrap: bootstrap.to_string(),
        reason,
    };
    let all = topics
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    // librdkafka bounds the request itself; this outer bound only guards
    // against a reply that never comes.
    let results = tokio::time::timeout(CREATE_TIMEOUT * 2, admin.create_topics(&new, &options))
        .await
        .map_err(|_| create_err(&all, format!("no answer within {:?}", CREATE_TIMEOUT * 2)))?
        .map_err(|e| create_err(&all, e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(create_err(&topic, code.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_names() {
        assert_eq!(dlq_topic("orders"), "orders.dlq");
        let specs = with_dlqs(&[TopicSpec::new("a", 3)]);
        assert_eq!(
            specs,
            vec![TopicSpec::new("a", 3), TopicSpec::new("a.dlq", 3)]
        );
    }
}
