//! The page around the charts: the HTML skeleton with its inline style
//! sheet and table of contents, escaping, and how numbers, times and
//! verdicts read.
//!
//! Everything a person might have typed (scenario text, names, details)
//! goes through [`esc`] before it reaches the page; the SVG from plotters
//! escapes its own text.

/// Appends formatted text to a `String`. Writing to a `String` cannot
/// fail, so the `fmt::Result` carries nothing worth handling.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = write!($out, $($arg)*);
    }};
}
pub(super) use w;

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page being assembled: sections in order, each linked from the table
/// of contents.
pub(super) struct Page {
    title: String,
    toc: Vec<(String, String)>,
    body: String,
}

impl Page {
    pub(super) fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            toc: Vec::new(),
            body: String::with_capacity(256 * 1024),
        }
    }

    /// Adds a section with an `id` (for the table of contents) and a
    /// heading; `content` is HTML.
    pub(super) fn section(&mut self, id: &str, heading: &str, content: &str) {
        self.toc.push((id.to_string(), heading.to_string()));
        w!(
            self.body,
            "<section id=\"{}\">\n<h2>{}</h2>\n{content}</section>\n",
            esc(id),
            esc(heading)
        );
    }

    /// Adds the page's header: like a section, but its content brings
    /// its own heading (the `<h1>`).
    pub(super) fn header(&mut self, id: &str, toc: &str, content: &str) {
        self.toc.push((id.to_string(), toc.to_string()));
        w!(
            self.body,
            "<section id=\"{}\" class=\"header\">\n{content}</section>\n",
            esc(id)
        );
    }

    /// The whole document.
    pub(super) fn finish(self) -> String {
        let mut out = String::with_capacity(self.body.len() + STYLE.len() + 4096);
        w!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<nav class=\"toc\">\n\
             <div class=\"brand\">Gauntlet</div>\n<ul>\n",
            esc(&self.title)
        );
        for (id, heading) in &self.toc {
            w!(
                out,
                "<li><a href=\"#{}\">{}</a></li>\n",
                esc(id),
                esc(heading)
            );
        }
        out.push_str("</ul>\n</nav>\n<main>\n");
        out.push_str(&self.body);
        out.push_str("</main>\n</body>\n</html>\n");
        out
    }
}

/// A note in place of a chart or table that has nothing to show.
pub(super) fn note(text: &str) -> String {
    format!("<p class=\"note\">{}</p>\n", esc(text))
}

/// One headline figure, as a tile.
pub(super) fn tile(label: &str, value: &str) -> String {
    format!(
        "<div class=\"tile\"><div class=\"tile-value\">{}</div><div class=\"tile-label\">{}</div></div>",
        esc(value),
        esc(label)
    )
}

/// A verdict badge: `class` is one of `pass`, `fail`, `skip`, `partial`,
/// `regressed`, `improved`, `unchanged`.
pub(super) fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
}

/// A figure for a table cell, right-aligned by [`table`].
pub(super) fn num_cell(text: &str) -> String {
    format!("{NUM_CELL}{}</span>", esc(text))
}

const NUM_CELL: &str = "<span class=\"n\">";

/// A table from a header row and rows of cells that are already HTML.
/// Cells made by [`num_cell`] are right-aligned.
pub(super) fn table(class: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::with_capacity(128 + rows.len() * 160);
    w!(
        out,
        "<div class=\"table-wrap\"><table class=\"{class}\">\n<thead><tr>"
    );
    // A column of figures has its heading over the figures.
    let numeric = |i: usize| {
        rows.first()
            .and_then(|r| r.get(i))
            .is_some_and(|c| c.starts_with(NUM_CELL))
    };
    for (i, h) in headers.iter().enumerate() {
        if numeric(i) {
            w!(out, "<th class=\"n\">{}</th>", esc(h));
        } else {
            w!(out, "<th>{}</th>", esc(h));
        }
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            if cell.starts_with(NUM_CELL) {
                w!(out, "<td class=\"n\">{cell}</td>");
            } else {
                w!(out, "<td>{cell}</td>");
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
    out
}

/// A number for people: as many decimals as its size deserves.
pub(super) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_string();
    }
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    group_thousands(&s)
}

/// A count, with thin spaces between thousands.
pub(super) fn int(v: u64) -> String {
    group_thousands(&v.to_string())
}

fn group_thousands(s: &str) -> String {
    let (sign, rest) = s.strip_prefix('-').map_or(("", s), |r| ("-", r));
    let (whole, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(w, f)| (w, Some(f)));
    if whole.len() <= 4 {
        return s.to_string();
    }
    let mut out = String::from(sign);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// Milliseconds of latency.
pub(super) fn ms(v: f64) -> String {
    format!("{} ms", num(v))
}

/// A fraction as a percentage.
pub(super) fn pct(fraction: f64) -> String {
    format!("{}%", num(fraction * 100.0))
}

/// An axis tick: short (`1.5k`), since it sits beside a grid line.
pub(super) fn tick(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.1}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

/// A span of time for people: `850 ms`, `42.5 s`, `10m 05s`, `1h 02m`.
pub(super) fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 60 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// A time on the run's clock (milliseconds since the load started), in
/// seconds.
pub(super) fn at(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Unix milliseconds as `2024-05-01 12:34:56 UTC`, reshaped from
/// humantime's RFC 3339 form (`2024-05-01T12:34:56Z`). humantime writes
/// the years 1970 to 9999, so an instant outside them (a report edited by
/// hand, a clock set before 1970) reads as the nearest one inside.
pub(super) fn utc(unix_ms: i64) -> String {
    use std::time::{Duration, UNIX_EPOCH};
    /// 9999-12-31 23:59:59 UTC.
    const LAST_MS: i64 = 253_402_300_799_000;
    let ms = unix_ms.clamp(0, LAST_MS) as u64;
    let stamp = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms));
    format!(
        "{} UTC",
        stamp
            .to_string()
            .trim_end_matches('Z')
            .replacen('T', " ", 1)
    )
}

