//! The events crate's integration tests, built as one test binary, `it`.
//! Each file directly under `tests/` would be a binary of its own, and
//! every one links the whole dependency tree: that link time was most of a
//! cold build. Its modules, one per former binary, and their helpers:
//!
//! - `broker`: the embedded broker: ports, advertised addresses, stopping;
//!   fetches answered when data arrives, and from inside a batch.
//! - `concurrency`: many keys at once, one key at a time, offsets committed
//!   in order.
//! - `dead_letters`: poison messages, permanent errors, retries and
//!   exhausted retries.
//! - `idempotence`: idempotent consumers over a real SQLite file.
//! - `outbox`: the outbox relay through broker outages and relay restarts.
//! - `pause`: pause and resume without leaving the group; lag throughout.
//! - `roundtrip`: produce and consume through a consumer group, offsets
//!   committed.
//! - `common`: a broker per test, unique names, recording handlers, polling
//!   with a deadline.
//!
//! Run one module with `cargo test --test it <module>::`.

mod broker;
mod common;
mod concurrency;
mod dead_letters;
mod idempotence;
mod outbox;
mod pause;
mod roundtrip;
