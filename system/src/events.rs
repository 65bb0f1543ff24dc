//! How services use the event bus for the asynchronous order flow: the
//! topics, each service's consumer group, its outbox relay, and the figures
//! they put on `/metrics`.
//!
//! ```text
//! orders ──OrderCreated──► [orders] ──► catalog ──StockReserved / StockReservationFailed──► [inventory]
//! [inventory] ──► payments ──PaymentCompleted / PaymentFailed──► [payments]
//! [inventory], [payments] ──► orders ──OrderConfirmed / OrderCancelled──► [orders]
//! [orders] ──► catalog (commit / release), notifications, analytics
//! ```
//!
//! Every event is keyed by order id, so one order's events stay in order on
//! one partition. Producers write through their database's outbox;
//! consumers record each event id in the same transaction as its effect.

use std::sync::Arc;
use std::time::Duration;

use gauntlet_events::outbox::RelayStats;
use gauntlet_events::{
    Consumer, ConsumerConfig, ConsumerHandle, ConsumerStats, EventProducer, EventsError, Handler,
    OutboxRelay, RelaySettings, RetrySettings, Share, TopicSpec,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Order lifecycle events: created, confirmed, cancelled.
pub const ORDERS: &str = "orders";
/// Stock reserved, or not.
pub const INVENTORY: &str = "inventory";
/// Payment completed, or failed.
pub const PAYMENTS: &str = "payments";
pub const TOPICS: [&str; 3] = [ORDERS, INVENTORY, PAYMENTS];

/// Which topics each consumer group reads; a group is named after its
/// service. Each service subscribes from here, and the harness reads it to
/// account for every event.
pub const SUBSCRIPTIONS: [(crate::Service, &[&str]); 5] = [
    (crate::Service::Catalog, &[ORDERS]),
    (crate::Service::Payments, &[INVENTORY]),
    (crate::Service::Orders, &[INVENTORY, PAYMENTS]),
    (crate::Service::Notifications, &[ORDERS]),
    (crate::Service::Analytics, &[ORDERS]),
];

/// The topics `service`'s consumer group reads (none for a service that
/// consumes nothing).
pub fn subscriptions(service: crate::Service) -> &'static [&'static str] {
    SUBSCRIPTIONS
        .iter()
        .find(|(s, _)| *s == service)
        .map_or(&[], |(_, t)| t)
}

/// The event bus settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Partitions per topic: the most consumers of one group that can
    /// work in parallel.
    pub partitions: i32,
    /// Attempts a consumer gives a message whose handling fails
    /// transiently before it is dead-lettered.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// How long an outbox relay told of a new row waits for more before
    /// publishing (see `gauntlet_events::outbox::DEFAULT_LINGER`): the
    /// event path's latency traded for its CPU at low rates. `"0s"`
    /// publishes each commit at once.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How long a consumer's handler may wait for the other handlers of
    /// its batch to share its commit (see
    /// `gauntlet_events::consumer::DEFAULT_WRITE_LINGER`), and an outbox
    /// relay's marking of the rows it published for other writes to share
    /// its. `"0s"`: each such write commits as soon as the writer is free.
    #[serde(with = "humantime_serde")]
    pub write_linger: Duration,
}

/// Three partitions: enough to show per-key ordering and a rebalance,
/// few enough for a two-core machine.
pub const DEFAULT_PARTITIONS: i32 = 3;

impl Default for EventsConfig {
    fn default() -> Self {
        let retry = RetrySettings::default();
        Self {
            partitions: DEFAULT_PARTITIONS,
            max_attempts: retry.max_attempts,
            base_delay: retry.base_delay,
            max_delay: retry.max_delay,
            linger: gauntlet_events::outbox::DEFAULT_LINGER,
            write_linger: gauntlet_events::consumer::DEFAULT_WRITE_LINGER,
        }
    }
}

/// Every topic with its dead-letter topic, as the bus must create them.
pub fn topic_specs(config: &EventsConfig) -> Vec<TopicSpec> {
    let specs: Vec<TopicSpec> = TOPICS
        .iter()
        .map(|t| TopicSpec::new(*t, config.partitions))
        .collect();
    gauntlet_events::topics::with_dlqs(&specs)
}

