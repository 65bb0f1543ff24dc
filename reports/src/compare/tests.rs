//! The statistics against known values, and `compare` against synthetic
//! runs: one "recorded" run replayed with independent seeded noise, with
//! and without a known change.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::metrics::{Counts, LagSummary, Latency, SagaOutcomes};
use crate::report::{
    BreakerTransition, DlqCount, EndpointReport, EndpointWindow, FlowReport, LagSample, Window,
};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

// ---------------------------------------------------------------- stats

#[test]
fn mann_whitney_matches_the_textbook_example() {
    // The example in SciPy's `mannwhitneyu` documentation: U = 17, and the
    // asymptotic two-sided p with continuity correction is 0.1113468865;
    // one-sided, half that.
    let male = [19.0, 22.0, 16.0, 29.0, 24.0];
    let female = [20.0, 11.0, 17.0, 12.0];
    let m = mann_whitney(&female, &male).expect("both sides have values");
    assert_eq!(m.u, 17.0);
    assert_eq!(m.mean, 10.0);
    assert!(
        close(m.test.p_greater, 0.111_346_886_533_140_4 / 2.0, 1e-7),
        "{m:?}"
    );
    assert!(m.test.p_less > 0.9, "{m:?}");
    // The other way round, the same evidence the other way.
    let r = mann_whitney(&male, &female).expect("values");
    assert_eq!(r.u, 3.0);
    assert!(close(r.test.p_less, m.test.p_greater, 1e-12));
}

#[test]
fn mann_whitney_corrects_for_ties() {
    // Six zeros share ranks 1–6 (3.5 each), four ones ranks 7–10 (8.5).
    let base = [0.0, 0.0, 0.0, 0.0, 1.0];
    let new = [0.0, 0.0, 1.0, 1.0, 1.0];
    let m = mann_whitney(&base, &new).expect("values");
    assert_eq!(m.u, 2.0 * 3.5 + 3.0 * 8.5 - 15.0);
    // σ² = n₁n₂/12 · ((n + 1) − Σ(t³ − t) / (n(n − 1))) = 25/12 · (11 − 270/90).
    assert!(close(m.sd, (25.0f64 / 12.0 * 8.0).sqrt(), 1e-12), "{m:?}");
    assert!(close(
        m.test.p_greater,
        normal_sf((17.5 - 12.5 - 0.5) / m.sd),
        1e-15
    ));
}

#[test]
fn mann_whitney_on_identical_and_separated_samples() {
    let a = [1.0, 2.0, 3.0, 4.0, 5.0];
    let same = mann_whitney(&a, &a).expect("values");
    assert_eq!(same.u, same.mean);
    for p in [same.test.p_greater, same.test.p_less] {
        assert!((0.5..0.6).contains(&p), "identical samples: p = {p}");
    }

    // Every value equal: nothing to tell the runs apart by.
    let flat = mann_whitney(&[3.0; 8], &[3.0; 8]).expect("values");
    assert_eq!((flat.test.p_greater, flat.test.p_less), (1.0, 1.0));

    let low: Vec<f64> = (0..10).map(f64::from).collect();
    let high: Vec<f64> = (10..20).map(f64::from).collect();
    let sep = mann_whitney(&low, &high).expect("values");
    assert_eq!(sep.u, 100.0);
    assert!(sep.test.p_greater < 1e-3, "{sep:?}");
    assert!(sep.test.p_less > 0.999, "{sep:?}");

    // Non-finite values are left out; nothing left is no test.
    assert!(mann_whitney(&[f64::NAN], &a).is_none());
    assert!(mann_whitney(&[], &a).is_none());
}

#[test]
fn normal_tails_poisson_and_proportions() {
    // The erfc fit is good to about 1e-7, relative.
    assert!(close(normal_sf(0.0), 0.5, 1e-7));
    assert!(close(normal_sf(1.644_853_6), 0.05, 1e-7));
    assert!(close(normal_cdf(-2.326_347_9), 0.01, 1e-7));
    // Far in the tail, still a relative accuracy (not 1 − cdf rounded to 0).
    let tail = normal_sf(8.0);
    assert!(close(tail / 6.220_960_574_271_785e-16, 1.0, 1e-6), "{tail}");

    let p = poisson(10, 30);
    assert!(close(p.z, 20.0 / 40f64.sqrt(), 1e-12));
    assert!(close(p.p_greater, normal_sf(p.z), 1e-15));
    assert_eq!(poisson(0, 0).p_greater, 1.0);

    let t = two_proportions(10, 1000, 30, 1000).expect("trials on both sides");
    let se = (0.02f64 * 0.98 * 0.002).sqrt();
    assert!(close(t.z, 0.02 / se, 1e-9), "{t:?}");
    assert!(t.p_greater < 0.001 && t.p_less > 0.99);
    assert!(two_proportions(1, 0, 1, 10).is_none());
    assert_eq!(
        two_proportions(0, 10, 0, 10).map(|t| t.p_greater),
        Some(1.0)
    );
}

