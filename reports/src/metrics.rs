//! The figures a run produces, as gates read them. The runner fills a
//! [`Metrics`] from the client's histograms, the services' counters and the
//! final state; a gate naming a figure the run did not fill fails with a
//! detail saying so (an async metric in a sync-only run, say), never passes.
//!
//! Keys: latency, request counts and throughput are keyed by *target*: an
//! endpoint (`"POST /api/orders"`), a flow (`"sync"`, `"async"`) or
//! [`ALL`] for the whole run; links by name (`"orders->payments"`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gates::MetricRef;
use crate::history::{History, Outcome};
use crate::state::{FinalState, TopicEvents, CANCELLED, CONFIRMED};

/// The target key of whole-run figures; a gate without an argument reads it.
pub const ALL: &str = "all";

/// Everything gates can read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    /// Client latency per target, in milliseconds.
    pub latency: BTreeMap<String, Latency>,
    /// Client operations per target.
    pub requests: BTreeMap<String, Counts>,
    /// Operations acknowledged per second, per target.
    pub throughput: BTreeMap<String, f64>,
    /// Saga outcomes, from the orders service's counters.
    pub saga: Option<SagaOutcomes>,
    /// Times each link's breaker went to OPEN. The runner records every
    /// link it watched, 0 included, so a missing link means "not watched".
    pub breaker_opened: BTreeMap<String, u64>,
    /// Retried attempts per link, same convention.
    pub retries: BTreeMap<String, u64>,
    /// Event accounting per topic; `None` when the run had no event path.
    pub events: Option<Vec<TopicEvents>>,
    /// Consumer lag per group, in messages; `None` without an event path.
    pub lag: Option<BTreeMap<String, LagSummary>>,
    /// Order counts from the history and the final state.
    pub orders: Option<OrderCounts>,
    /// Violations per invariant; `None` until invariants are checked.
    pub invariants: Option<BTreeMap<String, u64>>,
}

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Operations measured.
    pub count: u64,
    pub min: f64,
    pub avg: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Client operations by outcome. Those the gateway refused at its edge
/// (401 unauthorized, 429 rate limited) are in `total` and counted apart,
/// not as failures: rates of errors are over the operations it let in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    /// No answer (timeout, dropped connection).
    pub unknown: u64,
    /// Answered 401 by the gateway: no token, or a refused one.
    #[serde(default)]
    pub unauthorized: u64,
    /// Answered 429 by the gateway: over a rate limit.
    #[serde(default)]
    pub rate_limited: u64,
}

impl Counts {
    /// Counts one operation, by its outcome and, when it was answered,
    /// its status.
    pub fn add(&mut self, outcome: Outcome, status: Option<u16>) {
        self.total += 1;
        match (outcome, status) {
            (Outcome::Fail, Some(401)) => self.unauthorized += 1,
            (Outcome::Fail, Some(429)) => self.rate_limited += 1,
            (Outcome::Ok, _) => self.ok += 1,
            (Outcome::Fail, _) => self.failed += 1,
            (Outcome::Unknown, _) => self.unknown += 1,
        }
    }

    /// Failed or unknown.
    pub fn errors(&self) -> u64 {
        self.failed + self.unknown
    }

    /// Refused at the edge: unauthorized or rate limited.
    pub fn rejected(&self) -> u64 {
        self.unauthorized + self.rate_limited
    }

    /// Operations the gateway let in: all but the rejected.
    pub fn admitted(&self) -> u64 {
        self.total.saturating_sub(self.rejected())
    }

    /// (failed + unknown) / admitted; 0 with no operations admitted.
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors(), self.admitted())
    }
}

/// How sagas ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaOutcomes {
    /// Confirmed.
    pub completed: u64,
    /// Cancelled after undoing at least one step.
    pub compensated: u64,
    /// Cancelled with nothing to undo.
    pub failed: u64,
}

/// One consumer group's lag, in messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagSummary {
    pub max: u64,
    /// After quiescing.
    #[serde(rename = "final")]
    pub last: u64,
}