/// Bytes as `15.6 GiB`.
pub(super) fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `new / base` as a factor (`1.23×`), or a dash when there is no base.
pub(super) fn ratio(new: f64, base: f64) -> String {
    if base == 0.0 || !base.is_finite() || !new.is_finite() {
        "—".to_string()
    } else {
        format!("{:.2}×", new / base)
    }
}

/// The relative change from `base` to `new`, signed (`+12.5%`).
pub(super) fn change(base: f64, new: f64) -> String {
    if base == 0.0 || !base.is_finite() || !new.is_finite() {
        if new == base {
            "0%".to_string()
        } else {
            "—".to_string()
        }
    } else {
        let c = (new - base) / base.abs() * 100.0;
        if c.abs() >= 100.0 {
            format!("{c:+.0}%")
        } else {
            format!("{c:+.1}%")
        }
    }
}

/// The inline style sheet: a light, dense, Grafana-like page; charts
/// scale down with the window (the SVGs keep their `viewBox`).
const STYLE: &str = r#"
:root{--fg:#1f2328;--muted:#656d76;--line:#d8dee4;--bg:#f6f8fa;--card:#fff;
--pass:#1a7f37;--fail:#cf222e;--partial:#9a6700;--accent:#0969da}
*{box-sizing:border-box}
html{scroll-behavior:smooth}
body{margin:0;font:14px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg);display:flex}
nav.toc{position:sticky;top:0;align-self:flex-start;height:100vh;overflow-y:auto;width:210px;flex:none;padding:18px 14px;border-right:1px solid var(--line);background:var(--card)}
nav.toc .brand{font-weight:700;font-size:16px;margin-bottom:12px}
nav.toc ul{list-style:none;margin:0;padding:0}
nav.toc li a{display:block;padding:4px 8px;border-radius:6px;color:var(--fg);text-decoration:none}
nav.toc li a:hover{background:var(--bg);color:var(--accent)}
main{flex:1;min-width:0;max-width:1160px;padding:18px 28px 60px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 22px;margin:0 0 18px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:19px;margin:0 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:16px;margin:22px 0 8px}
h4{font-size:14px;margin:16px 0 6px;color:var(--muted)}
p.desc{margin:0 0 12px;color:var(--muted)}
p.note{color:var(--muted);font-style:italic;margin:8px 0;padding:10px 12px;background:var(--bg);border-radius:6px}
.verdict{display:inline-block;font-size:28px;font-weight:800;letter-spacing:.06em;padding:6px 18px;border-radius:8px;color:#fff;margin:8px 0 12px}
.verdict.pass{background:var(--pass)}.verdict.fail{background:var(--fail)}.verdict.partial{background:var(--partial)}
ul.failures{margin:0 0 14px;padding:10px 10px 10px 28px;border-left:4px solid var(--fail);background:#ffebe9;border-radius:4px}
ul.failures li{margin:2px 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:8px 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 14px}
.tile{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px;background:var(--bg)}
.tile-value{font-size:20px;font-weight:700}.tile-label{color:var(--muted);font-size:12px}
.table-wrap{overflow-x:auto;margin:6px 0 12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:hover{background:#f0f6ff}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:12px;overflow-x:auto;margin:0}
figure{margin:10px 0 18px}
figure figcaption{color:var(--muted);font-size:13px;margin-bottom:4px}
figure.chart svg{display:block;max-width:100%;height:auto}
figure.chart polyline:hover{stroke-width:4}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;white-space:nowrap}
.badge.pass,.badge.improved{background:var(--pass)}
.badge.fail,.badge.regressed{background:var(--fail)}
.badge.skip,.badge.unchanged{background:#8c959f}
.badge.partial{background:var(--partial)}
.ids{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:var(--muted)}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}
@media (max-width:1100px){.pair{grid-template-columns:1fr}}
@media (max-width:800px){nav.toc{display:none}main{padding:10px}}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        // 2024-02-29 12:34:56.789 UTC, a leap day.
        assert_eq!(utc(1_709_210_096_789), "2024-02-29 12:34:56 UTC");
        // Outside the years humantime writes: the nearest one inside.
        assert_eq!(utc(-1000), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(i64::MAX), "9999-12-31 23:59:59 UTC");
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1234567.0), "1\u{2009}234\u{2009}567");
        assert_eq!(int(1000), "1000");
        assert_eq!(int(12345), "12\u{2009}345");
        assert_eq!(tick(15000.0), "15k");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(duration(605_000), "10m 05s");
        assert_eq!(change(100.0, 112.5), "+12.5%");
        assert_eq!(ratio(3.0, 0.0), "—");
        assert_eq!(bytes(16 * 1024 * 1024 * 1024), "16.0 GiB");
    }
}
