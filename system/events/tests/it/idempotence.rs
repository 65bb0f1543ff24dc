//! Idempotent consumers over a real SQLite file: duplicates are applied
//! once, and a consumer restarted in its group resumes where it committed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use gauntlet_events::processed::{first_time, PROCESSED_DDL};
use gauntlet_events::{
    inspect, Consumer, ConsumerConfig, Delivery, Event, EventProducer, EventType, HandleError,
    Handler,
};
use parking_lot::Mutex;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

use crate::common::{broker, topic, unique, wait_until, DEADLINE};

const CONSUMER: &str = "ledger";

/// A service database as the services open theirs: a file, WAL, one writer.
async fn database(dir: &tempfile::TempDir) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("ledger.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("database opens");
    sqlx::raw_sql(PROCESSED_DDL)
        .execute(&pool)
        .await
        .expect("processed table");
    // No uniqueness here on purpose: an effect applied twice shows as two rows.
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS effects (
             n INTEGER PRIMARY KEY AUTOINCREMENT,
             event_id TEXT NOT NULL,
             order_id INTEGER NOT NULL
         );",
    )
    .execute(&pool)
    .await
    .expect("effects table");
    pool
}

/// Applies each event once: the processed mark and the effect in one
/// transaction.
struct Ledger {
    pool: SqlitePool,
    /// (partition, offset) of every delivery, duplicates included.
    seen: Mutex<Vec<(i32, i64)>>,
    /// Simulated work per message, so a stop lands mid-stream.
    work: Duration,
}

impl Handler for Ledger {
    fn handle<'a>(&'a self, msg: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            self.seen.lock().push((msg.partition, msg.offset));
            let event = msg.event()?;
            tokio::time::sleep(self.work).await;
            let mut tx = self.pool.begin().await.map_err(HandleError::transient)?;
            if first_time(&mut tx, &event.event_id.to_string(), CONSUMER)
                .await
                .map_err(HandleError::transient)?
            {
                sqlx::query("INSERT INTO effects (event_id, order_id) VALUES (?, ?)")
                    .bind(event.event_id.to_string())
                    .bind(event.order_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(HandleError::transient)?;
            }
            tx.commit().await.map_err(HandleError::transient)?;
            Ok(())
        })
    }
}

async fn effects(pool: &SqlitePool) -> (i64, i64) {
    sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM effects")
        .fetch_one(pool)
        .await
        .expect("effects readable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_event_is_applied_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = database(&dir).await;
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("notifications");
    topic(&bootstrap, &name, 1).await;
    let producer = EventProducer::new(&bootstrap, "dup").expect("producer");

    let twice = Event::new(EventType::OrderConfirmed, 7, json!({"amount": 100}));
    let once = Event::new(EventType::OrderConfirmed, 8, json!({"amount": 5}));
    producer
        .publish(&name, "7", &twice)
        .await
        .expect("published");
    producer
        .publish(&name, "8", &once)
        .await
        .expect("published");
    producer
        .publish(&name, "7", &twice)
        .await
        .expect("published again");

    let ledger = Arc::new(Ledger {
        pool: pool.clone(),
        seen: Mutex::new(Vec::new()),
        work: Duration::ZERO,
    });
    let consumer = Consumer::start(
        ConsumerConfig::new(&bootstrap, unique("dup-group"), [name.clone()]),
        ledger.clone(),
    )
    .expect("starts");
    wait_until("three deliveries handled", DEADLINE, || {
        consumer.stats().processed == 3
    })
    .await;
    assert_eq!(ledger.seen.lock().len(), 3, "the duplicate was delivered");
    assert_eq!(effects(&pool).await, (2, 2), "but applied once");
    let marked: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM processed_events WHERE consumer = ?")
            .bind(CONSUMER)
            .fetch_one(&pool)
            .await
            .expect("processed readable");
    assert_eq!(marked, 2);
    consumer.stop().await;
    broker.stop().await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_resumes_from_its_committed_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = database(&dir).await;
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("payments");
    let partitions = 2;
    topic(&bootstrap, &name, partitions).await;
    let producer = EventProducer::new(&bootstrap, "stream").expect("producer");
    let total = 200;
    let mut ends = vec![0i64; partitions as usize];
    for n in 0..total {
        let e = Event::new(EventType::PaymentCompleted, n, json!({}));
        let (p, o) = producer
            .publish(&name, &e.key(), &e)
            .await
            .expect("published");
        ends[p as usize] = ends[p as usize].max(o + 1);
    }
    let group = unique("payments-group");
    let config = ConsumerConfig::new(&bootstrap, &group, [name.clone()]);

    // First life: stopped part-way through.
    let first = Arc::new(Ledger {
        pool: pool.clone(),
        seen: Mutex::new(Vec::new()),
        work: Duration::from_millis(5),
    });
    let consumer = Consumer::start(config.clone(), first.clone()).expect("starts");
    wait_until("some handled", DEADLINE, || {
        consumer.stats().processed >= 40
    })
    .await;
    consumer.stop().await;
    let handled_first = first.seen.lock().clone();
    assert!(
        (handled_first.len() as i64) < total,
        "stopped mid-stream, after {}",
        handled_first.len()
    );
    let committed = inspect::committed_offsets(&bootstrap, &group, &name)
        .await
        .expect("committed offsets");
    // Whatever was handled was committed, on stop.
    for (p, c) in &committed {
        let handled = handled_first.iter().filter(|(hp, _)| hp == p).count() as i64;
        assert_eq!(
            c.unwrap_or(0),
            handled,
            "partition {p}: committed vs handled"
        );
    }

    // Second life, same group, same database.
    let second = Arc::new(Ledger {
        pool: pool.clone(),
        seen: Mutex::new(Vec::new()),
        work: Duration::ZERO,
    });
    let consumer = Consumer::start(config, second.clone()).expect("restarts");
    let remaining = total as usize - handled_first.len();
    wait_until("the rest handled", DEADLINE, || {
        second.seen.lock().len() >= remaining
    })
    .await;
    // Let any stray redelivery show up before judging: wait for lag 0.
    wait_until("lag 0", DEADLINE, || {
        let s = consumer.stats();
        s.lag.len() == partitions as usize && s.total_lag() == 0
    })
    .await;
    let handled_second = second.seen.lock().clone();
    consumer.stop().await;

    // Per partition: the second life started exactly at the committed
    // offset and went to the end; the two lives cover every offset once.
    for (p, c) in &committed {
        let start = c.unwrap_or(0);
        let second_offsets: Vec<i64> = handled_second
            .iter()
            .filter(|(hp, _)| hp == p)
            .map(|(_, o)| *o)
            .collect();
        let expected: Vec<i64> = (start..ends[*p as usize]).collect();
        assert_eq!(second_offsets, expected, "partition {p}");
    }
    let all: BTreeSet<(i32, i64)> = handled_first
        .iter()
        .chain(&handled_second)
        .copied()
        .collect();
    assert_eq!(all.len(), total as usize, "nothing lost");
    assert_eq!(
        handled_first.len() + handled_second.len(),
        total as usize,
        "nothing redelivered"
    );
    assert_eq!(
        effects(&pool).await,
        (total, total),
        "every event applied once"
    );

    broker.stop().await;
    pool.close().await;
}
