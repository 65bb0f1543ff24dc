//! Reading a drawn page back: its charts, what each plotted, and the
//! fault shading on it. `gauntlet report --check` and the tests use it to
//! hold a page to "every chart has data", without a browser.
//!
//! It reads only what this crate writes (one `<figure class="chart">`
//! per chart, one `<polyline>` per series, fault shades as translucent
//! rectangles), not HTML at large.

use std::collections::BTreeMap;

/// One chart of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// `data-chart`: e.g. `throughput-sync`.
    pub id: String,
    /// `data-flow`: the flow(s) it shows.
    pub flow: String,
    /// `data-kind`: `time`, `curve`, `bands` or `bars`.
    pub kind: String,
    /// `data-points`: the points (or spans, or bars) each series has.
    pub points: usize,
    /// Points of each plotted series (`<polyline>`), in order.
    pub series: Vec<usize>,
    /// Filled rectangles drawn opaque (bars, bands, legend swatches).
    pub solid_rects: usize,
    /// Fault windows shaded on it (translucent filled rectangles).
    pub fault_shades: usize,
    /// The SVG's text, entities left as written.
    pub text: String,
}

impl Chart {
    /// True when the chart plotted something: a series with points, or
    /// bars and bands.
    pub fn has_data(&self) -> bool {
        self.points > 0
            && match self.kind.as_str() {
                "bands" | "bars" => self.solid_rects > 0,
                _ => self.series.iter().any(|&n| n > 0),
            }
    }
}

/// What a page holds, once checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageSummary {
    pub charts: usize,
    pub series: usize,
    pub fault_shades: usize,
}

/// Holds the page drawn from `report` to what a reader needs: at least one
/// chart per flow that ran; every chart with data; every series of an
/// over-time chart with one point per window of its flow; and, when the
/// report has fault windows, each flow's faults shaded on its over-time
/// charts. Every problem found, or what the page holds.
pub fn check(report: &crate::report::Report, html: &str) -> Result<PageSummary, Vec<String>> {
    let charts = charts(html);
    let mut problems = Vec::new();
    for name in report.flows.keys() {
        if !charts
            .iter()
            .any(|c| c.flow.split_whitespace().any(|f| f == name))
        {
            problems.push(format!("no chart of the {name} flow"));
        }
    }
    let faults = report.fault_windows();
    for c in &charts {
        if !c.has_data() {
            problems.push(format!("chart `{}` plots nothing", c.id));
        }
        if c.kind != "time" {
            continue;
        }
        let flows: Vec<&str> = c.flow.split_whitespace().collect();
        let windows: Vec<usize> = flows
            .iter()
            .filter_map(|f| report.flows.get(*f))
            .map(|f| f.windows.len())
            .collect();
        for (i, n) in c.series.iter().enumerate() {
            if !windows.contains(n) {
                problems.push(format!(
                    "chart `{}`: series {} has {n} points; its flow has {windows:?} windows",
                    c.id,
                    i + 1
                ));
            }
        }
        let faulted = faults
            .iter()
            .any(|w| w.flow.as_deref().is_none_or(|f| flows.contains(&f)));
        if faulted && c.fault_shades == 0 {
            problems.push(format!("chart `{}` does not shade its flow's faults", c.id));
        }
    }
    if problems.is_empty() {
        Ok(PageSummary {
            charts: charts.len(),
            series: charts.iter().map(|c| c.series.len()).sum(),
            fault_shades: charts.iter().map(|c| c.fault_shades).sum(),
        })
    } else {
        Err(problems)
    }
}

/// Fault windows are the only translucent rectangles the charts draw
/// (their own colour at 13%, per flow on overlays); anything under this
/// opacity is a shade.
const SHADE_OPACITY: f64 = 0.5;

