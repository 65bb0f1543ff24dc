//! Against `gauntlet serve`'s `GET /api/products?limit=20`, through the
//! gateway's client-facing fault proxy as a user would drive it: are our
//! load generator's p50/p90/p99 within 10% or 0.2 ms (whichever is larger)
//! of oha's, at 100, 200 and 400 requests/s? Both count latency from the
//! intended send time: ours from each arrival's slot on the schedule, oha
//! with `--latency-correction` (open loop at `-q`).
//!
//! `cargo build --release && cargo bench --bench versus_oha -- --pairs 3 --seconds 15`
//! (`--users N` caps our pool at N users, as oha's `-c`).
//!
//! Each rate runs `--pairs` rounds of one run of each tool back to back
//! (`--seconds` each, ours after a 2 s warm-up), ours first in odd rounds
//! and oha first in even ones, and the verdict is on the medians over the
//! rounds: on a shared 2-core machine one back-to-back pair moves by up to
//! 0.6 ms between sets, so a single pair says little, and a fixed order
//! would hand one tool the quieter half. Ours is configured as `gauntlet
//! run` configures it for a scenario with `mix = { browse = 1 }` at that
//! rate (`plan::load_config`), so with its pool of users (a connection
//! each: R + 8 at R/s); oha keeps `-c 50`. The machine's load average is
//! printed at the start and the end. oha is skipped, with a message, when
//! missing.

mod common;
use common::arg;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use gauntlet::run::plan;
use gauntlet_loadgen::{run_load, Flow, LoadConfig, OpKind};
use tokio_util::sync::CancellationToken;

const RATES: [u32; 3] = [100, 200, 400];
const WARMUP_S: u64 = 2;
const OHA_CONNECTIONS: u32 = 50;
/// For serve to print its URLs, and then for the gateway to answer 200.
const START_DEADLINE: Duration = Duration::from_secs(60);
const PATH: &str = "/api/products?limit=20";
/// Products stocked when the catalog is empty, as `gauntlet run` stocks.
const PRODUCTS: u32 = 20;

/// p50, p90, p99 in milliseconds.
type Pct = [f64; 3];

fn main() {
    if let Err(e) = bench() {
        eprintln!("versus_oha: {e}");
        std::process::exit(1);
    }
}

