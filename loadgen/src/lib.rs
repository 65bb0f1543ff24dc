//! Load generation for Gauntlet: goose users driving the gateway's user
//! journeys at a target arrival rate (open model) or as a fixed set of
//! users (closed model), with latency recorded in HdrHistogram at
//! microsecond resolution from each request's *intended* send time, and
//! every request kept in a Jepsen-style history (ok / fail / unknown).
//!
//! goose has no arrival-rate mode, so the open model is built on it: goose
//! starts a pool of users, each running one long transaction that takes
//! the next arrival slot from a shared schedule (one atomic counter; slot
//! `k` is due where the integral of the ramped rate reaches `k`), sleeps
//! until it is due and runs that arrival's journey. When every user is
//! busy the next slot is taken late, and its latency still counts from
//! when it was due: a stalled system shows as latency, as in wrk2, instead
//! of as fewer requests (coordinated omission). The closed model is
//! goose's own: its users, started at its increase rate, looping journeys.
//!
//! goose's own per-request metrics are off (they time from the actual send
//! and cost a channel send per request); each user records into a log of
//! its own. By default each user sends on an HTTP/1.1 connection of its
//! own ([`HttpClient::Direct`]), which sustains well over the rate the goose
//! user's pooled reqwest client does ([`HttpClient::Goose`], also the one
//! for `https://`) on a loopback endpoint: the `max_rate` bench measures
//! both next to wrk.
//!
//! # Layout
//!
//! - `run`: [`run_load`]: the set-up, goose's users under a progress
//!   loop, the result merged from the users' logs.
//! - [`config`]: [`LoadConfig`], the model (open stages or closed users),
//!   the journey mix; every bad key reported at once.
//! - [`schedule`]: the open model's arrival times from linear ramps.
//! - `pacer`: the shared slot clock the open model's users pace on;
//!   `wake`: waking them on time, below tokio's millisecond tick.
//! - `attack`: the goose side: one scenario, users, no goose reports.
//! - `driver`: what each goose user runs (open or closed loop).
//! - [`journey`]: journey kinds and their seeded choices ([`Planner`]).
//! - `runner`: a journey's requests; `http`: one request on either
//!   transport, and how its ending reads (ok / fail / unknown); `h1`: the
//!   direct transport's HTTP/1.1 exchange; `watch`:
//!   the timeout and cancellation every request races, kept per user.
//! - `setup`: the catalog and customers read or made before the load.
//! - `token`: the JWT each user signs for itself when the gateway wants one.
//! - [`history`]: [`Operation`], the client history.
//! - `recorder`: per-user logs with no shared lock on the hot path.
//! - [`result`]: [`LoadResult`], histograms overall and per second.
//! - [`progress`]: the once-a-second [`Progress`] snapshot.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use gauntlet_loadgen::{run_load, LoadConfig, Model, Stage};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), gauntlet_loadgen::LoadError> {
//! let config = LoadConfig::new(
//!     "http://127.0.0.1:8080",
//!     Model::Open {
//!         start_rate: 0.0,
//!         stages: vec![
//!             Stage { duration: Duration::from_secs(10), target_rate: 200.0 },
//!             Stage { duration: Duration::from_secs(60), target_rate: 200.0 },
//!         ],
//!         warmup_rate: None,
//!         max_users: None,
//!         expected_latency: Duration::from_millis(100),
//!     },
//! );
//! let result = run_load(config, CancellationToken::new(), |p| {
//!     println!("{:?} {:.0}/s p99 {:?} ms", p.phase, p.current_rate, p.p99_ms)
//! })
//! .await?;
//! let orders = &result.endpoints["POST /api/orders"];
//! println!(
//!     "orders: {} ok, p99 {} us",
//!     orders.counts.ok,
//!     orders.latency.value_at_quantile(0.99)
//! );
//! # Ok(())
//! # }
//! ```

mod attack;
pub mod config;
mod driver;
mod error;
mod h1;
pub mod history;
mod http;
pub mod journey;
mod pacer;
pub mod progress;
mod recorder;
pub mod result;
mod run;
mod runner;
pub mod schedule;
mod setup;
mod token;
mod wake;
mod watch;

pub use attack::USER_AGENT;
pub use config::{Flow, HttpClient, LoadConfig, Mix, Model, Poll, Stage, TokenConfig};
pub use error::LoadError;
pub use history::{OpKind, Operation, Outcome};
pub use journey::{JourneyKind, JourneyPlan, Planner};
pub use progress::{Phase, Progress};
pub use result::{Counts, EndpointResult, LoadResult, Window};
pub use token::TokenError;

pub use run::{run_load, run_load_observed, LoadStart, PROGRESS_EVERY};