/// Every chart of `html`, in page order.
pub fn charts(html: &str) -> Vec<Chart> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<figure class=\"chart\"") {
        let tail = &rest[start..];
        let (Some(open_end), Some(end)) = (tail.find('>'), tail.find("</figure>")) else {
            break;
        };
        let attrs = attributes(&tail[..open_end]);
        let body = &tail[open_end + 1..end];
        let get = |k: &str| attrs.get(k).cloned().unwrap_or_default();
        out.push(Chart {
            id: get("data-chart"),
            flow: get("data-flow"),
            kind: get("data-kind"),
            points: get("data-points").parse().unwrap_or(0),
            series: elements(body, "polyline")
                .iter()
                .map(|a| {
                    a.get("points").map_or(0, |p| {
                        p.split_whitespace().filter(|xy| xy.contains(',')).count()
                    })
                })
                .collect(),
            solid_rects: elements(body, "rect")
                .iter()
                .filter(|a| {
                    a.get("opacity").is_none_or(|o| o == "1")
                        && a.get("fill")
                            .is_some_and(|f| f != "none" && !f.eq_ignore_ascii_case("#FFFFFF"))
                })
                .count(),
            fault_shades: elements(body, "rect")
                .iter()
                .filter(|a| {
                    a.get("fill").is_some_and(|f| f != "none")
                        && a.get("opacity")
                            .and_then(|o| o.parse::<f64>().ok())
                            .is_some_and(|o| o < SHADE_OPACITY)
                })
                .count(),
            text: texts(body),
        });
        rest = &tail[end..];
    }
    out
}

/// The attributes of every `<name ...>` element in `svg`.
fn elements(svg: &str, name: &str) -> Vec<BTreeMap<String, String>> {
    let open = format!("<{name} ");
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find(&open) {
        let tail = &rest[at..];
        let end = tail.find('>').unwrap_or(tail.len());
        out.push(attributes(&tail[..end]));
        rest = &tail[end..];
    }
    out
}

/// `name="value"` pairs of one open tag (our values never hold quotes:
/// they are escaped).
pub(super) fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    for pair in tag.split('"').collect::<Vec<_>>().chunks(2) {
        if let [k, v] = pair {
            let k = k.trim().trim_end_matches('=');
            let k = k.rsplit(char::is_whitespace).next().unwrap_or("");
            attrs.insert(k.to_string(), (*v).to_string());
        }
    }
    attrs
}

/// The text of every `<text>` element, one per line.
fn texts(svg: &str) -> String {
    let mut out = String::new();
    let mut rest = svg;
    while let Some(at) = rest.find("<text") {
        let tail = &rest[at..];
        let (Some(open_end), Some(end)) = (tail.find('>'), tail.find("</text>")) else {
            break;
        };
        if open_end < end {
            out.push_str(&tail[open_end + 1..end]);
            out.push('\n');
        }
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_the_report_draws() {
        let html = r##"<p>x</p><figure class="chart" data-chart="throughput-sync" data-flow="sync" data-kind="time" data-points="3" aria-label="T">
<svg><rect x="0" y="0" width="9" height="9" opacity="0.18" fill="#7B4FC4"/><text x="1">link down</text>
<polyline fill="none" opacity="1" stroke="#4E79A7" points="1,2 3,4 5,6 "/><polyline points=""/></svg></figure>
<figure class="chart" data-chart="breakers-sync" data-flow="sync" data-kind="bands" data-points="2"><svg><rect opacity="1" fill="#59A14F" width="3"/></svg></figure>"##;
        let c = charts(html);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].id, "throughput-sync");
        assert_eq!(c[0].series, [3, 0]);
        assert_eq!(c[0].fault_shades, 1);
        assert!(c[0].text.contains("link down"));
        assert!(c[0].has_data());
        assert_eq!((c[1].kind.as_str(), c[1].solid_rects), ("bands", 1));
        assert!(c[1].has_data());
        assert!(
            charts("<figure class=\"chart\" data-points=\"0\"></figure>")
                .iter()
                .all(|c| !c.has_data())
        );
    }
}
