//! The event path: consumer lag over time and per group, and each topic's
//! dead letters, from the events each flow's run produced.

use std::collections::BTreeMap;

use gauntlet_reports::metrics::LagSummary;
use gauntlet_reports::report::{DlqCount, LagSample};
use gauntlet_reports::state::TopicEvents;

use crate::run::leg::Leg;

/// Every flow's lag samples, in order.
pub(super) fn lag(legs: &[Leg]) -> Vec<LagSample> {
    legs.iter()
        .flat_map(|leg| leg.lag.iter().cloned())
        .collect()
}

/// Per group, over every flow: the largest lag seen, and the largest
/// after quiescing.
pub(super) fn lag_summary(legs: &[Leg]) -> BTreeMap<String, LagSummary> {
    let mut lag_summary: BTreeMap<String, LagSummary> = BTreeMap::new();
    for leg in legs {
        for (group, (max, last)) in &leg.lag_summary {
            let l = lag_summary.entry(group.clone()).or_default();
            l.max = l.max.max(*max);
            l.last = l.last.max(*last);
        }
    }
    lag_summary
}

/// What each flow's run produced, consumed and dead-lettered, per topic
/// and group, for the flows whose final state was read.
pub(super) fn delta(legs: &[Leg]) -> Vec<TopicEvents> {
    let mut events = Vec::new();
    for leg in legs.iter().filter(|l| l.state.is_some()) {
        if let Some(e) = &leg.events_delta {
            events.extend(e.iter().cloned());
        }
    }
    events
}

/// Per topic: deliveries and dead letters, and their rate.
pub(super) fn dlq(events: &[TopicEvents]) -> Vec<DlqCount> {
    let mut dlq: BTreeMap<String, DlqCount> = BTreeMap::new();
    for e in events {
        let d = dlq.entry(e.topic.clone()).or_insert_with(|| DlqCount {
            topic: e.topic.clone(),
            ..DlqCount::default()
        });
        d.produced += e.produced;
        d.dead_lettered += e.dead_lettered;
    }
    dlq.into_values()
        .map(|mut d| {
            d.rate = if d.produced == 0 {
                0.0
            } else {
                d.dead_lettered as f64 / d.produced as f64
            };
            d
        })
        .collect()
}
