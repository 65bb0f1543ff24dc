//! What is compared, and how each figure and its noise samples are read
//! from a report.
//!
//! A figure is keyed by flow (`None`: the whole run of a multi-flow
//! report), target and metric. Targets follow the gates' convention: an
//! endpoint (`POST /api/orders`), a flow's name for the flow as a whole,
//! a link (`orders->payments`), a topic, a consumer group, or `all`.
//! Where a report ran one flow only, whole-run figures (breaker opens,
//! dead letters, lag) are filed under that flow, so a one-flow report
//! keys the same figure the same way whichever record it came from.
//!
//! Which keys a report has depends on its shape (its flows, endpoints,
//! links, topics, groups), not on the values: breaker opens that went
//! from 0 to 5 are compared, not listed as "only in new". The exceptions
//! are figures that need something to measure: a latency needs
//! operations, a dead-letter rate deliveries, a settle time settled orders.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::metrics::{Counts, Latency, ALL};
use crate::report::{FlowReport, Report, Window};

/// Latency changes smaller than this never count, whatever the
/// percentage: 0.2 ms is within a shared machine's scheduling jitter, and
/// at a 2 ms p50 it would otherwise be a 10% "regression" nobody could act on.
pub const LATENCY_FLOOR_MS: f64 = 0.2;

/// Throughput changes of at most this many operations per second never
/// count: in a 1 s window one operation more or less across the window's
/// edge is a whole op/s, so a very light load swings by this much on its own.
pub const THROUGHPUT_FLOOR: f64 = 0.5;

/// Counts (breaker opens, saga compensations) differing by at most this
/// never count: whether a breaker opens once more depends on which second
/// a fault's edge falls in, and the Poisson test's normal approximation is
/// poor for such small counts.
pub const COUNT_FLOOR: f64 = 2.0;

/// Error-rate and dead-letter-rate changes of at most 0.1 percentage
/// points never count: one failure in a thousand operations is a handful
/// of operations in a typical run, which is timing, not behaviour.
pub const RATE_FLOOR: f64 = 0.001;

/// Lag-maximum changes of at most this many messages never count:
/// consumers poll in batches, so a sample taken just before or just after
/// a poll differs by about a batch.
pub const LAG_FLOOR: f64 = 10.0;

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Latency, errors, breaker opens, compensations, dead letters, lag.
    #[default]
    Lower,
    /// Throughput.
    Higher,
}

/// The unit a figure is in, for rendering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Milliseconds.
    #[default]
    #[serde(rename = "ms")]
    Millis,
    /// Operations acknowledged per second.
    #[serde(rename = "ops/s")]
    PerSecond,
    /// A fraction (0.01 = 1%).
    #[serde(rename = "ratio")]
    Ratio,
    /// How many times.
    #[serde(rename = "count")]
    Count,
    /// Messages (consumer lag).
    #[serde(rename = "messages")]
    Messages,
}

/// A compared figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    Throughput,
    P50,
    P95,
    P99,
    Max,
    ErrorRate,
    /// The p99 of written → terminal, per flow.
    SettleP99,
    /// Times a link's breaker went to OPEN.
    BreakerOpened,
    SagaCompensated,
    DlqRate,
    LagMax,
}

impl Metric {
    /// Every compared metric, in the order rows list them.
    pub const ALL: [Metric; 11] = [
        Metric::Throughput,
        Metric::P50,
        Metric::P95,
        Metric::P99,
        Metric::Max,
        Metric::ErrorRate,
        Metric::SettleP99,
        Metric::BreakerOpened,
        Metric::SagaCompensated,
        Metric::DlqRate,
        Metric::LagMax,
    ];

    /// The name rows and thresholds use (the gates' name where a gate
    /// reads the same figure).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::P50 => "p50",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::Max => "max",
            Metric::ErrorRate => "error_rate",
            Metric::SettleP99 => "settle.p99",
            Metric::BreakerOpened => "breaker.opened",
            Metric::SagaCompensated => "saga.compensated",
            Metric::DlqRate => "dlq.rate",
            Metric::LagMax => "lag.max",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn names() -> Vec<&'static str> {
        Metric::ALL.iter().map(|m| m.name()).collect()
    }

    pub fn better(self) -> Better {
        match self {
            Metric::Throughput => Better::Higher,
            _ => Better::Lower,
        }
    }

    /// The absolute change at or below which the figure is unchanged.
    pub fn floor(self) -> f64 {
        match self {
            Metric::Throughput => THROUGHPUT_FLOOR,
            Metric::P50 | Metric::P95 | Metric::P99 | Metric::Max | Metric::SettleP99 => {
                LATENCY_FLOOR_MS
            }
            Metric::ErrorRate | Metric::DlqRate => RATE_FLOOR,
            Metric::BreakerOpened | Metric::SagaCompensated => COUNT_FLOOR,
            Metric::LagMax => LAG_FLOOR,
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::Throughput => Unit::PerSecond,
            Metric::P50 | Metric::P95 | Metric::P99 | Metric::Max | Metric::SettleP99 => {
                Unit::Millis
            }
            Metric::ErrorRate | Metric::DlqRate => Unit::Ratio,
            Metric::BreakerOpened | Metric::SagaCompensated => Unit::Count,
            Metric::LagMax => Unit::Messages,
        }
    }

    fn of_latency(self, l: &Latency) -> f64 {
        match self {
            Metric::P50 => l.p50,
            Metric::P95 => l.p95,
            Metric::Max => l.max,
            _ => l.p99,
        }
    }
}

