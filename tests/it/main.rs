//! The harness's integration tests, built as one test binary, `it`. Each
//! file directly under `tests/` would be a binary of its own, and every one
//! links the whole dependency tree: that link time was most of a cold
//! build. Its modules, one per former binary, and their helpers:
//!
//! - `async_flow`: the asynchronous order flow on the embedded broker,
//!   through the stack `serve` starts.
//! - `cli`: the command line's contract for bad input; every shipped
//!   scenario is valid.
//! - `compose`: the compose stack's topology as separate processes
//!   (`serve --service` each, two payments, `proxy --config`), under
//!   compose-smoke; toxiproxy.json against the system's links.
//! - `edge`: the gateway as an edge: bad input with big bodies, over TCP.
//! - `external`: `run` attached to a system running elsewhere, twice on the
//!   same system.
//! - `faults`: faults on the running system, applied by the timeline.
//! - `report_pages`: a real run's report.html, redrawn by `report`, judged
//!   by `compare` and `run --baseline`.
//! - `traces`: one order, one trace: a sync order's spans across every
//!   hop, an async order's events in the trace that placed it.
//! - `common`: the stack every test starts, and the calls they all make on
//!   it.
//!
//! Run one module with `cargo test --test it <module>::`.

mod async_flow;
mod cli;
mod common;
mod compose;
mod edge;
mod external;
mod faults;
mod report_pages;
mod traces;
