//! The load generator's integration tests, built as one test binary, `it`.
//! Each file directly under `tests/` would be a binary of its own, and
//! every one links the whole dependency tree: that link time was most of a
//! cold build. Its modules, one per former binary, and their helpers:
//!
//! - `open_model`: the open model, black-box: what the target actually
//!   received.
//! - `outcomes`: how each kind of ending lands in the history.
//! - `runs`: whole runs: seeding, cancellation, progress, the closed model.
//! - `common`: an in-process stand-in for the gateway that records what it
//!   receives.
//!
//! Run one module with `cargo test --test it <module>::`.

mod common;
mod open_model;
mod outcomes;
mod runs;
