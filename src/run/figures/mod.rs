//! The report and the figures gates read, from the legs of a run.
//!
//! Targets: an endpoint (`POST /api/orders`) covers that endpoint in every
//! flow that ran; a flow (`sync`, `async`) covers every operation of that
//! flow's run; `all` covers every operation. Only the measured load counts
//! (warm-up and set-up are in the history, for the invariants, but not in
//! the figures). Throughput is operations acknowledged per second of
//! measured load.
//!
//! # Layout
//!
//! One file per section of the report; [`report`] calls each in turn.
//!
//! - `latency.rs`: latency, requests and throughput per target;
//! - `flow.rs`: each flow's report: its endpoints, and second by second
//!   its throughput, latency, errors and how its orders ended;
//! - `errors.rs`: errors in the measured load, by flow, endpoint and kind;
//! - `breakers.rs`: breaker transitions, opens and retries per link;
//! - `events.rs`: consumer lag, and dead letters per topic;
//! - `faults.rs`: the fault steps applied, undone and left out;
//! - `sagas.rs`: how each order's saga ended, from the final state;
//! - `invariants.rs`: order counts, sagas and the invariants, on each
//!   flow's own history and final state.

mod breakers;
mod errors;
mod events;
mod faults;
mod flow;
mod invariants;
mod latency;
mod sagas;

use std::collections::BTreeMap;

use gauntlet_reports::report::FlowReport;
use gauntlet_reports::scenario::Scenario;
use gauntlet_reports::state::FinalState;
use gauntlet_reports::{gates, Machine, Metrics, Report};

use crate::run::leg::Leg;

/// The report of a run made of `legs`; baseline gates read `baseline`.
pub fn report(
    scenario: &Scenario,
    legs: &[Leg],
    interrupted: bool,
    baseline: Option<&Metrics>,
) -> Report {
    // Per leg: its flow's figures, and its own orders (for its flow report
    // and its invariants).
    let accs: Vec<latency::Acc> = legs.iter().map(latency::flow_acc).collect();
    let owns: Vec<Option<FinalState>> = legs
        .iter()
        .map(|leg| {
            leg.state
                .as_ref()
                .map(|state| invariants::own_state(leg, state))
        })
        .collect();
    let flows: BTreeMap<String, FlowReport> = legs
        .iter()
        .zip(&accs)
        .zip(&owns)
        .map(|((leg, acc), own)| {
            (
                leg.flow.to_string(),
                flow::flow_report(leg, acc, own.as_ref()),
            )
        })
        .collect();
    let checked = invariants::check(legs, &owns);
    let delta = events::delta(legs);
    let (breaker_opened, retries) = breakers::per_link(legs);
    let has_events = legs.iter().any(|l| l.flow == "async");

    let metrics = Metrics {
        saga: checked.saga,
        breaker_opened,
        retries,
        events: has_events.then(|| delta.clone()),
        lag: has_events.then(|| events::lag_summary(legs)),
        orders: legs
            .iter()
            .any(|l| l.state.is_some())
            .then_some(checked.orders),
        invariants: Some(checked.violations),
        ..latency::by_target(legs, &accs)
    };
    let gates = gates::evaluate_against(&scenario.gates, &metrics, baseline);

    let source = scenario.source.clone().unwrap_or_default();
    let mut report = Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        scenario_file: source.file,
        scenario_source: source.text,
        seed: scenario.seed,
        started_unix_ms: legs.first().map_or(0, |l| l.measured_from_unix_ms),
        duration_ms: legs
            .iter()
            .map(|l| (l.measured_secs() * 1000.0) as u64)
            .sum(),
        machine: Machine::detect(),
        flows,
        errors: errors::errors(legs),
        breakers: breakers::transitions(legs),
        saga: checked.saga,
        dlq: events::dlq(&delta),
        lag: events::lag(legs),
        faults: faults::faults(legs),
        invariants: checked.invariants,
        gates,
        metrics,
        partial: interrupted || legs.iter().any(partial),
        passed: false,
        baseline: None,
    };
    report.passed = report.verdict();
    report
}

/// True when a leg's figures are not the whole story: it did not settle,
/// was interrupted, or could not be read back (in full).
fn partial(leg: &Leg) -> bool {
    !leg.quiesce.settled || !leg.problems.is_empty() || leg.interrupted || leg.state.is_none()
}
