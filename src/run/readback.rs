//! Reading the system back once it has settled: every service's final
//! state, the broker's event accounts, and what this run added to them
//! (a system that keeps its state between runs holds earlier runs' too).

use gauntlet_reports::state::{FinalState, TopicEvents};

use super::accounts::event_accounts;
use super::collect::Probe;

/// What reading the system back found.
pub(super) struct ReadBack {
    pub(super) state: Option<FinalState>,
    /// Per topic and group, what this run produced, consumed and
    /// dead-lettered.
    pub(super) events_delta: Option<Vec<TopicEvents>>,
    /// Problems reading the system back.
    pub(super) problems: Vec<String>,
}

/// Reads every service's state and, with an event path (`bootstrap`), the
/// broker's accounts; this run's events are those less `events_before`.
pub(super) async fn read_back(
    services: &Probe,
    bootstrap: Option<&str>,
    events_before: &[TopicEvents],
) -> ReadBack {
    let mut problems = Vec::new();
    let mut state = match services.final_state().await {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(format!("final state: {e}"));
            None
        }
    };
    if let (Some(state), Some(bootstrap)) = (state.as_mut(), bootstrap) {
        match event_accounts(bootstrap).await {
            Ok(accounts) => state.events = Some(accounts),
            Err(e) => problems.push(format!("event accounting: {e}")),
        }
    }
    let events_delta = state
        .as_ref()
        .and_then(|s| s.events.as_ref())
        .map(|after| delta(after, events_before));
    ReadBack {
        state,
        events_delta,
        problems,
    }
}

/// `after` less `before`, account by account.
fn delta(after: &[TopicEvents], before: &[TopicEvents]) -> Vec<TopicEvents> {
    after
        .iter()
        .map(|a| {
            let b = before
                .iter()
                .find(|b| b.topic == a.topic && b.group == a.group);
            let less = |f: fn(&TopicEvents) -> u64| f(a).saturating_sub(b.map_or(0, f));
            TopicEvents {
                topic: a.topic.clone(),
                group: a.group.clone(),
                produced: less(|e| e.produced),
                consumed: less(|e| e.consumed),
                dead_lettered: less(|e| e.dead_lettered),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(topic: &str, group: &str, counts: (u64, u64, u64)) -> TopicEvents {
        TopicEvents {
            topic: topic.into(),
            group: Some(group.into()),
            produced: counts.0,
            consumed: counts.1,
            dead_lettered: counts.2,
        }
    }

    #[test]
    fn a_runs_events_are_the_accounts_after_less_those_before_by_topic_and_group() {
        let after = [
            account("orders", "catalog", (10, 8, 2)),
            account("orders", "notifications", (10, 10, 0)),
            account("inventory", "payments", (4, 4, 0)),
        ];
        let before = [
            account("orders", "catalog", (6, 5, 1)),
            // The same topic for another group: no account of notifications'.
            account("orders", "analytics", (3, 3, 0)),
            // More before than after (a count that went down): 0, not less.
            account("inventory", "payments", (5, 4, 1)),
            // Only before: not in the run's accounts.
            account("payments", "orders", (9, 9, 0)),
        ];
        assert_eq!(
            delta(&after, &before),
            [
                account("orders", "catalog", (4, 3, 1)),
                account("orders", "notifications", (10, 10, 0)),
                account("inventory", "payments", (0, 0, 0)),
            ]
        );
        // A fresh system held nothing before: the accounts are the run's.
        assert_eq!(delta(&after, &[]), after);
    }

    #[test]
    fn an_account_without_a_group_matches_only_one_without() {
        let whole = TopicEvents {
            group: None,
            ..account("orders", "", (7, 0, 0))
        };
        let before = [account("orders", "catalog", (5, 0, 0))];
        assert_eq!(
            delta(std::slice::from_ref(&whole), &before),
            std::slice::from_ref(&whole)
        );
        let less = TopicEvents {
            produced: 2,
            ..whole.clone()
        };
        assert_eq!(
            delta(std::slice::from_ref(&whole), &[less]),
            [TopicEvents {
                produced: 5,
                ..whole
            }]
        );
    }
}
