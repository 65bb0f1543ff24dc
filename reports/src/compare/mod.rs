//! Comparing two runs of one scenario: every figure both have, the change,
//! and a noise-aware verdict (regressed / improved / unchanged).
//!
//! The machines runs happen on are shared and noisy, so a figure is
//! *regressed* only when it moved the wrong way by more than all three of:
//!
//! 1. its **floor**, an absolute change too small to matter whatever the
//!    percentage (0.2 ms of latency, 2 breaker opens; the `*_FLOOR`
//!    constants say why each is what it is);
//! 2. its **threshold**, a relative change (10% unless
//!    [`CompareOptions`] says otherwise for the metric or the target);
//! 3. the **noise**: a one-sided test over the run's own samples (the 1 s
//!    windows, the lag samples, or the counts themselves) rejects "no
//!    change" at α (0.01 unless told otherwise) and, for latencies, the
//!    change is more than [`SPREAD_FACTOR`] times how far the figure
//!    wanders between windows within a run (two runs of one commit differ
//!    by more than a rank test over one run's windows can see).
//!
//! *Improved* needs the same evidence the other way. Figures only one run
//! has are not compared; they are listed apart, in
//! [`Comparison::only_in_base`] and [`Comparison::only_in_new`].
//!
//! # Layout
//!
//! - `mod.rs`: the types, [`compare`] and the verdict rule;
//! - `figures.rs`: what is compared (per flow, per endpoint, per link,
//!   topic and group), how each figure and its samples are read from a
//!   report, and the floors;
//! - `stats.rs`: the tests (Mann–Whitney U, Poisson, two proportions);
//! - `threshold.rs`: `--threshold p99=15%` and its errors;
//! - `render.rs`: the terminal [`table`] and the pull-request [`markdown`].
//!
//! JSON is the [`Comparison`]'s serde form.
//!
//! # Example
//!
//! ```
//! use gauntlet_reports::compare::{compare, table, CompareOptions, Verdict};
//! use gauntlet_reports::metrics::Latency;
//! use gauntlet_reports::report::{FlowReport, Report, Window};
//!
//! // A run of 30 one-second windows, its latency scaled from `p99` (ms).
//! let run = |p99: f64| {
//!     let latency = Latency { count: 100, p50: p99 / 3.0, p95: p99 * 0.8, p99, max: p99 * 2.0, ..Latency::default() };
//!     let windows = (0..30u32)
//!         .map(|i| Window {
//!             start_ms: u64::from(i) * 1000,
//!             end_ms: u64::from(i + 1) * 1000,
//!             throughput: 100.0,
//!             latency: Latency { p99: p99 + f64::from(i % 3) * 0.5, ..latency },
//!             ..Window::default()
//!         })
//!         .collect();
//!     let flow = FlowReport {
//!         throughput: 100.0,
//!         latency: Latency { count: 3000, ..latency },
//!         windows,
//!         ..FlowReport::default()
//!     };
//!     Report { scenario: "steady".into(), flows: [("sync".to_string(), flow)].into(), ..Report::default() }
//! };
//!
//! let cmp = compare(&run(6.0), &run(60.0), &CompareOptions::default())?;
//! assert!(cmp.regressed);
//! let p99 = cmp.rows.iter().find(|r| r.metric == "p99").expect("a p99 row");
//! assert_eq!(p99.verdict, Verdict::Regressed);
//! assert!(table(&cmp).ends_with("4 regressed, 0 improved, 1 unchanged\n"));
//!
//! // The same run against itself: nothing moved.
//! let same = compare(&run(6.0), &run(6.0), &CompareOptions::default())?;
//! assert!(!same.regressed);
//! # Ok::<(), gauntlet_reports::compare::CompareError>(())
//! ```

mod figures;
mod render;
mod stats;
#[cfg(test)]
mod tests;
mod threshold;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::report::Report;
use figures::{Figure, Key, Samples};

pub use figures::{
    Better, Metric, Unit, COUNT_FLOOR, LAG_FLOOR, LATENCY_FLOOR_MS, RATE_FLOOR, THROUGHPUT_FLOOR,
};
pub use render::{markdown, table};
pub use stats::{
    iqr, mann_whitney, normal_cdf, normal_sf, poisson, two_proportions, MannWhitney, OneSided,
};
pub use threshold::{parse_threshold, ThresholdError, MAX_THRESHOLD};

