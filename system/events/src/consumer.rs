//! A consumer-group loop with retries, dead letters, pause/resume and lag.
//!
//! Semantics:
//! - **At least once.** Offsets are stored only once a message is done with
//!   (handled, or dead-lettered) and committed from those stored offsets
//!   every `commit_interval`, on a rebalance and on [`ConsumerHandle::stop`].
//!   A crash redelivers what was not committed; handlers deduplicate.
//! - **Concurrency by key.** Up to `max_in_flight` messages are handled at
//!   once, but never two of one key (the key is the entity, an order id
//!   here, on whatever topic): a key's messages are handled one after the
//!   other in the order received. Keyless messages are ordered per
//!   partition. An offset is stored only once every message before it on
//!   its partition is done, so a crash redelivers from the oldest message
//!   not done. `max_in_flight = 1` handles one message at a time.
//! - **Transient errors** are retried in place with capped exponential
//!   backoff and full jitter, up to `retry.max_attempts` attempts: the
//!   key waits at most about `max_attempts × max_delay`, then the
//!   message is dead-lettered and the consumer moves on. Retrying in place
//!   keeps each key's events in order.
//! - **Permanent errors**, handler panics, and exhausted retries send the
//!   message to `<topic>.dlq` (see [`crate::dlq`]). If the dead-letter topic
//!   cannot be written either, the consumer keeps trying (with backoff) and
//!   does not move past the message: it is never dropped on the floor.
//! - **Batches share commits.** Handlers run inside
//!   [`crate::writer::lingering`] with `write_linger`: what they write
//!   through a [`crate::Writer`]'s group commit waits up to that long for
//!   the rest of their fetched batch, so one commit serves many messages.
//!   Each message is still its own piece of work: one that fails is
//!   rolled back alone, and an offset is stored only once its message's
//!   commit is done.
//! - **Pause** stops fetching on every assigned partition (and on any
//!   assigned later) while the loop keeps polling, so the consumer stays in
//!   its group: exactly what a stalled consumer looks like to the broker.

use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, RetrySettings};
use crate::context;
use crate::dlq::{dead_letter_headers, FailureKind};
use crate::error::EventsError;
use crate::handler::{Delivery, HandleError, Handler};
use crate::producer::{millis, EventProducer, ProducerSettings};
use crate::share::Share;
use crate::stats::{ConsumerStats, Counters, PartitionLag};
use crate::topics::dlq_topic;
use crate::trace;
use crate::watermarks;
use tracing::Instrument;

/// How often stored offsets are committed. Kafka's default is 5 s; shorter
/// means less is redelivered after a crash, for one small request a second.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How long the broker waits for a silent consumer before reassigning its
/// partitions. Kafka's default (45 s) would make a crashed consumer's
/// partitions sit idle for most of a short run.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often lag is measured (two small requests per partition).
pub const DEFAULT_LAG_INTERVAL: Duration = Duration::from_millis(500);
/// An attempt running longer than this counts as a transient failure, so a
/// hung dependency cannot wedge the consumer (or its `stop`) for good.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one dead-letter publish may take before it is retried.
pub const DEFAULT_DLQ_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a handler's group commit may wait for the other handlers of
/// its batch (see [`crate::writer::lingering`]): a fetched batch's
/// messages are handled at once, and their writes land within about a
/// millisecond of each other.
pub const DEFAULT_WRITE_LINGER: Duration = Duration::from_millis(2);

