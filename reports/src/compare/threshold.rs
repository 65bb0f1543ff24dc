//! Per-metric thresholds: `p99=15%` (every p99) or
//! `p99(POST /api/orders)=20%` (one target's), as `--threshold` gives them.

use super::figures::Metric;
use crate::problem::nearest;

/// The largest threshold accepted: beyond 1000% a threshold no longer
/// says "how much change is noise" but "never", which is better said by
/// not gating on the figure.
pub const MAX_THRESHOLD: f64 = 10.0;

/// Why a threshold was not understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    #[error("threshold `{given}`: expected METRIC=PERCENT, e.g. `p99=15%`")]
    Shape { given: String },
    #[error(
        "threshold `{given}`: unknown metric `{metric}`{hint} (compare judges: {known})",
        known = Metric::names().join(", ")
    )]
    UnknownMetric {
        given: String,
        metric: String,
        /// `; did you mean …?`, or empty.
        hint: String,
    },
    #[error(
        "threshold `{given}`: a target goes in parentheses after the metric, \
         e.g. `p99(POST /api/orders)=20%`"
    )]
    BadTarget { given: String },
    #[error("threshold `{given}`: `{value}` is not a percentage; write it like `15%`")]
    NotPercent { given: String, value: String },
    #[error("threshold `{given}`: {value}% is out of range; give 0% to 1000%")]
    OutOfRange { given: String, value: f64 },
}

/// Parses `METRIC=PERCENT` or `METRIC(TARGET)=PERCENT` into the key
/// [`CompareOptions::thresholds`](super::CompareOptions::thresholds)
/// takes and the threshold as a fraction (`15%` → 0.15).
///
/// ```
/// use gauntlet_reports::compare::parse_threshold;
///
/// assert_eq!(parse_threshold("p99=15%").unwrap(), ("p99".to_string(), 0.15));
/// let (key, t) = parse_threshold("throughput(POST /api/orders) = 5%").unwrap();
/// assert_eq!((key.as_str(), t), ("throughput(POST /api/orders)", 0.05));
/// let err = parse_threshold("p98=15%").unwrap_err().to_string();
/// assert!(err.contains("did you mean `p99`?"), "{err}");
/// ```
pub fn parse_threshold(s: &str) -> Result<(String, f64), ThresholdError> {
    let given = s.trim();
    let Some((key, value)) = given.split_once('=') else {
        return Err(ThresholdError::Shape {
            given: given.into(),
        });
    };
    if key.trim().is_empty() {
        return Err(ThresholdError::Shape {
            given: given.into(),
        });
    }
    let key = check_key(given, key.trim())?;
    let value = value.trim();
    let not_percent = || ThresholdError::NotPercent {
        given: given.into(),
        value: value.into(),
    };
    let pct: f64 = value
        .strip_suffix('%')
        .ok_or_else(not_percent)?
        .trim()
        .parse()
        .map_err(|_| not_percent())?;
    let fraction = pct / 100.0;
    if !(0.0..=MAX_THRESHOLD).contains(&fraction) {
        return Err(ThresholdError::OutOfRange {
            given: given.into(),
            value: pct,
        });
    }
    Ok((key, fraction))
}

/// Checks a threshold key, a metric compare judges optionally with a
/// non-empty target in parentheses, and returns it without stray spaces
/// (`p99 ( sync )` → `p99(sync)`). `given` is what to quote in errors.
pub(crate) fn check_key(given: &str, key: &str) -> Result<String, ThresholdError> {
    let bad_target = || ThresholdError::BadTarget {
        given: given.into(),
    };
    let (metric, target) = match key.split_once('(') {
        Some((metric, rest)) => {
            let target = rest.trim_end().strip_suffix(')').map(str::trim);
            match target {
                Some(t) if !t.is_empty() => (metric.trim(), Some(t)),
                _ => return Err(bad_target()),
            }
        }
        None if key.contains(')') => return Err(bad_target()),
        None => (key, None),
    };
    if Metric::from_name(metric).is_none() {
        let hint = nearest(metric, &Metric::names())
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        return Err(ThresholdError::UnknownMetric {
            given: given.into(),
            metric: metric.into(),
            hint,
        });
    }
    Ok(match target {
        Some(t) => format!("{metric}({t})"),
        None => metric.to_string(),
    })
}

/// The key for one metric of one target.
pub(crate) fn scoped(metric: Metric, target: &str) -> String {
    format!("{}({target})", metric.name())
}
