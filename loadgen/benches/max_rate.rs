//! Two questions about the generator, against a trivial in-process
//! endpoint, each answered next to an independent tool in the same run:
//!
//! - **latency**: at fixed arrival rates, our p50/p90/p99 beside oha's
//!   (open loop, `--latency-correction`: latency from the intended send
//!   time, as ours), with ours taken apart step by step: slot to send
//!   (pacer and task wake-up), send to the target's handler (request
//!   build, write, the target's read), handler to answer read (the
//!   target's write, our read and recording). The target timestamps each
//!   arrival on the run's clock; at these rates requests do not overtake
//!   one another, so the k-th arrival is the k-th send.
//! - **max rate**: the highest arrival rate sustained, next to wrk's
//!   throughput.
//!
//! The rate is raised step by step until the target receives less than
//! 95% of it or the p99 latency (from the intended send time) explodes
//! past `P99_LIMIT`, then narrowed down by bisection. wrk (closed loop,
//! as fast as it can) runs with a few connection counts and its best is
//! kept. Both of the generator's clients are measured: its default
//! connection per user, and the goose user's reqwest client.
//!
//! Run with `cargo bench -p gauntlet-loadgen --bench max_rate` (both), or
//! with `-- latency` or `-- rate` for one. oha and wrk are skipped, with a
//! message, when they are not installed (`cargo install oha --locked`;
//! Debian's `wrk` package).

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use gauntlet_loadgen::{
    run_load, run_load_observed, HttpClient, LoadConfig, Mix, Model, OpKind, Stage,
};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The fixed arrival rates of the latency part.
const LATENCY_RATES: [f64; 4] = [100.0, 200.0, 400.0, 1_000.0];
/// How long each of them is held, by ours (after `WARMUP`) and by oha.
const LATENCY_HOLD: Duration = Duration::from_secs(10);
/// Connections (users) on both sides of the latency part.
const LATENCY_CONNECTIONS: u32 = 50;

/// How long each rate is held (after a short warm-up).
const STEP: Duration = Duration::from_secs(3);
const WARMUP: Duration = Duration::from_millis(500);
/// A p99 past this means the generator (or target) fell behind.
const P99_LIMIT: Duration = Duration::from_millis(50);
/// The share of the asked rate the target must receive.
const KEEP_UP: f64 = 0.95;
/// goose users (one connection each): plenty for a sub-millisecond
/// endpoint, and as many connections as wrk's best run uses.
const USERS: u32 = 64;
/// A step that fails is tried again once: the machine may be shared, and
/// a neighbour's burst of work is not the generator's limit.
const TRIES: usize = 2;

/// When each request reached the target's handler, while `on`.
#[derive(Default)]
struct Arrivals {
    on: AtomicBool,
    at: Mutex<Vec<Instant>>,
}

impl Arrivals {
    /// Runs `f`, and the arrivals the target saw meanwhile.
    fn during<T>(&self, f: impl FnOnce() -> T) -> (T, Vec<Instant>) {
        self.at.lock().clear();
        self.on.store(true, Ordering::Relaxed);
        let out = f();
        self.on.store(false, Ordering::Relaxed);
        (out, std::mem::take(&mut *self.at.lock()))
    }
}

