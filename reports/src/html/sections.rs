//! The report's sections, in page order: the header with the verdict,
//! each flow's throughput, latency and errors, sync against async,
//! resilience (breakers, retries, sagas, settle time), events (dead
//! letters, consumer lag, outbox backlog), the invariant and gate tables,
//! and the scenario with its fault timeline.
//!
//! Over-time series are sampled on the flow's windows: one point per
//! window, at its middle. Samples on other clocks (retries, lag, outbox)
//! are put into the window that holds them, so every series of a flow has
//! exactly as many points as the flow has windows and lines up with the
//! others. Records without a flow (older reports) belong to every flow.

use std::collections::{BTreeMap, BTreeSet};

use super::charts::{
    bands_chart, bars_chart, palette, percentile_chart, time_chart, BandRow, Bar, Meta, Series,
    Shade, Span, StateColors, TimeChart, AMBER, BLUE, FAULT, GREEN, GREY, HALF, ORANGE, RED, TEAL,
    WIDE,
};
use super::page::{
    at, badge, bytes, duration, esc, int, ms, note, num, num_cell, pct, ratio, table, tile, utc, w,
};
use crate::metrics::{Latency, SagaOutcomes};
use crate::report::{FaultPhase, FaultWindow, FlowReport, Report, Window};

/// At most this many series on one chart (error kinds, links...); the
/// rest are summed into an "other" series, so a run with a hundred error
/// kinds still draws a readable chart.
const MAX_SERIES: usize = 8;

/// The flows in page order: `sync`, `async`, then any others by name.
pub(super) fn flow_names(report: &Report) -> Vec<&str> {
    let rank = |n: &str| match n {
        "sync" => 0,
        "async" => 1,
        _ => 2,
    };
    let mut names: Vec<&str> = report.flows.keys().map(String::as_str).collect();
    names.sort_by_key(|n| rank(n));
    names
}

/// Whether a record of `record` belongs to `flow`.
fn belongs(record: Option<&str>, flow: &str) -> bool {
    record.is_none_or(|f| f == flow)
}

/// The fault windows of `flow` as shades, named `prefix` + action.
pub(super) fn fault_shades(
    faults: &[FaultWindow],
    flow: &str,
    prefix: &str,
    color: plotters::style::RGBColor,
) -> Vec<Shade> {
    faults
        .iter()
        .filter(|f| belongs(f.flow.as_deref(), flow))
        .map(|f| Shade {
            from_s: f.from_ms as f64 / 1000.0,
            to_s: f.to_ms.map(|t| t as f64 / 1000.0),
            label: format!("{prefix}{}", f.action),
            color,
        })
        .collect()
}

fn mid_s(w: &Window) -> f64 {
    (w.start_ms as f64 + w.end_ms as f64) / 2000.0
}

/// A window's length in seconds, never zero (a rate over an empty
/// window would be infinite).
fn secs(w: &Window) -> f64 {
    (w.end_ms.saturating_sub(w.start_ms) as f64 / 1000.0).max(1e-3)
}

