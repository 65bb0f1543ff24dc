//! Synchronous order flow under load: N clients in a closed loop, each
//! placing an order through the gateway and waiting for its saga, for a
//! fixed time, at a few provider latencies. Reports orders/s and the
//! latency percentiles of `POST /api/orders` (HdrHistogram, µs).
//!
//! `cargo bench -p gauntlet-system --bench sync_orders [-- --clients 50 --seconds 10 --latencies 0,100]`

use std::time::{Duration, Instant};

use gauntlet_system::{Service, System, SystemOptions};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

struct Args {
    clients: usize,
    seconds: u64,
    latencies: Vec<u64>,
}

fn args() -> Args {
    let mut a = Args {
        clients: 50,
        seconds: 10,
        latencies: vec![0, 100],
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--clients" => a.clients = value.parse().unwrap_or(a.clients),
            "--seconds" => a.seconds = value.parse().unwrap_or(a.seconds),
            "--latencies" => {
                a.latencies = value.split(',').filter_map(|v| v.parse().ok()).collect()
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

struct Outcome {
    latency: Histogram<u64>,
    confirmed: u64,
    other: u64,
    errors: u64,
    elapsed: Duration,
}

async fn run(clients: usize, seconds: u64, provider_latency_ms: u64) -> Outcome {
    let mut system = System::start(SystemOptions::default())
        .await
        .expect("system starts");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let g = system.url(Service::Gateway);
    let user: Value = http
        .post(format!("{g}/api/users"))
        .json(&json!({"name": "Load", "email": "load@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let product: Value = http
        .post(format!("{g}/api/products"))
        .json(&json!({"name": "Widget", "price_cents": 100, "stock": 100_000_000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.put(format!("{}/admin/faults", system.url(Service::Provider)))
        .json(&json!({"latency_ms": provider_latency_ms}))
        .send()
        .await
        .unwrap();
    let body =
        json!({"user_id": user["id"], "product_id": product["id"], "quantity": 1, "flow": "sync"});

    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let http = http.clone();
        let url = format!("{g}/api/orders");
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut confirmed, mut other, mut errors) = (0, 0, 0);
            while Instant::now() < until {
                let sent = Instant::now();
                let r = http.post(&url).json(&body).send().await;
                let status = match r {
                    Ok(r) => r.json::<Value>().await.ok().map(|v| v["status"].clone()),
                    Err(_) => None,
                };
                let _ = h.record(sent.elapsed().as_micros() as u64);
                match status {
                    Some(s) if s == "CONFIRMED" => confirmed += 1,
                    Some(_) => other += 1,
                    None => errors += 1,
                }
            }
            (h, confirmed, other, errors)
        }));
    }
    let mut out = Outcome {
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        confirmed: 0,
        other: 0,
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (h, c, o, e) = t.await.unwrap();
        out.latency.add(h).unwrap();
        out.confirmed += c;
        out.other += o;
        out.errors += e;
    }
    out.elapsed = start.elapsed();
    system.stop().await;
    out
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "sync flow, {} clients, {} s per run, {} cores",
        a.clients,
        a.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>18} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "provider latency", "orders/s", "confirmed", "other", "p50 ms", "p99 ms", "max ms"
    );
    for &lat in &a.latencies {
        let o = rt.block_on(run(a.clients, a.seconds, lat));
        let total = o.confirmed + o.other + o.errors;
        let ms = |q: f64| o.latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:>15} ms {:>10.0} {:>10} {:>9} {:>9.1} {:>9.1} {:>9.1}",
            lat,
            total as f64 / o.elapsed.as_secs_f64(),
            o.confirmed,
            o.other + o.errors,
            ms(0.5),
            ms(0.99),
            o.latency.max() as f64 / 1000.0
        );
    }
}
