//! The HTML report read back: every chart is found by its `<figure>`, its
//! SVG parsed as XML, and its series, shades and labels checked against
//! the synthetic report it was drawn from.

use std::collections::{BTreeMap, HashMap};

use quick_xml::events::Event;
use quick_xml::Reader;

use super::sections::{bin_counter, bin_gauge};
use super::*;
use crate::compare::{Comparison, Row, RunInfo, Verdict};
use crate::gates::GateResult;
use crate::invariants::{InvariantResult, Offender};
use crate::metrics::{Counts, Latency, SagaOutcomes};
use crate::report::{
    BreakerTransition, DlqCount, EndpointReport, EndpointWindow, FaultEvent, FaultPhase,
    FlowReport, LagSample, OutboxSample, PercentilePoint, RetrySample, Window,
};
use crate::state::TopicEvents;

const SYNC_FAULT: &str = "link orders->payments down";
const ASYNC_FAULT: &str = "consumer group payments paused";
const ENDPOINTS: [&str; 4] = [
    "POST /api/orders",
    "GET /api/orders/{id}",
    "GET /api/products",
    "GET /api/orders/{id}/status",
];

fn latency(p50: f64) -> Latency {
    Latency {
        count: 100,
        min: p50 / 3.0,
        avg: p50 * 1.2,
        p50,
        p90: p50 * 2.0,
        p95: p50 * 2.5,
        p99: p50 * 4.0,
        p999: p50 * 6.0,
        max: p50 * 9.0,
    }
}

/// A percentile curve as HdrHistogram's `iter_quantiles` gives it:
/// halving steps towards the tail, ending at 100%.
fn curve(base: f64) -> Vec<PercentilePoint> {
    let mut points: Vec<PercentilePoint> = (0..40)
        .map(|i| {
            let q = 1.0 - 0.5f64.powf(i as f64 / 2.0);
            PercentilePoint {
                percentile: q * 100.0,
                ms: base * (1.0 + 12.0 * q.powi(16)),
            }
        })
        .collect();
    points.push(PercentilePoint {
        percentile: 100.0,
        ms: base * 20.0,
    });
    points
}

/// Fault step 0 of `flow`, applied at `from_s` and undone at `to_s`.
fn fault(flow: &str, action: &str, from_s: u64, to_s: u64) -> Vec<FaultEvent> {
    [(FaultPhase::Applied, from_s), (FaultPhase::Undone, to_s)]
        .into_iter()
        .map(|(phase, s)| FaultEvent {
            flow: Some(flow.into()),
            step: 0,
            phase: Some(phase),
            at_ms: s * 1000,
            unix_ms: 1_700_000_000_000 + s as i64 * 1000,
            action: action.into(),
            ..FaultEvent::default()
        })
        .collect()
}

