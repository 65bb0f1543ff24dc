//! The fault timeline as it ran: each step applied and undone (with any
//! error), and the steps a flow left out and why.

use gauntlet_reports::report::{FaultEvent, FaultPhase};

use crate::run::leg::Leg;
use crate::timeline::Phase;

/// Every flow's fault records, then the steps it left out.
pub(super) fn faults(legs: &[Leg]) -> Vec<FaultEvent> {
    let mut faults = Vec::new();
    for leg in legs {
        for r in &leg.faults {
            faults.push(FaultEvent {
                flow: Some(leg.flow.to_string()),
                step: r.step,
                phase: Some(match r.phase {
                    Phase::Applied => FaultPhase::Applied,
                    Phase::Undone => FaultPhase::Undone,
                }),
                at_ms: r.at_ms,
                unix_ms: r.unix_ms,
                action: r.action.clone(),
                error: r.error.clone(),
                skipped: None,
            });
        }
        for (step, at_ms, why) in &leg.skipped_faults {
            faults.push(FaultEvent {
                flow: Some(leg.flow.to_string()),
                step: *step,
                at_ms: *at_ms,
                skipped: Some(why.clone()),
                ..FaultEvent::default()
            });
        }
    }
    faults
}