/// The relative change a figure must exceed, where no per-metric
/// threshold applies: two healthy runs of one scenario commonly differ by
/// several percent at the tail, so less than 10% is not worth a red build.
pub const DEFAULT_THRESHOLD: f64 = 0.10;

/// The significance level of each one-sided test. 0.01 rather than the
/// textbook 0.05: a comparison judges some dozens of figures, and at 0.05
/// a couple of them would pass the test by chance in every comparison.
pub const DEFAULT_ALPHA: f64 = 0.01;

/// Windows with fewer operations are left out of per-window latency and
/// error-rate samples: with four operations a window's "p99" is its
/// slowest operation and its error rate moves in steps of 25%.
pub const MIN_WINDOW_OPS: u64 = 5;

/// A latency has moved beyond the noise only when the change is also more
/// than this many spreads (the larger within-run interquartile range of
/// the two runs' window values).
///
/// Why: Mann–Whitney over the windows sees how a figure wanders *within*
/// a run, but two runs of one commit on a shared machine also differ by a
/// shift of the whole run, which no within-run test can tell from a code
/// change. Measured here on five runs of `ci-smoke` from one commit (ten
/// pairs, 8 windows of ~20 requests per flow): whole-run tail latencies
/// moved by up to 2.8 spreads between runs, and each such pair passed the
/// rank test at 1%. A 50 ms slowdown moved async p99 by 7.6 spreads and
/// every p50 by 19 or more.
pub const SPREAD_FACTOR: f64 = 3.0;

/// Why two reports cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("not comparable: the base is a run of `{base}`, the new one of `{new}`")]
    DifferentScenario { base: String, new: String },
    #[error(
        "nothing to compare: the {side} report (a run of `{scenario}`) has no flows; \
         it recorded no load (was the run stopped before its load started?)"
    )]
    NoFlows { side: Side, scenario: String },
    #[error(
        "significance level {alpha} is out of range: give a number between 0 and 1, e.g. 0.01"
    )]
    Alpha { alpha: f64 },
    #[error(
        "threshold {value} for `{key}` is out of range: give a fraction from 0 to {MAX_THRESHOLD} \
         (0% to 1000%)"
    )]
    ThresholdRange { key: String, value: f64 },
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
}

/// Which of the two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Base,
    New,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Base => "base",
            Side::New => "new",
        })
    }
}

/// How `compare` judges.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// The relative change (a fraction: 0.10 = 10%) a figure must exceed
    /// where `thresholds` has nothing for it.
    pub threshold: f64,
    /// Per metric (`p99`, every target's) or per metric and target
    /// (`p99(POST /api/orders)`, which wins), as [`parse_threshold`]
    /// gives them; fractions.
    pub thresholds: BTreeMap<String, f64>,
    /// The significance level of each one-sided test, in (0, 1).
    pub alpha: f64,
    /// Windows with fewer operations are left out of latency and
    /// error-rate samples.
    pub min_window_ops: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            threshold: DEFAULT_THRESHOLD,
            thresholds: BTreeMap::new(),
            alpha: DEFAULT_ALPHA,
            min_window_ops: MIN_WINDOW_OPS,
        }
    }
}

impl CompareOptions {
    /// Adds a `METRIC=PERCENT` or `METRIC(TARGET)=PERCENT` threshold.
    pub fn set_threshold(&mut self, spec: &str) -> Result<(), ThresholdError> {
        let (key, value) = parse_threshold(spec)?;
        self.thresholds.insert(key, value);
        Ok(())
    }

    /// The threshold (a fraction) for `metric` of `target`.
    pub fn threshold_for(&self, metric: Metric, target: &str) -> f64 {
        self.thresholds
            .get(&threshold::scoped(metric, target))
            .or_else(|| self.thresholds.get(metric.name()))
            .copied()
            .unwrap_or(self.threshold)
    }

    fn check(&self) -> Result<(), CompareError> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(CompareError::Alpha { alpha: self.alpha });
        }
        let range = |key: &str, value: f64| {
            if (0.0..=MAX_THRESHOLD).contains(&value) {
                Ok(())
            } else {
                Err(CompareError::ThresholdRange {
                    key: key.to_string(),
                    value,
                })
            }
        };
        range("(default)", self.threshold)?;
        for (key, value) in &self.thresholds {
            range(key, *value)?;
            threshold::check_key(key, key)?;
        }
        Ok(())
    }
}

/// Which run a side of a comparison is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunInfo {
    pub scenario: String,
    /// Where it was read from.
    pub source: String,
    pub started_unix_ms: i64,
    pub passed: bool,
}