// ---------------------------------------------------------- thresholds

#[test]
fn thresholds_parse_bare_and_scoped() {
    assert_eq!(parse_threshold("p99=15%"), Ok(("p99".to_string(), 0.15)));
    assert_eq!(
        parse_threshold("throughput=5%"),
        Ok(("throughput".to_string(), 0.05))
    );
    assert_eq!(
        parse_threshold(" p99 ( POST /api/orders ) = 12.5 % "),
        Ok(("p99(POST /api/orders)".to_string(), 0.125))
    );
    assert_eq!(
        parse_threshold("breaker.opened=0%"),
        Ok(("breaker.opened".to_string(), 0.0))
    );

    let mut opts = CompareOptions::default();
    opts.set_threshold("p99=15%").expect("valid");
    opts.set_threshold("p99(POST /api/orders)=30%")
        .expect("valid");
    assert_eq!(opts.threshold_for(Metric::P99, "POST /api/orders"), 0.30);
    assert_eq!(opts.threshold_for(Metric::P99, "sync"), 0.15);
    assert_eq!(opts.threshold_for(Metric::P50, "sync"), DEFAULT_THRESHOLD);
}

#[test]
fn bad_thresholds_are_rejected_saying_why() {
    let err = |s: &str| {
        parse_threshold(s)
            .expect_err("should be rejected")
            .to_string()
    };
    assert_eq!(
        err("p99"),
        "threshold `p99`: expected METRIC=PERCENT, e.g. `p99=15%`"
    );
    assert_eq!(
        err("=15%"),
        "threshold `=15%`: expected METRIC=PERCENT, e.g. `p99=15%`"
    );
    let e = err("p98=15%");
    assert!(
        e.starts_with("threshold `p98=15%`: unknown metric `p98`; did you mean `p99`?"),
        "{e}"
    );
    assert!(e.contains("throughput") && e.contains("lag.max"), "{e}");
    assert_eq!(
        err("p99=15"),
        "threshold `p99=15`: `15` is not a percentage; write it like `15%`"
    );
    assert!(err("p99=abc%").contains("`abc%` is not a percentage"));
    assert!(err("p99=-5%").contains("-5% is out of range"));
    assert!(err("p99=5000%").contains("out of range"));
    assert!(err("p99=NaN%").contains("out of range"));
    assert!(err("p99()=5%").contains("a target goes in parentheses"));
    assert!(err("p99(sync=5%").contains("a target goes in parentheses"));
}

// ------------------------------------------------------ synthetic runs

const FLOW: &str = "async";
const ORDERS: &str = "POST /api/orders";
const PRODUCTS: &str = "GET /api/products";
/// Each endpoint's share of the load and its latency relative to the flow's.
const ENDPOINTS: [(&str, f64, f64); 2] = [(ORDERS, 0.6, 1.3), (PRODUCTS, 0.4, 0.6)];
const LINK: &str = "orders->payments";
const TOPIC: &str = "orders.placed";
const GROUP: &str = "payments";

/// One second of the recorded run.
#[derive(Debug, Clone, Copy)]
struct Second {
    ops: f64,
    error_rate: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    settle_p99: f64,
    lag: f64,
}

/// The recorded run both synthetic runs replay: about 100 ops/s with a
/// p99 about 6 ms, and a fault from second 10 to 14 that makes latency
/// 10× and fails a fifth of the operations.
fn recorded(seconds: usize) -> Vec<Second> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..seconds)
        .map(|i| {
            let fault = (10..14).contains(&i);
            let slow = if fault { 10.0 } else { 1.0 };
            // Outside the fault, now and then an operation fails.
            let error_rate = match (fault, rng.gen_bool(0.2)) {
                (true, _) => 0.2,
                (false, true) => 0.01,
                (false, false) => 0.0,
            };
            let mut around = |v: f64| v * rng.gen_range(0.9..1.1);
            Second {
                ops: around(100.0) * if fault { 0.6 } else { 1.0 },
                error_rate,
                p50: around(2.0) * slow,
                p95: around(4.5) * slow,
                p99: around(6.0) * slow,
                max: around(12.0) * slow,
                settle_p99: around(40.0) * slow,
                lag: around(20.0) * if fault { 20.0 } else { 1.0 },
            }
        })
        .collect()
}

/// A known change to put into a replay.
#[derive(Debug, Clone, Copy)]
struct Change {
    /// Added to every client latency figure, ms.
    latency_ms: f64,
    /// Multiplies the operations (so the throughput).
    throughput: f64,
}