struct Step {
    rate: f64,
    received: f64,
    ok: bool,
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let part = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    // The target gets its own runtime and threads, as it would under wrk.
    let target_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the target");
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let arrivals = Arc::new(Arrivals::default());
    let log = arrivals.clone();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let addr = target_rt.block_on(async {
        let app = Router::new().route(
            "/api/products",
            get(move || {
                if log.on.load(Ordering::Relaxed) {
                    log.at.lock().push(Instant::now());
                }
                counter.fetch_add(1, Ordering::Relaxed);
                async { ([("content-type", "application/json")], "[]") }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        addr
    });
    let base_url = format!("http://{addr}");
    println!("target: trivial GET /api/products at {base_url} (2 runtime threads)");

    let gen_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the generator");
    if part("latency") {
        latency(&gen_rt, &base_url, &arrivals);
    }
    if part("rate") {
        max_rate(&gen_rt, &base_url, &hits);
    }
    stop.cancel();
    target_rt.shutdown_timeout(Duration::from_secs(1));
}

fn max_rate(gen_rt: &tokio::runtime::Runtime, base_url: &str, hits: &AtomicU64) {
    let try_once = |client: HttpClient, rate: f64| -> Step {
        let before = hits.load(Ordering::Relaxed);
        let result = gen_rt
            .block_on(run_load(
                config(base_url, client, rate, STEP, USERS),
                CancellationToken::new(),
                |_| {},
            ))
            .expect("the load runs");
        let got = hits.load(Ordering::Relaxed) - before;
        let measured = result
            .endpoint(OpKind::ListProducts)
            .map_or(0, |e| e.counts.ok);
        let measured_s = (result.measured_until_us - result.measured_from_us) as f64 / 1e6;
        let warm = got.saturating_sub(measured);
        let received = measured as f64 / measured_s;
        let p99 = result
            .endpoint(OpKind::ListProducts)
            .map_or(f64::INFINITY, |e| {
                e.latency.value_at_quantile(0.99) as f64 / 1000.0
            });
        let ok = received >= KEEP_UP * rate && p99 <= P99_LIMIT.as_secs_f64() * 1000.0;
        println!(
            "  rate {rate:>8.0}/s: received {received:>8.0}/s ({:>5.1}%), p99 {p99:>8.2} ms, \
             missed {:>6}, warm-up requests {warm:>5} -> {}",
            100.0 * received / rate,
            result.missed_arrivals,
            if ok { "sustained" } else { "not sustained" }
        );
        Step { rate, received, ok }
    };
    let ladder = |client: HttpClient| -> (f64, f64) {
        println!(
            "goose-based generator, {client:?} client (open model, {USERS} users, {STEP:?} per step):"
        );
        let mut steps = Vec::new();
        let mut try_rate = |rate: f64| {
            (0..TRIES).any(|_| {
                let step = try_once(client, rate);
                let ok = step.ok;
                steps.push(step);
                ok
            })
        };
        let mut rate = 2_000.0;
        let mut best = 0.0;
        let mut worst_fail = f64::INFINITY;
        // Raise by 25% until it breaks...
        while rate < 500_000.0 {
            if try_rate(rate) {
                best = rate;
                rate *= 1.25;
            } else {
                worst_fail = rate;
                break;
            }
        }
        // ...then bisect to within 5%.
        while worst_fail.is_finite() && worst_fail / f64::max(best, 1.0) > 1.05 {
            let mid = ((f64::max(best, 1.0) * worst_fail).sqrt() / 100.0).round() * 100.0;
            if try_rate(mid) {
                best = mid;
            } else {
                worst_fail = mid;
            }
        }
        let received = steps
            .iter()
            .filter(|s| s.ok && s.rate <= best)
            .map(|s| s.received)
            .fold(0.0, f64::max);
        println!(
            "  {client:?}: max sustained arrival rate {best:.0}/s \
             (target received {received:.0}/s, p99 <= {} ms)",
            P99_LIMIT.as_millis()
        );
        (best, received)
    };

    // wrk runs before, between and after the ladders, so each ladder is
    // compared with the wrk runs on either side of it, and a change in the
    // machine's load (it may be shared) shows.
    let wrk_1 = wrk(base_url);
    let (best, _) = ladder(HttpClient::Direct);
    let wrk_2 = wrk(base_url);
    let (goose_best, _) = ladder(HttpClient::Goose);
    let wrk_3 = wrk(base_url);
    let compare = |name: &str, rate: f64, around: [Option<f64>; 2]| {
        let [Some(a), Some(b)] = around else {
            println!("{name}: {rate:.0}/s (no wrk to compare with)");
            return;
        };
        let wrk_rate = (a + b) / 2.0;
        println!(
            "{name}: {rate:.0}/s vs wrk {wrk_rate:.0}/s (mean of {a:.0} before, {b:.0} after) = {:.2}x",
            rate / wrk_rate
        );
        if (a - b).abs() / a.max(b) > 0.25 {
            println!(
                "  warning: wrk moved by more than 25% across this ladder: the machine's \
                 load changed, so this ratio is rough; run again"
            );
        }
    };
    if wrk_1.is_none() {
        println!("wrk: not installed, skipped (install the `wrk` package to compare)");
    }
    compare("generator, direct client (default)", best, [wrk_1, wrk_2]);
    compare(
        "generator, goose's reqwest client",
        goose_best,
        [wrk_2, wrk_3],
    );
}

/// Percentiles in milliseconds: p50, p90, p99.
type Pct = [f64; 3];

fn pct(h: &Histogram<u64>) -> Pct {
    [0.5, 0.9, 0.99].map(|q| h.value_at_quantile(q) as f64 / 1000.0)
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is a valid precision")
}

/// Ours and oha's latency at each of [`LATENCY_RATES`], back to back.
fn latency(gen_rt: &tokio::runtime::Runtime, base_url: &str, arrivals: &Arrivals) {
    let oha = Command::new("oha").arg("--version").output().is_ok();
    println!(
        "latency at fixed arrival rates, {LATENCY_CONNECTIONS} connections, {LATENCY_HOLD:?} each; \
         ours from the slot's time, oha with --latency-correction"
    );
    if !oha {
        println!("  oha: not installed, skipped (`cargo install oha --locked` to compare)");
    }
    let mut rows = Vec::new();
    for rate in LATENCY_RATES {
        let ours = ours_at(gen_rt, base_url, arrivals, rate);
        let (theirs, oha_late) = if oha {
            let (theirs, at) = arrivals.during(|| oha_at(base_url, rate));
            (theirs, slot_to_handler(&at, rate))
        } else {
            (None, None)
        };
        let [a, b, c] = ours.total;
        print!("  {rate:>5.0}/s  ours p50/p90/p99 {a:.3} / {b:.3} / {c:.3} ms");
        match theirs {
            Some([x, y, z]) => println!("   oha {x:.3} / {y:.3} / {z:.3} ms"),
            None => println!(),
        }
        match ours.steps {
            Some([wake, send, answer]) => println!(
                "          ours step by step, p50 (p99) ms: slot->send {:.3} ({:.3}), \
                 send->handler {:.3} ({:.3}), handler->answer {:.3} ({:.3})",
                wake[0], wake[2], send[0], send[2], answer[0], answer[2]
            ),
            None => println!("          (steps not matched: some requests failed)"),
        }
        // From the ideal slot to the handler, both seen by the target: oha
        // counts its latency from when its timer woke, not from the slot,
        // so its own lateness is in neither of its percentiles above.
        if let (Some(o), Some(t)) = (ours.slot_to_handler, oha_late) {
            println!(
                "          slot->handler at the target, p50 (p99) ms: ours {:.3} ({:.3}), \
                 oha {:.3} ({:.3})",
                o[0], o[2], t[0], t[2]
            );
        }
        rows.push((rate, ours.total, theirs));
    }
    if oha {
        println!("  ours vs oha (within = 10% or 0.2 ms of oha's, whichever is larger):");
        for (rate, ours, theirs) in rows {
            let Some(theirs) = theirs else {
                println!("  {rate:>5.0}/s  oha gave no figures");
                continue;
            };
            let judge = |i: usize| {
                let (o, t) = (ours[i], theirs[i]);
                let within = (o - t).abs() <= f64::max(0.1 * t, 0.2);
                format!(
                    "{:.2}x ({:+.3} ms, {})",
                    o / t,
                    o - t,
                    if within { "within" } else { "outside" }
                )
            };
            println!("  {rate:>5.0}/s  p50 {}   p99 {}", judge(0), judge(2));
        }
    }
}

struct Ours {
    total: Pct,
    /// From the slot to the target's handler.
    slot_to_handler: Option<Pct>,
    /// slot->send, send->handler, handler->answer.
    steps: Option<[Pct; 3]>,
}

fn ours_at(
    gen_rt: &tokio::runtime::Runtime,
    base_url: &str,
    arrivals: &Arrivals,
    rate: f64,
) -> Ours {
    let c = config(
        base_url,
        HttpClient::Direct,
        rate,
        LATENCY_HOLD,
        LATENCY_CONNECTIONS,
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (result, at) = arrivals.during(|| {
        gen_rt
            .block_on(run_load_observed(
                c,
                CancellationToken::new(),
                |_| {},
                Some(tx),
            ))
            .expect("the load runs")
    });
    let clock = gen_rt
        .block_on(rx)
        .expect("the load told when it started")
        .clock_start;
    let mut at: Vec<u64> = at
        .into_iter()
        .map(|t| t.saturating_duration_since(clock).as_micros() as u64)
        .collect();
    at.sort_unstable();
    let mut ops: Vec<_> = result
        .history
        .iter()
        .filter(|o| o.kind == OpKind::ListProducts && o.journey.is_some())
        .collect();
    ops.sort_by_key(|o| o.invoke_us);
    let from_us = result.measured_from_us;
    let measured = |o: &gauntlet_loadgen::Operation| o.intended_us >= from_us;
    let mut total = histogram();
    for o in ops.iter().filter(|o| measured(o)) {
        let _ = total.record(o.latency_us().max(1));
    }
    // Steps, then slot->handler.
    let matched = (ops.len() == at.len()).then(|| {
        let mut h = [histogram(), histogram(), histogram(), histogram()];
        for (o, &arrived) in ops.iter().zip(&at).filter(|(o, _)| measured(o)) {
            let sent = o.invoke_us.max(o.intended_us);
            let from = o.intended_us.min(o.invoke_us);
            let _ = h[0].record(sent.saturating_sub(from));
            let _ = h[1].record(arrived.saturating_sub(o.invoke_us));
            let _ = h[2].record(o.complete_us.saturating_sub(arrived));
            let _ = h[3].record(arrived.saturating_sub(o.intended_us));
        }
        h.each_ref().map(pct)
    });
    let steps = matched.map(|[wake, send, answer, _]| [wake, send, answer]);
    let slot_to_handler = matched.map(|[.., slot]| slot);
    Ours {
        total: pct(&total),
        slot_to_handler,
        steps,
    }
}

/// How late after its ideal slot each of a constant-rate tool's requests
/// reached the handler, from the arrivals alone: the k-th arrival belongs
/// to slot k (at this rate nothing overtakes), and the tool's start is
/// taken where its earliest arrival puts it (so this is a lower bound).
fn slot_to_handler(at: &[Instant], rate: f64) -> Option<Pct> {
    let first = *at.iter().min()?;
    let mut at: Vec<f64> = at
        .iter()
        .map(|t| t.saturating_duration_since(first).as_secs_f64() * 1e6)
        .collect();
    at.sort_by(f64::total_cmp);
    let offsets: Vec<f64> = at
        .iter()
        .enumerate()
        .map(|(k, t)| t - k as f64 * 1e6 / rate)
        .collect();
    let start = offsets.iter().copied().fold(f64::INFINITY, f64::min);
    let mut h = histogram();
    for o in offsets {
        let _ = h.record((o - start) as u64);
    }
    Some(pct(&h))
}

/// oha's p50/p90/p99 at `rate`, open loop with latency correction.
fn oha_at(base_url: &str, rate: f64) -> Option<Pct> {
    let url = format!("{base_url}/api/products?limit=20");
    let out = Command::new("oha")
        .args([
            "-z",
            &format!("{}s", LATENCY_HOLD.as_secs()),
            "-q",
            &format!("{rate}"),
            "--latency-correction",
            "-c",
            &LATENCY_CONNECTIONS.to_string(),
            "--no-tui",
            "--output-format",
            "json",
            &url,
        ])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let p = v.get("latencyPercentiles")?;
    let ms = |k: &str| {
        p.get(k)
            .and_then(serde_json::Value::as_f64)
            .map(|s| s * 1000.0)
    };
    Some([ms("p50")?, ms("p90")?, ms("p99")?])
}

/// `rate` browses a second for `hold` (after `WARMUP`), by at most `users`.
fn config(base_url: &str, client: HttpClient, rate: f64, hold: Duration, users: u32) -> LoadConfig {
    let mut c = LoadConfig::new(
        base_url,
        Model::Open {
            start_rate: rate,
            stages: vec![Stage {
                duration: hold,
                target_rate: rate,
            }],
            warmup_rate: None,
            max_users: Some(users),
            expected_latency: Duration::from_millis(1),
        },
    );
    c.mix = Mix {
        create_user: 0,
        browse: 1,
        place_order: 0,
        poll_order: 0,
    };
    c.client = client;
    c.warmup = WARMUP;
    c.request_timeout = Duration::from_secs(2);
    c
}

/// wrk's best requests per second over a few connection counts, or `None`
/// when wrk is not there.
fn wrk(base_url: &str) -> Option<f64> {
    if Command::new("wrk").arg("--version").output().is_err() {
        return None;
    }
    let url = format!("{base_url}/api/products?limit=20");
    let mut best: f64 = 0.0;
    for (threads, connections) in [(1, 16), (2, 32), (2, 64), (2, 128)] {
        let out = Command::new("wrk")
            .args([
                "-t",
                &threads.to_string(),
                "-c",
                &connections.to_string(),
                "-d",
                &format!("{}s", STEP.as_secs()),
                &url,
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let rps = text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok());
        match rps {
            Some(r) => {
                println!("  wrk -t{threads} -c{connections}: {r:.0} requests/s");
                best = best.max(r);
            }
            None => println!("  wrk -t{threads} -c{connections}: no figure in its output"),
        }
    }
    (best > 0.0).then_some(best)
}