fn bench() -> Result<(), String> {
    let pairs = arg("--pairs", 3).clamp(1, 50);
    let hold = arg("--seconds", 15).clamp(1, 3_600);
    // 0: the pool `gauntlet run` sizes; otherwise at most this many users.
    let users = arg("--users", 0).min(10_000) as u32;
    let Some(bin) = gauntlet_bin() else {
        println!("versus_oha: no target/release/gauntlet: run `cargo build --release` first");
        return Ok(());
    };
    let have_oha = Command::new("oha").arg("--version").output().is_ok();
    if !have_oha {
        println!("oha: not installed, its rows are skipped (`cargo install oha --locked`)");
    }
    println!("load average at start: {}", loadavg());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    // Dropped on every return from here on: serve is stopped and reaped.
    let (serve, gateway) = start_serve(&bin)?;
    let products = rt.block_on(ready_and_stocked(&gateway))?;
    let url = format!("{gateway}{PATH}");
    println!("target: GET {url} (serve's gateway fault proxy, {products} products)");
    println!(
        "{pairs} pairs of {hold} s per rate, latency in ms; \
         within = |ours - oha| <= max(10% of oha, 0.2 ms)"
    );
    for rate in RATES {
        let mut config = our_config(&gateway, rate, hold)?;
        if let (true, gauntlet_loadgen::Model::Open { max_users, .. }) =
            (users > 0, &mut config.model)
        {
            *max_users = Some(users);
        }
        let users = config.users();
        println!("{rate}/s: ours {users} users (a connection each), oha -c {OHA_CONNECTIONS}");
        println!(
            "  round first {:>8} {:>6}   {:>8} {:>6}",
            "ours p50", "p99", "oha p50", "p99"
        );
        let (mut ours_all, mut oha_all): (Vec<Pct>, Vec<Pct>) = (Vec::new(), Vec::new());
        for round in 1..=pairs {
            let ours_first = round % 2 == 1;
            let run_ours = || Some(ours(&rt, config.clone()));
            let run_oha = || have_oha.then(|| oha(&url, rate, hold));
            let (o, t) = if ours_first {
                let o = run_ours();
                (o, run_oha())
            } else {
                let t = run_oha();
                (run_ours(), t)
            };
            let cell = |r: &Option<Result<Pct, String>>| match r {
                Some(Ok(p)) => format!("{:>8.3} {:>6.3}", p[0], p[2]),
                _ => format!("{:>8} {:>6}", "-", "-"),
            };
            let first = if ours_first { "ours" } else { "oha" };
            println!("  {round:>5} {first:<5} {}   {}", cell(&o), cell(&t));
            for (who, r) in [("ours", &o), ("oha", &t)] {
                if let Some(Err(e)) = r {
                    println!("        {who}: {e}");
                }
            }
            ours_all.extend(o.and_then(Result::ok));
            oha_all.extend(t.and_then(Result::ok));
        }
        let (om, tm) = (medians(&ours_all), medians(&oha_all));
        println!("  {:<11} {:>7} {:>7} {:>7}", "median", "p50", "p90", "p99");
        for (who, m) in [("ours", om), ("oha", tm)] {
            if let Some(m) = m {
                println!("  {who:<11} {:>7.3} {:>7.3} {:>7.3}", m[0], m[1], m[2]);
            }
        }
        let (Some(om), Some(tm)) = (om, tm) else {
            println!("  verdict     none: no figures from one of the tools");
            continue;
        };
        let mut verdict = String::new();
        for (i, name) in ["p50", "p90", "p99"].iter().enumerate() {
            let (diff, allowed) = (om[i] - tm[i], f64::max(0.1 * tm[i], 0.2));
            let word = if diff.abs() <= allowed {
                "within"
            } else {
                "OUTSIDE"
            };
            verdict += &format!("  {name} {word} ({diff:+.3} ms, limit {allowed:.3})");
        }
        println!("  verdict   {verdict}");
    }
    drop(serve);
    println!("load average at end: {}", loadavg());
    Ok(())
}

/// The binary `cargo build --release` made: this bench is
/// `target/release/deps/versus_oha-*`, the binary `target/release/gauntlet`.
fn gauntlet_bin() -> Option<PathBuf> {
    let bin = std::env::current_exe()
        .ok()?
        .parent()?
        .parent()?
        .join("gauntlet");
    bin.is_file().then_some(bin)
}

fn loadavg() -> String {
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(s) => s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        Err(e) => format!("unreadable ({e})"),
    }
}

/// `gauntlet serve`, stopped (SIGTERM, SIGKILL after 10 s) and reaped when
/// dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        // Already reaped: its pid may be another process's by now.
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        // SIGTERM first, so serve stops its stack and removes its data dir.
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: a signal to our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        for _ in 0..100 {
            match self.0.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Ok(Some(_)) => return,
                Err(_) => break,
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts serve on free loopback ports and reads the gateway's URL from
/// what it prints (`gateway       http://127.0.0.1:PORT`, serve.rs).
fn start_serve(bin: &Path) -> Result<(Serve, String), String> {
    let child = Command::new(bin)
        .args([
            "serve",
            "--gateway-port",
            "0",
            "--api-listen",
            "127.0.0.1:0",
        ])
        // The embedded broker, a fresh data dir, no trace export: all local.
        .env_remove("KAFKA_BROKERS")
        .env_remove("GAUNTLET_DATA_DIR")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut serve = Serve(child);
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    if let Some(out) = serve.0.stdout.take() {
        drain(out, true, tx.clone());
    }
    if let Some(err) = serve.0.stderr.take() {
        drain(err, false, tx.clone());
    }
    drop(tx);
    let deadline = Instant::now() + START_DEADLINE;
    let mut said: Vec<String> = Vec::new();
    let fail = |why: &str, said: &[String]| format!("serve {why}; it said:\n{}", said.join("\n"));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(fail("printed no gateway URL within 60 s", &said));
        }
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok((is_stdout, line)) => {
                let url = line.strip_prefix("gateway").map(str::trim).unwrap_or("");
                if is_stdout && url.starts_with("http://127.0.0.1:") {
                    return Ok((serve, url.to_string()));
                }
                if is_stdout && url.starts_with("http") {
                    return Err(fail(&format!("gave a gateway off loopback: {url}"), &said));
                }
                said.push(line);
                if said.len() > 20 {
                    said.remove(0);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = serve.0.try_wait() {
                    return Err(fail(&format!("exited early ({status})"), &said));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(fail("closed its output before printing the gateway", &said));
            }
        }
    }
}

