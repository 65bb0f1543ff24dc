//! The charts, drawn by plotters into SVG strings and wrapped in
//! `<figure class="chart">` elements the page inlines.
//!
//! Four shapes cover the report:
//! - [`time_chart`]: series over the run's clock (seconds since the
//!   measured load started), with fault windows shaded and named;
//! - [`percentile_chart`]: HDR percentile curves, the x axis a log scale of
//!   `1 / (1 − q)` so the tail gets the room it deserves;
//! - [`bands_chart`]: one row of coloured state spans per item (breaker
//!   states), a rectangle per span rather than per window;
//! - [`bars_chart`]: a handful of totals.
//!
//! Every figure says what it is in data attributes, so tests and people
//! can find it: `data-chart` (an id), `data-flow` (the flows it draws,
//! space separated), `data-kind` (`time`, `curve`, `bands`, `bars`) and
//! `data-points` (the points in its longest series, or the spans or bars
//! it draws). Series are `<polyline>`s, one per series, and nothing else
//! is: there are no axis lines or tick marks (a light grid stands in) and
//! the legend's swatches are squares, which keeps a series' points
//! countable. The legend sits under the plot, so every chart of a width
//! has the same plotting area and the time axes down a page line up. A
//! chart with nothing to draw is a note instead: a drawn chart always has
//! data.
//!
//! There are no font files: plotters lays text out with its naive metrics
//! and the browser draws it.

use std::ops::Range;

use plotters::chart::ChartContext;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, KeyPointWeight, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::page::{esc, note, tick};

const FONT: &str = "sans-serif";
/// The width of a full-width chart, in SVG pixels; the page scales it down
/// to fit.
pub(super) const WIDE: u32 = 1080;
/// The width of a chart that shares a row with another.
pub(super) const HALF: u32 = 536;
const HEIGHT: u32 = 300;

const TEXT: RGBColor = RGBColor(0x1F, 0x23, 0x28);
const MUTED: RGBColor = RGBColor(0x65, 0x6D, 0x76);
const GRID: RGBColor = RGBColor(0xE4, 0xE8, 0xEC);

// A Tableau-10 palette: distinct on white and for most colour vision.
pub(super) const BLUE: RGBColor = RGBColor(0x4E, 0x79, 0xA7);
pub(super) const ORANGE: RGBColor = RGBColor(0xF2, 0x8E, 0x2B);
pub(super) const RED: RGBColor = RGBColor(0xE1, 0x57, 0x59);
pub(super) const TEAL: RGBColor = RGBColor(0x76, 0xB7, 0xB2);
pub(super) const GREEN: RGBColor = RGBColor(0x59, 0xA1, 0x4F);
pub(super) const AMBER: RGBColor = RGBColor(0xED, 0xB1, 0x2F);
pub(super) const PURPLE: RGBColor = RGBColor(0xB0, 0x7A, 0xA1);
pub(super) const GREY: RGBColor = RGBColor(0x8C, 0x95, 0x9F);
/// Series colours in order, for series with no meaning of their own
/// (endpoints, error kinds, links).
pub(super) const PALETTE: [RGBColor; 10] = [
    BLUE,
    ORANGE,
    RED,
    TEAL,
    GREEN,
    AMBER,
    PURPLE,
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    GREY,
];
/// Fault windows: a violet no series uses, so a shade never reads as data.
pub(super) const FAULT: RGBColor = RGBColor(0x7B, 0x4F, 0xC4);

/// The `i`th palette colour, cycling.
pub(super) fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One line: `(x, y)` points in the chart's units.
pub(super) struct Series {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// A span of the run's clock to shade, with its name (a fault window).
#[derive(Clone)]
pub(super) struct Shade {
    /// Seconds since the measured load started.
    pub from_s: f64,
    /// `None`: to the end of the chart.
    pub to_s: Option<f64>,
    pub label: String,
    pub color: RGBColor,
}

/// What every chart carries: its id, the flows it draws, and its title.
pub(super) struct Meta {
    pub id: String,
    pub flows: String,
    pub title: String,
}

impl Meta {
    pub(super) fn new(
        id: impl Into<String>,
        flows: impl Into<String>,
        title: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            flows: flows.into(),
            title: title.into(),
        }
    }
}

/// A line chart over the run's clock.
pub(super) struct TimeChart {
    pub meta: Meta,
    pub y_desc: String,
    /// The clock's end, in seconds (the flow's last window).
    pub x_max_s: f64,
    pub series: Vec<Series>,
    pub shades: Vec<Shade>,
    pub width: u32,
}

