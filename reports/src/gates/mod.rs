//! Gates: k6-style pass/fail rules on a run's metrics, written as strings
//! in the scenario.
//!
//! ```text
//! gate      = operand [ "/" operand ] comparison number [ unit ]
//! operand   = metric [ "(" argument ")" ]
//! metric    = a name from the registry: p50 … p999, min, max, avg,
//!             requests, errors, error_rate, unknown_rate, rejected,
//!             unauthorized, rate_limited, throughput,
//!             saga.*, breaker.opened, retries, dlq.count, dlq.rate,
//!             lag.max, lag.final, orders.*, invariants.violations
//! argument  = endpoint ("POST /api/orders") | flow ("sync", "async") | "all"
//!           | link ("orders->payments") | topic | consumer group | invariant
//! comparison = "<" | "<=" | ">" | ">=" | "==" | "!="
//! unit      = "us" | "ms" | "s"   (latencies; a bare number is ms)
//!           | "%"                 (ratios, and the ratio of two metrics)
//! baseline  = "baseline" [ "*" number ]   (in place of number and unit)
//! ```
//!
//! A baseline gate compares with the same figure of a baseline run
//! (`gauntlet run --baseline DIR`): `p99(POST /api/orders) < baseline * 1.2`
//! holds when this run's p99 is under 1.2 times the baseline's.
//!
//! Examples: `p99(POST /api/orders) < 300ms`, `error_rate < 1%`,
//! `throughput(async) / throughput(sync) > 5`, `saga.compensated >= 1`,
//! `breaker.opened(orders->payments) >= 1`, `dlq.rate < 0.5%`,
//! `orders.lost == 0`.

mod evaluate;
pub mod registry;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use evaluate::{evaluate, evaluate_against, GateResult};
pub use registry::{ArgError, ArgKind, MetricDef, Quantity, METRICS};

/// A metric as a gate names it: `p99(POST /api/orders)`, `orders.lost`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRef {
    pub def: &'static MetricDef,
    /// The argument, trimmed; `None` covers the whole run.
    pub arg: Option<String>,
}

impl fmt::Display for MetricRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arg {
            Some(a) => write!(f, "{}({a})", self.def.name),
            None => f.write_str(self.def.name),
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }

    /// `actual op threshold`. Equality allows a relative rounding error
    /// of 1e-9, so a ratio computed in floating point can equal `0.3`.
    pub fn holds(self, actual: f64, threshold: f64) -> bool {
        let close = (actual - threshold).abs() <= 1e-9 * actual.abs().max(threshold.abs());
        match self {
            Self::Lt => actual < threshold,
            Self::Le => actual <= threshold || close,
            Self::Gt => actual > threshold,
            Self::Ge => actual >= threshold || close,
            Self::Eq => close,
            Self::Ne => !close,
        }
    }
}

/// A parsed gate. Serialises as the string it was written as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Gate {
    source: String,
    pub left: MetricRef,
    /// The divisor of a ratio gate (`a / b > 5`).
    pub right: Option<MetricRef>,
    pub op: CmpOp,
    /// In the left metric's unit (ms, fraction, count, per second), or a
    /// plain factor for a ratio gate. For a baseline gate, the factor the
    /// baseline's figure is multiplied by.
    pub threshold: f64,
    /// `Some(factor)` when the gate compares with a baseline run
    /// (`< baseline * factor`); `threshold` then holds the same factor.
    pub baseline: Option<f64>,
}

