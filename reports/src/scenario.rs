//! The scenario file: what load to drive, which faults to inject and when,
//! and what must hold. TOML, documented key by key in `scenarios/README.md`.
//!
//! These are the *typed* shapes. A file is checked key by key first
//! ([`crate::parse_scenario`]), so that every problem is reported with its
//! line at once; only a file with no problems is deserialised into them.
//! `deny_unknown_fields` stays on as a second line of defence.
//!
//! Durations are humantime strings ("250ms", "10s", "2m").

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use gauntlet_model::{
    Bandwidth, FaultAction, FaultStep, Flow, Latency, LimitData, Mix, ProviderFaults, ResetPeer,
    Service, Slicer, SlowClose, Stream, Timeout, ToxicKind, ToxicSpec, DEFAULT_MIX,
    TOXIC_ATTRIBUTES,
};

use crate::gates::Gate;

/// The seed when a scenario names none: the system's own default, so a
/// scenario without one runs like `serve` does.
pub const DEFAULT_SEED: u64 = 1;
/// Warm-up before measuring: long enough to open connection pools and fill
/// SQLite's page caches, short next to any useful load phase.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(5);
/// How long the system may take to settle after the load stops and every
/// fault is healed (outbox empty, lag 0, sagas terminal). Above the longest
/// default backoff chain (breaker wait 5 s plus retries), so a healthy
/// system always makes it.
pub const DEFAULT_QUIESCE: Duration = Duration::from_secs(30);
fn default_seed() -> u64 {
    DEFAULT_SEED
}
fn default_warmup() -> Duration {
    DEFAULT_WARMUP
}
fn default_quiesce() -> Duration {
    DEFAULT_QUIESCE
}

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in report titles and file names.
    pub name: String,
    /// What the scenario shows, in a sentence or two.
    #[serde(default)]
    pub description: String,
    /// Seeds every random choice (arrivals, jitter, toxics, provider).
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub system: SystemSpec,
    pub load: Load,
    /// The fault timeline, from the start of the measured load.
    #[serde(default)]
    pub faults: Vec<FaultStep>,
    /// Bound on settling after the load ends and faults are healed.
    #[serde(default = "default_quiesce", with = "humantime_serde")]
    pub quiesce: Duration,
    /// Rules that must hold, e.g. `"p99(POST /api/orders) < 300ms"`.
    #[serde(default)]
    pub gates: Vec<Gate>,
    /// The file it was read from and its text, for the report (not a key
    /// of the file).
    #[serde(skip)]
    pub source: Option<ScenarioSource>,
}

/// Where a scenario came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScenarioSource {
    /// The path as given.
    pub file: String,
    pub text: String,
}

impl Scenario {
    /// True when a gate compares with a baseline run (`< baseline * 1.2`).
    pub fn needs_baseline(&self) -> bool {
        self.gates.iter().any(|g| g.baseline.is_some())
    }
}

/// Which order flow(s) the load uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowChoice {
    /// Orchestrated saga over HTTP; orders answer `CONFIRMED`/`CANCELLED`.
    #[default]
    Sync,
    /// Choreographed saga over Kafka; orders answer `202 PENDING`.
    Async,
    /// Both, on the same load, half the orders each, for comparison.
    Both,
}

impl FlowChoice {
    /// True when the event path (Kafka consumers, DLQs) is in play.
    pub fn uses_events(self) -> bool {
        matches!(self, Self::Async | Self::Both)
    }

    /// The flows a run drives, in the order it drives them.
    pub fn flows(self) -> &'static [Flow] {
        match self {
            Self::Sync => &[Flow::Sync],
            Self::Async => &[Flow::Async],
            Self::Both => &Flow::ALL,
        }
    }
}

