//! `gauntlet run`: a scenario from start to verdict.
//!
//! For each flow the scenario names (`both` is sync, then async, on fresh
//! state with the same seed, load and faults): start the system with a
//! fault proxy on every link → warm up → load and fault timeline together
//! → heal → let the load drain → quiesce within the bound → read the final
//! state back from every service and the broker. Then the invariants run
//! on each flow's history and state, the gates on the figures of all of
//! them, and `report.json` and `junit.xml` go to the run directory.
//!
//! # Layout
//!
//! - `plan.rs`: the scenario as system, load and timeline configurations;
//! - `preflight.rs`: what those configurations cannot take, found first;
//! - `leg.rs`: one flow's run, step by step, and what it produced; each
//!   step in a file of its own, in the order they run:
//!   - `steps.rs`: the fault steps the flow runs (sync has no event path);
//!   - `attach.rs`: start the system fresh, or attach to one running
//!     elsewhere and give its provider the scenario's behaviour;
//!   - `drive.rs`: the run itself: stock, load with the fault timeline
//!     alongside, heal, quiesce, read back, gather the results;
//!   - `stock.rs`: the catalog the load orders from;
//!   - `sample.rs`: breakers, retries, lag and outboxes sampled while it
//!     runs, merged across service restarts;
//!   - `quiesce.rs`: waiting for the system to settle, and what settled is;
//!   - `readback.rs`: the final state, and this run's event accounts;
//!   - `history.rs`: the load generator's operations as the report's
//!     history;
//! - `collect.rs`: reading the system back over HTTP;
//! - `accounts.rs`: the event path's accounts, from the broker;
//! - `figures/`: the report and the metrics gates read, from the legs,
//!   one file per section of the report;
//! - `files.rs`: the run directory, and the baseline a run keeps;
//! - `progress.rs`, `summary.rs`: what the terminal shows.

mod accounts;
mod attach;
mod collect;
mod drive;
mod figures;
mod files;
mod history;
mod leg;
pub mod plan;
pub mod preflight;
mod progress;
mod quiesce;
mod readback;
mod sample;
mod steps;
mod stock;
mod summary;

use std::path::PathBuf;
use std::sync::Arc;

use gauntlet_model::Flow;
use gauntlet_reports::compare::{self, CompareOptions};
use gauntlet_reports::scenario::Scenario;
use gauntlet_reports::{html, write_json, write_junit, Report};
use tokio_util::sync::CancellationToken;

pub use files::safe_name;
use files::{run_dir, save_baseline};
pub use leg::LegError;
pub use progress::ProgressLine;
pub use summary::summary;

/// Where run directories go unless told otherwise.
pub const DEFAULT_OUT_DIR: &str = "runs";

/// How a run is carried out.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run directories are created under this one.
    pub out_dir: PathBuf,
    /// Show the live progress line.
    pub progress: bool,
    /// Compare the run with this one (and let baseline gates read it); a
    /// regression fails the run.
    pub baseline: Option<Baseline>,
    /// Keep the run's report here as the next baseline.
    pub save_baseline: Option<PathBuf>,
}

/// A run to compare with.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub report: Report,
    /// Where it was read from, for people.
    pub source: PathBuf,
    pub options: CompareOptions,
}

/// A finished (or interrupted) run.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: Report,
    /// The run directory.
    pub dir: PathBuf,
    pub report_json: PathBuf,
    pub junit_xml: PathBuf,
    pub report_html: PathBuf,
    /// How each flow settled, and anything that made the run partial.
    pub notes: Vec<String>,
}

