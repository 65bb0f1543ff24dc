//! The services of the reference system, by the names scenarios, URLs,
//! consumer groups and reports use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A service of the reference system; serialised as its lowercase name.
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
    /// Every service, in start-up order: callees before callers, so each
    /// service finds its peers listening (the gateway last).
    pub const ALL: [Service; 8] = [
        Service::Provider,
        Service::Users,
        Service::Catalog,
        Service::Payments,
        Service::Notifications,
        Service::Analytics,
        Service::Orders,
        Service::Gateway,
    ];

    /// Every name, in the order messages list them.
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

    /// The service of that name, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the services.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service '{0}' (expected one of: gateway, users, catalog, orders, payments, provider, notifications, analytics)")]
pub struct UnknownService(pub String);

impl FromStr for Service {
    type Err = UnknownService;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| UnknownService(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_display_serde_and_parse() {
        for s in Service::ALL {
            assert_eq!(Service::from_name(s.as_str()), Some(s));
            assert_eq!(s.to_string().parse::<Service>(), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
        }
        assert_eq!(Service::from_name("order"), None);
        let e = "order".parse::<Service>().unwrap_err();
        assert!(e.to_string().starts_with("unknown service 'order'"), "{e}");
    }

    #[test]
    fn every_service_starts_once_and_the_gateway_last() {
        let mut names: Vec<&str> = Service::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.last(), Some(&"gateway"));
        assert_eq!(names[0], "provider");
        names.sort();
        let mut all = Service::NAMES.to_vec();
        all.sort();
        assert_eq!(names, all);
    }
}
