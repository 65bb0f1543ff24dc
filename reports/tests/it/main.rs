//! The reports crate's integration tests, built as one test binary, `it`.
//! Each file directly under `tests/` would be a binary of its own, and
//! every one links the whole dependency tree: that link time was most of a
//! cold build. Its modules, one per former binary:
//!
//! - `report`: report.json round-trips; junit.xml says exactly what the
//!   report says.
//! - `validate`: scenario validation end to end, and the examples in the
//!   scenario docs.
//! - `verdict`: from recorded JSON to invariants and gates.
//!
//! Run one module with `cargo test --test it <module>::`.

mod report;
mod validate;
mod verdict;