impl Gate {
    /// The gate as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The kind of number the gate compares: the metric's, or
    /// [`Quantity::Ratio`] for a ratio of two metrics.
    pub fn quantity(&self) -> Quantity {
        if self.right.is_some() {
            Quantity::Ratio
        } else {
            self.left.def.quantity
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl From<Gate> for String {
    fn from(g: Gate) -> String {
        g.source
    }
}

impl TryFrom<String> for Gate {
    type Error = GateError;
    fn try_from(s: String) -> Result<Self, GateError> {
        parse(&s)
    }
}

impl FromStr for Gate {
    type Err = GateError;
    fn from_str(s: &str) -> Result<Self, GateError> {
        parse(s)
    }
}

/// Why a gate string is not a gate, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {})", offset + 1)]
pub struct GateError {
    /// 0-based offset in characters into the gate string.
    pub offset: usize,
    pub message: String,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, GateError> {
    Err(GateError {
        offset,
        message: message.into(),
    })
}

/// Parses one gate.
pub fn parse(source: &str) -> Result<Gate, GateError> {
    let mut p = Parser {
        chars: source.chars().collect(),
        pos: 0,
    };
    p.skip_ws();
    let left = p.operand()?;
    p.skip_ws();
    let mut right = None;
    if p.peek() == Some('/') {
        let slash = p.pos;
        p.pos += 1;
        p.skip_ws();
        let r = p.operand()?;
        if r.def.quantity != left.def.quantity {
            return err(
                slash,
                format!(
                    "a ratio compares like with like: `{}` is {}, `{}` is {}",
                    left.def.name, left.def.quantity, r.def.name, r.def.quantity
                ),
            );
        }
        right = Some(r);
        p.skip_ws();
    }
    let op = p.comparison()?;
    p.skip_ws();
    if let Some(factor) = p.baseline()? {
        p.skip_ws();
        if p.peek().is_some() {
            let rest: String = p.chars[p.pos..].iter().collect();
            return err(
                p.pos,
                format!("unexpected `{rest}` after the baseline (write `baseline * 1.2`)"),
            );
        }
        return Ok(Gate {
            source: source.to_string(),
            left,
            right,
            op,
            threshold: factor,
            baseline: Some(factor),
        });
    }
    let number = p.number()?;
    while p.peek() == Some(' ') {
        p.pos += 1;
    }
    let unit_at = p.pos;
    let unit = p.take_while(|c| c.is_ascii_alphabetic() || c == '%');
    let quantity = if right.is_some() {
        Quantity::Ratio
    } else {
        left.def.quantity
    };
    let subject = match &right {
        Some(r) => format!("`{left} / {r}`, a ratio of two metrics,"),
        None => format!("`{}`, {},", left.def.name, left.def.quantity),
    };
    let factor = match (quantity, unit.as_str()) {
        (_, "") => 1.0,
        (Quantity::Millis, "us") => 0.001,
        (Quantity::Millis, "ms") => 1.0,
        (Quantity::Millis, "s") => 1000.0,
        (Quantity::Ratio, "%") => 0.01,
        (_, u) if ["us", "ms", "s", "%"].contains(&u) => {
            let fits = match quantity {
                Quantity::Millis => "us, ms or s (a bare number is ms)",
                Quantity::Ratio => "% (a bare number is a fraction: 0.01 = 1%)",
                Quantity::Count | Quantity::PerSecond => "no unit",
            };
            return err(
                unit_at,
                format!("unit `{u}` does not fit {subject} which takes {fits}"),
            );
        }
        (_, u) => {
            return err(
                unit_at,
                format!("unknown unit `{u}` (units: us, ms, s for latencies; % for ratios)"),
            )
        }
    };
    p.skip_ws();
    if p.peek().is_some() {
        let rest: String = p.chars[p.pos..].iter().collect();
        return err(
            p.pos,
            format!("unexpected `{rest}` after the threshold (one comparison per gate)"),
        );
    }
    Ok(Gate {
        source: source.to_string(),
        left,
        right,
        op,
        threshold: number * factor,
        baseline: None,
    })
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn operand(&mut self) -> Result<MetricRef, GateError> {
        let start = self.pos;
        let name = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if name.is_empty() {
            return err(
                start,
                "expected a metric name, e.g. `p99(POST /api/orders)` or `error_rate`",
            );
        }
        let Some(def) = registry::lookup(&name) else {
            let hint = registry::suggest(&name)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            return err(
                start,
                format!(
                    "unknown metric `{name}`{hint} (metrics: {})",
                    registry::names().join(", ")
                ),
            );
        };
        let mut probe = self.pos;
        while self.chars.get(probe).is_some_and(|c| c.is_whitespace()) {
            probe += 1;
        }
        if self.chars.get(probe) != Some(&'(') {
            return Ok(MetricRef { def, arg: None });
        }
        let open = probe;
        self.pos = probe + 1;
        let raw_start = self.pos;
        let raw = self.take_while(|c| c != ')');
        if self.peek() != Some(')') {
            return err(open, format!("`(` after `{name}` is never closed"));
        }
        self.pos += 1;
        let arg = raw.trim();
        let arg_at = raw_start + (raw.len() - raw.trim_start().len());
        if def.arg == ArgKind::None {
            return err(open, format!("`{name}` takes no argument"));
        }
        if arg.is_empty() {
            return err(
                open,
                format!("empty `()` after `{name}`: leave them out to cover the whole run"),
            );
        }
        registry::check_arg(def, arg).or_else(|m| err(arg_at, m.to_string()))?;
        Ok(MetricRef {
            def,
            arg: Some(arg.to_string()),
        })
    }

    /// `baseline` or `baseline * k`: the factor, or `None` when the
    /// threshold is a number.
    fn baseline(&mut self) -> Result<Option<f64>, GateError> {
        const WORD: &str = "baseline";
        let rest: String = self.chars[self.pos..].iter().take(WORD.len() + 1).collect();
        let after = rest.chars().nth(WORD.len());
        if !rest.starts_with(WORD) || after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(None);
        }
        self.pos += WORD.len();
        self.skip_ws();
        if self.peek() != Some('*') {
            return Ok(Some(1.0));
        }
        self.pos += 1;
        self.skip_ws();
        let at = self.pos;
        let k = self.number().or_else(|_| {
            err(
                at,
                "expected a factor after `baseline *`, e.g. `baseline * 1.2`",
            )
        })?;
        if k <= 0.0 {
            return err(
                at,
                "the baseline's factor must be above 0, e.g. `baseline * 1.2`",
            );
        }
        Ok(Some(k))
    }

    fn comparison(&mut self) -> Result<CmpOp, GateError> {
        let two: String = self.chars[self.pos..].iter().take(2).collect();
        let (op, len) = match two.as_str() {
            "<=" => (CmpOp::Le, 2),
            ">=" => (CmpOp::Ge, 2),
            "==" => (CmpOp::Eq, 2),
            "!=" => (CmpOp::Ne, 2),
            _ => match two.chars().next() {
                Some('<') => (CmpOp::Lt, 1),
                Some('>') => (CmpOp::Gt, 1),
                Some('=') => {
                    return err(self.pos, "`=` is not a comparison: write `==`");
                }
                _ => return err(self.pos, "expected a comparison: <, <=, >, >=, == or !="),
            },
        };
        self.pos += len;
        Ok(op)
    }

    fn number(&mut self) -> Result<f64, GateError> {
        let start = self.pos;
        let mut text = String::new();
        if self.peek() == Some('-') {
            text.push('-');
            self.pos += 1;
        }
        text.push_str(&self.take_while(|c| c.is_ascii_digit() || c == '.' || c == '_'));
        let text = text.replace('_', "");
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() && !text.ends_with('.') && !text.starts_with('.') => Ok(n),
            _ => {
                self.pos = start;
                err(
                    start,
                    "expected a number after the comparison, e.g. `300ms`, `1%` or `5`",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let g = parse("p99(POST /api/orders) < 300ms").unwrap();
        assert_eq!(g.left.def.name, "p99");
        assert_eq!(g.left.arg.as_deref(), Some("POST /api/orders"));
        assert_eq!(g.op, CmpOp::Lt);
        assert_eq!(g.threshold, 300.0);

        assert_eq!(parse("p95 <= 1.5s").unwrap().threshold, 1500.0);
        assert_eq!(parse("avg(sync) < 250us").unwrap().threshold, 0.25);
        assert_eq!(parse("max(async) < 40").unwrap().threshold, 40.0);
        assert!((parse("error_rate < 1%").unwrap().threshold - 0.01).abs() < 1e-12);
        assert_eq!(parse("error_rate < 0.01").unwrap().threshold, 0.01);

        let r = parse("throughput(async) / throughput(sync) > 5").unwrap();
        assert_eq!(r.right.as_ref().unwrap().to_string(), "throughput(sync)");
        assert_eq!(r.quantity(), Quantity::Ratio);
        assert_eq!(r.threshold, 5.0);

        let b = parse("breaker.opened(orders->payments) >= 1").unwrap();
        assert_eq!(b.left.arg.as_deref(), Some("orders->payments"));
        assert_eq!(b.op, CmpOp::Ge);
        assert_eq!(parse("orders.lost == 0").unwrap().op, CmpOp::Eq);
        assert_eq!(parse("saga.failed != 0").unwrap().op, CmpOp::Ne);
        assert_eq!(parse("  dlq.rate<0.5%  ").unwrap().threshold, 0.005);
        assert_eq!(parse("requests > 1_000").unwrap().threshold, 1000.0);
        assert_eq!(
            parse("p99 ( all ) < 10").unwrap().left.arg.as_deref(),
            Some("all")
        );
    }

    #[test]
    fn errors_point_into_the_string() {
        let e = parse("p98(POST /api/orders) < 300ms").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.starts_with("unknown metric `p98`"), "{e}");
        let e = parse("p99 < 3 or  eror_rate < 1%").unwrap_err();
        assert_eq!(e.offset, 8);
        let e = parse("eror_rate(sync) < 1%").unwrap_err();
        assert!(
            e.message.starts_with(
                "unknown metric `eror_rate`; did you mean `error_rate`? (metrics: p50, p90,"
            ),
            "{e}"
        );

        let e = parse("error_rate < 5ms").unwrap_err();
        assert_eq!(e.offset, 14);
        assert_eq!(
            e.message,
            "unit `ms` does not fit `error_rate`, a ratio, which takes % (a bare number is a fraction: 0.01 = 1%)"
        );

        let e = parse("breaker.opened(orders->paymnts) >= 1").unwrap_err();
        assert_eq!(e.offset, 15);

        let e = parse("p99(POST /api/orders) 300ms").unwrap_err();
        assert_eq!(e.offset, 22);
        assert_eq!(e.message, "expected a comparison: <, <=, >, >=, == or !=");

        let e = parse("orders.lost = 0").unwrap_err();
        assert_eq!(e.message, "`=` is not a comparison: write `==`");

        let e = parse("orders.lost == zero").unwrap_err();
        assert_eq!(e.offset, 15);

        let e = parse("p99(sync < 3").unwrap_err();
        assert_eq!(e.offset, 3);

        let e = parse("p99(sync) / error_rate > 2").unwrap_err();
        assert_eq!(e.offset, 10);

        let e = parse("orders.lost(x) == 0").unwrap_err();
        assert_eq!(e.message, "`orders.lost` takes no argument");

        let e = parse("p99 < 3 and p50 < 1").unwrap_err();
        assert_eq!(e.offset, 8);

        let e = parse("p99 < 3 parsecs").unwrap_err();
        assert!(e.message.starts_with("unknown unit `parsecs`"), "{e}");

        let e = parse("").unwrap_err();
        assert_eq!(e.offset, 0);
        assert_eq!(
            e.to_string(),
            "expected a metric name, e.g. `p99(POST /api/orders)` or `error_rate` (at character 1)"
        );
    }

    #[test]
    fn baseline_gates_parse_with_their_factor() {
        let g = parse("p99(POST /api/orders) < baseline * 1.2").unwrap();
        assert_eq!(g.baseline, Some(1.2));
        assert_eq!(g.left.arg.as_deref(), Some("POST /api/orders"));
        assert_eq!(
            parse("throughput(async) >= baseline").unwrap().baseline,
            Some(1.0)
        );
        assert_eq!(parse("p99 < 300ms").unwrap().baseline, None);
        let e = parse("p99 < baseline * fast").unwrap_err();
        assert_eq!(e.offset, 17);
        assert!(e.message.contains("baseline * 1.2"), "{e}");
        let e = parse("p99 < baseline * 1.2ms").unwrap_err();
        assert_eq!(e.offset, 20);
        let e = parse("p99 < baseline * 0").unwrap_err();
        assert!(e.message.contains("above 0"), "{e}");
        // A word that merely starts like it is not a baseline.
        assert!(parse("p99 < baselines").is_err());
    }

    #[test]
    fn serialises_as_its_source() {
        let g = parse("p99(sync) < 300ms").unwrap();
        assert_eq!(serde_json::to_string(&g).unwrap(), "\"p99(sync) < 300ms\"");
        let back: Gate = serde_json::from_str("\"p99(sync) < 300ms\"").unwrap();
        assert_eq!(back, g);
        assert!(serde_json::from_str::<Gate>("\"p98 < 3\"").is_err());
    }

    #[test]
    fn comparisons_hold_as_written() {
        assert!(CmpOp::Lt.holds(1.0, 2.0) && !CmpOp::Lt.holds(2.0, 2.0));
        assert!(CmpOp::Le.holds(2.0, 2.0) && !CmpOp::Le.holds(2.1, 2.0));
        assert!(CmpOp::Gt.holds(3.0, 2.0) && !CmpOp::Gt.holds(2.0, 2.0));
        assert!(CmpOp::Ge.holds(2.0, 2.0) && !CmpOp::Ge.holds(1.9, 2.0));
        assert!(CmpOp::Eq.holds(0.1 + 0.2, 0.3) && !CmpOp::Eq.holds(1.0, 0.0));
        assert!(CmpOp::Ne.holds(1.0, 0.0) && !CmpOp::Ne.holds(0.0, 0.0));
    }
}
