//! The words a scenario speaks, defined once for the whole workspace.
//!
//! A fault is written in a scenario file, checked by the reports crate,
//! scheduled by the fault timeline and carried out by the fault proxy or the
//! system; a service is named in a scenario, started by the system and
//! listed in a report. Each of those is one type here, used as it is by
//! every crate, so no crate translates another's copy of it.
//!
//! # Layout
//!
//! - [`service`]: the services of the reference system, by name.
//! - [`flow`]: the two order flows, sync (HTTP saga) and async (events).
//! - [`history`]: what a client operation did and how it ended.
//! - [`load`]: the journeys of a load, by weight.
//! - [`toxic`]: the Toxiproxy toxics and their attributes, and a toxic to add.
//! - [`provider`]: the payment provider's injected behaviour.
//! - [`fault`]: a timed fault of a scenario's timeline.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use gauntlet_model::{FaultAction, FaultStep, Latency, ToxicKind, ToxicSpec};
//!
//! let step = FaultStep {
//!     at: Duration::from_secs(10),
//!     duration: Some(Duration::from_secs(20)),
//!     action: FaultAction::Toxic {
//!         link: "payments->provider".into(),
//!         toxic: ToxicSpec::new(ToxicKind::Latency(Latency { latency: 200, jitter: 50 })),
//!     },
//! };
//! assert_eq!(step.action.describe(), "latency_downstream on payments->provider");
//! ```

pub mod fault;
pub mod flow;
pub mod history;
pub mod load;
pub mod provider;
pub mod service;
pub mod toxic;

pub use fault::{FaultAction, FaultStep};
pub use flow::Flow;
pub use history::{OpKind, Outcome};
pub use load::{Mix, DEFAULT_MIX};
pub use provider::{ProviderFaults, RateOutOfRange};
pub use service::{Service, UnknownService};
pub use toxic::{
    Bandwidth, Latency, LimitData, ResetPeer, Slicer, SlowClose, Stream, Timeout, ToxicKind,
    ToxicSpec, UnknownStream, TOXIC_ATTRIBUTES, TOXIC_TYPES,
};
