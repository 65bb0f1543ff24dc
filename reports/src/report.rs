//! `report.json`: a run's results for machines (CI, `compare`). The HTML
//! report draws the same figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::gates::GateResult;
use crate::invariants::InvariantResult;
use crate::machine::Machine;
use crate::metrics::{Counts, Latency, Metrics, SagaOutcomes};

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
    /// Every circuit-breaker transition, in time order.
    pub breakers: Vec<BreakerTransition>,
    pub saga: Option<SagaOutcomes>,
    /// Dead-lettering per topic (async runs).
    pub dlq: Vec<DlqCount>,
    /// Consumer lag over time (async runs).
    pub lag: Vec<LagSample>,
    /// The fault timeline's records (applied / undone, with times), as the
    /// timeline wrote them.
    pub faults: Vec<serde_json::Value>,
    pub invariants: Vec<InvariantResult>,
    pub gates: Vec<GateResult>,
    /// The figures the gates read.
    pub metrics: Metrics,
    /// True when the run stopped early (interrupted, or the system never
    /// quiesced): its figures are incomplete.
    pub partial: bool,
    /// Every gate and invariant held and the run is complete. Recomputed
    /// when the report is written, so the file never contradicts itself.
    pub passed: bool,
}

impl Report {
    /// Every gate and invariant held, and the run was not cut short.
    pub fn verdict(&self) -> bool {
        !self.partial
            && self.gates.iter().all(|g| g.passed)
            && self.invariants.iter().all(|i| i.passed)
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
    /// Consecutive time windows, for the over-time charts.
    pub windows: Vec<Window>,
}

/// One endpoint's figures within a flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointReport {
    pub requests: Counts,
    pub latency: Latency,
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
    /// Milliseconds since the measured load started.
    pub at_ms: u64,
    pub group: String,
    /// Messages behind.
    pub lag: u64,
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

/// Reads a `report.json` back (for `compare`).
pub fn read_json(path: impl AsRef<Path>) -> Result<Report, ReportError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ReportError::Parse {
        path: path.to_path_buf(),
        source,
    })
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