/// The end of a flow's clock, in seconds.
pub(super) fn end_s(flow: &FlowReport) -> f64 {
    flow.windows.iter().map(|w| w.end_ms).max().unwrap_or(0) as f64 / 1000.0
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// One point per window.
pub(super) fn per_window(windows: &[Window], f: impl Fn(&Window) -> f64) -> Vec<(f64, f64)> {
    windows.iter().map(|w| (mid_s(w), finite(f(w)))).collect()
}

/// Counts sampled at `at_ms`, each the count since the previous sample
/// (the first since the load started), spread evenly over the interval it
/// covers and summed per window, as a rate per second. Spreading keeps a
/// sampling interval longer than a window from drawing a comb of spikes
/// and empty windows. The part of an interval outside every window is off
/// the chart.
pub(super) fn bin_counter(
    windows: &[Window],
    samples: impl Iterator<Item = (u64, f64)>,
) -> Vec<(f64, f64)> {
    let mut samples: Vec<(u64, f64)> = samples.collect();
    samples.sort_by_key(|s| s.0);
    let mut sums = vec![0.0; windows.len()];
    let last = windows.len().saturating_sub(1);
    let mut prev = 0;
    for (t, v) in samples {
        let v = finite(v);
        if t <= prev {
            // A second sample at the same instant: into the window holding it.
            let i = windows.partition_point(|w| w.end_ms < t).min(last);
            if let Some(s) = sums.get_mut(i) {
                *s += v;
            }
            continue;
        }
        let span = (t - prev) as f64;
        let first = windows.partition_point(|w| w.end_ms <= prev);
        for (w, sum) in windows.iter().zip(sums.iter_mut()).skip(first) {
            if w.start_ms >= t {
                break;
            }
            let overlap = t.min(w.end_ms).saturating_sub(prev.max(w.start_ms));
            *sum += v * overlap as f64 / span;
        }
        prev = t;
    }
    windows
        .iter()
        .zip(sums)
        .map(|(w, s)| (mid_s(w), s / secs(w)))
        .collect()
}

/// A level sampled at `at_ms`: the highest sample in each window (peaks
/// matter), and the last one carried through windows with no sample.
pub(super) fn bin_gauge(
    windows: &[Window],
    samples: impl Iterator<Item = (u64, f64)>,
) -> Vec<(f64, f64)> {
    let mut samples: Vec<(u64, f64)> = samples.collect();
    samples.sort_by_key(|s| s.0);
    let last = windows.len().saturating_sub(1);
    let mut peak: Vec<Option<f64>> = vec![None; windows.len()];
    let mut closing: Vec<Option<f64>> = vec![None; windows.len()];
    for (t, v) in samples {
        let i = windows.partition_point(|w| w.end_ms <= t).min(last);
        let v = finite(v);
        if let Some(p) = peak.get_mut(i) {
            *p = Some(p.map_or(v, |p: f64| p.max(v)));
        }
        if let Some(c) = closing.get_mut(i) {
            *c = Some(v);
        }
    }
    let mut carried = 0.0;
    windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let v = peak.get(i).copied().flatten().unwrap_or(carried);
            if let Some(c) = closing.get(i).copied().flatten() {
                carried = c;
            }
            (mid_s(w), v)
        })
        .collect()
}

/// Groups keyed samples into one series per key, the biggest first, at
/// most [`MAX_SERIES`] of them (the rest summed into "other").
fn keyed_series(
    keys: BTreeMap<String, Vec<(f64, f64)>>,
    total: impl Fn(&[(f64, f64)]) -> f64,
) -> Vec<Series> {
    let mut keyed: Vec<(String, Vec<(f64, f64)>)> = keys.into_iter().collect();
    keyed.sort_by(|a, b| total(&b.1).total_cmp(&total(&a.1)));
    let mut series: Vec<Series> = Vec::new();
    let mut other: Option<Vec<(f64, f64)>> = None;
    for (i, (label, points)) in keyed.into_iter().enumerate() {
        if i < MAX_SERIES {
            series.push(Series {
                label,
                color: palette(i),
                points,
            });
        } else {
            let o = other.get_or_insert_with(|| points.iter().map(|p| (p.0, 0.0)).collect());
            for (o, p) in o.iter_mut().zip(&points) {
                o.1 += p.1;
            }
        }
    }
    if let Some(points) = other {
        series.push(Series {
            label: "other".into(),
            color: palette(MAX_SERIES + 1),
            points,
        });
    }
    series
}

fn sum_y(points: &[(f64, f64)]) -> f64 {
    points.iter().map(|p| p.1).sum()
}

fn max_y(points: &[(f64, f64)]) -> f64 {
    points.iter().map(|p| p.1).fold(0.0, f64::max)
}

/// The verdict as the page shows it: partial first (its figures are
/// incomplete, whatever they say), then failed, then passed. "Failed" is
/// [`Report::verdict`], the rule `report.json` seals `passed` with, so a
/// report rendered before it is written reads the same as after.
pub(super) fn verdict(report: &Report) -> (&'static str, &'static str) {
    if report.partial {
        ("partial", "PARTIAL")
    } else if !report.verdict() {
        ("fail", "FAILED")
    } else {
        ("pass", "PASSED")
    }
}