/// One row of a band chart: an item and its state spans.
pub(super) struct BandRow {
    pub label: String,
    pub spans: Vec<Span>,
}

/// A state held from `from_s` to `to_s` (seconds).
pub(super) struct Span {
    pub from_s: f64,
    pub to_s: f64,
    pub state: String,
}

/// What a band chart colours each state, and the order of its legend.
pub(super) struct StateColors<'a> {
    pub known: &'a [(&'a str, RGBColor)],
    /// For states not in `known`.
    pub other: RGBColor,
}

impl StateColors<'_> {
    fn of(&self, state: &str) -> RGBColor {
        self.known
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(self.other, |(_, c)| *c)
    }
}

/// A bar: its label, colour and value.
pub(super) struct Bar {
    pub label: String,
    pub color: RGBColor,
    pub value: f64,
}

/// Every chart here: both axes are [`Fixed`].
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Fixed, Fixed>>;

/// A linear axis whose grid lines and labels sit at given values: the
/// percentile decades, the rows of a band chart, the bars, and "nice"
/// steps on value axes. (plotters' own `with_key_points` wrapper has no
/// label formatter for `f64`, so the mesh could not label it.)
#[derive(Clone)]
pub(super) struct Fixed {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Fixed {
    fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
        Self { range, ticks }
    }

    /// `0..max` rounded up to a nice number, with nice steps.
    fn nice(max: f64) -> Self {
        let (top, step) = nice_scale(max);
        let n = (top / step).round() as usize;
        Self::new(0.0..top, (0..=n).map(|i| i as f64 * step).collect())
    }
}

