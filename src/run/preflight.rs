//! What the scenario file's own checks cannot see, found before anything
//! starts: what the system's and the load generator's configurations
//! cannot take, and what a system running elsewhere cannot do. Each
//! problem names the scenario key it is about.

use gauntlet_loadgen as loadgen;
use gauntlet_reports::scenario::{External, FaultAction, Scenario, Service};

use super::plan::{load_config, system_config};

/// What the file-level checks cannot see: limits of the load generator and
/// the system configuration (a closed-model ramp longer than the run, say).
/// Each problem names the scenario key it is about.
pub fn preflight(scenario: &Scenario) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = system_config(scenario) {
        problems.push(e.to_string());
    }
    let base = scenario
        .system
        .external
        .as_ref()
        .map_or("http://127.0.0.1:1", |e| e.gateway.as_str());
    let load = load_config(scenario, loadgen::Flow::Sync, base);
    if let Err(errors) = load.validate() {
        problems.extend(errors.into_iter().map(|e| {
            let e = e.replace("base_url", "system.external.gateway");
            format!("load: {e}")
        }));
    }
    if let Some(external) = &scenario.system.external {
        problems.extend(external_problems(scenario, external));
    }
    problems
}

/// The services a run reads its final state from.
pub const STATE_SERVICES: [Service; 4] = [
    Service::Orders,
    Service::Catalog,
    Service::Provider,
    Service::Notifications,
];

/// What a run against a system running elsewhere cannot do.
fn external_problems(scenario: &Scenario, external: &External) -> Vec<String> {
    let mut problems = Vec::new();
    let missing: Vec<&str> = STATE_SERVICES
        .iter()
        .filter(|s| !external.services.contains_key(s))
        .map(|s| s.as_str())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "system.external.services: name the URLs of {}: the final state the invariants read comes from them",
            missing.join(", ")
        ));
    }
    if scenario.system.flow.uses_events() && external.kafka.is_none() {
        problems.push(
            "system.external.kafka: the async flow's events are accounted for on the broker: give its bootstrap servers"
                .into(),
        );
    }
    if !scenario.system.links.is_empty() {
        problems.push(
            "system.links: resilience settings apply to the embedded system; set them where the external one is started (`serve --config`)"
                .into(),
        );
    }
    for (i, step) in scenario.faults.iter().enumerate() {
        match &step.action {
            FaultAction::Toxic { link, .. } | FaultAction::LinkDown { link }
                if external.toxiproxy.is_none() =>
            {
                problems.push(format!(
                    "faults[{i}]: a fault on `{link}` needs `system.external.toxiproxy`, the fault proxies' API"
                ))
            }
            FaultAction::Crash { .. } | FaultAction::PauseConsumer { .. } => problems.push(format!(
                "faults[{i}]: `{}` needs the embedded system: a system running elsewhere cannot be reached inside from here",
                if matches!(step.action, FaultAction::Crash { .. }) { "crash" } else { "pause_consumer" }
            )),
            FaultAction::Provider { .. } if !external.services.contains_key(&Service::Provider) => {
                problems.push(format!(
                    "faults[{i}]: a provider fault needs `system.external.services.provider`"
                ))
            }
            _ => {}
        }
    }
    problems
}
