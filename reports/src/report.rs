//! `report.json`: a run's results for machines (CI, `compare`). The HTML
//! report draws the same figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::gates::GateResult;
use crate::invariants::InvariantResult;
use crate::machine::Machine;
use crate::metrics::{Counts, Latency, Metrics, SagaOutcomes};
use crate::state::TopicEvents;

/// The file name of the JSON report in a run directory.
pub const REPORT_JSON: &str = "report.json";

/// Why a report could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create the run directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a report: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot serialise the report: {0}")]
    Serialise(#[source] serde_json::Error),
}

/// Everything a run found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    pub description: String,
    /// The scenario file as given on the command line, and its text, so a
    /// report says exactly what ran.
    pub scenario_file: String,
    pub scenario_source: String,
    pub seed: u64,
    /// When the measured load started, Unix milliseconds.
    pub started_unix_ms: i64,
    /// How long the measured load ran, in milliseconds.
    pub duration_ms: u64,
    pub machine: Machine,
    /// Per flow (`sync`, `async`): throughput and latency, overall and per
    /// time window.
    pub flows: BTreeMap<String, FlowReport>,
    /// Errors by endpoint and kind.
    pub errors: Vec<ErrorCount>,
    /// Every circuit-breaker transition, in time order within each flow.
    pub breakers: Vec<BreakerTransition>,
    pub saga: Option<SagaOutcomes>,
    /// Dead-lettering per topic (async runs).
    pub dlq: Vec<DlqCount>,
    /// Consumer lag over time (async runs).
    pub lag: Vec<LagSample>,
    /// The fault timeline's records (applied / undone, with times), and
    /// the steps a flow left out.
    pub faults: Vec<FaultEvent>,
    pub invariants: Vec<InvariantResult>,
    pub gates: Vec<GateResult>,
    /// The figures the gates read.
    pub metrics: Metrics,
    /// The comparison with a baseline run, when `run --baseline` gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::compare::Comparison>,
    /// True when the run stopped early (interrupted, or the system never
    /// quiesced): its figures are incomplete.
    pub partial: bool,
    /// Every gate and invariant held and the run is complete. Recomputed
    /// when the report is written, so the file never contradicts itself.
    pub passed: bool,
}

impl Report {
    /// Every gate and invariant held, the run was not cut short, and
    /// nothing regressed against the baseline (when there was one).
    pub fn verdict(&self) -> bool {
        !self.partial
            && self.gates.iter().all(|g| g.passed)
            && self.invariants.iter().all(|i| i.passed)
            && !self.baseline.as_ref().is_some_and(|c| c.regressed)
    }
}

/// One flow's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowReport {
    /// Operations acknowledged per second over the measured load.
    pub throughput: f64,
    pub requests: Counts,
    /// Milliseconds.
    pub latency: Latency,
    /// Per endpoint (`"POST /api/orders"`).
    pub endpoints: BTreeMap<String, EndpointReport>,
    /// From an order being written to it being terminal, as the orders
    /// database records both, for the orders placed in the measured load:
    /// what a client waits for the outcome in either flow (the sync client
    /// inside its request, the async one by polling or being told).
    pub settle: Latency,
    /// The settle time's percentile curve (milliseconds), as
    /// [`Distribution`] describes.
    pub settle_distribution: Vec<PercentilePoint>,
    /// How this flow's sagas ended.
    pub saga: Option<SagaOutcomes>,
    /// Consecutive time windows, for the over-time charts.
    pub windows: Vec<Window>,
    /// Retried attempts per link, per sampling interval (async and sync).
    pub retries: Vec<RetrySample>,
    /// Events outstanding in each service's outbox over time (async).
    pub outbox: Vec<OutboxSample>,
    /// Per topic and consumer group: produced, consumed and dead-lettered
    /// in this flow's run (async).
    pub events: Vec<TopicEvents>,
}

/// One point of a latency percentile curve: `percentile` (0–100) of the
/// operations took at most `ms`. The points are HdrHistogram's
/// `iter_quantiles` steps, so they crowd towards the tail, where a log
/// "1 / (1 − q)" axis spreads them out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PercentilePoint {
    pub percentile: f64,
    pub ms: f64,
}

/// Retries on one link within one sampling interval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrySample {
    /// Milliseconds since the measured load started (the interval's end).
    pub at_ms: u64,
    pub link: String,
    /// Retried attempts since the previous sample.
    pub retries: u64,
}

/// One service's outbox backlog at one time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxSample {
    /// Milliseconds since the measured load started.
    pub at_ms: u64,
    pub service: String,
    /// Events written but not yet published.
    pub backlog: u64,
}

/// One endpoint's figures within a flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointReport {
    pub requests: Counts,
    pub latency: Latency,
    /// The percentile curve of the latency (milliseconds).
    pub distribution: Vec<PercentilePoint>,
}

/// One time window of a flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Window {
    /// Milliseconds since the measured load started.
    pub start_ms: u64,
    pub end_ms: u64,
    pub requests: Counts,
    /// Operations acknowledged per second within the window.
    pub throughput: f64,
    pub latency: Latency,
    /// Failed and unknown operations by kind: an HTTP status (`"503"`),
    /// `"unknown (no answer)"` or `"no connection"`.
    pub errors: BTreeMap<String, u64>,
    /// Per endpoint, the same figures (for per-endpoint noise estimates).
    pub endpoints: BTreeMap<String, EndpointWindow>,
    /// Orders placed in this window, by how their saga ended (from the
    /// orders' final state).
    pub saga: SagaOutcomes,
    /// Written → terminal for the orders placed in this window.
    pub settle: Latency,
}

