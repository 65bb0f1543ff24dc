//! The names a scenario may use for the reference system's parts: its
//! services, the links between them (each behind its own fault proxy) and
//! its order flows. Kept here as plain strings so that checking a scenario
//! needs none of the system's code.

use std::fmt;

use serde::{Deserialize, Serialize};

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

/// The services of the reference system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Gateway,
    Users,
    Catalog,
    Orders,
    Payments,
    Provider,
    Notifications,
    Analytics,
}

impl Service {
    pub const ALL: [Service; 8] = [
        Service::Gateway,
        Service::Users,
        Service::Catalog,
        Service::Orders,
        Service::Payments,
        Service::Provider,
        Service::Notifications,
        Service::Analytics,
    ];

    pub const NAMES: [&'static str; 8] = [
        "gateway",
        "users",
        "catalog",
        "orders",
        "payments",
        "provider",
        "notifications",
        "analytics",
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_round_trip() {
        for s in Service::ALL {
            assert_eq!(Service::from_name(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
        }
        assert_eq!(Service::from_name("order"), None);
    }

    #[test]
    fn every_resilient_link_is_a_link() {
        for l in RESILIENT_LINKS {
            assert!(LINKS.contains(&l), "{l}");
        }
    }
}
