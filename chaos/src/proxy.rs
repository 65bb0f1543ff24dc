//! One proxy: its configuration, its toxic list, and, while enabled, its
//! listener and connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chain::{Snapshot, ToxicEntry};
use crate::link::{self, ConnContext};
use crate::metrics::Metrics;
use crate::seed;
use crate::{ChaosError, Proxy, Stream, Toxic, ToxicSpec, ToxicUpdate};

/// Where a proxy with an empty `listen` listens: loopback, any free port.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// Pause after a failed `accept` (out of file descriptors, say) before trying
/// again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

struct Config {
    listen: String,
    upstream: String,
}

struct Running {
    cancel: CancellationToken,
    connections: TaskTracker,
    accept: JoinHandle<()>,
}

struct ToxicTable {
    entries: Vec<ToxicEntry>,
    next_id: u64,
}

/// A proxy and everything it owns.
pub(crate) struct ProxyEntry {
    name: Arc<str>,
    seed: u64,
    config: Mutex<Config>,
    running: Mutex<Option<Running>>,
    toxics: Mutex<ToxicTable>,
    publish: watch::Sender<Arc<Snapshot>>,
    /// Connections accepted so far: each gets the next index, and its seed
    /// derives from it.
    accepted: AtomicU64,
    metrics: Metrics,
    /// Cancelled when the owning [`Chaos`](crate::Chaos) goes away.
    root: CancellationToken,
}

/// Resolves a listen address the way Go's `net.Listen` reads it: a literal
/// socket address, `:port` for every interface, or `host:port` (IPv4
/// preferred, so `localhost:3310` becomes `127.0.0.1:3310`).
pub(crate) async fn resolve_listen(listen: &str) -> Result<SocketAddr, ChaosError> {
    let listen = if listen.is_empty() {
        DEFAULT_LISTEN
    } else {
        listen
    };
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = listen.strip_prefix(':') {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
        }
    }
    let error = |source| ChaosError::Listen {
        addr: listen.to_owned(),
        source,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(error)?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| {
            error(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address found",
            ))
        })
}

