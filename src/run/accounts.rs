//! The event path's accounts, read from the broker itself: how far each
//! consumer group is through each topic, and what it dead-lettered. The
//! quiescence check polls the first; the invariants read the second.

use std::collections::BTreeMap;
use std::time::Duration;

use gauntlet_events::dlq::{DLQ_GROUP, DLQ_ORIGINAL_TOPIC};
use gauntlet_events::EventsError;
use gauntlet_reports::state::TopicEvents;
use gauntlet_system::events::SUBSCRIPTIONS;

/// How long reading one topic to its end may take.
const READ_TOPIC_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the broker's accounts could not be read: each names the topic.
/// (The broker's error is boxed: it carries rdkafka's, which is large.)
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("sizing {topic}: {source}")]
    Size {
        topic: &'static str,
        source: Box<EventsError>,
    },
    #[error("committed offsets of {group} on {topic}: {source}")]
    Committed {
        group: &'static str,
        topic: &'static str,
        source: Box<EventsError>,
    },
    #[error("reading {topic}: {source}")]
    DeadLetters {
        topic: String,
        source: Box<EventsError>,
    },
}

/// How far one consumer group is through one topic.
#[derive(Debug, Clone)]
pub struct GroupProgress {
    pub topic: &'static str,
    pub group: &'static str,
    /// Messages in the topic.
    pub produced: u64,
    /// The group's committed offsets, summed: messages it is done with
    /// (handled or dead-lettered).
    pub committed: u64,
}

/// Every (topic, group) pair's progress, read from the broker: cheap
/// enough to poll (no topic is read through).
pub async fn event_progress(bootstrap: &str) -> Result<Vec<GroupProgress>, AccountError> {
    use gauntlet_events::inspect;
    let mut out = Vec::new();
    for (service, topics) in SUBSCRIPTIONS {
        let group = service.as_str();
        for topic in topics.iter().copied() {
            let produced =
                inspect::topic_size(bootstrap, topic)
                    .await
                    .map_err(|e| AccountError::Size {
                        topic,
                        source: Box::new(e),
                    })?;
            let committed: i64 = inspect::committed_offsets(bootstrap, group, topic)
                .await
                .map_err(|e| AccountError::Committed {
                    group,
                    topic,
                    source: Box::new(e),
                })?
                .iter()
                .filter_map(|(_, o)| *o)
                .sum();
            out.push(GroupProgress {
                topic,
                group,
                produced: produced.max(0) as u64,
                committed: committed.max(0) as u64,
            });
        }
    }
    Ok(out)
}

/// Every (topic, group) account of the event path, read from the broker:
/// produced = messages in the topic; dead-lettered = messages in
/// `<topic>.dlq` the group put there; consumed = the group's committed
/// offsets (everything it finished with) less what it dead-lettered.
pub async fn event_accounts(bootstrap: &str) -> Result<Vec<TopicEvents>, AccountError> {
    let mut dead: BTreeMap<(String, String), u64> = BTreeMap::new();
    for topic in gauntlet_system::events::TOPICS {
        let dlq = gauntlet_events::dlq_topic(topic);
        let letters = gauntlet_events::inspect::read_topic(bootstrap, &dlq, READ_TOPIC_TIMEOUT)
            .await
            .map_err(|e| AccountError::DeadLetters {
                topic: dlq.clone(),
                source: Box::new(e),
            })?;
        for d in letters {
            let group = d.header_str(DLQ_GROUP).unwrap_or_default();
            let original = d
                .header_str(DLQ_ORIGINAL_TOPIC)
                .unwrap_or_else(|| topic.to_string());
            *dead.entry((original, group)).or_default() += 1;
        }
    }
    Ok(event_progress(bootstrap)
        .await?
        .into_iter()
        .map(|p| {
            let dead_lettered = dead
                .get(&(p.topic.to_string(), p.group.to_string()))
                .copied()
                .unwrap_or(0);
            TopicEvents {
                topic: p.topic.to_string(),
                group: Some(p.group.to_string()),
                produced: p.produced,
                consumed: p.committed.saturating_sub(dead_lettered),
                dead_lettered,
            }
        })
        .collect())
}
