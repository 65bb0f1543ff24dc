//! The fault timeline: timed actions applied while the load runs, each
//! undone after its `duration` (or at the final heal), every application
//! and undo recorded with its time for the report.
//!
//! Network faults go to the embedded proxy, or to a real Toxiproxy server
//! (links through the `toxiproxy_rust` client, blocking, so run off the
//! async runtime; toxics through its HTTP API, see `toxiproxy`). Crashes
//! and provider behaviour act on the system directly.

use std::sync::Arc;
use std::time::Duration;

use gauntlet_chaos::Chaos;
use gauntlet_system::{ProviderFaults, Service, System};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The steps and actions are the scenario's own types: a scenario's
/// `[[faults]]` is handed to the timeline as it was read.
pub use gauntlet_model::{FaultAction, FaultStep, ToxicSpec};

/// Why a step could not be applied or undone. The timeline records it
/// (the report shows it beside the step) and carries on with the next.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("no fault proxy in front of {link}")]
    NoProxy { link: String },
    #[error("{0} is not running")]
    NotRunning(Service),
    #[error("cannot {what} of a system running elsewhere: only the embedded system allows it")]
    EmbeddedOnly { what: &'static str },
    #[error("poison needs a Kafka broker, and this system runs without one")]
    NoBroker,
    #[error("provider faults need the provider's URL")]
    NoProviderUrl,
    #[error("provider answered {0}")]
    ProviderRefused(reqwest::StatusCode),
    /// The embedded fault proxy refused (no such link or toxic).
    #[error(transparent)]
    Proxy(#[from] gauntlet_chaos::ChaosError),
    /// The broker would not take the poison (boxed: the events crate's
    /// error is large, and every other variant small).
    #[error(transparent)]
    Events(Box<gauntlet_events::EventsError>),
    /// The embedded system could not restart a service or pause its
    /// consumers.
    #[error("{0}")]
    System(String),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("toxiproxy at {addr}: {source}")]
    ToxiproxyUnreachable {
        addr: String,
        source: reqwest::Error,
    },
    #[error("toxiproxy at {addr}: unreadable toxic: {source}")]
    ToxiproxyUnreadable {
        addr: String,
        source: reqwest::Error,
    },
    #[error("toxiproxy refused to {what}: {status} {body}")]
    ToxiproxyRefused {
        what: String,
        status: reqwest::StatusCode,
        body: String,
    },
    /// The `toxiproxy_rust` client's own error (it reports them as text),
    /// or its panic.
    #[error("{0}")]
    ToxiproxyClient(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Applied,
    Undone,
}

/// One thing the timeline did, for the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultRecord {
    pub step: usize,
    pub phase: Phase,
    /// Milliseconds since the timeline started.
    pub at_ms: u64,
    pub unix_ms: i64,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<gauntlet_events::EventsError> for FaultError {
    fn from(e: gauntlet_events::EventsError) -> Self {
        Self::Events(Box::new(e))
    }
}

/// Where network faults go.
#[derive(Clone)]
pub enum Network {
    Embedded(Chaos),
    /// A real Toxiproxy server, e.g. `127.0.0.1:8474`.
    Toxiproxy(String),
    /// No fault proxy: network faults fail (a scenario with some is
    /// rejected before it runs).
    None,
}

/// What the system-level faults act on.
#[derive(Clone)]
pub enum Services {
    /// The system running in this process: every action is possible.
    Embedded(Arc<Mutex<System>>),
    /// A system running elsewhere, reached only through its own endpoints:
    /// provider faults over HTTP, poison through the broker. Crashing a
    /// service or pausing a consumer group needs the embedded system.
    External {
        /// The provider's base URL.
        provider: Option<String>,
        /// Kafka bootstrap servers.
        kafka: Option<String>,
    },
}

/// What the timeline acts on.
#[derive(Clone)]
pub struct Target {
    pub network: Network,
    pub services: Services,
    pub http: reqwest::Client,
}

/// How to undo an applied step.
#[derive(Debug, Clone)]
enum Undo {
    RemoveToxic { link: String, name: String },
    LinkUp { link: String },
    Restart { service: Service },
    Provider { faults: ProviderFaults },
    Resume { service: Service },
    Nothing,
}

pub struct Timeline {
    steps: Vec<FaultStep>,
    target: Target,
    applied: Vec<Option<Undo>>,
    records: Vec<FaultRecord>,
    origin: Instant,
}

impl Timeline {
    pub fn new(steps: Vec<FaultStep>, target: Target) -> Self {
        let n = steps.len();
        Self {
            steps,
            target,
            applied: vec![None; n],
            records: Vec::new(),
            origin: Instant::now(),
        }
    }

    pub fn records(&self) -> &[FaultRecord] {
        &self.records
    }

    /// Applies and undoes every step at its time, until the last scheduled
    /// event or `cancel`. Steps without a duration stay applied: call
    /// [`Timeline::heal`] to end them.
    pub async fn run(&mut self, cancel: &CancellationToken) {
        self.origin = Instant::now();
        let mut events: Vec<(Duration, usize, Phase)> = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            events.push((s.at, i, Phase::Applied));
            if let Some(d) = s.duration {
                events.push((s.at + d, i, Phase::Undone));
            }
        }
        // At equal times, undo before apply, so back-to-back windows on the
        // same link do not overlap.
        events.sort_by_key(|(t, i, p)| (*t, *p == Phase::Applied, *i));
        for (t, i, phase) in events {
            tokio::select! {
                _ = tokio::time::sleep_until(self.origin + t) => {}
                _ = cancel.cancelled() => return,
            }
            match phase {
                Phase::Applied => self.apply(i).await,
                Phase::Undone => self.undo(i).await,
            }
        }
    }

    /// Undoes everything still applied, newest first.
    pub async fn heal(&mut self) {
        for i in (0..self.steps.len()).rev() {
            if self.applied[i].is_some() {
                self.undo(i).await;
            }
        }
    }

    async fn apply(&mut self, i: usize) {
        let action = self.steps[i].action.clone();
        let result = self.target.apply(&action).await;
        let error = match result {
            Ok(undo) => {
                // A step with nothing to undo (poison) is done once applied.
                if !matches!(undo, Undo::Nothing) {
                    self.applied[i] = Some(undo);
                }
                None
            }
            Err(e) => Some(e),
        };
        self.record(i, Phase::Applied, error);
    }

    async fn undo(&mut self, i: usize) {
        let Some(undo) = self.applied[i].take() else {
            return;
        };
        let error = self.target.undo(undo).await.err();
        self.record(i, Phase::Undone, error);
    }

    fn record(&mut self, step: usize, phase: Phase, error: Option<FaultError>) {
        let action = self.steps[step].action.describe();
        match &error {
            None => tracing::info!(step, ?phase, %action, "fault"),
            Some(e) => tracing::warn!(step, ?phase, %action, error = %e, "fault failed"),
        }
        self.records.push(FaultRecord {
            step,
            phase,
            at_ms: self.origin.elapsed().as_millis() as u64,
            unix_ms: gauntlet_system::db::now_ms(),
            action,
            error: error.map(|e| e.to_string()),
        });
    }
}