/// Sends each line of `pipe` on `tx` until it closes, and keeps reading
/// once nobody listens, so the child never blocks on a full pipe.
fn drain(pipe: impl Read + Send + 'static, is_stdout: bool, tx: mpsc::Sender<(bool, String)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send((is_stdout, line));
        }
    });
}

/// Waits for the gateway to list products, and stocks the catalog with the
/// bodies `gauntlet run`'s stock step sends (src/run/stock.rs) if empty.
async fn ready_and_stocked(gateway: &str) -> Result<usize, String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let url = format!("{gateway}{PATH}");
    let deadline = Instant::now() + START_DEADLINE;
    let mut last = String::from("no answer");
    let listed = loop {
        if Instant::now() >= deadline {
            return Err(format!("GET {url} gave no 200 within 60 s: {last}"));
        }
        match http.get(&url).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => {
                match r.json::<Vec<serde_json::Value>>().await {
                    Ok(list) => break list.len(),
                    Err(e) => last = format!("not a JSON list: {e}"),
                }
            }
            Ok(r) => last = format!("status {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if listed > 0 {
        return Ok(listed);
    }
    let post = format!("{gateway}/api/products");
    let seed = 1u64; // serve's default seed, for the stock step's prices
    for i in 0..PRODUCTS {
        let price = 100 + (seed.wrapping_mul(31).wrapping_add(u64::from(i) * 977) % 9_800);
        let body = serde_json::json!({
            "name": format!("Product {}", i + 1),
            "price_cents": price,
            "stock": 1_000_000,
        });
        let r = http.post(&post).json(&body).send().await;
        match r {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => return Err(format!("stocking: POST {post}: {}", r.status())),
            Err(e) => return Err(format!("stocking: POST {post}: {e}")),
        }
    }
    Ok(PRODUCTS as usize)
}

/// What `gauntlet run` drives for `[load] rate = [{ duration = hold, target
/// = rate }]`, `warmup = "2s"`, `mix = { browse = 1 }`: that scenario,
/// parsed and handed to the same `plan::load_config`.
fn our_config(gateway: &str, rate: u32, hold: u64) -> Result<LoadConfig, String> {
    let text = format!(
        "name = \"versus-oha\"\n[load]\nrate = [{{ duration = \"{hold}s\", target = {rate} }}]\n\
         warmup = \"{WARMUP_S}s\"\nmix = {{ browse = 1 }}\n"
    );
    let scenario = gauntlet_reports::parse_scenario("versus_oha.toml", &text).map_err(|p| {
        let p: Vec<String> = p.iter().map(ToString::to_string).collect();
        format!("the bench's scenario is refused: {}", p.join("; "))
    })?;
    Ok(plan::load_config(&scenario, Flow::Sync, gateway))
}

