//! One order, one trace: the spans a sync order leaves (gateway → orders
//! → catalog / payments → provider, each hop a client span and the next
//! service's server span under it), caught by an in-memory exporter; and
//! the events of an async order, each carrying the trace of the request
//! that placed it. Both orders are placed with the client's own
//! `traceparent`, which the system honours.

use std::sync::OnceLock;
use std::time::Duration;

use gauntlet::stack::{Kafka, StackOptions};
use gauntlet_system::SystemOptions;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::common::Harness;

/// The spans of traces a client started as sampled, and nothing else: a
/// span with no sampled parent is not recorded, so the other tests of this
/// binary (whose requests carry no `traceparent`) leave nothing here.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    &EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
                .with_simple_exporter(exporter.clone())
                .build();
            // Not `try_init`: that also claims the `log` facade, which the
            // load generator's tests may have taken already.
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(gauntlet::traces::layer(&provider)),
            )
            .expect("no other subscriber in this test binary");
            (exporter, provider)
        })
        .0
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// The spans of `trace` so far.
fn spans_of(trace: TraceId) -> Vec<SpanData> {
    exporter()
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect()
}

/// The one span of `spans` with `parent` as its parent that `pick` takes.
fn child<'a>(
    spans: &'a [SpanData],
    parent: SpanId,
    what: &str,
    pick: impl Fn(&SpanData) -> bool,
) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == parent && pick(s))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{what} under {parent}: {:#?}",
        spans
            .iter()
            .map(|s| format!(
                "{} {} <- {} {:?}",
                s.name,
                s.span_context.span_id(),
                s.parent_span_id,
                s.span_kind
            ))
            .collect::<Vec<_>>()
    );
    found[0]
}

fn server(service: &'static str) -> impl Fn(&SpanData) -> bool {
    move |s| s.span_kind == SpanKind::Server && attr(s, "service").as_deref() == Some(service)
}

fn call(link: &'static str) -> impl Fn(&SpanData) -> bool {
    move |s| s.span_kind == SpanKind::Client && attr(s, "link").as_deref() == Some(link)
}

fn named(name: &'static str) -> impl Fn(&SpanData) -> bool {
    move |s| s.name == name
}

