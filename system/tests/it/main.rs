//! The reference system's integration tests, built as one test binary,
//! `it`. Each file directly under `tests/` would be a binary of its own,
//! and every one links the whole dependency tree: that link time was most
//! of a cold build. Its modules, one per former binary, and their helpers:
//!
//! - `breaker`: the circuit breaker as every service uses it, through
//!   `ServiceClient`.
//! - `oneshot`: every service's router in process (`tower`'s `oneshot`,
//!   no sockets): routing, validation and the JSON error shape, the happy
//!   paths, `/health` and `/info`, the gateway's key, limit and registry.
//! - `migrations`: the migrations that rebuild a table holding rows.
//! - `sync_saga`: the synchronous order flow, end to end on loopback.
//! - `common`: start the whole system on loopback, and talk to it.
//!
//! Run one module with `cargo test --test it <module>::`.

mod breaker;
mod common;
mod migrations;
mod oneshot;
mod sync_saga;