/// `[system]`: the system under test and how it is configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSpec {
    #[serde(default)]
    pub flow: FlowChoice,
    /// Resilience overrides per link name (`"orders->payments"`); keys not
    /// named keep that link's defaults.
    #[serde(default)]
    pub links: BTreeMap<String, LinkOverride>,
    /// The provider's behaviour for the whole run (faults can change it
    /// for a while).
    #[serde(default)]
    pub provider: ProviderFaults,
    /// Attach to a system already running instead of starting one.
    #[serde(default)]
    pub external: Option<External>,
    /// The gateway's edge policies: JWTs and rate limits.
    #[serde(default)]
    pub gateway: GatewaySpec,
}

/// `[system.gateway]`: who may call the gateway, and how often.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    /// JWTs on: the gateway checks them and every load user signs its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Rate limits; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
}

/// `[system.gateway.auth]`: HS256 JWTs. The gateway checks them; each load
/// user signs one (`sub` = `load-<user>`) with the same secret at its
/// start, valid for the run. With `[system.external]` the gateway there
/// must be configured with the same secret, issuer and audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// The shared HS256 secret, at least 32 bytes.
    pub hs256_secret: String,
    /// The `iss` tokens carry and the gateway requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The `aud` tokens carry and the gateway requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Clock skew the gateway allows on `exp`/`nbf`, whole seconds.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub leeway: Option<Duration>,
}

/// `[system.gateway.limits]`: requests per second let through, per subject
/// (a JWT's `sub`, else the client's address) and overall; beyond, 429.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_subject_per_sec: Option<u32>,
    /// Defaults to one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_subject_burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_per_sec: Option<u32>,
    /// Defaults to one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_burst: Option<u32>,
}

/// `[system.links."<link>"]`: overrides of one link's resilience settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkOverride {
    /// Deadline of one attempt.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerOverride>,
}

/// Retry overrides; unset keys keep the link's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryOverride {
    /// Total attempts, the first included (1 = no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Cap of the first backoff; doubles per retry.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_delay: Option<Duration>,
    /// Cap of any backoff.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_delay: Option<Duration>,
}

/// Circuit-breaker overrides; unset keys keep the link's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerOverride {
    /// Calls (outcomes) the CLOSED state judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window_size: Option<u32>,
    /// Calls needed before any rate is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_calls: Option<u32>,
    /// Percent (0–100] of failures that opens the breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate_threshold: Option<f64>,
    /// Percent (0–100] of slow calls that opens the breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_call_rate_threshold: Option<f64>,
    /// A call slower than this is slow.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow_call_duration: Option<Duration>,
    /// Time in OPEN before trial calls.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub wait_in_open: Option<Duration>,
    /// Trial calls let through in HALF_OPEN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permitted_calls_in_half_open: Option<u32>,
}

/// `[system.external]`: a system already running elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct External {
    /// The gateway's base URL, e.g. `"http://127.0.0.1:8080"`.
    pub gateway: String,
    /// The Toxiproxy API address for faults, e.g. `"127.0.0.1:8474"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxiproxy: Option<String>,
    /// Kafka bootstrap servers, e.g. `"127.0.0.1:9092"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<String>,
    /// Each service's own base URL, to read its final state.
    #[serde(default)]
    pub services: BTreeMap<Service, String>,
}

/// `[load]`: how much load, of which journeys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLoad", into = "RawLoad")]
pub struct Load {
    pub model: LoadModel,
    /// Relative weights of the user journeys.
    pub mix: Mix,
    /// Load before measuring starts.
    pub warmup: Duration,
}

/// Open or closed, decided by which keys `[load]` has.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadModel {
    /// Arrivals at a target rate, whatever the latency (`rate = [...]`).
    Open {
        /// Journeys per second at the start of the first stage; defaults to
        /// the first stage's target (a constant rate).
        start_rate: Option<f64>,
        stages: Vec<Stage>,
    },
    /// A fixed population of users, each waiting for its answer (`users`).
    Closed {
        users: u32,
        /// Users started per second until all run.
        increase_per_sec: u32,
        /// Pause between a user's journeys.
        think_time: Duration,
        /// How long the measured load lasts.
        duration: Duration,
    },
}

