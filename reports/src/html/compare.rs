//! Two runs side by side: the comparison table (regressions first, the
//! verdict coloured), used by `report.html` when the run had a baseline,
//! and `compare.html`, which adds each flow's throughput and p99 over time
//! of both runs on the same axes, each run's faults shaded.

use plotters::style::RGBColor;

use super::charts::{time_chart, Meta, Series, Shade, TimeChart, ORANGE, WIDE};
use super::page::{badge, change, esc, note, num, num_cell, table, utc, w, Page};
use super::sections::{end_s, fault_shades, flow_names, per_window};
use crate::compare::{Comparison, RunInfo, Verdict};
use crate::report::{Report, Window};

/// The base run's colour: a quiet grey-blue, so the new run stands out.
const BASE: RGBColor = RGBColor(0x6F, 0x84, 0xA3);
const NEW: RGBColor = ORANGE;

fn verdict_badge(v: Verdict) -> String {
    match v {
        Verdict::Regressed => badge("regressed", "regressed"),
        Verdict::Improved => badge("improved", "improved"),
        Verdict::Unchanged => badge("unchanged", "unchanged"),
    }
}

fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Regressed => 0,
        Verdict::Improved => 1,
        Verdict::Unchanged => 2,
    }
}

/// The comparison's rows, regressions first, then improvements, each
/// group in the comparison's own order.
pub(super) fn comparison_table(cmp: &Comparison) -> String {
    if cmp.rows.is_empty() {
        return note("The two runs have no figures in common to compare.");
    }
    let mut rows: Vec<_> = cmp.rows.iter().collect();
    rows.sort_by_key(|r| rank(r.verdict));
    let cells: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            let target = match &r.flow {
                Some(f) if !r.target.is_empty() && r.target != *f => {
                    format!("{} / {}", esc(f), esc(&r.target))
                }
                Some(f) => esc(f),
                None => esc(&r.target),
            };
            vec![
                format!("<code>{}</code>", esc(&r.metric)),
                target,
                num_cell(&num(r.base)),
                num_cell(&num(r.new)),
                num_cell(&change(r.base, r.new)),
                verdict_badge(r.verdict),
            ]
        })
        .collect();
    table(
        "comparison",
        &[
            "Metric",
            "Flow / target",
            "Base",
            "New",
            "Change",
            "Verdict",
        ],
        &cells,
    )
}

fn run_facts(label: &str, run: &RunInfo, report: &Report) -> String {
    let mut out = String::new();
    let started = if run.started_unix_ms != 0 {
        utc(run.started_unix_ms)
    } else if report.started_unix_ms != 0 {
        utc(report.started_unix_ms)
    } else {
        "—".into()
    };
    let source = if run.source.is_empty() {
        "—"
    } else {
        &run.source
    };
    w!(
        out,
        "<dt>{}</dt><dd><code>{}</code>, started {}, {}</dd>\n",
        esc(label),
        esc(source),
        esc(&started),
        if report.verdict() {
            badge("pass", "passed")
        } else {
            badge("fail", "failed")
        }
    );
    out
}

/// `compare.html`: the table, then each flow's runs overlaid.
pub(super) fn render(cmp: &Comparison, base: &Report, new: &Report) -> String {
    let scenario = if new.scenario.is_empty() {
        &base.scenario
    } else {
        &new.scenario
    };
    let mut page = Page::new(&format!("{scenario}: comparison"));

    let mut head = String::new();
    w!(head, "<h1>{}: base vs new</h1>\n", esc(scenario));
    let regressions = cmp
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::Regressed)
        .count();
    if cmp.regressed || regressions > 0 {
        w!(
            head,
            "<div class=\"verdict fail\">REGRESSED</div>\n<p>{regressions} figure(s) regressed.</p>\n"
        );
    } else {
        head.push_str("<div class=\"verdict pass\">NO REGRESSION</div>\n");
    }
    head.push_str("<dl class=\"facts\">\n");
    head.push_str(&run_facts("Base", &cmp.base, base));
    head.push_str(&run_facts("New", &cmp.new, new));
    head.push_str("</dl>\n");
    page.header("summary", "Summary", &head);
    page.section("comparison", "Comparison", &comparison_table(cmp));

    let mut flows: Vec<&str> = flow_names(base);
    for f in flow_names(new) {
        if !flows.contains(&f) {
            flows.push(f);
        }
    }
    if flows.is_empty() {
        page.section(
            "flows",
            "Over time",
            &note("Neither run has a flow to draw."),
        );
    }
    let base_faults = base.fault_windows();
    let new_faults = new.fault_windows();
    for name in flows {
        let b = base.flows.get(name);
        let n = new.flows.get(name);
        let x_max_s = b.map_or(0.0, end_s).max(n.map_or(0.0, end_s));
        let mut shades: Vec<Shade> = fault_shades(&base_faults, name, "base: ", BASE);
        shades.extend(fault_shades(&new_faults, name, "new: ", NEW));
        let overlay = |id: &str, title: String, y_desc: &str, f: fn(&Window) -> f64| {
            let series = [("base", b, BASE), ("new", n, NEW)]
                .into_iter()
                .filter_map(|(label, flow, color)| {
                    let flow = flow.filter(|fl| !fl.windows.is_empty())?;
                    Some(Series {
                        label: label.into(),
                        color,
                        points: per_window(&flow.windows, f),
                    })
                })
                .collect();
            time_chart(&TimeChart {
                meta: Meta::new(format!("{id}-{name}"), name, title),
                y_desc: y_desc.into(),
                x_max_s,
                series,
                shades: shades.clone(),
                width: WIDE,
            })
        };
        let mut body = String::new();
        body.push_str(&overlay(
            "throughput",
            format!("Throughput, {name} flow: base vs new"),
            "operations per second",
            |w| w.throughput,
        ));
        body.push_str(&overlay(
            "p99",
            format!("p99 latency, {name} flow: base vs new"),
            "latency (ms)",
            |w| w.latency.p99,
        ));
        page.section(&format!("flow-{name}"), &format!("{name} flow"), &body);
    }
    page.finish()
}
