//! The live progress line: one line on standard error, rewritten in place
//! about once a second, and nothing at all when standard error is not a
//! terminal (CI logs get the summary only).

use std::io::Write;
use std::time::Duration;

use gauntlet_loadgen::{Phase, Progress};
use parking_lot::Mutex;

pub struct ProgressLine {
    enabled: bool,
    /// Whether a line is on screen (to clear before other output).
    shown: Mutex<bool>,
}

impl ProgressLine {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            shown: Mutex::new(false),
        }
    }

    /// A phase with no figures: start-up, quiescing, reading back.
    pub fn phase(&self, flow: &str, what: &str) {
        self.show(&format!("{flow:<5} {what}…"));
    }

    /// The load's figures. `into` is how far into the measured load the
    /// run is (`None` before it starts).
    pub fn load(
        &self,
        flow: &str,
        p: &Progress,
        into: Option<Duration>,
        total: Duration,
        active: &[String],
    ) {
        if !self.enabled {
            return;
        }
        self.show(&load_line(flow, p, into, total, active));
    }

    /// Takes the line off the screen.
    pub fn clear(&self) {
        let mut shown = self.shown.lock();
        if self.enabled && *shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            *shown = false;
        }
    }

    fn show(&self, line: &str) {
        if !self.enabled {
            return;
        }
        let mut shown = self.shown.lock();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        *shown = true;
    }
}

/// One progress line, e.g.
/// `sync  load    12s/30s  31.0/s (target 30)  p99 41.2ms  ok 402  errors 3  faults: orders->payments down`.
pub fn load_line(
    flow: &str,
    p: &Progress,
    into: Option<Duration>,
    total: Duration,
    active: &[String],
) -> String {
    let secs = |d: Duration| d.as_secs();
    let (phase, clock) = match (p.phase, into) {
        (Phase::Setup, _) => ("setup", String::new()),
        (Phase::Warmup, _) | (_, None) => ("warm-up", String::new()),
        (Phase::Load, Some(t)) => ("load", format!("{:>4}s/{}s", secs(t), secs(total))),
        (Phase::Drain, _) => ("drain", String::new()),
    };
    let mut line = format!("{flow:<5} {phase:<7} {clock:>9}  {:.1}/s", p.current_rate);
    if let Some(t) = p.target_rate {
        line.push_str(&format!(" (target {t:.0})"));
    }
    match p.p99_ms {
        Some(ms) => line.push_str(&format!("  p99 {ms:.1}ms")),
        None => line.push_str("  p99 -"),
    }
    line.push_str(&format!("  ok {}  errors {}", p.ok, p.errors));
    if !active.is_empty() {
        line.push_str(&format!("  faults: {}", active.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_time_rate_latency_errors_and_faults() {
        let p = Progress {
            elapsed: Duration::from_secs(20),
            phase: Phase::Load,
            target_rate: Some(30.0),
            current_rate: 31.0,
            p99_ms: Some(41.25),
            ok: 402,
            errors: 3,
        };
        let line = load_line(
            "sync",
            &p,
            Some(Duration::from_secs(12)),
            Duration::from_secs(30),
            &["orders->payments down".to_string()],
        );
        assert_eq!(
            line,
            "sync  load      12s/30s  31.0/s (target 30)  p99 41.2ms  ok 402  errors 3  faults: orders->payments down"
        );
    }
}
