//! The asynchronous order flow (or, with `--sync`, the synchronous one) at
//! a fixed offered rate: orders are sent open-loop (on schedule, whatever
//! the answers do) through the gateway with `flow = "async"` for a fixed
//! time, on the same stack `serve` runs
//! (every link behind its proxy, the embedded broker behind `kafka`).
//! Reports orders accepted per second, the accept latency, the time from
//! accepted to CONFIRMED/CANCELLED as the orders database recorded it, and
//! the CPU the whole process spent per order while sending and settling.
//!
//! `cargo bench --bench async_orders [-- --rate 2000 --seconds 30]`
//!
//! With `--find`, it looks for the sustained rate instead: the highest
//! offered rate at which every order is accepted and settles, with settle
//! p99 under 1 s, for `--seconds` (default 20). It doubles from `--from`
//! (default 100) until a rate fails, then bisects to within 10%, each rate
//! on a fresh stack, at most `--probes` (default 8) rates.
//!
//! `cargo bench --bench async_orders -- --find [--from 100 --seconds 20]`
//!
//! `--sync` runs the synchronous flow instead (the saga in the request:
//! an order counts once answered 201, settled or compensated, and "settle"
//! is its answer's latency); `--provider-ms N` sets the payment provider's
//! delay (default 0).
//!
//! `cargo bench --bench async_orders -- --find --sync --provider-ms 200`

mod common;
use common::arg;

use std::time::{Duration, Instant};

use gauntlet::stack::{Kafka, Stack, StackOptions};
use gauntlet_system::Service;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Which flow the orders take, and how slow the payment provider is.
#[derive(Clone, Copy)]
struct Flow {
    sync: bool,
    provider_ms: u64,
}

impl Flow {
    fn name(self) -> &'static str {
        if self.sync {
            "sync"
        } else {
            "async"
        }
    }

    /// The answer that means the order was taken: 201 settled in the
    /// request, 202 accepted for the event path.
    fn taken(self) -> &'static str {
        if self.sync {
            "201"
        } else {
            "202"
        }
    }
}

