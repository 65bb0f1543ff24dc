//! Produce and consume throughput against the embedded broker, for a fixed
//! number of messages: raw rdkafka (what the client and broker can do) and
//! this crate's own producer and consumer loop (what the services get).
//!
//! `cargo bench -p gauntlet-events --bench throughput [-- --messages 200000 --bytes 200 --partitions 4 --linger-ms 5]`
//!
//! Consumption is bounded by the embedded broker, not the client: it serves
//! a connection's fetches one at a time, each costing it CPU per record
//! (measured here: about 26k records per 250 ms, whatever the producer's
//! batch size), so rdkafka's stream and poll APIs consume at the same rate.
//!
//! Built as a test (`cargo test --all-targets`) it runs a small smoke
//! version instead, so it keeps working without slowing the suite.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use gauntlet_events::{
    handler_fn, inspect, topics, Consumer, ConsumerConfig, EmbeddedBroker, Event, EventProducer,
    EventType, ProducerSettings, TopicSpec,
};
use rdkafka::consumer::{BaseConsumer, Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use tokio::sync::Notify;

/// No run may take longer than this, whatever happens.
const RUN_LIMIT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy)]
struct Args {
    messages: u64,
    bytes: usize,
    partitions: i32,
    /// The raw producer's `linger.ms`: how big its batches get.
    linger_ms: u64,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let benching = argv.iter().any(|a| a == "--bench");
    let mut a = Args {
        messages: if benching { 200_000 } else { 2_000 },
        bytes: 200,
        partitions: 4,
        linger_ms: 5,
    };
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--messages" => a.messages = value.parse().unwrap_or(a.messages),
            "--bytes" => a.bytes = value.parse().unwrap_or(a.bytes),
            "--partitions" => a.partitions = value.parse().unwrap_or(a.partitions),
            "--linger-ms" => a.linger_ms = value.parse().unwrap_or(a.linger_ms),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn rate(n: u64, d: Duration) -> String {
    format!(
        "{:>9.0} msg/s  ({n} in {:.2} s)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64()
    )
}

/// Raw rdkafka producer, everything in flight at once.
async fn produce_raw(bootstrap: &str, topic: &str, a: &Args) -> Duration {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", a.linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("enable.idempotence", "false")
        .create()
        .expect("producer");
    let payload = vec![b'x'; a.bytes];
    let started = Instant::now();
    let mut pending = Vec::with_capacity(a.messages as usize);
    for n in 0..a.messages {
        let key = (n % 1024).to_string();
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        match producer.send_result(record) {
            Ok(delivery) => pending.push(delivery),
            Err((e, _)) => panic!("enqueue failed: {e}"),
        }
    }
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => {}
            other => panic!("delivery failed: {other:?}"),
        }
    }
    started.elapsed()
}

/// This crate's producer: one envelope per event, `in_flight` at a time.
async fn publish_events(bootstrap: &str, topic: &str, a: &Args, in_flight: usize) -> Duration {
    let mut settings = ProducerSettings::new(bootstrap, "bench-events");
    settings.linger = Duration::from_millis(5);
    settings.overrides = vec![("batch.num.messages".into(), "10000".into())];
    let producer = EventProducer::with_settings(settings).expect("producer");
    let filler = "x".repeat(a.bytes.saturating_sub(150));
    let started = Instant::now();
    let failures = stream::iter(0..a.messages)
        .map(|n| {
            let producer = &producer;
            let event = Event::new(
                EventType::OrderCreated,
                (n % 1024) as i64,
                serde_json::json!({ "f": filler }),
            );
            async move { producer.publish(topic, &event.key(), &event).await.is_err() }
        })
        .buffer_unordered(in_flight)
        .filter(|failed| futures::future::ready(*failed))
        .count()
        .await;
    assert_eq!(failures, 0, "publishes failed");
    started.elapsed()
}

/// Raw rdkafka group consumer. Returns (time to first message, time from
/// first to last).
async fn consume_raw(bootstrap: &str, topic: &str, a: &Args) -> (Duration, Duration) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-raw")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let started = Instant::now();
    let mut first = None;
    let mut n = 0;
    while n < a.messages {
        match consumer.recv().await {
            Ok(_) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
            }
            Err(e) => eprintln!("receive error: {e}"),
        }
    }
    let first = first.unwrap_or(started);
    (first - started, first.elapsed())
}