/// After a failed receive, wait this long before the next: the client is
/// already reconnecting, and a tight loop would only burn a core.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Bound on each broker request the lag measurement and final commit make.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `stop` waits for the client to close (commit, leave the
/// group). With the broker up that takes well under a second; with the
/// broker gone librdkafka gives up only after about the session timeout, and
/// the close finishes in the background after `stop` returns.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How a consumer is set up.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `host:port[,host:port]` of the brokers.
    pub bootstrap: String,
    /// The consumer group: consumers of one group share the partitions, and
    /// the group's committed offsets say where a restarted one resumes.
    pub group: String,
    pub topics: Vec<String>,
    pub retry: RetrySettings,
    /// Names this client to the broker; defaults to the group.
    pub client_id: Option<String>,
    /// See [`DEFAULT_HANDLER_TIMEOUT`].
    pub handler_timeout: Duration,
    /// See [`DEFAULT_SESSION_TIMEOUT`].
    pub session_timeout: Duration,
    /// See [`DEFAULT_COMMIT_INTERVAL`].
    pub commit_interval: Duration,
    /// See [`DEFAULT_LAG_INTERVAL`].
    pub lag_interval: Duration,
    /// See [`DEFAULT_DLQ_DELIVERY_TIMEOUT`].
    pub dlq_delivery_timeout: Duration,
    /// Any other librdkafka consumer property, applied last.
    pub overrides: Vec<(String, String)>,
    /// `Some(n)`: take partitions `0..n` of every topic directly instead of
    /// joining the group's membership protocol; offsets are still committed
    /// to, and resumed from, the group. For a group with exactly one
    /// member: it never waits on a rebalance, and a member that vanished
    /// without leaving (a crash, a cut link) cannot hold partitions hostage
    /// on a broker slow to expire it, as the embedded one is.
    pub static_partitions: Option<i32>,
    /// With `static_partitions`: which of them this consumer takes, so
    /// several processes of one group split them with no coordinator.
    /// Ignored when the group's membership protocol assigns partitions.
    pub share: Share,
    /// The most messages handled at once (at least 1); see the module docs.
    pub max_in_flight: usize,
    /// See [`DEFAULT_WRITE_LINGER`]; zero: handlers' writes never wait.
    pub write_linger: Duration,
}

impl ConsumerConfig {
    /// Defaults for everything but what must be given. A group with no
    /// committed offset starts at the beginning of each partition, so events
    /// published before the consumer first joined are not missed.
    pub fn new(
        bootstrap: impl Into<String>,
        group: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            retry: RetrySettings::default(),
            client_id: None,
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            lag_interval: DEFAULT_LAG_INTERVAL,
            dlq_delivery_timeout: DEFAULT_DLQ_DELIVERY_TIMEOUT,
            overrides: Vec::new(),
            static_partitions: None,
            share: Share::default(),
            max_in_flight: 1,
            write_linger: DEFAULT_WRITE_LINGER,
        }
    }
}

/// The rdkafka context of a group consumer: logging, plus re-pausing newly
/// assigned partitions while the consumer is paused.
struct GroupContext {
    counters: Arc<Counters>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        context::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        context::report_error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // What was done on partitions about to go is committed before
        // another member takes them, so it resumes there and not where the
        // last timed commit left off (handlers deduplicate either way).
        if let Rebalance::Revoke(tpl) = rebalance {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    Counters::bump(&self.counters.client_errors);
                    tracing::warn!(error = %e, partitions = tpl.count(), "cannot commit before a revoke");
                }
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::debug!(partitions = tpl.count(), "partitions assigned");
                if self.counters.paused.load(Ordering::SeqCst) {
                    if let Err(e) = consumer.pause(tpl) {
                        Counters::bump(&self.counters.client_errors);
                        tracing::warn!(error = %e, "cannot pause newly assigned partitions");
                    }
                }
            }
            Rebalance::Revoke(tpl) => {
                tracing::debug!(partitions = tpl.count(), "partitions revoked")
            }
            Rebalance::Error(e) => {
                Counters::bump(&self.counters.client_errors);
                tracing::warn!(error = %e, "rebalance error");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {}
            // Nothing new was stored since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                Counters::bump(&self.counters.client_errors);
                tracing::debug!(error = %e, "offset commit failed");
            }
        }
    }
}

type GroupConsumer = StreamConsumer<GroupContext>;