const NO_CHANGE: Change = Change {
    latency_ms: 0.0,
    throughput: 1.0,
};

/// `q` (0–1) of `values`, interpolating between order statistics.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = q * (v.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
}

/// The overall latency of some windows' latencies: the windows' median
/// p50, their p95 of p95s, p99 of p99s and the largest max. Crude, but
/// like a real run's overall figures, the tail ones are dominated by the
/// fault's windows, so they swing with them.
fn overall(ls: &[Latency]) -> Latency {
    let pick = |f: fn(&Latency) -> f64| -> Vec<f64> { ls.iter().map(f).collect() };
    Latency {
        count: ls.iter().map(|l| l.count).sum(),
        p50: quantile(&pick(|l| l.p50), 0.5),
        p95: quantile(&pick(|l| l.p95), 0.95),
        p99: quantile(&pick(|l| l.p99), 0.99),
        max: pick(|l| l.max).into_iter().fold(0.0, f64::max),
        ..Latency::default()
    }
}

fn counts(total: u64, error_rate: f64) -> Counts {
    let failed = ((total as f64 * error_rate).round() as u64).min(total);
    Counts {
        total,
        ok: total - failed,
        failed,
        unknown: 0,
        ..Counts::default()
    }
}

fn add(a: Counts, b: Counts) -> Counts {
    Counts {
        total: a.total + b.total,
        ok: a.ok + b.ok,
        failed: a.failed + b.failed,
        unknown: a.unknown + b.unknown,
        ..Counts::default()
    }
}

/// ±15% multiplicative noise from a seed.
struct Jitter(StdRng);

impl Jitter {
    fn new(seed: u64) -> Self {
        Jitter(StdRng::seed_from_u64(seed))
    }

    /// `v` × a factor in [0.85, 1.15].
    fn on(&mut self, v: f64) -> f64 {
        v * (1.0 + self.0.gen_range(-0.15..=0.15))
    }

    fn latency(&mut self, s: &Second, count: u64, scale: f64, change: Change) -> Latency {
        let mut at = |v: f64| self.on(v * scale) + change.latency_ms;
        Latency {
            count,
            p50: at(s.p50),
            p95: at(s.p95),
            p99: at(s.p99),
            max: at(s.max),
            ..Latency::default()
        }
    }
}

/// A run replaying `rec` with ±15% multiplicative noise, drawn from
/// `seed`, on every window's operations (so its throughput), percentiles,
/// settle time and lag, and on the counts; then `change` applied. The
/// noise drawn does not depend on `change`, so a replay with a change is
/// the same replay without it, changed.
fn replay(rec: &[Second], seed: u64, change: Change) -> Report {
    let mut jitter = Jitter::new(seed);
    let mut windows = Vec::new();
    for (i, s) in rec.iter().enumerate() {
        let mut endpoints = BTreeMap::new();
        let mut requests = Counts::default();
        let ops = jitter.on(s.ops) * change.throughput;
        for (name, share, scale) in ENDPOINTS {
            let total = (ops * share).round() as u64;
            let c = counts(total, s.error_rate);
            requests = add(requests, c);
            let latency = jitter.latency(s, total, scale, change);
            endpoints.insert(
                name.to_string(),
                EndpointWindow {
                    requests: c,
                    latency,
                },
            );
        }
        let latency = jitter.latency(s, requests.total, 1.0, change);
        let start_ms = i as u64 * 1000;
        windows.push(Window {
            start_ms,
            end_ms: start_ms + 1000,
            requests,
            throughput: requests.ok as f64,
            latency,
            endpoints,
            settle: Latency {
                count: requests.ok,
                p99: jitter.on(s.settle_p99),
                ..Latency::default()
            },
            ..Window::default()
        });
    }

    let secs = windows.len() as f64;
    let mut endpoints = BTreeMap::new();
    for (name, _, _) in ENDPOINTS {
        let ews: Vec<EndpointWindow> = windows.iter().map(|w| w.endpoints[name]).collect();
        endpoints.insert(
            name.to_string(),
            EndpointReport {
                requests: ews
                    .iter()
                    .fold(Counts::default(), |a, e| add(a, e.requests)),
                latency: overall(&ews.iter().map(|e| e.latency).collect::<Vec<_>>()),
                ..EndpointReport::default()
            },
        );
    }
    let requests = windows
        .iter()
        .fold(Counts::default(), |a, w| add(a, w.requests));
    let settle_p99s: Vec<f64> = windows.iter().map(|w| w.settle.p99).collect();
    let compensated = jitter.on(40.0).round() as u64;
    let lag: Vec<LagSample> = rec
        .iter()
        .enumerate()
        .map(|(i, s)| LagSample {
            flow: Some(FLOW.into()),
            at_ms: i as u64 * 1000,
            group: GROUP.into(),
            lag: jitter.on(s.lag).round() as u64,
        })
        .collect();
    let lag_max = lag.iter().map(|s| s.lag).max().unwrap_or(0);
    let produced = jitter.on(3000.0).round() as u64;
    let dead_lettered = jitter.on(30.0).round() as u64;
    let opened = jitter.on(3.0).round() as u64;

    let flow = FlowReport {
        throughput: requests.ok as f64 / secs,
        requests,
        latency: overall(&windows.iter().map(|w| w.latency).collect::<Vec<_>>()),
        endpoints,
        settle: Latency {
            count: requests.ok,
            p99: quantile(&settle_p99s, 0.99),
            ..Latency::default()
        },
        saga: Some(SagaOutcomes {
            completed: requests.ok,
            compensated,
            failed: 0,
        }),
        windows,
        ..FlowReport::default()
    };
    let mut report = Report {
        scenario: "checkout-under-faults".into(),
        started_unix_ms: 1_700_000_000_000 + seed as i64,
        flows: BTreeMap::from([(FLOW.to_string(), flow)]),
        dlq: vec![DlqCount {
            topic: TOPIC.into(),
            produced,
            dead_lettered,
            rate: dead_lettered as f64 / produced as f64,
        }],
        lag,
        ..Report::default()
    };
    report.metrics.breaker_opened.insert(LINK.into(), opened);
    report.metrics.lag = Some(BTreeMap::from([(
        GROUP.to_string(),
        LagSummary {
            max: lag_max,
            last: 0,
        },
    )]));
    report
}

