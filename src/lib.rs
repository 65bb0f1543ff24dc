//! The Gauntlet harness: the reference system with a fault proxy on every
//! link ([`stack`]), and the fault timeline that drives them ([`timeline`]).
//! The `gauntlet` binary is a thin command line over this library.
//!
//! # Layout
//!
//! - `stack.rs`: bind every service, put a proxy on every link, start
//! - `timeline.rs`: timed faults, applied and undone, recorded
//! - `traces.rs`: the system's spans as OpenTelemetry spans, over OTLP
//! - `run/`: a scenario from start to verdict (`gauntlet run`)
//! - `cmd/`: the subcommands (`run`, `validate`, `serve`, `proxy`)

pub mod run;
pub mod stack;
pub mod timeline;
pub mod traces;
