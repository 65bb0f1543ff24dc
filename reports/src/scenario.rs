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

use crate::gates::Gate;
use crate::topology::Service;

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
/// The journey weights when a scenario names no `[load.mix]`: mostly
/// ordering, with enough browsing and polling to load the read paths.
pub const DEFAULT_MIX: Mix = Mix {
    create_user: 1,
    browse: 3,
    place_order: 5,
    poll_order: 1,
};

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

/// The provider's behaviour, the same shape as its `PUT /admin/faults`.
/// Rates are probabilities in [0, 1]; unset keys are 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderFaults {
    /// Share of requests answered 503 without charging.
    pub failure_rate: f64,
    /// Share of charges declined with 402.
    pub decline_rate: f64,
    /// Delay before answering, in milliseconds.
    pub latency_ms: u64,
    /// Uniform jitter on the delay, ± milliseconds.
    pub jitter_ms: u64,
    /// Share of charges made whose reply is then lost.
    pub lost_reply_rate: f64,
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

/// Journey weights: each journey is picked with probability
/// weight / sum of weights. Weights left out of a `[load.mix]` are 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Register a user (`POST /api/users`).
    #[serde(default)]
    pub create_user: u32,
    /// List products and look at one (`GET /api/products...`).
    #[serde(default)]
    pub browse: u32,
    /// Place an order (`POST /api/orders`).
    #[serde(default)]
    pub place_order: u32,
    /// Place an order, then poll it until terminal (`GET /api/orders/{id}`).
    #[serde(default)]
    pub poll_order: u32,
}

impl Default for Mix {
    fn default() -> Self {
        DEFAULT_MIX
    }
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

impl TryFrom<RawLoad> for Load {
    type Error = String;

    fn try_from(raw: RawLoad) -> Result<Self, String> {
        let model = match (raw.rate, raw.users) {
            (Some(stages), None) => LoadModel::Open {
                start_rate: raw.start_rate,
                stages,
            },
            (None, Some(users)) => LoadModel::Closed {
                users,
                increase_per_sec: raw.increase_per_sec.unwrap_or(users),
                think_time: raw.think_time.unwrap_or_default(),
                duration: raw
                    .duration
                    .ok_or("load: the closed model (users) needs a duration")?,
            },
            (Some(_), Some(_)) => {
                return Err(
                    "load: rate (open model) and users (closed model) exclude each other".into(),
                )
            }
            (None, None) => {
                return Err("load: needs rate (open model) or users (closed model)".into())
            }
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

/// One timed fault: the fault timeline's step (the same JSON), plus the
/// event-path actions. A step whose action
/// [is a timeline action](FaultAction::is_timeline_action) serialises to
/// exactly the JSON the fault timeline reads, so the runner hands it over
/// with `serde_json::to_value` / `from_value`; the others go to the event
/// path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    /// When to apply it, from the start of the measured load.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// How long it lasts; without one it stays until the final heal.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    pub action: FaultAction,
}

/// What a fault does. `toxic`, `link_down`, `crash` and `provider` have
/// exactly the fault timeline's JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Add a toxic to a link; undone by removing it.
    Toxic { link: String, toxic: Toxic },
    /// Take a link down (connections refused and closed).
    LinkDown { link: String },
    /// Kill a service; undone by restarting it on its port and database.
    Crash { service: Service },
    /// Change the provider's behaviour; undone by restoring it.
    Provider { faults: ProviderFaults },
    /// Stop a consumer group polling; undone by resuming it.
    PauseConsumer { group: String },
    /// Publish `count` undecodable messages to `topic` (nothing to undo).
    Poison { topic: String, count: u32 },
}

impl FaultAction {
    /// The link a network fault targets.
    pub fn link(&self) -> Option<&str> {
        match self {
            Self::Toxic { link, .. } | Self::LinkDown { link } => Some(link),
            _ => None,
        }
    }

    /// True for the actions the fault timeline itself carries out (the
    /// others act on the event path).
    pub fn is_timeline_action(&self) -> bool {
        matches!(
            self,
            Self::Toxic { .. } | Self::LinkDown { .. } | Self::Crash { .. } | Self::Provider { .. }
        )
    }
}

/// A toxic in Toxiproxy's shape:
/// `{ type = "latency", attributes = { latency = 200, jitter = 50 }, stream = "downstream", toxicity = 1.0 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    #[serde(flatten)]
    pub kind: ToxicKind,
    /// Direction; defaults to downstream (server → client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// Share of connections affected, 0.0–1.0; defaults to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxicity: Option<f32>,
    /// Defaults to `<type>_<stream>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Which way a toxic acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → server (requests).
    Upstream,
    /// Server → client (responses).
    Downstream,
}

/// The toxics, with their attributes (unset attributes are 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum ToxicKind {
    Latency(Latency),
    Bandwidth(Bandwidth),
    SlowClose(SlowClose),
    Timeout(Timeout),
    ResetPeer(ResetPeer),
    Slicer(Slicer),
    LimitData(LimitData),
}

