//! The embedded Kafka broker: tansu, with in-memory storage, on a loopback
//! port, inside this process.
//!
//! The broker tells clients, in its metadata, the address to connect to (its
//! *advertised* address). When a fault proxy stands in front of the broker,
//! the broker must advertise the proxy's address: clients bootstrap through
//! it, then reconnect to whatever the metadata names, so only then does every
//! byte really pass through the proxy.
//!
//! Two things differ from tansu's own `main`:
//! - tansu reports no bound port, and the advertised address must be known
//!   before it starts; so for port 0 we pick a free port ourselves (bind,
//!   read the port, release it) and retry a few times should another process
//!   take it in between.
//! - we run `Broker::serve`, not `Broker::main`: `main` installs SIGINT and
//!   SIGTERM handlers, which would take Ctrl-C away from the host program for
//!   the rest of its life. Stopping aborts the serving task, which drops the
//!   listener, every connection and the in-memory data.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::Duration;

use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use url::Url;
use uuid::Uuid;

use crate::error::EventsError;

/// How long a starting broker may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many free ports to try when asked for port 0.
const PORT_ATTEMPTS: usize = 3;
/// The cluster id the embedded broker reports.
pub const CLUSTER_ID: &str = "gauntlet";
/// Storage: tansu's in-memory object store (its `dynostore` feature). Each
/// broker gets its own store; nothing survives a stop.
const STORAGE: &str = "memory://tansu/";
/// How long the embedded broker keeps a batch every consumer group has
/// committed past (a partition no group commits on keeps everything).
/// Without a retention the in-memory store grows with every event for as
/// long as `serve` runs; with it, a steady load holds about this long of
/// events, plus whatever a group has not yet finished with (never
/// deleted). Long enough that a group started a little after the events it
/// reads from the beginning still finds them.
pub const RETAIN_CONSUMED: Duration = Duration::from_secs(60);

type TansuBroker = Broker<Controller<StorageContainer>, StorageContainer>;

/// Why the serving task ended with an error: tansu's, as it prints itself
/// (its `Display` is its `Debug`). Held as text so the task's output is
/// `Send` whatever tansu's error carries; it becomes the `reason` of
/// [`EventsError::BrokerStart`].
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
struct ServeError {
    reason: String,
}

