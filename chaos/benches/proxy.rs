//! Throughput and added latency, direct vs through the proxy, side by side
//! in one run on loopback.
//!
//! Run with `cargo bench -p gauntlet-chaos --bench proxy` (add `-- --quick`
//! for a shorter run). Everything (load, proxy, targets) shares one process
//! and one runtime, as in Gauntlet's embedded mode, so on a small machine the
//! proxy competes with the load and the targets for the same cores.
//!
//! Measures:
//! - requests/s with no toxics, direct vs proxied, for a raw TCP echo target
//!   (the proxy's worst case: the target does no work) and an HTTP target
//!   (axum, driven by reqwest: closer to a real service);
//! - the latency one proxy hop adds, from sequential round trips on one
//!   connection (p50 and p99, direct vs proxied);
//! - the delay a 100 ms latency toxic adds, measured the same way;
//! - for scale, the same figures for a minimal tokio proxy
//!   (`copy_bidirectional`, no API, no toxics): the floor any proxy pays on
//!   the machine. Ours and it are measured in turns so that both see the
//!   same moments of a shared machine: their round trips interleaved one by
//!   one for the latency, quarter-second slices over connections kept open
//!   to both for the throughput;
//! - the same throughput measure of the minimal proxy against a second one
//!   like it (an A/A control): the spread the bench reads when there is no
//!   difference to find;
//! - the CPU time per request each proxy adds (the process's, from
//!   `getrusage`, less the direct runs'), which varies far less from run to
//!   run than requests/s on a shared machine.
//!
//! `-- --only ours|minimal|direct [--seconds N]` runs one throughput run
//! alone, for `perf stat` or a profiler to look at one proxy by itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gauntlet_chaos::{Chaos, Latency, ProxySpec, ToxicKind, ToxicSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MESSAGE: usize = 64;

