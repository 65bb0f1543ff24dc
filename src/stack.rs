//! The system under test with a fault proxy on every link.
//!
//! Every service's port is reserved first; then one proxy per link
//! (`gateway`, `gateway->orders`, `orders->payments`, ...) is created with
//! the callee's address as upstream; then the services start, each calling
//! the others through those proxies. Clients reach the gateway through the
//! `gateway` proxy, so "client → gateway" is a link like any other.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use gauntlet_chaos::{Chaos, ChaosError, ProxySpec, ProxyUpdate};
use gauntlet_events::EmbeddedBroker;
use gauntlet_system::config::link_name;
use gauntlet_system::{Service, StartError, System, SystemOptions, LINKS};
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The name of the client → gateway proxy.
pub const GATEWAY_LINK: &str = "gateway";
/// The name of the every-client → broker proxy.
pub const KAFKA_LINK: &str = "kafka";

/// Where the event bus comes from.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Kafka {
    /// No broker: the async flow answers 503.
    #[default]
    None,
    /// A broker started in this process, behind the `kafka` proxy.
    Embedded,
    /// An existing cluster (`host:port[,host:port]`), used as it is.
    External(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    System(#[from] StartError),
    #[error("cannot create the proxy for link {link}: {source}")]
    Proxy { link: String, source: ChaosError },
    #[error("cannot start the event bus: {0}")]
    Kafka(String),
    #[error("cannot serve the fault API on {addr}: {source}")]
    Api {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    pub system: SystemOptions,
    /// Where clients reach the gateway (through its proxy); ephemeral if `None`.
    pub gateway_listen: Option<String>,
    /// Serve the Toxiproxy-compatible API here (e.g. 127.0.0.1:8474).
    pub api_listen: Option<SocketAddr>,
    pub kafka: Kafka,
}

/// The running system and the proxies in front of each of its links.
pub struct Stack {
    /// Shared with the fault timeline, which crashes and restarts services.
    pub system: Arc<Mutex<System>>,
    pub chaos: Chaos,
    gateway_url: String,
    api: Option<(SocketAddr, CancellationToken, JoinHandle<()>)>,
    broker: Option<EmbeddedBroker>,
}

impl Stack {
    pub async fn start(opts: StackOptions) -> Result<Stack, StackError> {
        let seed = opts.system.config.seed_for("chaos");
        let events_config = opts.system.config.events.clone();
        let mut bound = gauntlet_system::topology::bind(opts.system).await?;
        let chaos = Chaos::new(seed);
        let broker = match &opts.kafka {
            Kafka::None => None,
            Kafka::External(bootstrap) => {
                ensure_topics(bootstrap, &events_config).await?;
                bound.set_kafka(Some(bootstrap.clone()));
                None
            }
            Kafka::Embedded => {
                // The proxy first, so the broker can advertise it: every
                // client, after its first metadata request, connects to the
                // advertised address, so a fault on this link is real.
                let proxy = chaos
                    .create_proxy(ProxySpec::new(KAFKA_LINK, "127.0.0.1:0", "127.0.0.1:9"))
                    .await
                    .map_err(|e| StackError::Kafka(e.to_string()))?;
                let broker = EmbeddedBroker::start(
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    Some(proxy.listen.clone()),
                )
                .await
                .map_err(|e| StackError::Kafka(e.to_string()))?;
                let update = ProxyUpdate {
                    upstream: Some(broker.bootstrap()),
                    ..ProxyUpdate::default()
                };
                chaos
                    .update_proxy(KAFKA_LINK, update)
                    .await
                    .map_err(|e| StackError::Kafka(e.to_string()))?;
                ensure_topics(&proxy.listen, &events_config).await?;
                bound.set_kafka(Some(proxy.listen.clone()));
                Some(broker)
            }
        };
        let upstream = |to: Service| {
            bound
                .endpoints()
                .services
                .get(&to)
                .map(|u| u.trim_start_matches("http://").to_string())
                .unwrap_or_default()
        };
        let mut links = BTreeMap::new();
        let proxy_err = |link: &str| {
            let link = link.to_string();
            move |source| StackError::Proxy { link, source }
        };
        for (from, to) in LINKS {
            let name = link_name(from, to);
            let proxy = chaos
                .create_proxy(ProxySpec::new(&name, "127.0.0.1:0", upstream(to)))
                .await
                .map_err(proxy_err(&name))?;
            links.insert(name, format!("http://{}", proxy.listen));
        }
        let listen = opts
            .gateway_listen
            .unwrap_or_else(|| "127.0.0.1:0".to_string());
        let gateway = chaos
            .create_proxy(ProxySpec::new(
                GATEWAY_LINK,
                listen,
                upstream(Service::Gateway),
            ))
            .await
            .map_err(proxy_err(GATEWAY_LINK))?;
        let gateway_url = format!("http://{}", gateway.listen);
        let system = match bound.start(links).await {
            Ok(s) => s,
            Err(e) => {
                chaos.shutdown().await;
                if let Some(b) = broker {
                    b.stop().await;
                }
                return Err(e.into());
            }
        };
        let mut stack = Stack {
            system: Arc::new(Mutex::new(system)),
            chaos,
            gateway_url,
            api: None,
            broker,
        };
        if let Some(addr) = opts.api_listen {
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(source) => {
                    stack.stop().await;
                    return Err(StackError::Api { addr, source });
                }
            };
            let bound_addr = listener.local_addr().unwrap_or(addr);
            let stop = CancellationToken::new();
            let chaos = stack.chaos.clone();
            let shutdown = stop.clone().cancelled_owned();
            let task = tokio::spawn(async move {
                if let Err(e) = gauntlet_chaos::run_api(listener, chaos, shutdown).await {
                    tracing::error!(error = %e, "fault API failed");
                }
            });
            stack.api = Some((bound_addr, stop, task));
        }
        Ok(stack)
    }

    /// Where clients reach the gateway: through the `gateway` proxy.
    pub fn gateway_url(&self) -> &str {
        &self.gateway_url
    }

    /// Where the Toxiproxy-compatible API listens, if it was asked for.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(|(a, _, _)| *a)
    }

    /// The proxy names, one per link.
    pub fn links(&self) -> Vec<String> {
        self.chaos.list().into_iter().map(|p| p.name).collect()
    }

    pub async fn stop(&mut self) {
        if let Some((_, stop, task)) = self.api.take() {
            stop.cancel();
            let _ = task.await;
        }
        // Heal first so in-flight requests can finish, then stop.
        let _ = self.chaos.reset().await;
        self.system.lock().await.stop().await;
        self.chaos.shutdown().await;
        if let Some(b) = self.broker.take() {
            b.stop().await;
        }
    }

    /// The Kafka bootstrap servers clients use, if there is a bus.
    pub async fn kafka(&self) -> Option<String> {
        self.system.lock().await.endpoints().kafka.clone()
    }
}

async fn ensure_topics(
    bootstrap: &str,
    config: &gauntlet_system::events::EventsConfig,
) -> Result<(), StackError> {
    gauntlet_events::ensure_topics(bootstrap, &gauntlet_system::events::topic_specs(config))
        .await
        .map_err(|e| StackError::Kafka(format!("cannot create topics on {bootstrap}: {e}")))
}
