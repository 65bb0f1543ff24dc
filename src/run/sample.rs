//! Sampling while the run goes, once a second until the system is read
//! back: every caller's breakers and retries, and with an event path
//! every consumer's outbox backlog and lag.
//!
//! A service that crashes does not answer: its sample is skipped, and it
//! comes back with fresh breakers and zeroed counters. Its records are
//! merged with what was seen before (`BreakerLog` keeps transitions by
//! identity and carries counters that went down), so retries per interval
//! go on from where they were.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gauntlet_reports::report::{LagSample, OutboxSample, RetrySample};
use gauntlet_system::events::SUBSCRIPTIONS;
use gauntlet_system::Service;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::collect::{BreakerLog, EventsView, Probe, CALLERS};

/// How often breakers and lag are sampled while the run goes.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Everything sampled so far, times in unix ms.
#[derive(Default)]
pub(super) struct Samples {
    /// Unix ms of the measured start, once known.
    pub(super) origin_unix_ms: Option<i64>,
    pub(super) breakers: BreakerLog,
    /// (unix ms, group, lag)
    lag: Vec<(i64, String, u64)>,
    /// Per group: the largest lag seen, and the last.
    pub(super) lag_summary: BTreeMap<String, (u64, u64)>,
    /// (unix ms, retries per link so far)
    retry_totals: Vec<(i64, BTreeMap<String, u64>)>,
    /// (unix ms, service, outbox backlog)
    outbox: Vec<(i64, String, u64)>,
}

/// The samples as a leg keeps them: from the measured start on, `at_ms`
/// from it.
pub(super) struct Series {
    pub(super) lag: Vec<LagSample>,
    /// Retries per link per sampling interval.
    pub(super) retries: Vec<RetrySample>,
    pub(super) outbox: Vec<OutboxSample>,
}

impl Samples {
    /// Notes every link's retries so far (carried across restarts), at `now`.
    fn record_retries(&mut self, now: i64) {
        let totals = self.breakers.retries();
        self.retry_totals.push((now, totals));
    }

    /// One service's `/events` at `now`: its outbox backlog, and each of
    /// its groups' lag (a negative reading counts as 0).
    fn absorb_events(&mut self, now: i64, service: Service, view: EventsView) {
        self.outbox
            .push((now, service.to_string(), view.outbox.backlog.max(0) as u64));
        for c in view.consumers {
            let lag = c.lag.max(0) as u64;
            self.lag.push((now, c.group.clone(), lag));
            let entry = self.lag_summary.entry(c.group).or_default();
            entry.0 = entry.0.max(lag);
            entry.1 = lag;
        }
    }

    /// The samples taken from `origin` (unix ms) on, `at_ms` from it; lag
    /// samples name `flow_name`.
    pub(super) fn series(&self, flow_name: &str, origin: i64) -> Series {
        let lag = self
            .lag
            .iter()
            .filter(|(at, _, _)| *at >= origin)
            .map(|(at, group, lag)| LagSample {
                flow: Some(flow_name.to_string()),
                at_ms: (at - origin) as u64,
                group: group.clone(),
                lag: *lag,
            })
            .collect();
        let retries = retry_deltas(&self.retry_totals, origin);
        let outbox = self
            .outbox
            .iter()
            .filter(|(at, _, _)| *at >= origin)
            .map(|(at, service, backlog)| OutboxSample {
                at_ms: (at - origin) as u64,
                service: service.clone(),
                backlog: *backlog,
            })
            .collect();
        Series {
            lag,
            retries,
            outbox,
        }
    }
}

/// Per link, the retries between consecutive samples from `origin_unix_ms`
/// on (the first sample at or after it counts from the last one before
/// it, so the warm-up's retries stay out). A link is listed at every
/// sample once seen, 0 included, so a chart's series have one point per
/// sample.
fn retry_deltas(totals: &[(i64, BTreeMap<String, u64>)], origin_unix_ms: i64) -> Vec<RetrySample> {
    let mut out = Vec::new();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (at, per_link) in totals {
        for (link, total) in per_link {
            let before = last.insert(link, *total).unwrap_or(0);
            if *at >= origin_unix_ms {
                out.push(RetrySample {
                    at_ms: (at - origin_unix_ms) as u64,
                    link: link.clone(),
                    retries: total.saturating_sub(before),
                });
            }
        }
    }
    out
}

/// The services a consumer group lives in.
pub(super) fn consumer_services() -> impl Iterator<Item = Service> {
    SUBSCRIPTIONS.iter().map(|(s, _)| *s)
}

