//! Every metric a gate may name, with the argument it takes and the kind of
//! number it is. A gate naming anything else is rejected when the scenario
//! is checked: a typo must never become a gate that silently passes.

use std::fmt;

use crate::invariants;
use crate::problem::nearest;
use crate::topology::{FLOWS, RESILIENT_LINKS};

/// What kind of number a metric is, which decides the units a threshold
/// may carry and how values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// A duration, in milliseconds (`us`, `ms`, `s` allowed; bare = ms).
    Millis,
    /// A share, as a fraction 0–1 (`%` allowed; bare = fraction).
    Ratio,
    /// A count (bare numbers only).
    Count,
    /// Operations per second (bare numbers only).
    PerSecond,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Millis => "a latency (ms)",
            Self::Ratio => "a ratio",
            Self::Count => "a count",
            Self::PerSecond => "a rate (per second)",
        })
    }
}

/// The argument a metric takes in parentheses. Every argument is
/// optional: left out, the metric covers the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// No parentheses allowed.
    None,
    /// An endpoint (`POST /api/orders`), a flow (`sync`, `async`) or `all`.
    Target,
    /// A link with a circuit breaker (`orders->payments`).
    Link,
    /// A Kafka topic (`orders`).
    Topic,
    /// A consumer group (`payments`).
    Group,
    /// An invariant's name (`no_double_charge`).
    Invariant,
}

/// One known metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub arg: ArgKind,
    pub quantity: Quantity,
    /// One line for documentation and error messages.
    pub doc: &'static str,
}

const fn m(name: &'static str, arg: ArgKind, quantity: Quantity, doc: &'static str) -> MetricDef {
    MetricDef {
        name,
        arg,
        quantity,
        doc,
    }
}

use ArgKind as A;
use Quantity as Q;

/// The registry.
pub const METRICS: &[MetricDef] = &[
    m("p50", A::Target, Q::Millis, "median client latency"),
    m(
        "p90",
        A::Target,
        Q::Millis,
        "90th percentile client latency",
    ),
    m(
        "p95",
        A::Target,
        Q::Millis,
        "95th percentile client latency",
    ),
    m(
        "p99",
        A::Target,
        Q::Millis,
        "99th percentile client latency",
    ),
    m(
        "p999",
        A::Target,
        Q::Millis,
        "99.9th percentile client latency",
    ),
    m("min", A::Target, Q::Millis, "fastest client operation"),
    m("max", A::Target, Q::Millis, "slowest client operation"),
    m("avg", A::Target, Q::Millis, "mean client latency"),
    m("requests", A::Target, Q::Count, "client operations"),
    m(
        "errors",
        A::Target,
        Q::Count,
        "client operations failed or unknown",
    ),
    m(
        "error_rate",
        A::Target,
        Q::Ratio,
        "(failed + unknown) / operations let in (all but 401s and 429s)",
    ),
    m(
        "unknown_rate",
        A::Target,
        Q::Ratio,
        "unknown outcomes (timeouts) / operations let in",
    ),
    m(
        "rejected",
        A::Target,
        Q::Count,
        "client operations the gateway refused: 401 + 429",
    ),
    m(
        "unauthorized",
        A::Target,
        Q::Count,
        "client operations answered 401 (no token, or a refused one)",
    ),
    m(
        "rate_limited",
        A::Target,
        Q::Count,
        "client operations answered 429 (over a rate limit)",
    ),
    m(
        "throughput",
        A::Target,
        Q::PerSecond,
        "operations acknowledged per second",
    ),
    m(
        "saga.completed",
        A::None,
        Q::Count,
        "sagas that confirmed their order",
    ),
    m(
        "saga.compensated",
        A::None,
        Q::Count,
        "sagas that undid steps and cancelled",
    ),
    m(
        "saga.failed",
        A::None,
        Q::Count,
        "sagas cancelled with nothing to undo",
    ),
    m(
        "breaker.opened",
        A::Link,
        Q::Count,
        "times a link's breaker went OPEN",
    ),
    m("retries", A::Link, Q::Count, "retried attempts on a link"),
    m("dlq.count", A::Topic, Q::Count, "events dead-lettered"),
    m(
        "dlq.rate",
        A::Topic,
        Q::Ratio,
        "events dead-lettered / produced",
    ),
    m(
        "lag.max",
        A::Group,
        Q::Count,
        "largest consumer lag seen, in messages",
    ),
    m(
        "lag.final",
        A::Group,
        Q::Count,
        "consumer lag after quiescing, in messages",
    ),
    m(
        "orders.placed",
        A::None,
        Q::Count,
        "place_order operations sent",
    ),
    m(
        "orders.acknowledged",
        A::None,
        Q::Count,
        "place_order operations answered OK",
    ),
    m(
        "orders.confirmed",
        A::None,
        Q::Count,
        "orders CONFIRMED on the server",
    ),
    m(
        "orders.cancelled",
        A::None,
        Q::Count,
        "orders CANCELLED on the server",
    ),
    m(
        "orders.pending",
        A::None,
        Q::Count,
        "orders not terminal after quiescing",
    ),
    m(
        "orders.lost",
        A::None,
        Q::Count,
        "acknowledged orders missing on the server",
    ),
    m(
        "invariants.violations",
        A::Invariant,
        Q::Count,
        "invariant violations",
    ),
];