impl Load {
    /// How long the measured load lasts (warm-up excluded).
    pub fn duration(&self) -> Duration {
        match &self.model {
            LoadModel::Open { stages, .. } => stages.iter().map(|s| s.duration).sum(),
            LoadModel::Closed { duration, .. } => *duration,
        }
    }
}

/// One stage of an open-model load: the rate moves linearly from the
/// previous stage's target to this one's over `duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Journeys started per second at the end of the stage (> 0).
    pub target: f64,
}

/// `[load]` as written: both models' keys, checked into a [`Load`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<Vec<Stage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    users: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    increase_per_sec: Option<u32>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    think_time: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    duration: Option<Duration>,
    #[serde(default)]
    mix: Mix,
    #[serde(default = "default_warmup", with = "humantime_serde")]
    warmup: Duration,
}

/// A `[load]` table that names no model, or both.
#[derive(Debug, thiserror::Error)]
pub enum LoadShapeError {
    #[error("load: the closed model (users) needs a duration")]
    ClosedWithoutDuration,
    #[error("load: rate (open model) and users (closed model) exclude each other")]
    BothModels,
    #[error("load: needs rate (open model) or users (closed model)")]
    NoModel,
}

impl TryFrom<RawLoad> for Load {
    type Error = LoadShapeError;

    fn try_from(raw: RawLoad) -> Result<Self, LoadShapeError> {
        let model = match (raw.rate, raw.users) {
            (Some(stages), None) => LoadModel::Open {
                start_rate: raw.start_rate,
                stages,
            },
            (None, Some(users)) => LoadModel::Closed {
                users,
                increase_per_sec: raw.increase_per_sec.unwrap_or(users),
                think_time: raw.think_time.unwrap_or_default(),
                duration: raw.duration.ok_or(LoadShapeError::ClosedWithoutDuration)?,
            },
            (Some(_), Some(_)) => return Err(LoadShapeError::BothModels),
            (None, None) => return Err(LoadShapeError::NoModel),
        };
        Ok(Load {
            model,
            mix: raw.mix,
            warmup: raw.warmup,
        })
    }
}

impl From<Load> for RawLoad {
    fn from(load: Load) -> Self {
        let mut raw = RawLoad {
            rate: None,
            start_rate: None,
            users: None,
            increase_per_sec: None,
            think_time: None,
            duration: None,
            mix: load.mix,
            warmup: load.warmup,
        };
        match load.model {
            LoadModel::Open { start_rate, stages } => {
                raw.rate = Some(stages);
                raw.start_rate = start_rate;
            }
            LoadModel::Closed {
                users,
                increase_per_sec,
                think_time,
                duration,
            } => {
                raw.users = Some(users);
                raw.increase_per_sec = Some(increase_per_sec);
                raw.think_time = Some(think_time);
                raw.duration = Some(duration);
            }
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn load_model_comes_from_its_keys() {
        let open: Load = serde_json::from_value(json!({
            "rate": [{"duration": "10s", "target": 200}, {"duration": "20s", "target": 50}]
        }))
        .unwrap();
        assert_eq!(open.duration(), Duration::from_secs(30));
        assert_eq!(open.mix, DEFAULT_MIX);
        assert_eq!(open.warmup, DEFAULT_WARMUP);
        let closed: Load = serde_json::from_value(json!({
            "users": 10, "duration": "1m", "mix": {"place_order": 1}
        }))
        .unwrap();
        assert_eq!(
            closed.model,
            LoadModel::Closed {
                users: 10,
                increase_per_sec: 10,
                think_time: Duration::ZERO,
                duration: Duration::from_secs(60)
            }
        );
        assert_eq!(closed.mix.browse, 0);
        let both = serde_json::from_value::<Load>(json!({
            "users": 10, "duration": "1m", "rate": []
        }));
        assert!(both.is_err());
        // Round trip through the written shape.
        let again: Load = serde_json::from_value(serde_json::to_value(&closed).unwrap()).unwrap();
        assert_eq!(again, closed);
    }
}
