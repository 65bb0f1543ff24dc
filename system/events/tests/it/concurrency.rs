//! Handling many keys at once, one key at a time, with offsets committed
//! only as far as every message before them is done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use gauntlet_events::{
    inspect, Consumer, ConsumerConfig, Delivery, Event, EventProducer, EventType, HandleError,
    Handler,
};
use parking_lot::Mutex;
use serde_json::json;

use crate::common::{broker, topic, unique, wait_until, wait_until_async, DEADLINE};

/// Takes `delay` per message, and records per key the order handled and
/// whether two messages of one key ever overlapped.
struct Slow {
    delay: Duration,
    running: AtomicUsize,
    most_running: AtomicUsize,
    busy_keys: Mutex<HashMap<String, bool>>,
    overlaps: AtomicUsize,
    order: Mutex<HashMap<String, Vec<i64>>>,
}

impl Handler for Slow {
    fn handle<'a>(&'a self, msg: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let key = msg.key_str().unwrap_or_default().to_string();
            if self.busy_keys.lock().insert(key.clone(), true) == Some(true) {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let n = msg
                .event()
                .map(|e| e.payload["n"].as_i64().unwrap_or(-1))
                .unwrap_or(-1);
            self.order.lock().entry(key.clone()).or_default().push(n);
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.busy_keys.lock().insert(key, false);
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keys_are_handled_at_once_and_each_key_in_order() {
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let topic_name = unique("orders");
    topic(&bootstrap, &topic_name, 3).await;

    // 10 keys (orders), 8 events each, interleaved.
    let producer = EventProducer::new(&bootstrap, "test-producer").expect("producer");
    for n in 0..8i64 {
        for order in 0..10i64 {
            let event = Event::new(EventType::OrderCreated, order, json!({ "n": n }));
            producer
                .publish(&topic_name, &event.key(), &event)
                .await
                .expect("published");
        }
    }

    let slow = Arc::new(Slow {
        delay: Duration::from_millis(50),
        running: AtomicUsize::new(0),
        most_running: AtomicUsize::new(0),
        busy_keys: Mutex::new(HashMap::new()),
        overlaps: AtomicUsize::new(0),
        order: Mutex::new(HashMap::new()),
    });
    let group = unique("group");
    let mut config = ConsumerConfig::new(&bootstrap, &group, [topic_name.clone()]);
    config.max_in_flight = 16;
    let started = tokio::time::Instant::now();
    let consumer = Consumer::start(config, slow.clone()).expect("consumer starts");
    wait_until("80 events handled", DEADLINE, || {
        consumer.stats().processed >= 80
    })
    .await;
    let took = started.elapsed();

    // One at a time, 80 × 50 ms would take 4 s; 10 keys side by side take
    // about 8 × 50 ms plus start-up.
    assert!(
        slow.most_running.load(Ordering::SeqCst) > 1,
        "never concurrent"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // Never two of one key at once, and each key's events in order.
    assert_eq!(slow.overlaps.load(Ordering::SeqCst), 0);
    let order = slow.order.lock().clone();
    assert_eq!(order.len(), 10);
    for (key, ns) in &order {
        assert_eq!(ns, &(0..8).collect::<Vec<i64>>(), "key {key}");
    }

    // Everything done, so the committed offsets reach every partition's end.
    let total: i64 = 80;
    wait_until_async("offsets committed to the end", DEADLINE, || {
        let (bootstrap, group, topic_name) = (bootstrap.clone(), group.clone(), topic_name.clone());
        async move {
            let committed = inspect::committed_offsets(&bootstrap, &group, &topic_name)
                .await
                .expect("committed offsets readable");
            committed.iter().filter_map(|(_, o)| *o).sum::<i64>() == total
        }
    })
    .await;
    wait_until("lag 0", DEADLINE, || {
        let s = consumer.stats();
        s.lag_age.is_some() && s.total_lag() == 0
    })
    .await;
    consumer.stop().await;
    broker.stop().await;
}