impl ProxyEntry {
    pub(crate) fn new(
        name: &str,
        listen: &str,
        upstream: &str,
        chaos_seed: u64,
        metrics: Metrics,
        root: CancellationToken,
    ) -> Arc<Self> {
        let (publish, _) = watch::channel(Arc::new(Snapshot::default()));
        Arc::new(Self {
            name: Arc::from(name),
            seed: seed::mix(chaos_seed, seed::hash_str(name)),
            config: Mutex::new(Config {
                listen: listen.to_owned(),
                upstream: upstream.to_owned(),
            }),
            running: Mutex::new(None),
            toxics: Mutex::new(ToxicTable {
                entries: Vec::new(),
                next_id: 1,
            }),
            publish,
            accepted: AtomicU64::new(0),
            metrics,
            root,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.running.lock().is_some()
    }

    pub(crate) fn listen(&self) -> String {
        self.config.lock().listen.clone()
    }

    pub(crate) fn upstream(&self) -> String {
        self.config.lock().upstream.clone()
    }

    /// Whether `listen` and `upstream` describe this proxy as it is: the
    /// same upstream, and a listen address that is the same string or
    /// resolves to the address bound now.
    pub(crate) fn same_addresses(
        &self,
        listen: &str,
        resolved: Option<SocketAddr>,
        upstream: &str,
    ) -> bool {
        let config = self.config.lock();
        if config.upstream != upstream {
            return false;
        }
        config.listen == listen
            || matches!((resolved, config.listen.parse::<SocketAddr>()), (Some(a), Ok(b)) if a == b)
    }

    /// Sets new addresses; the caller stops the proxy first.
    pub(crate) fn set_addresses(&self, listen: String, upstream: String) {
        let mut config = self.config.lock();
        config.listen = listen;
        config.upstream = upstream;
    }

    /// Binds the listen address and starts accepting. A no-op if running.
    pub(crate) async fn start(self: &Arc<Self>) -> Result<(), ChaosError> {
        if self.is_enabled() {
            return Ok(());
        }
        let (listen, upstream) = {
            let config = self.config.lock();
            (config.listen.clone(), config.upstream.clone())
        };
        let addr = resolve_listen(&listen).await?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ChaosError::Listen {
                addr: listen.clone(),
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| ChaosError::Listen {
            addr: listen.clone(),
            source,
        })?;
        let bound_text = bound.to_string();
        self.config.lock().listen = bound_text.clone();

        let cancel = self.root.child_token();
        let connections = TaskTracker::new();
        let accept = tokio::spawn(accept_loop(
            Arc::clone(self),
            listener,
            Arc::from(bound_text.as_str()),
            Arc::from(upstream.as_str()),
            cancel.clone(),
            connections.clone(),
        ));
        tracing::info!(proxy = %self.name, listen = %bound, upstream = %upstream, "proxy started");
        *self.running.lock() = Some(Running {
            cancel,
            connections,
            accept,
        });
        Ok(())
    }

    /// Closes the listener and every connection, and waits until they are
    /// gone (so the port can be bound again at once). A no-op if stopped.
    pub(crate) async fn stop(&self) {
        let Some(running) = self.running.lock().take() else {
            return;
        };
        running.cancel.cancel();
        if let Err(e) = running.accept.await {
            tracing::warn!(proxy = %self.name, error = %e, "accept task failed");
        }
        running.connections.close();
        running.connections.wait().await;
        tracing::info!(proxy = %self.name, "proxy stopped");
    }

    /// The proxy as the API shows it.
    pub(crate) fn view(&self) -> Proxy {
        let (listen, upstream) = {
            let config = self.config.lock();
            (config.listen.clone(), config.upstream.clone())
        };
        Proxy {
            name: self.name.to_string(),
            listen,
            upstream,
            enabled: self.is_enabled(),
            toxics: self.toxics(),
        }
    }

    /// Upstream toxics first, then downstream, each in the order added.
    pub(crate) fn toxics(&self) -> Vec<Toxic> {
        let table = self.toxics.lock();
        let of = |stream: Stream| {
            table
                .entries
                .iter()
                .filter(move |e| e.stream == stream)
                .map(toxic_view)
        };
        of(Stream::Upstream).chain(of(Stream::Downstream)).collect()
    }

    pub(crate) fn toxic(&self, name: &str) -> Result<Toxic, ChaosError> {
        let table = self.toxics.lock();
        table
            .entries
            .iter()
            .find(|e| e.name == name)
            .map(toxic_view)
            .ok_or_else(|| self.toxic_not_found(name))
    }

    pub(crate) fn has_toxic(&self, name: &str) -> bool {
        self.toxics.lock().entries.iter().any(|e| e.name == name)
    }

    pub(crate) fn add_toxic(&self, spec: ToxicSpec) -> Result<Toxic, ChaosError> {
        check_toxicity(spec.toxicity)?;
        let name = spec.resolved_name();
        let mut table = self.toxics.lock();
        if table.entries.iter().any(|e| e.name == name) {
            return Err(ChaosError::ToxicExists {
                proxy: self.name.to_string(),
                toxic: name,
            });
        }
        let entry = ToxicEntry {
            id: table.next_id,
            revision: 0,
            name,
            stream: spec.stream,
            toxicity: spec.toxicity,
            kind: spec.kind,
        };
        table.next_id += 1;
        let view = toxic_view(&entry);
        table.entries.push(entry);
        self.publish(&table);
        Ok(view)
    }

    pub(crate) fn update_toxic(
        &self,
        name: &str,
        update: ToxicUpdate,
    ) -> Result<Toxic, ChaosError> {
        let mut table = self.toxics.lock();
        let Some(index) = table.entries.iter().position(|e| e.name == name) else {
            return Err(self.toxic_not_found(name));
        };
        let entry = &table.entries[index];
        let mut attributes = crate::toxics::attributes(&entry.kind);
        attributes.extend(update.attributes);
        let kind = crate::toxics::from_parts(entry.kind.type_name(), attributes.into())?;
        let toxicity = update.toxicity.unwrap_or(entry.toxicity);
        check_toxicity(toxicity)?;
        let entry = &mut table.entries[index];
        entry.kind = kind;
        entry.toxicity = toxicity;
        entry.revision += 1;
        let view = toxic_view(entry);
        self.publish(&table);
        Ok(view)
    }

    pub(crate) fn remove_toxic(&self, name: &str) -> Result<(), ChaosError> {
        let mut table = self.toxics.lock();
        let before = table.entries.len();
        table.entries.retain(|e| e.name != name);
        if table.entries.len() == before {
            return Err(self.toxic_not_found(name));
        }
        self.publish(&table);
        Ok(())
    }

    pub(crate) fn clear_toxics(&self) {
        let mut table = self.toxics.lock();
        if !table.entries.is_empty() {
            table.entries.clear();
            self.publish(&table);
        }
    }

    /// Hands the new list to every live link (under the table lock, so links
    /// see changes in the order they were made).
    fn publish(&self, table: &ToxicTable) {
        self.publish.send_replace(Arc::new(Snapshot {
            toxics: table.entries.clone(),
        }));
    }

    fn toxic_not_found(&self, name: &str) -> ChaosError {
        ChaosError::ToxicNotFound {
            proxy: self.name.to_string(),
            toxic: name.to_owned(),
        }
    }
}

fn toxic_view(entry: &ToxicEntry) -> Toxic {
    Toxic {
        name: entry.name.clone(),
        kind: entry.kind.clone(),
        stream: entry.stream,
        toxicity: entry.toxicity,
    }
}

/// Toxicity is a probability; a NaN would silently disable the toxic.
fn check_toxicity(toxicity: f32) -> Result<(), ChaosError> {
    if toxicity.is_finite() {
        Ok(())
    } else {
        Err(ChaosError::BadRequest(format!(
            "toxicity must be a number, got {toxicity}"
        )))
    }
}

async fn accept_loop(
    entry: Arc<ProxyEntry>,
    listener: TcpListener,
    listen: Arc<str>,
    upstream: Arc<str>,
    cancel: CancellationToken,
    connections: TaskTracker,
) {
    let upstream_totals =
        entry
            .metrics
            .direction(Stream::Upstream, &entry.name, &listen, &upstream);
    let downstream_totals =
        entry
            .metrics
            .direction(Stream::Downstream, &entry.name, &listen, &upstream);
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, peer)) => {
                let index = entry.accepted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(proxy = %entry.name, %peer, index, "accepted client");
                let ctx = ConnContext {
                    proxy: Arc::clone(&entry.name),
                    upstream: Arc::clone(&upstream),
                    seed: seed::mix(entry.seed, index),
                    toxics: entry.publish.subscribe(),
                    upstream_counters: entry.metrics.open(&upstream_totals),
                    downstream_counters: entry.metrics.open(&downstream_totals),
                    cancel: cancel.child_token(),
                    tracked: connections.token(),
                };
                tokio::spawn(link::serve(client, ctx));
            }
            Err(e) => {
                tracing::warn!(proxy = %entry.name, error = %e, "accept failed");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    // Dropping the listener closes the port: new connections are refused.
}
