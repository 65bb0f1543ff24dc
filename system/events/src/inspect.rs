//! Looking at topics and groups from outside, without joining any group:
//! for invariant checks at the end of a run (every message produced is
//! consumed or dead-lettered), DLQ sizes, and tests.
//!
//! These calls block on the broker, so they run on tokio's blocking pool.
//! Partition ends come from Fetch responses (see `watermarks.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;

use crate::context::{Quiet, RECONNECT_BACKOFF_MAX_MS};
use crate::error::EventsError;
use crate::handler::Delivery;
use crate::watermarks;

/// Bound on each metadata or offset request, and on finding partition ends.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The group id named by inspecting clients that need one; naming a group
/// does not join it (only subscribing does).
const INSPECT_GROUP: &str = "gauntlet-inspect";

fn client(bootstrap: &str, group: &str) -> Result<BaseConsumer<Quiet>, EventsError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // An empty fetch answers at once: we want the partition's end, not
        // to wait for new messages.
        .set("fetch.wait.max.ms", "10")
        .set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS)
        .create_with_context(Quiet)
        .map_err(|source| EventsError::Client {
            what: "inspecting consumer",
            bootstrap: bootstrap.to_string(),
            source,
        })
}

fn err<'a>(what: &'static str, group: &'a str) -> impl Fn(KafkaError) -> EventsError + 'a {
    move |source| EventsError::Consumer {
        what,
        group: group.to_string(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EventsError> + Send + 'static,
) -> Result<T, EventsError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(EventsError::Task {
            what: "inspection",
            reason: e.to_string(),
        })
    })
}

/// Each partition of `topic` with its low watermark and the (possibly
/// short, see `watermarks.rs`) queried high one. Empty if no such topic.
fn queried(c: &BaseConsumer<Quiet>, topic: &str) -> Result<Vec<(i32, i64, i64)>, EventsError> {
    let e = err("cannot read topic metadata", INSPECT_GROUP);
    let metadata = c.fetch_metadata(Some(topic), REQUEST_TIMEOUT).map_err(&e)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .map(|p| {
            let (low, high) = c.fetch_watermarks(topic, p, REQUEST_TIMEOUT).map_err(&e)?;
            Ok((p, low, high))
        })
        .collect()
}

/// Each partition of `topic` with its low and true high watermark: fetches
/// from the queried end (a valid offset at or below the true one) and reads
/// the end off the response.
fn exact(c: &BaseConsumer<Quiet>, topic: &str) -> Result<Vec<(i32, i64, i64)>, EventsError> {
    let marks = queried(c, topic)?;
    if marks.is_empty() {
        return Ok(marks);
    }
    let e = err("cannot find partition ends", INSPECT_GROUP);
    let mut tpl = TopicPartitionList::new();
    for (p, _, high) in &marks {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*high))
            .map_err(&e)?;
    }
    c.assign(&tpl).map_err(&e)?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut out = Vec::with_capacity(marks.len());
    for (p, low, high) in marks {
        let end = loop {
            if let Some((_, fetched)) = watermarks::from_last_fetch(c.client(), topic, p) {
                break fetched.max(high);
            }
            if Instant::now() >= deadline {
                return Err(EventsError::Task {
                    what: "finding partition ends",
                    reason: format!("no fetch answer for {topic}/{p} within {REQUEST_TIMEOUT:?}"),
                });
            }
            // Drives the fetches; what they return is not needed.
            if let Some(Err(e)) = c.poll(Duration::from_millis(20)) {
                tracing::debug!(error = %e, "inspection poll");
            }
        };
        out.push((p, low, end));
    }
    Ok(out)
}

/// Messages ever appended to `topic` (its partitions' high watermarks,
/// summed: offsets start at 0), including any retention has since deleted,
/// so it compares with committed offsets; 0 for a topic that does not
/// exist.
pub async fn topic_size(bootstrap: &str, topic: &str) -> Result<i64, EventsError> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    blocking(move || {
        let c = client(&bootstrap, INSPECT_GROUP)?;
        Ok(exact(&c, &topic)?.iter().map(|(_, _, high)| high).sum())
    })
    .await
}

/// `group`'s committed offset of each partition of `topic` (`None`: none).
pub async fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> Result<Vec<(i32, Option<i64>)>, EventsError> {
    let (bootstrap, group, topic) = (bootstrap.to_string(), group.to_string(), topic.to_string());
    blocking(move || {
        let c = client(&bootstrap, &group)?;
        let mut tpl = TopicPartitionList::new();
        for (p, _, _) in queried(&c, &topic)? {
            tpl.add_partition(&topic, p);
        }
        let committed = c
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .map_err(err("cannot read committed offsets", &group))?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                (e.partition(), offset)
            })
            .collect())
    })
    .await
}

/// Every message in `topic` up to each partition's end at the time of the
/// call, sorted by partition and offset, read within `timeout`.
pub async fn read_topic(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Delivery>, EventsError> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    blocking(move || {
        let c = client(&bootstrap, INSPECT_GROUP)?;
        let e = err("cannot read", INSPECT_GROUP);
        let marks = queried(&c, &topic)?;
        let mut out: Vec<Delivery> = Vec::new();
        if marks.is_empty() {
            return Ok(out);
        }
        let mut tpl = TopicPartitionList::new();
        // Next offset to read, per partition still being read.
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (p, low, _) in &marks {
            tpl.add_partition_offset(&topic, *p, Offset::Offset(*low))
                .map_err(&e)?;
            next.insert(*p, *low);
        }
        c.assign(&tpl).map_err(&e)?;
        let deadline = Instant::now() + timeout;
        while !next.is_empty() {
            if Instant::now() >= deadline {
                return Err(EventsError::Task {
                    what: "reading a topic",
                    reason: format!(
                        "{topic}: partitions {:?} not read to the end within {timeout:?}",
                        next.keys().collect::<Vec<_>>()
                    ),
                });
            }
            if let Some(received) = c.poll(Duration::from_millis(20)) {
                let m = received.map_err(&e)?;
                if let Some(n) = next.get_mut(&m.partition()) {
                    out.push(Delivery::from_message(&m));
                    *n = m.offset() + 1;
                }
            }
            next.retain(|p, n| {
                watermarks::from_last_fetch(c.client(), &topic, *p).is_none_or(|(_, end)| *n < end)
            });
        }
        out.sort_by_key(|d| (d.partition, d.offset));
        Ok(out)
    })
    .await
}
