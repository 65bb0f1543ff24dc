//! A real run on the embedded system, end to end through the reports: the
//! page it draws has data in every chart and its fault shaded; `report`
//! draws the same page again from report.json; `compare` finds nothing
//! between a run and itself, calls a run 50 ms slower regressed, and
//! refuses another scenario; `run --baseline` fails the slower run, and a
//! baseline gate needs its baseline.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gauntlet_reports::html::{inspect, REPORT_HTML};
use gauntlet_reports::read_json;

fn gauntlet(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gauntlet"));
    for a in args {
        c.arg(a);
    }
    c.output().expect("gauntlet runs")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A short payment outage on the sync flow (10 windows: enough for the
/// noise test to tell a 50 ms slowdown at α = 1%); `extra` adds faults or gates.
fn scenario(gates: &str, extra: &str) -> String {
    format!(
        r#"name = "outage-e2e"
description = "Provider down for 1 s under 30 journeys/s."
seed = 11
quiesce = "20s"
gates = ["orders.lost == 0", "orders.pending == 0"{gates}]

[system]
flow = "sync"

[load]
rate = [{{ duration = "10s", target = 30 }}]
warmup = "1s"
mix = {{ browse = 2, place_order = 7, poll_order = 1 }}

[[faults]]
at = "2s"
duration = "1s"
action = {{ type = "link_down", link = "payments->provider" }}
{extra}"#
    )
}

/// The one run directory under `out`.
fn run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("the out dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("report.json").is_file())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn a_run_is_drawn_redrawn_compared_and_gated_on_its_baseline() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("outage.toml");
    std::fs::write(&file, scenario("", "")).expect("written");
    let base_dir = tmp.path().join("baseline");

    // 1. The run draws its page, and keeps itself as the baseline.
    let out = tmp.path().join("runs-1");
    let o = gauntlet(&[&"run", &"--out", &out, &"--save-baseline", &base_dir, &file]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dir = run_dir(&out);
    let report = read_json(&dir).expect("report.json");
    let html = std::fs::read_to_string(dir.join(REPORT_HTML)).expect("report.html");
    let summary = inspect::check(&report, &html).unwrap_or_else(|p| panic!("{p:#?}"));
    let windows = report.flows["sync"].windows.len();
    assert!(windows >= 9, "{windows} windows");
    let charts = inspect::charts(&html);
    let over_time: Vec<_> = charts.iter().filter(|c| c.kind == "time").collect();
    assert!(over_time.len() >= 4, "{charts:#?}");
    for c in &over_time {
        assert!(
            c.series.iter().all(|&n| n == windows) && !c.series.is_empty(),
            "{}: {:?} points, {windows} windows",
            c.id,
            c.series
        );
        assert!(c.fault_shades >= 1, "{}: the outage is not shaded", c.id);
        assert!(
            c.text.contains("payments-&gt;provider") || c.text.contains("payments->provider"),
            "{}: the fault is not named:\n{}",
            c.id,
            c.text
        );
    }
    assert!(summary.fault_shades >= over_time.len());
    // The scenario file itself is on the page.
    assert_eq!(report.scenario_source, scenario("", ""));
    assert!(html.contains("seed = 11") && html.contains("outage-e2e"));
    assert!(base_dir.join("report.json").is_file() && base_dir.join(REPORT_HTML).is_file());
    let o = gauntlet(&[&"report", &"--check", &dir]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // 2. `report` draws the same page again from report.json alone.
    std::fs::remove_file(dir.join(REPORT_HTML)).expect("removed");
    let o = gauntlet(&[&"report", &dir]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let again = std::fs::read_to_string(dir.join(REPORT_HTML)).expect("redrawn");
    assert_eq!(again, html, "the redrawn page differs");

    // 3. A run against itself: nothing regressed; the files are written.
    let o = gauntlet(&[
        &"compare",
        &base_dir,
        &dir,
        &"--markdown",
        &tmp.path().join("c.md"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(dir.join("compare.json").is_file() && dir.join("compare.html").is_file());
    assert!(std::fs::read_to_string(tmp.path().join("c.md"))
        .expect("markdown")
        .contains("0 regressed"));

    // 4. Another scenario, or not a report: exit 2, naming both.
    let mut other = report.clone();
    other.scenario = "something-else".into();
    let other_dir = tmp.path().join("other");
    gauntlet_reports::write_json(&other_dir, &other).expect("written");
    let o = gauntlet(&[&"compare", &other_dir, &dir]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("something-else") && err.contains("outage-e2e"),
        "{err}"
    );
    let junk = tmp.path().join("junk.json");
    std::fs::write(&junk, "not json").expect("written");
    let o = gauntlet(&[&"compare", &junk, &dir]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("junk.json"),
        "{}",
        text(&o)
    );

    // 5. The same scenario 50 ms slower on the client link, against the
    //    baseline: p99 regressed, the run fails, and so does its baseline gate.
    let slow = tmp.path().join("slow.toml");
    std::fs::write(
        &slow,
        scenario(
            r#", "p50(POST /api/orders) < baseline * 1.5""#,
            r#"
[[faults]]
at = "0s"
duration = "10s"
action = { type = "toxic", link = "gateway", toxic = { type = "latency", attributes = { latency = 50 } } }
"#,
        ),
    )
    .expect("written");
    let o = gauntlet(&[&"validate", &slow]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--baseline"),
        "{}",
        text(&o)
    );
    let out = tmp.path().join("runs-2");
    let o = gauntlet(&[&"run", &"--out", &out, &"--baseline", &base_dir, &slow]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let slow_report = read_json(run_dir(&out)).expect("report.json");
    let cmp = slow_report
        .baseline
        .as_ref()
        .expect("compared with the baseline");
    assert!(cmp.regressed);
    // p99 regressed (on the endpoints the outage's tail does not swamp),
    // and the orders' p50 everywhere.
    let regressed = |metric: &str, target: Option<&str>| {
        cmp.rows.iter().any(|r| {
            r.metric == metric
                && target.is_none_or(|t| r.target == t)
                && r.verdict == gauntlet_reports::compare::Verdict::Regressed
        })
    };
    assert!(
        regressed("p99", None) && regressed("p50", Some("POST /api/orders")),
        "{:#?}",
        cmp.rows
    );
    let gate = slow_report
        .gates
        .iter()
        .find(|g| g.gate.contains("baseline"))
        .expect("the baseline gate");
    assert!(!gate.passed, "{gate:?}");
    let o = gauntlet(&[&"compare", &base_dir, &run_dir(&out)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}
