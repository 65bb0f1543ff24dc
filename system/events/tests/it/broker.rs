//! The embedded broker: ports, advertised addresses, stopping.

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

use crate::common::{loopback, topic, unique, wait_until, Recorder, DEADLINE};

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
