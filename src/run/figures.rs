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
use gauntlet_reports::history::Operation;
use gauntlet_reports::history::Outcome;
use gauntlet_reports::invariants::InvariantResult;
use gauntlet_reports::metrics::{Counts, LagSummary, Latency, OrderCounts, SagaOutcomes, ALL};
use gauntlet_reports::report::{
    DlqCount, EndpointReport, EndpointWindow, ErrorCount, FaultEvent, FaultPhase, FlowReport,
    LagSample, PercentilePoint, Window,
};
use gauntlet_reports::scenario::Scenario;
use gauntlet_reports::state::{FinalState, Order, CANCELLED, CONFIRMED};
use gauntlet_reports::{check_all, gates, Machine, Metrics, Report};
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
        self.counts.merge(&e.counts);
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
        unauthorized: c.unauthorized,
        rate_limited: c.rate_limited,
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

/// How one saga ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SagaEnd {
    Completed,
    Compensated,
    Failed,
}

/// Tells how each order's saga ended, from the final state: a cancelled
/// order whose saga had taken stock or money (and gave it back) was
/// compensated; one that had taken nothing simply failed.
struct SagaJudge {
    took_stock: std::collections::HashSet<i64>,
    took_money: std::collections::HashSet<i64>,
}

impl SagaJudge {
    fn new(state: &FinalState) -> Self {
        SagaJudge {
            took_stock: state
                .reservations
                .iter()
                .filter(|r| r.product_id != 0)
                .map(|r| r.order_id)
                .collect(),
            took_money: state
                .charges
                .iter()
                .filter(|c| c.took_money())
                .filter_map(|c| c.order_id)
                .collect(),
        }
    }

    /// `None` for an order that is not terminal.
    fn judge(&self, o: &Order) -> Option<SagaEnd> {
        match o.status.as_str() {
            CONFIRMED => Some(SagaEnd::Completed),
            CANCELLED if self.took_stock.contains(&o.id) || self.took_money.contains(&o.id) => {
                Some(SagaEnd::Compensated)
            }
            CANCELLED => Some(SagaEnd::Failed),
            _ => None,
        }
    }
}

fn tally(s: &mut SagaOutcomes, end: SagaEnd) {
    match end {
        SagaEnd::Completed => s.completed += 1,
        SagaEnd::Compensated => s.compensated += 1,
        SagaEnd::Failed => s.failed += 1,
    }
}

/// How sagas ended, from the final state (see [`SagaJudge`]).
pub fn saga_outcomes(state: &FinalState) -> SagaOutcomes {
    let judge = SagaJudge::new(state);
    let mut s = SagaOutcomes::default();
    for end in state.orders.iter().filter_map(|o| judge.judge(o)) {
        tally(&mut s, end);
    }
    s
}

/// A histogram's percentile curve, in milliseconds: HdrHistogram's
/// quantile iteration (5 steps per halving of the distance to 100%), so
/// the tail gets as many points as the body. At most a few hundred points
/// whatever the count.
fn distribution(h: &Histogram<u64>) -> Vec<PercentilePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| PercentilePoint {
            percentile: v.quantile_iterated_to() * 100.0,
            ms: v.value_iterated_to() as f64 / 1000.0,
        })
        .collect()
}

/// A request the gateway refused at its edge (401, 429): counted as
/// rejected, not among the errors.
fn rejected(op: &Operation) -> bool {
    op.outcome == Outcome::Fail && matches!(op.status, Some(401 | 429))
}

/// The kind of a failed or unknown operation, as reports count them.
fn error_kind(op: &Operation) -> String {
    match (op.outcome, op.status) {
        (_, Some(status)) => status.to_string(),
        (Outcome::Unknown, None) => "unknown (no answer)".to_string(),
        _ => "no connection".to_string(),
    }
}