/// One flow with `n` one-second windows; a fault from 20% to 40% of the
/// run halves throughput and brings errors.
fn flow(n: usize, asyn: bool) -> FlowReport {
    // The fault windows of `report`: 20–40% (sync), 30–50% (async).
    let (f0, f1) = if asyn {
        (3 * n as u64 / 10, n as u64 / 2)
    } else {
        (n as u64 / 5, 2 * n as u64 / 5)
    };
    let windows: Vec<Window> = (0..n as u64)
        .map(|i| {
            let faulty = (f0..f1).contains(&i);
            let ok = match (faulty, asyn) {
                (true, _) => 50,
                (false, false) => 100,
                (false, true) => 140,
            };
            let failed = if faulty { 20 } else { 0 };
            let mut errors = BTreeMap::new();
            if faulty {
                errors.insert("503".to_string(), 15);
                errors.insert("unknown (no answer)".to_string(), 5);
            }
            let requests = Counts {
                total: ok + failed,
                ok,
                failed,
                unknown: 0,
                ..Counts::default()
            };
            let p50 = if faulty { 40.0 } else { 8.0 }
                + if asyn { 4.0 } else { 0.0 }
                + ((i as f64) / 3.0).sin() * 2.0;
            Window {
                start_ms: i * 1000,
                end_ms: (i + 1) * 1000,
                requests,
                throughput: ok as f64,
                latency: latency(p50),
                errors,
                endpoints: ENDPOINTS
                    .iter()
                    .map(|e| {
                        (
                            e.to_string(),
                            EndpointWindow {
                                requests,
                                latency: latency(p50),
                            },
                        )
                    })
                    .collect(),
                saga: SagaOutcomes {
                    completed: ok / 2,
                    compensated: failed / 2,
                    failed: failed / 4,
                },
                settle: latency(p50 * 3.0),
            }
        })
        .collect();
    let total = Counts {
        total: windows.iter().map(|w| w.requests.total).sum(),
        ok: windows.iter().map(|w| w.requests.ok).sum(),
        failed: windows.iter().map(|w| w.requests.failed).sum(),
        unknown: 0,
        ..Counts::default()
    };
    let links = ["orders->payments", "orders->inventory"];
    FlowReport {
        throughput: 90.0,
        requests: total,
        latency: latency(9.0),
        endpoints: ENDPOINTS
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    e.to_string(),
                    EndpointReport {
                        requests: total,
                        latency: latency(5.0 + i as f64),
                        distribution: curve(5.0 + 3.0 * i as f64),
                    },
                )
            })
            .collect(),
        settle: latency(30.0),
        settle_distribution: curve(30.0),
        saga: None,
        windows,
        // Every two seconds, per link.
        retries: (1..=n as u64 / 2)
            .flat_map(|i| {
                links.iter().map(move |l| RetrySample {
                    at_ms: i * 2000,
                    link: l.to_string(),
                    retries: if (f0..f1).contains(&(i * 2)) { 12 } else { 1 },
                })
            })
            .collect(),
        outbox: if asyn {
            (0..n as u64 / 3)
                .flat_map(|i| {
                    ["orders", "payments"]
                        .into_iter()
                        .map(move |s| OutboxSample {
                            at_ms: i * 3000 + 500,
                            service: s.into(),
                            backlog: if (f0..f1).contains(&(i * 3)) { 400 } else { 3 },
                        })
                })
                .collect()
        } else {
            Vec::new()
        },
        events: if asyn {
            vec![TopicEvents {
                topic: "orders.placed".into(),
                group: Some("payments".into()),
                produced: 1000,
                consumed: 990,
                dead_lettered: 10,
            }]
        } else {
            Vec::new()
        },
    }
}