/// How long the broker may hold a fetch with no data, in milliseconds
/// (librdkafka's default, stated).
pub const FETCH_WAIT_MS: u32 = 500;

/// Messages a consumer group handles at once (never two of one order: see
/// the consumer's keyed lanes). The payments group waits on the provider
/// for each charge; one at a time, a 200 ms provider would cap the whole
/// async flow at 5 orders/s.
pub const CONSUMER_CONCURRENCY: usize = 32;

/// The longest a member may go between polls, in milliseconds; also the
/// rebalance timeout.
pub const MAX_POLL_INTERVAL_MS: u32 = 20_000;

/// How often an idle relay looks for rows nobody told it about.
pub const RELAY_IDLE_INTERVAL: Duration = Duration::from_secs(1);

/// How a service's consumers get their partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Membership {
    /// Take this process's [`Share`] of every partition directly, with no
    /// membership protocol. The choice for the embedded broker, whose group
    /// coordinator does not expire a member that died without leaving: a
    /// crashed process would hold its partitions until the broker restarts.
    /// With one process per service (the default share, `0/1`), that one
    /// takes every partition; with `--instance i/n`, partition `p` is
    /// instance `p mod n`'s.
    #[default]
    Static,
    /// Join the group as Kafka means it (cooperative-sticky assignment):
    /// processes of one service share the partitions, a new one gets some
    /// without the others stopping, and a crashed one's move to the rest
    /// once its session times out. Offsets are committed when partitions
    /// are revoked. For a real Kafka cluster.
    Group,
}

impl Membership {
    pub fn as_str(&self) -> &'static str {
        match self {
            Membership::Static => "static",
            Membership::Group => "group",
        }
    }
}

/// A membership that is neither `static` nor `group`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected static or group, got '{0}'")]
pub struct MembershipParseError(String);

impl std::str::FromStr for Membership {
    type Err = MembershipParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "static" => Ok(Membership::Static),
            "group" => Ok(Membership::Group),
            other => Err(MembershipParseError(other.to_string())),
        }
    }
}

/// Which process of its service this is, as its consumers and its relay
/// see it. Several processes of one service share its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Instance {
    /// This process's part of the partitions (with [`Membership::Static`])
    /// and of the outbox rows (always: a row is one relay's, by its key).
    pub share: Share,
    pub membership: Membership,
}

/// A service's consumers and relays, for `/metrics`, pausing, and stopping.
#[derive(Default)]
pub struct Bus {
    consumers: Mutex<Vec<ConsumerHandle>>,
    relays: Mutex<Vec<Relay>>,
}

/// One outbox relay: its figures and (a reader of) the database it drains.
struct Relay {
    stats: Arc<RelayStats>,
    read: sqlx::SqlitePool,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").finish_non_exhaustive()
    }
}

