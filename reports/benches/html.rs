//! How long `report.html` takes to render for a ten-minute run, and how
//! big it is: 600 one-second windows per flow, both flows, four endpoints,
//! a fault, breaker transitions, retries, lag and outbox samples.
//!
//! `cargo bench -p gauntlet-reports --bench html` prints the median render
//! time and the page's size. The budget is 2 s and 5 MB. With
//! `GAUNTLET_HTML_SAMPLE_DIR` set to a directory, the page is also written
//! there, to be looked at.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gauntlet_reports::html::{render_report, write_html};
use gauntlet_reports::metrics::{Counts, Latency, SagaOutcomes};
use gauntlet_reports::report::{
    BreakerTransition, EndpointReport, EndpointWindow, FaultEvent, FaultPhase, FlowReport,
    LagSample, OutboxSample, PercentilePoint, RetrySample, Window,
};
use gauntlet_reports::Report;

const WINDOWS: u64 = 600;
const RUNS: usize = 15;
const ENDPOINTS: [&str; 4] = [
    "POST /api/orders",
    "GET /api/orders/{id}",
    "GET /api/products",
    "GET /api/orders/{id}/status",
];

fn latency(p50: f64) -> Latency {
    Latency {
        count: 100,
        min: p50 / 3.0,
        avg: p50 * 1.2,
        p50,
        p90: p50 * 2.0,
        p95: p50 * 2.5,
        p99: p50 * 4.0,
        p999: p50 * 6.0,
        max: p50 * 9.0,
    }
}

/// An HdrHistogram-like curve: halving steps towards the tail.
fn curve(base: f64) -> Vec<PercentilePoint> {
    (0..60)
        .map(|i| {
            let q = 1.0 - 0.5f64.powf(i as f64 / 3.0);
            PercentilePoint {
                percentile: q * 100.0,
                ms: base * (1.0 + 12.0 * q.powi(16)),
            }
        })
        .collect()
}

fn flow(asyn: bool) -> FlowReport {
    let fault = 120..240;
    let windows = (0..WINDOWS)
        .map(|i| {
            let faulty = fault.contains(&i);
            let ok = if faulty { 50 } else { 100 };
            let failed = if faulty { 20 } else { i % 3 };
            let requests = Counts {
                total: ok + failed,
                ok,
                failed,
                unknown: 0,
                ..Counts::default()
            };
            let mut errors = BTreeMap::new();
            if failed > 0 {
                errors.insert("503".to_string(), failed);
            }
            let p50 = if faulty { 40.0 } else { 8.0 } + (i as f64 / 5.0).sin() * 2.0;
            Window {
                start_ms: i * 1000,
                end_ms: (i + 1) * 1000,
                requests,
                throughput: ok as f64,
                latency: latency(p50),
                errors,
                endpoints: ENDPOINTS
                    .iter()
                    .map(|e| {
                        let w = EndpointWindow {
                            requests,
                            latency: latency(p50),
                        };
                        (e.to_string(), w)
                    })
                    .collect(),
                saga: SagaOutcomes {
                    completed: ok,
                    compensated: failed / 2,
                    failed: failed / 4,
                },
                settle: latency(p50 * 3.0),
            }
        })
        .collect();
    FlowReport {
        throughput: 90.0,
        latency: latency(9.0),
        endpoints: ENDPOINTS
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let r = EndpointReport {
                    latency: latency(5.0 + i as f64),
                    distribution: curve(5.0 + 3.0 * i as f64),
                    ..EndpointReport::default()
                };
                (e.to_string(), r)
            })
            .collect(),
        settle: latency(30.0),
        settle_distribution: curve(30.0),
        windows,
        retries: (1..=WINDOWS)
            .flat_map(|i| {
                ["orders->payments", "orders->inventory"]
                    .into_iter()
                    .map(move |l| RetrySample {
                        at_ms: i * 1000,
                        link: l.into(),
                        retries: i % 4,
                    })
            })
            .collect(),
        outbox: if asyn {
            (0..WINDOWS)
                .map(|i| OutboxSample {
                    at_ms: i * 1000 + 500,
                    service: "orders".into(),
                    backlog: i % 50,
                })
                .collect()
        } else {
            Vec::new()
        },
        ..FlowReport::default()
    }
}

fn report() -> Report {
    let faults = ["sync", "async"]
        .into_iter()
        .flat_map(|f| {
            [
                (FaultPhase::Applied, 120_000),
                (FaultPhase::Undone, 240_000),
            ]
            .map(|(phase, at)| FaultEvent {
                flow: Some(f.into()),
                phase: Some(phase),
                at_ms: at,
                action: "orders->payments down".into(),
                ..FaultEvent::default()
            })
        })
        .collect();
    let breakers = [("CLOSED", "OPEN", 121_000), ("OPEN", "HALF_OPEN", 126_000)]
        .into_iter()
        .cycle()
        .take(40)
        .enumerate()
        .map(|(i, (from, to, at))| BreakerTransition {
            flow: Some("sync".into()),
            link: "orders->payments".into(),
            from: from.into(),
            to: to.into(),
            at_ms: at + (i as u64 / 2) * 6_000,
        })
        .collect();
    Report {
        scenario: "ten-minutes".into(),
        duration_ms: WINDOWS * 1000,
        flows: [("sync".into(), flow(false)), ("async".into(), flow(true))]
            .into_iter()
            .collect(),
        breakers,
        lag: (0..WINDOWS)
            .map(|i| LagSample {
                flow: Some("async".into()),
                at_ms: i * 1000 + 200,
                group: "payments".into(),
                lag: i % 30,
            })
            .collect(),
        faults,
        ..Report::default()
    }
}

fn main() {
    let report = report();
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let html = render_report(&report);
        times.push(start.elapsed());
        bytes = std::hint::black_box(html).len();
    }
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "report.html, {WINDOWS} windows x 2 flows, {} endpoints: median {:.1} ms over {RUNS} renders (min {:.1}, max {:.1}), {bytes} bytes",
        ENDPOINTS.len(),
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[RUNS - 1].as_secs_f64() * 1000.0,
    );
    if let Some(dir) = std::env::var_os("GAUNTLET_HTML_SAMPLE_DIR") {
        match write_html(&dir, &report) {
            Ok(path) => println!("written to {}", path.display()),
            Err(e) => eprintln!("{e}"),
        }
    }
}