/// Samples every `SAMPLE_EVERY` until `stop`.
pub(super) async fn sample(
    services: Probe,
    uses_events: bool,
    samples: Arc<Mutex<Samples>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => sample_once(&services, uses_events, &samples).await,
            _ = stop.cancelled() => return,
        }
    }
}

/// One sample of every service that answers.
pub(super) async fn sample_once(services: &Probe, uses_events: bool, samples: &Mutex<Samples>) {
    // A crashed service does not answer: its sample is skipped, and its
    // records come back with it (transitions are merged, counters carried).
    for s in CALLERS {
        if let Ok(view) = services.breakers(s).await {
            samples.lock().breakers.absorb(&view);
        }
    }
    let now = gauntlet_system::db::now_ms();
    samples.lock().record_retries(now);
    if !uses_events {
        return;
    }
    for s in consumer_services() {
        if let Ok(view) = services.events(s).await {
            samples.lock().absorb_events(now, s, view);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::collect::{BreakerView, BreakersView, CallsView, ConsumerView, OutboxView};

    #[test]
    fn retries_over_time_are_per_interval_and_leave_the_warm_up_out() {
        let totals = vec![
            (900, BTreeMap::from([("orders->payments".to_string(), 4)])),
            (
                1900,
                BTreeMap::from([
                    ("orders->payments".to_string(), 10),
                    ("orders->catalog".to_string(), 1),
                ]),
            ),
            (2900, BTreeMap::from([("orders->payments".to_string(), 10)])),
        ];
        let d = retry_deltas(&totals, 1000);
        let got: Vec<(u64, &str, u64)> = d
            .iter()
            .map(|r| (r.at_ms, r.link.as_str(), r.retries))
            .collect();
        assert_eq!(
            got,
            [
                (900, "orders->catalog", 1),
                (900, "orders->payments", 6),
                (1900, "orders->payments", 0),
            ]
        );
    }

    fn breakers(link: &str, retries: u64) -> BreakersView {
        BreakersView {
            breakers: vec![BreakerView {
                link: link.into(),
                calls: CallsView { retries },
                transitions: Vec::new(),
            }],
        }
    }

    #[test]
    fn retries_per_interval_go_on_across_a_restart() {
        let mut s = Samples::default();
        // The warm-up.
        s.breakers.absorb(&breakers("orders->payments", 4));
        s.record_retries(900);
        s.breakers.absorb(&breakers("orders->payments", 10));
        s.record_retries(1_900);
        // Orders restarted: a fresh breaker, its counter from 0.
        s.breakers.absorb(&breakers("orders->payments", 3));
        s.record_retries(2_900);
        // Down at this sample: nothing read, the total stands.
        s.record_retries(3_900);
        let series = s.series("sync", 1_000);
        let got: Vec<(u64, &str, u64)> = series
            .retries
            .iter()
            .map(|r| (r.at_ms, r.link.as_str(), r.retries))
            .collect();
        assert_eq!(
            got,
            [
                (900, "orders->payments", 6),
                (1_900, "orders->payments", 3),
                (2_900, "orders->payments", 0),
            ]
        );
    }

    fn events(backlog: i64, group: &str, lag: i64) -> EventsView {
        EventsView {
            outbox: OutboxView { backlog },
            consumers: vec![ConsumerView {
                group: group.into(),
                lag,
            }],
        }
    }

    #[test]
    fn lag_and_outbox_leave_the_warm_up_out_and_the_summary_keeps_the_largest_and_last() {
        let mut s = Samples::default();
        s.absorb_events(900, Service::Payments, events(5, "payments", 7));
        s.absorb_events(1_900, Service::Payments, events(2, "payments", 12));
        // Negative readings count as 0.
        s.absorb_events(2_900, Service::Payments, events(-1, "payments", -3));
        // The warm-up's lag counts in the summary: it is the largest seen.
        s.absorb_events(950, Service::Orders, events(0, "orders", 30));

        assert_eq!(s.lag_summary["payments"], (12, 0));
        assert_eq!(s.lag_summary["orders"], (30, 30));
        let series = s.series("async", 1_000);
        let lag: Vec<(Option<&str>, u64, &str, u64)> = series
            .lag
            .iter()
            .map(|l| (l.flow.as_deref(), l.at_ms, l.group.as_str(), l.lag))
            .collect();
        assert_eq!(
            lag,
            [
                (Some("async"), 900, "payments", 12),
                (Some("async"), 1_900, "payments", 0),
            ]
        );
        let outbox: Vec<(u64, &str, u64)> = series
            .outbox
            .iter()
            .map(|o| (o.at_ms, o.service.as_str(), o.backlog))
            .collect();
        assert_eq!(outbox, [(900, "payments", 2), (1_900, "payments", 0)]);
    }
}