impl RunInfo {
    /// The run `report` records; `source` is left empty for the caller,
    /// who knows where the report came from.
    pub fn of(report: &Report) -> RunInfo {
        RunInfo {
            scenario: report.scenario.clone(),
            source: String::new(),
            started_unix_ms: report.started_unix_ms,
            passed: report.verdict(),
        }
    }
}

/// A figure's verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Regressed,
    Improved,
    #[default]
    Unchanged,
}

/// Which test judged a figure's noise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Mann–Whitney U over per-window (or per-sample) values.
    MannWhitney,
    /// Two Poisson counts.
    Poisson,
    /// Two proportions (pooled z-test).
    TwoProportions,
    /// No samples to judge by (the figure is then never changed).
    #[default]
    #[serde(rename = "none")]
    Unavailable,
}

/// What the noise test said about a figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Noise {
    pub test: Test,
    /// Samples in each run (windows or lag samples; 1 for a count or a
    /// proportion).
    pub base_samples: usize,
    pub new_samples: usize,
    /// The standardised difference, positive when the new run is greater.
    pub z: f64,
    /// For latencies: the larger of the two runs' interquartile ranges of
    /// their window values (how far the figure wanders second to second
    /// within a run); 0 where not used.
    pub spread: f64,
    /// The one-sided p-value in the direction the figure moved (1 when
    /// it did not move or could not be tested).
    pub p: f64,
    /// `p` is below the comparison's α and, for latencies, the change is
    /// more than [`SPREAD_FACTOR`] spreads.
    pub significant: bool,
}

/// One figure in both runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Row {
    /// `None`: the whole run of a report with several flows.
    pub flow: Option<String>,
    /// An endpoint, the flow's name (the flow as a whole), a link, a
    /// topic, a consumer group, or `all`.
    pub target: String,
    /// [`Metric::name`]: `p99`, `throughput`, `breaker.opened`, ….
    pub metric: String,
    pub base: f64,
    pub new: f64,
    /// (new − base) / base, in percent; `None` when the base is 0 and the
    /// new value is not (a change from nothing has no percentage).
    pub change_pct: Option<f64>,
    pub better: Better,
    pub unit: Unit,
    /// The relative change that had to be exceeded, in percent.
    pub threshold_pct: f64,
    /// The absolute change that had to be exceeded, in `unit`.
    pub floor: f64,
    pub noise: Noise,
    pub verdict: Verdict,
}

/// Figures of one target only one run has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OnlyIn {
    pub flow: Option<String>,
    pub target: String,
    /// Metric names.
    pub metrics: Vec<String>,
}

/// Two runs side by side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Comparison {
    pub base: RunInfo,
    pub new: RunInfo,
    /// Every figure both runs have, in report order (flows, their
    /// endpoints, then links, sagas, topics, groups).
    pub rows: Vec<Row>,
    /// Any row regressed.
    pub regressed: bool,
    /// Figures only the base run has (not compared).
    pub only_in_base: Vec<OnlyIn>,
    /// Figures only the new run has (not compared).
    pub only_in_new: Vec<OnlyIn>,
    /// The significance level the tests used.
    pub alpha: f64,
}

impl Comparison {
    /// How many rows regressed, improved and stayed unchanged.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |v: Verdict| self.rows.iter().filter(|r| r.verdict == v).count();
        (
            n(Verdict::Regressed),
            n(Verdict::Improved),
            n(Verdict::Unchanged),
        )
    }

    /// `N regressed, M improved, K unchanged`.
    pub fn summary(&self) -> String {
        let (r, i, u) = self.counts();
        format!("{r} regressed, {i} improved, {u} unchanged")
    }
}

/// Compares `new` with `base`: a [`Row`] for every figure both have.
pub fn compare(
    base: &Report,
    new: &Report,
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    if base.scenario != new.scenario {
        return Err(CompareError::DifferentScenario {
            base: base.scenario.clone(),
            new: new.scenario.clone(),
        });
    }
    for (side, r) in [(Side::Base, base), (Side::New, new)] {
        if r.flows.is_empty() {
            return Err(CompareError::NoFlows {
                side,
                scenario: r.scenario.clone(),
            });
        }
    }
    opts.check()?;

    let base_figures = figures::figures(base, opts.min_window_ops);
    let new_figures = figures::figures(new, opts.min_window_ops);
    let in_new: HashMap<&Key, &Figure> = new_figures.iter().map(|f| (&f.key, f)).collect();
    let in_base: HashMap<&Key, &Figure> = base_figures.iter().map(|f| (&f.key, f)).collect();

    let rows: Vec<Row> = base_figures
        .iter()
        .filter_map(|b| in_new.get(&b.key).map(|n| judge(b, n, opts)))
        .collect();
    let only = |figures: &[Figure], other: &HashMap<&Key, &Figure>| {
        only_in(figures.iter().filter(|f| !other.contains_key(&f.key)))
    };
    Ok(Comparison {
        base: RunInfo::of(base),
        new: RunInfo::of(new),
        regressed: rows.iter().any(|r| r.verdict == Verdict::Regressed),
        rows,
        only_in_base: only(&base_figures, &in_new),
        only_in_new: only(&new_figures, &in_base),
        alpha: opts.alpha,
    })
}