/// Delay each chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    /// Added delay, in milliseconds.
    pub latency: u64,
    /// Largest deviation from `latency`, in milliseconds.
    pub jitter: u64,
}

/// Cap throughput.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bandwidth {
    /// KB/s (1 KB = 1000 bytes).
    pub rate: u64,
}

/// Hold the close after the stream ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlowClose {
    /// Milliseconds.
    pub delay: u64,
}

/// Swallow data, close after a while (0: never).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeout {
    /// Milliseconds.
    pub timeout: u64,
}

/// Reset the connection once data flows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResetPeer {
    /// Milliseconds before the reset (0: at once).
    pub timeout: u64,
}

/// Cut data into small slices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Slicer {
    /// Mean slice size, in bytes.
    pub average_size: u64,
    /// Largest deviation of a slice's size, in bytes.
    pub size_variation: u64,
    /// Pause after each slice, in microseconds.
    pub delay: u64,
}

/// Close after a number of bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitData {
    /// Bytes let through.
    pub bytes: u64,
}

/// The attributes each toxic type takes, for checking and for hints.
pub const TOXIC_ATTRIBUTES: [(&str, &[&str]); 7] = [
    ("latency", &["latency", "jitter"]),
    ("bandwidth", &["rate"]),
    ("slow_close", &["delay"]),
    ("timeout", &["timeout"]),
    ("reset_peer", &["timeout"]),
    ("slicer", &["average_size", "size_variation", "delay"]),
    ("limit_data", &["bytes"]),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fault_steps_have_the_timelines_json_shape() {
        let steps = vec![
            FaultStep {
                at: Duration::from_secs(10),
                duration: Some(Duration::from_secs(20)),
                action: FaultAction::LinkDown {
                    link: "orders->payments".into(),
                },
            },
            FaultStep {
                at: Duration::from_secs(5),
                duration: None,
                action: FaultAction::Toxic {
                    link: "payments->provider".into(),
                    toxic: Toxic {
                        kind: ToxicKind::Latency(Latency {
                            latency: 200,
                            jitter: 50,
                        }),
                        stream: None,
                        toxicity: None,
                        name: None,
                    },
                },
            },
            FaultStep {
                at: Duration::from_secs(30),
                duration: Some(Duration::from_secs(5)),
                action: FaultAction::Crash {
                    service: Service::Notifications,
                },
            },
            FaultStep {
                at: Duration::from_secs(40),
                duration: Some(Duration::from_secs(10)),
                action: FaultAction::Provider {
                    faults: ProviderFaults {
                        lost_reply_rate: 0.5,
                        ..Default::default()
                    },
                },
            },
        ];
        let got = serde_json::to_value(&steps).unwrap();
        let want = json!([
          {"at": "10s", "duration": "20s", "action": {"type": "link_down", "link": "orders->payments"}},
          {"at": "5s", "action": {"type": "toxic", "link": "payments->provider",
                                  "toxic": {"type": "latency", "attributes": {"latency": 200, "jitter": 50}}}},
          {"at": "30s", "duration": "5s", "action": {"type": "crash", "service": "notifications"}},
          {"at": "40s", "duration": "10s", "action": {"type": "provider", "faults": {
              "failure_rate": 0.0, "decline_rate": 0.0, "latency_ms": 0, "jitter_ms": 0, "lost_reply_rate": 0.5}}}
        ]);
        assert_eq!(got, want);
        let back: Vec<FaultStep> = serde_json::from_value(want).unwrap();
        assert_eq!(back, steps);
    }

    #[test]
    fn event_path_actions_serialise_tagged() {
        let a = FaultAction::Poison {
            topic: "orders".into(),
            count: 3,
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"type": "poison", "topic": "orders", "count": 3})
        );
        let p: FaultAction =
            serde_json::from_value(json!({"type": "pause_consumer", "group": "payments"})).unwrap();
        assert_eq!(
            p,
            FaultAction::PauseConsumer {
                group: "payments".into()
            }
        );
        assert!(!p.is_timeline_action());
    }

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
