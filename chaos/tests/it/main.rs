//! The chaos proxy's integration tests, built as one test binary, `it`.
//! Each file directly under `tests/` would be a binary of its own, and
//! every one links the whole dependency tree: that link time was most of a
//! cold build. Its modules, one per former binary, and their helpers:
//!
//! - `api_oneshot`: the router without sockets.
//! - `api_wire`: the HTTP API over real HTTP, every answer pinned against
//!   Toxiproxy's.
//! - `client_compat`: the `toxiproxy_rust` client drives the API; every
//!   change shows on real traffic.
//! - `proxies`: proxy life cycle on real sockets; no data lost when toxics
//!   come and go.
//! - `toxics`: each toxic on real loopback sockets.
//! - `common`: loopback servers and helpers.
//!
//! Run one module with `cargo test --test it <module>::`.

mod api_oneshot;
mod api_wire;
mod client_compat;
mod common;
mod proxies;
mod toxics;