/// Both flows, `n` windows each, with a fault, breaker transitions, lag,
/// outbox, retries and errors.
fn report(n: usize) -> Report {
    let s = |x: usize| (x * n / 10) as u64;
    let mut faults = fault("sync", SYNC_FAULT, s(2), s(4));
    faults.extend(fault("async", ASYNC_FAULT, s(3), s(5)));
    let transition = |from: &str, to: &str, at_s: u64| BreakerTransition {
        flow: Some("sync".into()),
        link: "orders->payments".into(),
        from: from.into(),
        to: to.into(),
        at_ms: at_s * 1000,
    };
    Report {
        scenario: "breaker-opens".into(),
        description:
            "The payments link goes down; the breaker must open. <script>alert(1)</script>".into(),
        scenario_file: "scenarios/breaker.toml".into(),
        scenario_source:
            "name = \"breaker-opens\"\n# </pre><script>x</script>\ngates = [\"p99 < 300ms\"]\n"
                .into(),
        seed: 42,
        started_unix_ms: 1_709_210_096_789,
        duration_ms: n as u64 * 1000,
        machine: crate::machine::Machine {
            cores: 8,
            memory_bytes: Some(16 << 30),
            os: "linux".into(),
            arch: "x86_64".into(),
            rustc: Some("rustc 1.85.0".into()),
            cargo: None,
        },
        flows: [
            ("sync".to_string(), flow(n, false)),
            ("async".to_string(), flow(n, true)),
        ]
        .into_iter()
        .collect(),
        breakers: vec![
            transition("CLOSED", "OPEN", s(2) + 1),
            transition("OPEN", "HALF_OPEN", s(3)),
            transition("HALF_OPEN", "CLOSED", s(4) + 1),
        ],
        dlq: vec![DlqCount {
            topic: "orders.placed".into(),
            produced: 3000,
            dead_lettered: 10,
            rate: 10.0 / 3000.0,
        }],
        lag: (0..n as u64)
            .step_by(2)
            .map(|i| LagSample {
                flow: Some("async".into()),
                at_ms: i * 1000 + 200,
                group: "payments".into(),
                lag: if i >= s(3) && i < s(5) { 900 } else { 4 },
            })
            .collect(),
        faults,
        invariants: vec![
            InvariantResult {
                name: "no_lost_orders".into(),
                passed: true,
                checked: 5000,
                violations: 0,
                first_offending: vec![],
                detail: "every acknowledged order exists".into(),
                skipped: false,
                traces: vec![],
            },
            InvariantResult {
                name: "stock_conserved".into(),
                passed: false,
                checked: 20,
                violations: 2,
                first_offending: vec![Offender::Id(7), Offender::Key("sku-<9>".into())],
                detail: "2 products drifted".into(),
                skipped: false,
                traces: vec![],
            },
        ],
        gates: vec![
            GateResult {
                gate: "p99(POST /api/orders) < 300ms".into(),
                actual: Some(212.0),
                threshold: 300.0,
                passed: true,
                detail: "212 ms < 300 ms".into(),
            },
            GateResult {
                gate: "error_rate < 1%".into(),
                actual: Some(0.04),
                threshold: 0.01,
                passed: false,
                detail: "4% ≥ 1%".into(),
            },
        ],
        ..Report::default()
    }
}

/// A `<figure class="chart">` as found in the page.
struct Figure {
    attrs: HashMap<String, String>,
    body: String,
}

impl Figure {
    fn attr(&self, name: &str) -> &str {
        self.attrs.get(name).map_or("", String::as_str)
    }
    fn id(&self) -> &str {
        self.attr("data-chart")
    }
}

fn figures(html: &str) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<figure class=\"chart\"") {
        let tail = &rest[start..];
        let open_end = tail.find('>').expect("an open tag ends");
        let end = tail.find("</figure>").expect("a figure ends");
        let attrs = parse_attrs(&tail[..open_end]);
        out.push(Figure {
            attrs,
            body: tail[open_end + 1..end].to_string(),
        });
        rest = &tail[end..];
    }
    out
}

/// `name="value"` pairs of one HTML open tag, as the page checker reads them.
fn parse_attrs(tag: &str) -> HashMap<String, String> {
    inspect::attributes(tag).into_iter().collect()
}

/// The SVG of a figure, read as XML: its elements with their attributes,
/// and its text.
struct Svg {
    polylines: Vec<Vec<(i32, i32)>>,
    rects: Vec<HashMap<String, String>>,
    texts: Vec<String>,
}

impl Svg {
    /// Filled, opaque, not white: data rectangles and legend swatches.
    fn solid_rects(&self) -> usize {
        self.rects
            .iter()
            .filter(|r| {
                r.get("opacity").map(String::as_str) == Some("1")
                    && r.get("fill").is_some_and(|f| f != "none" && f != "#FFFFFF")
            })
            .count()
    }
    /// Translucent filled rectangles of the fault colour, wider than 0.
    fn shades(&self, color: &str) -> usize {
        self.rects
            .iter()
            .filter(|r| {
                r.get("fill").map(String::as_str) == Some(color)
                    && r.get("opacity")
                        .and_then(|o| o.parse::<f64>().ok())
                        .is_some_and(|o| o < 1.0)
                    && r.get("width")
                        .and_then(|w| w.parse::<i32>().ok())
                        .is_some_and(|w| w > 0)
            })
            .count()
    }
    fn has_text(&self, text: &str) -> bool {
        self.texts.iter().any(|t| t.contains(text))
    }
}

