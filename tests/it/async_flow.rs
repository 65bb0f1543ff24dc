//! The asynchronous order flow on the embedded broker, through the same
//! stack `gauntlet serve` starts (every client reaches the broker through
//! the `kafka` proxy).

use std::time::Duration;

use gauntlet::stack::{Kafka, StackOptions};
use gauntlet::timeline::{FaultAction, FaultStep, Network, Timeline};
use gauntlet_events::inspect::read_topic;
use gauntlet_events::{DeadLetter, EventProducer};
use gauntlet_system::{Service, SystemConfig, SystemOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::common::Harness;

struct T {
    h: Harness,
    kafka: String,
}

impl std::ops::Deref for T {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

impl std::ops::DerefMut for T {
    fn deref_mut(&mut self) -> &mut Harness {
        &mut self.h
    }
}

impl T {
    async fn start() -> Self {
        let h = Harness::start(StackOptions {
            system: SystemOptions {
                config: SystemConfig::default(),
                ..SystemOptions::default()
            },
            kafka: Kafka::Embedded,
            ..StackOptions::default()
        })
        .await;
        let kafka = h.stack.kafka().await.expect("a broker");
        Self { h, kafka }
    }

    async fn seed(&self, stock: i64) -> (i64, i64) {
        self.h.seed(250, stock).await
    }

    /// Places an async order: accepted at once, PENDING.
    async fn order(&self, user: i64, product: i64, quantity: i64) -> i64 {
        let (s, o) = self
            .post(
                "/api/orders",
                json!({"user_id": user, "product_id": product, "quantity": quantity, "flow": "async"}),
            )
            .await;
        assert_eq!(s, 202, "{o}");
        assert_eq!(o["status"], "PENDING");
        o["id"].as_i64().unwrap()
    }

    /// Waits for an order to reach CONFIRMED or CANCELLED.
    async fn settled(&self, id: i64, within: Duration) -> Value {
        let url = format!("{}/api/orders/{id}", self.stack.gateway_url());
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let o = self.get(url.clone()).await;
            if o["status"] == "CONFIRMED" || o["status"] == "CANCELLED" {
                return o;
            }
            if tokio::time::Instant::now() >= deadline {
                for s in [Service::Payments, Service::Orders] {
                    let text = self
                        .http
                        .get(self.url(s, "/metrics").await)
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    for l in text
                        .lines()
                        .filter(|l| l.contains("consumer") && !l.starts_with('#'))
                    {
                        eprintln!("{s}: {l}");
                    }
                }
                panic!("order {id} never settled: {o}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn stock(&self, product: i64) -> i64 {
        self.get(format!(
            "{}/api/products/{product}",
            self.stack.gateway_url()
        ))
        .await["stock"]
            .as_i64()
            .unwrap()
    }

    async fn charges(&self, order: i64) -> Vec<Value> {
        let url = self
            .url(Service::Provider, &format!("/charges?order_id={order}"))
            .await;
        self.get(url).await.as_array().cloned().unwrap_or_default()
    }

    /// A counter from a service's `/metrics`, summed over matching lines.
    async fn metric(&self, s: Service, prefix: &str) -> f64 {
        let text = self
            .http
            .get(self.url(s, "/metrics").await)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn eventually<F, Fut>(&self, within: Duration, what: &str, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + within;
        while !f().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

#[tokio::test]
async fn an_async_order_is_confirmed_by_events() {
    let mut t = T::start().await;
    let (user, product) = t.seed(10).await;
    let id = t.order(user, product, 3).await;
    let o = t.settled(id, Duration::from_secs(30)).await;
    assert_eq!(o["status"], "CONFIRMED", "{o}");
    // The events that moved it. StockReserved and PaymentCompleted come on
    // different topics, so orders may take note of them in either order.
    let url = format!("{}/api/orders/{id}", t.stack.gateway_url());
    t.eventually(
        Duration::from_secs(20),
        "every event in the saga log",
        || async {
            let o = t.get(url.clone()).await;
            let mut moved: Vec<String> = o["saga"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["step"].as_str().unwrap().to_string())
                .collect();
            moved.sort();
            moved == ["OrderCreated", "PaymentCompleted", "StockReserved"]
        },
    )
    .await;
    assert_eq!(t.stock(product).await, 7);
    assert_eq!(t.charges(id).await.len(), 1);
    // Catalog commits the reservation; notifications and analytics take note.
    let res_url = t.url(Service::Catalog, "/reservations").await;
    let notes_url = t
        .url(
            Service::Notifications,
            &format!("/notifications?order_id={id}"),
        )
        .await;
    let stats_url = t.url(Service::Analytics, "/stats").await;
    t.eventually(
        Duration::from_secs(20),
        "the order's side effects",
        || async {
            let res = t.get(res_url.clone()).await;
            let notes = t.get(notes_url.clone()).await;
            let stats = t.get(stats_url.clone()).await;
            res[0]["status"] == "COMMITTED"
                && notes.as_array().map(Vec::len) == Some(1)
                && stats["revenue_cents"] == 750
        },
    )
    .await;
    t.stack.stop().await;
}

#[tokio::test]
async fn a_failing_provider_cancels_the_order_and_releases_its_stock() {
    let mut t = T::start().await;
    let (user, product) = t.seed(10).await;
    let faults = t.url(Service::Provider, "/admin/faults").await;
    t.http
        .put(faults)
        .json(&json!({"failure_rate": 1.0}))
        .send()
        .await
        .unwrap();
    let id = t.order(user, product, 4).await;
    let o = t.settled(id, Duration::from_secs(30)).await;
    assert_eq!(o["status"], "CANCELLED", "{o}");
    assert!(
        o["cancel_reason"].as_str().unwrap().contains("unavailable"),
        "{o}"
    );
    t.eventually(
        Duration::from_secs(20),
        "the stock to come back",
        || async { t.stock(product).await == 10 },
    )
    .await;
    let charges = t.charges(id).await;
    assert!(
        charges.iter().all(|c| c["status"] != "CHARGED"),
        "{charges:?}"
    );
    t.stack.stop().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_consumers_keep_going() {
    let mut t = T::start().await;
    let (user, product) = t.seed(10).await;
    let producer = EventProducer::new(&t.kafka, "poisoner").unwrap();
    producer
        .publish_raw::<&str, &[u8]>("orders", Some(b"666"), b"{not json at all", &[])
        .await
        .unwrap();
    // Every group reading `orders` dead-letters it once, with the headers.
    let dlq = &t.kafka;
    let mut letters = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while letters.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead letters: {letters:?}"
        );
        letters = read_topic(dlq, "orders.dlq", Duration::from_secs(2))
            .await
            .unwrap()
            .iter()
            .filter_map(DeadLetter::from_delivery)
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut groups: Vec<String> = letters
        .iter()
        .map(|l| l.group.clone().unwrap_or_default())
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        ["analytics", "catalog", "notifications"],
        "{letters:?}"
    );
    for l in &letters {
        assert_eq!(l.original_topic, "orders");
        assert_eq!(l.attempts, 1, "permanent: no retries");
        assert!(!l.error.is_empty());
    }
    // And the consumers went on.
    let id = t.order(user, product, 1).await;
    assert_eq!(
        t.settled(id, Duration::from_secs(30)).await["status"],
        "CONFIRMED"
    );
    t.stack.stop().await;
}

#[tokio::test]
async fn a_duplicated_event_is_applied_once() {
    let mut t = T::start().await;
    let (user, product) = t.seed(10).await;
    let id = t.order(user, product, 2).await;
    assert_eq!(
        t.settled(id, Duration::from_secs(30)).await["status"],
        "CONFIRMED"
    );
    // Publish the order's StockReserved and OrderCreated again, as a
    // redelivery would: same event ids, same payloads.
    let producer = EventProducer::new(&t.kafka, "duplicator").unwrap();
    let before = t
        .metric(Service::Payments, "gauntlet_consumer_processed_total")
        .await
        + t.metric(Service::Catalog, "gauntlet_consumer_processed_total")
            .await;
    for topic in ["inventory", "orders"] {
        let all = read_topic(&t.kafka, topic, Duration::from_secs(2))
            .await
            .unwrap();
        let first = all
            .iter()
            .find(|m| m.key_str() == Some(id.to_string()))
            .expect("the order's first event");
        let headers: Vec<(String, Vec<u8>)> = first.headers.clone();
        producer
            .publish_raw(topic, first.key.as_deref(), &first.payload, &headers)
            .await
            .unwrap();
    }
    t.eventually(
        Duration::from_secs(20),
        "both duplicates to be consumed",
        || async {
            let now = t
                .metric(Service::Payments, "gauntlet_consumer_processed_total")
                .await
                + t.metric(Service::Catalog, "gauntlet_consumer_processed_total")
                    .await;
            now >= before + 2.0
        },
    )
    .await;
    assert_eq!(t.charges(id).await.len(), 1, "charged once");
    assert_eq!(t.stock(product).await, 8, "reserved once");
    let res = t.get(t.url(Service::Catalog, "/reservations").await).await;
    assert_eq!(res.as_array().map(Vec::len), Some(1), "{res}");
    t.stack.stop().await;
}

#[tokio::test]
async fn a_consumer_restarted_mid_stream_resumes_with_nothing_lost_or_doubled() {
    let mut t = T::start().await;
    let (user, product) = t.seed(1000).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(t.order(user, product, 1).await);
    }
    // Crash payments while the stream is in flight, restart it a moment later.
    t.stack.system.lock().await.crash(Service::Payments).await;
    for _ in 0..10 {
        ids.push(t.order(user, product, 1).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.stack
        .system
        .lock()
        .await
        .restart(Service::Payments)
        .await
        .unwrap();
    for id in &ids {
        let o = t.settled(*id, Duration::from_secs(60)).await;
        assert_eq!(o["status"], "CONFIRMED", "{o}");
        assert_eq!(t.charges(*id).await.len(), 1, "order {id}");
    }
    let ledger = t.get(t.url(Service::Provider, "/ledger").await).await;
    assert_eq!(ledger["net_cents"], 250 * ids.len() as i64, "{ledger}");
    assert_eq!(ledger["orders_charged_twice"], json!([]));
    t.eventually(Duration::from_secs(20), "stock to settle", || async {
        t.stock(product).await == 1000 - ids.len() as i64
    })
    .await;
    t.stack.stop().await;
}

#[tokio::test]
async fn the_outbox_holds_events_while_the_broker_is_unreachable() {
    let mut t = T::start().await;
    let (user, product) = t.seed(10).await;
    t.stack.chaos.set_enabled("kafka", false).await.unwrap();
    // Orders are still accepted: the event waits in the outbox.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(t.order(user, product, 1).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        let o = t
            .get(format!("{}/api/orders/{id}", t.stack.gateway_url()))
            .await;
        assert_eq!(
            o["status"], "PENDING",
            "nothing can move without the broker: {o}"
        );
    }
    t.stack.chaos.set_enabled("kafka", true).await.unwrap();
    for id in &ids {
        let o = t.settled(*id, Duration::from_secs(60)).await;
        assert_eq!(o["status"], "CONFIRMED", "{o}");
    }
    assert_eq!(t.stock(product).await, 7);
    t.stack.stop().await;
}

#[tokio::test]
async fn the_timeline_pauses_a_consumer_group_and_poisons_a_topic() {
    let mut t = T::start().await;
    let (user, product) = t.seed(10).await;
    let steps = vec![
        FaultStep {
            at: Duration::ZERO,
            duration: None,
            action: FaultAction::PauseConsumer {
                group: Service::Payments,
            },
        },
        FaultStep {
            at: Duration::ZERO,
            duration: None,
            action: FaultAction::Poison {
                topic: "inventory".into(),
                count: 2,
            },
        },
    ];
    let target = t.target(Network::Embedded(t.stack.chaos.clone()));
    let mut timeline = Timeline::new(steps, target);
    timeline.run(&CancellationToken::new()).await;
    assert!(
        timeline.records().iter().all(|r| r.error.is_none()),
        "{:?}",
        timeline.records()
    );
    let id = t.order(user, product, 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let o = t
        .get(format!("{}/api/orders/{id}", t.stack.gateway_url()))
        .await;
    assert_eq!(o["status"], "PENDING", "payments is paused: {o}");
    timeline.heal().await;
    assert_eq!(
        t.settled(id, Duration::from_secs(30)).await["status"],
        "CONFIRMED"
    );
    // Both groups reading `inventory` dead-letter both poison messages.
    t.eventually(Duration::from_secs(20), "four dead letters", || async {
        read_topic(&t.kafka, "inventory.dlq", Duration::from_secs(2))
            .await
            .map(|m| m.len() == 4)
            .unwrap_or(false)
    })
    .await;
    t.stack.stop().await;
}