/// The header: name, description, the verdict and what failed, then the
/// facts of the run.
pub(super) fn header(report: &Report) -> String {
    let mut out = String::new();
    let name = if report.scenario.is_empty() {
        "(unnamed scenario)"
    } else {
        &report.scenario
    };
    w!(out, "<h1>{}</h1>\n", esc(name));
    if !report.description.is_empty() {
        w!(out, "<p class=\"desc\">{}</p>\n", esc(&report.description));
    }
    let (class, text) = verdict(report);
    w!(out, "<div class=\"verdict {class}\">{text}</div>\n");

    let mut failures = Vec::new();
    if report.partial {
        failures.push(
            "The run stopped early (interrupted, or the system never quiesced): its figures are incomplete."
                .to_string(),
        );
    }
    for g in report.gates.iter().filter(|g| !g.passed) {
        failures.push(format!(
            "Gate <code>{}</code>: {}",
            esc(&g.gate),
            esc(&g.detail)
        ));
    }
    for i in report.invariants.iter().filter(|i| !i.passed) {
        failures.push(format!(
            "Invariant <code>{}</code>: {} of {} violated. {}",
            esc(&i.name),
            int(i.violations),
            int(i.checked),
            esc(&i.detail)
        ));
    }
    if !failures.is_empty() {
        out.push_str("<ul class=\"failures\">\n");
        for f in failures {
            w!(out, "<li>{f}</li>\n");
        }
        out.push_str("</ul>\n");
    }

    let m = &report.machine;
    let mut machine = vec![format!("{} cores", m.cores)];
    if let Some(b) = m.memory_bytes {
        machine.push(bytes(b));
    }
    for s in [&m.os, &m.arch] {
        if !s.is_empty() {
            machine.push(s.clone());
        }
    }
    let flows = flow_names(report);
    let facts: Vec<(&str, String)> = vec![
        ("Scenario file", report.scenario_file.clone()),
        ("Seed", report.seed.to_string()),
        (
            "Started",
            if report.started_unix_ms == 0 {
                "—".into()
            } else {
                utc(report.started_unix_ms)
            },
        ),
        ("Measured load", duration(report.duration_ms)),
        (
            "Flows run",
            if flows.is_empty() {
                "none".into()
            } else {
                flows.join(", ")
            },
        ),
        ("Machine", machine.join(", ")),
        ("Rust", m.rustc.clone().unwrap_or_else(|| "—".into())),
    ];
    out.push_str("<dl class=\"facts\">\n");
    for (k, v) in facts {
        w!(out, "<dt>{}</dt><dd>{}</dd>\n", esc(k), esc(&v));
    }
    out.push_str("</dl>\n");
    if flows.is_empty() {
        out.push_str(&note("No flow ran: there are no figures to show."));
    }
    out
}

fn latency_tiles(out: &mut String, l: &Latency) {
    for (label, v) in [
        ("p50", l.p50),
        ("p95", l.p95),
        ("p99", l.p99),
        ("max", l.max),
    ] {
        out.push_str(&tile(label, &ms(v)));
    }
}

