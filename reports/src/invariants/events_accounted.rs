//! No event is lost on the event path: for every topic (and consumer
//! group), each event produced was either consumed or sent to the topic's
//! dead-letter queue. Does not apply to runs without an event path.

use super::{Checker, InvariantResult, Tally};
use crate::history::History;
use crate::state::FinalState;

pub(super) const CHECKER: Checker = Checker {
    name: "events_accounted",
    rule: "every event produced was consumed or dead-lettered",
    check,
};

fn check(_history: &History, state: &FinalState) -> InvariantResult {
    let t = Tally::new(CHECKER.name);
    let Some(events) = &state.events else {
        return t
            .not_applicable("the run had no event path (sync flow only), so no event accounting");
    };
    if events.is_empty() {
        return t.not_applicable("the event path reported no topics");
    }
    let mut t = t;
    let (mut produced, mut dead) = (0, 0);
    for e in events {
        t.checked(1);
        produced += e.produced;
        dead += e.dead_lettered;
        let handled = e.consumed + e.dead_lettered;
        if handled < e.produced {
            let lost = e.produced - handled;
            t.violation(e.label(), || {
                format!(
                    "{}: {lost} of {} events neither consumed nor dead-lettered ({} consumed, {} dead-lettered)",
                    e.label(),
                    e.produced,
                    e.consumed,
                    e.dead_lettered
                )
            });
        }
    }
    t.finish(format!(
        "{} topic accounts: all {produced} events consumed or dead-lettered ({dead} dead-lettered)",
        events.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixtures::clean;
    use crate::invariants::Offender;

    #[test]
    fn passes_a_clean_run() {
        let (h, s) = clean();
        let r = check(&h, &s);
        assert!(r.passed, "{}", r.detail);
        assert!(!r.skipped);
        assert_eq!(
            r.detail,
            "2 topic accounts: all 20 events consumed or dead-lettered (1 dead-lettered)"
        );
    }

    #[test]
    fn finds_a_lost_event() {
        let (h, mut s) = clean();
        s.events.as_mut().unwrap()[1].consumed = 8;
        let r = check(&h, &s);
        assert!(!r.passed);
        assert_eq!(
            r.first_offending,
            vec![Offender::Key("orders (notifications)".into())]
        );
        assert_eq!(
            r.detail,
            "orders (notifications): 2 of 10 events neither consumed nor dead-lettered (8 consumed, 0 dead-lettered)"
        );
    }

    #[test]
    fn is_not_applicable_without_an_event_path() {
        let (h, mut s) = clean();
        s.events = None;
        let r = check(&h, &s);
        assert!(r.passed && r.skipped);
        assert_eq!(r.checked, 0);
        assert!(r.detail.starts_with("not applicable: "));
    }
}
