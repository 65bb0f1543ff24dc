//! Letting the system settle after the load: every saga terminal and,
//! with an event path, every outbox empty and every group done with every
//! event, on `QUIET_CHECKS` checks in a row, within a bound.
//!
//! The waiting is here in `quiesce`; what counts as settled is decided by
//! the plain functions below it, one per thing read.

use std::time::Duration;

use gauntlet_reports::state::Order;
use gauntlet_system::Service;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::accounts::{event_progress, GroupProgress};
use super::collect::{EventsView, Probe};
use super::leg::Quiesce;
use super::sample::consumer_services;

/// How often quiescence is checked.
const QUIESCE_POLL: Duration = Duration::from_millis(250);
/// Consecutive clean checks that make the system quiet.
const QUIET_CHECKS: u32 = 2;
/// After an interruption: the short wait for the system before reading it.
pub(super) const INTERRUPTED_QUIESCE: Duration = Duration::from_secs(10);

/// Waits until every saga is terminal and, with an event path, every
/// outbox is empty and every group has handled every event; at most
/// `bound`.
pub(super) async fn quiesce(
    services: &Probe,
    bootstrap: Option<&str>,
    bound: Duration,
    interrupt: &CancellationToken,
) -> Quiesce {
    let start = Instant::now();
    let deadline = start + bound;
    let mut settling = Settling::default();
    let watch_interrupt = !interrupt.is_cancelled();
    loop {
        if settling.check(unsettled(services, bootstrap).await) {
            return Quiesce {
                settled: true,
                took: start.elapsed(),
                waiting_on: None,
            };
        }
        if Instant::now() >= deadline {
            return Quiesce {
                settled: false,
                took: start.elapsed(),
                waiting_on: settling.waiting_on,
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(QUIESCE_POLL) => {}
            // Ctrl-C while settling: read the system as it stands.
            _ = interrupt.cancelled(), if watch_interrupt => {
                return Quiesce { settled: false, took: start.elapsed(), waiting_on: settling.waiting_on };
            }
        }
    }
}

/// The checks so far of a system settling.
#[derive(Debug, Default)]
struct Settling {
    /// Clean checks in a row.
    quiet: u32,
    /// What was moving at the last check that found something.
    waiting_on: Option<String>,
}

impl Settling {
    /// Takes one check's finding (what is still moving, `None` for
    /// nothing): true once `QUIET_CHECKS` checks in a row found nothing.
    /// Something moving starts the count again, and is what the run
    /// waits on until a later finding replaces it.
    fn check(&mut self, unsettled: Option<String>) -> bool {
        match unsettled {
            None => {
                self.quiet += 1;
                self.quiet >= QUIET_CHECKS
            }
            Some(why) => {
                self.quiet = 0;
                self.waiting_on = Some(why);
                false
            }
        }
    }
}

/// What is still moving, or `None` when the system is quiet.
async fn unsettled(services: &Probe, bootstrap: Option<&str>) -> Option<String> {
    if let Some(why) = orders_unsettled(services.open_orders(5).await.map_err(|e| e.to_string())) {
        return Some(why);
    }
    let bootstrap = bootstrap?;
    // A service whose address is not known (a system running elsewhere)
    // is left to the broker's accounting below.
    for s in consumer_services().filter(|s| services.urls.contains_key(s)) {
        if let Some(why) = service_unsettled(s, services.events(s).await.map_err(|e| e.to_string()))
        {
            return Some(why);
        }
    }
    // Committed through the end: every event handled or dead-lettered.
    progress_unsettled(event_progress(bootstrap).await.map_err(|e| e.to_string()))
}

/// Orders not yet terminal (the first few of them), or unreadable.
fn orders_unsettled(open: Result<Vec<Order>, String>) -> Option<String> {
    match open {
        Ok(open) if !open.is_empty() => {
            let ids: Vec<String> = open.iter().map(|o| o.id.to_string()).collect();
            Some(format!(
                "orders not terminal (first ids: {})",
                ids.join(", ")
            ))
        }
        Ok(_) => None,
        Err(e) => Some(format!("orders unreadable: {e}")),
    }
}

/// One service's outbox not empty, or one of its groups behind, or the
/// service unreadable.
fn service_unsettled(s: Service, events: Result<EventsView, String>) -> Option<String> {
    match events {
        Ok(v) => {
            if v.outbox.backlog > 0 {
                return Some(format!("{s}'s outbox holds {} events", v.outbox.backlog));
            }
            v.consumers
                .iter()
                .find(|c| c.lag > 0)
                .map(|c| format!("consumer group {} lags by {}", c.group, c.lag))
        }
        Err(e) => Some(format!("{s} unreadable: {e}")),
    }
}

/// A group that has not committed through the end of a topic, or the
/// broker unreadable.
fn progress_unsettled(progress: Result<Vec<GroupProgress>, String>) -> Option<String> {
    match progress {
        Ok(progress) => progress.iter().find(|p| p.committed < p.produced).map(|p| {
            format!(
                "consumer group {} is done with {} of {} events on {}",
                p.group, p.committed, p.produced, p.topic
            )
        }),
        Err(e) => Some(format!("event progress: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::collect::{ConsumerView, OutboxView};

    #[test]
    fn quiet_takes_clean_checks_in_a_row_and_remembers_what_moved_last() {
        let mut s = Settling::default();
        assert!(!s.check(Some("orders not terminal (first ids: 3)".into())));
        assert!(!s.check(Some("payments's outbox holds 2 events".into())));
        // The latest finding is what the run waits on...
        assert_eq!(
            s.waiting_on.as_deref(),
            Some("payments's outbox holds 2 events")
        );
        // ... and stays so through clean checks short of quiet: a bound
        // reached here reports it.
        for _ in 1..QUIET_CHECKS {
            assert!(!s.check(None));
        }
        assert_eq!(
            s.waiting_on.as_deref(),
            Some("payments's outbox holds 2 events")
        );
        // Something moving starts the count again.
        assert!(!s.check(Some("consumer group orders lags by 1".into())));
        for _ in 1..QUIET_CHECKS {
            assert!(!s.check(None));
        }
        assert!(s.check(None));
    }

    fn order(id: i64) -> Order {
        Order {
            id,
            status: "PENDING".into(),
            saga_step: "charge".into(),
            flow: "async".into(),
            quantity: 1,
            product_id: 1,
            total_cents: 1_250,
            idempotency_key: None,
            created_at: None,
            settled_at: None,
            trace_id: None,
        }
    }

    #[test]
    fn open_or_unreadable_orders_are_unsettled() {
        assert_eq!(orders_unsettled(Ok(Vec::new())), None);
        assert_eq!(
            orders_unsettled(Ok(vec![order(3), order(8)])).as_deref(),
            Some("orders not terminal (first ids: 3, 8)")
        );
        assert_eq!(
            orders_unsettled(Err("GET http://x/orders: 503".into())).as_deref(),
            Some("orders unreadable: GET http://x/orders: 503")
        );
    }

    fn events(backlog: i64, lags: &[(&str, i64)]) -> EventsView {
        EventsView {
            outbox: OutboxView { backlog },
            consumers: lags
                .iter()
                .map(|(group, lag)| ConsumerView {
                    group: (*group).into(),
                    lag: *lag,
                })
                .collect(),
        }
    }

    #[test]
    fn a_service_is_settled_with_an_empty_outbox_and_no_group_behind() {
        let s = Service::Payments;
        assert_eq!(
            service_unsettled(s, Ok(events(0, &[("payments", 0)]))),
            None
        );
        // Negative readings are neither a backlog nor a lag.
        assert_eq!(
            service_unsettled(s, Ok(events(-1, &[("payments", -1)]))),
            None
        );
        // The outbox is named before the lag.
        assert_eq!(
            service_unsettled(s, Ok(events(2, &[("payments", 5)]))).as_deref(),
            Some("payments's outbox holds 2 events")
        );
        assert_eq!(
            service_unsettled(s, Ok(events(0, &[("a", 0), ("b", 4), ("c", 9)]))).as_deref(),
            Some("consumer group b lags by 4")
        );
        assert_eq!(
            service_unsettled(s, Err("refused".into())).as_deref(),
            Some("payments unreadable: refused")
        );
    }

    #[test]
    fn the_broker_is_settled_when_every_group_committed_through_the_end() {
        let p = |topic: &'static str, group: &'static str, produced: u64, committed: u64| {
            GroupProgress {
                topic,
                group,
                produced,
                committed,
            }
        };
        assert_eq!(
            progress_unsettled(Ok(vec![p("orders", "catalog", 7, 7)])),
            None
        );
        assert_eq!(progress_unsettled(Ok(Vec::new())), None);
        assert_eq!(
            progress_unsettled(Ok(vec![
                p("orders", "catalog", 7, 7),
                p("inventory", "payments", 9, 4),
                p("payments", "orders", 3, 0),
            ]))
            .as_deref(),
            Some("consumer group payments is done with 4 of 9 events on inventory")
        );
        assert_eq!(
            progress_unsettled(Err("broker down".into())).as_deref(),
            Some("event progress: broker down")
        );
    }
}