fn parse_svg(body: &str) -> Svg {
    let mut reader = Reader::from_str(body);
    let mut svg = Svg {
        polylines: Vec::new(),
        rects: Vec::new(),
        texts: Vec::new(),
    };
    let mut in_text = false;
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("bad SVG: {e}\n{body}"));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_string();
                let attrs: HashMap<String, String> = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("a well-formed attribute");
                        (
                            String::from_utf8_lossy(a.key.as_ref()).to_string(),
                            a.decode_and_unescape_value(reader.decoder())
                                .expect("an attribute value")
                                .to_string(),
                        )
                    })
                    .collect();
                match name.as_str() {
                    "polyline" => {
                        let points = attrs
                            .get("points")
                            .map(|p| {
                                p.split_whitespace()
                                    .map(|xy| {
                                        let (x, y) = xy.split_once(',').expect("x,y");
                                        (x.parse().expect("x"), y.parse().expect("y"))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        svg.polylines.push(points);
                    }
                    "rect" => svg.rects.push(attrs),
                    "text" => {
                        in_text = true;
                        svg.texts.push(String::new());
                    }
                    _ => {}
                }
            }
            Event::Text(t) if in_text => {
                if let Some(last) = svg.texts.last_mut() {
                    last.push_str(&t.decode().expect("text"));
                }
            }
            Event::GeneralRef(r) if in_text => {
                let entity = String::from_utf8_lossy(r.as_ref()).to_string();
                let c = match entity.as_str() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "?",
                };
                if let Some(last) = svg.texts.last_mut() {
                    last.push_str(c);
                }
            }
            Event::End(e) if e.name().as_ref() == b"text" => in_text = false,
            Event::Eof => break,
            _ => {}
        }
    }
    svg
}

const FAULT_FILL: &str = "#7B4FC4";

#[test]
fn every_chart_is_found_and_has_data() {
    let html = render_report(&report(60));
    let figs = figures(&html);
    let ids: Vec<&str> = figs.iter().map(Figure::id).collect();
    for id in [
        "throughput-sync",
        "latency-sync",
        "errors-sync",
        "distribution-sync",
        "throughput-async",
        "latency-async",
        "errors-async",
        "distribution-async",
        "throughput-sync-async",
        "p99-sync-async",
        "breakers-sync",
        "retries-sync",
        "retries-async",
        "saga-totals-sync",
        "saga-sync",
        "settle-sync",
        "settle-async",
        "lag-async",
        "outbox-async",
    ] {
        assert!(ids.contains(&id), "no chart {id}; charts: {ids:?}");
    }
    assert!(
        !ids.contains(&"outbox-sync") && !ids.contains(&"lag-sync"),
        "{ids:?}"
    );
    for f in &figs {
        let svg = parse_svg(&f.body);
        let points: usize = f.attr("data-points").parse().expect("data-points");
        assert!(points > 0, "{}: data-points {points}", f.id());
        match f.attr("data-kind") {
            "time" | "curve" => {
                assert!(!svg.polylines.is_empty(), "{}: no series", f.id());
                for p in &svg.polylines {
                    assert!(!p.is_empty(), "{}: an empty series", f.id());
                }
            }
            // A rectangle per span or bar, and a legend swatch per colour.
            "bands" | "bars" => {
                assert!(
                    svg.solid_rects() > points,
                    "{}: {} rects",
                    f.id(),
                    svg.solid_rects()
                );
            }
            other => panic!("{}: unknown kind {other:?}", f.id()),
        }
        assert!(
            svg.texts.iter().any(|t| t.contains(f.attr("aria-label"))),
            "{}: no title",
            f.id()
        );
    }
}

#[test]
fn over_time_series_have_a_point_per_window() {
    let n = 45;
    let html = render_report(&report(n));
    let mut checked = 0;
    for f in figures(&html)
        .iter()
        .filter(|f| f.attr("data-kind") == "time")
    {
        let svg = parse_svg(&f.body);
        assert_eq!(f.attr("data-points"), n.to_string(), "{}", f.id());
        for p in &svg.polylines {
            assert_eq!(p.len(), n, "{}: a series of {} points", f.id(), p.len());
        }
        checked += svg.polylines.len();
    }
    // throughput 2 + latency 3 + errors 2 + retries 2 + saga 3, per flow,
    // + lag 1 + outbox 2 + two overlays of 2.
    assert_eq!(checked, 2 * 12 + 3 + 4);
}