/// One flow: headline tiles, throughput, latency and errors over time,
/// the percentile curves per endpoint, and the endpoint table.
pub(super) fn flow(name: &str, flow: &FlowReport, faults: &[FaultWindow]) -> String {
    let mut out = String::new();
    out.push_str("<div class=\"tiles\">");
    out.push_str(&tile(
        "throughput",
        &format!("{} ops/s", num(flow.throughput)),
    ));
    out.push_str(&tile("requests", &int(flow.requests.total)));
    out.push_str(&tile("error rate", &pct(flow.requests.error_rate())));
    // Refused at the gateway: shown apart, and not in the error rate.
    let rejected = flow.requests.rejected() > 0;
    if rejected {
        out.push_str(&tile(
            "rejected 401 / 429",
            &format!(
                "{} / {}",
                int(flow.requests.unauthorized),
                int(flow.requests.rate_limited)
            ),
        ));
    }
    latency_tiles(&mut out, &flow.latency);
    if flow.settle.count > 0 {
        out.push_str(&tile("settle p99", &ms(flow.settle.p99)));
    }
    out.push_str("</div>\n");

    let windows = &flow.windows;
    if windows.is_empty() {
        out.push_str(&note(&format!(
            "No time windows were recorded for the {name} flow: there is nothing to draw over time."
        )));
    } else {
        let x_max_s = end_s(flow);
        let chart = |id: &str, title: String, y_desc: &str, series: Vec<Series>| {
            time_chart(&TimeChart {
                meta: Meta::new(format!("{id}-{name}"), name, title),
                y_desc: y_desc.into(),
                x_max_s,
                series,
                shades: fault_shades(faults, name, "", FAULT),
                width: WIDE,
            })
        };
        out.push_str(&chart(
            "throughput",
            format!("Throughput, {name} flow"),
            "operations per second",
            vec![
                Series {
                    label: "ok/s".into(),
                    color: BLUE,
                    points: per_window(windows, |w| w.throughput),
                },
                Series {
                    label: "errors/s".into(),
                    color: RED,
                    points: per_window(windows, |w| w.requests.errors() as f64 / secs(w)),
                },
            ]
            .into_iter()
            .chain(rejected.then(|| Series {
                label: "rejected/s (401, 429)".into(),
                color: GREY,
                points: per_window(windows, |w| w.requests.rejected() as f64 / secs(w)),
            }))
            .collect(),
        ));
        out.push_str(&chart(
            "latency",
            format!("Latency, {name} flow"),
            "latency (ms)",
            vec![
                Series {
                    label: "p50".into(),
                    color: GREEN,
                    points: per_window(windows, |w| w.latency.p50),
                },
                Series {
                    label: "p95".into(),
                    color: ORANGE,
                    points: per_window(windows, |w| w.latency.p95),
                },
                Series {
                    label: "p99".into(),
                    color: RED,
                    points: per_window(windows, |w| w.latency.p99),
                },
            ],
        ));

        let kinds: BTreeSet<&String> = windows
            .iter()
            .flat_map(|w| w.errors.iter().filter(|(_, n)| **n > 0).map(|(k, _)| k))
            .collect();
        if kinds.is_empty() {
            out.push_str(&note(&format!("No errors in the {name} flow's run.")));
        } else {
            let keys = kinds
                .into_iter()
                .map(|k| {
                    let points = per_window(windows, |w| {
                        w.errors.get(k).copied().unwrap_or(0) as f64 / secs(w)
                    });
                    (k.clone(), points)
                })
                .collect();
            out.push_str(&chart(
                "errors",
                format!("Errors by kind, {name} flow"),
                "errors per second",
                keyed_series(keys, sum_y),
            ));
        }
    }

    let curves: Vec<Series> = flow
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, (ep, e))| Series {
            label: ep.clone(),
            color: palette(i),
            points: e
                .distribution
                .iter()
                .map(|p| (p.percentile, p.ms))
                .collect(),
        })
        .collect();
    out.push_str(&percentile_chart(
        Meta::new(
            format!("distribution-{name}"),
            name,
            format!("Latency by percentile, {name} flow"),
        ),
        curves,
        WIDE,
    ));

    if flow.endpoints.is_empty() {
        out.push_str(&note("No per-endpoint figures were recorded."));
    } else {
        let rows: Vec<Vec<String>> = flow
            .endpoints
            .iter()
            .map(|(ep, e)| {
                let c = &e.requests;
                let l = &e.latency;
                let mut row = vec![
                    format!("<code>{}</code>", esc(ep)),
                    num_cell(&int(c.total)),
                    num_cell(&int(c.ok)),
                    num_cell(&int(c.failed)),
                    num_cell(&int(c.unknown)),
                ];
                if rejected {
                    row.push(num_cell(&int(c.unauthorized)));
                    row.push(num_cell(&int(c.rate_limited)));
                }
                row.extend([
                    num_cell(&ms(l.p50)),
                    num_cell(&ms(l.p95)),
                    num_cell(&ms(l.p99)),
                    num_cell(&ms(l.max)),
                ]);
                row
            })
            .collect();
        let mut head = vec!["Endpoint", "Requests", "OK", "Failed", "Unknown"];
        if rejected {
            head.extend(["401", "429"]);
        }
        head.extend(["p50", "p95", "p99", "Max"]);
        out.push_str("<h4>Endpoints</h4>\n");
        out.push_str(&table("endpoints", &head, &rows));
    }
    out
}

