//! report.json round-trips; junit.xml is well-formed XML whose test cases
//! say exactly what the report says, however odd the strings in it.

use std::collections::BTreeMap;

use gauntlet_reports::gates::parse;
use gauntlet_reports::metrics::{Counts, Latency, SagaOutcomes};
use gauntlet_reports::report::{
    BreakerTransition, DlqCount, EndpointReport, ErrorCount, FaultEvent, FaultPhase, FlowReport,
    LagSample, Window,
};
use gauntlet_reports::{
    evaluate, junit_xml, read_json, write_json, write_junit, GateResult, InvariantResult, Machine,
    Metrics, Offender, Report,
};
use quick_xml::events::Event;
use quick_xml::Reader;

fn latency(p99: f64) -> Latency {
    Latency {
        count: 100,
        min: 1.0,
        avg: 10.0,
        p50: 8.0,
        p90: 20.0,
        p95: 30.0,
        p99,
        p999: p99 * 2.0,
        max: p99 * 3.0,
    }
}

fn report() -> Report {
    let counts = Counts {
        total: 100,
        ok: 97,
        failed: 2,
        unknown: 1,
        ..Counts::default()
    };
    let mut metrics = Metrics::default();
    metrics
        .latency
        .insert("POST /api/orders".into(), latency(212.5));
    metrics.requests.insert("all".into(), counts);
    let gates = evaluate(
        &[
            parse("p99(POST /api/orders) < 300ms").unwrap(),
            parse("error_rate < 1%").unwrap(),
        ],
        &metrics,
    );
    let flow = FlowReport {
        throughput: 48.5,
        requests: counts,
        latency: latency(212.5),
        endpoints: BTreeMap::from([(
            "POST /api/orders".to_string(),
            EndpointReport {
                requests: counts,
                latency: latency(212.5),
                ..EndpointReport::default()
            },
        )]),
        settle: latency(212.0),
        windows: vec![
            Window {
                start_ms: 0,
                end_ms: 1000,
                requests: counts,
                throughput: 50.0,
                latency: latency(200.0),
                ..Window::default()
            },
            Window {
                start_ms: 1000,
                end_ms: 2000,
                requests: counts,
                throughput: 47.0,
                latency: latency(225.0),
                ..Window::default()
            },
        ],
        ..FlowReport::default()
    };
    Report {
        scenario: "breaker-opens".into(),
        description: "orders -> payments down".into(),
        seed: 42,
        started_unix_ms: 1_700_000_000_000,
        duration_ms: 2000,
        machine: Machine::detect(),
        flows: BTreeMap::from([("sync".to_string(), flow)]),
        errors: vec![ErrorCount {
            flow: Some("sync".into()),
            endpoint: "POST /api/orders".into(),
            error: "503".into(),
            count: 2,
        }],
        breakers: vec![BreakerTransition {
            flow: Some("sync".into()),
            link: "orders->payments".into(),
            from: "CLOSED".into(),
            to: "OPEN".into(),
            at_ms: 1200,
        }],
        saga: Some(SagaOutcomes {
            completed: 90,
            compensated: 7,
            failed: 0,
        }),
        dlq: vec![DlqCount {
            topic: "orders".into(),
            produced: 100,
            dead_lettered: 1,
            rate: 0.01,
        }],
        lag: vec![LagSample {
            flow: Some("sync".into()),
            at_ms: 500,
            group: "payments".into(),
            lag: 12,
        }],
        faults: vec![FaultEvent {
            flow: Some("sync".into()),
            step: 0,
            phase: Some(FaultPhase::Applied),
            at_ms: 1000,
            unix_ms: 1_700_000_001_000,
            action: "orders->payments down".into(),
            ..FaultEvent::default()
        }],
        invariants: vec![
            InvariantResult {
                name: "no_double_charge".into(),
                passed: false,
                checked: 90,
                violations: 1,
                first_offending: vec![Offender::Id(4)],
                detail: "order 4 was charged 2 times (keys order-4, retry-without-key)".into(),
                skipped: false,
                traces: vec!["4bf92f3577b34da6a3ce929d0e0e4736".into()],
            },
            InvariantResult {
                name: "events_accounted".into(),
                passed: true,
                checked: 0,
                violations: 0,
                first_offending: vec![],
                detail: "not applicable: the run had no event path (sync flow only), so no event accounting".into(),
                skipped: true,
                traces: vec![],
            },
        ],
        gates,
        metrics,
        partial: false,
        passed: true, // wrong on purpose: writing recomputes it
        ..Report::default()
    }
}

#[test]
fn report_json_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let r = report();
    assert!(!r.verdict(), "one invariant and one gate fail");
    let path = write_json(dir.path().join("run-1"), &r).unwrap();
    assert!(path.ends_with("report.json"));
    let back = read_json(&path).unwrap();
    assert!(!back.passed, "passed is recomputed from the verdict");
    assert_eq!(
        back,
        Report {
            passed: false,
            ..r.clone()
        }
    );

    // The shape machines read: a few pinned keys.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["scenario"], "breaker-opens");
    assert_eq!(json["flows"]["sync"]["windows"][1]["latency"]["p99"], 225.0);
    assert_eq!(json["gates"][0]["passed"], true);
    assert_eq!(json["gates"][1]["passed"], false);
    assert_eq!(
        json["invariants"][0]["first_offending"],
        serde_json::json!([4])
    );
    assert_eq!(json["metrics"]["requests"]["all"]["unknown"], 1);
    assert_eq!(json["faults"][0]["phase"], "applied");
    assert!(json["machine"]["cores"].as_u64().unwrap() >= 1);

    // Not a report: a clear error, no panic.
    std::fs::write(dir.path().join("bad.json"), "{\"seed\": \"x\"}").unwrap();
    let e = read_json(dir.path().join("bad.json")).unwrap_err();
    assert!(e.to_string().contains("is not a report"), "{e}");
    assert!(read_json(dir.path().join("missing.json")).is_err());
}