/// The metric of that name.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|d| d.name == name)
}

/// Every metric name, in registry order.
pub fn names() -> Vec<&'static str> {
    METRICS.iter().map(|d| d.name).collect()
}

/// The name nearest to a misspelt one.
pub fn suggest(name: &str) -> Option<&'static str> {
    nearest(name, &names())
}

/// HTTP methods an endpoint target may start with.
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Why a metric's argument is not one it takes; each says what was
/// expected. The gate parser reports it at the argument's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// The metric takes no parentheses at all.
    #[error("`{metric}` takes no argument")]
    NoArgument { metric: &'static str },
    /// A target must be an endpoint, a flow or `all`.
    #[error(
        "`{arg}` is not an endpoint (`METHOD /path`, e.g. `POST /api/orders`), a flow ({}) or `all`",
        FLOWS.join(", ")
    )]
    NotATarget { arg: String },
    /// Not a link with a breaker; `suggestion` is the nearest one, if any.
    #[error(
        "unknown link `{arg}`{} (links with a breaker: {})",
        did_you_mean(.suggestion),
        RESILIENT_LINKS.join(", ")
    )]
    UnknownLink {
        arg: String,
        suggestion: Option<&'static str>,
    },
    /// Topic and consumer group names have no spaces; `what` says which.
    #[error("`{arg}` is not a {what} name (no spaces)")]
    NotAName { arg: String, what: &'static str },
    /// Not an invariant's name; `suggestion` is the nearest one, if any.
    #[error(
        "unknown invariant `{arg}`{} (invariants: {})",
        did_you_mean(.suggestion),
        invariants::NAMES.join(", ")
    )]
    UnknownInvariant {
        arg: String,
        suggestion: Option<&'static str>,
    },
}

/// The "did you mean" hint, or nothing without a suggestion. By reference:
/// that is how thiserror passes a field to a format argument.
fn did_you_mean(suggestion: &Option<&str>) -> String {
    suggestion
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default()
}

/// Checks a metric's argument; the error says what was expected.
pub fn check_arg(def: &MetricDef, arg: &str) -> Result<(), ArgError> {
    match def.arg {
        ArgKind::None => Err(ArgError::NoArgument { metric: def.name }),
        ArgKind::Target => {
            if arg == "all" || FLOWS.contains(&arg) {
                return Ok(());
            }
            let endpoint = arg.split_once(' ').filter(|(method, path)| {
                METHODS.contains(method)
                    && path.starts_with('/')
                    && !path.contains(char::is_whitespace)
            });
            if endpoint.is_some() {
                Ok(())
            } else {
                Err(ArgError::NotATarget {
                    arg: arg.to_string(),
                })
            }
        }
        ArgKind::Link => {
            if RESILIENT_LINKS.contains(&arg) {
                Ok(())
            } else {
                Err(ArgError::UnknownLink {
                    arg: arg.to_string(),
                    suggestion: nearest(arg, &RESILIENT_LINKS),
                })
            }
        }
        ArgKind::Topic | ArgKind::Group => {
            if arg.contains(char::is_whitespace) {
                let what = if def.arg == ArgKind::Topic {
                    "topic"
                } else {
                    "consumer group"
                };
                Err(ArgError::NotAName {
                    arg: arg.to_string(),
                    what,
                })
            } else {
                Ok(())
            }
        }
        ArgKind::Invariant => {
            if invariants::NAMES.contains(&arg) {
                Ok(())
            } else {
                Err(ArgError::UnknownInvariant {
                    arg: arg.to_string(),
                    suggestion: nearest(arg, &invariants::NAMES),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut n = names();
        n.sort_unstable();
        n.dedup();
        assert_eq!(n.len(), METRICS.len());
    }

    #[test]
    fn arguments_are_checked_by_kind() {
        let p99 = lookup("p99").unwrap();
        assert!(check_arg(p99, "POST /api/orders").is_ok());
        assert!(check_arg(p99, "async").is_ok());
        assert!(check_arg(p99, "all").is_ok());
        assert!(check_arg(p99, "post /api/orders").is_err());
        assert!(check_arg(p99, "POST api").is_err());
        let opened = lookup("breaker.opened").unwrap();
        assert!(check_arg(opened, "orders->payments").is_ok());
        let e = check_arg(opened, "orders->paymnts").unwrap_err();
        assert!(
            e.to_string().contains("did you mean `orders->payments`?"),
            "{e}"
        );
        assert!(check_arg(lookup("orders.lost").unwrap(), "x").is_err());
        assert!(check_arg(lookup("invariants.violations").unwrap(), "no_double_charge").is_ok());
    }
}
