//! The system's configuration: which services exist, which links join them,
//! and the settings of each. Defaults are documented `const`s.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use gauntlet_resilience::{BreakerConfig, ResilienceConfig, RetryConfig};
use serde::{Deserialize, Serialize};

/// The services of the reference system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    Gateway,
    Users,
    Catalog,
    Orders,
    Payments,
    Provider,
    Notifications,
    Analytics,
}

impl ServiceName {
    /// Every service, in start-up order (callees before callers).
    pub const ALL: [ServiceName; 8] = [
        ServiceName::Provider,
        ServiceName::Users,
        ServiceName::Catalog,
        ServiceName::Payments,
        ServiceName::Notifications,
        ServiceName::Analytics,
        ServiceName::Orders,
        ServiceName::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Users => "users",
            Self::Catalog => "catalog",
            Self::Orders => "orders",
            Self::Payments => "payments",
            Self::Provider => "provider",
            Self::Notifications => "notifications",
            Self::Analytics => "analytics",
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown service '{0}' (expected one of: gateway, users, catalog, orders, payments, provider, notifications, analytics)")]
pub struct UnknownService(pub String);

impl FromStr for ServiceName {
    type Err = UnknownService;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| UnknownService(s.to_string()))
    }
}

/// Every caller → callee link, each named `caller->callee`. The chaos layer
/// puts a fault proxy on each of them.
pub const LINKS: [(ServiceName, ServiceName); 9] = [
    (ServiceName::Gateway, ServiceName::Users),
    (ServiceName::Gateway, ServiceName::Catalog),
    (ServiceName::Gateway, ServiceName::Orders),
    (ServiceName::Orders, ServiceName::Users),
    (ServiceName::Orders, ServiceName::Catalog),
    (ServiceName::Orders, ServiceName::Payments),
    (ServiceName::Orders, ServiceName::Notifications),
    (ServiceName::Orders, ServiceName::Analytics),
    (ServiceName::Payments, ServiceName::Provider),
];

pub fn link_name(from: ServiceName, to: ServiceName) -> String {
    format!("{from}->{to}")
}

/// Where each service can be reached, and where each caller reaches each
/// callee (a link's URL differs from the service's own when a proxy sits
/// between them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Endpoints {
    /// The service's own listening URL, e.g. `http://127.0.0.1:40123`.
    pub services: BTreeMap<ServiceName, String>,
    /// Overrides per link name (`orders->payments`).
    pub links: BTreeMap<String, String>,
    /// Kafka bootstrap servers as clients must use them (the `kafka`
    /// proxy's address when one sits in front of the broker). Without
    /// them the asynchronous flow is unavailable.
    #[serde(default)]
    pub kafka: Option<String>,
}

impl Endpoints {
    /// The URL `from` uses to call `to`.
    pub fn url(&self, from: ServiceName, to: ServiceName) -> Option<String> {
        self.links
            .get(&link_name(from, to))
            .or_else(|| self.services.get(&to))
            .cloned()
    }
}

/// The default per-attempt timeout of an inter-service call: long enough for
/// a loaded SQLite write, short enough that a hung callee is noticed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// gateway → orders carries a whole synchronous saga (several calls, each
/// with its own retries), so it waits much longer than one hop.
pub const GATEWAY_ORDERS_TIMEOUT: Duration = Duration::from_secs(30);
/// Notifications and analytics are best-effort side effects of a saga: a
/// slow one must not hold the order up.
pub const SIDE_EFFECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The resilience settings a link gets when the configuration names none.
pub fn default_resilience(link: &str) -> ResilienceConfig {
    let base = ResilienceConfig {
        timeout: DEFAULT_TIMEOUT,
        retry: RetryConfig::default(),
        breaker: BreakerConfig::default(),
    };
    match link {
        "gateway->orders" => ResilienceConfig {
            timeout: GATEWAY_ORDERS_TIMEOUT,
            ..base
        },
        "orders->notifications" | "orders->analytics" => ResilienceConfig {
            timeout: SIDE_EFFECT_TIMEOUT,
            retry: RetryConfig {
                max_attempts: 2,
                ..RetryConfig::default()
            },
            ..base
        },
        _ => base,
    }
}

/// The provider's injected behaviour. All rates are probabilities in [0, 1].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderFaults {
    /// Requests answered `503 provider unavailable` without charging.
    pub failure_rate: f64,
    /// Charges declined (`402`): a business failure, not an outage.
    pub decline_rate: f64,
    /// Fixed delay before answering, in milliseconds.
    pub latency_ms: u64,
    /// Uniform jitter added to the delay, ± this many milliseconds.
    pub jitter_ms: u64,
    /// Charges carried out whose reply is then lost: the connection is
    /// dropped without an answer. Applies when a charge is first made, never
    /// to a replay of an idempotency key already charged.
    pub lost_reply_rate: f64,
}

impl ProviderFaults {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("failure_rate", self.failure_rate),
            ("decline_rate", self.decline_rate),
            ("lost_reply_rate", self.lost_reply_rate),
        ] {
            if !(0.0..=1.0).contains(&v) || v.is_nan() {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        Ok(())
    }
}

/// The gateway's edge policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// When set, every `/api/*` request needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// When set, `/api/*` admits this many requests per second (token
    /// bucket, burst of one second's worth) and answers 429 beyond.
    pub rate_limit_per_sec: Option<u32>,
}

/// How often the registry checks every instance's `/health`.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// How often orders looks for sagas left unfinished (after a crash, or a
/// compensation that could not complete in the request's time).
pub const DEFAULT_SAGA_RECOVERY_INTERVAL: Duration = Duration::from_millis(500);

/// The whole system's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemConfig {
    /// Seeds every random choice (backoff jitter, provider faults).
    pub seed: u64,
    /// Resilience settings per link name; links not named get
    /// [`default_resilience`].
    pub links: BTreeMap<String, ResilienceConfig>,
    pub provider: ProviderFaults,
    pub gateway: GatewayConfig,
    pub events: crate::events::EventsConfig,
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub saga_recovery_interval: Duration,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            links: BTreeMap::new(),
            provider: ProviderFaults::default(),
            gateway: GatewayConfig::default(),
            events: crate::events::EventsConfig::default(),
            health_interval: DEFAULT_HEALTH_INTERVAL,
            saga_recovery_interval: DEFAULT_SAGA_RECOVERY_INTERVAL,
        }
    }
}

impl SystemConfig {
    pub fn resilience(&self, link: &str) -> ResilienceConfig {
        self.links
            .get(link)
            .cloned()
            .unwrap_or_else(|| default_resilience(link))
    }

    /// A seed for one link's randomness, derived from the system seed so
    /// links do not share a sequence.
    pub fn seed_for(&self, what: &str) -> u64 {
        // FNV-1a over the name, mixed with the seed: stable across runs and
        // platforms, unlike std's RandomState.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for b in what.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}