/// Our p50/p90/p99 of `GET /api/products` over the measured load.
fn ours(rt: &tokio::runtime::Runtime, config: LoadConfig) -> Result<Pct, String> {
    let limit = config.planned_duration() + Duration::from_secs(60);
    // The timeout's timer is made inside the runtime, as tokio requires.
    let result = rt
        .block_on(async move {
            tokio::time::timeout(limit, run_load(config, CancellationToken::new(), |_| {})).await
        })
        .map_err(|_| format!("did not finish within {limit:?}"))?
        .map_err(|e| e.to_string())?;
    let e = result
        .endpoint(OpKind::ListProducts)
        .ok_or("no GET /api/products in its result")?;
    let not_ok = e.counts.total().saturating_sub(e.counts.ok);
    if not_ok > 0 {
        println!(
            "        ours: {not_ok} of {} requests not ok",
            e.counts.total()
        );
    }
    // Where ours spends it: the send's lateness after its slot (negative:
    // sent ahead of it, woken `wake::LEAD` early), and send to answer.
    let measured = result.history.iter().filter(|op| {
        op.kind == OpKind::ListProducts
            && op.journey.is_some()
            && op.intended_us >= result.measured_from_us
            && op.intended_us < result.measured_until_us
    });
    let (mut late, mut exchange): (Vec<i64>, Vec<u64>) = (Vec::new(), Vec::new());
    for op in measured {
        late.push(op.invoke_us as i64 - op.intended_us as i64);
        exchange.push(op.complete_us.saturating_sub(op.invoke_us));
    }
    late.sort_unstable();
    exchange.sort_unstable();
    if !late.is_empty() {
        let at = |n: usize, q: f64| ((n - 1) as f64 * q).round() as usize;
        let behind = late.iter().filter(|&&l| l > 0).count();
        println!(
            "        ours: send after slot p50 {:+.3} p99 {:+.3} p99.9 {:+.3} ms ({behind} of {} after their slot); \
             send to answer p50 {:.3} p99 {:.3} ms",
            late[at(late.len(), 0.5)] as f64 / 1000.0,
            late[at(late.len(), 0.99)] as f64 / 1000.0,
            late[at(late.len(), 0.999)] as f64 / 1000.0,
            late.len(),
            exchange[at(exchange.len(), 0.5)] as f64 / 1000.0,
            exchange[at(exchange.len(), 0.99)] as f64 / 1000.0,
        );
    }
    Ok([0.5, 0.9, 0.99].map(|q| e.latency.value_at_quantile(q) as f64 / 1000.0))
}

/// oha's p50/p90/p99 at `rate`, open loop with latency correction, with
/// the flags and JSON fields of the loadgen's max_rate bench (`oha_at`).
/// `-z` bounds it: at the deadline oha drops what is in flight (no `-w`).
fn oha(url: &str, rate: u32, hold: u64) -> Result<Pct, String> {
    let out = Command::new("oha")
        .args([
            "-z",
            &format!("{hold}s"),
            "-q",
            &rate.to_string(),
            "--latency-correction",
        ])
        .args([
            "-c",
            &OHA_CONNECTIONS.to_string(),
            "--no-tui",
            "--output-format",
            "json",
            url,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        format!(
            "no JSON on its output ({}): {e}; {}",
            out.status,
            stderr.trim()
        )
    })?;
    if let Some(ok) = v
        .pointer("/summary/successRate")
        .and_then(serde_json::Value::as_f64)
    {
        if ok < 1.0 {
            println!("        oha: success rate {:.2}%", ok * 100.0);
        }
    }
    let p = v
        .get("latencyPercentiles")
        .ok_or("no latencyPercentiles in its JSON")?;
    let ms = |k: &str| {
        p.get(k)
            .and_then(serde_json::Value::as_f64)
            .map(|s| s * 1000.0)
    };
    match (ms("p50"), ms("p90"), ms("p99")) {
        (Some(a), Some(b), Some(c)) => Ok([a, b, c]),
        _ => Err("p50/p90/p99 missing from its JSON".into()),
    }
}

/// Each percentile's median over the rounds.
fn medians(rounds: &[Pct]) -> Option<Pct> {
    if rounds.is_empty() {
        return None;
    }
    Some([0, 1, 2].map(|i| {
        let mut v: Vec<f64> = rounds.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        // The middle one, or the mean of the middle two.
        let n = v.len();
        (v[(n - 1) / 2] + v[n / 2]) / 2.0
    }))
}
