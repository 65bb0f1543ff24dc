//! The fault timeline: timed actions applied while the load runs, each
//! undone after its `duration` (or at the final heal), every application
//! and undo recorded with its time for the report.
//!
//! Network faults go to the embedded proxy, or to a real Toxiproxy server
//! (links through the `toxiproxy_rust` client, blocking, so run off the
//! async runtime; toxics through its HTTP API, see `toxiproxy`). Crashes and provider behaviour act on the system directly.

use std::sync::Arc;
use std::time::Duration;

use gauntlet_chaos::{Chaos, Stream, ToxicKind, ToxicSpec};
use gauntlet_system::{ProviderFaults, ServiceName, System};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One timed fault.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    /// When to apply it, from the start of the timeline ("10s").
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// How long it lasts; without one it stays until the final heal.
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    pub action: FaultAction,
}

/// A toxic as a timeline names it: the Toxiproxy shape,
/// `{"type": "latency", "attributes": {"latency": 100, "jitter": 10},
/// "stream": "downstream", "toxicity": 1.0, "name": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToxicStep {
    #[serde(flatten)]
    pub kind: ToxicKind,
    /// Defaults to downstream (server → client).
    #[serde(default)]
    pub stream: Option<Stream>,
    /// Share of connections affected, 0.0–1.0; defaults to 1.0.
    #[serde(default)]
    pub toxicity: Option<f32>,
    /// Defaults to `<type>_<stream>`.
    #[serde(default)]
    pub name: Option<String>,
}

impl ToxicStep {
    pub fn spec(&self) -> ToxicSpec {
        let mut spec = ToxicSpec::new(self.kind.clone());
        if let Some(s) = self.stream {
            spec = spec.stream(s);
        }
        if let Some(t) = self.toxicity {
            spec = spec.toxicity(t);
        }
        if let Some(n) = &self.name {
            spec = spec.name(n.clone());
        }
        spec
    }
}

/// What a step does, and what undoing it means.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Add a toxic to a link; undo removes it.
    Toxic { link: String, toxic: ToxicStep },
    /// Take a link down (refuse and close connections); undo brings it up.
    LinkDown { link: String },
    /// Kill a service where it stands; undo restarts it on the same
    /// port and database.
    Crash { service: ServiceName },
    /// Change the provider's behaviour; undo restores what it was.
    Provider { faults: ProviderFaults },
    /// Stop a consumer group fetching (it stays in the group); undo
    /// resumes it. Groups are named after their service.
    PauseConsumer { group: ServiceName },
    /// Publish `count` malformed messages to a topic; nothing to undo.
    Poison { topic: String, count: u32 },
}

impl FaultAction {
    pub fn describe(&self) -> String {
        match self {
            Self::Toxic { link, toxic } => format!("{} on {link}", toxic.spec().resolved_name()),
            Self::LinkDown { link } => format!("{link} down"),
            Self::Crash { service } => format!("{service} crashed"),
            Self::PauseConsumer { group } => format!("consumer group {group} paused"),
            Self::Poison { topic, count } => format!("{count} poison message(s) on {topic}"),
            Self::Provider { faults } => format!(
                "provider fail {} decline {} lost-reply {} latency {}±{} ms",
                faults.failure_rate,
                faults.decline_rate,
                faults.lost_reply_rate,
                faults.latency_ms,
                faults.jitter_ms
            ),
        }
    }
}

/// Problems with a timeline before it runs: every one, not just the first.
pub fn validate(steps: &[FaultStep], links: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let link = match &step.action {
            FaultAction::Toxic { link, .. } | FaultAction::LinkDown { link } => Some(link),
            _ => None,
        };
        if let Some(link) = link {
            if !links.iter().any(|l| l == link) {
                problems.push(format!(
                    "fault {}: unknown link '{link}' (links: {})",
                    i + 1,
                    links.join(", ")
                ));
            }
        }
        if let FaultAction::Provider { faults } = &step.action {
            if let Err(e) = faults.validate() {
                problems.push(format!("fault {}: {e}", i + 1));
            }
        }
        if let FaultAction::Toxic { toxic, .. } = &step.action {
            if !(0.0..=1.0).contains(&toxic.toxicity.unwrap_or(1.0)) {
                problems.push(format!("fault {}: toxicity must be between 0 and 1", i + 1));
            }
        }
    }
    problems
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
    Restart { service: ServiceName },
    Provider { faults: ProviderFaults },
    Resume { service: ServiceName },
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

    /// The descriptions of the faults in force now.
    pub fn active(&self) -> Vec<String> {
        self.applied
            .iter()
            .zip(&self.steps)
            .filter(|(a, _)| a.is_some())
            .map(|(_, s)| s.action.describe())
            .collect()
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

    fn record(&mut self, step: usize, phase: Phase, error: Option<String>) {
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
            error,
        });
    }
}

