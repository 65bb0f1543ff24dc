//! From a scenario to what runs: the system's configuration and the load
//! generator's (what neither can take is `preflight.rs`'s to say). The
//! fault timeline takes the scenario's `[[faults]]` as they are.

use std::time::Duration;

use gauntlet_loadgen as loadgen;
use gauntlet_reports::scenario::{FaultAction, FaultStep, LinkOverride, LoadModel, Scenario};
use gauntlet_system::config::{default_resilience, AuthConfig, LimitsConfig, DEFAULT_LEEWAY};
use gauntlet_system::SystemConfig;

/// The latency the open model sizes its pool of users for: a sync order
/// takes tens of milliseconds healthy and seconds under faults; journeys
/// beyond the pool wait, and their wait counts as latency.
pub const EXPECTED_LATENCY: Duration = Duration::from_millis(500);

/// What in a scenario the system's configuration cannot take, by the
/// scenario key it is about.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("system.provider: {0}")]
    Provider(#[from] gauntlet_model::RateOutOfRange),
    /// Every problem with the gateway's settings.
    #[error("system.gateway: {}", .0.join("; "))]
    Gateway(Vec<String>),
}

/// The system's configuration: the scenario's seed, link overrides on
/// each link's defaults, the provider's behaviour, and the gateway's JWTs
/// and rate limits.
pub fn system_config(scenario: &Scenario) -> Result<SystemConfig, PlanError> {
    let mut config = SystemConfig {
        seed: scenario.seed,
        ..SystemConfig::default()
    };
    for (link, o) in &scenario.system.links {
        config
            .links
            .insert(link.clone(), apply_override(default_resilience(link), o));
    }
    config.provider = scenario.system.provider.clone();
    config.provider.validate()?;
    let gateway = &scenario.system.gateway;
    if let Some(a) = &gateway.auth {
        config.gateway.auth = Some(AuthConfig {
            issuer: a.issuer.clone(),
            audience: a.audience.clone(),
            leeway: a.leeway.unwrap_or(DEFAULT_LEEWAY),
            ..AuthConfig::hs256(a.hs256_secret.clone())
        });
    }
    if let Some(l) = &gateway.limits {
        config.gateway.limits = LimitsConfig {
            per_subject_per_sec: l.per_subject_per_sec,
            per_subject_burst: l.per_subject_burst,
            global_per_sec: l.global_per_sec,
            global_burst: l.global_burst,
        };
    }
    config.gateway.validate().map_err(PlanError::Gateway)?;
    Ok(config)
}

fn apply_override(
    mut c: gauntlet_resilience::ResilienceConfig,
    o: &LinkOverride,
) -> gauntlet_resilience::ResilienceConfig {
    if let Some(t) = o.timeout {
        c.timeout = t;
    }
    if let Some(r) = &o.retry {
        if let Some(v) = r.max_attempts {
            c.retry.max_attempts = v;
        }
        if let Some(v) = r.base_delay {
            c.retry.base_delay = v;
        }
        if let Some(v) = r.max_delay {
            c.retry.max_delay = v;
        }
    }
    if let Some(b) = &o.breaker {
        if let Some(v) = b.sliding_window_size {
            c.breaker.sliding_window_size = v;
        }
        if let Some(v) = b.minimum_calls {
            c.breaker.minimum_calls = v;
        }
        if let Some(v) = b.failure_rate_threshold {
            c.breaker.failure_rate_threshold = v;
        }
        if let Some(v) = b.slow_call_rate_threshold {
            c.breaker.slow_call_rate_threshold = v;
        }
        if let Some(v) = b.slow_call_duration {
            c.breaker.slow_call_duration = v;
        }
        if let Some(v) = b.wait_in_open {
            c.breaker.wait_in_open = v;
        }
        if let Some(v) = b.permitted_calls_in_half_open {
            c.breaker.permitted_calls_in_half_open = v;
        }
    }
    c
}

/// The load generator's configuration for one flow against `base_url`.
pub fn load_config(
    scenario: &Scenario,
    flow: loadgen::Flow,
    base_url: &str,
) -> loadgen::LoadConfig {
    let load = &scenario.load;
    let model = match &load.model {
        LoadModel::Open { start_rate, stages } => loadgen::Model::Open {
            start_rate: start_rate.unwrap_or_else(|| stages.first().map_or(0.0, |s| s.target)),
            stages: stages
                .iter()
                .map(|s| loadgen::Stage {
                    duration: s.duration,
                    target_rate: s.target,
                })
                .collect(),
            warmup_rate: None,
            max_users: None,
            expected_latency: EXPECTED_LATENCY,
        },
        LoadModel::Closed {
            users,
            increase_per_sec,
            think_time,
            duration,
        } => loadgen::Model::Closed {
            users: *users,
            increase_per_sec: Some(f64::from(*increase_per_sec)),
            think_time: *think_time,
            duration: *duration,
        },
    };
    let mut config = loadgen::LoadConfig::new(base_url, model);
    config.seed = scenario.seed;
    config.mix = load.mix;
    config.warmup = load.warmup;
    config.flow = flow;
    config.token = scenario
        .system
        .gateway
        .auth
        .as_ref()
        .map(|a| loadgen::TokenConfig {
            hs256_secret: a.hs256_secret.clone(),
            issuer: a.issuer.clone(),
            audience: a.audience.clone(),
        });
    config
}

