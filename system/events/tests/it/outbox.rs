//! The outbox relay keeps rows through broker outages and relay restarts,
//! and delivers them all, in order per key, once the broker is reachable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gauntlet_events::outbox::{self, backlog, OUTBOX_DDL};
use gauntlet_events::{
    inspect, EmbeddedBroker, Event, EventProducer, EventType, OutboxRelay, ProducerSettings,
    RelaySettings, Share,
};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

use crate::common::{loopback, topic, unique, wait_until, wait_until_async, DEADLINE};

async fn database(dir: &tempfile::TempDir) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("orders.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("database opens");
    sqlx::raw_sql(OUTBOX_DDL)
        .execute(&pool)
        .await
        .expect("outbox table");
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);",
    )
    .execute(&pool)
    .await
    .expect("orders table");
    pool
}

/// Writes a business row and its event in one transaction, as a service
/// does; `seq` numbers each key's events.
async fn write_order_event(pool: &SqlitePool, topic: &str, order: i64, seq: i64) -> Event {
    let event = Event::new(EventType::OrderCreated, order, json!({ "seq": seq }));
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO orders (id, seq) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq")
        .bind(order)
        .bind(seq)
        .execute(&mut *tx)
        .await
        .expect("business row");
    outbox::enqueue(&mut tx, topic, &event.key(), &event)
        .await
        .expect("enqueued");
    tx.commit().await.expect("commit");
    event
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn relay(pool: &SqlitePool, bootstrap: &str) -> OutboxRelay {
    shared_relay(pool, bootstrap, Share::default())
}

fn shared_relay(pool: &SqlitePool, bootstrap: &str, share: Share) -> OutboxRelay {
    let mut settings = ProducerSettings::new(bootstrap, "relay");
    settings.delivery_timeout = Duration::from_millis(500);
    let producer = EventProducer::with_settings(settings).expect("producer");
    OutboxRelay::new(
        pool.clone(),
        producer,
        RelaySettings {
            interval: Duration::from_millis(20),
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            share,
            ..RelaySettings::default()
        },
    )
}

/// Reads the topic and checks that every key's events arrived in `seq`
/// order (the first delivery of each event; a retried publish may repeat
/// one). Returns the event ids seen.
async fn check_order(bootstrap: &str, topic: &str) -> BTreeSet<String> {
    let messages = inspect::read_topic(bootstrap, topic, Duration::from_secs(10))
        .await
        .expect("topic readable");
    let mut seqs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for m in &messages {
        let event = m.event().expect("an event");
        assert_eq!(
            m.event_id(),
            Some(event.event_id.to_string()),
            "event-id header"
        );
        if ids.insert(event.event_id.to_string()) {
            let seq = event.payload["seq"].as_i64().expect("seq");
            seqs.entry(event.key()).or_default().push(seq);
        }
    }
    for (key, seq) in &seqs {
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order: {seq:?}"
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_the_broker_exists_are_delivered_in_order_once_it_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = database(&dir).await;
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let name = unique("orders");

    let mut written = BTreeSet::new();
    for seq in 0..10 {
        for order in 1..=3 {
            written.insert(
                write_order_event(&pool, &name, order, seq)
                    .await
                    .event_id
                    .to_string(),
            );
        }
    }
    assert_eq!(backlog(&pool).await.expect("backlog"), 30);

    // The relay starts first and finds nobody there.
    let relay = relay(&pool, &bootstrap);
    let stats = relay.stats();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    wait_until("the relay to fail a few times", DEADLINE, || {
        stats.failures() >= 3
    })
    .await;
    assert_eq!(backlog(&pool).await.expect("backlog"), 30, "rows kept");
    assert_eq!(stats.published(), 0);
    assert!(stats.last_error().is_some());

    let broker = EmbeddedBroker::start(loopback(port), None)
        .await
        .expect("broker on the relay's port");
    topic(&bootstrap, &name, 3).await;
    wait_until_async("backlog drained", DEADLINE, || {
        let pool = pool.clone();
        async move { backlog(&pool).await.expect("backlog") == 0 }
    })
    .await;
    assert_eq!(stats.published(), 30);
    let ids = check_order(&bootstrap, &name).await;
    assert_eq!(ids, written, "every row published");

    shutdown.cancel();
    running.await.expect("relay ends");
    broker.stop().await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_survive_a_broker_outage_and_a_relay_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = database(&dir).await;
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let name = unique("orders");
    let broker = EmbeddedBroker::start(loopback(port), None)
        .await
        .expect("broker");
    topic(&bootstrap, &name, 2).await;

    let first = relay(&pool, &bootstrap);
    let first_stats = first.stats();
    let wake = first.notifier();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(first.run(shutdown.clone()));
    for seq in 0..5 {
        for order in 1..=2 {
            write_order_event(&pool, &name, order, seq).await;
            wake.notify_one();
        }
    }
    wait_until_async("first rows published", DEADLINE, || {
        let pool = pool.clone();
        async move { backlog(&pool).await.expect("backlog") == 0 }
    })
    .await;

    // Outage: the broker goes away (and with it, in memory, everything it
    // held); rows keep being written.
    broker.stop().await;
    let failures_before = first_stats.failures();
    let mut during = BTreeSet::new();
    for seq in 5..12 {
        for order in 1..=2 {
            during.insert(
                write_order_event(&pool, &name, order, seq)
                    .await
                    .event_id
                    .to_string(),
            );
        }
    }
    wait_until("the relay to hit the outage", DEADLINE, || {
        first_stats.failures() > failures_before
    })
    .await;
    assert_eq!(
        backlog(&pool).await.expect("backlog"),
        14,
        "rows kept through the outage"
    );

    // The relay process dies during the outage; a new one takes over.
    shutdown.cancel();
    running.await.expect("relay ends");
    let second = relay(&pool, &bootstrap);
    let second_stats = second.stats();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(second.run(shutdown.clone()));

    let broker = EmbeddedBroker::start(loopback(port), None)
        .await
        .expect("broker back on the same port");
    topic(&bootstrap, &name, 2).await;
    wait_until_async("backlog drained after the outage", DEADLINE, || {
        let pool = pool.clone();
        async move { backlog(&pool).await.expect("backlog") == 0 }
    })
    .await;
    assert_eq!(second_stats.published(), 14);
    let ids = check_order(&bootstrap, &name).await;
    assert_eq!(
        ids, during,
        "the new broker got every row written during the outage"
    );

    shutdown.cancel();
    running.await.expect("relay ends");
    broker.stop().await;
    pool.close().await;
}

/// Two processes of one service share its database, each with a relay for
/// its share of the keys: every row is published once, each key's in
/// order, and each relay published only its own keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_sharing_one_outbox_publish_each_row_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = database(&dir).await;
    let broker = EmbeddedBroker::start(loopback(0), None)
        .await
        .expect("broker");
    let bootstrap = broker.bootstrap();
    let name = unique("orders");
    topic(&bootstrap, &name, 3).await;

    let shutdown = CancellationToken::new();
    let mut stats = Vec::new();
    let mut running = Vec::new();
    for index in 0..2 {
        let share = Share::new(index, 2).expect("share");
        let relay = shared_relay(&pool, &bootstrap, share);
        stats.push(relay.stats());
        running.push(tokio::spawn(relay.run(shutdown.clone())));
    }
    let mut written = BTreeSet::new();
    for seq in 0..6 {
        for order in 1..=5 {
            written.insert(
                write_order_event(&pool, &name, order, seq)
                    .await
                    .event_id
                    .to_string(),
            );
        }
    }
    wait_until_async("backlog drained", DEADLINE, || {
        let pool = pool.clone();
        async move { backlog(&pool).await.expect("backlog") == 0 }
    })
    .await;
    // Orders 2 and 4 are share 0's, orders 1, 3 and 5 share 1's: six
    // events each.
    assert_eq!(stats[0].published(), 12);
    assert_eq!(stats[1].published(), 18);
    let ids = check_order(&bootstrap, &name).await;
    assert_eq!(ids, written, "every row published");
    let messages = inspect::read_topic(&bootstrap, &name, Duration::from_secs(10))
        .await
        .expect("topic readable");
    assert_eq!(messages.len(), written.len(), "nothing published twice");

    shutdown.cancel();
    for r in running {
        r.await.expect("relay ends");
    }
    broker.stop().await;
    pool.close().await;
}

/// A relay told of a row waits its linger for more, so rows committed
/// meanwhile go out in one round; a round that leaves a backlog (here a
/// full one) is followed at once by the next, without lingering again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_committed_within_the_linger_go_out_together_and_a_backlog_does_not_wait() {
    const LINGER: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = database(&dir).await;
    let broker = crate::common::broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("orders");
    topic(&bootstrap, &name, 3).await;

    let producer =
        EventProducer::with_settings(ProducerSettings::new(&bootstrap, "relay")).expect("producer");
    let relay = OutboxRelay::new(
        pool.clone(),
        producer,
        RelaySettings {
            // Only notices wake it: no timer round gets in between.
            interval: Duration::from_secs(600),
            batch: 4,
            linger: LINGER,
            ..RelaySettings::default()
        },
    );
    let stats = relay.stats();
    let notify = relay.notifier();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    // One row first, so the relay's opening round is behind it; then wait
    // out any linger its notice left, so the relay is idle.
    write_order_event(&pool, &name, 100, 0).await;
    notify.notify_one();
    wait_until("the first row published", DEADLINE, || {
        stats.published() == 1
    })
    .await;
    tokio::time::sleep(LINGER + LINGER / 2).await;
    assert_eq!(stats.rounds(), 1);

    let started = tokio::time::Instant::now();
    for order in 1..=10 {
        write_order_event(&pool, &name, order, 0).await;
        notify.notify_one();
    }
    wait_until("ten more rows published", DEADLINE, || {
        stats.published() == 11
    })
    .await;
    let took = started.elapsed();
    // Ten rows in rounds of at most four: 4 + 4 + 2, the first after the
    // linger and the other two straight after it.
    assert_eq!(stats.rounds(), 4, "rounds of 4, 4 and 2 rows");
    assert!(
        took >= LINGER,
        "published after {took:?}, before the linger ended"
    );
    assert!(
        took < 2 * LINGER + LINGER / 2,
        "published after {took:?}: the rounds after a full one waited"
    );
    assert_eq!(backlog(&pool).await.expect("backlog"), 0);

    shutdown.cancel();
    running.await.expect("relay ends");
    broker.stop().await;
    pool.close().await;
}