impl Ranged for Fixed {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span <= 0.0 || !v.is_finite() {
            return limit.0;
        }
        let f = ((v - self.range.start) / span).clamp(-0.05, 1.05);
        limit.0 + ((limit.1 - limit.0) as f64 * f).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Only the bold grid: light lines between ticks would be clutter.
        match hint.weight() {
            KeyPointWeight::Bold => self.ticks.clone(),
            KeyPointWeight::Any => Vec::new(),
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// A top above `max` at a 1, 2, 2.5 or 5 step, and that step, so the top
/// grid line is labelled and the data never touches the frame.
fn nice_scale(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let target = max * 1.08;
    let raw = target / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((target / step).ceil() * step, step)
}

/// The time axis: `0..end` seconds with ticks at round seconds, minutes or
/// hours.
fn time_axis(end_s: f64) -> Fixed {
    let end = if end_s.is_finite() && end_s > 0.0 {
        end_s
    } else {
        1.0
    };
    let step = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ]
    .into_iter()
    .find(|s| end / s <= 12.0)
    .unwrap_or_else(|| (end / 12.0 / 3600.0).ceil() * 3600.0);
    let n = (end / step).floor() as usize;
    Fixed::new(0.0..end, (0..=n).map(|i| i as f64 * step).collect())
}

/// A time tick: seconds below two minutes, `m:ss` above.
fn time_tick(s: f64, end_s: f64) -> String {
    if end_s < 120.0 {
        tick(s)
    } else {
        let s = s.round() as u64;
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn time_desc(end_s: f64) -> &'static str {
    if end_s < 120.0 {
        "time since load start (s)"
    } else {
        "time since load start (min:s)"
    }
}

/// Why a chart could not be drawn. The page shows the message in a note
/// where the chart would be (see [`drawn`]); the rest of the report stands.
#[derive(Debug, thiserror::Error)]
enum ChartError {
    /// plotters failed to draw into the SVG string (a backend write, a
    /// shared backend, or a layout with no room): its own message.
    #[error(transparent)]
    Draw(#[from] DrawingAreaErrorKind<std::io::Error>),
}

fn figure(meta: &Meta, kind: &str, points: usize, svg: &str) -> String {
    format!(
        "<figure class=\"chart\" data-chart=\"{}\" data-flow=\"{}\" data-kind=\"{kind}\" \
         data-points=\"{points}\" aria-label=\"{}\">\n{svg}</figure>\n",
        esc(&meta.id),
        esc(&meta.flows),
        esc(&meta.title)
    )
}

fn drawn(meta: &Meta, kind: &str, points: usize, svg: Result<String, ChartError>) -> String {
    match svg {
        Ok(svg) => figure(meta, kind, points, &svg),
        Err(e) => note(&format!(
            "{}: the chart could not be drawn ({e}).",
            meta.title
        )),
    }
}

fn caption_style() -> TextStyle<'static> {
    (FONT, 20).into_font().style(FontStyle::Bold).color(&TEXT)
}

/// Keeps a label on one line within reason; the tables carry it whole.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

const MARGIN: u32 = 10;
const LEGEND_ROW: u32 = 22;
/// About a character's width at the legend's size, by the naive metrics
/// (generous, so entries never run into each other).
const CHAR_W: u32 = 8;

/// The legend's entries placed in rows under the plot, left to right, so
/// every chart keeps the same plotting width and the time axes of the
/// charts on a page line up.
struct Legend {
    /// `(x, row, label, colour)`.
    entries: Vec<(i32, u32, String, RGBColor)>,
    rows: u32,
}

impl Legend {
    fn layout(labels: &[(String, RGBColor)], width: u32, left: u32) -> Self {
        let right = width.saturating_sub(MARGIN * 2);
        let mut entries = Vec::with_capacity(labels.len());
        let (mut x, mut row) = (left, 0);
        for (label, color) in labels {
            let label = shorten(label, 44);
            let w = 12 + 6 + label.chars().count() as u32 * CHAR_W + 18;
            if x > left && x + w > right {
                row += 1;
                x = left;
            }
            entries.push((x as i32, row, label, *color));
            x += w;
        }
        let rows = if labels.is_empty() { 0 } else { row + 1 };
        Self { entries, rows }
    }

    fn height(&self) -> u32 {
        self.rows * LEGEND_ROW
    }

    /// Draws the entries with their top at `top`. Swatches are filled
    /// squares, not lines (see the module docs).
    fn draw(&self, root: &DrawingArea<SVGBackend<'_>, Shift>, top: i32) -> Result<(), ChartError> {
        let style = TextStyle::from((FONT, 15).into_font())
            .color(&TEXT)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (x, row, label, color) in &self.entries {
            let y = top + (*row * LEGEND_ROW) as i32 + LEGEND_ROW as i32 / 2;
            root.draw(&Rectangle::new(
                [(*x, y - 5), (*x + 12, y + 5)],
                color.filled(),
            ))?;
            root.draw(&Text::new(label.clone(), (*x + 18, y), style.clone()))?;
        }
        Ok(())
    }
}

/// The frame every chart shares: a title, the plotting area over `x` and
/// `y` with a light grid at the ticks, the axes described, and the legend
/// under it all. `plot` draws the data. There are no axis lines or tick
/// marks: they would be polylines among the series (the tick size only
/// spaces the labels; the marks are transparent and never emitted).
struct Frame<'a> {
    title: &'a str,
    width: u32,
    /// The height above the legend.
    height: u32,
    x: Fixed,
    y: Fixed,
    x_desc: &'a str,
    y_desc: &'a str,
    x_fmt: &'a dyn Fn(&f64) -> String,
    y_fmt: &'a dyn Fn(&f64) -> String,
    y_label_w: u32,
    legend: Vec<(String, RGBColor)>,
}

impl Frame<'_> {
    fn render(
        self,
        plot: impl FnOnce(&mut Chart<'_, '_>) -> Result<(), ChartError>,
    ) -> Result<String, ChartError> {
        let legend = Legend::layout(&self.legend, self.width, MARGIN + self.y_label_w);
        let gap = if legend.rows > 0 { 6 } else { 0 };
        let height = self.height + legend.height() + gap;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (self.width, height)).into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(self.title, caption_style())
                .margin(MARGIN)
                .margin_right(MARGIN * 3)
                .margin_bottom(MARGIN + legend.height() + gap)
                .x_label_area_size(if self.x_desc.is_empty() { 30 } else { 50 })
                .y_label_area_size(self.y_label_w)
                .build_cartesian_2d(self.x, self.y)?;
            chart
                .configure_mesh()
                .bold_line_style(GRID.stroke_width(1))
                .light_line_style(TRANSPARENT)
                .axis_style(TRANSPARENT)
                .set_all_tick_mark_size(4)
                .x_desc(self.x_desc)
                .y_desc(self.y_desc)
                .x_label_formatter(self.x_fmt)
                .y_label_formatter(self.y_fmt)
                .label_style((FONT, 15).into_font().color(&MUTED))
                .axis_desc_style((FONT, 15).into_font().color(&TEXT))
                .draw()?;
            plot(&mut chart)?;
            let top = (self.height + gap) as i32 - MARGIN as i32;
            legend.draw(&root, top)?;
            root.present()?;
        }
        Ok(svg)
    }
}

