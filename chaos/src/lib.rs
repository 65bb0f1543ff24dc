//! Gauntlet's fault layer: a TCP proxy that injects network faults, driven
//! through the [Toxiproxy] HTTP API or in process.
//!
//! Every link of the system under test goes through a proxy. A proxy listens
//! on one address and forwards each connection to its upstream; *toxics*
//! added to it degrade the traffic: latency with jitter, bandwidth caps, slow
//! closes, timeouts, resets, slicing and data limits, per direction, in the
//! order added, each applying to a seeded share of the connections
//! (`toxicity`). Disabling a proxy is a link going down.
//!
//! The HTTP API matches Toxiproxy's endpoint for endpoint, so any Toxiproxy
//! client (the `toxiproxy_rust` crate included) can drive it, and the same
//! fault timeline can drive this proxy or a real Toxiproxy server.
//!
//! Behaviour follows Toxiproxy's, including its rule that adding or removing
//! a toxic on a live connection never loses or duplicates bytes. Where this
//! proxy differs, on purpose:
//! - a client's FIN half-closes the upstream connection instead of closing
//!   it, so the reply to a half-closed request still arrives;
//! - a toxic's toxicity is drawn once per connection and direction from the
//!   [`Chaos`] seed (Toxiproxy draws again from a global generator whenever a
//!   toxic restarts), so a seed reproduces which connections are affected;
//! - `reset_peer` keeps data that arrives while its reset is pending, so
//!   removing it in time loses nothing;
//! - a proxy created with an empty `listen` listens on `127.0.0.1:0`, not on
//!   every interface.
//!
//! # Layout
//!
//! - [`chaos`](Chaos): the proxy registry and every operation on it;
//! - `api`: the HTTP API ([`api()`], [`run_api`], [`run_standalone`]);
//! - `proxy`: one proxy: listener, accept loop, toxic list;
//! - `link`: one connection: two pumps (one per direction) moving bytes from
//!   socket to socket through their toxic chains;
//! - `chain`: one direction's chain of toxic stages, and how it follows
//!   changes to the toxic list without dropping data;
//! - [`toxics`]: one file per toxic, each a small stream transform;
//! - `model`: the proxy and toxic descriptions the API takes and returns;
//! - `metrics`: byte counters for `/metrics`;
//! - `seed`: deterministic seed derivation;
//! - `error`: [`ChaosError`] and its HTTP statuses.
//!
//! # Example
//!
//! ```
//! use gauntlet_chaos::{Chaos, Latency, ProxySpec, Stream, ToxicKind, ToxicSpec};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Runtime::new()?;
//! # runtime.block_on(async {
//! let chaos = Chaos::new(42);
//! // Port 0: the proxy picks a free port and reports it.
//! let proxy = chaos
//!     .create_proxy(ProxySpec::new("payments", "127.0.0.1:0", "127.0.0.1:9"))
//!     .await?;
//! assert!(proxy.listen_addr().is_some_and(|a| a.port() != 0));
//!
//! // 100 ms ± 10 ms on every reply.
//! let toxic = chaos.add_toxic(
//!     "payments",
//!     ToxicSpec::new(ToxicKind::Latency(Latency { latency: 100, jitter: 10 })),
//! )?;
//! assert_eq!(toxic.name, "latency_downstream");
//! assert_eq!(toxic.stream, Stream::Downstream);
//!
//! // Link down, then up again; reset removes every toxic.
//! chaos.set_enabled("payments", false).await?;
//! chaos.reset().await?;
//! assert!(chaos.get("payments")?.toxics.is_empty());
//! chaos.shutdown().await;
//! # Ok::<(), gauntlet_chaos::ChaosError>(())
//! # })?;
//! # Ok(())
//! # }
//! ```
//!
//! [Toxiproxy]: https://github.com/Shopify/toxiproxy

mod api;
mod chain;
mod chaos;
mod error;
mod link;
mod metrics;
mod model;
mod proxy;
mod seed;
pub mod toxics;

pub use api::{
    api, proxies_from_json, run_api, run_standalone, DEFAULT_API_ADDR, TOXIPROXY_API_VERSION,
};
pub use chaos::Chaos;
pub use error::ChaosError;
pub use model::{Proxy, ProxySpec, ProxyUpdate, Stream, Toxic, ToxicSpec, ToxicUpdate};
pub use toxics::{Bandwidth, Latency, LimitData, ResetPeer, Slicer, SlowClose, Timeout, ToxicKind};
