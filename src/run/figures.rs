//! The report and the figures gates read, from the legs of a run.
//!
//! Targets: an endpoint (`POST /api/orders`) covers that endpoint in every
//! flow that ran; a flow (`sync`, `async`) covers every operation of that
//! flow's run; `all` covers every operation. Only the measured load counts
//! (warm-up and set-up are in the history, for the invariants, but not in
//! the figures). Throughput is operations acknowledged per second of
//! measured load.

use std::collections::BTreeMap;

use gauntlet_loadgen::{self as loadgen, EndpointResult};
use gauntlet_reports::history::Outcome;
use gauntlet_reports::invariants::InvariantResult;
use gauntlet_reports::metrics::{Counts, LagSummary, Latency, OrderCounts, SagaOutcomes, ALL};
use gauntlet_reports::report::{
    DlqCount, EndpointReport, ErrorCount, FlowReport, LagSample, Window,
};
use gauntlet_reports::scenario::Scenario;
use gauntlet_reports::state::{FinalState, CANCELLED, CONFIRMED};
use gauntlet_reports::{check_all, evaluate, Machine, Metrics, Report};
use hdrhistogram::Histogram;

use super::leg::Leg;

/// A histogram and counts over some seconds of load, to merge.
struct Acc {
    latency: Histogram<u64>,
    counts: loadgen::Counts,
    secs: f64,
}

impl Acc {
    fn new() -> Self {
        Acc {
            // 3 significant figures is a valid precision.
            latency: Histogram::new(3).unwrap_or_else(|_| unreachable!()),
            counts: loadgen::Counts::default(),
            secs: 0.0,
        }
    }

    fn add(&mut self, e: &EndpointResult) {
        // Both auto-resize: adding cannot fall out of range.
        let _ = self.latency.add(&e.latency);
        self.counts.ok += e.counts.ok;
        self.counts.fail += e.counts.fail;
        self.counts.unknown += e.counts.unknown;
    }

    fn counts(&self) -> Counts {
        counts(&self.counts)
    }

