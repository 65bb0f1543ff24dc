//! The terminal summary printed at the end of a run.

use std::fmt::Write;

use gauntlet_reports::metrics::Latency;
use gauntlet_reports::report::FaultPhase;
use gauntlet_reports::Report;

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else {
        format!("{v:.1}ms")
    }
}

fn lat(l: &Latency) -> String {
    format!(
        "p50 {:>8}  p95 {:>8}  p99 {:>8}  max {:>8}",
        ms(l.p50),
        ms(l.p95),
        ms(l.p99),
        ms(l.max)
    )
}

/// The summary of `report`, ending with its verdict and where it is.
pub fn summary(report: &Report, report_json: &std::path::Path) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "\n{} (seed {}): {:.1}s of measured load",
        report.scenario,
        report.seed,
        report.duration_ms as f64 / 1000.0
    );
    for (flow, f) in &report.flows {
        let _ = writeln!(
            w,
            "  {flow:<5} {:>7} ops  {:>6} ok  {:>5} failed  {:>5} unknown  {:>8.1} ok/s  {}",
            f.requests.total,
            f.requests.ok,
            f.requests.failed,
            f.requests.unknown,
            f.throughput,
            lat(&f.latency)
        );
        if f.requests.rejected() > 0 {
            // Refused at the edge: not failures, and not in the error rate.
            let _ = writeln!(
                w,
                "        {:<22} {:>7} rejected: {} unauthorized (401), {} rate limited (429)",
                "gateway",
                f.requests.rejected(),
                f.requests.unauthorized,
                f.requests.rate_limited
            );
        }
        if f.settle.count > 0 {
            let _ = writeln!(
                w,
                "        {:<22} {:>7} orders written → terminal          {}",
                "settle",
                f.settle.count,
                lat(&f.settle)
            );
        }
        for (endpoint, e) in &f.endpoints {
            let rejected = match e.requests.rejected() {
                0 => String::new(),
                n => format!("  {n} rejected"),
            };
            let _ = writeln!(
                w,
                "        {endpoint:<22} {:>7} ops  {:>5} errors  {}{rejected}",
                e.requests.total,
                e.requests.errors(),
                lat(&e.latency)
            );
        }
    }
    if let Some(o) = &report.metrics.orders {
        let _ = writeln!(
            w,
            "  orders: {} placed, {} acknowledged; on the server {} confirmed, {} cancelled, {} pending, {} lost",
            o.placed, o.acknowledged, o.confirmed, o.cancelled, o.pending, o.lost
        );
    }
    if let Some(s) = &report.saga {
        let _ = writeln!(
            w,
            "  sagas: {} completed, {} compensated, {} failed",
            s.completed, s.compensated, s.failed
        );
    }
    let opened: Vec<String> = report
        .metrics
        .breaker_opened
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(l, n)| format!("{l} ×{n}"))
        .collect();
    if !opened.is_empty() {
        let _ = writeln!(w, "  breakers opened: {}", opened.join(", "));
    }
    for d in &report.dlq {
        let _ = writeln!(
            w,
            "  topic {}: {} deliveries, {} dead-lettered ({:.2}%)",
            d.topic,
            d.produced,
            d.dead_lettered,
            d.rate * 100.0
        );
    }
    if !report.faults.is_empty() {
        let _ = writeln!(w, "  faults:");
        for f in &report.faults {
            let flow = f.flow.as_deref().unwrap_or("");
            if let Some(skipped) = &f.skipped {
                let _ = writeln!(w, "    {flow:<5} skipped {skipped}");
                continue;
            }
            let at = f.at_ms as f64 / 1000.0;
            let phase = match f.phase {
                Some(FaultPhase::Applied) => "applied",
                Some(FaultPhase::Undone) => "undone",
                None => "",
            };
            let error = f
                .error
                .as_deref()
                .map(|e| format!(" (FAILED: {e})"))
                .unwrap_or_default();
            let _ = writeln!(w, "    {flow:<5} {at:>7.1}s {phase:<7} {}{error}", f.action);
        }
    }
    let _ = writeln!(w, "  invariants:");
    for i in &report.invariants {
        let mark = if !i.passed {
            "FAIL"
        } else if i.skipped {
            "n/a "
        } else {
            "ok  "
        };
        let _ = writeln!(w, "    {mark} {}: {}", i.name, i.detail);
    }
    if !report.gates.is_empty() {
        let _ = writeln!(w, "  gates:");
        for g in &report.gates {
            let mark = if g.passed { "ok  " } else { "FAIL" };
            let _ = writeln!(w, "    {mark} {}: {}", g.gate, g.detail);
        }
    }
    let verdict = if report.partial {
        "PARTIAL: the run did not complete (interrupted, or the system did not settle); its figures are incomplete"
    } else if report.verdict() {
        "PASSED"
    } else {
        "FAILED"
    };
    let _ = writeln!(w, "{verdict}");
    let _ = writeln!(w, "report: {}", report_json.display());
    out
}