/// Orders, as the client and the server saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCounts {
    /// `place_order` operations sent.
    pub placed: u64,
    /// … answered OK.
    pub acknowledged: u64,
    /// Orders on the server by status.
    pub confirmed: u64,
    pub cancelled: u64,
    /// Not terminal after quiescing.
    pub pending: u64,
    /// Acknowledged, with an order id, and absent on the server.
    pub lost: u64,
}

impl OrderCounts {
    /// Counts orders from a history and a final state.
    pub fn from_run(history: &History, state: &FinalState) -> Self {
        let mut c = OrderCounts::default();
        let ids: std::collections::HashSet<i64> = state.orders.iter().map(|o| o.id).collect();
        for op in history.placements() {
            c.placed += 1;
            if op.outcome == Outcome::Ok {
                c.acknowledged += 1;
                if op.order_id.is_some_and(|id| !ids.contains(&id)) {
                    c.lost += 1;
                }
            }
        }
        for o in &state.orders {
            match o.status.as_str() {
                CONFIRMED => c.confirmed += 1,
                CANCELLED => c.cancelled += 1,
                _ => c.pending += 1,
            }
        }
        c
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Why a gate operand has no value in a run. The text becomes the failed
/// gate's detail, so each says which figure is missing and, where it
/// helps, why (a sync-only run has no event path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// A per-target figure (`what`: latency, operations, throughput) the
    /// run did not record for a flow: probably that flow did not run.
    #[error("no {what} recorded for `{flow}` in this run: did it run the {flow} flow?")]
    FlowNotRecorded { what: &'static str, flow: String },
    /// A per-target figure the run did not record for an endpoint or
    /// [`ALL`].
    #[error("no {what} recorded for `{target}` in this run")]
    NotRecorded { what: &'static str, target: String },
    #[error("no saga outcomes were collected in this run")]
    NoSaga,
    /// A per-link figure (`what`: breaker, retry) for a link the run did
    /// not watch.
    #[error("no {what} record for link `{link}` in this run (was the link watched?)")]
    NoLinkRecord { what: &'static str, link: String },
    /// A per-link figure summed over links, and no link was watched.
    #[error("no {what} records in this run")]
    NoLinkRecords { what: &'static str },
    #[error("no event accounting in this run (dead-letter queues exist only on the async flow)")]
    NoEvents,
    /// Event accounting exists, but not for this topic (empty: for any).
    #[error("no event accounting for topic `{topic}` in this run")]
    NoTopic { topic: String },
    #[error("no consumer lag in this run (consumers exist only on the async flow)")]
    NoLag,
    #[error("no lag recorded for consumer group `{group}` in this run")]
    NoGroupLag { group: String },
    #[error("no consumer lag recorded in this run")]
    NoLagRecorded,
    #[error("no order counts were collected in this run")]
    NoOrders,
    #[error("invariants were not checked in this run")]
    NoInvariants,
    #[error("invariant `{invariant}` was not checked in this run")]
    InvariantNotChecked { invariant: String },
    /// A registered metric this version cannot read: a bug (a test keeps
    /// the registry and [`Metrics::value`] in step), and the gate fails.
    #[error("metric `{metric}` has no source in this version")]
    NoSource { metric: String },
}

impl Metrics {
    /// The value a gate operand names, in its base unit, or why there is
    /// none in this run.
    pub fn value(&self, m: &MetricRef) -> Result<f64, MetricError> {
        let name = m.def.name;
        let arg = m.arg.as_deref();
        let target = arg.unwrap_or(ALL);
        let run_hint = |what: &'static str| match target {
            "sync" | "async" => MetricError::FlowNotRecorded {
                what,
                flow: target.to_string(),
            },
            _ => MetricError::NotRecorded {
                what,
                target: target.to_string(),
            },
        };
        match name {
            "p50" | "p90" | "p95" | "p99" | "p999" | "min" | "max" | "avg" => {
                let l = self
                    .latency
                    .get(target)
                    .filter(|l| l.count > 0)
                    .ok_or_else(|| run_hint("latency"))?;
                Ok(match name {
                    "p50" => l.p50,
                    "p90" => l.p90,
                    "p95" => l.p95,
                    "p99" => l.p99,
                    "p999" => l.p999,
                    "min" => l.min,
                    "max" => l.max,
                    _ => l.avg,
                })
            }
            "requests" | "errors" | "error_rate" | "unknown_rate" | "rejected" | "unauthorized"
            | "rate_limited" => {
                let c = self
                    .requests
                    .get(target)
                    .filter(|c| c.total > 0)
                    .ok_or_else(|| run_hint("operations"))?;
                Ok(match name {
                    "requests" => c.total as f64,
                    "errors" => c.errors() as f64,
                    "error_rate" => c.error_rate(),
                    "rejected" => c.rejected() as f64,
                    "unauthorized" => c.unauthorized as f64,
                    "rate_limited" => c.rate_limited as f64,
                    _ => ratio(c.unknown, c.admitted()),
                })
            }
            "throughput" => self
                .throughput
                .get(target)
                .copied()
                .ok_or_else(|| run_hint("throughput")),
            "saga.completed" | "saga.compensated" | "saga.failed" => {
                let s = self.saga.ok_or(MetricError::NoSaga)?;
                Ok(match name {
                    "saga.completed" => s.completed,
                    "saga.compensated" => s.compensated,
                    _ => s.failed,
                } as f64)
            }
            "breaker.opened" => per_link(&self.breaker_opened, arg, "breaker"),
            "retries" => per_link(&self.retries, arg, "retry"),
            "dlq.count" | "dlq.rate" => {
                let events = self.events.as_ref().ok_or(MetricError::NoEvents)?;
                let rows: Vec<&TopicEvents> = events
                    .iter()
                    .filter(|e| arg.is_none_or(|t| e.topic == t))
                    .collect();
                if rows.is_empty() {
                    return Err(MetricError::NoTopic {
                        topic: arg.unwrap_or_default().to_string(),
                    });
                }
                let dead: u64 = rows.iter().map(|e| e.dead_lettered).sum();
                let produced: u64 = rows.iter().map(|e| e.produced).sum();
                Ok(if name == "dlq.count" {
                    dead as f64
                } else {
                    ratio(dead, produced)
                })
            }
            "lag.max" | "lag.final" => {
                let lag = self.lag.as_ref().ok_or(MetricError::NoLag)?;
                let pick = |l: &LagSummary| if name == "lag.max" { l.max } else { l.last };
                match arg {
                    Some(g) => {
                        lag.get(g)
                            .map(|l| pick(l) as f64)
                            .ok_or_else(|| MetricError::NoGroupLag {
                                group: g.to_string(),
                            })
                    }
                    None if lag.is_empty() => Err(MetricError::NoLagRecorded),
                    None => Ok(lag.values().map(pick).max().unwrap_or(0) as f64),
                }
            }
            "orders.placed"
            | "orders.acknowledged"
            | "orders.confirmed"
            | "orders.cancelled"
            | "orders.pending"
            | "orders.lost" => {
                let o = self.orders.ok_or(MetricError::NoOrders)?;
                Ok(match name {
                    "orders.placed" => o.placed,
                    "orders.acknowledged" => o.acknowledged,
                    "orders.confirmed" => o.confirmed,
                    "orders.cancelled" => o.cancelled,
                    "orders.pending" => o.pending,
                    _ => o.lost,
                } as f64)
            }
            "invariants.violations" => {
                let inv = self.invariants.as_ref().ok_or(MetricError::NoInvariants)?;
                match arg {
                    Some(n) => inv.get(n).map(|v| *v as f64).ok_or_else(|| {
                        MetricError::InvariantNotChecked {
                            invariant: n.to_string(),
                        }
                    }),
                    None => Ok(inv.values().sum::<u64>() as f64),
                }
            }
            // The registry and this match are kept in step by a test; an
            // operand that slips through fails its gate, never passes it.
            other => Err(MetricError::NoSource {
                metric: other.to_string(),
            }),
        }
    }
}

fn per_link(
    map: &BTreeMap<String, u64>,
    link: Option<&str>,
    what: &'static str,
) -> Result<f64, MetricError> {
    match link {
        Some(l) => map
            .get(l)
            .map(|v| *v as f64)
            .ok_or_else(|| MetricError::NoLinkRecord {
                what,
                link: l.to_string(),
            }),
        None if map.is_empty() => Err(MetricError::NoLinkRecords { what }),
        None => Ok(map.values().sum::<u64>() as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::{registry, MetricRef};

    #[test]
    fn every_registered_metric_has_a_source() {
        let mut m = Metrics::default();
        let l = Latency {
            count: 1,
            ..Default::default()
        };
        for t in [ALL, "sync", "POST /api/orders"] {
            m.latency.insert(t.into(), l);
            m.requests.insert(
                t.into(),
                Counts {
                    total: 1,
                    ok: 1,
                    ..Default::default()
                },
            );
            m.throughput.insert(t.into(), 1.0);
        }
        m.saga = Some(SagaOutcomes::default());
        m.breaker_opened.insert("orders->payments".into(), 0);
        m.retries.insert("orders->payments".into(), 0);
        m.events = Some(vec![]);
        m.lag = Some(BTreeMap::from([("payments".into(), LagSummary::default())]));
        m.orders = Some(OrderCounts::default());
        m.invariants = Some(BTreeMap::new());
        for def in registry::METRICS {
            let r = MetricRef { def, arg: None };
            let v = m.value(&r);
            let fine = v.is_ok() || def.name.starts_with("dlq.");
            assert!(fine, "{}: {v:?}", def.name);
            if let Err(e) = v {
                assert!(!e.to_string().contains("no source"), "{}: {e}", def.name);
            }
        }
    }

    #[test]
    fn order_counts_come_from_history_and_state() {
        let history: History = serde_json::from_str(
            r#"[{"id":1,"kind":"place_order","invoke_us":0,"outcome":"ok","order_id":1},
                {"id":2,"kind":"place_order","invoke_us":0,"outcome":"ok","order_id":9},
                {"id":3,"kind":"place_order","invoke_us":0,"outcome":"unknown"},
                {"id":4,"kind":"browse","invoke_us":0,"outcome":"ok"}]"#,
        )
        .unwrap();
        let state: FinalState = serde_json::from_str(
            r#"{"orders":[{"id":1,"status":"CONFIRMED","saga_step":"done","flow":"sync",
                          "quantity":1,"product_id":1,"total_cents":1}]}"#,
        )
        .unwrap();
        let c = OrderCounts::from_run(&history, &state);
        assert_eq!(
            c,
            OrderCounts {
                placed: 3,
                acknowledged: 2,
                confirmed: 1,
                cancelled: 0,
                pending: 0,
                lost: 1
            }
        );
    }

    #[test]
    fn refusals_at_the_edge_are_counted_apart_and_out_of_the_error_rate() {
        let mut c = Counts::default();
        for (outcome, status) in [
            (Outcome::Ok, Some(201)),
            (Outcome::Ok, Some(200)),
            (Outcome::Ok, Some(200)),
            (Outcome::Fail, Some(503)),
            (Outcome::Fail, Some(401)),
            (Outcome::Fail, Some(429)),
            (Outcome::Fail, Some(429)),
            (Outcome::Unknown, None),
        ] {
            c.add(outcome, status);
        }
        assert_eq!((c.total, c.ok, c.failed, c.unknown), (8, 3, 1, 1));
        assert_eq!((c.unauthorized, c.rate_limited, c.rejected()), (1, 2, 3));
        assert_eq!(c.admitted(), 5);
        // 2 errors among the 5 let in.
        assert!((c.error_rate() - 0.4).abs() < 1e-12);
        let mut m = Metrics::default();
        m.requests.insert(ALL.into(), c);
        let value = |gate: &str| {
            let g: crate::gates::Gate = gate.parse().unwrap();
            m.value(&g.left).unwrap()
        };
        assert_eq!(value("rejected > 0"), 3.0);
        assert_eq!(value("unauthorized > 0"), 1.0);
        assert_eq!(value("rate_limited > 0"), 2.0);
        assert!((value("unknown_rate > 0") - 0.2).abs() < 1e-12);
        // An older report.json, without the new counts, still reads.
        let old: Counts =
            serde_json::from_str(r#"{"total":2,"ok":1,"failed":1,"unknown":0}"#).unwrap();
        assert_eq!(old.rejected(), 0);
    }
}
