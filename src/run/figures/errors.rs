//! Errors in the measured load, counted by flow, endpoint and kind (an
//! HTTP status, or no answer, or no connection). Requests the gateway
//! refused at its edge are rejected, not errors.

use std::collections::BTreeMap;

use gauntlet_reports::history::{Operation, Outcome};
use gauntlet_reports::report::ErrorCount;

use crate::run::leg::Leg;

/// A request the gateway refused at its edge (401, 429): counted as
/// rejected, not among the errors.
pub(super) fn rejected(op: &Operation) -> bool {
    op.outcome == Outcome::Fail && matches!(op.status, Some(401 | 429))
}

/// The kind of a failed or unknown operation, as reports count them.
pub(super) fn error_kind(op: &Operation) -> String {
    match (op.outcome, op.status) {
        (_, Some(status)) => status.to_string(),
        (Outcome::Unknown, None) => "unknown (no answer)".to_string(),
        _ => "no connection".to_string(),
    }
}

/// Every flow's errors in the measured load, by flow, endpoint and kind.
pub(super) fn errors(legs: &[Leg]) -> Vec<ErrorCount> {
    let mut errors: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for leg in legs {
        for op in &leg.history.ops {
            let measured = op.journey.is_some()
                && op
                    .intended_us
                    .is_some_and(|i| i >= leg.load.measured_from_us);
            if !measured || op.outcome == Outcome::Ok || rejected(op) {
                continue;
            }
            let error = error_kind(op);
            *errors
                .entry((leg.flow.to_string(), op.kind.endpoint().to_string(), error))
                .or_default() += 1;
        }
    }
    errors
        .into_iter()
        .map(|((flow, endpoint, error), count)| ErrorCount {
            flow: Some(flow),
            endpoint,
            error,
            count,
        })
        .collect()
}