impl Target {
    async fn apply(&self, action: &FaultAction) -> Result<Undo, FaultError> {
        match action {
            FaultAction::Toxic { link, toxic } => {
                let name = self.add_toxic(link, toxic).await?;
                Ok(Undo::RemoveToxic {
                    link: link.clone(),
                    name,
                })
            }
            FaultAction::LinkDown { link } => {
                self.set_link(link, false).await?;
                Ok(Undo::LinkUp { link: link.clone() })
            }
            FaultAction::Crash { service } => {
                if !self
                    .system("crash a service")?
                    .lock()
                    .await
                    .crash(*service)
                    .await
                {
                    return Err(FaultError::NotRunning(*service));
                }
                Ok(Undo::Restart { service: *service })
            }
            FaultAction::Provider { faults } => {
                let previous = self.provider_faults().await?;
                self.set_provider_faults(faults).await?;
                Ok(Undo::Provider { faults: previous })
            }
            FaultAction::PauseConsumer { group } => {
                self.system("pause a consumer group")?
                    .lock()
                    .await
                    .set_consumers_paused(*group, true)
                    .map_err(|e| FaultError::System(e.to_string()))?;
                Ok(Undo::Resume { service: *group })
            }
            FaultAction::Poison { topic, count } => {
                let bootstrap = match &self.services {
                    Services::Embedded(system) => system.lock().await.endpoints().kafka.clone(),
                    Services::External { kafka, .. } => kafka.clone(),
                }
                .ok_or(FaultError::NoBroker)?;
                let producer = gauntlet_events::EventProducer::new(&bootstrap, "poisoner")?;
                for i in 0..*count {
                    let body = format!("{{poison {i}: not an event");
                    producer
                        .publish_raw::<&str, &[u8]>(topic, Some(b"poison"), body.as_bytes(), &[])
                        .await?;
                }
                Ok(Undo::Nothing)
            }
        }
    }

