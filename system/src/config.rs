//! The system's configuration: which services exist, which links join them,
//! and the settings of each. Defaults are documented `const`s.

use std::collections::BTreeMap;
use std::time::Duration;

use gauntlet_resilience::{BreakerConfig, ResilienceConfig, RetryConfig};
use serde::{Deserialize, Serialize};

/// The services of the reference system: the one type every crate names
/// them by.
pub use gauntlet_model::{Service, UnknownService};

/// Every caller → callee link, each named `caller->callee`. The chaos layer
/// puts a fault proxy on each of them.
pub const LINKS: [(Service, Service); 9] = [
    (Service::Gateway, Service::Users),
    (Service::Gateway, Service::Catalog),
    (Service::Gateway, Service::Orders),
    (Service::Orders, Service::Users),
    (Service::Orders, Service::Catalog),
    (Service::Orders, Service::Payments),
    (Service::Orders, Service::Notifications),
    (Service::Orders, Service::Analytics),
    (Service::Payments, Service::Provider),
];

pub fn link_name(from: Service, to: Service) -> String {
    format!("{from}->{to}")
}

/// Where each service can be reached, and where each caller reaches each
/// callee (a link's URL differs from the service's own when a proxy sits
/// between them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Endpoints {
    /// The service's own listening URL, e.g. `http://127.0.0.1:40123`.
    pub services: BTreeMap<Service, String>,
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
    pub fn url(&self, from: Service, to: Service) -> Option<String> {
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

/// The provider's injected behaviour (its `PUT /admin/faults` body).
pub use gauntlet_model::ProviderFaults;

/// The gateway's edge policies: who may call `/api/*`, and how often.
/// All off by default: a zero configuration is an open gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// When set, `Authorization: Bearer <key>` with exactly this key is
    /// let in (alongside JWTs, when [`GatewayConfig::auth`] is set too).
    pub api_key: Option<String>,
    /// When set, every `/api/*` request needs a valid JWT (or the API key).
    pub auth: Option<AuthConfig>,
    /// Request rate limits, per subject and overall.
    pub limits: LimitsConfig,
}

impl GatewayConfig {
    /// Every problem with the edge settings, each naming its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if let Some(key) = &self.api_key {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
                errors.push("api_key: must be visible ASCII with no spaces".to_string());
            }
        }
        if let Some(auth) = &self.auth {
            errors.extend(auth.problems().into_iter().map(|e| format!("auth.{e}")));
        }
        errors.extend(
            self.limits
                .problems()
                .into_iter()
                .map(|e| format!("limits.{e}")),
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// The clock skew a token's `exp` and `nbf` are given by default: the
/// harness signs and checks on one clock, but a token minted by another
/// machine may be a little ahead or behind.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The shortest HS256 secret taken, in bytes: RFC 7518 (3.2) wants a key
/// at least as long as the hash's output, 256 bits.
pub const MIN_HS256_SECRET: usize = 32;

fn default_leeway() -> Duration {
    DEFAULT_LEEWAY
}

/// JWT checking at the gateway: HS256 with a shared secret, RS256 with the
/// RSA keys of a JWKS file, or both (a token's `alg` header picks). Every
/// token needs `sub` (the subject the per-subject limit counts) and `exp`;
/// `nbf` is checked when present; `iss` and `aud` are required and checked
/// when configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The shared secret HS256 tokens are signed with (at least
    /// [`MIN_HS256_SECRET`] bytes).
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// A JWKS file (`{"keys": [...]}`) whose RSA keys RS256 tokens are
    /// checked against, read once at start; a token's `kid` picks the key
    /// (a set of one key takes tokens without `kid`).
    #[serde(default)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// The `iss` every token must carry, when set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The `aud` every token must carry (or include), when set.
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, as "30s" (whole seconds).
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
}

impl AuthConfig {
    /// HS256 with `secret`, nothing else set.
    pub fn hs256(secret: impl Into<String>) -> Self {
        AuthConfig {
            hs256_secret: Some(secret.into()),
            jwks_file: None,
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY,
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.hs256_secret.is_none() && self.jwks_file.is_none() {
            errors.push(
                "hs256_secret or jwks_file: set at least one, or tokens cannot be checked"
                    .to_string(),
            );
        }
        if let Some(secret) = &self.hs256_secret {
            if secret.len() < MIN_HS256_SECRET {
                errors.push(format!(
                    "hs256_secret: {} bytes is too short; HS256 wants at least {MIN_HS256_SECRET}",
                    secret.len()
                ));
            }
        }
        if self
            .jwks_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            errors.push("jwks_file: must be a path to a JWKS JSON file".to_string());
        }
        for (key, value) in [("issuer", &self.issuer), ("audience", &self.audience)] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                errors.push(format!(
                    "{key}: must not be empty (leave it out to not check it)"
                ));
            }
        }
        if self.leeway.subsec_nanos() != 0 {
            errors.push(format!(
                "leeway: {} is not whole seconds (token times are in seconds)",
                humantime::format_duration(self.leeway)
            ));
        }
        errors
    }
}

/// Rate limits on `/api/*`, each off when unset. A subject is the verified
/// token's `sub` when a JWT came with the request, else the client's IP
/// address. Over a limit, the answer is 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per second each subject is let through, sustained.
    pub per_subject_per_sec: Option<u32>,
    /// Requests a subject may send at once after being idle; defaults to
    /// one second's worth (`per_subject_per_sec`).
    pub per_subject_burst: Option<u32>,
    /// Requests per second the gateway lets through from everyone together.
    pub global_per_sec: Option<u32>,
    /// The global burst; defaults to one second's worth (`global_per_sec`).
    pub global_burst: Option<u32>,
}

impl LimitsConfig {
    fn problems(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for (scope, rate, burst) in [
            (
                "per_subject",
                self.per_subject_per_sec,
                self.per_subject_burst,
            ),
            ("global", self.global_per_sec, self.global_burst),
        ] {
            if rate == Some(0) {
                errors.push(format!(
                    "{scope}_per_sec: must be at least 1 (leave it out for no limit)"
                ));
            }
            match (rate, burst) {
                (_, Some(0)) => errors.push(format!("{scope}_burst: must be at least 1")),
                (None, Some(_)) => errors.push(format!(
                    "{scope}_burst: set {scope}_per_sec too; a burst alone is no limit"
                )),
                _ => {}
            }
        }
        errors
    }
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
