//! A comparison for people: an aligned table for the terminal and
//! Markdown for a pull-request comment. Both list regressions first, then
//! improvements, then the unchanged rest.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::{Comparison, OnlyIn, Row, RunInfo, Test, Unit, Verdict};

/// The flow column for a whole-run figure.
const WHOLE_RUN: &str = "all";

/// The comparison as an aligned table: flow, target, metric, base, new,
/// change, verdict; then what only one run has, and a one-line summary
/// (`N regressed, M improved, K unchanged`) last, where the eye lands.
pub fn table(cmp: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: base {} vs new {}",
        cmp.base.scenario,
        run_label(&cmp.base),
        run_label(&cmp.new)
    );

    let header = [
        "flow", "target", "metric", "base", "new", "change", "verdict",
    ];
    let mut lines: Vec<[String; 7]> = vec![header.map(String::from)];
    lines.extend(sorted(&cmp.rows).into_iter().map(|r| {
        [
            flow(r).to_string(),
            r.target.clone(),
            r.metric.clone(),
            value(r.base, r.unit),
            value(r.new, r.unit),
            change(r),
            verdict(r.verdict).to_string(),
        ]
    }));
    let mut widths = [0usize; 7];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for line in &lines {
        let mut text = String::new();
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            // Numbers right-aligned so their digits line up.
            let right = (3..=5).contains(&i);
            if i > 0 {
                text.push_str("  ");
            }
            if right {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }

    for (label, only) in [
        ("only in base", &cmp.only_in_base),
        ("only in new", &cmp.only_in_new),
    ] {
        for o in only {
            let _ = writeln!(out, "{label}: {}", only_label(o));
        }
    }
    let _ = writeln!(out, "{}", cmp.summary());
    out
}

/// The comparison as a pull-request comment: a headline (✅ or ❌), a
/// table of the regressions and improvements with the threshold and
/// p-value that decided each, and the unchanged rows folded away.
pub fn markdown(cmp: &Comparison) -> String {
    let mut out = String::new();
    let icon = if cmp.regressed { "❌" } else { "✅" };
    let _ = writeln!(
        out,
        "### {icon} `{}`: {}\n",
        cmp.base.scenario.replace('`', "'"),
        cmp.summary()
    );
    let _ = writeln!(
        out,
        "Base: {} · new: {}. A figure counts as changed when it moves by more than \
         its threshold and its floor, and a one-sided test over the run's own samples \
         puts the move beyond run-to-run noise (α = {}).\n",
        md_run(&cmp.base),
        md_run(&cmp.new),
        cmp.alpha
    );

    let rows = sorted(&cmp.rows);
    let (moved, unchanged): (Vec<&Row>, Vec<&Row>) = rows
        .into_iter()
        .partition(|r| r.verdict != Verdict::Unchanged);
    if moved.is_empty() {
        let _ = writeln!(out, "No figure moved beyond its threshold and the noise.\n");
    } else {
        let _ = writeln!(
            out,
            "| | Flow | Target | Metric | Base | New | Change | Threshold | p |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for r in moved {
            let mark = match r.verdict {
                Verdict::Regressed => "❌ regressed",
                _ => "✅ improved",
            };
            let _ = writeln!(
                out,
                "| {mark} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(flow(r)),
                code(&r.target),
                cell(&r.metric),
                value(r.base, r.unit),
                value(r.new, r.unit),
                change(r),
                format_args!("{}%", trim_float(r.threshold_pct)),
                p_value(r)
            );
        }
        out.push('\n');
    }

    if !unchanged.is_empty() {
        let _ = writeln!(
            out,
            "<details>\n<summary>{} unchanged</summary>\n",
            unchanged.len()
        );
        let _ = writeln!(out, "| Flow | Target | Metric | Base | New | Change | p |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for r in unchanged {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(flow(r)),
                code(&r.target),
                cell(&r.metric),
                value(r.base, r.unit),
                value(r.new, r.unit),
                change(r),
                p_value(r)
            );
        }
        let _ = writeln!(out, "\n</details>\n");
    }

    for (label, only) in [
        ("Only in base", &cmp.only_in_base),
        ("Only in new", &cmp.only_in_new),
    ] {
        if !only.is_empty() {
            let list: Vec<String> = only.iter().map(|o| cell(&only_label(o))).collect();
            let _ = writeln!(out, "**{label}** (not compared): {}.\n", list.join("; "));
        }
    }
    // One newline at the end, however the sections fell.
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// Regressions, then improvements, then unchanged; report order within each.
fn sorted(rows: &[Row]) -> Vec<&Row> {
    let rank = |v: Verdict| match v {
        Verdict::Regressed => 0,
        Verdict::Improved => 1,
        Verdict::Unchanged => 2,
    };
    let mut out: Vec<&Row> = rows.iter().collect();
    out.sort_by_key(|r| rank(r.verdict));
    out
}

fn flow(r: &Row) -> &str {
    r.flow.as_deref().unwrap_or(WHOLE_RUN)
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Regressed => "regressed",
        Verdict::Improved => "improved",
        Verdict::Unchanged => "unchanged",
    }
}

/// A value in its unit, to about three significant figures.
fn value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Millis => format!("{} ms", sig3(v)),
        Unit::PerSecond => format!("{}/s", sig3(v)),
        Unit::Ratio => format!("{:.2}%", v * 100.0),
        Unit::Count | Unit::Messages => format!("{v:.0}"),
    }
}

fn sig3(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn change(r: &Row) -> String {
    match r.change_pct {
        Some(c) => format!("{c:+.1}%"),
        None => "from 0".to_string(),
    }
}

fn p_value(r: &Row) -> String {
    match r.noise.test {
        Test::Unavailable => "–".to_string(),
        _ if r.noise.p < 0.0001 => "<0.0001".to_string(),
        _ => format!("{:.4}", r.noise.p),
    }
}

/// `15` for 15.0, `12.5` for 12.5.
fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn only_label(o: &OnlyIn) -> String {
    format!(
        "{} {} ({})",
        o.flow.as_deref().unwrap_or(WHOLE_RUN),
        o.target,
        o.metrics.join(", ")
    )
}

/// `source (started …, passed)`, as far as it is known.
fn run_label(r: &RunInfo) -> String {
    format!("{} ({})", source(r), facts(r))
}

fn md_run(r: &RunInfo) -> String {
    let name = if r.source.is_empty() {
        source(r).to_string()
    } else {
        code(&r.source)
    };
    format!("{name} ({})", facts(r))
}

fn source(r: &RunInfo) -> &str {
    if r.source.is_empty() {
        "(report)"
    } else {
        &r.source
    }
}

/// `started 2023-11-14T22:13:20Z, passed`.
fn facts(r: &RunInfo) -> String {
    let verdict = if r.passed { "passed" } else { "failed" };
    match started(r) {
        Some(t) => format!("started {t}, {verdict}"),
        None => verdict.to_string(),
    }
}

fn started(r: &RunInfo) -> Option<String> {
    let ms = u64::try_from(r.started_unix_ms).ok().filter(|ms| *ms > 0)?;
    let t = UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A code span, unless the text itself has backticks.
fn code(s: &str) -> String {
    if s.contains('`') {
        cell(s)
    } else {
        format!("`{}`", cell(s))
    }
}