/// The verdict rule: beyond the floor, beyond the threshold, and beyond
/// the noise, all in the same direction.
fn judge(base: &Figure, new: &Figure, opts: &CompareOptions) -> Row {
    let key = &base.key;
    let metric = key.metric;
    let threshold = opts.threshold_for(metric, &key.target);
    let delta = new.value - base.value;
    let change_pct = if base.value != 0.0 {
        Some(delta / base.value.abs() * 100.0)
    } else if delta == 0.0 {
        Some(0.0)
    } else {
        None
    };
    let mut noise = noise(&base.samples, &new.samples, delta, opts.alpha);
    if metric.unit() == Unit::Millis {
        if let (Samples::Series(b), Samples::Series(n)) = (&base.samples, &new.samples) {
            noise.spread = iqr(b).max(iqr(n));
            noise.significant &= delta.abs() > SPREAD_FACTOR * noise.spread;
        }
    }

    let beyond_floor = delta.abs() > metric.floor();
    // From a base of 0, any change is beyond every relative threshold.
    let beyond_threshold = delta.abs() > threshold * base.value.abs();
    let worse = match metric.better() {
        Better::Lower => delta > 0.0,
        Better::Higher => delta < 0.0,
    };
    let verdict = match (beyond_floor && beyond_threshold && noise.significant, worse) {
        (false, _) => Verdict::Unchanged,
        (true, true) => Verdict::Regressed,
        (true, false) => Verdict::Improved,
    };
    Row {
        flow: key.flow.clone(),
        target: key.target.clone(),
        metric: metric.name().to_string(),
        base: base.value,
        new: new.value,
        change_pct,
        better: metric.better(),
        unit: metric.unit(),
        threshold_pct: threshold * 100.0,
        floor: metric.floor(),
        noise,
        verdict,
    }
}

/// The noise test for two runs' samples, asked in the direction the
/// figure moved (`delta`'s sign).
fn noise(base: &Samples, new: &Samples, delta: f64, alpha: f64) -> Noise {
    let tested = match (base, new) {
        (Samples::Series(b), Samples::Series(n)) => {
            mann_whitney(b, n).map(|m| (Test::MannWhitney, b.len(), n.len(), m.test))
        }
        (Samples::Count(b), Samples::Count(n)) => Some((Test::Poisson, 1, 1, poisson(*b, *n))),
        (
            Samples::Proportion { hits, trials },
            Samples::Proportion {
                hits: new_hits,
                trials: new_trials,
            },
        ) => two_proportions(*hits, *trials, *new_hits, *new_trials)
            .map(|t| (Test::TwoProportions, 1, 1, t)),
        _ => None,
    };
    let Some((test, base_samples, new_samples, t)) = tested else {
        return Noise {
            p: 1.0,
            ..Noise::default()
        };
    };
    let p = if delta > 0.0 {
        t.p_greater
    } else if delta < 0.0 {
        t.p_less
    } else {
        1.0
    };
    Noise {
        test,
        base_samples,
        new_samples,
        z: t.z,
        spread: 0.0,
        p,
        significant: p < alpha,
    }
}

/// Groups unmatched figures by flow and target, in report order.
fn only_in<'f>(figures: impl Iterator<Item = &'f Figure>) -> Vec<OnlyIn> {
    let mut out: Vec<OnlyIn> = Vec::new();
    for f in figures {
        let name = f.key.metric.name().to_string();
        match out
            .iter_mut()
            .find(|o| o.flow == f.key.flow && o.target == f.key.target)
        {
            Some(o) => o.metrics.push(name),
            None => out.push(OnlyIn {
                flow: f.key.flow.clone(),
                target: f.key.target.clone(),
                metrics: vec![name],
            }),
        }
    }
    out
}