/// What the loop, the lag task and the handle share.
struct Shared {
    consumer: ClosingConsumer,
    counters: Arc<Counters>,
    group: String,
}

/// A group consumer that closes on a thread of its own when dropped.
///
/// Closing blocks (it commits and leaves the group, for up to the session
/// timeout when the broker is unreachable); on a runtime thread that would
/// stall every task scheduled there.
struct ClosingConsumer {
    consumer: ManuallyDrop<GroupConsumer>,
    closed: Option<oneshot::Sender<()>>,
}

impl Deref for ClosingConsumer {
    type Target = GroupConsumer;
    fn deref(&self) -> &GroupConsumer {
        &self.consumer
    }
}

impl Drop for ClosingConsumer {
    fn drop(&mut self) {
        // SAFETY: this is the drop of `consumer`'s owner; it is taken once
        // and never used through `self` again.
        let consumer = unsafe { ManuallyDrop::take(&mut self.consumer) };
        let closed = self.closed.take();
        let close = move || {
            drop(consumer);
            if let Some(closed) = closed {
                let _ = closed.send(());
            }
        };
        // Should the thread not start, the closure (and the consumer) is
        // dropped, and so closed, right here.
        if let Err(e) = std::thread::Builder::new()
            .name("kafka-consumer-close".into())
            .spawn(close)
        {
            tracing::warn!(error = %e, "closed the consumer inline");
        }
    }
}

/// Starts consumer-group loops; see the module docs.
pub struct Consumer;

impl Consumer {
    /// Joins `config.group`, subscribes to `config.topics` and handles every
    /// message with `handler` on a new task. Must be called within a tokio
    /// runtime. The topics (and their `.dlq` topics) should exist.
    pub fn start(
        config: ConsumerConfig,
        handler: Arc<dyn Handler>,
    ) -> Result<ConsumerHandle, EventsError> {
        // The dead-letter producer is made on the first dead letter: an
        // idle client still wakes its threads, and most consumers never
        // dead-letter anything.
        let mut dlq_settings = ProducerSettings::new(
            config.bootstrap.clone(),
            format!(
                "{}-dlq",
                config.client_id.as_deref().unwrap_or(&config.group)
            ),
        );
        dlq_settings.delivery_timeout = config.dlq_delivery_timeout;
        let dlq = LazyProducer::new(dlq_settings);
        let counters = Arc::new(Counters::new());
        let client_err = |source| EventsError::Client {
            what: "consumer",
            bootstrap: config.bootstrap.clone(),
            source,
        };
        let mut kafka = ClientConfig::new();
        kafka
            .set("bootstrap.servers", &config.bootstrap)
            .set("group.id", &config.group)
            .set(
                "client.id",
                config.client_id.as_deref().unwrap_or(&config.group),
            )
            .set("auto.offset.reset", "earliest")
            .set(
                "reconnect.backoff.max.ms",
                context::RECONNECT_BACKOFF_MAX_MS,
            )
            // Offsets are stored by the loop once a message is done, and
            // committed from the store in the background.
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.commit.interval.ms",
                millis(config.commit_interval).to_string(),
            )
            .set(
                "session.timeout.ms",
                millis(config.session_timeout).to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (millis(config.session_timeout) / 3).max(1).to_string(),
            );
        for (k, v) in &config.overrides {
            kafka.set(k, v);
        }
        let consumer: GroupConsumer = kafka
            .create_with_context(GroupContext {
                counters: counters.clone(),
            })
            .map_err(client_err)?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        let group_err = |what| {
            let group = config.group.clone();
            move |source| EventsError::Consumer {
                what,
                group,
                source,
            }
        };
        if let Some(partitions) = config.static_partitions {
            let mut tpl = TopicPartitionList::new();
            for topic in &topics {
                for p in config.share.partitions(partitions) {
                    tpl.add_partition_offset(topic, p, Offset::Stored)
                        .map_err(group_err("cannot assign"))?;
                }
            }
            consumer.assign(&tpl).map_err(group_err("cannot assign"))?;
        } else {
            consumer
                .subscribe(&topics)
                .map_err(group_err("cannot subscribe"))?;
        }