fn row<'c>(cmp: &'c Comparison, flow: Option<&str>, target: &str, metric: &str) -> &'c Row {
    cmp.rows
        .iter()
        .find(|r| r.flow.as_deref() == flow && r.target == target && r.metric == metric)
        .unwrap_or_else(|| panic!("no row {flow:?} {target} {metric} in\n{}", table(cmp)))
}

fn verdicts_of(cmp: &Comparison, metric: &str) -> Vec<(String, Verdict)> {
    cmp.rows
        .iter()
        .filter(|r| r.metric == metric)
        .map(|r| (r.target.clone(), r.verdict))
        .collect()
}

#[test]
fn noisy_replays_of_one_run_never_regress() {
    let rec = recorded(30);
    let opts = CompareOptions::default();
    let mut over_threshold = 0;
    let mut rows = 0;
    for pair in 0..50u64 {
        let base = replay(&rec, 1000 + 2 * pair, NO_CHANGE);
        let new = replay(&rec, 1001 + 2 * pair, NO_CHANGE);
        let cmp = compare(&base, &new, &opts).expect("comparable");
        assert!(
            !cmp.regressed,
            "pair {pair}: false regression\n{}",
            table(&cmp)
        );
        let moved: Vec<&Row> = cmp
            .rows
            .iter()
            .filter(|r| r.verdict != Verdict::Unchanged)
            .collect();
        assert!(moved.is_empty(), "pair {pair}: {moved:#?}");
        assert!(cmp.only_in_base.is_empty() && cmp.only_in_new.is_empty());
        rows += cmp.rows.len();
        over_threshold += cmp
            .rows
            .iter()
            .filter(|r| {
                (r.new - r.base).abs() > r.floor
                    && r.change_pct.is_none_or(|c| c.abs() > r.threshold_pct)
            })
            .count();
    }
    // Every figure is there: throughput, four percentiles and the error
    // rate for the flow and each endpoint, settle, compensations, the
    // breaker, the DLQ and the lag.
    assert_eq!(rows, 50 * (3 * 6 + 5));
    // The noise alone takes some figures (the fault-dominated tails) past
    // the threshold: it is the noise test that keeps them unchanged.
    assert!(
        over_threshold > 20,
        "only {over_threshold} rows moved past their threshold; the noise is too tame to test anything"
    );
}