#[test]
fn faults_are_shaded_and_named_on_their_own_flow_only() {
    let html = render_report(&report(60));
    let mut seen = 0;
    for f in figures(&html) {
        let kind = f.attr("data-kind");
        if kind != "time" && kind != "bands" {
            continue;
        }
        let svg = parse_svg(&f.body);
        match f.attr("data-flow") {
            "sync" => {
                assert!(svg.shades(FAULT_FILL) >= 1, "{}: no shade", f.id());
                assert!(svg.has_text(SYNC_FAULT), "{}: {:?}", f.id(), svg.texts);
                assert!(
                    !svg.has_text(ASYNC_FAULT),
                    "{}: the other flow's fault",
                    f.id()
                );
                seen += 1;
            }
            "async" => {
                assert!(svg.shades(FAULT_FILL) >= 1, "{}: no shade", f.id());
                assert!(svg.has_text(ASYNC_FAULT), "{}: {:?}", f.id(), svg.texts);
                assert!(
                    !svg.has_text(SYNC_FAULT),
                    "{}: the other flow's fault",
                    f.id()
                );
                seen += 1;
            }
            "sync async" => {
                assert!(svg.has_text(&format!("sync: {SYNC_FAULT}")), "{}", f.id());
                assert!(svg.has_text(&format!("async: {ASYNC_FAULT}")), "{}", f.id());
                assert!(
                    svg.rects
                        .iter()
                        .filter(|r| r.get("opacity").is_some_and(|o| o != "1"))
                        .count()
                        >= 2
                );
                seen += 1;
            }
            other => panic!("{}: unexpected flows {other:?}", f.id()),
        }
    }
    assert!(seen >= 14, "{seen} over-time charts");
}

#[test]
fn the_shade_covers_the_faults_span() {
    // 100 windows, the sync fault from 20 s to 40 s: on the throughput
    // chart the shade spans a fifth of the plotting width.
    let html = render_report(&report(100));
    let fig = figures(&html)
        .into_iter()
        .find(|f| f.id() == "throughput-sync")
        .expect("the chart");
    let svg = parse_svg(&fig.body);
    let line = &svg.polylines[0];
    let (x0, x1) = (line[0].0 as f64, line[line.len() - 1].0 as f64);
    let per_s = (x1 - x0) / 99.0; // first and last points sit at 0.5 s and 99.5 s
    let shade = svg
        .rects
        .iter()
        .find(|r| r.get("fill").map(String::as_str) == Some(FAULT_FILL))
        .expect("a shade");
    let x: f64 = shade["x"].parse().expect("x");
    let w: f64 = shade["width"].parse().expect("width");
    let start = x0 - 0.5 * per_s + 20.0 * per_s;
    assert!((x - start).abs() <= 2.0, "shade at {x}, fault at {start}");
    assert!(
        (w - 20.0 * per_s).abs() <= 2.0,
        "shade {w} wide, fault {}",
        20.0 * per_s
    );
}

#[test]
fn breaker_bands_follow_the_transitions() {
    let html = render_report(&report(50));
    let fig = figures(&html)
        .into_iter()
        .find(|f| f.id() == "breakers-sync")
        .expect("the chart");
    // CLOSED, OPEN, HALF_OPEN, CLOSED again.
    assert_eq!(fig.attr("data-points"), "4");
    let svg = parse_svg(&fig.body);
    let colored = |c: &str| {
        svg.rects
            .iter()
            .filter(|r| r.get("fill").map(String::as_str) == Some(c) && r["opacity"] == "1")
            .count()
    };
    // Spans plus one legend swatch each.
    assert_eq!(colored("#59A14F"), 2 + 1, "CLOSED");
    assert_eq!(colored("#E15759"), 1 + 1, "OPEN");
    assert_eq!(colored("#EDB12F"), 1 + 1, "HALF_OPEN");
    assert!(svg.has_text("orders->payments"));
    // No breaker changed state in the async run: a note, no empty chart.
    assert!(!html.contains("data-chart=\"breakers-async\""));
    assert!(html.contains("No circuit breaker changed state in the async flow"));
}