/// The latency percentiles compared per flow and per endpoint.
const LATENCIES: [Metric; 4] = [Metric::P50, Metric::P95, Metric::P99, Metric::Max];

/// What a figure's noise is judged from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Samples {
    /// The figure's value in each time window (or lag sample).
    Series(Vec<f64>),
    /// The figure is a count of events.
    Count(u64),
    /// The figure is `hits / trials`.
    Proportion { hits: u64, trials: u64 },
    /// Nothing to judge the noise by.
    Nothing,
}

/// Where a figure is, in either run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub flow: Option<String>,
    pub target: String,
    pub metric: Metric,
}

/// One figure of one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    pub key: Key,
    pub value: f64,
    pub samples: Samples,
}

/// Every figure `report` has, in a stable order. Windows with fewer than
/// `min_ops` operations are left out of per-window latency and rate
/// samples: a window with two operations has a "p99" that is one of them.
pub(crate) fn figures(report: &Report, min_ops: u64) -> Vec<Figure> {
    let mut out = Figures {
        list: Vec::new(),
        min_ops,
    };
    for (name, flow) in &report.flows {
        out.flow(name, flow);
    }
    let single = single_flow(report);
    out.breakers(report, single);
    out.sagas(report, single);
    out.dead_letters(report, single);
    out.lag(report, single);
    // A figure with no finite value is no figure (JSON cannot carry NaN,
    // but an in-memory report might).
    out.list.retain(|f| f.value.is_finite());
    out.list
}

/// The flow's name when the report ran exactly one.
fn single_flow(report: &Report) -> Option<&str> {
    match report.flows.len() {
        1 => report.flows.keys().next().map(String::as_str),
        _ => None,
    }
}

struct Figures {
    list: Vec<Figure>,
    min_ops: u64,
}

impl Figures {
    fn push(&mut self, flow: Option<&str>, target: &str, metric: Metric, value: f64, s: Samples) {
        self.list.push(Figure {
            key: Key {
                flow: flow.map(str::to_string),
                target: target.to_string(),
                metric,
            },
            value,
            samples: s,
        });
    }

    /// One flow: as a whole (target = the flow's name), then per endpoint.
    fn flow(&mut self, name: &str, f: &FlowReport) {
        let min_ops = self.min_ops;
        let flow = Some(name);
        let series = |pick: &dyn Fn(&Window) -> Option<f64>| -> Samples {
            Samples::Series(f.windows.iter().filter_map(pick).collect())
        };

        self.push(
            flow,
            name,
            Metric::Throughput,
            f.throughput,
            series(&|w| Some(w.throughput)),
        );
        if f.latency.count > 0 {
            for m in LATENCIES {
                let s = series(&|w| (w.latency.count >= min_ops).then(|| m.of_latency(&w.latency)));
                self.push(flow, name, m, m.of_latency(&f.latency), s);
            }
        }
        if f.requests.total > 0 {
            let s = series(&|w| window_error_rate(&w.requests, min_ops));
            self.push(flow, name, Metric::ErrorRate, f.requests.error_rate(), s);
        }

        // Per-window endpoint figures exist only if the producer recorded
        // them; without any, an endpoint's windows would all read 0.
        let per_window = f.windows.iter().any(|w| !w.endpoints.is_empty());
        let secs = measured_secs(f);
        for (endpoint, e) in &f.endpoints {
            let window = |w: &Window| w.endpoints.get(endpoint).copied().unwrap_or_default();
            let samples = |pick: &dyn Fn(&Window) -> Option<f64>| -> Samples {
                if per_window {
                    series(pick)
                } else {
                    Samples::Nothing
                }
            };
            if let Some(secs) = secs {
                let s = samples(&|w| Some(window(w).requests.ok as f64 / window_secs(w)));
                self.push(
                    flow,
                    endpoint,
                    Metric::Throughput,
                    e.requests.ok as f64 / secs,
                    s,
                );
            }
            if e.latency.count > 0 {
                for m in LATENCIES {
                    let s = samples(&|w| {
                        let l = window(w).latency;
                        (l.count >= min_ops).then(|| m.of_latency(&l))
                    });
                    self.push(flow, endpoint, m, m.of_latency(&e.latency), s);
                }
            }
            if e.requests.total > 0 {
                let s = samples(&|w| window_error_rate(&window(w).requests, min_ops));
                self.push(
                    flow,
                    endpoint,
                    Metric::ErrorRate,
                    e.requests.error_rate(),
                    s,
                );
            }
        }

        if f.settle.count > 0 {
            let s = series(&|w| (w.settle.count >= min_ops).then_some(w.settle.p99));
            self.push(flow, name, Metric::SettleP99, f.settle.p99, s);
        }
        if let Some(saga) = f.saga {
            let n = saga.compensated;
            self.push(
                flow,
                name,
                Metric::SagaCompensated,
                n as f64,
                Samples::Count(n),
            );
        }
    }

