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
//! - `collect.rs`: reading the system back (HTTP and broker);
//! - `figures/`: the report and the metrics gates read, from the legs,
//!   one file per section of the report;
//! - `progress.rs`, `summary.rs`: what the terminal shows.

mod attach;
mod collect;
mod drive;
mod figures;
mod history;
mod leg;
pub mod plan;
mod progress;
mod quiesce;
mod readback;
mod sample;
mod steps;
mod stock;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gauntlet_model::Flow;
use gauntlet_reports::compare::{self, CompareOptions};
use gauntlet_reports::scenario::Scenario;
use gauntlet_reports::{html, write_json, write_junit, Report};
use tokio_util::sync::CancellationToken;

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
    let problems = plan::preflight(scenario);
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

/// Copies a run's reports into `keep` (created; earlier ones replaced),
/// where `run --baseline` and `compare` read them.
fn save_baseline(dir: &Path, keep: &Path) -> Result<(), RunError> {
    let err = |source| RunError::SaveBaseline {
        path: keep.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(keep).map_err(err)?;
    for name in [
        gauntlet_reports::report::REPORT_JSON,
        html::REPORT_HTML,
        gauntlet_reports::junit::JUNIT_XML,
    ] {
        std::fs::copy(dir.join(name), keep.join(name)).map_err(err)?;
    }
    Ok(())
}

/// A scenario name as a file name: anything but ASCII letters, digits,
/// `-` and `_` becomes `-`.
pub fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `<out>/<scenario>-<UTC timestamp>`, new (a suffix if two runs start in
/// the same second).
fn run_dir(out: &Path, name: &str) -> Result<PathBuf, RunError> {
    let stamp = utc_stamp(std::time::SystemTime::now());
    let safe = safe_name(name);
    std::fs::create_dir_all(out).map_err(|source| RunError::RunDir {
        path: out.to_path_buf(),
        source,
    })?;
    for n in 1.. {
        let leaf = if n == 1 {
            format!("{safe}-{stamp}")
        } else {
            format!("{safe}-{stamp}-{n}")
        };
        let path = out.join(leaf);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(RunError::RunDir { path, source }),
        }
    }
    unreachable!("the loop returns")
}

/// `YYYYMMDDTHHMMSSZ` in UTC: humantime's RFC 3339 form
/// (`2026-11-21T08:26:30Z`) without its separators.
fn utc_stamp(t: std::time::SystemTime) -> String {
    use std::time::{Duration, UNIX_EPOCH};
    // humantime formats 1970 to 9999 and panics outside: a clock before
    // 1970 names the directory by the epoch, as it always has.
    const LAST: Duration = Duration::from_secs(253_402_300_799); // 9999-12-31T23:59:59Z
    let t = t.clamp(UNIX_EPOCH, UNIX_EPOCH + LAST);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn run_directories_are_named_by_utc_time() {
        // 2026-11-21 08:26:30 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_249_590);
        assert_eq!(utc_stamp(t), "20261121T082630Z");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_stamp(t), "20000229T000000Z");
    }

    #[test]
    fn two_runs_in_one_second_get_two_directories() {
        let out = tempfile::tempdir().unwrap();
        let a = run_dir(out.path(), "quick start").unwrap();
        let b = run_dir(out.path(), "quick start").unwrap();
        assert_ne!(a, b);
        assert!(a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("quick-start-"));
    }
}