        let (closed_tx, closed) = oneshot::channel();
        let shared = Arc::new(Shared {
            consumer: ClosingConsumer {
                consumer: ManuallyDrop::new(consumer),
                closed: Some(closed_tx),
            },
            counters,
            group: config.group.clone(),
        });
        let cancel = CancellationToken::new();
        let kill = CancellationToken::new();
        let worker = Worker {
            shared: shared.clone(),
            processor: Arc::new(Processor {
                shared: shared.clone(),
                handler,
                dlq,
                backoff: parking_lot::Mutex::new(Backoff::new(
                    config.retry.base_delay,
                    config.retry.max_delay,
                    config.retry.seed,
                )),
                retry: config.retry.clone(),
                handler_timeout: config.handler_timeout,
                write_linger: config.write_linger,
                cancel: cancel.clone(),
            }),
            max_in_flight: config.max_in_flight.max(1),
            cancel: cancel.clone(),
            kill: kill.clone(),
        };
        let task = tokio::spawn(worker.run());
        let lag_task = tokio::spawn(measure_lag(
            shared.clone(),
            config.lag_interval,
            cancel.clone(),
        ));
        tracing::info!(group = %config.group, topics = ?config.topics, "consumer started");
        Ok(ConsumerHandle {
            shared: Some(shared),
            closed: Some(closed),
            cancel,
            kill,
            task: Some(task),
            lag_task: Some(lag_task),
        })
    }
}

/// A running consumer. Dropping it stops it without waiting; prefer
/// [`ConsumerHandle::stop`], which commits and leaves the group first.
pub struct ConsumerHandle {
    shared: Option<Arc<Shared>>,
    closed: Option<oneshot::Receiver<()>>,
    cancel: CancellationToken,
    /// Fired on drop only: abandons the message in hand, as a crash would.
    kill: CancellationToken,
    task: Option<JoinHandle<()>>,
    lag_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ConsumerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("group", &self.shared.as_ref().map(|s| s.group.clone()))
            .finish_non_exhaustive()
    }
}

impl ConsumerHandle {
    fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.as_ref()
    }

    /// Stops fetching on every assigned partition (and any assigned later)
    /// without leaving the group. The message being handled, if any, is
    /// finished.
    pub fn pause(&self) -> Result<(), EventsError> {
        self.set_paused(true)
    }

    /// Undoes [`ConsumerHandle::pause`]: fetching resumes where it stopped.
    pub fn resume(&self) -> Result<(), EventsError> {
        self.set_paused(false)
    }

    fn set_paused(&self, paused: bool) -> Result<(), EventsError> {
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        // Set the flag first: a rebalance from here on pauses what it
        // assigns, and the partitions assigned until now are paused below.
        shared.counters.paused.store(paused, Ordering::SeqCst);
        let what = if paused {
            "cannot pause"
        } else {
            "cannot resume"
        };
        let err = |source| EventsError::Consumer {
            what,
            group: shared.group.clone(),
            source,
        };
        let assignment = shared.consumer.assignment().map_err(err)?;
        if paused {
            shared.consumer.pause(&assignment).map_err(err)?;
        } else {
            shared.consumer.resume(&assignment).map_err(err)?;
        }
        tracing::info!(group = %shared.group, paused, "consumer pause state changed");
        Ok(())
    }

    /// A snapshot of the counters, timings and lag.
    pub fn stats(&self) -> ConsumerStats {
        match self.shared() {
            Some(s) => s.counters.snapshot(&s.group),
            None => Counters::new().snapshot(""),
        }
    }

    /// Finishes the message in hand (pending retries are abandoned: the
    /// message will be redelivered), then closes the client, which commits
    /// what was done and leaves the group. Waits for that at most a few
    /// seconds: with the broker unreachable the close goes on in the
    /// background (librdkafka gives up after about the session timeout).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        for task in [self.task.take(), self.lag_task.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "consumer task failed");
            }
        }
        let Some(shared) = self.shared.take() else {
            return;
        };
        let group = shared.group.clone();
        // The last reference: dropping it closes the client (see
        // `ClosingConsumer`).
        drop(shared);
        let Some(closed) = self.closed.take() else {
            return;
        };
        match tokio::time::timeout(CLOSE_WAIT, closed).await {
            Ok(_) => tracing::info!(%group, "consumer stopped"),
            Err(_) => tracing::warn!(
                %group,
                "consumer still closing after {CLOSE_WAIT:?}; is the broker reachable?"
            ),
        }
    }
}

