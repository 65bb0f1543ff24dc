//! The embedded broker: ports, advertised addresses, stopping; fetches
//! answered as soon as a record arrives, and from inside a batch; an
//! ApiVersions answer old librdkafka (kcat) can read; no batch skipped
//! while another producer's is still being written.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gauntlet_events::{
    inspect, Consumer, ConsumerConfig, EmbeddedBroker, Event, EventProducer, EventType,
    EventsError, ProducerSettings,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{self, loopback, topic, unique, wait_until, Recorder, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_gets_a_real_port_and_a_taken_port_is_an_error() {
    let a = EmbeddedBroker::start(loopback(0), None)
        .await
        .expect("first");
    let b = EmbeddedBroker::start(loopback(0), None)
        .await
        .expect("second");
    assert_ne!(a.addr().port(), 0);
    assert_ne!(a.addr(), b.addr());
    assert_eq!(a.bootstrap(), a.addr().to_string());
    assert_eq!(a.advertised(), a.bootstrap());

    let taken = EmbeddedBroker::start(a.addr(), None).await;
    assert!(
        matches!(taken, Err(EventsError::BrokerStart { .. })),
        "{taken:?}"
    );
    let bad = EmbeddedBroker::start(loopback(0), Some("no-port-here".into())).await;
    assert!(
        matches!(bad, Err(EventsError::Advertised { .. })),
        "{bad:?}"
    );

    // Stopping frees the port for a new broker.
    let addr = a.addr();
    a.stop().await;
    let again = EmbeddedBroker::start(addr, None)
        .await
        .expect("port reused");
    again.stop().await;
    b.stop().await;
}

/// A plain TCP forwarder standing in for the fault proxy; counts the
/// connections it carries, and can cut them all.
struct Forwarder {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    cut: CancellationToken,
}

impl Forwarder {
    async fn bind() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind(loopback(0)).await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy addr");
        (listener, addr)
    }

    fn run(listener: TcpListener, addr: SocketAddr, target: SocketAddr) -> Self {
        let connections = Arc::new(AtomicUsize::new(0));
        let cut = CancellationToken::new();
        let (count, stop) = (connections.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let stop = stop.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            cut,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_follow_the_advertised_address_through_a_proxy() {
    let (listener, proxy_addr) = Forwarder::bind().await;
    let broker = EmbeddedBroker::start(loopback(0), Some(proxy_addr.to_string()))
        .await
        .expect("broker advertising the proxy");
    assert_eq!(broker.advertised(), proxy_addr.to_string());
    let proxy = Forwarder::run(listener, proxy_addr, broker.addr());

    // Bootstrapping at the broker itself: the metadata sends every client
    // on to the proxy for everything else.
    let direct = broker.bootstrap();
    let name = unique("orders");
    topic(&direct, &name, 1).await;
    let producer = EventProducer::new(&direct, "via-proxy").expect("producer");
    let event = Event::new(EventType::OrderCreated, 1, json!({}));
    producer
        .publish(&name, "1", &event)
        .await
        .expect("published via the proxy");
    assert!(
        proxy.connections.load(Ordering::SeqCst) > 0,
        "traffic went through the proxy"
    );

    let recorder = Recorder::ok();
    let consumer = Consumer::start(
        ConsumerConfig::new(&direct, unique("group"), [name.clone()]),
        recorder.clone(),
    )
    .expect("consumer");
    wait_until("consumed via the proxy", DEADLINE, || recorder.count() == 1).await;
    consumer.stop().await;
    assert_eq!(inspect::topic_size(&direct, &name).await.expect("size"), 1);

    // Cut the proxy: the broker is up, but a client that must go through
    // the proxy cannot publish, and says so within its delivery timeout.
    proxy.cut.cancel();
    let mut settings = ProducerSettings::new(proxy.addr.to_string(), "cut-off");
    settings.delivery_timeout = Duration::from_millis(700);
    let cut_off = EventProducer::with_settings(settings).expect("producer");
    let started = std::time::Instant::now();
    let result = cut_off.publish(&name, "2", &event).await;
    assert!(result.is_err(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stops_promptly_after_its_broker_is_gone() {
    let broker = EmbeddedBroker::start(loopback(0), None)
        .await
        .expect("broker");
    let bootstrap = broker.bootstrap();
    let name = unique("orders");
    topic(&bootstrap, &name, 1).await;
    let producer = EventProducer::new(&bootstrap, "p").expect("producer");
    let event = Event::new(EventType::OrderCreated, 1, json!({}));
    producer
        .publish(&name, "1", &event)
        .await
        .expect("published");
    let recorder = Recorder::ok();
    let consumer = Consumer::start(
        ConsumerConfig::new(&bootstrap, unique("group"), [name.clone()]),
        recorder.clone(),
    )
    .expect("consumer");
    wait_until("consumed", DEADLINE, || recorder.count() == 1).await;

    broker.stop().await;
    let started = std::time::Instant::now();
    consumer.stop().await;
    let took = started.elapsed();
    println!("stop without a broker took {took:?}");
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
}

/// A consumer reading `topic`'s partition 0 from `offset`, whose fetches the
/// broker may hold for `wait_ms` when there is nothing to read.
fn reader(
    bootstrap: &str,
    topic: &str,
    offset: rdkafka::Offset,
    wait_ms: u32,
) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer as _;
    let c: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", wait_ms.to_string())
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, offset)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    c
}

/// Polls `c` on a blocking thread until `n` messages came or `limit`
/// passed; returns their offsets.
async fn read(c: rdkafka::consumer::BaseConsumer, n: usize, limit: Duration) -> Vec<i64> {
    use rdkafka::Message as _;
    tokio::task::spawn_blocking(move || {
        let until = std::time::Instant::now() + limit;
        let mut offsets = Vec::new();
        while offsets.len() < n && std::time::Instant::now() < until {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                offsets.push(m.offset());
            }
        }
        offsets
    })
    .await
    .expect("reader thread")
}

/// A plain producer that waits up to `linger_ms` to fill a batch.
fn producer(bootstrap: &str, linger_ms: u32) -> rdkafka::producer::FutureProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("enable.idempotence", "false")
        .create()
        .expect("producer")
}

/// Sends `n` records at once to partition 0, so the producer puts them in
/// as few batches as it can; returns once all are written.
async fn produce(bootstrap: &str, topic: &str, n: usize) {
    let p = producer(bootstrap, 50);
    let sends = (0..n).map(|i| {
        let payload = format!("m{i}");
        let p = p.clone();
        async move {
            p.send(
                rdkafka::producer::FutureRecord::<(), String>::to(topic)
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
        }
    });
    for sent in futures::future::join_all(sends).await {
        sent.expect("record written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_fetch_is_answered_when_a_record_arrives_not_when_its_wait_runs_out() {
    let broker = common::broker().await;
    let name = unique("longpoll");
    topic(&broker.bootstrap(), &name, 1).await;
    // The broker may hold each fetch for 20 s; the record comes 1 s after
    // the reader starts waiting, so a broker that held the fetch to the
    // end would answer after 19 s more.
    let c = reader(
        &broker.bootstrap(),
        &name,
        rdkafka::Offset::Beginning,
        20_000,
    );
    let reading = tokio::spawn(read(c, 1, Duration::from_secs(15)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    produce(&broker.bootstrap(), &name, 1).await;
    let written = std::time::Instant::now();
    let got = reading.await.expect("reader");
    assert_eq!(got, vec![0], "the record was not read within 15 s");
    assert!(
        written.elapsed() < Duration::from_secs(10),
        "read {:?} after it was written",
        written.elapsed()
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_resuming_inside_a_batch_gets_the_rest_of_it() {
    let broker = common::broker().await;
    let name = unique("midbatch");
    topic(&broker.bootstrap(), &name, 1).await;
    produce(&broker.bootstrap(), &name, 10).await;
    // Offset 5 is inside the first batch when the producer batched; then
    // the broker must answer with that batch (the client skips 0..4), not
    // only with the batches after it.
    let c = reader(&broker.bootstrap(), &name, rdkafka::Offset::Offset(5), 500);
    let got = read(c, 5, DEADLINE).await;
    assert_eq!(got, vec![5, 6, 7, 8, 9]);
    // And from the start, every record once, in order.
    let c = reader(&broker.bootstrap(), &name, rdkafka::Offset::Beginning, 500);
    let got = read(c, 10, DEADLINE).await;
    assert_eq!(got, (0..10).collect::<Vec<i64>>());
    broker.stop().await;
}

/// Writes `n` one-record batches to partition 0, one after another, each
/// sent once the last is written.
async fn produce_one_by_one(bootstrap: &str, topic: &str, n: usize) {
    let p = producer(bootstrap, 0);
    for i in 0..n {
        p.send(
            rdkafka::producer::FutureRecord::<(), String>::to(topic)
                .partition(0)
                .payload(&format!("m{i}")),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("record written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_waits_for_a_batch_still_being_written_and_skips_nothing() {
    // Several producers writing one partition at once (as three groups
    // dead-lettering the same message do) finish their batches out of
    // offset order: a fetch that comes between must not be answered with
    // the batches after the one still being written, or the reader moves
    // past it and never reads it.
    // Before the fix, one round in about fifteen of 8 x 40 lost a record.
    const ROUNDS: usize = 4;
    const PRODUCERS: usize = 16;
    const EACH: usize = 30;
    let broker = common::broker().await;
    let bootstrap = broker.bootstrap();
    let total = PRODUCERS * EACH;
    for round in 0..ROUNDS {
        let name = unique("racing");
        topic(&bootstrap, &name, 1).await;
        let c = reader(&bootstrap, &name, rdkafka::Offset::Beginning, 100);
        let reading = tokio::spawn(read(c, total, Duration::from_secs(20)));
        let writers = (0..PRODUCERS).map(|_| produce_one_by_one(&bootstrap, &name, EACH));
        futures::future::join_all(writers).await;
        let got = reading.await.expect("reader");
        let missing: Vec<i64> = (0..total as i64).filter(|o| !got.contains(o)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: offsets never read: {missing:?} (read {})",
            got.len()
        );
        assert_eq!(
            got,
            (0..total as i64).collect::<Vec<i64>>(),
            "round {round}"
        );
    }
    broker.stop().await;
}

/// The ApiVersions v3 exchange as librdkafka 2.0 sends it (kcat 1.7.1),
/// byte for byte: the answer ends with no tagged fields, as Kafka's does,
/// because that librdkafka skips each tagged field one byte short and
/// cannot read past one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_v3_ends_without_tagged_fields_so_old_librdkafka_can_read_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let broker = common::broker().await;
    let compact = |s: &str| [&[s.len() as u8 + 1][..], s.as_bytes()].concat();
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&3i16.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&4i16.to_be_bytes());
    body.extend_from_slice(b"kcat");
    body.push(0); // header tagged fields
    body.extend(compact("librdkafka"));
    body.extend(compact("2.0.2"));
    body.push(0); // body tagged fields
    let mut s = tokio::net::TcpStream::connect(broker.addr())
        .await
        .expect("connect");
    s.write_all(&(body.len() as i32).to_be_bytes())
        .await
        .expect("send size");
    s.write_all(&body).await.expect("send request");
    let size = s.read_i32().await.expect("answer size") as usize;
    let mut answer = vec![0u8; size];
    s.read_exact(&mut answer).await.expect("answer");

    // Correlation id, error code, then a compact array of (api key, min,
    // max, tagged fields), the throttle time, and the tagged fields.
    assert_eq!(&answer[..4], &7i32.to_be_bytes(), "correlation id");
    assert_eq!(&answer[4..6], &[0, 0], "error code");
    let apis = usize::from(answer[6]) - 1;
    assert!(apis > 10, "{apis} APIs");
    let mut at = 7;
    for _ in 0..apis {
        assert_eq!(answer[at + 6], 0, "an API's tagged fields at byte {at}");
        at += 7;
    }
    at += 4; // throttle time
    assert_eq!(
        &answer[at..],
        &[0],
        "the response's tagged fields: {:02x?}",
        &answer[at..]
    );
    broker.stop().await;
}

/// Commits `offset` (the next to read) on partition 0 of `topic` for
/// `group`, as a consumer of that group would.
async fn commit_as(bootstrap: &str, group: &str, topic: &str, offset: i64) {
    use rdkafka::consumer::{CommitMode, Consumer as _};
    let (bootstrap, group, topic) = (bootstrap.to_string(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let c: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Offset(offset))
            .expect("partition");
        c.commit(&tpl, CommitMode::Sync).expect("committed");
    })
    .await
    .expect("commit task");
}

/// The (earliest, latest) offsets of partition 0 of `topic`, from a
/// ListOffsets request as librdkafka sends it.
async fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    use rdkafka::consumer::Consumer as _;
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let c: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", unique("watermarks"))
            .create()
            .expect("consumer");
        c.fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .expect("watermarks")
    })
    .await
    .expect("watermarks task")
}

/// The earliest offset still stored on partition 0 of `topic`.
async fn earliest(bootstrap: &str, topic: &str) -> i64 {
    watermarks(bootstrap, topic).await.0
}

/// ListOffsets answers with the ends of the log, not with the batch stored
/// first or last: a batch of several records ends past its last record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_answers_the_ends_of_the_log_whatever_the_batches() {
    let broker = common::broker().await;
    let bootstrap = broker.bootstrap();
    let name = unique("ends");
    topic(&bootstrap, &name, 1).await;
    assert_eq!(watermarks(&bootstrap, &name).await, (0, 0), "empty");
    // Twenty records sent at once, lingering: a few batches of several.
    produce(&bootstrap, &name, 20).await;
    assert_eq!(
        watermarks(&bootstrap, &name).await,
        (0, 20),
        "after one burst"
    );
    produce(&bootstrap, &name, 7).await;
    assert_eq!(
        watermarks(&bootstrap, &name).await,
        (0, 27),
        "after another"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_every_group_has_committed_past_is_deleted_once_old_enough() {
    let retain = Duration::from_secs(5);
    let broker = EmbeddedBroker::start_retaining(loopback(0), None, Some(retain))
        .await
        .expect("broker");
    let bootstrap = broker.bootstrap();
    let name = unique("retained");
    topic(&bootstrap, &name, 1).await;
    let producer = EventProducer::new(&bootstrap, "p").expect("producer");
    let event = Event::new(EventType::OrderCreated, 1, json!({}));
    let mut produced = 0;
    let mut publish = async |n: i64| {
        for _ in 0..n {
            // One at a time: a batch each.
            producer
                .publish(&name, "1", &event)
                .await
                .expect("published");
            produced += 1;
        }
        produced
    };
    publish(10).await;
    let slow = unique("slow");
    commit_as(&bootstrap, &unique("fast"), &name, 10).await;
    commit_as(&bootstrap, &slow, &name, 4).await;

    // Nothing is deleted before it is old enough, whatever the groups say.
    publish(1).await;
    assert_eq!(
        earliest(&bootstrap, &name).await,
        0,
        "deleted before the retention's age"
    );

    // Once old enough, what the slowest group has not finished with stays.
    tokio::time::sleep(retain * 2).await;
    publish(1).await;
    assert_eq!(
        earliest(&bootstrap, &name).await,
        4,
        "kept from the slow group's committed offset on"
    );

    // When it catches up, the rest of what is old enough goes.
    commit_as(&bootstrap, &slow, &name, 12).await;
    tokio::time::sleep(retain * 2).await;
    let total = publish(1).await;
    assert_eq!(
        earliest(&bootstrap, &name).await,
        10,
        "the fast group's offset is now the lowest"
    );

    // The topic's size still counts every message ever appended (it is
    // compared with committed offsets), and a reader from the beginning
    // gets what is left.
    assert_eq!(
        inspect::topic_size(&bootstrap, &name).await.expect("size"),
        total
    );
    let left = inspect::read_topic(&bootstrap, &name, Duration::from_secs(10))
        .await
        .expect("read");
    assert_eq!(left.len() as i64, total - 10);
    assert_eq!(left.first().map(|d| d.offset), Some(10));

    broker.stop().await;
}
