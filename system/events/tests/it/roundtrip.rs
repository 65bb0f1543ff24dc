//! Produce → consume through a consumer group, offsets committed.

use std::time::Duration;

use gauntlet_events::{
    inspect, Consumer, ConsumerConfig, Event, EventProducer, EventType, EVENT_ID_HEADER,
};
use serde_json::json;

use crate::common::{broker, topic, unique, wait_until, wait_until_async, Recorder, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_round_trip_through_a_group_and_offsets_are_committed() {
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let topic_name = unique("orders");
    topic(&bootstrap, &topic_name, 3).await;

    let producer = EventProducer::new(&bootstrap, "test-producer").expect("producer");
    let mut sent = Vec::new();
    for order in 0..30i64 {
        let event = Event::new(EventType::OrderCreated, order, json!({ "n": order }));
        let (partition, offset) = producer
            .publish(&topic_name, &event.key(), &event)
            .await
            .expect("published");
        assert!((0..3).contains(&partition), "partition {partition}");
        assert!(offset >= 0);
        sent.push(event);
    }

    let group = unique("group");
    let recorder = Recorder::ok();
    let consumer = Consumer::start(
        ConsumerConfig::new(&bootstrap, &group, [topic_name.clone()]),
        recorder.clone(),
    )
    .expect("consumer starts");
    wait_until("30 events handled", DEADLINE, || recorder.count() >= 30).await;

    // Every event arrived once, intact, with its id in the header.
    let seen = recorder.seen.lock().clone();
    assert_eq!(seen.len(), 30);
    for event in &sent {
        let got: Vec<_> = seen
            .iter()
            .filter(|d| d.event_id().as_deref() == Some(event.event_id.to_string().as_str()))
            .collect();
        assert_eq!(got.len(), 1, "event {} delivered once", event.event_id);
        let d = got[0];
        assert_eq!(d.event().expect("decodes"), *event);
        assert_eq!(d.key_str(), Some(event.key()));
        assert_eq!(
            d.header_str(EVENT_ID_HEADER),
            Some(event.event_id.to_string())
        );
        assert_eq!(d.attempt, 1);
    }
    // Per partition, in offset order.
    for p in 0..3 {
        let offsets: Vec<i64> = seen
            .iter()
            .filter(|d| d.partition == p)
            .map(|d| d.offset)
            .collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "partition {p}: {offsets:?}"
        );
    }

    let stats = consumer.stats();
    assert_eq!(stats.processed, 30);
    assert_eq!(stats.errors, 0);
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(stats.processing.len(), 30);
    assert!(stats.processing_p99() >= stats.processing_p50());
    wait_until("lag measured as 0", DEADLINE, || {
        let s = consumer.stats();
        s.lag_age.is_some() && s.lag.len() == 3 && s.total_lag() == 0
    })
    .await;

    // The group's committed offsets reach the end of every partition, as
    // the broker itself reports them.
    let expected = {
        let mut per = [0i64; 3];
        for d in &seen {
            per[d.partition as usize] = per[d.partition as usize].max(d.offset + 1);
        }
        per
    };
    wait_until_async("offsets committed", DEADLINE, || {
        let (bootstrap, group, topic_name) = (bootstrap.clone(), group.clone(), topic_name.clone());
        async move {
            let committed = inspect::committed_offsets(&bootstrap, &group, &topic_name)
                .await
                .expect("committed offsets readable");
            committed.len() == 3
                && committed.iter().all(|(p, o)| match expected[*p as usize] {
                    0 => o.unwrap_or(0) == 0,
                    end => *o == Some(end),
                })
        }
    })
    .await;

    consumer.stop().await;
    assert_eq!(
        inspect::topic_size(&bootstrap, &topic_name)
            .await
            .expect("size"),
        30
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_fails_within_the_delivery_timeout_when_no_broker_answers() {
    // A port nothing listens on: bind, note, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut settings =
        gauntlet_events::ProducerSettings::new(format!("127.0.0.1:{port}"), "lonely");
    settings.delivery_timeout = Duration::from_millis(500);
    let producer = EventProducer::with_settings(settings).expect("producer");
    let event = Event::new(EventType::OrderCreated, 1, json!({}));
    let started = std::time::Instant::now();
    let result = producer.publish("nowhere", "1", &event).await;
    assert!(result.is_err(), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_and_lag_are_exact_when_records_are_batched() {
    // The producer batches records sent together; the embedded broker's
    // ListOffsets answer then falls short of the end (see the crate docs).
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("batched");
    topic(&bootstrap, &name, 2).await;
    let producer = EventProducer::new(&bootstrap, "batcher").expect("producer");
    let events: Vec<Event> = (0..40)
        .map(|n| Event::new(EventType::StockReserved, n % 4, json!({ "n": n })))
        .collect();
    let results = futures::future::join_all(events.iter().map(|e| {
        let (producer, name) = (&producer, &name);
        async move { producer.publish(name, &e.key(), e).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        inspect::topic_size(&bootstrap, &name).await.expect("size"),
        40
    );
    let read = inspect::read_topic(&bootstrap, &name, Duration::from_secs(10))
        .await
        .expect("read");
    assert_eq!(read.len(), 40);

    let recorder = Recorder::ok();
    let consumer = Consumer::start(
        ConsumerConfig::new(&bootstrap, unique("group"), [name.clone()]),
        recorder.clone(),
    )
    .expect("consumer");
    wait_until("all 40 handled", DEADLINE, || recorder.count() == 40).await;
    wait_until("lag 0 with exact ends", DEADLINE, || {
        let s = consumer.stats();
        s.lag.len() == 2
            && s.total_lag() == 0
            && s.lag.iter().map(|l| l.high_watermark).sum::<i64>() == 40
    })
    .await;
    consumer.stop().await;
    broker.stop().await;
}

/// Kafka's Java `Utils.murmur2`, the partitioner the Java client and
/// kafka-python use for keyed records.
fn java_murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[test]
fn the_java_murmur2_here_matches_kafkas_published_values() {
    // From Kafka's UtilsTest.testMurmur2.
    assert_eq!(java_murmur2(b"21"), -973932308);
    assert_eq!(java_murmur2(b"foobar"), -790332482);
    assert_eq!(java_murmur2(b"a-little-bit-long-string"), -985981536);
    assert_eq!(java_murmur2(b"a-little-bit-longer-string"), -1486304829);
    assert_eq!(
        java_murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
        -58897971
    );
    assert_eq!(java_murmur2(b"abc"), 479470107);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_lands_on_the_partition_the_java_client_would_pick() {
    let broker = broker().await;
    let bootstrap = broker.bootstrap();
    let topic_name = unique("keys");
    topic(&bootstrap, &topic_name, 6).await;
    let producer = EventProducer::new(&bootstrap, "test-keys").expect("producer");
    for order in 0..40i64 {
        let event = Event::new(EventType::OrderCreated, order, json!({ "n": order }));
        let key = event.key();
        let (partition, _) = producer
            .publish(&topic_name, &key, &event)
            .await
            .expect("published");
        // Java: toPositive(murmur2(key)) % partitions.
        let java = (java_murmur2(key.as_bytes()) & 0x7fff_ffff) % 6;
        assert_eq!(partition, java, "key {key}");
    }
    broker.stop().await;
}