#[test]
fn a_50ms_slowdown_regresses_p99() {
    let rec = recorded(30);
    let base = replay(&rec, 1, NO_CHANGE);
    let slow = Change {
        latency_ms: 50.0,
        ..NO_CHANGE
    };
    let new = replay(&rec, 2, slow);
    let cmp = compare(&base, &new, &CompareOptions::default()).expect("comparable");
    assert!(cmp.regressed, "{}", table(&cmp));
    for target in [FLOW, ORDERS, PRODUCTS] {
        for metric in ["p50", "p95", "p99"] {
            let r = row(&cmp, Some(FLOW), target, metric);
            assert_eq!(r.verdict, Verdict::Regressed, "{r:#?}");
            assert_eq!(r.noise.test, Test::MannWhitney);
            assert!(r.noise.p < 1e-6, "{r:#?}");
            assert_eq!(r.noise.base_samples, 30);
        }
    }
    // The overall p99 is the fault's (about 60 ms), so +50 ms is most of it again.
    let p99 = row(&cmp, Some(FLOW), FLOW, "p99");
    assert!(p99.change_pct.is_some_and(|c| c > 50.0), "{p99:#?}");
    // What the slowdown did not touch stays unchanged.
    for (metric, target) in [
        ("throughput", FLOW),
        ("error_rate", FLOW),
        ("settle.p99", FLOW),
        ("breaker.opened", LINK),
        ("dlq.rate", TOPIC),
        ("lag.max", GROUP),
    ] {
        let r = row(&cmp, Some(FLOW), target, metric);
        assert_eq!(r.verdict, Verdict::Unchanged, "{r:#?}");
    }
}

#[test]
fn throughput_down_30_percent_regresses_and_up_30_percent_improves() {
    let rec = recorded(30);
    let base = replay(&rec, 3, NO_CHANGE);

    let down = replay(
        &rec,
        4,
        Change {
            throughput: 0.7,
            ..NO_CHANGE
        },
    );
    let cmp = compare(&base, &down, &CompareOptions::default()).expect("comparable");
    assert!(cmp.regressed);
    assert_eq!(
        verdicts_of(&cmp, "throughput"),
        [
            (FLOW.to_string(), Verdict::Regressed),
            (PRODUCTS.to_string(), Verdict::Regressed),
            (ORDERS.to_string(), Verdict::Regressed),
        ]
    );
    let r = row(&cmp, Some(FLOW), FLOW, "throughput");
    assert_eq!(r.better, Better::Higher);
    assert!(
        r.change_pct.is_some_and(|c| (-35.0..-25.0).contains(&c)),
        "{r:#?}"
    );

    let up = replay(
        &rec,
        4,
        Change {
            throughput: 1.3,
            ..NO_CHANGE
        },
    );
    let cmp = compare(&base, &up, &CompareOptions::default()).expect("comparable");
    assert!(!cmp.regressed, "{}", table(&cmp));
    assert_eq!(
        verdicts_of(&cmp, "throughput"),
        [
            (FLOW.to_string(), Verdict::Improved),
            (PRODUCTS.to_string(), Verdict::Improved),
            (ORDERS.to_string(), Verdict::Improved),
        ]
    );
    assert_eq!(cmp.counts(), (0, 3, cmp.rows.len() - 3));
}

#[test]
fn a_threshold_can_excuse_a_change_the_noise_test_accepts() {
    let rec = recorded(30);
    let base = replay(&rec, 1, NO_CHANGE);
    let new = replay(
        &rec,
        2,
        Change {
            throughput: 0.7,
            ..NO_CHANGE
        },
    );
    let mut opts = CompareOptions::default();
    opts.set_threshold("throughput=40%").expect("valid");
    opts.set_threshold(&format!("throughput({ORDERS})=5%"))
        .expect("valid");
    let cmp = compare(&base, &new, &opts).expect("comparable");
    assert_eq!(
        row(&cmp, Some(FLOW), FLOW, "throughput").verdict,
        Verdict::Unchanged
    );
    assert_eq!(
        row(&cmp, Some(FLOW), FLOW, "throughput").threshold_pct,
        40.0
    );
    let orders = row(&cmp, Some(FLOW), ORDERS, "throughput");
    assert_eq!(orders.verdict, Verdict::Regressed);
    assert!(close(orders.threshold_pct, 5.0, 1e-9));
}

