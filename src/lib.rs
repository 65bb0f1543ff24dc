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
//!
//! Programs that link it allocate with mimalloc (see `ALLOCATOR`).

pub mod run;
pub mod stack;
pub mod timeline;
pub mod traces;

/// The allocator of every program built on this library: `gauntlet` itself
/// and its benches. The process runs a broker, eight services, their
/// proxies and the load together, across two runtime threads and many
/// librdkafka ones, and allocates buffers of every size; with glibc's
/// malloc, at 1,200 async orders/s, 15% of all CPU samples were in the
/// allocator, much of it consolidating and unlinking free chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