#[test]
fn text_is_escaped() {
    let mut r = report(10);
    r.scenario = "<b>bold</b>".into();
    if let Some(f) = r.flows.get_mut("sync") {
        let e = f.endpoints.values().next().cloned().unwrap_or_default();
        f.endpoints
            .insert("GET /<img src=x onerror=alert(1)>".into(), e);
    }
    let html = render_report(&r);
    assert!(!html.contains("<script>"), "a raw script tag");
    assert!(!html.contains("<img"), "a raw img tag");
    assert!(!html.contains("<b>bold"), "raw markup from the name");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("# &lt;/pre&gt;&lt;script&gt;x&lt;/script&gt;"));
    assert!(html.contains("sku-&lt;9&gt;"));
    // The SVGs stay well-formed with markup in their labels.
    for f in figures(&html) {
        parse_svg(&f.body);
    }
}

#[test]
fn the_verdict_and_what_failed_come_first() {
    let html = render_report(&report(10));
    let verdict = html.find("class=\"verdict fail\">FAILED").expect("FAILED");
    let gate = html
        .find("Gate <code>error_rate &lt; 1%</code>")
        .expect("the failed gate");
    let invariant = html
        .find("Invariant <code>stock_conserved</code>")
        .expect("the failed invariant");
    let first_flow = html.find("id=\"flow-sync\"").expect("the sync section");
    assert!(verdict < gate && gate < first_flow && invariant < first_flow);
    assert!(html.contains("2024-02-29 12:34:56 UTC"));
    assert!(html.contains("rustc 1.85.0"));
    // Sections in order.
    let order = [
        "summary",
        "flow-sync",
        "flow-async",
        "sync-vs-async",
        "resilience",
        "events",
        "checks",
        "scenario",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|id| {
            html.find(&format!("<section id=\"{id}\""))
                .unwrap_or_else(|| panic!("{id}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");

    let mut passing = report(10);
    passing.gates.retain(|g| g.passed);
    passing.invariants.retain(|i| i.passed);
    let html = render_report(&passing);
    assert!(html.contains("class=\"verdict pass\">PASSED"));
    assert!(!html.contains("class=\"failures\""));
}

#[test]
fn requests_refused_at_the_edge_are_shown_apart_only_when_there_are_some() {
    let r = report(20);
    let html = render_report(&r);
    assert!(!html.contains("rejected 401 / 429"));
    assert!(!html.contains(">429</th>"));

    let mut r = report(20);
    let sync = r.flows.get_mut("sync").expect("a sync flow");
    for w in &mut sync.windows {
        w.requests.rate_limited = 4;
        w.requests.total += 4;
    }
    sync.requests.unauthorized = 3;
    sync.requests.rate_limited = 80;
    sync.requests.total += 83;
    for e in sync.endpoints.values_mut() {
        e.requests = sync.requests;
    }
    let html = render_report(&r);
    assert!(html.contains("rejected 401 / 429"), "the tile");
    assert!(html.contains(">3 / 80<"), "its figures");
    assert!(
        html.contains("<th class=\"n\">401</th><th class=\"n\">429</th>"),
        "the endpoint columns"
    );
    let rejected = figures(&html)
        .into_iter()
        .find(|f| f.id() == "throughput-sync")
        .map(|f| f.body.contains("rejected/s (401, 429)"));
    assert_eq!(rejected, Some(true), "a series of its own");
}

#[test]
fn empty_and_partial_reports_render() {
    let html = render_report(&Report::default());
    assert!(html.contains("No flow ran"));
    assert!(figures(&html).is_empty());

    let mut r = Report {
        partial: true,
        ..report(30)
    };
    // A flow cut short before its first window, and another whose figures
    // are nonsense.
    if let Some(f) = r.flows.get_mut("sync") {
        f.windows.clear();
        f.endpoints.clear();
        f.settle_distribution.clear();
    }
    if let Some(f) = r.flows.get_mut("async") {
        for w in &mut f.windows {
            w.end_ms = w.start_ms;
            w.latency.p99 = f64::NAN;
            w.throughput = f64::INFINITY;
        }
        f.endpoints.values_mut().for_each(|e| {
            e.distribution.push(PercentilePoint {
                percentile: f64::NAN,
                ms: 1.0,
            })
        });
    }
    r.flows.insert("other".into(), FlowReport::default());
    let html = render_report(&r);
    assert!(html.contains("class=\"verdict partial\">PARTIAL"));
    assert!(html.contains("No time windows were recorded for the sync flow"));
    assert!(!html.contains("data-chart=\"throughput-sync\""));
    for f in figures(&html) {
        let svg = parse_svg(&f.body);
        assert!(
            !svg.polylines.is_empty() || svg.solid_rects() > 0,
            "{}: drawn without data",
            f.id()
        );
    }
}

#[test]
fn the_page_passes_its_own_check_and_a_broken_one_does_not() {
    let r = report(30);
    let html = render_report(&r);
    let summary = inspect::check(&r, &html).expect("the page checks out");
    assert!(
        summary.charts >= 10 && summary.fault_shades >= 2,
        "{summary:?}"
    );
    // A series that lost a point, and a page without shading, are caught.
    let mut short = r.clone();
    if let Some(f) = short.flows.get_mut("sync") {
        f.windows.push(f.windows[0].clone());
    }
    let problems = inspect::check(&short, &html).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("points")),
        "{problems:?}"
    );
    let unshaded = html.replace("opacity=\"0.13\"", "opacity=\"1\"");
    let problems = inspect::check(&r, &unshaded).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("does not shade")),
        "{problems:?}"
    );
}