fn legend_of(series: &[Series]) -> Vec<(String, RGBColor)> {
    series.iter().map(|s| (s.label.clone(), s.color)).collect()
}

fn draw_line(chart: &mut Chart<'_, '_>, s: &Series) -> Result<(), ChartError> {
    chart.draw_series(LineSeries::new(
        s.points.iter().copied(),
        s.color.stroke_width(2),
    ))?;
    Ok(())
}

/// The shaded spans, from the bottom of the plot to `y_top`.
fn draw_shades(
    chart: &mut Chart<'_, '_>,
    shades: &[Shade],
    x_end: f64,
    y_top: f64,
) -> Result<(), ChartError> {
    // A fault shorter than a pixel or so still shows as a sliver.
    let min_w = x_end / 400.0;
    for s in shades {
        let Some((from, to)) = clamp_span(s, x_end) else {
            continue;
        };
        let to = (from + min_w).max(to).min(x_end);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, 0.0), (to, y_top)],
            s.color.mix(0.13).filled(),
        )))?;
    }
    Ok(())
}

/// The shades' names at the top of the plot, over the series, staggered
/// so overlapping faults stay readable.
fn draw_shade_labels(
    chart: &mut Chart<'_, '_>,
    shades: &[Shade],
    x_end: f64,
    y_top: f64,
) -> Result<(), ChartError> {
    let area = chart.plotting_area();
    for (i, s) in shades.iter().enumerate() {
        let Some((from, to)) = clamp_span(s, x_end) else {
            continue;
        };
        // In the right part of the plot the label ends at the shade's end
        // and runs leftwards, so it stays on the chart.
        let (x, anchor, dx) = if from / x_end > 0.6 {
            (to, HPos::Right, -4)
        } else {
            (from, HPos::Left, 4)
        };
        let style = TextStyle::from((FONT, 15).into_font())
            .color(&s.color)
            .pos(Pos::new(anchor, VPos::Top));
        let dy = 4 + 17 * (i % 3) as i32;
        area.draw(
            &(EmptyElement::at((x, y_top)) + Text::new(shorten(&s.label, 56), (dx, dy), style)),
        )?;
    }
    Ok(())
}

fn clamp_span(s: &Shade, x_end: f64) -> Option<(f64, f64)> {
    if !s.from_s.is_finite() || s.from_s >= x_end {
        return None;
    }
    let from = s.from_s.max(0.0);
    let to = s.to_s.unwrap_or(x_end).clamp(from, x_end);
    Some((from, to))
}

/// Series over the run's clock, with the fault windows shaded. A note
/// when no series has a point.
pub(super) fn time_chart(c: &TimeChart) -> String {
    let points = c.series.iter().map(|s| s.points.len()).max().unwrap_or(0);
    if points == 0 {
        return note(&format!("{}: nothing was recorded.", c.meta.title));
    }
    drawn(&c.meta, "time", points, draw_time(c))
}

fn draw_time(c: &TimeChart) -> Result<String, ChartError> {
    let all = || c.series.iter().flat_map(|s| s.points.iter());
    let x_end = all().map(|p| p.0).fold(c.x_max_s, f64::max).max(1.0);
    let y = Fixed::nice(all().map(|p| p.1).fold(0.0, f64::max));
    let y_top = y.range.end;
    let x_fmt = |v: &f64| time_tick(*v, x_end);
    Frame {
        title: &c.meta.title,
        width: c.width,
        height: HEIGHT,
        x: time_axis(x_end),
        y,
        x_desc: time_desc(x_end),
        y_desc: &c.y_desc,
        x_fmt: &x_fmt,
        y_fmt: &|v| tick(*v),
        y_label_w: 66,
        legend: legend_of(&c.series),
    }
    .render(|chart| {
        draw_shades(chart, &c.shades, x_end, y_top)?;
        for s in &c.series {
            draw_line(chart, s)?;
        }
        draw_shade_labels(chart, &c.shades, x_end, y_top)
    })
}

/// Where a percentile (0–100) sits on the `log10(1 / (1 − q))` axis: 0 at
/// 0%, 1 at 90%, 2 at 99%... The 100% point (infinite) is put at `cap`.
fn decades(percentile: f64, cap: f64) -> f64 {
    let q = percentile / 100.0;
    if q >= 1.0 {
        return cap;
    }
    (1.0 / (1.0 - q.max(0.0))).log10().min(cap)
}

