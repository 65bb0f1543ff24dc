//! What load to drive: [`LoadConfig`], parsed key by key with every bad
//! value reported in one go by [`LoadConfig::validate`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::token::TokenError;

/// How long one request may take before its outcome is *unknown*. Long
/// enough for a sync order whose saga retries a slow link, short enough
/// that a dead link does not hold a user for the rest of the run.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The latency the open model sizes its default user pool for: with
/// `max_users` unset, the pool holds twice the requests in flight at the
/// peak rate with this latency (Little's law), plus a few spare users.
pub const DEFAULT_EXPECTED_LATENCY: Duration = Duration::from_millis(100);
/// Spare users on top of the sized pool, so a low rate still has a few.
pub const SPARE_USERS: u32 = 8;
/// The largest pool the default sizing picks; set `max_users` to go higher.
pub const DEFAULT_MAX_USERS_CAP: u32 = 2_000;
/// Customers created before the load, for the orders to be placed by.
pub const DEFAULT_CUSTOMERS: u32 = 20;
/// The most units of one product an order asks for.
pub const DEFAULT_MAX_QUANTITY: u32 = 2;
/// How often a pending order is read again.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a journey waits for its order to become terminal.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// One load run: where it goes, its shape, and what the users do.
///
/// ```
/// let config: gauntlet_loadgen::LoadConfig = serde_json::from_str(r#"{
///     "base_url": "http://127.0.0.1:8080",
///     "seed": 7,
///     "model": {"type": "open", "stages": [
///         {"duration": "10s", "target_rate": 200.0},
///         {"duration": "60s", "target_rate": 200.0}
///     ]},
///     "mix": {"browse": 3, "place_order": 7},
///     "warmup": "5s",
///     "request_timeout": "2s"
/// }"#).unwrap();
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// The gateway's base URL, as `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Seeds every random choice: which journey an arrival runs, names,
    /// products, quantities. One seed gives the same journeys.
    #[serde(default)]
    pub seed: u64,
    /// Open (arrival rate) or closed (fixed users) load.
    pub model: Model,
    /// The weighted mix of journeys.
    #[serde(default)]
    pub mix: Mix,
    /// Load driven before measuring starts, as "10s". Its operations are in
    /// the history (the system saw them) but not in the latency figures.
    #[serde(default, with = "humantime_serde")]
    pub warmup: Duration,
    /// The most one request may take, as "10s"; past it the outcome is
    /// unknown (the request may or may not have taken effect).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The order flow every order asks for.
    #[serde(default)]
    pub flow: Flow,
    /// Whether each order carries an `Idempotency-Key` header (unique per
    /// order, derived from the seed).
    #[serde(default = "default_true")]
    pub idempotency_keys: bool,
    /// How a journey waits for its order to become terminal.
    #[serde(default)]
    pub poll: Poll,
    /// Customers created before the load starts; orders are placed by them.
    #[serde(default = "default_customers")]
    pub customers: u32,
    /// The most units of one product an order asks for (at least 1).
    #[serde(default = "default_max_quantity")]
    pub max_quantity: u32,
    /// Mixed into e-mail addresses and idempotency keys, so two runs with
    /// one seed against one long-lived system do not collide. Letters,
    /// digits, `-` and `_`, at most 40. Changes no random choice.
    #[serde(default)]
    pub run_tag: Option<String>,
    /// Sent as `Authorization: Bearer <key>` when the gateway wants one.
    #[serde(default)]
    pub api_key: Option<String>,
    /// When set, each user signs a JWT of its own at its start and sends
    /// it instead of `api_key` (see [`TokenConfig`]).
    #[serde(default)]
    pub token: Option<TokenConfig>,
    /// How requests are sent.
    #[serde(default)]
    pub client: HttpClient,
}

/// The JWT each user signs for itself (HS256): `sub` = `load-<user>`
/// (`load-setup` for the set-up's requests), so a per-subject limit at the
/// gateway applies to each user apart; `iat` and `nbf` now, `exp` past the
/// run's planned end by [`TOKEN_MARGIN`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The secret the gateway checks HS256 tokens with.
    pub hs256_secret: String,
    /// The `iss` claim, when the gateway wants one.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The `aud` claim, when the gateway wants one.
    #[serde(default)]
    pub audience: Option<String>,
}

impl TokenConfig {
    /// A token for `sub`, valid for `lifetime` from now: for a client of
    /// the same gateway other than the load's users (the harness stocking
    /// the catalog, say).
    pub fn sign(&self, sub: &str, lifetime: Duration) -> Result<String, TokenError> {
        let bearer = crate::token::Signer::new(self, lifetime).bearer(sub)?;
        let text = bearer.to_str()?;
        Ok(text.trim_start_matches("Bearer ").to_string())
    }
}