#[test]
fn tiny_absolute_changes_are_unchanged_whatever_the_percentage() {
    let rec = recorded(30);
    let base = replay(&rec, 1, NO_CHANGE);
    let mut new = base.clone();
    // 0.5 ms → 0.65 ms in every window: +30%, and the windows clearly
    // differ, but 0.15 ms is below the latency floor.
    let set_p50 = |report: &mut Report, ms: f64| {
        let flow = report.flows.get_mut(FLOW).expect("the flow");
        flow.latency.p50 = ms;
        for w in &mut flow.windows {
            w.latency.p50 = ms;
        }
    };
    let mut base = base;
    set_p50(&mut base, 0.5);
    set_p50(&mut new, 0.65);
    // Breaker opens 1 → 3: +200%, but two opens more is timing.
    base.metrics.breaker_opened.insert(LINK.into(), 1);
    new.metrics.breaker_opened.insert(LINK.into(), 3);
    let cmp = compare(&base, &new, &CompareOptions::default()).expect("comparable");
    let p50 = row(&cmp, Some(FLOW), FLOW, "p50");
    assert!(p50.noise.significant, "the windows do differ: {p50:#?}");
    assert_eq!(p50.verdict, Verdict::Unchanged);
    assert_eq!(
        row(&cmp, Some(FLOW), LINK, "breaker.opened").verdict,
        Verdict::Unchanged
    );

    // 0 → 12 opens: beyond the floor, unbounded in percent, and beyond
    // Poisson noise (z = 12 / √12 ≈ 3.5).
    base.metrics.breaker_opened.insert(LINK.into(), 0);
    new.metrics.breaker_opened.insert(LINK.into(), 12);
    let cmp = compare(&base, &new, &CompareOptions::default()).expect("comparable");
    let opens = row(&cmp, Some(FLOW), LINK, "breaker.opened");
    assert_eq!(opens.verdict, Verdict::Regressed, "{opens:#?}");
    assert_eq!(opens.change_pct, None);
    assert_eq!(opens.noise.test, Test::Poisson);
}

#[test]
fn multi_flow_runs_split_breaker_opens_per_flow() {
    let rec = recorded(30);
    let mut base = replay(&rec, 1, NO_CHANGE);
    let sync = base.flows[FLOW].clone();
    base.flows.insert("sync".into(), sync);
    let mut new = base.clone();
    let open = |flow: &str, at_ms: u64| BreakerTransition {
        flow: Some(flow.into()),
        link: LINK.into(),
        from: "CLOSED".into(),
        to: "OPEN".into(),
        at_ms,
    };
    base.breakers = vec![open("sync", 1000)];
    new.breakers = (0..10).map(|i| open("sync", i * 1000)).collect();
    let cmp = compare(&base, &new, &CompareOptions::default()).expect("comparable");
    let sync = row(&cmp, Some("sync"), LINK, "breaker.opened");
    assert_eq!((sync.base, sync.new), (1.0, 10.0));
    assert_eq!(sync.verdict, Verdict::Regressed);
    let other = row(&cmp, Some(FLOW), LINK, "breaker.opened");
    assert_eq!(
        (other.base, other.new, other.verdict),
        (0.0, 0.0, Verdict::Unchanged)
    );
    // Lag and dead letters of a two-flow run are filed per sample's flow
    // and for the whole run.
    assert_eq!(
        row(&cmp, Some(FLOW), GROUP, "lag.max").verdict,
        Verdict::Unchanged
    );
    assert_eq!(
        row(&cmp, None, TOPIC, "dlq.rate").verdict,
        Verdict::Unchanged
    );
}

#[test]
fn figures_only_one_run_has_are_listed_apart() {
    let rec = recorded(30);
    let base = replay(&rec, 1, NO_CHANGE);
    let mut new = replay(&rec, 2, NO_CHANGE);
    let flow = new.flows.get_mut(FLOW).expect("the flow");
    let e = flow.endpoints[ORDERS].clone();
    flow.endpoints.insert("GET /api/orders/{id}".into(), e);
    new.dlq.clear();
    let cmp = compare(&base, &new, &CompareOptions::default()).expect("comparable");
    assert_eq!(
        cmp.only_in_new,
        [OnlyIn {
            flow: Some(FLOW.into()),
            target: "GET /api/orders/{id}".into(),
            metrics: ["throughput", "p50", "p95", "p99", "max", "error_rate"]
                .map(String::from)
                .to_vec(),
        }]
    );
    assert_eq!(
        cmp.only_in_base,
        [OnlyIn {
            flow: Some(FLOW.into()),
            target: TOPIC.into(),
            metrics: vec!["dlq.rate".into()],
        }]
    );
    assert!(cmp.rows.iter().all(|r| r.target != "GET /api/orders/{id}"));
    let text = table(&cmp);
    assert!(
        text.contains("only in new: async GET /api/orders/{id} (throughput, p50"),
        "{text}"
    );
    assert!(
        text.contains("only in base: async orders.placed (dlq.rate)"),
        "{text}"
    );
}

// ---------------------------------------------------------------- errors

