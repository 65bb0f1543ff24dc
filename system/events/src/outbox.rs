//! The transactional outbox: an event is written to the service's own
//! database in the same transaction as the change it reports, and a relay
//! publishes it afterwards. So an event is published if and only if its
//! change committed, whatever crashes in between; the price is that it is
//! published at least once (a crash after publishing but before marking the
//! row sends it again), which consumers absorb by deduplicating.
//!
//! The relay publishes the oldest unsent rows first, and never has two rows
//! of one (topic, key) in flight: a key's next row is sent only once the
//! previous one is acknowledged. So events of one key (one order) reach
//! Kafka in the order they were written, even across broker outages, while
//! different keys are published concurrently. A publish that fails leaves
//! its row unsent; the relay backs off and tries again, for as long as it
//! takes, and a restarted relay carries on from the rows left.
//!
//! Like a Kafka producer's `linger.ms`, a relay told of a new row waits a
//! little ([`RelaySettings::linger`]) before reading, so the rows that
//! other transactions commit meanwhile go out in the same round: one read,
//! one produce request per partition, one fetch for each consumer and one
//! update, shared by all of them. It does not wait while a backlog is left
//! (a full round, or rows held back behind their key's previous one).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use parking_lot::Mutex;
use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::error::EventsError;
use crate::event::{now_ms, Event, EVENT_ID_HEADER};
use crate::producer::EventProducer;
use crate::share::Share;
use crate::trace;
use crate::writer::{lingering, Writer};
use tracing::Instrument;

/// The table, for a service's migrations (include the same text) or for
/// [`create_table`]. The partial index keeps finding unsent rows cheap
/// however many sent ones pile up.
pub const OUTBOX_DDL: &str = "\
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    traceparent TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
";

/// How often an idle relay looks for new rows (a [`OutboxRelay::notifier`]
/// wakes it sooner).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);
/// Rows read per round.
pub const DEFAULT_BATCH: u32 = 256;
/// How long a relay told of a new row waits for more before reading. At
/// low rates this is what makes rounds of more than one row: at 150
/// orders/s, 20 ms gathers about three orders' events per round, and every
/// hop downstream (a produce request, each group's fetch, its handler's
/// outbox) carries them together. It adds at most this much to each
/// event's latency, and nothing once rounds are full.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(20);
/// First retry after a failed round waits up to this long...
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(50);
/// ...and no retry longer than this, so a healed broker is noticed within
/// about a second.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(1);

/// Creates the table if it does not exist.
pub async fn create_table(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(OUTBOX_DDL).execute(conn).await.map(|_| ())
}

/// Adds `event` to the outbox inside the caller's transaction (pass
/// `&mut *tx`). It is published once that transaction commits.
pub async fn enqueue(
    tx: &mut SqliteConnection,
    topic: &str,
    key: &str,
    event: &Event,
) -> Result<(), EventsError> {
    let payload = serde_json::to_string(event).map_err(|source| EventsError::Encode {
        event_id: event.event_id,
        source,
    })?;
    // The row keeps the trace of the work that wrote it; the relay's
    // publish continues it.
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, key, payload, created_at, traceparent) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(event.event_id.to_string())
    .bind(topic)
    .bind(key)
    .bind(payload)
    .bind(now_ms())
    .bind(trace::current_traceparent())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Rows not yet published.
pub async fn backlog(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(pool)
        .await
}

