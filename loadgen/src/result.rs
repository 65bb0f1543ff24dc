//! What a run measured: latency per endpoint overall and per second,
//! outcome counts, the achieved rate, and the whole history.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::history::{OpKind, Operation, Outcome};
use crate::recorder::{record_latency, UserLog};

/// Significant figures of the overall histograms: 0.1% resolution.
const SIGFIG: u8 = 3;
/// Significant figures of the per-second ones: 1% is plenty for a
/// timeline, and keeps a long run's windows small (a few KB each).
const WINDOW_SIGFIG: u8 = 2;

fn histogram(sigfig: u8) -> Histogram<u64> {
    // 2 and 3 significant figures are valid precisions.
    Histogram::new(sigfig).unwrap_or_else(|_| unreachable!())
}

/// Requests by how they ended. A request the gateway refused at its edge
/// (401 unauthorized, 429 rate limited) is counted apart, not as a
/// failure: the system did what it was told to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    /// Answered 401: no token, or one the gateway refused.
    #[serde(default)]
    pub unauthorized: u64,
    /// Answered 429: over a rate limit.
    #[serde(default)]
    pub rate_limited: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.unknown + self.rejected()
    }

    /// Refused at the edge: unauthorized or rate limited.
    pub fn rejected(&self) -> u64 {
        self.unauthorized + self.rate_limited
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Counts) {
        self.ok += other.ok;
        self.fail += other.fail;
        self.unknown += other.unknown;
        self.unauthorized += other.unauthorized;
        self.rate_limited += other.rate_limited;
    }

    fn add(&mut self, outcome: Outcome, status: Option<u16>) {
        match (outcome, status) {
            (Outcome::Fail, Some(401)) => self.unauthorized += 1,
            (Outcome::Fail, Some(429)) => self.rate_limited += 1,
            (Outcome::Ok, _) => self.ok += 1,
            (Outcome::Fail, _) => self.fail += 1,
            (Outcome::Unknown, _) => self.unknown += 1,
        }
    }
}

/// One endpoint's figures (overall, or in one window).
#[derive(Debug, Clone)]
pub struct EndpointResult {
    pub counts: Counts,
    /// Latency in microseconds, from the intended send time to the answer
    /// (or the timeout), every outcome included.
    pub latency: Histogram<u64>,
}

impl EndpointResult {
    fn new(sigfig: u8) -> Self {
        EndpointResult {
            counts: Counts::default(),
            latency: histogram(sigfig),
        }
    }

    fn add(&mut self, op: &Operation) {
        self.counts.add(op.outcome, op.status);
        record_latency(&mut self.latency, op.latency_us());
    }
}

/// One second of the measured load, by the intended send time of its
/// requests (so a fault's window lines up with the requests it hit).
#[derive(Debug, Clone)]
pub struct Window {
    /// Seconds from where measuring started.
    pub second: u32,
    pub endpoints: BTreeMap<&'static str, EndpointResult>,
}

/// A run's result.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Wall-clock time of the run's start; every `_us` counts from here.
    pub started_at: SystemTime,
    /// From the run's start to its end (set-up and drain included).
    pub elapsed: Duration,
    /// When the load (warm-up first) started, after the set-up.
    pub load_started_us: u64,
    /// When measuring started (the warm-up's end).
    pub measured_from_us: u64,
    /// When the load was due to end, or was cancelled.
    pub measured_until_us: u64,
    /// Whether the run was cancelled before its end.
    pub cancelled: bool,
    /// goose users run.
    pub users: u32,
    /// Per endpoint (`POST /api/orders`...), measured requests only.
    pub endpoints: BTreeMap<&'static str, EndpointResult>,
    /// Per second of the measured load.
    pub windows: Vec<Window>,
    /// Journeys started in each measured second.
    pub achieved_rate: Vec<u32>,
    /// Open model: the target rate in the middle of each measured second.
    pub target_rate: Vec<f64>,
    /// Open model: arrivals the schedule held up to its end (or the
    /// cancellation), warm-up included.
    pub arrivals_due: u64,
    /// Open model: arrivals due that never started, because every user was
    /// busy until the schedule ended (raise `max_users`).
    pub missed_arrivals: u64,
    /// Every request, in the order invoked, set-up and warm-up included.
    pub history: Vec<Operation>,
}

pub(crate) struct Meta {
    pub started_at: SystemTime,
    pub elapsed: Duration,
    pub load_started_us: u64,
    pub measured_from_us: u64,
    pub measured_until_us: u64,
    pub cancelled: bool,
    pub users: u32,
    pub target_rate: Vec<f64>,
    pub arrivals_due: u64,
}