/// How long a user's token outlives the run's planned end: room for the
/// set-up, the drain and a slow last request.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(120);

/// How each goose user sends its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpClient {
    /// One HTTP/1.1 keep-alive connection per user, written and parsed by
    /// the generator itself: the cheapest per request, so the generator is
    /// not the bottleneck. `http://` only.
    #[default]
    Direct,
    /// The goose user's reqwest client (a shared pool); speaks `https://`.
    Goose,
}

/// The load's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Model {
    /// Journeys start at a target arrival rate whatever the latency, as
    /// k6's ramping-arrival-rate: each stage ramps linearly from the rate
    /// the previous one ended at (`start_rate` for the first) to its own
    /// `target_rate`. Latency counts from each journey's intended start.
    Open {
        /// Arrivals per second where the first stage starts.
        #[serde(default)]
        start_rate: f64,
        /// The stages, in order.
        stages: Vec<Stage>,
        /// Arrivals per second during the warm-up; the first stage's target
        /// when unset.
        #[serde(default)]
        warmup_rate: Option<f64>,
        /// The most journeys in flight at once (goose users). Unset: sized
        /// from the peak rate and `expected_latency`.
        #[serde(default)]
        max_users: Option<u32>,
        /// The latency the default pool is sized for, as "100ms".
        #[serde(default = "default_expected_latency", with = "humantime_serde")]
        expected_latency: Duration,
    },
    /// A fixed number of users, each running journeys back to back.
    Closed {
        /// How many users.
        users: u32,
        /// Users started per second; all at once when unset.
        #[serde(default)]
        increase_per_sec: Option<f64>,
        /// A pause between one user's journeys, as "500ms".
        #[serde(default, with = "humantime_serde")]
        think_time: Duration,
        /// How long the users run after the warm-up, as "1m".
        #[serde(with = "humantime_serde")]
        duration: Duration,
    },
}

/// One stage of the open model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// How long the stage lasts, as "30s".
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Arrivals per second at the stage's end.
    pub target_rate: f64,
}

/// Relative weights of the journeys; a missing one weighs 0.
pub use gauntlet_model::Mix;

/// The order flow, as the orders service's `flow` field.
pub use gauntlet_model::Flow;

/// How a journey follows a pending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    /// Between two reads of the order, as "200ms".
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// The most the journey waits for a terminal state, as "10s".
    #[serde(default = "default_poll_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for Poll {
    fn default() -> Self {
        Poll {
            interval: DEFAULT_POLL_INTERVAL,
            timeout: DEFAULT_POLL_TIMEOUT,
        }
    }
}

fn default_request_timeout() -> Duration {
    DEFAULT_REQUEST_TIMEOUT
}
fn default_expected_latency() -> Duration {
    DEFAULT_EXPECTED_LATENCY
}
fn default_true() -> bool {
    true
}
fn default_customers() -> u32 {
    DEFAULT_CUSTOMERS
}
fn default_max_quantity() -> u32 {
    DEFAULT_MAX_QUANTITY
}
fn default_poll_interval() -> Duration {
    DEFAULT_POLL_INTERVAL
}
fn default_poll_timeout() -> Duration {
    DEFAULT_POLL_TIMEOUT
}

impl LoadConfig {
    /// A config with the defaults for everything but the target and shape.
    pub fn new(base_url: impl Into<String>, model: Model) -> Self {
        LoadConfig {
            base_url: base_url.into(),
            seed: 0,
            model,
            mix: Mix::default(),
            warmup: Duration::ZERO,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            flow: Flow::Sync,
            idempotency_keys: true,
            poll: Poll::default(),
            customers: DEFAULT_CUSTOMERS,
            max_quantity: DEFAULT_MAX_QUANTITY,
            run_tag: None,
            api_key: None,
            token: None,
            client: HttpClient::Direct,
        }
    }