/// A headline figure: its name, where a flow keeps it, how it reads.
type Headline = (&'static str, fn(&FlowReport) -> f64, fn(f64) -> String);

/// Sync against async on the same axes, and their headline figures with
/// the async/sync ratio. `None` unless both flows ran.
pub(super) fn side_by_side(report: &Report, faults: &[FaultWindow]) -> Option<String> {
    let sync = report.flows.get("sync")?;
    let asyn = report.flows.get("async")?;
    let mut out = String::new();
    let flows = [("sync", sync, BLUE), ("async", asyn, ORANGE)];
    let x_max_s = end_s(sync).max(end_s(asyn));
    // Each flow's faults in its own line colour, named with the flow.
    let shades: Vec<Shade> = faults
        .iter()
        .filter_map(|f| {
            let (prefix, color) = match f.flow.as_deref() {
                Some("sync") => ("sync: ", BLUE),
                Some("async") => ("async: ", ORANGE),
                Some(_) => return None,
                None => ("", FAULT),
            };
            Some(Shade {
                from_s: f.from_ms as f64 / 1000.0,
                to_s: f.to_ms.map(|t| t as f64 / 1000.0),
                label: format!("{prefix}{}", f.action),
                color,
            })
        })
        .collect();
    let overlay = |id: &str, title: &str, y_desc: &str, f: &dyn Fn(&Window) -> f64| {
        let series = flows
            .iter()
            .filter(|(_, fl, _)| !fl.windows.is_empty())
            .map(|(n, fl, c)| Series {
                label: (*n).into(),
                color: *c,
                points: per_window(&fl.windows, f),
            })
            .collect();
        time_chart(&TimeChart {
            meta: Meta::new(id, "sync async", title),
            y_desc: y_desc.into(),
            x_max_s,
            series,
            shades: shades.clone(),
            width: WIDE,
        })
    };
    out.push_str(&overlay(
        "throughput-sync-async",
        "Throughput, sync vs async",
        "operations per second",
        &|w| w.throughput,
    ));
    out.push_str(&overlay(
        "p99-sync-async",
        "p99 latency, sync vs async",
        "latency (ms)",
        &|w| w.latency.p99,
    ));

    let figures: [Headline; 6] = [
        (
            "Throughput",
            |f| f.throughput,
            |v| format!("{} ops/s", num(v)),
        ),
        ("Latency p50", |f| f.latency.p50, ms),
        ("Latency p99", |f| f.latency.p99, ms),
        ("Error rate", |f| f.requests.error_rate(), pct),
        ("Settle p50", |f| f.settle.p50, ms),
        ("Settle p99", |f| f.settle.p99, ms),
    ];
    let rows: Vec<Vec<String>> = figures
        .iter()
        .map(|(label, get, fmt)| {
            let (s, a) = (get(sync), get(asyn));
            vec![
                esc(label),
                num_cell(&fmt(s)),
                num_cell(&fmt(a)),
                num_cell(&ratio(a, s)),
            ]
        })
        .collect();
    out.push_str(&table(
        "side-by-side",
        &["Figure", "sync", "async", "async / sync"],
        &rows,
    ));
    Some(out)
}

const BREAKER_STATES: [(&str, plotters::style::RGBColor); 3] =
    [("CLOSED", GREEN), ("OPEN", RED), ("HALF_OPEN", AMBER)];

/// Breakers, retries, sagas and settle time, per flow.
pub(super) fn resilience(report: &Report, faults: &[FaultWindow]) -> String {
    let mut out = String::new();
    let names = flow_names(report);
    if names.is_empty() {
        return note("No flow ran.");
    }
    for name in names {
        let Some(flow) = report.flows.get(name) else {
            continue;
        };
        w!(out, "<h3>{} flow</h3>\n", esc(name));
        let shades = || fault_shades(faults, name, "", FAULT);
        let x_max_s = end_s(flow);
        out.push_str(&breakers(report, name, x_max_s, shades()));

        let windows = &flow.windows;
        if flow.retries.is_empty() {
            out.push_str(&note(&format!(
                "No retries were recorded in the {name} flow's run."
            )));
        } else if windows.is_empty() {
            out.push_str(&note(
                "Retries were recorded, but no time windows to draw them on.",
            ));
        } else {
            let links: BTreeSet<&str> = flow.retries.iter().map(|r| r.link.as_str()).collect();
            let keys = links
                .into_iter()
                .map(|l| {
                    let samples = flow
                        .retries
                        .iter()
                        .filter(|r| r.link == l)
                        .map(|r| (r.at_ms, r.retries as f64));
                    (l.to_string(), bin_counter(windows, samples))
                })
                .collect();
            out.push_str(&time_chart(&TimeChart {
                meta: Meta::new(
                    format!("retries-{name}"),
                    name,
                    format!("Retries by link, {name} flow"),
                ),
                y_desc: "retried attempts per second".into(),
                x_max_s,
                series: keyed_series(keys, sum_y),
                shades: shades(),
                width: WIDE,
            }));
        }

        let per_window_saga =
            windows
                .iter()
                .map(|w| w.saga)
                .fold(SagaOutcomes::default(), |a, s| SagaOutcomes {
                    completed: a.completed + s.completed,
                    compensated: a.compensated + s.compensated,
                    failed: a.failed + s.failed,
                });
        let totals = flow.saga.unwrap_or(per_window_saga);
        let mut pair = String::from("<div class=\"pair\">\n");
        pair.push_str(&bars_chart(
            Meta::new(
                format!("saga-totals-{name}"),
                name,
                format!("Saga outcomes, {name} flow"),
            ),
            "orders",
            &[
                Bar {
                    label: "completed".into(),
                    color: GREEN,
                    value: totals.completed as f64,
                },
                Bar {
                    label: "compensated".into(),
                    color: AMBER,
                    value: totals.compensated as f64,
                },
                Bar {
                    label: "failed".into(),
                    color: RED,
                    value: totals.failed as f64,
                },
            ],
            HALF,
        ));
        pair.push_str(&percentile_chart(
            Meta::new(
                format!("settle-{name}"),
                name,
                format!("Settle time by percentile, {name} flow"),
            ),
            vec![Series {
                label: "written → terminal".into(),
                color: TEAL,
                points: flow
                    .settle_distribution
                    .iter()
                    .map(|p| (p.percentile, p.ms))
                    .collect(),
            }],
            HALF,
        ));
        pair.push_str("</div>\n");
        out.push_str(&pair);

        let placed =
            per_window_saga.completed + per_window_saga.compensated + per_window_saga.failed;
        if placed == 0 || windows.is_empty() {
            out.push_str(&note(&format!(
                "No saga outcomes were recorded per window in the {name} flow's run."
            )));
        } else {
            let outcome = |label: &str, color, f: fn(&SagaOutcomes) -> u64| Series {
                label: label.into(),
                color,
                points: per_window(windows, |w| f(&w.saga) as f64 / secs(w)),
            };
            out.push_str(&time_chart(&TimeChart {
                meta: Meta::new(
                    format!("saga-{name}"),
                    name,
                    format!("Saga outcomes by placement time, {name} flow"),
                ),
                y_desc: "orders placed per second".into(),
                x_max_s,
                series: vec![
                    outcome("completed", GREEN, |s| s.completed),
                    outcome("compensated", AMBER, |s| s.compensated),
                    outcome("failed", RED, |s| s.failed),
                ],
                shades: shades(),
                width: WIDE,
            }));
        }
    }
    out
}

/// Each link's breaker states over the flow's run: a link starts CLOSED
/// and holds each state until its next transition.
fn breakers(report: &Report, name: &str, x_max_s: f64, shades: Vec<Shade>) -> String {
    let mut by_link: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
    for t in report
        .breakers
        .iter()
        .filter(|t| belongs(t.flow.as_deref(), name))
    {
        by_link
            .entry(t.link.as_str())
            .or_default()
            .push((t.at_ms, t.to.as_str()));
    }
    if by_link.is_empty() {
        return note(&format!(
            "No circuit breaker changed state in the {name} flow's run."
        ));
    }
    let last_t = by_link
        .values()
        .flat_map(|ts| ts.iter().map(|t| t.0))
        .max()
        .unwrap_or(0) as f64
        / 1000.0;
    let end = x_max_s.max(last_t);
    let rows: Vec<BandRow> = by_link
        .into_iter()
        .map(|(link, mut ts)| {
            ts.sort_by_key(|t| t.0);
            let mut spans = Vec::new();
            let mut state = "CLOSED";
            let mut from = 0.0;
            for (t, to) in ts {
                let t = t as f64 / 1000.0;
                if t > from {
                    spans.push(Span {
                        from_s: from,
                        to_s: t,
                        state: state.to_string(),
                    });
                }
                state = to;
                from = t;
            }
            spans.push(Span {
                from_s: from,
                to_s: end.max(from),
                state: state.to_string(),
            });
            BandRow {
                label: link.to_string(),
                spans,
            }
        })
        .collect();
    bands_chart(
        Meta::new(
            format!("breakers-{name}"),
            name,
            format!("Circuit breakers, {name} flow"),
        ),
        end,
        &rows,
        &StateColors {
            known: &BREAKER_STATES,
            other: super::charts::GREY,
        },
        &shades,
        WIDE,
    )
}

/// Dead letters, consumer lag and outbox backlog. `None` when no flow
/// has an event path (no async flow and no event records).
pub(super) fn events(report: &Report, faults: &[FaultWindow]) -> Option<String> {
    let names: Vec<&str> = flow_names(report)
        .into_iter()
        .filter(|n| {
            report.flows.get(*n).is_some_and(|f| {
                *n == "async"
                    || !f.events.is_empty()
                    || !f.outbox.is_empty()
                    || report.lag.iter().any(|l| l.flow.as_deref() == Some(n))
            })
        })
        .collect();
    if names.is_empty() && report.dlq.is_empty() && report.lag.is_empty() {
        return None;
    }
    let mut out = String::new();
    if !report.dlq.is_empty() {
        out.push_str("<h4>Dead-lettering per topic (deliveries: events × groups reading)</h4>\n");
        let rows: Vec<Vec<String>> = report
            .dlq
            .iter()
            .map(|d| {
                vec![
                    format!("<code>{}</code>", esc(&d.topic)),
                    num_cell(&int(d.produced)),
                    num_cell(&int(d.dead_lettered)),
                    num_cell(&pct(d.rate)),
                ]
            })
            .collect();
        out.push_str(&table(
            "dlq",
            &["Topic", "Deliveries", "Dead-lettered", "DLQ rate"],
            &rows,
        ));
    }
    for name in names {
        let Some(flow) = report.flows.get(name) else {
            continue;
        };
        w!(out, "<h3>{} flow</h3>\n", esc(name));
        if flow.events.is_empty() {
            out.push_str(&note("No per-group event accounting was recorded."));
        } else {
            let rows: Vec<Vec<String>> = flow
                .events
                .iter()
                .map(|e| {
                    let rate = if e.produced == 0 {
                        0.0
                    } else {
                        e.dead_lettered as f64 / e.produced as f64
                    };
                    vec![
                        format!("<code>{}</code>", esc(&e.topic)),
                        e.group
                            .as_deref()
                            .map_or_else(|| "—".into(), |g| format!("<code>{}</code>", esc(g))),
                        num_cell(&int(e.produced)),
                        num_cell(&int(e.consumed)),
                        num_cell(&int(e.dead_lettered)),
                        num_cell(&pct(rate)),
                    ]
                })
                .collect();
            out.push_str(&table(
                "events",
                &[
                    "Topic",
                    "Group",
                    "Produced",
                    "Consumed",
                    "Dead-lettered",
                    "DLQ rate",
                ],
                &rows,
            ));
        }

        let windows = &flow.windows;
        let x_max_s = end_s(flow);
        let lag: Vec<_> = report
            .lag
            .iter()
            .filter(|l| belongs(l.flow.as_deref(), name))
            .collect();
        let gauge_chart = |id: &str, title: String, y_desc: &str, keys| {
            time_chart(&TimeChart {
                meta: Meta::new(format!("{id}-{name}"), name, title),
                y_desc: y_desc.into(),
                x_max_s,
                series: keyed_series(keys, max_y),
                shades: fault_shades(faults, name, "", FAULT),
                width: WIDE,
            })
        };
        if lag.is_empty() {
            out.push_str(&note("No consumer lag was sampled."));
        } else if windows.is_empty() {
            out.push_str(&note("Lag was sampled, but no time windows to draw it on."));
        } else {
            let groups: BTreeSet<&str> = lag.iter().map(|l| l.group.as_str()).collect();
            let keys = groups
                .into_iter()
                .map(|g| {
                    let samples = lag
                        .iter()
                        .filter(|l| l.group == g)
                        .map(|l| (l.at_ms, l.lag as f64));
                    (g.to_string(), bin_gauge(windows, samples))
                })
                .collect();
            out.push_str(&gauge_chart(
                "lag",
                format!("Consumer lag by group, {name} flow"),
                "messages behind",
                keys,
            ));
        }
        if flow.outbox.is_empty() {
            out.push_str(&note("No outbox backlog was sampled."));
        } else if windows.is_empty() {
            out.push_str(&note(
                "The outbox was sampled, but no time windows to draw it on.",
            ));
        } else {
            let services: BTreeSet<&str> = flow.outbox.iter().map(|o| o.service.as_str()).collect();
            let keys = services
                .into_iter()
                .map(|s| {
                    let samples = flow
                        .outbox
                        .iter()
                        .filter(|o| o.service == s)
                        .map(|o| (o.at_ms, o.backlog as f64));
                    (s.to_string(), bin_gauge(windows, samples))
                })
                .collect();
            out.push_str(&gauge_chart(
                "outbox",
                format!("Outbox backlog by service, {name} flow"),
                "events not yet published",
                keys,
            ));
        }
    }
    Some(out)
}

fn verdict_badge(passed: bool, skipped: bool) -> String {
    match (passed, skipped) {
        (_, true) => badge("skip", "SKIPPED"),
        (true, false) => badge("pass", "PASS"),
        (false, false) => badge("fail", "FAIL"),
    }
}

/// The invariant table and the gate table.
pub(super) fn checks(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("<h3>Invariants</h3>\n");
    if report.invariants.is_empty() {
        out.push_str(&note("No invariants were checked."));
    } else {
        let rows: Vec<Vec<String>> = report
            .invariants
            .iter()
            .map(|i| {
                let ids: Vec<String> = i
                    .first_offending
                    .iter()
                    .map(|o| esc(&o.to_string()))
                    .collect();
                vec![
                    format!("<code>{}</code>", esc(&i.name)),
                    verdict_badge(i.passed, i.skipped),
                    num_cell(&int(i.checked)),
                    num_cell(&int(i.violations)),
                    esc(&i.detail),
                    match (ids.is_empty(), i.traces.is_empty()) {
                        (true, _) => String::new(),
                        (false, true) => format!("<span class=\"ids\">{}</span>", ids.join(", ")),
                        // The traces to open in a trace viewer, one per
                        // offending order that has one.
                        (false, false) => {
                            format!(
                            "<span class=\"ids\">{}</span><br><span class=\"ids\">traces {}</span>",
                            ids.join(", "),
                            i.traces.iter().map(|t| esc(t)).collect::<Vec<_>>().join(", ")
                        )
                        }
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            "invariants",
            &[
                "Invariant",
                "Verdict",
                "Checked",
                "Violations",
                "Detail",
                "First offending",
            ],
            &rows,
        ));
    }
    out.push_str("<h3>Gates</h3>\n");
    if report.gates.is_empty() {
        out.push_str(&note("The scenario has no gates."));
    } else {
        let rows: Vec<Vec<String>> = report
            .gates
            .iter()
            .map(|g| {
                vec![
                    format!("<code>{}</code>", esc(&g.gate)),
                    verdict_badge(g.passed, false),
                    num_cell(&g.actual.map_or_else(|| "—".into(), num)),
                    num_cell(&num(g.threshold)),
                    esc(&g.detail),
                ]
            })
            .collect();
        out.push_str(&table(
            "gates",
            &["Gate", "Verdict", "Actual", "Threshold", "Detail"],
            &rows,
        ));
    }
    out
}

/// The scenario file as it ran, and the fault timeline's records.
pub(super) fn scenario(report: &Report) -> String {
    let mut out = String::new();
    if report.scenario_source.is_empty() {
        out.push_str(&note("The scenario's text was not recorded."));
    } else {
        let caption = if report.scenario_file.is_empty() {
            "scenario"
        } else {
            &report.scenario_file
        };
        w!(
            out,
            "<figure class=\"source\"><figcaption><code>{}</code></figcaption>\n<pre>{}</pre></figure>\n",
            esc(caption),
            esc(&report.scenario_source)
        );
    }
    out.push_str("<h3>Fault timeline</h3>\n");
    if report.faults.is_empty() {
        out.push_str(&note("No faults were scheduled."));
        return out;
    }
    let rows: Vec<Vec<String>> = report
        .faults
        .iter()
        .map(|f| {
            let what = if f.skipped.is_some() {
                badge("skip", "skipped")
            } else {
                match f.phase {
                    Some(FaultPhase::Applied) if f.error.is_some() => badge("fail", "apply failed"),
                    Some(FaultPhase::Applied) => badge("partial", "applied"),
                    Some(FaultPhase::Undone) if f.error.is_some() => badge("fail", "undo failed"),
                    Some(FaultPhase::Undone) => badge("pass", "undone"),
                    None => "—".into(),
                }
            };
            let why = f.error.as_deref().or(f.skipped.as_deref()).unwrap_or("");
            vec![
                esc(f.flow.as_deref().unwrap_or("—")),
                num_cell(&at(f.at_ms)),
                what,
                num_cell(&f.step.to_string()),
                esc(&f.action),
                esc(why),
            ]
        })
        .collect();
    out.push_str(&table(
        "faults",
        &["Flow", "Time", "What", "Step", "Action", "Error / reason"],
        &rows,
    ));
    out
}