#[test]
fn a_ten_minute_run_is_under_five_megabytes() {
    let r = report(600);
    let html = render_report(&r);
    assert!(html.len() < 5 << 20, "{} bytes", html.len());
    // Worth a look in a browser: set the variable to a directory.
    if let Some(dir) = std::env::var_os("GAUNTLET_HTML_SAMPLE_DIR") {
        write_html(&dir, &r).expect("written");
        let mut base = report(500);
        base.scenario = r.scenario.clone();
        write_compare_html(&dir, &comparison(), &base, &r).expect("written");
    }
}

fn comparison() -> Comparison {
    let row = |metric: &str, base: f64, new: f64, verdict| Row {
        flow: Some("sync".into()),
        target: "POST /api/orders".into(),
        metric: metric.into(),
        base,
        new,
        verdict,
        ..Row::default()
    };
    Comparison {
        base: RunInfo {
            scenario: "breaker-opens".into(),
            source: "runs/base".into(),
            started_unix_ms: 1_700_000_000_000,
            passed: true,
        },
        new: RunInfo {
            scenario: "breaker-opens".into(),
            source: "runs/new".into(),
            started_unix_ms: 1_700_100_000_000,
            passed: false,
        },
        rows: vec![
            row("p50", 10.0, 10.1, Verdict::Unchanged),
            row("throughput", 100.0, 120.0, Verdict::Improved),
            row("p99", 40.0, 55.0, Verdict::Regressed),
        ],
        regressed: true,
        ..Comparison::default()
    }
}

