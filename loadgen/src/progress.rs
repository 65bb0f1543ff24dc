//! What a run reports about once a second while it goes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading the catalog and creating customers.
    Setup,
    /// Load not yet measured.
    Warmup,
    /// Measured load.
    Load,
    /// The load has ended; journeys in flight finish.
    Drain,
}

/// A snapshot of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Since the run started.
    #[serde(with = "humantime_serde")]
    pub elapsed: Duration,
    pub phase: Phase,
    /// Open model: the arrival rate asked for now, per second.
    pub target_rate: Option<f64>,
    /// Journeys started per second since the last snapshot.
    pub current_rate: f64,
    /// p99 latency of the requests completed since the last snapshot, in
    /// milliseconds; `None` when none completed.
    pub p99_ms: Option<f64>,
    /// Requests answered 2xx so far.
    pub ok: u64,
    /// Requests failed or unknown so far.
    pub errors: u64,
}
