//! `junit.xml`: one test case per gate and per invariant, so any CI that
//! reads JUnit shows which held and which did not, with why.
//!
//! Two suites, `gates` and `invariants` (and `baseline`, one case per
//! compared figure, when the run was compared with one); a failure carries the detail as
//! its message and body; a skipped invariant is `<skipped>`. A partial run
//! adds a failing `run completed` case. Built as plain text with every
//! attribute and text escaped, and characters XML 1.0 cannot carry replaced.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::report::{write_atomically, Report, ReportError};

/// The file name of the JUnit report in a run directory.
pub const JUNIT_XML: &str = "junit.xml";

struct Case {
    name: String,
    time_s: f64,
    failure: Option<String>,
    skipped: Option<String>,
    out: String,
}

/// The JUnit XML of a report.
pub fn junit_xml(report: &Report) -> String {
    let gates: Vec<Case> = report
        .gates
        .iter()
        .map(|g| Case {
            name: g.gate.clone(),
            time_s: 0.0,
            failure: (!g.passed).then(|| g.detail.clone()),
            skipped: None,
            out: g.detail.clone(),
        })
        .collect();
    let mut invariants: Vec<Case> = report
        .invariants
        .iter()
        .map(|i| {
            let offenders = if i.first_offending.is_empty() {
                String::new()
            } else {
                let ids: Vec<String> = i.first_offending.iter().map(ToString::to_string).collect();
                format!(" (first offending: {})", ids.join(", "))
            };
            Case {
                name: i.name.clone(),
                time_s: 0.0,
                failure: (!i.passed).then(|| {
                    format!(
                        "{} violation(s) in {} checked: {}{offenders}",
                        i.violations, i.checked, i.detail
                    )
                }),
                skipped: i.skipped.then(|| i.detail.clone()),
                out: i.detail.clone(),
            }
        })
        .collect();
    if report.partial {
        invariants.push(Case {
            name: "run completed".into(),
            time_s: report.duration_ms as f64 / 1000.0,
            failure: Some("the run stopped early; its figures are incomplete".into()),
            skipped: None,
            out: String::new(),
        });
    }
    let mut suites = vec![("gates", gates), ("invariants", invariants)];
    if let Some(c) = &report.baseline {
        let rows = c
            .rows
            .iter()
            .map(|r| {
                let name = match &r.flow {
                    Some(f) if *f != r.target => format!("{} {}({})", f, r.metric, r.target),
                    _ => format!("{}({})", r.metric, r.target),
                };
                let detail = format!(
                    "{name}: {} → {} ({:?}) against the baseline {}",
                    r.base, r.new, r.verdict, c.base.source
                );
                Case {
                    name,
                    time_s: 0.0,
                    failure: (r.verdict == crate::compare::Verdict::Regressed)
                        .then(|| detail.clone()),
                    skipped: None,
                    out: detail,
                }
            })
            .collect();
        suites.push(("baseline", rows));
    }
    let (tests, failures, skipped) =
        suites
            .iter()
            .flat_map(|(_, c)| c)
            .fold((0, 0, 0), |(t, f, s), c| {
                (
                    t + 1,
                    f + usize::from(c.failure.is_some()),
                    s + usize::from(c.skipped.is_some()),
                )
            });
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\">",
        escape(&format!("gauntlet: {}", report.scenario))
    );
    for (suite, cases) in &suites {
        let f = cases.iter().filter(|c| c.failure.is_some()).count();
        let s = cases.iter().filter(|c| c.skipped.is_some()).count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{f}\" skipped=\"{s}\" errors=\"0\">",
            cases.len()
        );
        let class = escape(&format!("gauntlet.{}.{suite}", report.scenario));
        for c in cases {
            let _ = write!(
                x,
                "    <testcase classname=\"{class}\" name=\"{}\" time=\"{:.3}\"",
                escape(&c.name),
                c.time_s
            );
            if c.failure.is_none() && c.skipped.is_none() && c.out.is_empty() {
                x.push_str("/>\n");
                continue;
            }
            x.push_str(">\n");
            if let Some(msg) = &c.failure {
                let _ = writeln!(
                    x,
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                    escape(msg),
                    match *suite {
                        "gates" => "gate",
                        "baseline" => "regression",
                        _ => "invariant",
                    },
                    escape(msg)
                );
            }
            if let Some(msg) = &c.skipped {
                let _ = writeln!(x, "      <skipped message=\"{}\"/>", escape(msg));
            }
            if !c.out.is_empty() {
                let _ = writeln!(x, "      <system-out>{}</system-out>", escape(&c.out));
            }
            x.push_str("    </testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// Writes `junit.xml` into `dir` (created if needed); returns its path.
pub fn write_junit(dir: impl AsRef<Path>, report: &Report) -> Result<PathBuf, ReportError> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(JUNIT_XML);
    write_atomically(&path, junit_xml(report).as_bytes())?;
    Ok(path)
}

/// Escapes text for an XML attribute or element, and replaces characters
/// XML 1.0 cannot carry at all (most control characters) with U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept in attributes too: a raw newline there would be
            // normalised to a space by any XML reader.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_forbidden_characters() {
        assert_eq!(
            escape("p99(a->b) < 3 & \"x\" 'y'\u{1}\n"),
            "p99(a-&gt;b) &lt; 3 &amp; &quot;x&quot; &apos;y&apos;\u{FFFD}&#10;"
        );
    }
}