    async fn undo(&self, undo: Undo) -> Result<(), FaultError> {
        match undo {
            Undo::RemoveToxic { link, name } => self.remove_toxic(&link, &name).await,
            Undo::LinkUp { link } => self.set_link(&link, true).await,
            Undo::Restart { service } => self
                .system("restart a service")?
                .lock()
                .await
                .restart(service)
                .await
                .map_err(|e| FaultError::System(e.to_string())),
            Undo::Provider { faults } => self.set_provider_faults(&faults).await,
            Undo::Resume { service } => self
                .system("resume a consumer group")?
                .lock()
                .await
                .set_consumers_paused(service, false)
                .map_err(|e| FaultError::System(e.to_string())),
            Undo::Nothing => Ok(()),
        }
    }

    /// The embedded system, for what only it allows.
    fn system(&self, what: &'static str) -> Result<&Arc<Mutex<System>>, FaultError> {
        match &self.services {
            Services::Embedded(system) => Ok(system),
            Services::External { .. } => Err(FaultError::EmbeddedOnly { what }),
        }
    }

    async fn add_toxic(&self, link: &str, toxic: &ToxicSpec) -> Result<String, FaultError> {
        match &self.network {
            Network::Embedded(chaos) => Ok(chaos.add_toxic(link, toxic.clone())?.name),
            Network::Toxiproxy(addr) => toxiproxy::add_toxic(&self.http, addr, link, toxic).await,
            Network::None => Err(FaultError::NoProxy {
                link: link.to_string(),
            }),
        }
    }

    async fn remove_toxic(&self, link: &str, name: &str) -> Result<(), FaultError> {
        match &self.network {
            Network::Embedded(chaos) => Ok(chaos.remove_toxic(link, name)?),
            Network::Toxiproxy(addr) => toxiproxy::remove_toxic(&self.http, addr, link, name).await,
            Network::None => Err(FaultError::NoProxy {
                link: link.to_string(),
            }),
        }
    }

    async fn set_link(&self, link: &str, up: bool) -> Result<(), FaultError> {
        match &self.network {
            Network::Embedded(chaos) => {
                chaos.set_enabled(link, up).await?;
                Ok(())
            }
            Network::Toxiproxy(addr) => {
                let (addr, link) = (addr.clone(), link.to_string());
                blocking(move || toxiproxy::set_enabled(&addr, &link, up)).await
            }
            Network::None => Err(FaultError::NoProxy {
                link: link.to_string(),
            }),
        }
    }

    async fn provider_url(&self) -> Result<String, FaultError> {
        let base = match &self.services {
            Services::Embedded(system) => system.lock().await.url(Service::Provider),
            Services::External { provider, .. } => {
                provider.clone().ok_or(FaultError::NoProviderUrl)?
            }
        };
        Ok(format!("{}/admin/faults", base.trim_end_matches('/')))
    }