impl Drop for ConsumerHandle {
    /// A drop is a crash: the message in hand is abandoned where it stands
    /// (not stored, so redelivered), unlike [`ConsumerHandle::stop`], which
    /// finishes it.
    fn drop(&mut self) {
        self.kill.cancel();
        self.cancel.cancel();
    }
}

/// The message loop of one consumer: receives, hands each message to a
/// task in its key's lane, and stores offsets as they become contiguous.
struct Worker {
    shared: Arc<Shared>,
    processor: Arc<Processor>,
    max_in_flight: usize,
    cancel: CancellationToken,
    kill: CancellationToken,
}

/// A producer made when first asked for, then kept.
struct LazyProducer {
    settings: ProducerSettings,
    made: parking_lot::Mutex<Option<EventProducer>>,
}

impl LazyProducer {
    fn new(settings: ProducerSettings) -> Self {
        Self {
            settings,
            made: parking_lot::Mutex::new(None),
        }
    }

    fn get(&self) -> Result<EventProducer, EventsError> {
        let mut made = self.made.lock();
        if let Some(p) = made.as_ref() {
            return Ok(p.clone());
        }
        let p = EventProducer::with_settings(self.settings.clone())?;
        *made = Some(p.clone());
        Ok(p)
    }
}

/// Handles one message at a time (many of these run at once).
struct Processor {
    shared: Arc<Shared>,
    handler: Arc<dyn Handler>,
    dlq: LazyProducer,
    backoff: parking_lot::Mutex<Backoff>,
    retry: RetrySettings,
    handler_timeout: Duration,
    write_linger: Duration,
    cancel: CancellationToken,
}

/// How a message ended.
enum Outcome {
    /// Handled or dead-lettered: its offset may be committed.
    Done,
    /// Stopping before it was done: it will be redelivered.
    Abandoned,
}

/// Messages of one lane are handled in order, one at a time.
type Lane = Vec<u8>;

/// The lane of a message: its key (on any topic), or for a keyless one
/// its partition.
fn lane_of(msg: &Delivery) -> Lane {
    match &msg.key {
        Some(k) => {
            let mut lane = Vec::with_capacity(k.len() + 1);
            lane.push(b'k');
            lane.extend_from_slice(k);
            lane
        }
        None => format!("p{}/{}", msg.topic, msg.partition).into_bytes(),
    }
}

/// A finished task: its lane, its message, how it ended, how long it took.
type Finished = (Lane, Delivery, Outcome, Duration);

/// Offsets received and not yet done, per partition, and what was stored.
#[derive(Default)]
struct Offsets {
    outstanding: std::collections::HashMap<(String, i32), std::collections::BTreeSet<i64>>,
    /// Highest offset done, and highest stored, per partition.
    done: std::collections::HashMap<(String, i32), (i64, i64)>,
}

impl Offsets {
    fn received(&mut self, msg: &Delivery) {
        self.outstanding
            .entry((msg.topic.clone(), msg.partition))
            .or_default()
            .insert(msg.offset);
    }

