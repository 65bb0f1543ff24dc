//! The system under test, however it runs: started here on fresh state
//! (every service, a fault proxy on every link, an embedded broker for
//! the async flow), or attached to where it runs elsewhere and given the
//! scenario's provider behaviour through the provider's own API.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gauntlet_reports::scenario::{External, Scenario};
use gauntlet_system::{Service, SystemConfig, SystemOptions};

use super::collect::Probe;
use super::leg::LegError;
use crate::stack::{Kafka, Stack, StackOptions};
use crate::timeline::{Network, Services};

/// The system under test, however it runs.
pub(super) struct Sut {
    /// Where the load goes.
    pub(super) gateway_url: String,
    /// Each service's own address, to read it back.
    pub(super) probe: Probe,
    pub(super) bootstrap: Option<String>,
    pub(super) network: Network,
    pub(super) services: Services,
    /// Mixed into the load's keys and e-mails, for a system that keeps its
    /// state between runs.
    pub(super) run_tag: Option<String>,
}

/// Starts the system in this process on fresh state, its databases under
/// `data_dir`; with `uses_events`, an embedded broker too.
pub(super) async fn start(
    data_dir: PathBuf,
    config: SystemConfig,
    uses_events: bool,
    http: &reqwest::Client,
) -> Result<(Sut, Stack), LegError> {
    let stack = Stack::start(StackOptions {
        system: SystemOptions {
            data_dir: Some(data_dir),
            config,
            ..SystemOptions::default()
        },
        gateway_listen: None,
        api_listen: None,
        kafka: if uses_events {
            Kafka::Embedded
        } else {
            Kafka::None
        },
    })
    .await
    .map_err(|e| LegError::Start(e.to_string()))?;
    // Each in a statement of its own: a lock guard taken inside the
    // struct literal would live to its end, and `kafka()` takes the
    // same lock.
    let urls = stack.system.lock().await.endpoints().services.clone();
    let bootstrap = stack.kafka().await;
    let sut = Sut {
        gateway_url: stack.gateway_url().to_string(),
        probe: Probe {
            urls,
            http: http.clone(),
        },
        bootstrap,
        network: Network::Embedded(stack.chaos.clone()),
        services: Services::Embedded(stack.system.clone()),
        run_tag: None,
    };
    Ok((sut, stack))
}

/// A system running elsewhere: reached through its own endpoints, its
/// state kept between runs (so this run's keys carry a tag of their own).
pub(super) fn attach(external: &External, flow_name: &str, http: &reqwest::Client) -> Sut {
    let urls: BTreeMap<Service, String> = external.services.clone();
    Sut {
        gateway_url: external.gateway.trim_end_matches('/').to_string(),
        probe: Probe {
            urls: urls.clone(),
            http: http.clone(),
        },
        bootstrap: external.kafka.clone(),
        network: match &external.toxiproxy {
            Some(addr) => Network::Toxiproxy(addr.clone()),
            None => Network::None,
        },
        services: Services::External {
            provider: urls.get(&Service::Provider).cloned(),
            kafka: external.kafka.clone(),
        },
        run_tag: Some(format!("{}-{flow_name}", run_tag())),
    }
}

/// A tag unique to this moment: the UTC time to the millisecond.
fn run_tag() -> String {
    format!("{}", gauntlet_system::db::now_ms())
}

/// Why the provider of a system running elsewhere did not take the
/// scenario's behaviour.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("setting the provider's behaviour: PUT {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("setting the provider's behaviour: PUT {url}: {status}")]
    Refused {
        url: String,
        status: reqwest::StatusCode,
    },
}

/// A system running elsewhere gets the scenario's provider behaviour
/// through the provider's own API (the embedded one is started with it).
pub(super) async fn set_provider(sut: &Sut, scenario: &Scenario) -> Result<(), ProviderError> {
    let Some(provider) = sut.probe.urls.get(&Service::Provider) else {
        return Ok(());
    };
    let faults = &scenario.system.provider;
    let url = format!("{}/admin/faults", provider.trim_end_matches('/'));
    let resp = sut
        .probe
        .http
        .put(&url)
        .json(faults)
        .send()
        .await
        .map_err(|source| ProviderError::Unreachable {
            url: url.clone(),
            source,
        })?;
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(ProviderError::Refused { url, status });
    }
    Ok(())
}