/// One endpoint within one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointWindow {
    pub requests: Counts,
    pub latency: Latency,
}

/// How often one endpoint failed one way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    pub endpoint: String,
    /// An HTTP status (`"503"`) or a client-side kind (`"timeout"`).
    pub error: String,
    pub count: u64,
}

/// A breaker changing state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerTransition {
    /// The flow whose run it happened in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    pub link: String,
    /// `CLOSED`, `OPEN` or `HALF_OPEN`.
    pub from: String,
    pub to: String,
    /// Milliseconds since the measured load started.
    pub at_ms: u64,
}

/// Dead-lettering on one topic, counted per delivery: every consumer
/// group reading the topic handles (or dead-letters) its own copy of each
/// event, so a topic read by three groups has three deliveries per event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DlqCount {
    pub topic: String,
    /// Deliveries: events produced × groups reading the topic.
    pub produced: u64,
    /// Deliveries that ended in `<topic>.dlq`.
    pub dead_lettered: u64,
    /// dead_lettered / produced (0 when nothing was produced).
    pub rate: f64,
}

/// A consumer group's lag at one time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagSample {
    /// The flow whose run it was sampled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// Milliseconds since the measured load started.
    pub at_ms: u64,
    pub group: String,
    /// Messages behind.
    pub lag: u64,
}

/// Whether a fault step was put in force or taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultPhase {
    Applied,
    Undone,
}

/// One thing the fault timeline did (or a step a flow left out).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultEvent {
    /// The flow whose run it happened in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// The step's index in the scenario's `[[faults]]`.
    pub step: usize,
    /// `None` for a step the flow left out (see `skipped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<FaultPhase>,
    /// Milliseconds since the measured load started.
    pub at_ms: u64,
    pub unix_ms: i64,
    /// What was done, for people (`orders->payments down`).
    pub action: String,
    /// Why applying or undoing it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the flow left the step out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A span of time a fault was in force, for shading charts.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub flow: Option<String>,
    pub step: usize,
    pub action: String,
    pub from_ms: u64,
    /// `None`: never undone within the records (in force to the end).
    pub to_ms: Option<u64>,
}

impl Report {
    /// The windows each fault step was in force, per flow, in the order
    /// they were applied.
    pub fn fault_windows(&self) -> Vec<FaultWindow> {
        let mut out: Vec<FaultWindow> = Vec::new();
        for f in &self.faults {
            match f.phase {
                Some(FaultPhase::Applied) if f.error.is_none() => out.push(FaultWindow {
                    flow: f.flow.clone(),
                    step: f.step,
                    action: f.action.clone(),
                    from_ms: f.at_ms,
                    to_ms: None,
                }),
                Some(FaultPhase::Undone) => {
                    if let Some(w) = out
                        .iter_mut()
                        .rev()
                        .find(|w| w.flow == f.flow && w.step == f.step && w.to_ms.is_none())
                    {
                        w.to_ms = Some(f.at_ms.max(w.from_ms));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// Writes `report.json` into `dir` (created if needed); returns its path.
/// `passed` is set from [`Report::verdict`].
pub fn write_json(dir: impl AsRef<Path>, report: &Report) -> Result<PathBuf, ReportError> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut sealed = report.clone();
    sealed.passed = report.verdict();
    let json = serde_json::to_vec_pretty(&sealed).map_err(ReportError::Serialise)?;
    let path = dir.join(REPORT_JSON);
    write_atomically(&path, &json)?;
    Ok(path)
}

/// Reads a `report.json` back (for `report` and `compare`). `path` may
/// be the file or the run directory holding it.
pub fn read_json(path: impl AsRef<Path>) -> Result<Report, ReportError> {
    let given = path.as_ref();
    let path = if given.is_dir() {
        given.join(REPORT_JSON)
    } else {
        given.to_path_buf()
    };
    let path = path.as_path();
    let bytes = std::fs::read(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ReportError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The run directory a report path names: a directory is its own, a file
/// is in its parent (`.` for a bare file name).
pub fn run_dir_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes through a temporary file and a rename, so a reader never sees
/// half a report (a CI job polling the run directory, say).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = path.with_extension("tmp");
    let err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(flow: &str, step: usize, phase: FaultPhase, at_ms: u64) -> FaultEvent {
        FaultEvent {
            flow: Some(flow.into()),
            step,
            phase: Some(phase),
            at_ms,
            action: format!("step {step}"),
            ..FaultEvent::default()
        }
    }

    #[test]
    fn fault_windows_pair_applied_with_undone_per_flow_and_step() {
        let report = Report {
            faults: vec![
                event("sync", 0, FaultPhase::Applied, 1000),
                event("sync", 1, FaultPhase::Applied, 1500),
                event("sync", 0, FaultPhase::Undone, 3000),
                event("async", 0, FaultPhase::Applied, 1000),
                FaultEvent {
                    flow: Some("sync".into()),
                    step: 2,
                    skipped: Some("no event path".into()),
                    ..FaultEvent::default()
                },
            ],
            ..Report::default()
        };
        let w = report.fault_windows();
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].step, w[0].from_ms, w[0].to_ms), (0, 1000, Some(3000)));
        assert_eq!((w[1].step, w[1].to_ms), (1, None));
        assert_eq!(w[2].flow.as_deref(), Some("async"));
        assert_eq!(w[2].to_ms, None);
    }

    #[test]
    fn a_run_directory_reads_as_its_report() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report {
            scenario: "x".into(),
            ..Report::default()
        };
        write_json(dir.path(), &report).unwrap();
        assert_eq!(read_json(dir.path()).unwrap().scenario, "x");
        let err = read_json(dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