    /// Marks `msg` done; returns the offset to store now, if it moved:
    /// the last one before the oldest still outstanding on its partition.
    fn finished(&mut self, msg: &Delivery) -> Option<i64> {
        let key = (msg.topic.clone(), msg.partition);
        let waiting = self.outstanding.entry(key.clone()).or_default();
        waiting.remove(&msg.offset);
        let oldest = waiting.first().copied();
        let (done, stored) = self.done.entry(key).or_insert((-1, -1));
        *done = (*done).max(msg.offset);
        let storable = match oldest {
            Some(o) => o - 1,
            None => *done,
        };
        (storable > *stored).then(|| {
            *stored = storable;
            storable
        })
    }
}

impl Worker {
    async fn run(self) {
        let mut tasks: tokio::task::JoinSet<Finished> = tokio::task::JoinSet::new();
        // A lane is present while busy; its queue holds what waits.
        let mut lanes: std::collections::HashMap<Lane, std::collections::VecDeque<Delivery>> =
            std::collections::HashMap::new();
        let mut offsets = Offsets::default();
        // Received and not done: running or waiting in a lane.
        let mut in_hand = 0usize;
        loop {
            tokio::select! {
                biased;
                // A crash: whatever is in hand is abandoned where it stands.
                _ = self.kill.cancelled() => {
                    tasks.abort_all();
                    return;
                }
                _ = self.cancel.cancelled() => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    let (lane, msg, outcome, took) = match joined {
                        Ok(finished) => finished,
                        Err(e) => {
                            // Handler panics are caught inside the task, so
                            // this is a bug of ours: stop, storing nothing
                            // more, so what is in hand is redelivered.
                            tracing::error!(error = %e, group = %self.shared.group, "consumer task failed; consumer stopped");
                            break;
                        }
                    };
                    match outcome {
                        Outcome::Abandoned => break,
                        Outcome::Done => {
                            in_hand -= 1;
                            self.done(&mut offsets, &msg, took);
                            match lanes.get_mut(&lane).and_then(|q| q.pop_front()) {
                                Some(next) => self.spawn(&mut tasks, lane, next),
                                None => {
                                    lanes.remove(&lane);
                                }
                            }
                        }
                    }
                }
                received = self.shared.consumer.recv(), if in_hand < self.max_in_flight => {
                    let msg = match received {
                        Ok(m) => Delivery::from_message(&m),
                        Err(e) => {
                            Counters::bump(&self.shared.counters.client_errors);
                            tracing::debug!(error = %e, group = %self.shared.group, "receive failed");
                            if self.processor.sleep(RECEIVE_ERROR_PAUSE).await {
                                break;
                            }
                            continue;
                        }
                    };
                    in_hand += 1;
                    offsets.received(&msg);
                    let lane = lane_of(&msg);
                    match lanes.get_mut(&lane) {
                        Some(queue) => queue.push_back(msg),
                        None => {
                            lanes.insert(lane.clone(), std::collections::VecDeque::new());
                            self.spawn(&mut tasks, lane, msg);
                        }
                    }
                }
            }
        }
        // Stopping: the messages being handled finish (pending retries are
        // abandoned); those still waiting in a lane are left to redelivery.
        loop {
            tokio::select! {
                biased;
                _ = self.kill.cancelled() => {
                    tasks.abort_all();
                    return;
                }
                joined = tasks.join_next() => match joined {
                    None => return,
                    Some(Ok((_, msg, Outcome::Done, took))) => self.done(&mut offsets, &msg, took),
                    Some(_) => {}
                },
            }
        }
    }

    fn spawn(&self, tasks: &mut tokio::task::JoinSet<Finished>, lane: Lane, mut msg: Delivery) {
        let processor = self.processor.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let outcome = processor.process(&mut msg).await;
            (lane, msg, outcome, started.elapsed())
        });
    }

    /// Stores what `msg` being done makes storable, and counts it.
    fn done(&self, offsets: &mut Offsets, msg: &Delivery, took: Duration) {
        let Some(offset) = offsets.finished(msg) else {
            self.shared.counters.record_processing(took);
            return;
        };
        if let Err(e) = self
            .shared
            .consumer
            .store_offset(&msg.topic, msg.partition, offset)
        {
            // The partition was revoked meanwhile; its new owner gets the
            // message again.
            Counters::bump(&self.shared.counters.client_errors);
            tracing::debug!(error = %e, "cannot store offset");
        }
        self.shared
            .counters
            .record_done(&msg.topic, msg.partition, offset, took);
    }
}