impl Bus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Starts a consumer of this service's group (`c` names the brokers,
    /// the group and its topics), set up as this system's consumers are.
    // The events crate's one error, returned once per consumer started or
    // paused: its size costs nothing here.
    #[allow(clippy::result_large_err)]
    pub fn consume(
        &self,
        mut c: ConsumerConfig,
        config: &EventsConfig,
        instance: Instance,
        seed: u64,
        handler: Arc<dyn Handler>,
    ) -> Result<(), EventsError> {
        match instance.membership {
            Membership::Static => {
                c.static_partitions = Some(config.partitions);
                c.share = instance.share;
            }
            Membership::Group => c.overrides.push((
                "partition.assignment.strategy".into(),
                "cooperative-sticky".into(),
            )),
        }
        if !instance.share.is_whole() {
            c.client_id = Some(format!("{}-{}", c.group, instance.share.index()));
        }
        c.max_in_flight = CONSUMER_CONCURRENCY;
        c.write_linger = config.write_linger;
        // A fetch with nothing to read waits on the broker for up to this
        // long and is answered as soon as something is produced (the
        // embedded broker too: see vendor/README.md), so the wait costs
        // no latency, and an idle consumer asks twice a second.
        c.overrides
            .push(("fetch.wait.max.ms".into(), FETCH_WAIT_MS.to_string()));
        // A member that died mid-rebalance holds its partitions until the
        // rebalance times out (librdkafka's default: 5 minutes); our
        // handlers take well under a second, so 20 s is ample.
        c.overrides.push((
            "max.poll.interval.ms".into(),
            MAX_POLL_INTERVAL_MS.to_string(),
        ));
        c.retry = RetrySettings {
            max_attempts: config.max_attempts,
            base_delay: config.base_delay,
            max_delay: config.max_delay,
            seed,
        };
        let handle = Consumer::start(c, handler)?;
        self.consumers.lock().push(handle);
        Ok(())
    }

    /// A relay publishing the outbox of `db`; returns the loop to run and
    /// the notifier to poke after each commit.
    pub fn relay(
        &self,
        db: &crate::db::Db,
        producer: EventProducer,
        config: &EventsConfig,
        share: Share,
        seed: u64,
    ) -> (futures::future::BoxFuture<'static, ()>, Arc<Notify>) {
        let relay = OutboxRelay::new(
            db.write.clone(),
            producer,
            RelaySettings {
                seed,
                // Every service pokes the notifier after committing an
                // outbox row; the interval only backs that up.
                // A row another process of this service wrote for this
                // one's share waits at most this long: its notice stays in
                // the process that wrote it.
                interval: RELAY_IDLE_INTERVAL,
                linger: config.linger,
                write_linger: config.write_linger,
                share,
                ..RelaySettings::default()
            },
        );
        let notify = relay.notifier();
        self.relays.lock().push(Relay {
            stats: relay.stats(),
            read: db.read.clone(),
        });
        // The loop lives inside its service's task and ends with it.
        (Box::pin(relay.run(CancellationToken::new())), notify)
    }

    pub fn stats(&self) -> Vec<ConsumerStats> {
        self.consumers.lock().iter().map(|c| c.stats()).collect()
    }

    pub fn relay_stats(&self) -> Vec<Arc<RelayStats>> {
        self.relays.lock().iter().map(|r| r.stats.clone()).collect()
    }

    /// Outbox rows not yet published, over every relay of this service.
    pub async fn outbox_backlog(&self) -> Result<i64, sqlx::Error> {
        let pools: Vec<sqlx::SqlitePool> =
            self.relays.lock().iter().map(|r| r.read.clone()).collect();
        let mut total = 0;
        for pool in pools {
            total += gauntlet_events::outbox::backlog(&pool).await?;
        }
        Ok(total)
    }

    /// Pauses (or resumes) every consumer of this service.
    #[allow(clippy::result_large_err)]
    pub fn set_paused(&self, paused: bool) -> Result<(), EventsError> {
        for c in self.consumers.lock().iter() {
            if paused {
                c.pause()?;
            } else {
                c.resume()?;
            }
        }
        Ok(())
    }

    /// Commits and leaves the groups.
    pub async fn stop(&self) {
        let consumers: Vec<ConsumerHandle> = self.consumers.lock().drain(..).collect();
        for c in consumers {
            c.stop().await;
        }
    }

    /// Drops the consumers where they stand, as a crash would.
    pub fn kill(&self) {
        self.consumers.lock().clear();
    }
}

/// A database error inside a handler: worth retrying (busy, or gone for a
/// moment); the consumer dead-letters it if it persists.
pub fn db_error(e: sqlx::Error) -> gauntlet_events::HandleError {
    gauntlet_events::HandleError::transient(format!("database: {e}"))
}

/// An API-level failure inside a handler: a 5xx may pass, a 4xx will not.
pub fn api_error(e: crate::error::ApiError) -> gauntlet_events::HandleError {
    if e.status.is_server_error() {
        gauntlet_events::HandleError::transient(e.body.error)
    } else {
        gauntlet_events::HandleError::permanent(e.body.error)
    }
}

/// An event's payload, or a permanent error naming the event.
pub fn payload<T: serde::de::DeserializeOwned>(
    event: &gauntlet_events::Event,
) -> Result<T, gauntlet_events::HandleError> {
    event.payload_as().map_err(|e| {
        gauntlet_events::HandleError::permanent(format!(
            "{} {}: bad payload: {e}",
            event.event_type.as_str(),
            event.event_id
        ))
    })
}

/// Fields every order event carries, so each consumer has what it needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderFacts {
    pub user_id: i64,
    pub product_id: i64,
    pub quantity: i64,
    pub total_cents: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
