//! Gates against a run's metrics.

use serde::{Deserialize, Serialize};

use super::{Gate, MetricRef, Quantity};
use crate::metrics::{MetricError, Metrics};

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// The gate as written.
    pub gate: String,
    /// The measured value in the threshold's base unit (ms, fraction,
    /// count, per second, or a plain factor for ratio gates); `None` when
    /// the run has no such value.
    pub actual: Option<f64>,
    /// In the same unit as `actual`.
    pub threshold: f64,
    pub passed: bool,
    /// What was compared, or why nothing could be.
    pub detail: String,
}

/// Evaluates every gate. A gate whose metric has no value in this run
/// fails, with the reason in its detail; so does a baseline gate (see
/// [`evaluate_against`]).
pub fn evaluate(gates: &[Gate], metrics: &Metrics) -> Vec<GateResult> {
    evaluate_against(gates, metrics, None)
}

/// Evaluates every gate, baseline gates against `baseline`'s figures. A
/// baseline gate without a baseline, or whose figure the baseline lacks,
/// fails, saying why.
pub fn evaluate_against(
    gates: &[Gate],
    metrics: &Metrics,
    baseline: Option<&Metrics>,
) -> Vec<GateResult> {
    gates
        .iter()
        .map(|g| match g.baseline {
            None => evaluate_one(g, metrics),
            Some(factor) => {
                let base = match baseline {
                    None => Err("no baseline run was given (`run --baseline DIR`)".to_string()),
                    Some(b) => {
                        value_of(g, b).map_err(|why| format!("the baseline has no value: {why}"))
                    }
                };
                match base {
                    Ok(v) => {
                        let mut resolved = g.clone();
                        resolved.threshold = v * factor;
                        let mut r = evaluate_one(&resolved, metrics);
                        r.detail = format!(
                            "{} (baseline {} × {})",
                            r.detail,
                            show_value(g, v),
                            num(factor)
                        );
                        r
                    }
                    Err(why) => GateResult {
                        gate: g.source().to_string(),
                        actual: value_of(g, metrics).ok(),
                        threshold: f64::NAN,
                        passed: false,
                        detail: format!("{why}, so the gate fails"),
                    },
                }
            }
        })
        .collect()
}

/// Why a gate's left side (or ratio) has no value; the text goes into the
/// failed gate's detail.
#[derive(Debug, thiserror::Error)]
enum ValueError {
    /// An operand the run did not fill.
    #[error(transparent)]
    Metric(#[from] MetricError),
    /// A ratio gate whose divisor is 0 in this run.
    #[error("{divisor} is 0, so the ratio has no value")]
    ZeroDivisor { divisor: MetricRef },
}

/// The gate's left side (or ratio) in `metrics`.
fn value_of(gate: &Gate, metrics: &Metrics) -> Result<f64, ValueError> {
    let l = metrics.value(&gate.left)?;
    match &gate.right {
        None => Ok(l),
        Some(r) => {
            let d = metrics.value(r)?;
            if d == 0.0 {
                Err(ValueError::ZeroDivisor { divisor: r.clone() })
            } else {
                Ok(l / d)
            }
        }
    }
}

fn show_value(gate: &Gate, v: f64) -> String {
    if gate.right.is_some() {
        format!("{}x", num(v))
    } else {
        show(gate.quantity(), v)
    }
}

fn evaluate_one(gate: &Gate, metrics: &Metrics) -> GateResult {
    let quantity = gate.quantity();
    // A ratio of two metrics reads best as a factor: "6x".
    let fmt = |v: f64| {
        if gate.right.is_some() {
            format!("{}x", num(v))
        } else {
            show(quantity, v)
        }
    };
    let expr = match &gate.right {
        Some(r) => format!("{} / {r}", gate.left),
        None => gate.left.to_string(),
    };
    let need = format!("needs {} {}", gate.op.as_str(), fmt(gate.threshold));
    let actual = value_of(gate, metrics);
    match actual {
        Ok(v) => {
            let passed = gate.op.holds(v, gate.threshold);
            let parts = match &gate.right {
                Some(r) => {
                    // Show both sides, so a failed ratio says which one moved.
                    let (l, d) = (
                        metrics.value(&gate.left).unwrap_or(f64::NAN),
                        metrics.value(r).unwrap_or(f64::NAN),
                    );
                    let q = gate.left.def.quantity;
                    format!(" ({} / {})", show(q, l), show(q, d))
                }
                None => String::new(),
            };
            GateResult {
                gate: gate.source().to_string(),
                actual: Some(v),
                threshold: gate.threshold,
                passed,
                detail: format!("{expr} = {}{parts}; {need}", fmt(v)),
            }
        }
        Err(why) => GateResult {
            gate: gate.source().to_string(),
            actual: None,
            threshold: gate.threshold,
            passed: false,
            detail: format!("{why}; {need}, so the gate fails"),
        },
    }
}

/// A value with its unit, for people.
pub(crate) fn show(q: Quantity, v: f64) -> String {
    match q {
        Quantity::Millis => format!("{} ms", num(v)),
        Quantity::Ratio => format!("{}%", num(v * 100.0)),
        Quantity::Count => num(v),
        Quantity::PerSecond => format!("{}/s", num(v)),
    }
}

/// Up to three decimals, trailing zeros dropped.
fn num(v: f64) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::gates::parse;
    use crate::metrics::{Counts, LagSummary, Latency, OrderCounts, SagaOutcomes, ALL};
    use crate::state::TopicEvents;