/// The descriptions of the faults in force `t` into the measured load, as
/// the timeline schedules them (for the progress line).
pub fn active_at(steps: &[FaultStep], t: Duration, load: Duration) -> Vec<String> {
    steps
        .iter()
        .filter(|s| !matches!(s.action, FaultAction::Poison { .. }))
        .filter(|s| {
            let end = s.duration.map_or(load, |d| s.at + d);
            s.at <= t && t < end
        })
        .map(|s| s.action.describe())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gauntlet_reports::parse_scenario;

    const SCENARIO: &str = r#"
name = "plan"
seed = 9

[system]
flow = "both"

[system.links."orders->payments"]
timeout = "300ms"
retry = { max_attempts = 1 }
breaker = { wait_in_open = "2s" }

[system.provider]
latency_ms = 200

[load]
rate = [{ duration = "10s", target = 50 }, { duration = "5s", target = 10 }]
warmup = "2s"
mix = { place_order = 3, poll_order = 1 }

[[faults]]
at = "3s"
duration = "4s"
action = { type = "link_down", link = "orders->payments" }

[[faults]]
at = "5s"
action = { type = "pause_consumer", group = "payments" }

[[faults]]
at = "6s"
action = { type = "poison", topic = "orders", count = 2 }
"#;

    #[test]
    fn a_scenario_becomes_a_system_a_load_and_a_timeline() {
        let s = parse_scenario("plan.toml", SCENARIO).unwrap();
        let sys = system_config(&s).unwrap();
        assert_eq!(sys.seed, 9);
        assert_eq!(sys.provider.latency_ms, 200);
        let op = sys.resilience("orders->payments");
        assert_eq!(op.timeout, Duration::from_millis(300));
        assert_eq!(op.retry.max_attempts, 1);
        assert_eq!(op.breaker.wait_in_open, Duration::from_secs(2));
        // Untouched keys keep the link's defaults.
        let d = default_resilience("orders->payments");
        assert_eq!(op.retry.base_delay, d.retry.base_delay);
        assert_eq!(op.breaker.minimum_calls, d.breaker.minimum_calls);

        let load = load_config(&s, loadgen::Flow::Async, "http://127.0.0.1:1");
        assert!(load.validate().is_ok());
        assert_eq!(load.seed, 9);
        assert_eq!(load.warmup, Duration::from_secs(2));
        assert_eq!(load.mix.poll_order, 1);
        match &load.model {
            loadgen::Model::Open {
                start_rate, stages, ..
            } => {
                // No start_rate: a constant rate at the first stage's target.
                assert_eq!(*start_rate, 50.0);
                assert_eq!(stages[1].target_rate, 10.0);
            }
            m => panic!("{m:?}"),
        }

        let steps = &s.faults;
        assert_eq!(steps.len(), 3);
        let load_len = Duration::from_secs(15);
        assert_eq!(
            active_at(steps, Duration::from_secs(4), load_len),
            ["orders->payments down"]
        );
        assert_eq!(
            active_at(steps, Duration::from_secs(8), load_len),
            ["consumer group payments paused"]
        );
        assert!(active_at(steps, Duration::from_secs(1), load_len).is_empty());
    }

    #[test]
    fn the_gateway_tables_reach_the_system_and_the_load() {
        let text = r#"
name = "edge"
[system.gateway.auth]
hs256_secret = "a-shared-secret-of-at-least-32-bytes"
issuer = "me"
leeway = "5s"
[system.gateway.limits]
per_subject_per_sec = 6
global_per_sec = 100
global_burst = 200
[load]
users = 2
duration = "5s"
"#;
        let s = parse_scenario("edge.toml", text).unwrap();
        let sys = system_config(&s).unwrap();
        let auth = sys.gateway.auth.expect("auth on");
        assert_eq!(
            auth.hs256_secret.as_deref(),
            Some("a-shared-secret-of-at-least-32-bytes")
        );
        assert_eq!(auth.issuer.as_deref(), Some("me"));
        assert_eq!(auth.audience, None);
        assert_eq!(auth.leeway, Duration::from_secs(5));
        assert_eq!(sys.gateway.limits.per_subject_per_sec, Some(6));
        assert_eq!(sys.gateway.limits.per_subject_burst, None);
        assert_eq!(sys.gateway.limits.global_burst, Some(200));
        let load = load_config(&s, loadgen::Flow::Sync, "http://127.0.0.1:1");
        let token = load.token.expect("users sign tokens");
        assert_eq!(token.hs256_secret, "a-shared-secret-of-at-least-32-bytes");
        assert_eq!(token.issuer.as_deref(), Some("me"));
        let problems = crate::run::preflight::preflight(&s);
        assert!(problems.is_empty(), "{problems:?}");
        // Off by default: an open gateway, unsigned load.
        let plain = parse_scenario("plan.toml", SCENARIO).unwrap();
        assert_eq!(system_config(&plain).unwrap().gateway, Default::default());
        assert!(
            load_config(&plain, loadgen::Flow::Sync, "http://127.0.0.1:1")
                .token
                .is_none()
        );
    }
}