/// Deletes rows published before `before_ms` (milliseconds since the
/// epoch); returns how many.
pub async fn purge_sent(pool: &SqlitePool, before_ms: i64) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?")
        .bind(before_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// See [`DEFAULT_INTERVAL`].
    pub interval: Duration,
    /// See [`DEFAULT_BATCH`].
    pub batch: u32,
    /// See [`DEFAULT_LINGER`]; zero reads as soon as told.
    pub linger: Duration,
    /// How long marking a round's rows sent may wait for other writes to
    /// the database to share its commit (see [`crate::writer::lingering`]);
    /// by default as long as a consumer's handlers wait. Zero: it commits
    /// as soon as the writer is free.
    pub write_linger: Duration,
    /// See [`DEFAULT_RETRY_BASE`].
    pub retry_base: Duration,
    /// See [`DEFAULT_RETRY_MAX`].
    pub retry_max: Duration,
    /// Seeds the retry jitter.
    pub seed: u64,
    /// Which rows this relay publishes when several processes share one
    /// database: those whose key, read as an integer, falls in its share
    /// (a key that is not an integer reads as 0). One key is always one
    /// relay's, so its events keep their order.
    pub share: Share,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            batch: DEFAULT_BATCH,
            linger: DEFAULT_LINGER,
            write_linger: crate::consumer::DEFAULT_WRITE_LINGER,
            retry_base: DEFAULT_RETRY_BASE,
            retry_max: DEFAULT_RETRY_MAX,
            seed: 1,
            share: Share::default(),
        }
    }
}

/// What a relay has done.
#[derive(Debug, Default)]
pub struct RelayStats {
    published: AtomicU64,
    rounds: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl RelayStats {
    /// Rows published and marked sent.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Rounds that published at least one row: `published / rounds` rows
    /// went out together on average.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Failed publishes and database errors.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    fn failed(&self, error: &EventsError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error.to_string());
    }
}

/// What one round did.
#[derive(Debug, Default)]
struct Round {
    published: usize,
    /// Rows were left for the next round: it should start at once.
    backlog: bool,
}

struct Pending {
    id: i64,
    event_id: String,
    topic: String,
    key: String,
    payload: String,
    traceparent: Option<String>,
}

/// Publishes the outbox of one database; see the module docs. Run one
/// relay per database, or one per [`Share`] of it: two relays over the same
/// rows would each keep a key's order, but not together.
pub struct OutboxRelay {
    writer: Writer,
    producer: EventProducer,
    settings: RelaySettings,
    stats: Arc<RelayStats>,
    wake: Arc<Notify>,
}