    fn throughput(&self) -> f64 {
        if self.secs > 0.0 {
            self.counts.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

fn counts(c: &loadgen::Counts) -> Counts {
    Counts {
        total: c.total(),
        ok: c.ok,
        failed: c.fail,
        unknown: c.unknown,
    }
}

/// A histogram of microseconds as milliseconds.
fn latency(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        count: h.len(),
        min: ms(h.min()),
        avg: h.mean() / 1000.0,
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

/// How sagas ended, from the final state: a cancelled order whose saga
/// had taken stock or money (and gave it back) was compensated; one that
/// had taken nothing simply failed.
pub fn saga_outcomes(state: &FinalState) -> SagaOutcomes {
    let took_stock: std::collections::HashSet<i64> = state
        .reservations
        .iter()
        .filter(|r| r.product_id != 0)
        .map(|r| r.order_id)
        .collect();
    let took_money: std::collections::HashSet<i64> = state
        .charges
        .iter()
        .filter(|c| c.took_money())
        .filter_map(|c| c.order_id)
        .collect();
    let mut s = SagaOutcomes::default();
    for o in &state.orders {
        match o.status.as_str() {
            CONFIRMED => s.completed += 1,
            CANCELLED if took_stock.contains(&o.id) || took_money.contains(&o.id) => {
                s.compensated += 1
            }
            CANCELLED => s.failed += 1,
            _ => {}
        }
    }
    s
}

/// The report of a run made of `legs`.
pub fn report(scenario: &Scenario, legs: &[Leg], interrupted: bool) -> Report {
    let mut accs: BTreeMap<String, Acc> = BTreeMap::new();
    let mut flows = BTreeMap::new();
    let mut errors: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut metrics = Metrics::default();
    let mut invariants: Vec<InvariantResult> = Vec::new();
    let mut violations: BTreeMap<String, u64> = BTreeMap::new();
    let mut orders = OrderCounts::default();
    let mut saga: Option<SagaOutcomes> = None;
    let mut breakers = Vec::new();
    let mut lag: Vec<LagSample> = Vec::new();
    let mut lag_summary: BTreeMap<String, LagSummary> = BTreeMap::new();
    let mut events = Vec::new();
    let mut faults = Vec::new();
    let mut partial = interrupted;
    let mut duration_ms = 0;

    for leg in legs {
        let secs = leg.measured_secs();
        duration_ms += (secs * 1000.0) as u64;
        // Figures by target.
        let mut flow_acc = Acc::new();
        for (endpoint, e) in &leg.load.endpoints {
            flow_acc.add(e);
            let acc = accs.entry(endpoint.to_string()).or_insert_with(Acc::new);
            acc.add(e);
            acc.secs += secs;
        }
        flow_acc.secs = secs;
        let all = accs.entry(ALL.to_string()).or_insert_with(Acc::new);
        all.add(&leg.load.overall());
        all.secs += secs;
        let mut flow_report = flow_report(leg, &flow_acc);
        if let Some(state) = &leg.state {
            flow_report.settle = settle_latency(state, leg.measured_from_unix_ms);
        }
        flows.insert(leg.flow.to_string(), flow_report);
        metrics
            .latency
            .insert(leg.flow.into(), latency(&flow_acc.latency));
        metrics.requests.insert(leg.flow.into(), flow_acc.counts());
        metrics
            .throughput
            .insert(leg.flow.into(), flow_acc.throughput());

        // Errors in the measured load.
        for op in &leg.history.ops {
            let measured = op.journey.is_some()
                && op.intended_us.is_some_and(|i| i >= leg.load.measured_from_us);
            if !measured || op.outcome == Outcome::Ok {
                continue;
            }
            let error = match (op.outcome, op.status) {
                (_, Some(status)) => status.to_string(),
                (Outcome::Unknown, None) => "unknown (no answer)".to_string(),
                _ => "no connection".to_string(),
            };
            *errors
                .entry((leg.flow.to_string(), op.kind.endpoint().to_string(), error))
                .or_default() += 1;
        }

        // Breakers.
        breakers.extend(leg.breakers.transitions(leg.measured_from_unix_ms));
        for (link, n) in leg.breakers.opened() {
            *metrics.breaker_opened.entry(link).or_default() += n;
        }
        for (link, n) in leg.breakers.retries() {
            *metrics.retries.entry(link).or_default() += n;
        }

        // Lag.
        lag.extend(leg.lag.iter().cloned());
        for (group, (max, last)) in &leg.lag_summary {
            let l = lag_summary.entry(group.clone()).or_default();
            l.max = l.max.max(*max);
            l.last = l.last.max(*last);
        }

        for r in &leg.faults {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("flow".into(), leg.flow.into());
            }
            faults.push(v);
        }
        for s in &leg.skipped_faults {
            faults.push(serde_json::json!({"flow": leg.flow, "skipped": s}));
        }

        // Invariants, on this leg's own history and state.
        if !leg.quiesce.settled || !leg.problems.is_empty() || leg.interrupted {
            partial = true;
        }
        match &leg.state {
            Some(state) => {
                // Counts are of this flow's own orders: on a system running
                // elsewhere the state also holds earlier runs' (and, with
                // `both`, the other flow's).
                let since = leg
                    .load
                    .started_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let own = FinalState {
                    orders: state
                        .orders
                        .iter()
                        .filter(|o| o.created_at.is_none_or(|c| c >= since))
                        .cloned()
                        .collect(),
                    ..state.clone()
                };
                let o = OrderCounts::from_run(&leg.history, &own);
                orders.placed += o.placed;
                orders.acknowledged += o.acknowledged;
                orders.confirmed += o.confirmed;
                orders.cancelled += o.cancelled;
                orders.pending += o.pending;
                orders.lost += o.lost;
                let s = saga_outcomes(&own);
                let total = saga.get_or_insert_with(SagaOutcomes::default);
                total.completed += s.completed;
                total.compensated += s.compensated;
                total.failed += s.failed;
                if let Some(e) = &leg.events_delta {
                    events.extend(e.iter().cloned());
                }
                for mut r in check_all(&leg.history, state) {
                    *violations.entry(r.name.clone()).or_default() += r.violations;
                    if legs.len() > 1 {
                        r.name = format!("{}/{}", leg.flow, r.name);
                    }
                    invariants.push(r);
                }
            }
            None => partial = true,
        }
    }

    for (target, acc) in &accs {
        metrics
            .latency
            .insert(target.clone(), latency(&acc.latency));
        metrics.requests.insert(target.clone(), acc.counts());
        metrics.throughput.insert(target.clone(), acc.throughput());
    }
    metrics.saga = saga;
    metrics.orders = legs.iter().any(|l| l.state.is_some()).then_some(orders);
    let has_events = legs.iter().any(|l| l.flow == "async");
    if has_events {
        metrics.events = Some(events.clone());
        metrics.lag = Some(lag_summary);
    }
    metrics.invariants = Some(violations);
    let gates = evaluate(&scenario.gates, &metrics);

    let mut dlq: BTreeMap<String, DlqCount> = BTreeMap::new();
    for e in &events {
        let d = dlq.entry(e.topic.clone()).or_insert_with(|| DlqCount {
            topic: e.topic.clone(),
            ..DlqCount::default()
        });
        d.produced += e.produced;
        d.dead_lettered += e.dead_lettered;
    }
    let dlq = dlq
        .into_values()
        .map(|mut d| {
            d.rate = if d.produced == 0 {
                0.0
            } else {
                d.dead_lettered as f64 / d.produced as f64
            };
            d
        })
        .collect();

    let mut report = Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        seed: scenario.seed,
        started_unix_ms: legs.first().map_or(0, |l| l.measured_from_unix_ms),
        duration_ms,
        machine: Machine::detect(),
        flows,
        errors: errors
            .into_iter()
            .map(|((flow, endpoint, error), count)| ErrorCount {
                flow: Some(flow),
                endpoint,
                error,
                count,
            })
            .collect(),
        breakers,
        saga,
        dlq,
        lag,
        faults,
        invariants,
        gates,
        metrics,
        partial,
        passed: false,
    };
    report.passed = report.verdict();
    report
}

/// Written → terminal, for the orders written from `from_unix_ms` on.
fn settle_latency(state: &FinalState, from_unix_ms: i64) -> Latency {
    let mut h: Histogram<u64> = Histogram::new(3).unwrap_or_else(|_| unreachable!());
    for o in &state.orders {
        if let (Some(c), Some(s)) = (o.created_at, o.settled_at) {
            if c >= from_unix_ms {
                // Milliseconds, recorded as µs like every other histogram.
                let _ = h.record(((s - c).max(0) as u64).saturating_mul(1000));
            }
        }
    }
    latency(&h)
}

fn flow_report(leg: &Leg, acc: &Acc) -> FlowReport {
    let endpoints = leg
        .load
        .endpoints
        .iter()
        .map(|(name, e)| {
            (
                name.to_string(),
                EndpointReport {
                    requests: counts(&e.counts),
                    latency: latency(&e.latency),
                },
            )
        })
        .collect();
    let windows = leg
        .load
        .windows
        .iter()
        .map(|w| {
            let mut acc = Acc::new();
            for e in w.endpoints.values() {
                acc.add(e);
            }
            acc.secs = 1.0;
            let start_ms = u64::from(w.second) * 1000;
            Window {
                start_ms,
                end_ms: start_ms + 1000,
                requests: acc.counts(),
                throughput: acc.throughput(),
                latency: latency(&acc.latency),
            }
        })
        .collect();
    FlowReport {
        throughput: acc.throughput(),
        requests: acc.counts(),
        latency: latency(&acc.latency),
        endpoints,
        windows,
        settle: Latency::default(),
    }
}