#[test]
fn different_scenarios_are_not_compared() {
    let rec = recorded(10);
    let base = replay(&rec, 1, NO_CHANGE);
    let mut new = replay(&rec, 2, NO_CHANGE);
    new.scenario = "soak".into();
    let err = compare(&base, &new, &CompareOptions::default()).expect_err("different scenarios");
    assert!(
        matches!(err, CompareError::DifferentScenario { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("`checkout-under-faults`") && msg.contains("`soak`"),
        "{msg}"
    );
}

#[test]
fn a_report_without_flows_is_named() {
    let rec = recorded(10);
    let base = replay(&rec, 1, NO_CHANGE);
    let mut empty = base.clone();
    empty.flows.clear();
    let opts = CompareOptions::default();
    let err = compare(&base, &empty, &opts).expect_err("no flows");
    assert!(
        matches!(
            err,
            CompareError::NoFlows {
                side: Side::New,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("the new report"), "{err}");
    let err = compare(&empty, &base, &opts).expect_err("no flows");
    assert!(err.to_string().contains("the base report"), "{err}");
}

#[test]
fn bad_options_are_rejected() {
    let rec = recorded(10);
    let base = replay(&rec, 1, NO_CHANGE);
    let opts = CompareOptions {
        alpha: 0.0,
        ..CompareOptions::default()
    };
    let err = compare(&base, &base, &opts).expect_err("alpha 0");
    assert!(err.to_string().contains("significance level 0"), "{err}");
    let mut opts = CompareOptions::default();
    opts.thresholds.insert("p98".into(), 0.1);
    let err = compare(&base, &base, &opts).expect_err("unknown metric");
    assert!(err.to_string().contains("did you mean `p99`?"), "{err}");
    let mut opts = CompareOptions::default();
    opts.thresholds.insert("p99".into(), -0.1);
    let err = compare(&base, &base, &opts).expect_err("negative");
    assert!(
        err.to_string().contains("for `p99` is out of range"),
        "{err}"
    );
}

// ---------------------------------------------------------------- output

fn slowed() -> Comparison {
    let rec = recorded(30);
    let base = replay(&rec, 1, NO_CHANGE);
    let new = replay(
        &rec,
        2,
        Change {
            latency_ms: 50.0,
            ..NO_CHANGE
        },
    );
    let mut cmp = compare(&base, &new, &CompareOptions::default()).expect("comparable");
    cmp.base.source = "runs/base".into();
    cmp.new.source = "runs/new".into();
    cmp
}

#[test]
fn the_table_puts_regressions_first_and_sums_up() {
    let cmp = slowed();
    let text = table(&cmp);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("checkout-under-faults: base runs/base (started 2023-11-14T22:13:20Z"),
        "{text}"
    );
    let header = lines[1];
    assert!(
        header.starts_with("flow") && header.ends_with("verdict"),
        "{text}"
    );
    let p99 = lines
        .iter()
        .find(|l| l.contains(" p99 ") && l.starts_with("async  async "))
        .unwrap_or_else(|| panic!("no flow p99 line in\n{text}"));
    assert!(p99.ends_with("regressed"), "{p99}");
    assert!(p99.contains(" ms") && p99.contains('+'), "{p99}");
    // Regressions first: the first data row regressed, the last did not.
    assert!(lines[2].ends_with("regressed"), "{text}");
    assert!(lines[lines.len() - 2].ends_with("unchanged"), "{text}");
    // Columns aligned: every verdict starts at the same column.
    let at = header.find("verdict").expect("a verdict column");
    for l in &lines[2..lines.len() - 1] {
        assert!(
            ["regressed", "improved", "unchanged"].contains(&&l[at..]),
            "misaligned: {l:?}\n{text}"
        );
    }
    let (r, i, u) = cmp.counts();
    assert!(r >= 9);
    assert_eq!(
        *lines.last().expect("a summary"),
        format!("{r} regressed, {i} improved, {u} unchanged")
    );
}

#[test]
fn the_markdown_headline_and_tables() {
    let cmp = slowed();
    let md = markdown(&cmp);
    assert!(md.starts_with("### ❌ `checkout-under-faults`: "), "{md}");
    assert!(md.contains(&cmp.summary()), "{md}");
    let p99 = md
        .lines()
        .find(|l| l.starts_with("| ❌ regressed | async | `async` | p99 |"))
        .unwrap_or_else(|| panic!("no regressed p99 row in\n{md}"));
    assert!(p99.contains("| 10% |") && p99.contains("<0.0001"), "{p99}");
    assert!(
        md.contains("<details>\n<summary>") && md.contains("unchanged</summary>"),
        "{md}"
    );
    let folded = &md[md.find("<details>").expect("details")..];
    assert!(
        folded.contains("| async | `orders->payments` | breaker.opened |"),
        "{md}"
    );
    assert!(!folded.contains("regressed |"), "{md}");

    let rec = recorded(30);
    let quiet = compare(
        &replay(&rec, 1, NO_CHANGE),
        &replay(&rec, 2, NO_CHANGE),
        &CompareOptions::default(),
    )
    .expect("comparable");
    let md = markdown(&quiet);
    assert!(md.starts_with("### ✅ "), "{md}");
    assert!(
        md.contains("No figure moved beyond its threshold and the noise."),
        "{md}"
    );
}

#[test]
fn json_is_the_comparison_round_tripped() {
    let cmp = slowed();
    let json = serde_json::to_value(&cmp).expect("serialisable");
    let at = cmp
        .rows
        .iter()
        .position(|r| r.metric == "p99" && r.target == FLOW)
        .expect("the flow's p99");
    let first = &json["rows"][at];
    assert_eq!(first["flow"], FLOW);
    assert_eq!(first["metric"], "p99");
    assert_eq!(first["verdict"], "regressed");
    assert_eq!(first["better"], "lower");
    assert_eq!(first["unit"], "ms");
    assert_eq!(first["noise"]["test"], "mann_whitney");
    assert_eq!(json["regressed"], true);
    let back: Comparison = serde_json::from_value(json).expect("reads back");
    assert_eq!((&back.base, &back.new), (&cmp.base, &cmp.new));
    assert_eq!(back.rows.len(), cmp.rows.len());
    for (b, c) in back.rows.iter().zip(&cmp.rows) {
        assert_eq!(
            (&b.flow, &b.target, &b.metric),
            (&c.flow, &c.target, &c.metric)
        );
        assert_eq!((b.verdict, b.noise.test), (c.verdict, c.noise.test));
        // Floats read back to within their last digit.
        assert!(close(b.new, c.new, 1e-9 * c.new.abs().max(1.0)), "{b:?}");
        assert_eq!(b.change_pct.is_some(), c.change_pct.is_some());
    }
}

#[test]
fn the_interquartile_range_interpolates() {
    assert_eq!(crate::compare::iqr(&[]), 0.0);
    assert_eq!(crate::compare::iqr(&[4.0]), 0.0);
    // 1..=8: quartiles 2.75 and 6.25.
    let v: Vec<f64> = (1..=8).map(f64::from).collect();
    assert!((crate::compare::iqr(&v) - 3.5).abs() < 1e-12);
}

#[test]
fn a_whole_run_shift_within_the_window_spread_is_noise() {
    // Two runs whose windows each wander by ±2 ms around 10 ms, the new
    // one shifted by 3 ms as a whole: ranks alone call it significant,
    // but it is within three spreads (a shared machine does this between
    // runs of one commit).
    let base = run_with_p99(&[8.0, 12.0, 9.0, 11.0, 8.5, 11.5, 9.5, 10.5]);
    let new = run_with_p99(&[11.0, 15.0, 12.0, 14.0, 11.5, 14.5, 12.5, 13.5]);
    let cmp = compare(&base, &new, &CompareOptions::default()).expect("comparable");
    let p99 = cmp
        .rows
        .iter()
        .find(|r| r.metric == "p99" && r.target == "sync")
        .expect("a p99 row");
    assert!(p99.noise.p < 0.01, "{p99:?}");
    assert!(p99.noise.spread > 2.0, "{p99:?}");
    assert_eq!(p99.verdict, Verdict::Unchanged, "{p99:?}");
    // Shifted by 40 ms, it is a regression.
    let slow = run_with_p99(&[48.0, 52.0, 49.0, 51.0, 48.5, 51.5, 49.5, 50.5]);
    let cmp = compare(&base, &slow, &CompareOptions::default()).expect("comparable");
    assert!(cmp
        .rows
        .iter()
        .any(|r| r.metric == "p99" && r.target == "sync" && r.verdict == Verdict::Regressed));
}

/// A sync run whose windows have these p99s (and whose overall p99 is
/// their mean), 50 operations each.
fn run_with_p99(p99s: &[f64]) -> Report {
    let windows: Vec<Window> = p99s
        .iter()
        .enumerate()
        .map(|(i, &p99)| Window {
            start_ms: i as u64 * 1000,
            end_ms: i as u64 * 1000 + 1000,
            throughput: 50.0,
            requests: Counts {
                total: 50,
                ok: 50,
                ..Counts::default()
            },
            latency: Latency {
                count: 50,
                p50: p99 / 4.0,
                p95: p99 * 0.9,
                p99,
                max: p99,
                ..Latency::default()
            },
            ..Window::default()
        })
        .collect();
    let mean = p99s.iter().sum::<f64>() / p99s.len() as f64;
    let flow = FlowReport {
        throughput: 50.0,
        requests: Counts {
            total: 400,
            ok: 400,
            ..Counts::default()
        },
        latency: Latency {
            count: 400,
            p50: mean / 4.0,
            p95: mean * 0.9,
            p99: mean,
            max: mean,
            ..Latency::default()
        },
        windows,
        ..FlowReport::default()
    };
    Report {
        scenario: "spread".into(),
        flows: [("sync".to_string(), flow)].into(),
        ..Report::default()
    }
}
