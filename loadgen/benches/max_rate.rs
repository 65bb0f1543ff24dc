//! The highest arrival rate the generator sustains against a trivial
//! in-process endpoint, next to wrk's throughput on the same endpoint in
//! the same run.
//!
//! The rate is raised step by step until the target receives less than
//! 95% of it or the p99 latency (from the intended send time) explodes
//! past `P99_LIMIT`, then narrowed down by bisection. wrk (closed loop,
//! as fast as it can) runs with a few connection counts and its best is
//! kept. Both of the generator's clients are measured: its default
//! connection per user, and the goose user's reqwest client. Run with `cargo bench -p gauntlet-loadgen --bench max_rate`;
//! the wrk part is skipped, with a message, when wrk is not installed.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use gauntlet_loadgen::{run_load, HttpClient, LoadConfig, Mix, Model, OpKind, Stage};
use tokio_util::sync::CancellationToken;

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

struct Step {
    rate: f64,
    received: f64,
    ok: bool,
}

fn main() {
    // The target gets its own runtime and threads, as it would under wrk.
    let target_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the target");
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let addr = target_rt.block_on(async {
        let app = Router::new().route(
            "/api/products",
            get(move || {
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
    let try_once = |client: HttpClient, rate: f64| -> Step {
        let before = hits.load(Ordering::Relaxed);
        let result = gen_rt
            .block_on(run_load(
                config(&base_url, client, rate),
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
    let wrk_1 = wrk(&base_url);
    let (best, _) = ladder(HttpClient::Direct);
    let wrk_2 = wrk(&base_url);
    let (goose_best, _) = ladder(HttpClient::Goose);
    let wrk_3 = wrk(&base_url);
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
    stop.cancel();
    target_rt.shutdown_timeout(Duration::from_secs(1));
}

fn config(base_url: &str, client: HttpClient, rate: f64) -> LoadConfig {
    let mut c = LoadConfig::new(
        base_url,
        Model::Open {
            start_rate: rate,
            stages: vec![Stage {
                duration: STEP,
                target_rate: rate,
            }],
            warmup_rate: None,
            max_users: Some(USERS),
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