fn main() {
    let find = std::env::args().any(|a| a == "--find");
    let flow = Flow {
        sync: std::env::args().any(|a| a == "--sync"),
        provider_ms: arg("--provider-ms", 0),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if find {
        let seconds = arg("--seconds", 20);
        rt.block_on(find_sustained(
            flow,
            arg("--from", 100).max(1),
            seconds,
            arg("--probes", 8),
        ));
    } else {
        rt.block_on(run(flow, arg("--rate", 2000), arg("--seconds", 30)));
    }
}

/// What one rate gave.
struct Probe {
    rate: u64,
    total: u64,
    accepted: u64,
    open: u64,
    settle_p99_ms: u64,
    cpu_ms_per_order: f64,
}

impl Probe {
    /// Every order accepted and settled, settle p99 under a second.
    fn held(&self) -> bool {
        self.accepted == self.total && self.open == 0 && self.settle_p99_ms < 1000
    }
}

/// User plus system CPU this process has used so far.
fn cpu_used() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and reads nothing.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

async fn find_sustained(flow: Flow, from: u64, seconds: u64, probes: u64) {
    let (mut held, mut failed): (Option<u64>, Option<u64>) = (None, None);
    let mut rate = from;
    let mut results = Vec::new();
    for _ in 0..probes {
        let p = run(flow, rate, seconds).await;
        println!();
        if p.held() {
            held = Some(rate);
        } else {
            failed = Some(rate);
        }
        results.push(p);
        let next = match (held, failed) {
            (Some(lo), None) => lo * 2,
            (lo, Some(hi)) => {
                let lo = lo.unwrap_or(0);
                if hi - lo <= (lo / 10).max(5) {
                    break;
                }
                (lo + hi) / 2
            }
            (None, None) => break,
        };
        rate = next;
    }
    println!(
        "sustained rate, {} flow, provider {} ms ({seconds} s per rate; held = all accepted, all settled, settle p99 < 1 s):",
        flow.name(),
        flow.provider_ms
    );
    println!("| offered | accepted | still open | settle p99 | CPU per order | held |");
    println!("|---|---|---|---|---|---|");
    for p in &results {
        println!(
            "| {}/s | {} of {} | {} | {} ms | {:.2} ms | {} |",
            p.rate,
            p.accepted,
            p.total,
            p.open,
            p.settle_p99_ms,
            p.cpu_ms_per_order,
            if p.held() { "yes" } else { "no" }
        );
    }
    match held {
        Some(r) => {
            let cpu = results
                .iter()
                .find(|p| p.rate == r)
                .map_or(0.0, |p| p.cpu_ms_per_order);
            println!(
                "sustained: {r}/s ({cpu:.2} ms CPU per order){}",
                failed.map_or(String::new(), |f| format!("; {f}/s did not hold"))
            );
        }
        None => println!("sustained: none; {from}/s already did not hold"),
    }
}

async fn run(flow: Flow, rate: u64, seconds: u64) -> Probe {
    let mut options = StackOptions {
        kafka: Kafka::Embedded,
        ..StackOptions::default()
    };
    options.system.config.provider.latency_ms = flow.provider_ms;
    let mut stack = Stack::start(options).await.expect("stack starts");
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    let g = stack.gateway_url().to_string();
    let user: Value = http
        .post(format!("{g}/api/users"))
        .json(&json!({"name": "Load", "email": "load@example.com"}))
        .send()
        .await
        .expect("user")
        .json()
        .await
        .expect("user json");
    let product: Value = http
        .post(format!("{g}/api/products"))
        .json(&json!({"name": "Widget", "price_cents": 100, "stock": 1_000_000_000}))
        .send()
        .await
        .expect("product")
        .json()
        .await
        .expect("product json");
    let body = json!({"user_id": user["id"], "product_id": product["id"], "quantity": 1, "flow": flow.name()});

    // Open loop: one request per slot of the schedule, sent on time.
    let cpu_before = cpu_used();
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(total as usize);
    for k in 0..total {
        let due = start + interval * k as u32;
        tokio::time::sleep_until(due).await;
        let (http, url, body) = (http.clone(), format!("{g}/api/orders"), body.clone());
        sent.push(tokio::spawn(async move {
            let r = http.post(url).json(&body).send().await;
            let outcome = match r {
                // A refusal says why: the error of the body every service
                // answers with.
                Ok(r) if !r.status().is_success() => {
                    let status = r.status().as_u16();
                    let why =
                        r.json::<serde_json::Value>().await.ok().and_then(|b| {
                            b.get("error").and_then(|e| e.as_str()).map(str::to_string)
                        });
                    match why {
                        Some(why) => format!("{status} {why}"),
                        None => status.to_string(),
                    }
                }
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) if e.is_timeout() => "timeout".to_string(),
                Err(e) if e.is_connect() => "connect error".to_string(),
                Err(_) => "transport error".to_string(),
            };
            (outcome, due.elapsed())
        }));
    }
    let mut accept = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram");
    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    for t in sent {
        if let Ok((outcome, took)) = t.await {
            if outcome == flow.taken() {
                let _ = accept.record(took.as_micros() as u64);
            }
            *outcomes.entry(outcome).or_default() += 1;
        }
    }
    let accepted = outcomes.get(flow.taken()).copied().unwrap_or(0);
    let send_elapsed = start.elapsed();

    // Wait (bounded) for every accepted order to settle, then read when.
    let orders = stack.system.lock().await.url(Service::Orders);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut open = u64::MAX;
    while Instant::now() < deadline {
        let v: Value = http
            .get(format!("{orders}/orders?open=true&limit=1"))
            .send()
            .await
            .expect("orders")
            .json()
            .await
            .expect("orders json");
        open = v.as_array().map_or(0, |a| a.len() as u64);
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu = cpu_used().saturating_sub(cpu_before);
    let mut settle = Histogram::<u64>::new_with_bounds(1, 600_000, 3).expect("histogram");
    let (mut after, mut confirmed, mut cancelled) = (0i64, 0u64, 0u64);
    loop {
        let page: Vec<Value> = http
            .get(format!("{orders}/orders?after={after}&limit=10000"))
            .send()
            .await
            .expect("orders")
            .json()
            .await
            .expect("orders json");
        let Some(last) = page.last() else { break };
        after = last["id"].as_i64().unwrap_or(i64::MAX);
        for o in &page {
            if o["flow"] != flow.name() {
                continue;
            }
            match o["status"].as_str() {
                Some("CONFIRMED") => confirmed += 1,
                Some("CANCELLED") => cancelled += 1,
                _ => continue,
            }
            if let (Some(c), Some(s)) = (o["created_at"].as_i64(), o["settled_at"].as_i64()) {
                let _ = settle.record((s - c).max(1) as u64);
            }
        }
    }
    println!(
        "{} flow, offered {rate}/s for {seconds} s, provider {} ms, {} cores, embedded broker, proxies on every link",
        flow.name(),
        flow.provider_ms,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "accepted       {accepted} of {total} ({:.0}/s over {:.1} s of sending)",
        accepted as f64 / send_elapsed.as_secs_f64(),
        send_elapsed.as_secs_f64()
    );
    println!("answers        {outcomes:?}");
    println!(
        "accept latency p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms (from the intended send time)",
        accept.value_at_quantile(0.5) as f64 / 1000.0,
        accept.value_at_quantile(0.99) as f64 / 1000.0,
        accept.max() as f64 / 1000.0
    );
    println!(
        "settled        {confirmed} confirmed, {cancelled} cancelled, {} still open",
        if open == u64::MAX { 0 } else { open }
    );
    println!(
        "accepted -> terminal  p50 {} ms  p99 {} ms  max {} ms",
        settle.value_at_quantile(0.5),
        settle.value_at_quantile(0.99),
        settle.max()
    );
    let cpu_ms_per_order = cpu.as_secs_f64() * 1e3 / accepted.max(1) as f64;
    println!(
        "CPU            {:.1} s user+system while sending and settling: {cpu_ms_per_order:.2} ms per accepted order",
        cpu.as_secs_f64()
    );
    // Where the time goes: each consumer group's handling time per message.
    for service in [Service::Catalog, Service::Payments, Service::Orders] {
        let url = format!("{}/metrics", stack.system.lock().await.url(service));
        let text = http
            .get(url)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        let pick = |prefix: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next().map(str::to_string))
                .collect()
        };
        println!(
            "consumer {:<9} handled {:?}, handling p50/p99 {:?} s",
            service.as_str(),
            pick("gauntlet_consumer_processed_total"),
            pick("gauntlet_consumer_processing_seconds"),
        );
    }
    stack.stop().await;
    Probe {
        rate,
        total,
        accepted,
        open: if open == u64::MAX { 0 } else { open },
        // The sync flow settles in the request: its answer's latency.
        settle_p99_ms: if flow.sync {
            accept.value_at_quantile(0.99) / 1000
        } else {
            settle.value_at_quantile(0.99)
        },
        cpu_ms_per_order,
    }
}