    /// Every problem with this config, each naming its key, or `Ok`.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        match url::Url::parse(&self.base_url) {
            Ok(u) if u.scheme() == "https" && self.client == HttpClient::Direct => {
                errors.push(format!(
                    "base_url: {:?} is https, which the direct client does not speak: \
                     set client = \"goose\"",
                    self.base_url
                ))
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => errors.push(format!(
                "base_url: {:?} must be an http:// or https:// URL with a host",
                self.base_url
            )),
            Err(e) => errors.push(format!("base_url: {:?} is not a URL: {e}", self.base_url)),
        }
        match &self.model {
            Model::Open {
                start_rate,
                stages,
                warmup_rate,
                max_users,
                expected_latency,
            } => {
                rate_ok(&mut errors, "model.start_rate", *start_rate);
                if let Some(r) = warmup_rate {
                    rate_ok(&mut errors, "model.warmup_rate", *r);
                }
                if stages.is_empty() {
                    errors.push("model.stages: give at least one stage".into());
                }
                for (i, s) in stages.iter().enumerate() {
                    if s.duration.is_zero() {
                        errors.push(format!("model.stages[{i}].duration: must be > 0"));
                    }
                    rate_ok(
                        &mut errors,
                        &format!("model.stages[{i}].target_rate"),
                        s.target_rate,
                    );
                }
                if !stages.is_empty()
                    && stages.iter().all(|s| s.target_rate <= 0.0)
                    && *start_rate <= 0.0
                {
                    errors.push("model.stages: every rate is 0, so no journey would start".into());
                }
                if *max_users == Some(0) {
                    errors.push("model.max_users: must be at least 1".into());
                }
                if expected_latency.is_zero() {
                    errors.push("model.expected_latency: must be > 0".into());
                }
            }
            Model::Closed {
                users,
                increase_per_sec,
                duration,
                ..
            } => {
                if *users == 0 {
                    errors.push("model.users: must be at least 1".into());
                }
                if let Some(r) = increase_per_sec {
                    let ramp = f64::from(*users) / r;
                    let run = (self.warmup + *duration).as_secs_f64();
                    if !(r.is_finite() && *r > 0.0) {
                        errors.push(format!("model.increase_per_sec: {r} must be > 0"));
                    } else if ramp > run {
                        // goose starts every user before it can end, so the
                        // run would outlast its load.
                        errors.push(format!(
                            "model.increase_per_sec: starting {users} users at {r}/s takes \
                             {ramp:.0}s, longer than warmup + duration ({run:.0}s)"
                        ));
                    }
                }
                if duration.is_zero() {
                    errors.push("model.duration: must be > 0".into());
                }
            }
        }
        if self.mix.total() == 0 {
            errors.push("mix: every weight is 0; give at least one journey a weight".into());
        }
        if self.request_timeout.is_zero() {
            errors.push("request_timeout: must be > 0".into());
        }
        if self.poll.interval.is_zero() {
            errors.push("poll.interval: must be > 0".into());
        }
        if self.mix.orders() && self.customers == 0 {
            errors.push("customers: orders need at least 1 customer".into());
        }
        if self.max_quantity == 0 {
            errors.push("max_quantity: must be at least 1".into());
        }
        if let Some(key) = &self.api_key {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
                errors.push("api_key: must be visible ASCII with no spaces".into());
            }
        }
        if let Some(token) = &self.token {
            if token.hs256_secret.is_empty() {
                errors.push("token.hs256_secret: must not be empty".into());
            }
        }
        if let Some(tag) = &self.run_tag {
            let ok = !tag.is_empty()
                && tag.len() <= 40
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                errors.push(format!(
                    "run_tag: {tag:?} must be 1 to 40 letters, digits, '-' or '_'"
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// How long the load is planned to run, warm-up and ramp included.
    pub fn planned_duration(&self) -> Duration {
        let load = match &self.model {
            Model::Open { stages, .. } => stages.iter().map(|s| s.duration).sum(),
            Model::Closed {
                users,
                increase_per_sec,
                duration,
                ..
            } => {
                let ramp = increase_per_sec
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .map_or(0.0, |r| f64::from(*users) / r);
                *duration + Duration::from_secs_f64(ramp.min(86_400.0))
            }
        };
        self.warmup + load
    }

    /// The goose users the run starts: the open model's pool, or the
    /// closed model's users.
    pub fn users(&self) -> u32 {
        match &self.model {
            Model::Closed { users, .. } => *users,
            Model::Open {
                max_users: Some(n), ..
            } => *n,
            Model::Open {
                start_rate,
                stages,
                warmup_rate,
                expected_latency,
                ..
            } => {
                let peak = stages
                    .iter()
                    .map(|s| s.target_rate)
                    .chain([*start_rate, warmup_rate.unwrap_or(0.0)])
                    .fold(0.0_f64, f64::max);
                let in_flight = (peak * expected_latency.as_secs_f64() * 2.0).ceil();
                // The cast saturates; the cap bounds it anyway.
                (in_flight as u32)
                    .saturating_add(SPARE_USERS)
                    .min(DEFAULT_MAX_USERS_CAP)
            }
        }
    }
}

fn rate_ok(errors: &mut Vec<String>, key: &str, rate: f64) {
    if !(rate.is_finite() && rate >= 0.0) {
        errors.push(format!("{key}: {rate} must be a rate >= 0 (per second)"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Model {
        Model::Open {
            start_rate: 0.0,
            stages: vec![Stage {
                duration: Duration::from_secs(1),
                target_rate: 100.0,
            }],
            warmup_rate: None,
            max_users: None,
            expected_latency: DEFAULT_EXPECTED_LATENCY,
        }
    }

    #[test]
    fn parses_with_defaults_and_pins_the_wire_format() {
        let c: LoadConfig = serde_json::from_str(
            r#"{"base_url":"http://127.0.0.1:1","model":{"type":"closed","users":3,"duration":"2s"}}"#,
        )
        .unwrap();
        assert_eq!(c.mix, Mix::default());
        assert_eq!(c.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert!(c.idempotency_keys);
        assert_eq!(
            c.model,
            Model::Closed {
                users: 3,
                increase_per_sec: None,
                think_time: Duration::ZERO,
                duration: Duration::from_secs(2)
            }
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["model"]["type"], "closed");
        assert_eq!(json["model"]["duration"], "2s");
        assert_eq!(json["request_timeout"], "10s");
        assert_eq!(json["flow"], "sync");
        assert_eq!(json["client"], "direct");
    }

    #[test]
    fn a_missing_mix_weight_is_zero() {
        let m: Mix = serde_json::from_str(r#"{"browse": 2}"#).unwrap();
        assert_eq!(
            m,
            Mix {
                create_user: 0,
                browse: 2,
                place_order: 0,
                poll_order: 0
            }
        );
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        for bad in [
            r#"{"base_url":"http://a","model":{"type":"closed","users":1,"duration":"1s"},"sed":1}"#,
            r#"{"base_url":"http://a","model":{"type":"closed","users":1,"duration":"1s","rate":2}}"#,
            r#"{"base_url":"http://a","model":{"type":"open","stages":[{"duration":"1s","target_rate":1,"x":0}]}}"#,
            r#"{"base_url":"http://a","model":{"type":"closed","users":1,"duration":"1s"},"mix":{"buy":1}}"#,
        ] {
            let err = serde_json::from_str::<LoadConfig>(bad).unwrap_err();
            assert!(err.to_string().contains("unknown"), "{bad}: {err}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut c = LoadConfig::new(
            "ftp://x",
            Model::Open {
                start_rate: -1.0,
                stages: vec![Stage {
                    duration: Duration::ZERO,
                    target_rate: f64::NAN,
                }],
                warmup_rate: None,
                max_users: Some(0),
                expected_latency: DEFAULT_EXPECTED_LATENCY,
            },
        );
        c.mix = Mix {
            create_user: 0,
            browse: 0,
            place_order: 0,
            poll_order: 0,
        };
        c.request_timeout = Duration::ZERO;
        c.run_tag = Some("no spaces".into());
        let errors = c.validate().unwrap_err();
        for key in [
            "base_url",
            "model.start_rate",
            "model.stages[0].duration",
            "model.stages[0].target_rate",
            "model.max_users",
            "mix",
            "request_timeout",
            "run_tag",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(key)),
                "{key} missing from {errors:#?}"
            );
        }
    }

    #[test]
    fn a_closed_ramp_must_fit_in_the_run() {
        let mut c = LoadConfig::new(
            "http://127.0.0.1:1",
            Model::Closed {
                users: 100,
                increase_per_sec: Some(1.0),
                think_time: Duration::ZERO,
                duration: Duration::from_secs(30),
            },
        );
        let errors = c.validate().unwrap_err();
        assert!(errors[0].contains("takes 100s"), "{errors:?}");
        c.warmup = Duration::from_secs(70);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn the_default_pool_follows_the_peak_rate() {
        let mut c = LoadConfig::new("http://127.0.0.1:1", open());
        // 100/s * 100 ms * 2 = 20, plus the spares.
        assert_eq!(c.users(), 20 + SPARE_USERS);
        c.model = Model::Open {
            start_rate: 0.0,
            stages: vec![Stage {
                duration: Duration::from_secs(1),
                target_rate: 1e9,
            }],
            warmup_rate: None,
            max_users: None,
            expected_latency: DEFAULT_EXPECTED_LATENCY,
        };
        assert_eq!(c.users(), DEFAULT_MAX_USERS_CAP);
        assert!(c.validate().is_ok());
    }
}