    fn metrics() -> Metrics {
        let mut m = Metrics::default();
        m.latency.insert(
            "POST /api/orders".into(),
            Latency {
                count: 1000,
                min: 2.0,
                avg: 40.0,
                p50: 30.0,
                p90: 90.0,
                p95: 150.0,
                p99: 212.5,
                p999: 480.0,
                max: 1900.0,
            },
        );
        m.requests.insert(
            ALL.into(),
            Counts {
                total: 1000,
                ok: 990,
                failed: 6,
                unknown: 4,
                ..Counts::default()
            },
        );
        m.throughput.insert("sync".into(), 100.0);
        m.throughput.insert("async".into(), 600.0);
        m.saga = Some(SagaOutcomes {
            completed: 900,
            compensated: 3,
            failed: 0,
        });
        m.breaker_opened.insert("orders->payments".into(), 2);
        m.breaker_opened.insert("orders->catalog".into(), 0);
        m.events = Some(vec![TopicEvents {
            topic: "orders".into(),
            group: None,
            produced: 2000,
            consumed: 1996,
            dead_lettered: 4,
        }]);
        m.lag = Some(BTreeMap::from([(
            "payments".into(),
            LagSummary { max: 120, last: 0 },
        )]));
        m.orders = Some(OrderCounts {
            placed: 1000,
            acknowledged: 990,
            confirmed: 900,
            cancelled: 90,
            pending: 0,
            lost: 0,
        });
        m
    }

    fn check(gate: &str) -> GateResult {
        let g = parse(gate).unwrap();
        evaluate(&[g], &metrics()).remove(0)
    }

    #[test]
    fn baseline_gates_read_the_baseline_figure() {
        let gates = [
            parse("p99(POST /api/orders) < baseline * 1.2").unwrap(),
            parse("throughput(async) / throughput(sync) > baseline * 0.9").unwrap(),
        ];
        let now = metrics();
        // The baseline was faster: 212.5 ms is not under 150 × 1.2 = 180.
        let mut base = metrics();
        base.latency.get_mut("POST /api/orders").unwrap().p99 = 150.0;
        let r = evaluate_against(&gates, &now, Some(&base));
        assert!(!r[0].passed, "{r:?}");
        assert!((r[0].threshold - 180.0).abs() < 1e-9);
        assert_eq!(
            r[0].detail,
            "p99(POST /api/orders) = 212.5 ms; needs < 180 ms (baseline 150 ms × 1.2)"
        );
        assert!(r[1].passed, "{r:?}");
        // Slower baseline: the same run passes.
        base.latency.get_mut("POST /api/orders").unwrap().p99 = 200.0;
        assert!(evaluate_against(&gates, &now, Some(&base))[0].passed);
        // No baseline: fails, saying so.
        let r = evaluate(&gates, &now);
        assert!(!r[0].passed);
        assert!(
            r[0].detail.contains("no baseline run was given"),
            "{}",
            r[0].detail
        );
        // A baseline without that figure: fails, saying so.
        let r = evaluate_against(&gates, &now, Some(&Metrics::default()));
        assert!(!r[0].passed);
        assert!(
            r[0].detail.starts_with("the baseline has no value"),
            "{}",
            r[0].detail
        );
    }