impl Target {
    async fn apply(&self, action: &FaultAction) -> Result<Undo, String> {
        match action {
            FaultAction::Toxic { link, toxic } => {
                let name = self.add_toxic(link, &toxic.spec()).await?;
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
                    return Err(format!("{service} is not running"));
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
                    .set_consumers_paused(*group, true)?;
                Ok(Undo::Resume { service: *group })
            }
            FaultAction::Poison { topic, count } => {
                let bootstrap = match &self.services {
                    Services::Embedded(system) => system.lock().await.endpoints().kafka.clone(),
                    Services::External { kafka, .. } => kafka.clone(),
                }
                .ok_or("poison needs a Kafka broker, and this system runs without one")?;
                let producer = gauntlet_events::EventProducer::new(&bootstrap, "poisoner")
                    .map_err(|e| e.to_string())?;
                for i in 0..*count {
                    let body = format!("{{poison {i}: not an event");
                    producer
                        .publish_raw::<&str, &[u8]>(topic, Some(b"poison"), body.as_bytes(), &[])
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(Undo::Nothing)
            }
        }
    }

    async fn undo(&self, undo: Undo) -> Result<(), String> {
        match undo {
            Undo::RemoveToxic { link, name } => self.remove_toxic(&link, &name).await,
            Undo::LinkUp { link } => self.set_link(&link, true).await,
            Undo::Restart { service } => self
                .system("restart a service")?
                .lock()
                .await
                .restart(service)
                .await
                .map_err(|e| e.to_string()),
            Undo::Provider { faults } => self.set_provider_faults(&faults).await,
            Undo::Resume { service } => self
                .system("resume a consumer group")?
                .lock()
                .await
                .set_consumers_paused(service, false),
            Undo::Nothing => Ok(()),
        }
    }

    /// The embedded system, for what only it allows.
    fn system(&self, what: &str) -> Result<&Arc<Mutex<System>>, String> {
        match &self.services {
            Services::Embedded(system) => Ok(system),
            Services::External { .. } => Err(format!(
                "cannot {what} of a system running elsewhere: only the embedded system allows it"
            )),
        }
    }

    async fn add_toxic(&self, link: &str, toxic: &ToxicSpec) -> Result<String, String> {
        match &self.network {
            Network::Embedded(chaos) => chaos
                .add_toxic(link, toxic.clone())
                .map(|t| t.name)
                .map_err(|e| e.to_string()),
            Network::Toxiproxy(addr) => toxiproxy::add_toxic(&self.http, addr, link, toxic).await,
            Network::None => Err(format!("no fault proxy in front of {link}")),
        }
    }

    async fn remove_toxic(&self, link: &str, name: &str) -> Result<(), String> {
        match &self.network {
            Network::Embedded(chaos) => chaos.remove_toxic(link, name).map_err(|e| e.to_string()),
            Network::Toxiproxy(addr) => toxiproxy::remove_toxic(&self.http, addr, link, name).await,
            Network::None => Err(format!("no fault proxy in front of {link}")),
        }
    }

    async fn set_link(&self, link: &str, up: bool) -> Result<(), String> {
        match &self.network {
            Network::Embedded(chaos) => chaos
                .set_enabled(link, up)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Network::Toxiproxy(addr) => {
                let (addr, link) = (addr.clone(), link.to_string());
                blocking(move || toxiproxy::set_enabled(&addr, &link, up)).await
            }
            Network::None => Err(format!("no fault proxy in front of {link}")),
        }
    }

    async fn provider_url(&self) -> Result<String, String> {
        let base = match &self.services {
            Services::Embedded(system) => system.lock().await.url(ServiceName::Provider),
            Services::External { provider, .. } => provider
                .clone()
                .ok_or("provider faults need the provider's URL")?,
        };
        Ok(format!("{}/admin/faults", base.trim_end_matches('/')))
    }

    async fn provider_faults(&self) -> Result<ProviderFaults, String> {
        let url = self.provider_url().await?;
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        resp.json().await.map_err(|e| e.to_string())
    }

    async fn set_provider_faults(&self, faults: &ProviderFaults) -> Result<(), String> {
        let url = self.provider_url().await?;
        let resp = self
            .http
            .put(&url)
            .json(faults)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("provider answered {}", resp.status()))
        }
    }
}

/// Runs a blocking Toxiproxy client call off the async runtime. The client
/// panics on some HTTP errors; a panic comes back as an error here.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("toxiproxy client failed: {e}"))?
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

    async fn refused(what: &str, resp: reqwest::Response) -> String {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        format!("toxiproxy refused to {what}: {status} {}", body.trim())
    }

    /// `POST /proxies/{link}/toxics`; the toxic's name as the server gave it.
    pub async fn add_toxic(
        http: &reqwest::Client,
        addr: &str,
        link: &str,
        toxic: &ToxicSpec,
    ) -> Result<String, String> {
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
            .map_err(|e| format!("toxiproxy at {addr}: {e}"))?;
        if !resp.status().is_success() {
            return Err(refused(&format!("add {} on {link}", body.name), resp).await);
        }
        let added: Toxic = resp
            .json()
            .await
            .map_err(|e| format!("toxiproxy at {addr}: unreadable toxic: {e}"))?;
        Ok(added.name)
    }

    /// `DELETE /proxies/{link}/toxics/{name}`: that toxic only.
    pub async fn remove_toxic(
        http: &reqwest::Client,
        addr: &str,
        link: &str,
        name: &str,
    ) -> Result<(), String> {
        let resp = http
            .delete(url(
                addr,
                &format!("/proxies/{}/toxics/{}", segment(link), segment(name)),
            ))
            .send()
            .await
            .map_err(|e| format!("toxiproxy at {addr}: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(refused(&format!("remove {name} from {link}"), resp).await)
        }
    }

    pub fn set_enabled(addr: &str, link: &str, up: bool) -> Result<(), String> {
        let proxy = Client::new(addr).find_proxy(link)?;
        if up {
            proxy.enable()
        } else {
            proxy.disable()
        }
    }
}
