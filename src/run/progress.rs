//! The live progress line: one line on standard error, rewritten in place
//! about once a second, and nothing at all when standard error is not a
//! terminal (CI logs get the summary only).
//!
//! Drawn by `indicatif`: it clears the line (however many rows a long line
//! wrapped to), pads it, rate-limits redraws, and hides itself when standard
//! error is not a terminal or `TERM` is `dumb`. The caller's `enabled` flag
//! (`--no-progress`, or stderr not a terminal) still turns it off outright.

use std::time::Duration;

use gauntlet_loadgen::{Phase, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use parking_lot::Mutex;

/// Where a line is drawn: standard error in a run, a recording terminal in
/// the tests.
type Target = Box<dyn Fn() -> ProgressDrawTarget + Send + Sync>;

pub struct ProgressLine {
    enabled: bool,
    target: Target,
    /// The line on screen, if one is (to clear before other output). A
    /// cleared bar is finished for good in indicatif, so each line shown
    /// after a `clear` is a new bar.
    bar: Mutex<Option<ProgressBar>>,
}

impl ProgressLine {
    pub fn new(enabled: bool) -> Self {
        Self::with_target(enabled, Box::new(ProgressDrawTarget::stderr))
    }

    fn with_target(enabled: bool, target: Target) -> Self {
        Self {
            enabled,
            target,
            bar: Mutex::new(None),
        }
    }

    /// A phase with no figures: start-up, quiescing, reading back.
    pub fn phase(&self, flow: &str, what: &str) {
        self.show(format!("{flow:<5} {what}…"));
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
        self.show(load_line(flow, p, into, total, active));
    }

    /// Takes the line off the screen.
    pub fn clear(&self) {
        if let Some(bar) = self.bar.lock().take() {
            bar.finish_and_clear();
        }
    }

    fn show(&self, line: String) {
        if !self.enabled {
            return;
        }
        let mut bar = self.bar.lock();
        bar.get_or_insert_with(|| {
            ProgressBar::with_draw_target(None, (self.target)())
                .with_style(
                    ProgressStyle::with_template("{msg}").expect("a constant, valid template"),
                )
                // A line left up when the run unwinds is taken down too.
                .with_finish(ProgressFinish::AndClear)
        })
        .set_message(line);
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
    use std::io;
    use std::sync::Arc;

    use indicatif::TermLike;

    use super::*;

    fn progress() -> Progress {
        Progress {
            elapsed: Duration::from_secs(20),
            phase: Phase::Load,
            target_rate: Some(30.0),
            current_rate: 31.0,
            p99_ms: Some(41.25),
            ok: 402,
            errors: 3,
        }
    }

    #[test]
    fn the_line_shows_time_rate_latency_errors_and_faults() {
        let line = load_line(
            "sync",
            &progress(),
            Some(Duration::from_secs(12)),
            Duration::from_secs(30),
            &["orders->payments down".to_string()],
        );
        assert_eq!(
            line,
            "sync  load      12s/30s  31.0/s (target 30)  p99 41.2ms  ok 402  errors 3  faults: orders->payments down"
        );
    }

    /// A terminal that records what is drawn on it: text as written, and
    /// `<clear>` for each line cleared.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        /// A progress line drawn on this screen.
        fn line(&self, enabled: bool) -> ProgressLine {
            let screen = self.clone();
            ProgressLine::with_target(
                enabled,
                Box::new(move || ProgressDrawTarget::term_like(Box::new(screen.clone()))),
            )
        }
        /// What was written, padding trimmed, with the clears.
        fn seen(&self) -> Vec<String> {
            self.0
                .lock()
                .iter()
                .map(|s| s.trim_end().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }
        fn push(&self, s: &str) -> io::Result<()> {
            self.0.lock().push(s.to_string());
            Ok(())
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.push(s)
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.push(s)
        }
        fn clear_line(&self) -> io::Result<()> {
            self.push("<clear>")
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_line_replaces_the_last_and_clear_takes_it_down() {
        let screen = Screen::default();
        let line = screen.line(true);
        line.phase("sync", "quiescing");
        line.load(
            "sync",
            &progress(),
            Some(Duration::from_secs(12)),
            Duration::from_secs(30),
            &[],
        );
        line.clear();
        // Cleared twice: nothing is on screen, so nothing more is written.
        line.clear();
        // A line after a clear is drawn again.
        line.phase("async", "reading the final state");
        assert_eq!(
            screen.seen(),
            [
                "sync  quiescing…",
                "<clear>",
                "sync  load      12s/30s  31.0/s (target 30)  p99 41.2ms  ok 402  errors 3",
                "<clear>",
                "async reading the final state…",
            ]
        );
    }

    #[test]
    fn a_disabled_line_draws_nothing() {
        let screen = Screen::default();
        let line = screen.line(false);
        line.phase("sync", "quiescing");
        line.load("sync", &progress(), None, Duration::from_secs(30), &[]);
        line.clear();
        assert!(screen.seen().is_empty(), "drew {:?}", screen.seen());
    }
}