impl OutboxRelay {
    /// A relay over `writer` (the service's writing connection, or a pool:
    /// marking rows sent is a write) publishing through `producer`.
    pub fn new(
        writer: impl Into<Writer>,
        producer: EventProducer,
        settings: RelaySettings,
    ) -> Self {
        Self {
            writer: writer.into(),
            producer,
            settings,
            stats: Arc::new(RelayStats::default()),
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Call `notify_one()` on this after committing an outbox row, to have
    /// it published without waiting for the next interval.
    pub fn notifier(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Publishes until `shutdown`: rounds back to back while a backlog is
    /// left; otherwise it waits for a notice (or `interval`), then
    /// `linger`, then reads; after a failure it waits a capped, jittered,
    /// growing delay before the next round.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(
            self.settings.retry_base,
            self.settings.retry_max,
            self.settings.seed,
        );
        let mut failures = 0u32;
        loop {
            let wait = match self.round().await {
                Ok(round) if round.backlog => {
                    failures = 0;
                    None
                }
                Ok(_) => {
                    failures = 0;
                    Some(self.settings.interval)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::debug!(error = %e, failures, "outbox relay round failed");
                    Some(backoff.delay(failures))
                }
            };
            if shutdown.is_cancelled() {
                return;
            }
            if let Some(wait) = wait {
                let told = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified(), if failures == 0 => true,
                    _ = tokio::time::sleep(wait) => false,
                };
                if told && !self.settings.linger.is_zero() {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(self.settings.linger) => {}
                    }
                }
            }
        }
    }

    /// One round: reads up to `batch` of the oldest unsent rows, publishes
    /// the first unsent row of each (topic, key) concurrently, and marks
    /// those acknowledged as sent. Returns how many were published; an error
    /// if any publish (or the database) failed, after marking the others.
    pub async fn relay_once(&self) -> Result<usize, EventsError> {
        self.round().await.map(|r| r.published)
    }

    async fn round(&self) -> Result<Round, EventsError> {
        let rows = self.pending().await.inspect_err(|e| self.stats.failed(e))?;
        let read = rows.len();
        let mut seen = HashSet::new();
        let round: Vec<Pending> = rows
            .into_iter()
            .filter(|r| seen.insert((r.topic.clone(), r.key.clone())))
            .collect();
        if round.is_empty() {
            return Ok(Round::default());
        }
        // A full read may have left rows behind; so did holding a key's
        // later rows back.
        let backlog = read >= self.settings.batch.max(1) as usize || round.len() < read;
        let results = join_all(round.iter().map(|r| {
            // The publish continues the trace of the transaction that
            // wrote the row, and the message carries the publish's.
            let span = tracing::info_span!(
                "publish",
                otel.name = %format!("{} publish", r.topic),
                otel.kind = "producer",
                messaging.system = "kafka",
                messaging.destination.name = %r.topic,
                messaging.message.id = %r.event_id,
            );
            trace::continue_from(&span, r.traceparent.as_deref());
            let traceparent = trace::traceparent_of(&span);
            async move {
                let mut headers: Vec<(&str, &[u8])> =
                    vec![(EVENT_ID_HEADER, r.event_id.as_bytes())];
                if let Some(tp) = &traceparent {
                    headers.push((trace::TRACEPARENT, tp.as_bytes()));
                }
                self.producer
                    .publish_raw(
                        &r.topic,
                        Some(r.key.as_bytes()),
                        r.payload.as_bytes(),
                        &headers,
                    )
                    .await
            }
            .instrument(span)
        }))
        .await;
        let mut sent = Vec::new();
        let mut first_error = None;
        for (row, result) in round.iter().zip(results) {
            match result {
                Ok(_) => sent.push(row.id),
                Err(e) => {
                    self.stats.failed(&e);
                    first_error.get_or_insert(e);
                }
            }
        }
        self.mark_sent(&sent)
            .await
            .map_err(EventsError::from)
            .inspect_err(|e| self.stats.failed(e))?;
        self.stats
            .published
            .fetch_add(sent.len() as u64, Ordering::Relaxed);
        if !sent.is_empty() {
            self.stats.rounds.fetch_add(1, Ordering::Relaxed);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Round {
                published: sent.len(),
                backlog,
            }),
        }
    }

    async fn pending(&self) -> Result<Vec<Pending>, EventsError> {
        let share = self.settings.share;
        let rows = sqlx::query(
            "SELECT id, event_id, topic, key, payload, traceparent FROM outbox \
             WHERE sent_at IS NULL AND (?1 = 1 OR abs(CAST(key AS INTEGER)) % ?1 = ?2) \
             ORDER BY id LIMIT ?3",
        )
        .bind(i64::from(share.count()))
        .bind(i64::from(share.index()))
        .bind(i64::from(self.settings.batch.max(1)))
        .fetch_all(&mut *self.writer.acquire().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Pending {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    topic: r.try_get("topic")?,
                    key: r.try_get("key")?,
                    payload: r.try_get("payload")?,
                    traceparent: r.try_get("traceparent")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(EventsError::from)
    }

    async fn mark_sent(&self, ids: &[i64]) -> Result<(), sqlx::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        // One statement for the round, the ids as a JSON array, committed
        // with whatever else the database is writing meanwhile (a
        // consumer's handlers, the next order): a crash before that commit
        // publishes the round again, which consumers absorb.
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let mark = self.writer.transact((now_ms(), list), |(at, list), conn| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE outbox SET sent_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))",
                )
                .bind(*at)
                .bind(list.as_str())
                .execute(&mut *conn)
                .await
                .map(|_| ())
            })
        });
        lingering(self.settings.write_linger, mark).await
    }
}