/// Raw rdkafka group consumer, polled on a thread of its own.
fn consume_raw_polled(bootstrap: &str, topic: &str, a: &Args) -> (Duration, Duration) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-raw-polled")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let started = Instant::now();
    let mut first = None;
    let mut n = 0;
    while n < a.messages && started.elapsed() < RUN_LIMIT {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
            }
            Some(Err(e)) => eprintln!("receive error: {e}"),
            None => {}
        }
    }
    let first = first.unwrap_or(started);
    (first - started, first.elapsed())
}

/// This crate's consumer loop with a handler that only counts.
async fn consume_loop(bootstrap: &str, topic: &str, a: &Args) -> (Duration, Duration, String) {
    let count = Arc::new(AtomicU64::new(0));
    let first = Arc::new(parking_lot::Mutex::new(None::<Instant>));
    let done = Arc::new(Notify::new());
    let (c, f, d, total) = (count.clone(), first.clone(), done.clone(), a.messages);
    let handler = handler_fn(move |_msg| {
        let (c, f, d) = (c.clone(), f.clone(), d.clone());
        Box::pin(async move {
            f.lock().get_or_insert_with(Instant::now);
            if c.fetch_add(1, Ordering::Relaxed) + 1 == total {
                d.notify_one();
            }
            Ok(())
        })
    });
    let started = Instant::now();
    let consumer = Consumer::start(
        ConsumerConfig::new(bootstrap, "bench-loop", [topic]),
        handler,
    )
    .expect("consumer");
    done.notified().await;
    let first = first.lock().unwrap_or(started);
    let took = first.elapsed();
    // The last message is counted by the loop just after its handler ends.
    let settle = Instant::now();
    while consumer.stats().processed < total && settle.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = consumer.stats();
    let summary = format!(
        "{} handled, handler p50 {:?}, p99 {:?}",
        stats.processed,
        stats.processing_p50(),
        stats.processing_p99()
    );
    consumer.stop().await;
    (first - started, took, summary)
}

#[tokio::main]
async fn main() {
    let a = args();
    let run = async {
        let broker = EmbeddedBroker::start("127.0.0.1:0".parse().expect("address"), None)
            .await
            .expect("broker");
        let bootstrap = broker.bootstrap();
        let specs = [
            TopicSpec::new("bench-raw", a.partitions),
            TopicSpec::new("bench-events", a.partitions),
        ];
        gauntlet_events::ensure_topics(&bootstrap, &topics::with_dlqs(&specs))
            .await
            .expect("topics");
        println!(
            "gauntlet-events throughput: {} messages of {} bytes, {} partitions, embedded broker, {} cores",
            a.messages,
            a.bytes,
            a.partitions,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );

        let took = produce_raw(&bootstrap, "bench-raw", &a).await;
        println!(
            "produce  rdkafka FutureProducer, acks=all      {}",
            rate(a.messages, took)
        );
        let (join, took) = consume_raw(&bootstrap, "bench-raw", &a).await;
        println!(
            "consume  rdkafka StreamConsumer, group         {}  [group join {:.2} s]",
            rate(a.messages, took),
            join.as_secs_f64()
        );

        let (b, t) = (bootstrap.clone(), "bench-raw");
        let (join, took) = {
            tokio::task::spawn_blocking(move || consume_raw_polled(&b, t, &a))
                .await
                .expect("polling thread")
        };
        println!(
            "consume  rdkafka BaseConsumer poll, group      {}  [group join {:.2} s]",
            rate(a.messages, took),
            join.as_secs_f64()
        );

        let took = publish_events(&bootstrap, "bench-events", &a, 10_000).await;
        println!(
            "publish  EventProducer, 10k in flight         {}",
            rate(a.messages, took)
        );
        let size = inspect::topic_size(&bootstrap, "bench-events")
            .await
            .expect("size");
        assert_eq!(size as u64, a.messages, "every event stored");
        let (join, took, summary) = consume_loop(&bootstrap, "bench-events", &a).await;
        println!(
            "consume  gauntlet Consumer, no-op handler      {}  [group join {:.2} s, {summary}]",
            rate(a.messages, took),
            join.as_secs_f64()
        );
        broker.stop().await;
    };
    if tokio::time::timeout(RUN_LIMIT, run).await.is_err() {
        eprintln!("benchmark did not finish within {RUN_LIMIT:?}");
        std::process::exit(1);
    }
}