#[test]
fn the_comparison_puts_regressions_first_and_overlays_both_runs() {
    let base = report(30);
    let new = report(40);
    let html = render_compare(&comparison(), &base, &new);
    assert!(html.contains("class=\"verdict fail\">REGRESSED"));
    let p99 = html.find("<code>p99</code>").expect("p99 row");
    let thr = html
        .find("<code>throughput</code>")
        .expect("throughput row");
    let p50 = html.find("<code>p50</code>").expect("p50 row");
    assert!(p99 < thr && thr < p50, "regressed, improved, unchanged");
    assert!(html.contains("+37.5%"));
    assert!(html.contains("badge regressed"));

    for id in [
        "throughput-sync",
        "p99-sync",
        "throughput-async",
        "p99-async",
    ] {
        let fig = figures(&html)
            .into_iter()
            .find(|f| f.id() == id)
            .unwrap_or_else(|| panic!("no {id}"));
        let svg = parse_svg(&fig.body);
        let lens: Vec<usize> = svg.polylines.iter().map(Vec::len).collect();
        assert_eq!(lens, [30, 40], "{id}: base then new, a point per window");
        let flow_fault = if id.ends_with("-sync") {
            SYNC_FAULT
        } else {
            ASYNC_FAULT
        };
        assert!(
            svg.has_text(&format!("base: {flow_fault}")),
            "{id}: {:?}",
            svg.texts
        );
        assert!(svg.has_text(&format!("new: {flow_fault}")), "{id}");
    }

    // The same table closes a report that had a baseline.
    let mut r = report(10);
    assert!(!render_report(&r).contains("id=\"baseline\""));
    r.baseline = Some(comparison());
    let html = render_report(&r);
    let section = html.find("id=\"baseline\"").expect("the baseline section");
    assert!(html[section..].contains("<code>p99</code>"));
}

#[test]
fn pages_are_written_into_the_run_directory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let run = dir.path().join("run");
    let r = report(5);
    let path = write_html(&run, &r).expect("written");
    assert_eq!(path, run.join(REPORT_HTML));
    let text = std::fs::read_to_string(&path).expect("readable");
    assert!(text.starts_with("<!DOCTYPE html>"));
    let path = write_compare_html(&run, &comparison(), &r, &r).expect("written");
    assert_eq!(path, run.join(COMPARE_HTML));
    // Nothing but the pages: no temporary file left behind.
    let mut names: Vec<String> = std::fs::read_dir(&run)
        .expect("listable")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, [COMPARE_HTML, REPORT_HTML]);
}

#[test]
fn the_page_needs_no_network() {
    let html = render_report(&report(20));
    for needle in ["<script", "<link", "@import", "url(", "src=\""] {
        assert!(!html.contains(needle), "found {needle}");
    }
    // The only URL is the SVG namespace, which is a name, not a fetch.
    let urls = html.matches("http").count();
    assert_eq!(urls, html.matches("http://www.w3.org/2000/svg").count());
}

fn windows(n: u64) -> Vec<Window> {
    (0..n)
        .map(|i| Window {
            start_ms: i * 1000,
            end_ms: (i + 1) * 1000,
            ..Window::default()
        })
        .collect()
}

#[test]
fn samples_are_put_into_the_windows_that_hold_them() {
    let w = windows(4);
    // Counts since the previous sample, spread over the interval: 4
    // retries in the two seconds to 3000 are 2/s in each; a second sample
    // at the same instant goes into the window that holds it.
    let c = bin_counter(
        &w,
        [(1000, 3.0), (3000, 4.0), (3000, 2.0), (4000, 1.0)].into_iter(),
    );
    assert_eq!(
        c.iter().map(|p| p.1).collect::<Vec<_>>(),
        [3.0, 2.0, 4.0, 1.0]
    );
    assert_eq!(c[0].0, 0.5);
    // Beyond the last window is off the chart.
    let c = bin_counter(&w, [(3000, 3.0), (9000, 6.0)].into_iter());
    assert_eq!(
        c.iter().map(|p| p.1).collect::<Vec<_>>(),
        [1.0, 1.0, 1.0, 1.0]
    );
    // Levels: the peak in each window, the last carried through gaps.
    let g = bin_gauge(
        &w,
        [(100, 4.0), (600, 9.0), (700, 2.0), (3100, 1.0)].into_iter(),
    );
    assert_eq!(
        g.iter().map(|p| p.1).collect::<Vec<_>>(),
        [9.0, 2.0, 2.0, 1.0]
    );
}
