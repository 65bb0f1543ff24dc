//! The verdict of a Gauntlet run: the scenario file that says what to do
//! and what must hold, the gates and invariants that judge the run, and
//! the `report.json` and `junit.xml` that record it.
//!
//! A run goes: [`parse_scenario`] (every problem at once, each as
//! `file:line:column: message`) → load and faults (other crates) → a
//! [`History`] of client operations and the [`FinalState`] read from every
//! service → [`invariants::check_all`] → [`Metrics`] →
//! [`gates::evaluate`] → [`write_json`] and [`write_junit`].
//!
//! # Layout
//!
//! - `scenario.rs`: the scenario's typed TOML schema (serde,
//!   `deny_unknown_fields`, humantime durations) and its defaults;
//! - `validate/`: checking a scenario key by key, reporting every problem
//!   with its position: `tree.rs` keeps each key's span, `system.rs`,
//!   `load.rs`, `faults.rs` check their sections;
//! - `problem.rs`: a [`Problem`] and how byte offsets become lines and columns;
//! - `topology.rs`: the names of the system's services, links and flows;
//! - `gates/`: the gate grammar (`mod.rs`), the registry of metrics a gate
//!   may name (`registry.rs`), and evaluation (`evaluate.rs`);
//! - `metrics.rs`: the figures gates read;
//! - `history.rs`, `state.rs`: what the invariants read;
//! - `invariants/`: one checker per file;
//! - `report.rs`, `junit.rs`, `machine.rs`: the run's records.
//!
//! # Example
//!
//! ```
//! use gauntlet_reports::{evaluate, parse_scenario, Metrics};
//! use gauntlet_reports::metrics::Latency;
//!
//! let text = r#"
//! name = "breaker-opens"
//! gates = ["p99(POST /api/orders) < 300ms", "orders.lost == 0"]
//!
//! [load]
//! rate = [{ duration = "30s", target = 100 }]
//!
//! [[faults]]
//! at = "10s"
//! duration = "5s"
//! action = { type = "link_down", link = "orders->payments" }
//! "#;
//! let scenario = parse_scenario("breaker.toml", text).expect("a valid scenario");
//!
//! let mut metrics = Metrics::default();
//! metrics.latency.insert(
//!     "POST /api/orders".into(),
//!     Latency { count: 3000, p99: 212.0, ..Default::default() },
//! );
//! let results = evaluate(&scenario.gates, &metrics);
//! assert!(results[0].passed);
//! // No order counts were recorded: the gate fails, saying why.
//! assert!(!results[1].passed);
//! assert!(results[1].detail.starts_with("no order counts"));
//!
//! // A typo is caught before anything runs, with its position.
//! let problems = parse_scenario("typo.toml", "name = \"x\"\nsed = 1\n").unwrap_err();
//! let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
//! assert_eq!(
//!     problems,
//!     [
//!         "typo.toml:1:1: missing table `[load]` (the load to drive: `rate` stages or `users`)",
//!         "typo.toml:2:1: unknown key `sed` at the top level; did you mean `seed`?",
//!     ]
//! );
//! ```

pub mod compare;
pub mod gates;
pub mod history;
pub mod html;
pub mod invariants;
pub mod junit;
pub mod machine;
pub mod metrics;
mod problem;
pub mod report;
pub mod scenario;
pub mod state;
pub mod topology;
mod validate;

pub use gates::{evaluate, Gate, GateError, GateResult};
pub use history::{History, OpKind, Operation, Outcome};
pub use invariants::{check_all, InvariantResult, Offender};
pub use junit::{junit_xml, write_junit};
pub use machine::Machine;
pub use metrics::{MetricError, Metrics};
pub use problem::Problem;
pub use report::{read_json, write_json, Report, ReportError};
pub use scenario::Scenario;
pub use state::FinalState;
pub use validate::{load_scenario, parse_scenario, ScenarioError};