    async fn provider_faults(&self) -> Result<ProviderFaults, FaultError> {
        let url = self.provider_url().await?;
        Ok(self.http.get(&url).send().await?.json().await?)
    }

    async fn set_provider_faults(&self, faults: &ProviderFaults) -> Result<(), FaultError> {
        let url = self.provider_url().await?;
        let resp = self.http.put(&url).json(faults).send().await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(FaultError::ProviderRefused(resp.status()))
        }
    }
}

/// Runs a blocking Toxiproxy client call off the async runtime. The client
/// panics on some HTTP errors; a panic comes back as an error here.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FaultError> + Send + 'static,
) -> Result<T, FaultError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FaultError::ToxiproxyClient(format!("toxiproxy client failed: {e}")))?
}

/// The same faults through a real Toxiproxy server. Links go up and down
/// with the `toxiproxy_rust` client; toxics are added and removed through
/// Toxiproxy's HTTP API directly, because the client names every toxic
/// `<type>_<stream>` itself, knows no `reset_peer`, and can only delete all
/// of a proxy's toxics at once: two faults on one link would undo each
/// other.
mod toxiproxy {
    use super::*;
    use gauntlet_chaos::Toxic;
    use toxiproxy_rust::client::Client;

    fn url(addr: &str, path: &str) -> String {
        let base = addr.trim_end_matches('/');
        if base.starts_with("http://") || base.starts_with("https://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        }
    }

    /// `s` as one URL path segment: every byte but the unreserved ones
    /// percent-encoded, so a name with `/`, `?`, `#` or `>` still reaches
    /// the right proxy or toxic.
    pub(super) fn segment(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    async fn refused(what: String, resp: reqwest::Response) -> FaultError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        FaultError::ToxiproxyRefused {
            what,
            status,
            body: body.trim().to_string(),
        }
    }

    fn unreachable(addr: &str) -> impl FnOnce(reqwest::Error) -> FaultError + '_ {
        move |source| FaultError::ToxiproxyUnreachable {
            addr: addr.to_string(),
            source,
        }
    }

    /// `POST /proxies/{link}/toxics`; the toxic's name as the server gave it.
    pub async fn add_toxic(
        http: &reqwest::Client,
        addr: &str,
        link: &str,
        toxic: &ToxicSpec,
    ) -> Result<String, FaultError> {
        let body = Toxic {
            name: toxic.resolved_name(),
            kind: toxic.kind.clone(),
            stream: toxic.stream,
            toxicity: toxic.toxicity,
        };
        let resp = http
            .post(url(addr, &format!("/proxies/{}/toxics", segment(link))))
            .json(&body)
            .send()
            .await
            .map_err(unreachable(addr))?;
        if !resp.status().is_success() {
            return Err(refused(format!("add {} on {link}", body.name), resp).await);
        }
        let added: Toxic = resp
            .json()
            .await
            .map_err(|source| FaultError::ToxiproxyUnreadable {
                addr: addr.to_string(),
                source,
            })?;
        Ok(added.name)
    }

    /// `DELETE /proxies/{link}/toxics/{name}`: that toxic only.
    pub async fn remove_toxic(
        http: &reqwest::Client,
        addr: &str,
        link: &str,
        name: &str,
    ) -> Result<(), FaultError> {
        let resp = http
            .delete(url(
                addr,
                &format!("/proxies/{}/toxics/{}", segment(link), segment(name)),
            ))
            .send()
            .await
            .map_err(unreachable(addr))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(refused(format!("remove {name} from {link}"), resp).await)
        }
    }

    pub fn set_enabled(addr: &str, link: &str, up: bool) -> Result<(), FaultError> {
        let proxy = Client::new(addr)
            .find_proxy(link)
            .map_err(FaultError::ToxiproxyClient)?;
        if up { proxy.enable() } else { proxy.disable() }.map_err(FaultError::ToxiproxyClient)
    }
}