/// Why a run produced no verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the scenario cannot run: {0}")]
    Invalid(String),
    #[error("the {flow} flow could not run: {source}")]
    Leg {
        flow: Flow,
        #[source]
        source: LegError,
    },
    #[error(transparent)]
    Write(#[from] gauntlet_reports::ReportError),
    #[error("cannot save the baseline in {path}: {source}")]
    SaveBaseline {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the run directory {path}: {source}")]
    RunDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The longest a run of `scenario` may take before it is given up on:
/// per flow, its warm-up, load and quiesce bound, plus generous room for
/// start-up, the load's drain and reading the system back. A run past it
/// is a harness fault (something waits for ever), never a slow system:
/// the quiesce bound already covers that.
pub fn time_bound(scenario: &Scenario) -> std::time::Duration {
    let per_flow = scenario.load.warmup
        + scenario.load.duration()
        + scenario.quiesce
        + std::time::Duration::from_secs(150);
    per_flow * scenario.system.flow.flows().len() as u32
}

/// Runs a checked scenario; `interrupt` (Ctrl-C) heals, stops and keeps
/// what was measured, marked partial.
pub async fn run(
    scenario: &Scenario,
    opts: &RunOptions,
    interrupt: CancellationToken,
) -> Result<RunOutcome, RunError> {
    let problems = preflight::preflight(scenario);
    if !problems.is_empty() {
        return Err(RunError::Invalid(problems.join("; ")));
    }
    let dir = run_dir(&opts.out_dir, &scenario.name)?;
    let progress = Arc::new(ProgressLine::new(opts.progress));
    let mut legs = Vec::new();
    for &flow in scenario.system.flow.flows() {
        if interrupt.is_cancelled() {
            break;
        }
        let data = dir.join(flow.as_str()).join("data");
        let leg = leg::run_leg(scenario, flow, data, interrupt.clone(), progress.clone()).await;
        progress.clear();
        match leg {
            Ok(leg) => legs.push(leg),
            Err(source) => return Err(RunError::Leg { flow, source }),
        }
    }
    let mut notes = Vec::new();
    for leg in &legs {
        let q = &leg.quiesce;
        if q.settled {
            notes.push(format!(
                "{}: settled {:.1}s after the load",
                leg.flow,
                q.took.as_secs_f64()
            ));
        } else {
            notes.push(format!(
                "{}: did not settle within {:.1}s: {}",
                leg.flow,
                q.took.as_secs_f64(),
                q.waiting_on.as_deref().unwrap_or("interrupted")
            ));
        }
        if leg.interrupted {
            notes.push(format!("{}: interrupted; faults healed", leg.flow));
        }
        if leg.load.missed_arrivals > 0 {
            notes.push(format!(
                "{}: {} arrivals never started: all {} users were busy (their wait is in the latency)",
                leg.flow, leg.load.missed_arrivals, leg.load.users
            ));
        }
        for p in &leg.problems {
            notes.push(format!("{}: {p}", leg.flow));
        }
    }
    // Each flow's client history, Jepsen style, next to its databases.
    for leg in &legs {
        let path = dir.join(leg.flow).join("history.json");
        let written = serde_json::to_vec(&leg.history)
            .map_err(std::io::Error::other)
            .and_then(|json| {
                std::fs::create_dir_all(dir.join(leg.flow))?;
                std::fs::write(&path, json)
            });
        if let Err(e) = written {
            notes.push(format!(
                "{}: cannot write {}: {e}",
                leg.flow,
                path.display()
            ));
        }
    }
    let baseline = opts.baseline.as_ref();
    let mut report = figures::report(
        scenario,
        &legs,
        interrupt.is_cancelled(),
        baseline.map(|b| &b.report.metrics),
    );
    if let Some(b) = baseline {
        match compare::compare(&b.report, &report, &b.options) {
            Ok(mut c) => {
                c.base.source = b.source.display().to_string();
                c.new.source = dir.display().to_string();
                report.baseline = Some(c);
            }
            // Checked before the run started; should the run itself have
            // nothing to compare (no flow finished), say so and fail.
            Err(e) => {
                notes.push(format!("baseline: {e}"));
                report.partial = true;
            }
        }
    }
    report.passed = report.verdict();
    let report_json = write_json(&dir, &report)?;
    let junit_xml = write_junit(&dir, &report)?;
    let report_html = html::write_html(&dir, &report)?;
    if let Some(keep) = &opts.save_baseline {
        save_baseline(&dir, keep)?;
        notes.push(format!("saved as the baseline in {}", keep.display()));
    }
    Ok(RunOutcome {
        report,
        dir,
        report_json,
        junit_xml,
        report_html,
        notes,
    })
}
