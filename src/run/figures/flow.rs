//! One flow's report: each endpoint's figures, and the measured load
//! second by second (throughput, latency and errors, and how the orders
//! placed in each second ended and how long they took to settle).

use std::collections::BTreeMap;

use gauntlet_reports::history::Outcome;
use gauntlet_reports::report::{EndpointReport, EndpointWindow, FlowReport, Window};
use gauntlet_reports::state::FinalState;
use hdrhistogram::Histogram;

use super::errors::{error_kind, rejected};
use super::latency::{counts, distribution, latency, Acc};
use super::sagas::{saga_outcomes, tally, SagaJudge};
use crate::run::leg::Leg;

/// The flow's report: `acc` is its figures over the measured load (see
/// `latency::flow_acc`), `own` its own orders' final state, when read.
pub(super) fn flow_report(leg: &Leg, acc: &Acc, own: Option<&FinalState>) -> FlowReport {
    let mut windows = windows(leg);
    window_errors(leg, &mut windows);
    let mut report = FlowReport {
        throughput: acc.throughput(),
        requests: acc.counts(),
        latency: latency(&acc.latency),
        endpoints: endpoints(leg),
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
        window_orders(state, from, &mut windows);
    }
    report.windows = windows;
    report
}

/// Each endpoint's requests, latency and latency curve.
fn endpoints(leg: &Leg) -> BTreeMap<String, EndpointReport> {
    leg.load
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
        .collect()
}

/// The load generator's windows, a second each: requests, throughput and
/// latency, overall and per endpoint.
fn windows(leg: &Leg) -> Vec<Window> {
    leg.load
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
        .collect()
}

/// Errors by kind, by the second of their intended send time (as the
/// windows count them).
fn window_errors(leg: &Leg, windows: &mut [Window]) {
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
}

/// Each order written from `from` (unix ms) on, by the window it was
/// placed in: how its saga ended, and how long it took to settle.
fn window_orders(state: &FinalState, from: i64, windows: &mut [Window]) {
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
