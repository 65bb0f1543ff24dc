//! Driving one flow's run on a system that is up: stock the catalog, run
//! the load with the fault timeline alongside (sampling all the while),
//! heal, quiesce, read the system back, and gather it all into a `Leg`.
//! The drive loop is `run_faults`: the timeline waits for the measured
//! start, runs to the load's end or an interruption, then heals.

use std::sync::Arc;
use std::time::Duration;

use gauntlet_loadgen as loadgen;
use gauntlet_reports::scenario::Scenario;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::accounts::event_accounts;
use super::attach::Sut;
use super::history::to_history;
use super::leg::{Leg, LegError};
use super::plan;
use super::progress::ProgressLine;
use super::quiesce::{quiesce, INTERRUPTED_QUIESCE};
use super::readback::{read_back, ReadBack};
use super::sample::{sample, sample_once, Samples, Series};
use super::steps::FlowSteps;
use super::stock::stock_catalog;
use crate::timeline::{FaultRecord, Services, Target, Timeline};

/// Runs `flow` on `sut` through to its results; the system is started
/// and stopped by the caller.
pub(super) async fn drive(
    scenario: &Scenario,
    flow: loadgen::Flow,
    flow_name: &'static str,
    sut: &Sut,
    steps: FlowSteps,
    interrupt: CancellationToken,
    progress: Arc<ProgressLine>,
) -> Result<Leg, LegError> {
    let FlowSteps {
        steps,
        kept,
        skipped: skipped_faults,
    } = steps;
    let uses_events = flow == loadgen::Flow::Async;
    let http = sut.probe.http.clone();
    let services = sut.probe.clone();
    // The sync flow does not use the event path, even where there is one.
    let bootstrap = sut.bootstrap.clone().filter(|_| uses_events);
    // What the topics held before this run, on a system that keeps its
    // state (a fresh one holds nothing): the run's own dead letters are
    // the difference.
    let attached = matches!(sut.services, Services::External { .. });
    let events_before = match bootstrap.as_deref() {
        Some(b) if attached => event_accounts(b).await?,
        _ => Vec::new(),
    };

    // Breakers and lag, sampled until the system is read back.
    let sampling = CancellationToken::new();
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = tokio::spawn(sample(
        services.clone(),
        uses_events,
        samples.clone(),
        sampling.clone(),
    ));

    let load_len = scenario.load.duration();
    let mut load_config = plan::load_config(scenario, flow, &sut.gateway_url);
    load_config.run_tag = sut.run_tag.clone();
    let (started_tx, started_rx) = oneshot::channel();
    let load_cancel = interrupt.child_token();
    let measured_from: Arc<Mutex<Option<Instant>>> = Arc::default();
    let timeline = Timeline::new(
        steps.clone(),
        Target {
            network: sut.network.clone(),
            services: sut.services.clone(),
            http: http.clone(),
        },
    );

    progress.phase(flow_name, "stocking the catalog");
    stock_catalog(
        &http,
        &sut.gateway_url,
        scenario.seed,
        load_config.token.as_ref(),
    )
    .await?;

    progress.phase(flow_name, "setting up the load");
    let line = progress.clone();
    let shown_from = measured_from.clone();
    let shown_steps = steps.clone();
    let load = loadgen::run_load_observed(
        load_config,
        load_cancel.clone(),
        move |p| {
            let into = shown_from
                .lock()
                .map(|m| Instant::now().saturating_duration_since(m));
            let active = into
                .map(|t| plan::active_at(&shown_steps, t, load_len))
                .unwrap_or_default();
            line.load(flow_name, &p, into, load_len, &active);
        },
        Some(started_tx),
    );
    let faults = run_faults(
        timeline,
        started_rx,
        &measured_from,
        &samples,
        &interrupt,
        load_len,
    );
    let (load, timeline) = tokio::join!(load, faults);
    let load = match load {
        Ok(l) => l,
        Err(e) => {
            sampling.cancel();
            let _ = sampler.await;
            return Err(LegError::Load(e.to_string()));
        }
    };
    let interrupted = interrupt.is_cancelled() || load.cancelled;

    progress.phase(flow_name, "quiescing");
    let bound = if interrupted {
        INTERRUPTED_QUIESCE
    } else {
        scenario.quiesce
    };
    let quiesce = quiesce(&services, bootstrap.as_deref(), bound, &interrupt).await;

    progress.phase(flow_name, "reading the final state");
    let ReadBack {
        state,
        events_delta,
        problems,
    } = read_back(&services, bootstrap.as_deref(), &events_before).await;
    // One last sample after quiescing: the final lag and breaker records.
    sampling.cancel();
    let _ = sampler.await;
    sample_once(&services, uses_events, &samples).await;

    let samples = std::mem::take(&mut *samples.lock());
    let origin = samples
        .origin_unix_ms
        .unwrap_or_else(gauntlet_system::db::now_ms);
    let history = to_history(&load.history, flow_name, state.as_ref());
    let Series {
        lag,
        retries,
        outbox,
    } = samples.series(flow_name, origin);
    Ok(Leg {
        flow: flow_name,
        history,
        state,
        breakers: samples.breakers,
        lag,
        lag_summary: samples.lag_summary,
        retries,
        outbox,
        faults: timeline
            .records()
            .iter()
            .map(|r| FaultRecord {
                step: kept.get(r.step).copied().unwrap_or(r.step),
                ..r.clone()
            })
            .collect(),
        events_delta,
        skipped_faults,
        quiesce,
        interrupted,
        measured_from_unix_ms: origin,
        problems,
        load,
    })
}

/// The fault timeline alongside the load: it waits for the measured
/// start, runs until the load's end (or an interruption), and heals
/// before the load drains, so journeys in flight finish on a healthy
/// system. Returns the timeline, for its records.
async fn run_faults(
    mut timeline: Timeline,
    started: oneshot::Receiver<loadgen::LoadStart>,
    measured_from: &Mutex<Option<Instant>>,
    samples: &Mutex<Samples>,
    interrupt: &CancellationToken,
    load_len: Duration,
) -> Timeline {
    let Ok(start) = started.await else {
        // The load never started: nothing to inject.
        return timeline;
    };
    *measured_from.lock() = Some(start.measured_from);
    samples.lock().origin_unix_ms = Some(
        gauntlet_system::db::now_ms()
            + start
                .measured_from
                .saturating_duration_since(Instant::now())
                .as_millis() as i64,
    );
    tokio::select! {
        _ = tokio::time::sleep_until(start.measured_from) => {}
        _ = interrupt.cancelled() => return timeline,
    }
    let end = start.measured_from + load_len;
    let stop = interrupt.child_token();
    tokio::select! {
        _ = timeline.run(&stop) => {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => {}
                _ = interrupt.cancelled() => {}
            }
        }
        _ = tokio::time::sleep_until(end) => {}
        _ = interrupt.cancelled() => {}
    }
    // Heal before the load drains, so journeys in flight finish on a
    // healthy system.
    timeline.heal().await;
    timeline
}
