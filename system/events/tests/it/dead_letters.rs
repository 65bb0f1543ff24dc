//! Poison messages, permanent errors, retries and exhausted retries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gauntlet_events::{
    dlq_topic, handler_fn, inspect, Consumer, ConsumerConfig, DeadLetter, Delivery, Event,
    EventProducer, EventType, HandleError, RetrySettings,
};
use parking_lot::Mutex;
use serde_json::json;

use crate::common::{broker, topic, unique, wait_until, Recorder, DEADLINE};

fn fast_retries(max_attempts: u32) -> RetrySettings {
    RetrySettings {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        seed: 11,
    }
}

fn config(bootstrap: &str, group: &str, topic: &str, retry: RetrySettings) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(bootstrap, group, [topic]);
    config.retry = retry;
    config
}

async fn read_dlq(bootstrap: &str, topic: &str, want: usize) -> Vec<Delivery> {
    let dlq = dlq_topic(topic);
    let mut got = Vec::new();
    wait_until_dlq(bootstrap, &dlq, want, &mut got).await;
    got
}

async fn wait_until_dlq(bootstrap: &str, dlq: &str, want: usize, got: &mut Vec<Delivery>) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        *got = inspect::read_topic(bootstrap, dlq, Duration::from_secs(10))
            .await
            .expect("dlq readable");
        if got.len() >= want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{dlq} holds {} messages, want {want}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_permanent_failures_are_dead_lettered_and_the_consumer_goes_on() {
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("payments");
    // One partition, so "the messages after it" is well defined.
    topic(&bootstrap, &name, 1).await;
    let producer = EventProducer::new(&bootstrap, "poisoner").expect("producer");

    let before = Event::new(EventType::OrderCreated, 1, json!({}));
    producer
        .publish(&name, "1", &before)
        .await
        .expect("published");
    // Not JSON at all, with a header of its own that must survive.
    let (_, poison_offset) = producer
        .publish_raw(
            &name,
            Some(b"2".as_slice()),
            b"\xff{not json",
            &[("trace", b"t-1".as_slice())],
        )
        .await
        .expect("published");
    // Valid, but the handler rejects it for good.
    let rejected = Event::new(EventType::PaymentFailed, 3, json!({"reject": true}));
    let (_, rejected_offset) = producer
        .publish(&name, "3", &rejected)
        .await
        .expect("published");
    let after: Vec<Event> = (4..9)
        .map(|n| Event::new(EventType::OrderCreated, n, json!({})))
        .collect();
    for e in &after {
        producer
            .publish(&name, &e.key(), e)
            .await
            .expect("published");
    }

    let attempts = Arc::new(Mutex::new(HashMap::<i64, u32>::new()));
    let handled = Arc::new(Mutex::new(Vec::<i64>::new()));
    let (a, h) = (attempts.clone(), handled.clone());
    let handler = handler_fn(move |msg| {
        let (a, h) = (a.clone(), h.clone());
        Box::pin(async move {
            *a.lock().entry(msg.offset).or_default() += 1;
            let event = msg.event()?;
            if event.payload.get("reject").is_some() {
                return Err(HandleError::permanent("order 3 is rejected"));
            }
            h.lock().push(event.order_id);
            Ok(())
        })
    });
    let group = unique("payments-group");
    let consumer = Consumer::start(config(&bootstrap, &group, &name, fast_retries(4)), handler)
        .expect("starts");
    wait_until("the events after the poison handled", DEADLINE, || {
        handled.lock().len() == 6
    })
    .await;
    assert_eq!(*handled.lock(), vec![1, 4, 5, 6, 7, 8]);

    let dead = read_dlq(&bootstrap, &name, 2).await;
    assert_eq!(dead.len(), 2, "exactly two dead letters");
    let poison = &dead[0];
    assert_eq!(poison.payload, b"\xff{not json");
    assert_eq!(poison.key.as_deref(), Some(b"2".as_slice()));
    assert_eq!(poison.header_str("trace").as_deref(), Some("t-1"));
    let info = DeadLetter::from_delivery(poison).expect("dead-letter headers");
    assert_eq!(info.original_topic, name);
    assert_eq!(info.original_partition, 0);
    assert_eq!(info.original_offset, poison_offset);
    assert_eq!(info.attempts, 1, "permanent: no retries");
    assert_eq!(info.kind.as_deref(), Some("permanent"));
    assert_eq!(info.group.as_deref(), Some(group.as_str()));
    assert!(info.error.contains("not an event"), "{}", info.error);

    let rejected_dead = &dead[1];
    assert_eq!(rejected_dead.event().expect("still the event"), rejected);
    assert_eq!(
        rejected_dead.event_id(),
        Some(rejected.event_id.to_string())
    );
    let info = DeadLetter::from_delivery(rejected_dead).expect("dead-letter headers");
    assert_eq!(info.original_offset, rejected_offset);
    assert_eq!(info.attempts, 1);
    assert!(info.error.contains("order 3 is rejected"), "{}", info.error);
    for header in [
        "dlq-error",
        "dlq-attempts",
        "dlq-original-topic",
        "dlq-original-partition",
        "dlq-original-offset",
    ] {
        assert!(rejected_dead.header(header).is_some(), "{header} missing");
    }

    assert_eq!(attempts.lock().get(&poison_offset), Some(&1));
    let stats = consumer.stats();
    assert_eq!(stats.processed, 6);
    assert_eq!(stats.dead_lettered, 2);
    assert_eq!(stats.retries, 0);
    assert_eq!(stats.errors, 2);
    consumer.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_until_they_succeed_or_run_out() {
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("catalog");
    topic(&bootstrap, &name, 1).await;
    let producer = EventProducer::new(&bootstrap, "flaky").expect("producer");

    // Order 1 fails twice then works; order 2 always fails; order 3 works.
    let events: Vec<Event> = (1..=3)
        .map(|n| Event::new(EventType::StockReserved, n, json!({})))
        .collect();
    for e in &events {
        producer
            .publish(&name, &e.key(), e)
            .await
            .expect("published");
    }
    let max_attempts = 4;
    let recorder = Recorder::new(move |d| {
        let event = d.event()?;
        match (event.order_id, d.attempt) {
            (1, a) if a < 3 => Err(HandleError::transient(format!("busy, attempt {a}"))),
            (2, a) => Err(HandleError::transient(format!("still down, attempt {a}"))),
            _ => Ok(()),
        }
    });
    let consumer = Consumer::start(
        config(
            &bootstrap,
            &unique("catalog-group"),
            &name,
            fast_retries(max_attempts),
        ),
        recorder.clone(),
    )
    .expect("starts");
    wait_until("all three done", DEADLINE, || {
        let s = consumer.stats();
        s.processed == 2 && s.dead_lettered == 1
    })
    .await;

    let attempts_of = |order: i64| -> Vec<u32> {
        recorder
            .seen
            .lock()
            .iter()
            .filter(|d| d.event().map(|e| e.order_id) == Ok(order))
            .map(|d| d.attempt)
            .collect()
    };
    assert_eq!(attempts_of(1), vec![1, 2, 3], "retried, then succeeded");
    assert_eq!(
        attempts_of(2),
        vec![1, 2, 3, 4],
        "retried up to max_attempts"
    );
    assert_eq!(attempts_of(3), vec![1], "the next message went on");

    let dead = read_dlq(&bootstrap, &name, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event().expect("the event"), events[1]);
    let info = DeadLetter::from_delivery(&dead[0]).expect("dead-letter headers");
    assert_eq!(info.attempts, max_attempts);
    assert_eq!(info.kind.as_deref(), Some("transient"));
    assert!(
        info.error.contains("still down, attempt 4"),
        "{}",
        info.error
    );

    let stats = consumer.stats();
    assert_eq!(stats.retries, 2 + 3);
    assert_eq!(stats.errors, 2 + 4);
    consumer.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_dead_letters_the_message_and_survives() {
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("analytics");
    topic(&bootstrap, &name, 1).await;
    let producer = EventProducer::new(&bootstrap, "panics").expect("producer");
    for n in 1..=3 {
        let e = Event::new(EventType::OrderConfirmed, n, json!({}));
        producer
            .publish(&name, &e.key(), &e)
            .await
            .expect("published");
    }
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let handler = handler_fn(move |msg| {
        let c = c.clone();
        Box::pin(async move {
            c.fetch_add(1, Ordering::SeqCst);
            if msg.event()?.order_id == 2 {
                panic!("bug in the handler");
            }
            Ok(())
        })
    });
    let consumer = Consumer::start(
        config(
            &bootstrap,
            &unique("analytics-group"),
            &name,
            fast_retries(3),
        ),
        handler,
    )
    .expect("starts");
    wait_until("the message after the panic handled", DEADLINE, || {
        let s = consumer.stats();
        s.processed == 2 && s.dead_lettered == 1
    })
    .await;
    let dead = read_dlq(&bootstrap, &name, 1).await;
    let info = DeadLetter::from_delivery(&dead[0]).expect("dead-letter headers");
    assert_eq!(info.kind.as_deref(), Some("panic"));
    assert!(info.error.contains("bug in the handler"), "{}", info.error);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "a panic is not retried");
    consumer.stop().await;
    broker.stop().await;
}

/// Panics before making its future: still only a dead letter.
struct PanicsEarly;

impl gauntlet_events::Handler for PanicsEarly {
    fn handle<'a>(
        &'a self,
        msg: &'a Delivery,
    ) -> futures::future::BoxFuture<'a, Result<(), HandleError>> {
        if msg.key.as_deref() == Some(b"boom".as_slice()) {
            panic!("panicked outside the future");
        }
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_panicking_before_its_future_is_caught_too() {
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("early");
    topic(&bootstrap, &name, 1).await;
    let producer = EventProducer::new(&bootstrap, "early").expect("producer");
    for key in ["a", "boom", "b"] {
        producer
            .publish_raw(&name, Some(key.as_bytes()), b"{}", &[] as &[(&str, &[u8])])
            .await
            .expect("published");
    }
    let consumer = Consumer::start(
        config(&bootstrap, &unique("early-group"), &name, fast_retries(3)),
        Arc::new(PanicsEarly),
    )
    .expect("starts");
    wait_until("both others handled", DEADLINE, || {
        let s = consumer.stats();
        s.processed == 2 && s.dead_lettered == 1
    })
    .await;
    let dead = read_dlq(&bootstrap, &name, 1).await;
    assert_eq!(dead[0].key.as_deref(), Some(b"boom".as_slice()));
    let info = DeadLetter::from_delivery(&dead[0]).expect("dead-letter headers");
    assert!(
        info.error.contains("panicked outside the future"),
        "{}",
        info.error
    );
    consumer.stop().await;
    broker.stop().await;
}