struct Settings {
    /// Length of each throughput run.
    run: Duration,
    /// Throughput runs per configuration (the median is reported).
    repeats: usize,
    /// Concurrent connections in the throughput runs.
    concurrency: usize,
    /// Length of each turn when ours and the minimal proxy take turns.
    slice: Duration,
    /// Sequential round trips for the per-hop latency.
    round_trips: usize,
    /// Round trips through the 100 ms latency toxic.
    toxic_round_trips: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only ours|minimal|direct [--seconds N]`: one throughput run alone,
    // for a profiler or `perf stat` to look at.
    if let Some(at) = args.iter().position(|a| a == "--only") {
        let which = args.get(at + 1).cloned().unwrap_or_default();
        let seconds = args
            .iter()
            .position(|a| a == "--seconds")
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(10u64);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(only(&which, Duration::from_secs(seconds)));
        return;
    }
    let settings = if quick {
        Settings {
            run: Duration::from_millis(500),
            repeats: 1,
            concurrency: 8,
            slice: Duration::from_millis(100),
            round_trips: 2_000,
            toxic_round_trips: 10,
        }
    } else {
        Settings {
            run: Duration::from_secs(2),
            repeats: 7,
            concurrency: 16,
            slice: Duration::from_millis(250),
            round_trips: 20_000,
            toxic_round_trips: 50,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(settings));
}

async fn bench(s: Settings) {
    let echo = spawn_echo().await;
    let http = spawn_http().await;
    let chaos = Chaos::new(1);
    let tcp_proxy = proxy(&chaos, "echo", echo).await;
    let http_proxy = proxy(&chaos, "http", http).await;
    let slow_proxy = proxy(&chaos, "slow", echo).await;
    chaos
        .add_toxic(
            "slow",
            ToxicSpec::new(ToxicKind::Latency(Latency {
                latency: 100,
                jitter: 0,
            })),
        )
        .expect("latency toxic");

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("gauntlet-chaos proxy benchmark: {cores} cores, loopback, one process");
    println!(
        "throughput: {} connections; direct: median of {} runs of {:?}; ours and minimal: \
         medians of their pairs of {:?} turns, as long in all",
        s.concurrency, s.repeats, s.run, s.slice
    );

    // A minimal tokio proxy (`copy_bidirectional`) is the floor of what any
    // proxy costs here. Ours and it take turns in short slices over
    // connections kept open to both, and are compared slice pair by slice
    // pair: on a shared machine the load drifts over seconds, far less over
    // a quarter of one. Which of the two goes first alternates from pair to
    // pair, as the slice straight after a switch is not measured on an equal
    // footing.
    let plain = spawn_plain_proxy(echo).await;
    let (mut tcp_direct, mut http_direct, mut http_proxied) = (vec![], vec![], vec![]);
    let mut direct_cpu = vec![];
    let client = reqwest::Client::new();
    for _ in 0..s.repeats {
        let direct = tcp_throughput(echo, s.concurrency, s.run).await;
        tcp_direct.push(direct.rate);
        direct_cpu.push(direct.cpu_us);
        http_direct.push(http_throughput(&client, http, s.concurrency, s.run).await);
        http_proxied.push(http_throughput(&client, http_proxy, s.concurrency, s.run).await);
    }
    // As long in all as the direct runs, for each of the two.
    let pairs = (s.repeats as u32 * s.run.as_millis() as u32 / s.slice.as_millis() as u32).max(2);
    let slices = interleaved_throughput(tcp_proxy, plain, s.concurrency, s.slice, pairs).await;
    let (tcp_direct, direct_cpu) = (median_f(tcp_direct), median_f(direct_cpu));
    let (http_direct, http_proxied) = (median_f(http_direct), median_f(http_proxied));
    let tcp_proxied = median_f(slices.iter().map(|(ours, _)| ours.rate).collect());
    let baseline_tcp = median_f(slices.iter().map(|(_, floor)| floor.rate).collect());
    let pair_ratios: Vec<f64> = slices.iter().map(|(o, f)| o.rate / f.rate).collect();
    let (paired_tcp, paired_spread) = (
        median_f(pair_ratios.clone()),
        quartiles(pair_ratios.clone()),
    );
    // The same measure of the minimal proxy against a second one like it:
    // what the bench reads when there is no difference to find.
    let twin = spawn_plain_proxy(echo).await;
    let control: Vec<f64> = interleaved_throughput(plain, twin, s.concurrency, s.slice, pairs)
        .await
        .iter()
        .map(|(a, b)| a.rate / b.rate)
        .collect();
    let (control_tcp, control_spread) = (median_f(control.clone()), quartiles(control));
    // The pairs by which went first: [ours first, minimal first].
    let by_order: [Vec<f64>; 2] = [0, 1].map(|first| {
        pair_ratios
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == first)
            .map(|(_, r)| *r)
            .collect()
    });
    // CPU per request the hop adds (less the direct runs'): ours, minimal,
    // and ours - minimal pair by pair.
    let hop_cpu = median_f(slices.iter().map(|(o, _)| o.cpu_us).collect()) - direct_cpu;
    let floor_cpu = median_f(slices.iter().map(|(_, f)| f.cpu_us).collect()) - direct_cpu;
    let paired_cpu: Vec<f64> = slices.iter().map(|(o, f)| o.cpu_us - f.cpu_us).collect();
    let paired_cpu = median_f(paired_cpu);

    // Per-hop latency, the same way.
    let (mut direct, mut proxied, mut baseline, mut paired_p50) = (vec![], vec![], vec![], vec![]);
    for round in 0..s.repeats {
        let d = round_trips(echo, s.round_trips).await;
        // Ours and the minimal proxy take turns round trip by round trip,
        // so both see the same moment of a shared machine: the difference
        // of their p50s is then the hop's own, not the neighbours'.
        let (ours, floor) = interleaved_round_trips(tcp_proxy, plain, s.round_trips, round).await;
        paired_p50.push(micros(ours.p50) - micros(floor.p50));
        direct.push(d);
        proxied.push(ours);
        baseline.push(floor);
    }
    let (direct, proxied, baseline) = (median_p(direct), median_p(proxied), median_p(baseline));
    let paired_p50 = median_f(paired_p50);
    let toxic = round_trips(slow_proxy, s.toxic_round_trips).await;

    let rate = |v: f64| format!("{v:.0}");
    let us = |d: Duration| format!("{:.1} µs", micros(d));
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
    let ratio = |a: f64, b: f64| format!("{:.2}x", b / a);
    let added = |a: Duration, b: Duration| format!("{:+.1} µs/hop", micros(b) - micros(a));
    println!();
    row("measure", "direct", "proxied", "proxied/direct, added");
    println!("|{:-<40}|{:-<14}|{:-<14}|{:-<24}|", "", "", "", "");
    let tcp_label = format!("TCP echo {MESSAGE} B, requests/s");
    row(
        &tcp_label,
        &rate(tcp_direct),
        &rate(tcp_proxied),
        &ratio(tcp_direct, tcp_proxied),
    );
    row(
        "HTTP GET (axum + reqwest), requests/s",
        &rate(http_direct),
        &rate(http_proxied),
        &ratio(http_direct, http_proxied),
    );
    row(
        "round trip p50, 1 conn, sequential",
        &us(direct.p50),
        &us(proxied.p50),
        &added(direct.p50, proxied.p50),
    );
    row(
        "round trip p99, 1 conn, sequential",
        &us(direct.p99),
        &us(proxied.p99),
        &added(direct.p99, proxied.p99),
    );
    row(
        "minimal tokio proxy: round trip p50",
        &us(direct.p50),
        &us(baseline.p50),
        &added(direct.p50, baseline.p50),
    );
    row(
        "minimal tokio proxy: round trip p99",
        &us(direct.p99),
        &us(baseline.p99),
        &added(direct.p99, baseline.p99),
    );
    row(
        "minimal tokio proxy: TCP requests/s",
        &rate(tcp_direct),
        &rate(baseline_tcp),
        &ratio(tcp_direct, baseline_tcp),
    );
    row(
        "ours / minimal, TCP requests/s",
        "",
        "",
        &format!("{paired_tcp:.2}x (paired)"),
    );
    let spread = |(q1, q3): (f64, f64)| format!("{q1:.2}x to {q3:.2}x");
    row("  middle half of the pairs", "", "", &spread(paired_spread));
    row(
        "minimal / minimal (A/A), the same way",
        "",
        "",
        &format!("{control_tcp:.2}x (paired)"),
    );
    row(
        "  middle half of the pairs",
        "",
        "",
        &spread(control_spread),
    );
    let order = |v: &[f64]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}x", median_f(v.to_vec()))
        }
    };
    row(
        "  the pairs with ours | minimal first",
        "",
        "",
        &format!("{} | {}", order(&by_order[0]), order(&by_order[1])),
    );
    row(
        "CPU per request the hop adds",
        "",
        &format!("{hop_cpu:.2} µs"),
        &format!("minimal {floor_cpu:.2} µs"),
    );
    row(
        "ours - minimal, CPU per request",
        "",
        "",
        &format!("{paired_cpu:+.2} µs (paired)"),
    );
    row(
        "ours - minimal, round trip p50",
        "",
        "",
        &format!("{paired_p50:+.1} µs (interleaved)"),
    );
    row(
        "100 ms latency toxic: round trip p50",
        &us(direct.p50),
        &ms(toxic.p50),
        &format!("{} added", ms(toxic.p50.saturating_sub(direct.p50))),
    );
    row(
        "100 ms latency toxic: round trip p99",
        &us(direct.p99),
        &ms(toxic.p99),
        &format!("{} added", ms(toxic.p99.saturating_sub(direct.p50))),
    );
    println!();
    println!("targets: proxied/direct >= 0.9x; added p50 <= 50 µs per hop; toxic delay 100 ms +- 2 ms at p50;");
    println!("         with no toxics, ours / minimal >= 1.0x and ours - minimal <= 0 µs at p50 (medians of the pairs)");

    chaos.shutdown().await;
}

async fn only(which: &str, run: Duration) {
    let echo = spawn_echo().await;
    let chaos = Chaos::new(1);
    let addr = match which {
        "ours" => proxy(&chaos, "echo", echo).await,
        "minimal" => spawn_plain_proxy(echo).await,
        "direct" => echo,
        other => panic!("--only takes ours, minimal or direct, not {other:?}"),
    };
    let run = tcp_throughput(addr, 16, run).await;
    println!(
        "{which}: {:.0} requests/s, {:.2} µs of CPU per request (the whole process)",
        run.rate, run.cpu_us
    );
    chaos.shutdown().await;
}

fn row(label: &str, direct: &str, proxied: &str, extra: &str) {
    println!("| {label:<38} | {direct:>12} | {proxied:>12} | {extra:>22} |");
}

async fn proxy(chaos: &Chaos, name: &str, upstream: SocketAddr) -> SocketAddr {
    chaos
        .create_proxy(ProxySpec::new(name, "127.0.0.1:0", upstream.to_string()))
        .await
        .expect("create proxy")
        .listen_addr()
        .expect("bound address")
}

async fn spawn_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn spawn_plain_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind plain proxy");
    let addr = listener.local_addr().expect("plain proxy addr");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let _ = client.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    addr
}

async fn spawn_http() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let addr = listener.local_addr().expect("http addr");
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A throughput run: requests per second, and the process's CPU time
/// (user + system, all threads: load, proxy and echo) per request.
struct Throughput {
    rate: f64,
    cpu_us: f64,
}

/// `concurrency` connections each doing sequential 64-byte echo round trips
/// for `run`.
async fn tcp_throughput(addr: SocketAddr, concurrency: usize, run: Duration) -> Throughput {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (done, count) = (done.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = load_connection(addr).await;
            let msg = [7u8; MESSAGE];
            let mut back = [0u8; MESSAGE];
            while !done.load(Ordering::Relaxed) {
                stream.write_all(&msg).await.expect("write");
                stream.read_exact(&mut back).await.expect("read");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    let cpu_start = cpu_time();
    tokio::time::sleep(run).await;
    done.store(true, Ordering::Relaxed);
    let counted = count.load(Ordering::Relaxed);
    let cpu = cpu_time() - cpu_start;
    let elapsed = start.elapsed();
    for task in tasks {
        let _ = task.await;
    }
    Throughput {
        rate: counted as f64 / elapsed.as_secs_f64(),
        cpu_us: micros(cpu) / counted.max(1) as f64,
    }
}

/// `concurrency` connections open to each of `a` and `b`, doing sequential
/// 64-byte echo round trips, the connections to one of the two at a time:
/// `pairs` pairs of `slice`-long turns, `a` first in even pairs and `b`
/// first in odd ones. Each pair's two turns as (a, b).
async fn interleaved_throughput(
    a: SocketAddr,
    b: SocketAddr,
    concurrency: usize,
    slice: Duration,
    pairs: u32,
) -> Vec<(Throughput, Throughput)> {
    const STOP: usize = 2;
    // Whose turn it is: 0 for `a`, 1 for `b`, `STOP` at the end. The atomic
    // is what the round-trip loop checks; the watch wakes the waiting side.
    let turn = Arc::new(AtomicUsize::new(STOP + 1));
    let (switch, _) = tokio::sync::watch::channel(STOP + 1);
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let mut tasks = Vec::new();
    // Opened a, b, a, b, ...: neither side's connections are all older.
    for _ in 0..concurrency {
        for (side, addr) in [a, b].into_iter().enumerate() {
            let (turn, counts) = (turn.clone(), counts.clone());
            let mut switched = switch.subscribe();
            let mut stream = load_connection(addr).await;
            tasks.push(tokio::spawn(async move {
                let msg = [7u8; MESSAGE];
                let mut back = [0u8; MESSAGE];
                loop {
                    let now = *switched
                        .wait_for(|t| *t == side || *t == STOP)
                        .await
                        .expect("switch");
                    if now == STOP {
                        return;
                    }
                    while turn.load(Ordering::Relaxed) == side {
                        stream.write_all(&msg).await.expect("write");
                        stream.read_exact(&mut back).await.expect("read");
                        counts[side].fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    let mut slices = Vec::with_capacity(pairs as usize);
    for pair in 0..pairs as usize {
        let mut taken = [None, None];
        let first = pair % 2;
        for side in [first, 1 - first] {
            turn.store(side, Ordering::Relaxed);
            switch.send_replace(side);
            let (start, cpu_start) = (Instant::now(), cpu_time());
            let counted_start = counts[side].load(Ordering::Relaxed);
            tokio::time::sleep(slice).await;
            let counted = counts[side].load(Ordering::Relaxed) - counted_start;
            let (cpu, elapsed) = (cpu_time() - cpu_start, start.elapsed());
            taken[side] = Some(Throughput {
                rate: counted as f64 / elapsed.as_secs_f64(),
                cpu_us: micros(cpu) / counted.max(1) as f64,
            });
        }
        let [Some(ours), Some(floor)] = taken else {
            unreachable!("both sides take a turn in every pair");
        };
        slices.push((ours, floor));
    }
    turn.store(STOP, Ordering::Relaxed);
    switch.send_replace(STOP);
    for task in tasks {
        let _ = task.await;
    }
    slices
}

/// A load connection: Nagle off, as every hop here has it.
async fn load_connection(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and reads nothing.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

async fn http_throughput(
    client: &reqwest::Client,
    addr: SocketAddr,
    concurrency: usize,
    run: Duration,
) -> f64 {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let url = format!("http://{addr}/");
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (done, count, client, url) = (done.clone(), count.clone(), client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let response = client.get(&url).send().await.expect("request");
                let body = response.bytes().await.expect("body");
                assert_eq!(&body[..], b"ok");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(run).await;
    done.store(true, Ordering::Relaxed);
    let counted = count.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    for task in tasks {
        let _ = task.await;
    }
    counted as f64 / elapsed.as_secs_f64()
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
}

/// Sequential round trips on one connection (after a short warm-up).
async fn round_trips(addr: SocketAddr, n: usize) -> Percentiles {
    let mut stream = load_connection(addr).await;
    let msg = [7u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let start = Instant::now();
        stream.write_all(&msg).await.expect("write");
        stream.read_exact(&mut back).await.expect("read");
        if i >= n / 10 {
            samples.push(start.elapsed());
        }
    }
    percentiles(samples)
}

/// Sequential round trips on two connections in turn, one on `a` and one
/// on `b`, with which goes first alternating from pair to pair (and the
/// first pair's order from `round`), after a short warm-up.
async fn interleaved_round_trips(
    a: SocketAddr,
    b: SocketAddr,
    n: usize,
    round: usize,
) -> (Percentiles, Percentiles) {
    let mut streams = [load_connection(a).await, load_connection(b).await];
    let msg = [7u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut samples = [Vec::with_capacity(n), Vec::with_capacity(n)];
    for i in 0..n + n / 10 {
        let first = (i + round) % 2;
        for which in [first, 1 - first] {
            let stream = &mut streams[which];
            let start = Instant::now();
            stream.write_all(&msg).await.expect("write");
            stream.read_exact(&mut back).await.expect("read");
            if i >= n / 10 {
                samples[which].push(start.elapsed());
            }
        }
    }
    let [a, b] = samples.map(percentiles);
    (a, b)
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Percentiles {
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// Median of each percentile over several runs.
fn median_p(runs: Vec<Percentiles>) -> Percentiles {
    let mut p50: Vec<Duration> = runs.iter().map(|r| r.p50).collect();
    let mut p99: Vec<Duration> = runs.iter().map(|r| r.p99).collect();
    p50.sort();
    p99.sort();
    Percentiles {
        p50: p50[p50.len() / 2],
        p99: p99[p99.len() / 2],
    }
}

/// The first and third quartiles.
fn quartiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 4], v[(3 * v.len() / 4).min(v.len() - 1)])
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