    #[test]
    fn latency_gates_with_every_unit() {
        let r = check("p99(POST /api/orders) < 300ms");
        assert!(r.passed);
        assert_eq!(r.actual, Some(212.5));
        assert_eq!(r.detail, "p99(POST /api/orders) = 212.5 ms; needs < 300 ms");
        assert!(!check("p99(POST /api/orders) < 200ms").passed);
        assert!(check("p999(POST /api/orders) < 0.5s").passed);
        assert!(!check("p999(POST /api/orders) < 0.4s").passed);
        assert!(check("min(POST /api/orders) > 1500us").passed);
        assert!(!check("min(POST /api/orders) > 2500us").passed);
        assert!(check("avg(POST /api/orders) <= 40").passed);
        assert!(!check("avg(POST /api/orders) < 40").passed);
        assert!(check("max(POST /api/orders) >= 1.9s").passed);
        assert!(check("p50(POST /api/orders) == 30ms").passed);
        assert!(check("p90(POST /api/orders) != 30ms").passed);
        assert!(!check("p95(POST /api/orders) != 150ms").passed);
    }

    #[test]
    fn ratio_and_percent_gates() {
        let r = check("error_rate < 1.5%");
        assert!(r.passed, "{r:?}");
        assert_eq!(r.detail, "error_rate = 1%; needs < 1.5%");
        assert!(!check("error_rate < 1%").passed);
        assert!(check("error_rate <= 0.01").passed);
        assert!(check("unknown_rate < 0.5%").passed);
        assert!(check("dlq.rate < 0.5%").passed);
        assert!(!check("dlq.rate < 0.1%").passed);
        assert!(check("dlq.count(orders) == 4").passed);
    }

    #[test]
    fn ratio_of_two_metrics() {
        let r = check("throughput(async) / throughput(sync) > 5");
        assert!(r.passed);
        assert_eq!(r.actual, Some(6.0));
        assert_eq!(
            r.detail,
            "throughput(async) / throughput(sync) = 6x (600/s / 100/s); needs > 5x"
        );
        assert!(!check("throughput(async) / throughput(sync) > 7").passed);
        assert!(check("throughput(sync) / throughput(async) < 20%").passed);
    }

    #[test]
    fn counts() {
        assert!(check("saga.compensated >= 1").passed);
        assert!(!check("saga.failed >= 1").passed);
        assert!(check("breaker.opened(orders->payments) >= 1").passed);
        assert!(!check("breaker.opened(orders->catalog) >= 1").passed);
        assert!(check("breaker.opened > 1").passed);
        assert!(check("orders.lost == 0").passed);
        assert!(!check("orders.confirmed > 900").passed);
        assert!(check("lag.max(payments) < 200").passed);
        assert!(check("lag.final == 0").passed);
        assert!(check("requests >= 1000").passed);
        assert!(check("errors == 10").passed);
    }

    #[test]
    fn a_missing_value_fails_with_the_reason() {
        let r = check("p99(async) < 300ms");
        assert!(!r.passed);
        assert_eq!(r.actual, None);
        assert_eq!(
            r.detail,
            "no latency recorded for `async` in this run: did it run the async flow?; needs < 300 ms, so the gate fails"
        );
        let r = check("breaker.opened(payments->provider) == 0");
        assert!(!r.passed);
        assert!(r
            .detail
            .starts_with("no breaker record for link `payments->provider`"));
        let r = check("invariants.violations == 0");
        assert!(!r.passed);
        assert!(r.detail.starts_with("invariants were not checked"));

        let mut sync_only = metrics();
        sync_only.events = None;
        sync_only.lag = None;
        for gate in ["dlq.rate < 1%", "dlq.count == 0", "lag.max < 10"] {
            let r = evaluate(&[parse(gate).unwrap()], &sync_only).remove(0);
            assert!(!r.passed, "{gate}");
            assert!(r.detail.contains("async flow"), "{}", r.detail);
        }
        // A ratio over a zero divisor has no value either.
        let mut m = metrics();
        m.throughput.insert("sync".into(), 0.0);
        let r = evaluate(
            &[parse("throughput(async) / throughput(sync) > 5").unwrap()],
            &m,
        )
        .remove(0);
        assert!(!r.passed);
        assert!(r.detail.starts_with("throughput(sync) is 0"));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(212.5), "212.5");
        assert_eq!(num(300.0), "300");
        assert_eq!(num(0.12345), "0.123");
        assert_eq!(num(-0.0001), "0");
    }
}