/// The report of a run made of `legs`; baseline gates read `baseline`.
pub fn report(
    scenario: &Scenario,
    legs: &[Leg],
    interrupted: bool,
    baseline: Option<&Metrics>,
) -> Report {
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
        let own = leg.state.as_ref().map(|state| own_state(leg, state));
        flows.insert(
            leg.flow.to_string(),
            flow_report(leg, &flow_acc, own.as_ref()),
        );
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
                && op
                    .intended_us
                    .is_some_and(|i| i >= leg.load.measured_from_us);
            if !measured || op.outcome == Outcome::Ok || rejected(op) {
                continue;
            }
            let error = error_kind(op);
            *errors
                .entry((leg.flow.to_string(), op.kind.endpoint().to_string(), error))
                .or_default() += 1;
        }

        // Breakers.
        breakers.extend(
            leg.breakers
                .transitions(leg.measured_from_unix_ms)
                .into_iter()
                .map(|mut t| {
                    t.flow = Some(leg.flow.to_string());
                    t
                }),
        );
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
            faults.push(FaultEvent {
                flow: Some(leg.flow.to_string()),
                step: r.step,
                phase: Some(match r.phase {
                    crate::timeline::Phase::Applied => FaultPhase::Applied,
                    crate::timeline::Phase::Undone => FaultPhase::Undone,
                }),
                at_ms: r.at_ms,
                unix_ms: r.unix_ms,
                action: r.action.clone(),
                error: r.error.clone(),
                skipped: None,
            });
        }
        for (step, at_ms, why) in &leg.skipped_faults {
            faults.push(FaultEvent {
                flow: Some(leg.flow.to_string()),
                step: *step,
                at_ms: *at_ms,
                skipped: Some(why.clone()),
                ..FaultEvent::default()
            });
        }

        // Invariants, on this leg's own history and state.
        if !leg.quiesce.settled || !leg.problems.is_empty() || leg.interrupted {
            partial = true;
        }
        match (&leg.state, &own) {
            (Some(state), Some(own)) => {
                let o = OrderCounts::from_run(&leg.history, own);
                orders.placed += o.placed;
                orders.acknowledged += o.acknowledged;
                orders.confirmed += o.confirmed;
                orders.cancelled += o.cancelled;
                orders.pending += o.pending;
                orders.lost += o.lost;
                let s = saga_outcomes(own);
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
            _ => partial = true,
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
    let gates = gates::evaluate_against(&scenario.gates, &metrics, baseline);

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

    let source = scenario.source.clone().unwrap_or_default();
    let mut report = Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        scenario_file: source.file,
        scenario_source: source.text,
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
        baseline: None,
    };
    report.passed = report.verdict();
    report
}

/// This flow's own orders: on a system running elsewhere the state also
/// holds earlier runs' (and, with `both`, the other flow's).
fn own_state(leg: &Leg, state: &FinalState) -> FinalState {
    let since = leg
        .load
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    FinalState {
        orders: state
            .orders
            .iter()
            .filter(|o| o.created_at.is_none_or(|c| c >= since))
            .cloned()
            .collect(),
        ..state.clone()
    }
}

/// Written → terminal, for the orders written from `from_unix_ms` on, as
/// a histogram of microseconds.
fn settle_histogram(state: &FinalState, from_unix_ms: i64) -> Histogram<u64> {
    let mut h: Histogram<u64> = Histogram::new(3).unwrap_or_else(|_| unreachable!());
    for o in &state.orders {
        if let (Some(c), Some(s)) = (o.created_at, o.settled_at) {
            if c >= from_unix_ms {
                // Milliseconds, recorded as µs like every other histogram.
                let _ = h.record(((s - c).max(0) as u64).saturating_mul(1000));
            }
        }
    }
    h
}

/// The flow's report; `own` is its own orders' final state, when read.
fn flow_report(leg: &Leg, acc: &Acc, own: Option<&FinalState>) -> FlowReport {
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
                    distribution: distribution(&e.latency),
                },
            )
        })
        .collect();
    let mut windows: Vec<Window> = leg
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
                endpoints: w
                    .endpoints
                    .iter()
                    .map(|(name, e)| {
                        (
                            name.to_string(),
                            EndpointWindow {
                                requests: counts(&e.counts),
                                latency: latency(&e.latency),
                            },
                        )
                    })
                    .collect(),
                ..Window::default()
            }
        })
        .collect();
    // Errors by kind, by the second of their intended send time (as the
    // windows count them).
    for op in &leg.history.ops {
        let Some(intended) = op.intended_us else {
            continue;
        };
        if op.journey.is_none()
            || op.outcome == Outcome::Ok
            || rejected(op)
            || intended < leg.load.measured_from_us
        {
            continue;
        }
        let second = ((intended - leg.load.measured_from_us) / 1_000_000) as usize;
        if let Some(w) = windows.get_mut(second) {
            *w.errors.entry(error_kind(op)).or_default() += 1;
        }
    }
    let mut report = FlowReport {
        throughput: acc.throughput(),
        requests: acc.counts(),
        latency: latency(&acc.latency),
        endpoints,
        retries: leg.retries.clone(),
        outbox: leg.outbox.clone(),
        events: leg.events_delta.clone().unwrap_or_default(),
        ..FlowReport::default()
    };
    if let Some(state) = own {
        let from = leg.measured_from_unix_ms;
        let settle = settle_histogram(state, from);
        report.settle = latency(&settle);
        report.settle_distribution = distribution(&settle);
        report.saga = Some(saga_outcomes(state));
        // Each order by the window it was placed in: how it ended, and
        // how long it took.
        let judge = SagaJudge::new(state);
        let mut settles: Vec<Histogram<u64>> = windows
            .iter()
            .map(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
            .collect();
        for o in &state.orders {
            let Some(created) = o.created_at.filter(|c| *c >= from) else {
                continue;
            };
            let second = ((created - from) / 1000) as usize;
            let Some(w) = windows.get_mut(second) else {
                continue;
            };
            if let Some(end) = judge.judge(o) {
                tally(&mut w.saga, end);
            }
            if let Some(settled) = o.settled_at {
                let _ = settles[second].record(((settled - created).max(0) as u64) * 1000);
            }
        }
        for (w, h) in windows.iter_mut().zip(&settles) {
            w.settle = latency(h);
        }
    }
    report.windows = windows;
    report
}