/// `0%`, `90%`, `99%`, `99.9%`... for a decade on the percentile axis.
fn decade_label(d: f64) -> String {
    match d.round() as usize {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        2 => "99%".to_string(),
        k => format!("99.{}%", "9".repeat(k - 2)),
    }
}

/// HDR percentile curves: `points` are `(percentile 0–100, ms)`. The x
/// axis runs at least to 99.99% and at most to 99.9999%; the 100% point
/// sits at its end.
pub(super) fn percentile_chart(meta: Meta, series: Vec<Series>, width: u32) -> String {
    let series: Vec<Series> = series
        .into_iter()
        .map(|s| Series {
            points: s
                .points
                .into_iter()
                .filter(|(p, v)| p.is_finite() && v.is_finite() && (0.0..=100.0).contains(p))
                .collect(),
            ..s
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let points = series.iter().map(|s| s.points.len()).max().unwrap_or(0);
    if points == 0 {
        return note(&format!("{}: no distribution was recorded.", meta.title));
    }
    drawn(
        &meta,
        "curve",
        points,
        draw_percentiles(&meta, &series, width),
    )
}

fn draw_percentiles(meta: &Meta, series: &[Series], width: u32) -> Result<String, ChartError> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let finite_max = all()
        .filter(|(p, _)| *p < 100.0)
        .map(|(p, _)| decades(*p, 6.0))
        .fold(0.0, f64::max);
    let cap = finite_max.ceil().clamp(4.0, 6.0);
    Frame {
        title: &meta.title,
        width,
        height: HEIGHT,
        x: Fixed::new(0.0..cap, (0..=cap as usize).map(|d| d as f64).collect()),
        y: Fixed::nice(all().map(|p| p.1).fold(0.0, f64::max)),
        x_desc: "percentile",
        y_desc: "latency (ms)",
        x_fmt: &|v| decade_label(*v),
        y_fmt: &|v| tick(*v),
        y_label_w: 66,
        legend: legend_of(series),
    }
    .render(|chart| {
        for s in series {
            let line = Series {
                label: s.label.clone(),
                color: s.color,
                points: s
                    .points
                    .iter()
                    .map(|(p, v)| (decades(*p, cap), *v))
                    .collect(),
            };
            draw_line(chart, &line)?;
        }
        Ok(())
    })
}

/// State timelines: a row per item, a coloured rectangle per span, fault
/// windows shaded across all rows and named in a strip above them.
pub(super) fn bands_chart(
    meta: Meta,
    x_max_s: f64,
    rows: &[BandRow],
    colors: &StateColors<'_>,
    shades: &[Shade],
    width: u32,
) -> String {
    let spans: usize = rows.iter().map(|r| r.spans.len()).sum();
    if spans == 0 {
        return note(&format!("{}: nothing was recorded.", meta.title));
    }
    drawn(
        &meta,
        "bands",
        spans,
        draw_bands(&meta, x_max_s, rows, colors, shades, width),
    )
}

fn draw_bands(
    meta: &Meta,
    x_max_s: f64,
    rows: &[BandRow],
    colors: &StateColors<'_>,
    shades: &[Shade],
    width: u32,
) -> Result<String, ChartError> {
    let n = rows.len() as f64;
    // Headroom above the rows for the faults' names.
    let strip = if shades.is_empty() { 0.0 } else { 0.9 };
    let y_top = n + strip;
    let x_end = rows
        .iter()
        .flat_map(|r| r.spans.iter())
        .map(|s| s.to_s)
        .fold(x_max_s, f64::max)
        .max(1.0);
    let labels: Vec<String> = rows.iter().map(|r| shorten(&r.label, 32)).collect();
    // Row i (from the top) spans [n-1-i, n-i]; its label sits at the middle.
    let y_fmt = |v: &f64| {
        let i = rows.len() as i64 - 1 - v.floor() as i64;
        usize::try_from(i)
            .ok()
            .and_then(|i| labels.get(i))
            .cloned()
            .unwrap_or_default()
    };
    let label_w = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32 * CHAR_W;
    let x_fmt = |v: &f64| time_tick(*v, x_end);

    // Every state the data has, the known ones first, in their order.
    let mut states: Vec<String> = colors.known.iter().map(|(s, _)| s.to_string()).collect();
    for s in rows.iter().flat_map(|r| r.spans.iter()) {
        if !states.contains(&s.state) {
            states.push(s.state.clone());
        }
    }
    Frame {
        title: &meta.title,
        width,
        height: 96 + 40 * rows.len() as u32 + if shades.is_empty() { 0 } else { 30 },
        x: time_axis(x_end),
        y: Fixed::new(
            0.0..y_top,
            (0..rows.len()).map(|i| i as f64 + 0.5).collect(),
        ),
        x_desc: time_desc(x_end),
        y_desc: "",
        x_fmt: &x_fmt,
        y_fmt: &y_fmt,
        y_label_w: (label_w + 16).clamp(66, 300),
        legend: states.iter().map(|s| (s.clone(), colors.of(s))).collect(),
    }
    .render(|chart| {
        let rects = rows.iter().enumerate().flat_map(|(i, r)| {
            let top = n - i as f64 - 0.15;
            let bottom = n - 1.0 - i as f64 + 0.15;
            r.spans.iter().map(move |s| {
                Rectangle::new(
                    [(s.from_s, bottom), (s.to_s, top)],
                    colors.of(&s.state).filled(),
                )
            })
        });
        chart.draw_series(rects)?;
        // Over the bands, translucent, so both stay visible.
        draw_shades(chart, shades, x_end, y_top)?;
        draw_shade_labels(chart, shades, x_end, y_top)
    })
}

/// Totals as bars, each labelled with its value. A note when every bar
/// is zero.
pub(super) fn bars_chart(meta: Meta, y_desc: &str, bars: &[Bar], width: u32) -> String {
    if bars.iter().all(|b| !(b.value.is_finite() && b.value > 0.0)) {
        return note(&format!("{}: nothing was recorded.", meta.title));
    }
    drawn(
        &meta,
        "bars",
        bars.len(),
        draw_bars(&meta, y_desc, bars, width),
    )
}

fn draw_bars(meta: &Meta, y_desc: &str, bars: &[Bar], width: u32) -> Result<String, ChartError> {
    let n = bars.len();
    let names: Vec<String> = bars.iter().map(|b| shorten(&b.label, 20)).collect();
    let x_fmt = |v: &f64| {
        usize::try_from(v.floor() as i64)
            .ok()
            .and_then(|i| names.get(i))
            .cloned()
            .unwrap_or_default()
    };
    let value = |b: &Bar| {
        if b.value.is_finite() {
            b.value.max(0.0)
        } else {
            0.0
        }
    };
    Frame {
        title: &meta.title,
        width,
        height: HEIGHT,
        x: Fixed::new(0.0..n as f64, (0..n).map(|i| i as f64 + 0.5).collect()),
        y: Fixed::nice(bars.iter().map(value).fold(0.0, f64::max)),
        x_desc: "",
        y_desc,
        x_fmt: &x_fmt,
        y_fmt: &|v| tick(*v),
        y_label_w: 66,
        legend: bars.iter().map(|b| (b.label.clone(), b.color)).collect(),
    }
    .render(|chart| {
        let label = TextStyle::from((FONT, 15).into_font())
            .color(&TEXT)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (i, b) in bars.iter().enumerate() {
            let (x0, x1, v) = (i as f64 + 0.2, i as f64 + 0.8, value(b));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, 0.0), (x1, v)],
                b.color.filled(),
            )))?;
            chart.plotting_area().draw(
                &(EmptyElement::at((i as f64 + 0.5, v))
                    + Text::new(tick(v), (0, -4), label.clone())),
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_scales_cover_the_data() {
        for max in [0.0, 0.3, 1.0, 7.0, 99.0, 101.0, 12_345.0] {
            let (top, step) = nice_scale(max);
            assert!(top >= max && top > 0.0, "{max}: {top}");
            assert!(top / step <= 12.0, "{max}: {top}/{step}");
        }
    }

    #[test]
    fn percentiles_sit_on_decades() {
        assert_eq!(decades(0.0, 5.0), 0.0);
        assert!((decades(90.0, 5.0) - 1.0).abs() < 1e-9);
        assert!((decades(99.9, 5.0) - 3.0).abs() < 1e-9);
        assert_eq!(decades(100.0, 5.0), 5.0);
        assert_eq!(decade_label(0.0), "0%");
        assert_eq!(decade_label(1.0), "90%");
        assert_eq!(decade_label(2.0), "99%");
        assert_eq!(decade_label(4.0), "99.99%");
    }

    #[test]
    fn time_axes_have_round_ticks() {
        let a = time_axis(600.0);
        assert_eq!(a.ticks.first(), Some(&0.0));
        assert!(a.ticks.len() <= 13);
        assert!(a.ticks.iter().all(|t| t % 60.0 == 0.0), "{:?}", a.ticks);
        assert_eq!(time_tick(90.0, 600.0), "1:30");
    }
}
