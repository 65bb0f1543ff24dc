//! Pause stops consumption without leaving the group; resume restarts it.
//! Lag is measured throughout.

use std::time::Duration;

use gauntlet_events::{Consumer, ConsumerConfig, Event, EventProducer, EventType};
use serde_json::json;

use crate::common::{broker, topic, unique, wait_until, Recorder, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_and_resume_restarts_consumption() {
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("analytics");
    topic(&bootstrap, &name, 2).await;
    let producer = EventProducer::new(&bootstrap, "pause").expect("producer");
    let publish = |from: i64, to: i64| {
        let (producer, name) = (producer.clone(), name.clone());
        async move {
            // One at a time: see the note on lag while paused below.
            for n in from..to {
                let e = Event::new(EventType::OrderConfirmed, n, json!({}));
                producer
                    .publish(&name, &e.key(), &e)
                    .await
                    .expect("published");
            }
        }
    };

    let recorder = Recorder::ok();
    let mut config = ConsumerConfig::new(&bootstrap, unique("analytics-group"), [name.clone()]);
    config.lag_interval = Duration::from_millis(100);
    let consumer = Consumer::start(config, recorder.clone()).expect("starts");
    publish(0, 10).await;
    wait_until("first 10 handled", DEADLINE, || recorder.count() == 10).await;
    wait_until("both partitions assigned", DEADLINE, || {
        consumer.stats().lag.len() == 2
    })
    .await;

    consumer.pause().expect("paused");
    assert!(consumer.stats().paused);
    publish(10, 30).await;
    // While paused the broker's end is read with a ListOffsets query, which
    // the embedded broker answers exactly for one-record batches.
    wait_until("lag to show the 20 waiting", DEADLINE, || {
        consumer.stats().total_lag() == 20
    })
    .await;
    // Nothing to await for "nothing happens": watch for a while.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(recorder.count(), 10, "nothing consumed while paused");
    assert_eq!(consumer.stats().total_lag(), 20);

    consumer.resume().expect("resumed");
    assert!(!consumer.stats().paused);
    wait_until("the 20 handled after resume", DEADLINE, || {
        recorder.count() == 30
    })
    .await;
    wait_until("lag back to 0", DEADLINE, || {
        consumer.stats().total_lag() == 0
    })
    .await;
    let mut orders: Vec<i64> = recorder
        .seen
        .lock()
        .iter()
        .map(|d| d.event().expect("event").order_id)
        .collect();
    orders.sort_unstable();
    assert_eq!(orders, (0..30).collect::<Vec<_>>(), "each once, none lost");
    let stats = consumer.stats();
    assert_eq!(stats.processed, 30);
    assert_eq!(stats.client_errors, 0);
    consumer.stop().await;
    broker.stop().await;
}