impl Processor {
    /// Attempts, retries, and if need be dead-letters one message.
    async fn process(&self, msg: &mut Delivery) -> Outcome {
        let counters = self.shared.counters.clone();
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            msg.attempt = attempt;
            let (kind, error) = match self.attempt(msg).await {
                Ok(()) => {
                    Counters::bump(&counters.processed);
                    return Outcome::Done;
                }
                Err(failure) => failure,
            };
            Counters::bump(&counters.errors);
            if kind == FailureKind::Transient && attempt < max_attempts {
                tracing::debug!(
                    topic = %msg.topic, partition = msg.partition, offset = msg.offset,
                    attempt, %error, "transient failure, retrying"
                );
                Counters::bump(&counters.retries);
                let delay = self.backoff.lock().delay(attempt);
                if self.sleep(delay).await {
                    return Outcome::Abandoned;
                }
                attempt += 1;
                continue;
            }
            return self.dead_letter(msg, kind, &error, attempt).await;
        }
    }

    /// One handler attempt; a panic or a time-out is a failure like any
    /// other, never the end of the consumer.
    async fn attempt(&self, msg: &Delivery) -> Result<(), (FailureKind, String)> {
        // Handling continues the trace of the publish that sent it (its
        // `traceparent` header), so what the handler writes and calls is
        // part of the same trace.
        let span = tracing::info_span!(
            "handle",
            otel.name = %format!("{} process", msg.topic),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = %msg.topic,
            messaging.kafka.partition = msg.partition,
            messaging.kafka.offset = msg.offset,
            attempt = msg.attempt,
        );
        let traceparent = msg
            .header(trace::TRACEPARENT)
            .and_then(|v| std::str::from_utf8(v).ok());
        trace::continue_from(&span, traceparent);
        // A handler can panic making its future as well as running it.
        let made = span
            .in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| self.handler.handle(msg))));
        let call = match made {
            Ok(future) => AssertUnwindSafe(crate::writer::lingering(
                self.write_linger,
                future.instrument(span),
            ))
            .catch_unwind(),
            Err(panic) => return Err((FailureKind::Panic, panic_message(panic.as_ref()))),
        };
        match tokio::time::timeout(self.handler_timeout, call).await {
            Err(_) => Err((
                FailureKind::Transient,
                format!("handler timed out after {:?}", self.handler_timeout),
            )),
            Ok(Err(panic)) => Err((FailureKind::Panic, panic_message(panic.as_ref()))),
            Ok(Ok(Err(HandleError::Transient(e)))) => Err((FailureKind::Transient, e)),
            Ok(Ok(Err(HandleError::Permanent(e)))) => Err((FailureKind::Permanent, e)),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }

    /// Publishes `msg` to its dead-letter topic, retrying until it is
    /// written or the consumer stops.
    async fn dead_letter(
        &self,
        msg: &Delivery,
        kind: FailureKind,
        error: &str,
        attempts: u32,
    ) -> Outcome {
        let topic = dlq_topic(&msg.topic);
        let headers = dead_letter_headers(msg, &self.shared.group, kind, error, attempts);
        let mut failures = 0;
        loop {
            let published = async {
                let dlq = self.dlq.get()?;
                dlq.publish_raw(&topic, msg.key.as_deref(), &msg.payload, &headers)
                    .await
            };
            match published.await {
                Ok(_) => {
                    Counters::bump(&self.shared.counters.dead_lettered);
                    tracing::info!(
                        topic = %msg.topic, partition = msg.partition, offset = msg.offset,
                        attempts, kind = kind.as_str(), %error, "message dead-lettered"
                    );
                    return Outcome::Done;
                }
                Err(e) => {
                    failures += 1;
                    Counters::bump(&self.shared.counters.client_errors);
                    tracing::warn!(error = %e, %topic, "cannot dead-letter, retrying");
                    let delay = self.backoff.lock().delay(failures);
                    if self.sleep(delay).await {
                        return Outcome::Abandoned;
                    }
                }
            }
        }
    }

    /// Sleeps unless stopped first; true if stopped.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => true,
            _ = tokio::time::sleep(d) => false,
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".into());
    format!("handler panicked: {text}")
}

