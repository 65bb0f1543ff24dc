//! Latency, requests and throughput: the histograms and counts they are
//! read from, and those figures per target (each flow, each endpoint over
//! every flow, and `all`).

use std::collections::BTreeMap;

use gauntlet_loadgen::{self as loadgen, EndpointResult};
use gauntlet_reports::metrics::{Counts, Latency, ALL};
use gauntlet_reports::report::PercentilePoint;
use gauntlet_reports::Metrics;
use hdrhistogram::Histogram;

use crate::run::leg::Leg;

/// A histogram and counts over some seconds of load, to merge.
pub(super) struct Acc {
    pub(super) latency: Histogram<u64>,
    counts: loadgen::Counts,
    pub(super) secs: f64,
}

impl Acc {
    pub(super) fn new() -> Self {
        Acc {
            // 3 significant figures is a valid precision.
            latency: Histogram::new(3).unwrap_or_else(|_| unreachable!()),
            counts: loadgen::Counts::default(),
            secs: 0.0,
        }
    }

    pub(super) fn add(&mut self, e: &EndpointResult) {
        // Both auto-resize: adding cannot fall out of range.
        let _ = self.latency.add(&e.latency);
        self.counts.merge(&e.counts);
    }

    pub(super) fn counts(&self) -> Counts {
        counts(&self.counts)
    }

    pub(super) fn throughput(&self) -> f64 {
        if self.secs > 0.0 {
            self.counts.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

pub(super) fn counts(c: &loadgen::Counts) -> Counts {
    Counts {
        total: c.total(),
        ok: c.ok,
        failed: c.fail,
        unknown: c.unknown,
        unauthorized: c.unauthorized,
        rate_limited: c.rate_limited,
    }
}

/// A histogram of microseconds as milliseconds.
pub(super) fn latency(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        count: h.len(),
        min: ms(h.min()),
        avg: h.mean() / 1000.0,
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

/// A histogram's percentile curve, in milliseconds: HdrHistogram's
/// quantile iteration (5 steps per halving of the distance to 100%), so
/// the tail gets as many points as the body. At most a few hundred points
/// whatever the count.
pub(super) fn distribution(h: &Histogram<u64>) -> Vec<PercentilePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| PercentilePoint {
            percentile: v.quantile_iterated_to() * 100.0,
            ms: v.value_iterated_to() as f64 / 1000.0,
        })
        .collect()
}

/// One flow's histogram and counts, over its seconds of measured load.
pub(super) fn flow_acc(leg: &Leg) -> Acc {
    let mut acc = Acc::new();
    for e in leg.load.endpoints.values() {
        acc.add(e);
    }
    acc.secs = leg.measured_secs();
    acc
}

/// Latency, requests and throughput per target: each flow (`flows`, one
/// per leg, from [`flow_acc`]), each endpoint over every flow, and `all`.
/// The other figures are left empty.
pub(super) fn by_target(legs: &[Leg], flows: &[Acc]) -> Metrics {
    let mut metrics = Metrics::default();
    let mut accs: BTreeMap<String, Acc> = BTreeMap::new();
    for (leg, flow) in legs.iter().zip(flows) {
        let secs = leg.measured_secs();
        for (endpoint, e) in &leg.load.endpoints {
            let acc = accs.entry(endpoint.to_string()).or_insert_with(Acc::new);
            acc.add(e);
            acc.secs += secs;
        }
        let all = accs.entry(ALL.to_string()).or_insert_with(Acc::new);
        all.add(&leg.load.overall());
        all.secs += secs;
        metrics
            .latency
            .insert(leg.flow.into(), latency(&flow.latency));
        metrics.requests.insert(leg.flow.into(), flow.counts());
        metrics
            .throughput
            .insert(leg.flow.into(), flow.throughput());
    }
    for (target, acc) in &accs {
        metrics
            .latency
            .insert(target.clone(), latency(&acc.latency));
        metrics.requests.insert(target.clone(), acc.counts());
        metrics.throughput.insert(target.clone(), acc.throughput());
    }
    metrics
}