impl LoadResult {
    /// Merges the users' logs.
    pub(crate) fn assemble(logs: Vec<UserLog>, meta: Meta) -> Self {
        let mut history = Vec::with_capacity(logs.iter().map(|l| l.ops.len()).sum());
        let mut achieved_rate: Vec<u32> = Vec::new();
        for log in logs {
            history.extend(log.ops);
            if log.starts.len() > achieved_rate.len() {
                achieved_rate.resize(log.starts.len(), 0);
            }
            for (total, n) in achieved_rate.iter_mut().zip(&log.starts) {
                *total += n;
            }
        }
        history.sort_unstable_by_key(|o| o.id);
        let started: u64 = history
            .iter()
            .filter(|o| o.journey.is_some())
            .map(|o| o.journey)
            .collect::<std::collections::HashSet<_>>()
            .len() as u64;

        let mut endpoints = BTreeMap::new();
        let mut windows: Vec<Window> = Vec::new();
        for op in history.iter().filter(|o| o.journey.is_some()) {
            let Some(since) = op.intended_us.checked_sub(meta.measured_from_us) else {
                continue;
            };
            let name = op.kind.endpoint();
            endpoints
                .entry(name)
                .or_insert_with(|| EndpointResult::new(SIGFIG))
                .add(op);
            let second = u32::try_from(since / 1_000_000).unwrap_or(u32::MAX);
            // Bounded by the run's length: requests end with the drain.
            while windows.len() <= second as usize {
                let second = windows.len() as u32;
                windows.push(Window {
                    second,
                    endpoints: BTreeMap::new(),
                });
            }
            if let Some(w) = windows.get_mut(second as usize) {
                w.endpoints
                    .entry(name)
                    .or_insert_with(|| EndpointResult::new(WINDOW_SIGFIG))
                    .add(op);
            }
        }
        let missed_arrivals = if meta.target_rate.is_empty() {
            0
        } else {
            meta.arrivals_due.saturating_sub(started)
        };
        LoadResult {
            started_at: meta.started_at,
            elapsed: meta.elapsed,
            load_started_us: meta.load_started_us,
            measured_from_us: meta.measured_from_us,
            measured_until_us: meta.measured_until_us,
            cancelled: meta.cancelled,
            users: meta.users,
            endpoints,
            windows,
            achieved_rate,
            target_rate: meta.target_rate,
            arrivals_due: meta.arrivals_due,
            missed_arrivals,
            history,
        }
    }

    /// Every endpoint's latency and counts together.
    pub fn overall(&self) -> EndpointResult {
        let mut all = EndpointResult::new(SIGFIG);
        for e in self.endpoints.values() {
            all.counts.merge(&e.counts);
            // Both auto-resize, so adding cannot fall out of range.
            let _ = all.latency.add(&e.latency);
        }
        all
    }

    /// One endpoint's figures, by kind.
    pub fn endpoint(&self, kind: OpKind) -> Option<&EndpointResult> {
        self.endpoints.get(kind.endpoint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::Live;

    fn op(
        id: u64,
        journey: Option<u64>,
        intended_us: u64,
        latency: u64,
        outcome: Outcome,
    ) -> Operation {
        Operation {
            id,
            journey,
            kind: OpKind::ListProducts,
            intended_us,
            invoke_us: intended_us,
            complete_us: intended_us + latency,
            outcome,
            status: None,
            order_id: None,
            idempotency_key: None,
            detail: None,
        }
    }

    #[test]
    fn merges_logs_and_keeps_set_up_and_warm_up_out_of_the_figures() {
        let live = Live::default();
        let mut a = UserLog::new(&live);
        let mut b = UserLog::new(&live);
        a.record(op(0, None, 0, 5, Outcome::Ok), &live);
        a.record(op(2, Some(0), 500_000, 7, Outcome::Ok), &live);
        b.record(op(1, Some(1), 1_000_000, 1_000, Outcome::Fail), &live);
        b.record(op(3, Some(2), 2_500_000, 2_000, Outcome::Unknown), &live);
        // Refused at the edge: counted apart from the failures.
        for (id, status) in [(4, 401), (5, 429)] {
            let mut refused = op(id, Some(2), 2_600_000, 100, Outcome::Fail);
            refused.status = Some(status);
            a.record(refused, &live);
        }
        let r = LoadResult::assemble(
            vec![a, b],
            Meta {
                started_at: SystemTime::now(),
                elapsed: Duration::from_secs(3),
                load_started_us: 100,
                measured_from_us: 1_000_000,
                measured_until_us: 3_000_000,
                cancelled: false,
                users: 2,
                target_rate: vec![1.0, 1.0],
                arrivals_due: 4,
            },
        );
        assert_eq!(
            r.history.iter().map(|o| o.id).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5]
        );
        let e = r.endpoint(OpKind::ListProducts).unwrap();
        assert_eq!(
            e.counts,
            Counts {
                ok: 0,
                fail: 1,
                unknown: 1,
                unauthorized: 1,
                rate_limited: 1,
            }
        );
        assert_eq!(r.windows.len(), 2);
        assert_eq!(
            r.windows[1].endpoints["GET /api/products"].counts.unknown,
            1
        );
        assert_eq!(r.missed_arrivals, 1);
        let overall = r.overall();
        assert_eq!(overall.counts.total(), 4);
        assert_eq!(overall.counts.rejected(), 2);
        assert!((overall.latency.max() as f64 / 1000.0 - 2.0).abs() < 0.01);
    }
}