    /// Breaker opens per link: per flow when the report ran several and
    /// says which flow each transition happened in; otherwise for the
    /// whole run, from the counts the gates read.
    fn breakers(&mut self, r: &Report, single: Option<&str>) {
        let links: BTreeSet<&str> = r
            .metrics
            .breaker_opened
            .keys()
            .map(String::as_str)
            .chain(r.breakers.iter().map(|t| t.link.as_str()))
            .collect();
        let opened = |flow: Option<&str>, link: &str| -> u64 {
            r.breakers
                .iter()
                .filter(|t| t.link == link && t.to.eq_ignore_ascii_case("OPEN"))
                .filter(|t| flow.is_none() || t.flow.as_deref() == flow)
                .count() as u64
        };
        let split = r.flows.len() > 1 && r.breakers.iter().all(|t| t.flow.is_some());
        if split {
            for flow in r.flows.keys() {
                for link in &links {
                    let n = opened(Some(flow), link);
                    self.push(
                        Some(flow),
                        link,
                        Metric::BreakerOpened,
                        n as f64,
                        Samples::Count(n),
                    );
                }
            }
        } else {
            for link in &links {
                let n = r
                    .metrics
                    .breaker_opened
                    .get(*link)
                    .copied()
                    .unwrap_or_else(|| opened(None, link));
                self.push(
                    single,
                    link,
                    Metric::BreakerOpened,
                    n as f64,
                    Samples::Count(n),
                );
            }
        }
    }

    /// Compensations for the whole run, when no flow recorded its own.
    fn sagas(&mut self, r: &Report, single: Option<&str>) {
        if r.flows.values().any(|f| f.saga.is_some()) {
            return;
        }
        if let Some(saga) = r.saga.or(r.metrics.saga) {
            let n = saga.compensated;
            self.push(
                single,
                single.unwrap_or(ALL),
                Metric::SagaCompensated,
                n as f64,
                Samples::Count(n),
            );
        }
    }

    /// The dead-letter rate per topic, over the whole run (the records
    /// are not per flow).
    fn dead_letters(&mut self, r: &Report, single: Option<&str>) {
        for d in r.dlq.iter().filter(|d| d.produced > 0) {
            let rate = d.dead_lettered.min(d.produced) as f64 / d.produced as f64;
            self.push(
                single,
                &d.topic,
                Metric::DlqRate,
                rate,
                Samples::Proportion {
                    hits: d.dead_lettered,
                    trials: d.produced,
                },
            );
        }
    }

    /// The lag maximum per consumer group (and flow, where the samples
    /// say), judged over the lag samples through the run.
    fn lag(&mut self, r: &Report, single: Option<&str>) {
        let mut sampled: BTreeMap<(Option<&str>, &str), Vec<f64>> = BTreeMap::new();
        for s in &r.lag {
            let flow = s.flow.as_deref().or(single);
            sampled
                .entry((flow, s.group.as_str()))
                .or_default()
                .push(s.lag as f64);
        }
        let summary = r.metrics.lag.as_ref();
        for ((flow, group), values) in &sampled {
            // Where the key covers the whole run, the gates' figure.
            let whole_run = flow.is_none() || *flow == single;
            let max = summary
                .and_then(|l| l.get(*group))
                .filter(|_| whole_run)
                .map(|l| l.max as f64)
                .unwrap_or_else(|| values.iter().copied().fold(0.0, f64::max));
            self.push(
                *flow,
                group,
                Metric::LagMax,
                max,
                Samples::Series(values.clone()),
            );
        }
        for (group, l) in summary.into_iter().flatten() {
            if !sampled.keys().any(|(_, g)| g == group) {
                self.push(
                    single,
                    group,
                    Metric::LagMax,
                    l.max as f64,
                    Samples::Nothing,
                );
            }
        }
    }
}

/// A window's error rate, if it had enough operations to have one.
fn window_error_rate(c: &Counts, min_ops: u64) -> Option<f64> {
    (c.admitted() >= min_ops.max(1)).then(|| c.error_rate())
}

fn window_secs(w: &Window) -> f64 {
    match w.end_ms.saturating_sub(w.start_ms) {
        0 => 1.0,
        ms => ms as f64 / 1000.0,
    }
}

/// How long a flow's measured load ran, in seconds: throughput is
/// acknowledged operations per second, so the two give it back; failing
/// that, the windows' span.
fn measured_secs(f: &FlowReport) -> Option<f64> {
    if f.throughput > 0.0 && f.requests.ok > 0 {
        return Some(f.requests.ok as f64 / f.throughput);
    }
    let first = f.windows.first()?;
    let last = f.windows.last()?;
    let ms = last.end_ms.saturating_sub(first.start_ms);
    (ms > 0).then(|| ms as f64 / 1000.0)
}
