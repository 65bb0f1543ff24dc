//! The names a scenario may use for the reference system's parts: its
//! services, the links between them (each behind its own fault proxy) and
//! its order flows. Kept here as plain strings so that checking a scenario
//! needs none of the system's code.

/// Every link a fault can target: client → gateway (`gateway`), each
/// `caller->callee` hop, and every client → Kafka broker (`kafka`).
pub const LINKS: [&str; 11] = [
    "gateway",
    "gateway->users",
    "gateway->catalog",
    "gateway->orders",
    "orders->users",
    "orders->catalog",
    "orders->payments",
    "orders->notifications",
    "orders->analytics",
    "payments->provider",
    "kafka",
];

/// The links that carry inter-service HTTP calls, hence have resilience
/// settings (timeout, retry, breaker) a scenario may override.
pub const RESILIENT_LINKS: [&str; 9] = [
    "gateway->users",
    "gateway->catalog",
    "gateway->orders",
    "orders->users",
    "orders->catalog",
    "orders->payments",
    "orders->notifications",
    "orders->analytics",
    "payments->provider",
];

/// The order flows: `sync` (orchestrated saga over HTTP) and `async`
/// (choreographed saga over Kafka events).
pub const FLOWS: [&str; 2] = ["sync", "async"];

/// The consumer groups, each named after the service that reads with it:
/// what a `pause_consumer` fault may name.
pub const CONSUMER_GROUPS: [&str; 5] = [
    "catalog",
    "payments",
    "orders",
    "notifications",
    "analytics",
];

/// The services, one type for every crate.
pub use gauntlet_model::Service;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resilient_link_is_a_link() {
        for l in RESILIENT_LINKS {
            assert!(LINKS.contains(&l), "{l}");
        }
    }
}