/// A running embedded broker. Dropping it stops it too, without waiting.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    advertised: String,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl EmbeddedBroker {
    /// Starts a broker listening on `listen` (port 0: a free port, see
    /// [`EmbeddedBroker::bootstrap`]) and advertising `advertised`
    /// (`host:port`; `None`: the listening address). Returns once the broker
    /// accepts connections.
    /// Consumed batches are kept for [`RETAIN_CONSUMED`].
    pub async fn start(
        listen: SocketAddr,
        advertised: Option<String>,
    ) -> Result<EmbeddedBroker, EventsError> {
        Self::start_retaining(listen, advertised, Some(RETAIN_CONSUMED)).await
    }

    /// As [`EmbeddedBroker::start`], keeping a batch every consumer group
    /// has committed past for `retain` after it was written (`None`:
    /// forever).
    pub async fn start_retaining(
        listen: SocketAddr,
        advertised: Option<String>,
        retain: Option<Duration>,
    ) -> Result<EmbeddedBroker, EventsError> {
        if listen.port() != 0 {
            return Self::start_on(listen, advertised.as_deref(), retain).await;
        }
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let addr = free_port(listen)?;
            match Self::start_on(addr, advertised.as_deref(), retain).await {
                Ok(broker) => return Ok(broker),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(EventsError::BrokerStart {
            addr: listen,
            reason: "no free port found".into(),
        }))
    }

    async fn start_on(
        addr: SocketAddr,
        advertised: Option<&str>,
        retain: Option<Duration>,
    ) -> Result<Self, EventsError> {
        let start_err = |reason: String| EventsError::BrokerStart { addr, reason };
        let listener = Url::parse(&format!("tcp://{addr}"))
            .map_err(|e| start_err(format!("bad listener url: {e}")))?;
        let advertised = match advertised {
            Some(a) => a.strip_prefix("tcp://").unwrap_or(a).to_string(),
            None => addr.to_string(),
        };
        let advertised_url =
            Url::parse(&format!("tcp://{advertised}")).map_err(|e| EventsError::Advertised {
                address: advertised.clone(),
                reason: e.to_string(),
            })?;
        if advertised_url.port().is_none() {
            return Err(EventsError::Advertised {
                address: advertised,
                reason: "no port".into(),
            });
        }
        let mut storage =
            Url::parse(STORAGE).map_err(|e| start_err(format!("bad storage url: {e}")))?;
        if let Some(retain) = retain {
            // Read by the patched storage (see vendor/README.md).
            storage
                .query_pairs_mut()
                .append_pair("retain_consumed_ms", &retain.as_millis().to_string());
        }
        // tansu binds in its own task and reports a failure only there; the
        // readiness probe below would then find whatever else holds the
        // port. Check the port is free first (the window until tansu binds
        // it is a few milliseconds).
        std::net::TcpListener::bind(addr).map_err(|e| start_err(format!("cannot bind: {e}")))?;

        let mut broker: TansuBroker =
            Broker::<Controller<StorageContainer>, StorageContainer>::builder()
                .node_id(0)
                .cluster_id(CLUSTER_ID)
                .incarnation_id(Uuid::new_v4())
                .listener(listener)
                .advertised_listener(advertised_url)
                .storage(storage)
                .silent(true)
                .build()
                .await
                .map_err(|e| start_err(format!("{e:?}")))?;

        let task = tokio::spawn(async move {
            broker.serve(Instant::now()).await.map_err(|e| ServeError {
                reason: format!("{e:?}"),
            })
        });
        let mut broker = EmbeddedBroker {
            addr,
            advertised,
            task: Some(task),
        };
        broker.wait_ready().await?;
        tracing::info!(%addr, advertised = %broker.advertised, "embedded kafka broker started");
        Ok(broker)
    }

    /// Polls until the broker accepts a TCP connection, or its task ends.
    async fn wait_ready(&mut self) -> Result<(), EventsError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(reason) = self.finished_with().await {
                return Err(EventsError::BrokerStart {
                    addr: self.addr,
                    reason,
                });
            }
            let connect = timeout(Duration::from_millis(200), TcpStream::connect(self.addr)).await;
            if let Ok(Ok(_)) = connect {
                // The port may have been another process's; a broker that
                // failed to bind ends its task at once.
                if let Some(reason) = self.finished_with().await {
                    return Err(EventsError::BrokerStart {
                        addr: self.addr,
                        reason,
                    });
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EventsError::BrokerNotReady {
                    addr: self.addr,
                    waited: READY_TIMEOUT,
                });
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// If the serving task has ended, why.
    async fn finished_with(&mut self) -> Option<String> {
        let finished = self.task.as_ref().is_none_or(|t| t.is_finished());
        if !finished {
            return None;
        }
        Some(match self.task.take() {
            None => "broker task missing".into(),
            Some(task) => match task.await {
                Ok(Ok(())) => "broker stopped serving".into(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("broker task failed: {e}"),
            },
        })
    }

    /// `host:port` to bootstrap a client from: the listening address.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` the broker tells clients to connect to.
    pub fn advertised(&self) -> &str {
        &self.advertised
    }

    /// Stops the broker: closes the listener and every connection, and
    /// drops all topics, messages and group offsets.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        tracing::info!(addr = %self.addr, "embedded kafka broker stopped");
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A port on `listen`'s address that was free a moment ago.
fn free_port(listen: SocketAddr) -> Result<SocketAddr, EventsError> {
    let probe = StdListener::bind(listen).map_err(|e| EventsError::BrokerStart {
        addr: listen,
        reason: format!("cannot bind: {e}"),
    })?;
    probe.local_addr().map_err(|e| EventsError::BrokerStart {
        addr: listen,
        reason: format!("cannot read the bound port: {e}"),
    })
}
