//! Which of the scenario's fault steps a flow runs: all of them, but the
//! sync flow has no event path, so steps that act on it are left out (and
//! the report says why). Kept steps remember their index in the scenario,
//! so every record names the scenario's step.

use crate::stack::KAFKA_LINK;
use crate::timeline::{FaultAction, FaultStep};

/// The fault steps one flow runs.
pub(super) struct FlowSteps {
    pub(super) steps: Vec<FaultStep>,
    /// Each kept step's index in the scenario, so records name the
    /// scenario's step whatever this flow left out.
    pub(super) kept: Vec<usize>,
    /// Steps left out of this flow (event-path faults on a sync run):
    /// (index in the scenario's steps, when it was due in ms, why).
    pub(super) skipped: Vec<(usize, u64, String)>,
}

/// The scenario's `steps` as a flow runs them: all of them, but on a
/// flow without `uses_events` those that act on the event path.
pub(super) fn flow_steps(mut steps: Vec<FaultStep>, uses_events: bool) -> FlowSteps {
    let mut skipped = Vec::new();
    let mut kept: Vec<usize> = (0..steps.len()).collect();
    if !uses_events {
        kept.clear();
        let mut index = 0;
        steps.retain(|s| {
            let skip = event_path_only(s);
            if skip {
                skipped.push((
                    index,
                    s.at.as_millis() as u64,
                    format!(
                        "at {}: {} (the sync flow has no event path)",
                        humantime::format_duration(s.at),
                        s.action.describe()
                    ),
                ));
            }
            if !skip {
                kept.push(index);
            }
            index += 1;
            !skip
        });
    }
    FlowSteps {
        steps,
        kept,
        skipped,
    }
}

/// True for a step that acts on the event path.
fn event_path_only(step: &FaultStep) -> bool {
    match &step.action {
        FaultAction::PauseConsumer { .. } | FaultAction::Poison { .. } => true,
        FaultAction::Toxic { link, .. } | FaultAction::LinkDown { link } => link == KAFKA_LINK,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use gauntlet_system::Service;

    fn step(at_secs: u64, action: FaultAction) -> FaultStep {
        FaultStep {
            at: Duration::from_secs(at_secs),
            duration: None,
            action,
        }
    }

    #[test]
    fn a_flow_without_events_leaves_the_event_path_out_and_keeps_the_scenarios_numbering() {
        let steps = vec![
            step(
                1,
                FaultAction::Crash {
                    service: Service::Payments,
                },
            ),
            step(
                2,
                FaultAction::PauseConsumer {
                    group: Service::Orders,
                },
            ),
            step(
                3,
                FaultAction::LinkDown {
                    link: KAFKA_LINK.to_string(),
                },
            ),
            step(
                4,
                FaultAction::LinkDown {
                    link: "orders->payments".to_string(),
                },
            ),
            step(
                5,
                FaultAction::Poison {
                    topic: "orders".to_string(),
                    count: 2,
                },
            ),
        ];

        let all = flow_steps(steps.clone(), true);
        assert_eq!(all.steps.len(), 5);
        assert_eq!(all.kept, [0, 1, 2, 3, 4]);
        assert!(all.skipped.is_empty());

        let sync = flow_steps(steps, false);
        let actions: Vec<String> = sync.steps.iter().map(|s| s.action.describe()).collect();
        assert_eq!(actions, ["payments crashed", "orders->payments down"]);
        assert_eq!(sync.kept, [0, 3]);
        let skipped: Vec<(usize, u64)> = sync.skipped.iter().map(|(i, at, _)| (*i, *at)).collect();
        assert_eq!(skipped, [(1, 2_000), (2, 3_000), (4, 5_000)]);
        assert_eq!(
            sync.skipped[0].2,
            "at 2s: consumer group orders paused (the sync flow has no event path)"
        );
    }
}
