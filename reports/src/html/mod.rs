//! `report.html` and `compare.html`: a run's figures for people, in one
//! self-contained file each.
//!
//! The page needs nothing but a browser: the style sheet is inline, the
//! charts are SVG drawn by plotters and inlined, there are no scripts,
//! fonts or network fetches, so the file can be mailed, attached to a CI
//! job or opened years later. Every over-time chart shades the windows in
//! which a fault was in force and names the fault, since "what happened
//! when the link went down" is the question a chaos run asks.
//!
//! # Layout
//!
//! - `mod.rs`: the public API and the order of the report's sections;
//! - `page.rs`: the HTML skeleton, its style sheet and table of contents,
//!   escaping, and how numbers and times are written;
//! - `charts.rs`: the plotters charts (time series with fault shading,
//!   percentile curves, state bands, bars);
//! - `sections.rs`: the report's sections, from a [`Report`];
//! - `compare.rs`: the comparison table and `compare.html`;
//! - `inspect.rs`: reading a page's charts back (for `report --check`).
//!
//! # Example
//!
//! ```
//! use gauntlet_reports::html::render_report;
//! use gauntlet_reports::Report;
//!
//! let report = Report { scenario: "smoke".into(), partial: true, ..Report::default() };
//! let html = render_report(&report);
//! assert!(html.starts_with("<!DOCTYPE html>"));
//! assert!(html.contains("PARTIAL"));
//! ```

use std::path::{Path, PathBuf};

use crate::compare::Comparison;
use crate::report::{write_atomically, Report, ReportError};

mod charts;
mod compare;
pub mod inspect;
mod page;
mod sections;
#[cfg(test)]
mod tests;

/// The file name of the HTML report in a run directory.
pub const REPORT_HTML: &str = "report.html";
/// The file name of the comparison page `compare` writes.
pub const COMPARE_HTML: &str = "compare.html";

/// The report as one self-contained HTML page.
pub fn render_report(report: &Report) -> String {
    let title = if report.scenario.is_empty() {
        "Gauntlet report".to_string()
    } else {
        format!("{}: Gauntlet report", report.scenario)
    };
    let mut page = page::Page::new(&title);
    page.header("summary", "Summary", &sections::header(report));

    let faults = report.fault_windows();
    for name in sections::flow_names(report) {
        if let Some(flow) = report.flows.get(name) {
            page.section(
                &format!("flow-{name}"),
                &format!("{name} flow"),
                &sections::flow(name, flow, &faults),
            );
        }
    }
    if let Some(html) = sections::side_by_side(report, &faults) {
        page.section("sync-vs-async", "Sync vs async", &html);
    }
    page.section(
        "resilience",
        "Resilience",
        &sections::resilience(report, &faults),
    );
    if let Some(html) = sections::events(report, &faults) {
        page.section("events", "Events", &html);
    }
    page.section("checks", "Invariants and gates", &sections::checks(report));
    page.section("scenario", "Scenario", &sections::scenario(report));
    if let Some(cmp) = &report.baseline {
        page.section(
            "baseline",
            "Against the baseline",
            &compare::comparison_table(cmp),
        );
    }
    page.finish()
}

/// Writes `report.html` into `dir` (created if needed); returns its path.
pub fn write_html(dir: impl AsRef<Path>, report: &Report) -> Result<PathBuf, ReportError> {
    write_page(dir.as_ref(), REPORT_HTML, &render_report(report))
}

/// Two runs compared as one self-contained HTML page: the comparison
/// table, regressions first, and each flow's throughput and p99 latency of
/// both runs overlaid, each run's faults shaded.
pub fn render_compare(cmp: &Comparison, base: &Report, new: &Report) -> String {
    compare::render(cmp, base, new)
}

/// Writes `compare.html` into `dir` (created if needed); returns its path.
pub fn write_compare_html(
    dir: impl AsRef<Path>,
    cmp: &Comparison,
    base: &Report,
    new: &Report,
) -> Result<PathBuf, ReportError> {
    write_page(dir.as_ref(), COMPARE_HTML, &render_compare(cmp, base, new))
}

fn write_page(dir: &Path, name: &str, html: &str) -> Result<PathBuf, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(name);
    write_atomically(&path, html.as_bytes())?;
    Ok(path)
}