/// A test case as read back from the XML.
#[derive(Debug, Default, PartialEq)]
struct Case {
    suite: String,
    name: String,
    failure: Option<String>,
    skipped: bool,
}

/// Parses JUnit XML, checking it is well-formed (every element closed, in
/// order) and that each suite's counts match its cases.
fn read_junit(xml: &str) -> (BTreeMap<String, String>, Vec<Case>) {
    assert!(
        !xml.chars()
            .any(|c| (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t')),
        "a character XML 1.0 forbids"
    );
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut root = BTreeMap::new();
    let mut suite_counts: Vec<(String, usize, usize, usize)> = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    let attrs = |e: &quick_xml::events::BytesStart| -> BTreeMap<String, String> {
        e.attributes()
            .map(|a| {
                let a = a.unwrap();
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.unescape_value().unwrap().into_owned(),
                )
            })
            .collect()
    };
    loop {
        match reader.read_event().unwrap() {
            Event::Eof => break,
            Event::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                on_open(&name, attrs(&e), &mut root, &mut suite_counts, &mut cases);
                stack.push(name);
            }
            Event::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                on_open(&name, attrs(&e), &mut root, &mut suite_counts, &mut cases);
            }
            Event::End(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.as_str()),
                    "mismatched end tag"
                );
            }
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    for (suite, tests, failures, skipped) in suite_counts {
        let mine: Vec<&Case> = cases.iter().filter(|c| c.suite == suite).collect();
        assert_eq!(mine.len(), tests, "{suite} tests");
        assert_eq!(
            mine.iter().filter(|c| c.failure.is_some()).count(),
            failures,
            "{suite} failures"
        );
        assert_eq!(
            mine.iter().filter(|c| c.skipped).count(),
            skipped,
            "{suite} skipped"
        );
    }
    (root, cases)
}

fn on_open(
    name: &str,
    a: BTreeMap<String, String>,
    root: &mut BTreeMap<String, String>,
    suites: &mut Vec<(String, usize, usize, usize)>,
    cases: &mut Vec<Case>,
) {
    let n = |k: &str| a[k].parse::<usize>().unwrap();
    match name {
        "testsuites" => *root = a,
        "testsuite" => suites.push((a["name"].clone(), n("tests"), n("failures"), n("skipped"))),
        "testcase" => cases.push(Case {
            suite: suites.last().unwrap().0.clone(),
            name: a["name"].clone(),
            ..Case::default()
        }),
        "failure" => cases.last_mut().unwrap().failure = Some(a["message"].clone()),
        "skipped" => cases.last_mut().unwrap().skipped = true,
        _ => {}
    }
}

#[test]
fn junit_is_well_formed_and_says_what_the_report_says() {
    let mut r = report();
    // Strings that need escaping, in names and messages alike.
    r.scenario = "a <b> & \"c\"".into();
    r.gates.push(GateResult {
        gate: "p99(GET /api/orders/{id}) < 3ms & 'x'\u{7}".into(),
        actual: None,
        threshold: 3.0,
        passed: false,
        detail: "no latency <recorded>\nfor \"it\"".into(),
    });
    r.partial = true;
    let xml = junit_xml(&r);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
    let (root, cases) = read_junit(&xml);
    assert_eq!(root["name"], "gauntlet: a <b> & \"c\"");
    assert_eq!(root["tests"], "6");
    assert_eq!(root["failures"], "4");
    assert_eq!(root["skipped"], "1");

    let names: Vec<(&str, &str)> = cases
        .iter()
        .map(|c| (c.suite.as_str(), c.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("gates", "p99(POST /api/orders) < 300ms"),
            ("gates", "error_rate < 1%"),
            ("gates", "p99(GET /api/orders/{id}) < 3ms & 'x'\u{FFFD}"),
            ("invariants", "no_double_charge"),
            ("invariants", "events_accounted"),
            ("invariants", "run completed"),
        ]
    );
    assert_eq!(cases[0].failure, None);
    assert_eq!(
        cases[1].failure.as_deref(),
        Some("error_rate = 3%; needs < 1%")
    );
    assert_eq!(
        cases[2].failure.as_deref(),
        Some("no latency <recorded>\nfor \"it\"")
    );
    assert_eq!(
        cases[3].failure.as_deref(),
        Some("1 violation(s) in 90 checked: order 4 was charged 2 times (keys order-4, retry-without-key) (first offending: 4)")
    );
    assert!(cases[4].skipped && cases[4].failure.is_none());
    assert!(cases[5].failure.is_some());

    let dir = tempfile::tempdir().unwrap();
    let path = write_junit(dir.path(), &r).unwrap();
    assert_eq!(std::fs::read_to_string(path).unwrap(), xml);
}

#[test]
fn a_passing_run_has_no_failures() {
    let mut r = report();
    r.gates.retain(|g| g.passed);
    r.invariants.retain(|i| i.passed);
    assert!(r.verdict());
    let (root, cases) = read_junit(&junit_xml(&r));
    assert_eq!(root["failures"], "0");
    assert_eq!(cases.len(), 2);
}
