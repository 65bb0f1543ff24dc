//! The service registry: every instance of every service, with the health
//! its periodic `/health` probe last saw. The gateway routes only to
//! instances the registry calls routable, and `/services/status` shows it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;

use crate::config::Service;
use crate::db::now_ms;

/// How long one health probe may take before it counts as a failure.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Consecutive failed probes before an instance stops receiving traffic:
/// one lost probe on a busy machine should not take a service out.
pub const FAILURE_THRESHOLD: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceHealth {
    /// Not probed yet: routable, as a freshly started instance should be.
    Unknown,
    Healthy,
    Degraded,
    Unhealthy,
    Unreachable,
}

#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub service: Service,
    pub url: String,
    pub health: InstanceHealth,
    pub routable: bool,
    pub consecutive_failures: u32,
    pub last_checked_ms: Option<i64>,
    pub probe_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Default)]
pub struct Registry {
    instances: RwLock<BTreeMap<Service, Vec<Instance>>>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn register(&self, service: Service, url: impl Into<String>) {
        self.instances
            .write()
            .entry(service)
            .or_default()
            .push(Instance {
                service,
                url: url.into(),
                health: InstanceHealth::Unknown,
                routable: true,
                consecutive_failures: 0,
                last_checked_ms: None,
                probe_ms: None,
                detail: None,
            });
    }

    pub fn instances(&self) -> Vec<Instance> {
        self.instances.read().values().flatten().cloned().collect()
    }

    /// A routable instance's URL, if the service has one.
    pub fn pick(&self, service: Service) -> Option<String> {
        self.instances
            .read()
            .get(&service)?
            .iter()
            .find(|i| i.routable)
            .map(|i| i.url.clone())
    }

    /// Probes every instance once, concurrently.
    pub async fn check_all(&self, http: &reqwest::Client) {
        let targets: Vec<(Service, String)> = self
            .instances()
            .into_iter()
            .map(|i| (i.service, i.url))
            .collect();
        let probes = targets.into_iter().map(|(service, url)| async move {
            let started = Instant::now();
            let result = probe(http, &url).await;
            (service, url, started.elapsed(), result)
        });
        for (service, url, took, result) in futures::future::join_all(probes).await {
            let mut all = self.instances.write();
            let Some(inst) = all
                .get_mut(&service)
                .and_then(|v| v.iter_mut().find(|i| i.url == url))
            else {
                continue;
            };
            inst.last_checked_ms = Some(now_ms());
            inst.probe_ms = Some(took.as_secs_f64() * 1000.0);
            match result {
                Ok(health)
                    if matches!(health, InstanceHealth::Healthy | InstanceHealth::Degraded) =>
                {
                    inst.health = health;
                    inst.consecutive_failures = 0;
                    inst.detail = None;
                }
                Ok(health) => {
                    inst.health = health;
                    inst.consecutive_failures += 1;
                    inst.detail = None;
                }
                Err(detail) => {
                    inst.health = InstanceHealth::Unreachable;
                    inst.consecutive_failures += 1;
                    inst.detail = Some(detail.to_string());
                }
            }
            let routable = inst.consecutive_failures < FAILURE_THRESHOLD;
            if routable != inst.routable {
                tracing::info!(%service, %url, routable, health = ?inst.health, "registry: instance changed");
            }
            inst.routable = routable;
        }
    }

    /// Probes every `every` until dropped.
    pub async fn run(self: Arc<Self>, http: reqwest::Client, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check_all(&http).await;
        }
    }
}

/// Why a probe got no health from an instance: it counts as unreachable,
/// and the text is the instance's `detail` on `/services/status`.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    /// No response headers within the probe timeout.
    #[error("no answer within {within:?}")]
    NoAnswer { within: Duration },
    /// The request failed (refused, reset, not HTTP).
    #[error(transparent)]
    Request(reqwest::Error),
    /// The headers came, the body did not, within the probe timeout.
    #[error("health body timed out")]
    BodyTimedOut,
}

async fn probe(http: &reqwest::Client, url: &str) -> Result<InstanceHealth, ProbeError> {
    let resp = tokio::time::timeout(PROBE_TIMEOUT, http.get(format!("{url}/health")).send())
        .await
        .map_err(|_| ProbeError::NoAnswer {
            within: PROBE_TIMEOUT,
        })?
        .map_err(ProbeError::Request)?;
    let status = resp.status();
    let body: serde_json::Value = tokio::time::timeout(PROBE_TIMEOUT, resp.json())
        .await
        .map_err(|_| ProbeError::BodyTimedOut)?
        .unwrap_or_default();
    Ok(match body.get("status").and_then(|s| s.as_str()) {
        Some("healthy") => InstanceHealth::Healthy,
        Some("degraded") => InstanceHealth::Degraded,
        _ if status.is_success() => InstanceHealth::Healthy,
        _ => InstanceHealth::Unhealthy,
    })
}