/// Every `interval`, measures each assigned partition's lag, while someone
/// reads the figures (an idle system asks the broker nothing).
async fn measure_lag(shared: Arc<Shared>, interval: Duration, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !shared.counters.lag_wanted() {
            continue;
        }
        let s = shared.clone();
        // Watermark and committed-offset queries block on the broker.
        match tokio::task::spawn_blocking(move || lag_now(&s)).await {
            Ok(Ok(lag)) => shared.counters.set_lag(lag),
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot measure lag"),
            Err(e) => tracing::debug!(error = %e, "lag task failed"),
        }
    }
}

fn lag_now(shared: &Shared) -> KafkaResult<Vec<PartitionLag>> {
    let assignment = shared.consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = shared
        .consumer
        .committed_offsets(assignment.clone(), REQUEST_TIMEOUT)?;
    let mut lags = Vec::with_capacity(assignment.count());
    for elem in assignment.elements() {
        let (topic, partition) = (elem.topic(), elem.partition());
        let (low, queried) = shared
            .consumer
            .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
        // See `watermarks`: the queried end can fall short on the embedded
        // broker; the one from the last fetch is exact.
        let fetched = watermarks::from_last_fetch(shared.consumer.client(), topic, partition);
        let high = fetched.map_or(queried, |(_, h)| h.max(queried));
        let committed = committed
            .find_partition(topic, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        let handled = shared.counters.position(topic, partition);
        let position = handled.max(committed).unwrap_or(low);
        lags.push(PartitionLag {
            topic: topic.to_string(),
            partition,
            high_watermark: high,
            position,
            committed,
            lag: (high - position).max(0),
        });
    }
    Ok(lags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(partition: i32, offset: i64) -> Delivery {
        Delivery {
            topic: "t".into(),
            partition,
            offset,
            key: None,
            payload: Vec::new(),
            headers: Vec::new(),
            timestamp: None,
            attempt: 1,
        }
    }

    #[test]
    fn an_offset_is_stored_once_everything_before_it_is_done() {
        let mut o = Offsets::default();
        for off in 0..4 {
            o.received(&msg(0, off));
        }
        o.received(&msg(1, 7));
        // 2 and 3 finish first: nothing storable while 0 is outstanding.
        assert_eq!(o.finished(&msg(0, 2)), None);
        assert_eq!(o.finished(&msg(0, 3)), None);
        assert_eq!(o.finished(&msg(0, 0)), Some(0));
        // 1 done: everything up to 3 is.
        assert_eq!(o.finished(&msg(0, 1)), Some(3));
        // Partitions are independent.
        assert_eq!(o.finished(&msg(1, 7)), Some(7));
    }

    #[test]
    fn a_key_is_a_lane_on_every_topic_and_keyless_messages_queue_per_partition() {
        let mut a = msg(0, 1);
        a.key = Some(b"42".to_vec());
        let mut b = msg(2, 9);
        b.topic = "other".into();
        b.key = Some(b"42".to_vec());
        assert_eq!(lane_of(&a), lane_of(&b));
        assert_ne!(lane_of(&msg(0, 1)), lane_of(&msg(1, 1)));
        assert_eq!(lane_of(&msg(0, 1)), lane_of(&msg(0, 5)));
    }
}