async fn place(h: &Harness, order: Value, traceparent: &str) -> (u16, Value) {
    let r = h
        .http
        .post(format!("{}/api/orders", h.stack.gateway_url()))
        .header("traceparent", traceparent)
        .json(&order)
        .send()
        .await
        .expect("gateway answers");
    (r.status().as_u16(), r.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_one_trace_across_every_service_and_event() {
    exporter();
    let mut h = Harness::start(StackOptions {
        system: SystemOptions::default(),
        kafka: Kafka::Embedded,
        ..StackOptions::default()
    })
    .await;
    let (user, product) = h.seed(500, 10).await;

    // The sync saga: one trace from the client's span down to the provider.
    let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let client_span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let (status, order) = place(
        &h,
        json!({"user_id": user, "product_id": product, "quantity": 1, "flow": "sync"}),
        &format!("00-{trace}-{client_span}-01"),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let id = order["id"].as_i64().unwrap();
    let shown = h
        .get(format!("{}/api/orders/{id}", h.stack.gateway_url()))
        .await;
    assert_eq!(shown["trace_id"], trace.to_string(), "{shown}");

    // A server span ends a moment after its answer is written.
    let mut spans = Vec::new();
    for _ in 0..50 {
        spans = spans_of(trace);
        if spans.iter().any(server("provider"))
            && spans
                .iter()
                .filter(|s| s.span_kind == SpanKind::Server)
                .count()
                >= 5
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            spans = spans_of(trace);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gateway = child(&spans, client_span, "the gateway's span", server("gateway"));
    assert!(
        gateway.parent_span_is_remote,
        "the client's span is its parent"
    );
    let to_orders = child(
        &spans,
        gateway.span_context.span_id(),
        "gateway->orders",
        call("gateway->orders"),
    );
    let orders = child(
        &spans,
        to_orders.span_context.span_id(),
        "orders' span",
        server("orders"),
    );
    let reserve = child(
        &spans,
        orders.span_context.span_id(),
        "saga.reserve",
        named("saga.reserve"),
    );
    let to_catalog = child(
        &spans,
        reserve.span_context.span_id(),
        "orders->catalog",
        call("orders->catalog"),
    );
    child(
        &spans,
        to_catalog.span_context.span_id(),
        "catalog's span",
        server("catalog"),
    );
    let charge = child(
        &spans,
        orders.span_context.span_id(),
        "saga.charge",
        named("saga.charge"),
    );
    let to_payments = child(
        &spans,
        charge.span_context.span_id(),
        "orders->payments",
        call("orders->payments"),
    );
    let payments = child(
        &spans,
        to_payments.span_context.span_id(),
        "payments' span",
        server("payments"),
    );
    let to_provider = child(
        &spans,
        payments.span_context.span_id(),
        "payments->provider",
        call("payments->provider"),
    );
    child(
        &spans,
        to_provider.span_context.span_id(),
        "the provider's span",
        server("provider"),
    );

    // The async flow: every event of the order carries the trace of the
    // request that placed it, through each service's outbox and consumer.
    let trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
    let (status, order) = place(
        &h,
        json!({"user_id": user, "product_id": product, "quantity": 1, "flow": "async"}),
        &format!("00-{trace}-b7ad6b7169203331-01"),
    )
    .await;
    assert_eq!(status, 202, "{order}");
    let id = order["id"].as_i64().unwrap();
    let mut settled = Value::Null;
    for _ in 0..100 {
        settled = h
            .get(format!("{}/api/orders/{id}", h.stack.gateway_url()))
            .await;
        if settled["status"] != "PENDING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(settled["status"], "CONFIRMED", "{settled}");
    assert_eq!(settled["trace_id"], trace.to_string(), "{settled}");
    let bootstrap = h.stack.kafka().await.expect("broker");
    let key = id.to_string();
    let expected = [
        "OrderCreated",
        "StockReserved",
        "PaymentCompleted",
        "OrderConfirmed",
    ];
    // The status is read from orders' database; the event its transaction
    // wrote is published by the relay a little later (after its linger).
    let mut events = Vec::new();
    for _ in 0..50 {
        events.clear();
        for topic in ["orders", "inventory", "payments"] {
            let messages =
                gauntlet_events::inspect::read_topic(&bootstrap, topic, Duration::from_secs(10))
                    .await
                    .expect("topic readable");
            for m in messages
                .into_iter()
                .filter(|m| m.key.as_deref() == Some(key.as_bytes()))
            {
                let traceparent = m.header_str("traceparent").unwrap_or_default();
                let event = m.event().expect("an event");
                events.push((event.event_type.as_str().to_string(), traceparent));
            }
        }
        if expected
            .iter()
            .all(|e| events.iter().any(|(t, _)| t.as_str() == *e))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    for expected in expected {
        assert!(types.contains(&expected), "{expected} in {events:?}");
    }
    for (event, traceparent) in &events {
        assert_eq!(
            gauntlet_events::trace::trace_id_of(traceparent),
            Some(trace.to_string().as_str()),
            "{event}'s traceparent: {traceparent:?}"
        );
    }
    // And each handling is a consumer span in that trace, under the
    // publish of the event it handled (the last handlings end a moment
    // after the order is confirmed).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = spans_of(trace);
    let consumers: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Consumer)
        .collect();
    assert!(consumers.len() >= 4, "{} consumer spans", consumers.len());
    for c in consumers {
        let parent = spans
            .iter()
            .find(|s| s.span_context.span_id() == c.parent_span_id)
            .unwrap_or_else(|| panic!("{}'s parent is in the trace", c.name));
        assert_eq!(
            parent.span_kind,
            SpanKind::Producer,
            "{} under {}",
            c.name,
            parent.name
        );
    }
    h.stack.stop().await;
}
