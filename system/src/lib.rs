//! Gauntlet's reference system: an e-commerce order flow split into eight
//! services, each an axum app on its own loopback port with its own SQLite
//! database, joined by HTTP calls that all go through timeouts, retries and
//! circuit breakers.
//!
//! | service | owns |
//! |---|---|
//! | gateway | routing, JWT or API key, rate limits (per subject and global), the service registry |
//! | users | users |
//! | catalog | products, stock, per-order reservations |
//! | orders | orders and the saga that sees each through |
//! | payments | charges and refunds, one idempotency key per order |
//! | provider | a simulated external payment gateway that can fail, be slow, or lose replies |
//! | notifications | notifications sent, at most one per order and kind |
//! | analytics | order counts, success rate, revenue, top products |
//!
//! # Layout
//!
//! - `config.rs`: service and link names, the system's configuration and defaults
//! - `topology.rs`: bind every port, start every service, crash and restart one
//! - `service.rs`: what a service is given, and how it is served, stopped or crashed
//! - `server.rs`: `run(listener, app, shutdown)` on hyper, with per-connection abort
//! - `client.rs`: `ServiceClient`, the one way a service calls another
//! - `events.rs`: topics, consumer groups and outbox relays of the async flow
//! - `db.rs`: a service's SQLite database (WAL, one writer, embedded migrations)
//! - `telemetry.rs`: `/health`, `/info`, `/metrics`, `/circuit-breakers`
//! - `registry.rs`: instances and their probed health, for the gateway
//! - `error.rs`: the JSON error body every service answers with
//! - `integer.rs`: integers in request bodies as JSON Schema counts them (`52.0` is 52)
//! - `openapi.rs`: the gateway's public API as an OpenAPI 3.1 document (`system/openapi.json`)
//! - `services/`: one module per service; `orders/saga.rs` is the saga
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gauntlet_system::{Service, System, SystemOptions};
//! let mut system = System::start(SystemOptions::default()).await?;
//! println!("gateway at {}", system.url(Service::Gateway));
//! system.stop().await;
//! # Ok(()) }
//! ```

pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod integer;
pub mod openapi;
pub mod registry;
pub mod server;
pub mod service;
pub mod services;
pub mod telemetry;
pub mod topology;

pub use config::{Endpoints, ProviderFaults, Service, SystemConfig, LINKS};
pub use service::StartError;
pub use topology::{Bound, PauseError, System, SystemOptions};
