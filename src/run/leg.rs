//! One flow's run on fresh state: bring the system up, load it with the
//! fault timeline alongside, heal, let it quiesce, read everything back,
//! stop it. This file is the order of those steps and what they produce;
//! each step has a file of its own (`steps.rs`, `attach.rs`, `drive.rs`
//! and those it calls, listed in `run/mod.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gauntlet_loadgen as loadgen;
use gauntlet_reports::history::History;
use gauntlet_reports::report::{LagSample, OutboxSample, RetrySample};
use gauntlet_reports::scenario::Scenario;
use gauntlet_reports::state::{FinalState, TopicEvents};
use tokio_util::sync::CancellationToken;

use super::attach;
use super::collect::BreakerLog;
use super::drive;
use super::plan;
use super::progress::ProgressLine;
use super::steps;
use crate::timeline::FaultRecord;

/// Why a flow could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    #[error("cannot start the system: {0}")]
    Start(String),
    #[error("cannot start the system: {0}")]
    Provider(#[from] super::attach::ProviderError),
    #[error("cannot start the system: {0}")]
    Stock(#[from] super::stock::StockError),
    #[error("cannot start the system: reading the event path: {0}")]
    Accounts(#[from] super::accounts::AccountError),
    #[error("the load generator could not run: {0}")]
    Load(String),
}

/// How settling went.
#[derive(Debug, Clone, Default)]
pub struct Quiesce {
    pub settled: bool,
    pub took: Duration,
    /// What was still moving at the bound.
    pub waiting_on: Option<String>,
}

/// Everything one flow's run produced.
pub struct Leg {
    /// `sync` or `async`.
    pub flow: &'static str,
    pub load: loadgen::LoadResult,
    pub history: History,
    pub state: Option<FinalState>,
    pub breakers: BreakerLog,
    /// Lag samples, `at_ms` from the measured start.
    pub lag: Vec<LagSample>,
    /// Per group: the largest lag seen, and the lag after quiescing.
    pub lag_summary: BTreeMap<String, (u64, u64)>,
    /// Retries per link per sampling interval, `at_ms` from the measured start.
    pub retries: Vec<RetrySample>,
    /// Outbox backlogs over time, `at_ms` from the measured start.
    pub outbox: Vec<OutboxSample>,
    pub faults: Vec<FaultRecord>,
    /// Per topic and group, what this run produced, consumed and
    /// dead-lettered (the final state holds the topics' whole history).
    pub events_delta: Option<Vec<TopicEvents>>,
    /// Fault steps left out of this flow (event-path faults on a sync run).
    /// (index in the scenario's steps, when it was due in ms, why).
    pub skipped_faults: Vec<(usize, u64, String)>,
    pub quiesce: Quiesce,
    pub interrupted: bool,
    /// Unix milliseconds at the start of the measured load.
    pub measured_from_unix_ms: i64,
    /// Problems reading the system back.
    pub problems: Vec<String>,
}

impl Leg {
    /// Seconds of measured load.
    pub fn measured_secs(&self) -> f64 {
        (self
            .load
            .measured_until_us
            .saturating_sub(self.load.measured_from_us)) as f64
            / 1e6
    }
}

/// Runs `scenario` in `flow` on a fresh system whose databases go under
/// `data_dir`.
pub async fn run_leg(
    scenario: &Scenario,
    flow: loadgen::Flow,
    data_dir: PathBuf,
    interrupt: CancellationToken,
    progress: Arc<ProgressLine>,
) -> Result<Leg, LegError> {
    let flow_name = flow.as_str();
    let uses_events = flow.uses_events();
    let config = plan::system_config(scenario).map_err(|e| LegError::Start(e.to_string()))?;
    let steps = steps::flow_steps(scenario.faults.clone(), uses_events);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| LegError::Start(format!("cannot build an HTTP client: {e}")))?;

    let (sut, stack) = match &scenario.system.external {
        Some(external) => {
            progress.phase(flow_name, "attaching to the system");
            let sut = attach::attach(external, flow_name, &http);
            attach::set_provider(&sut, scenario).await?;
            (sut, None)
        }
        None => {
            progress.phase(flow_name, "starting the system");
            let (sut, stack) = attach::start(data_dir, config, uses_events, &http).await?;
            (sut, Some(stack))
        }
    };
    let result = drive::drive(
        scenario,
        flow,
        flow_name,
        &sut,
        steps,
        interrupt,
        progress.clone(),
    )
    .await;
    if let Some(mut stack) = stack {
        progress.phase(flow_name, "stopping the system");
        stack.stop().await;
    }
    result
}
