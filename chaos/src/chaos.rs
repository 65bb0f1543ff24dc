//! [`Chaos`]: the proxy registry, and the operations the HTTP API and the
//! harness both drive.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::proxy::{resolve_listen, ProxyEntry};
use crate::{ChaosError, Proxy, ProxySpec, ProxyUpdate, Toxic, ToxicSpec, ToxicUpdate};

/// The registry of proxies. Cheap to clone: every clone drives the same
/// proxies. Dropping the last clone stops every proxy.
#[derive(Clone)]
pub struct Chaos {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    proxies: RwLock<BTreeMap<String, Arc<ProxyEntry>>>,
    /// Serialises the operations that start or stop listeners, so two of them
    /// never race for the same proxy or port.
    ops: tokio::sync::Mutex<()>,
    metrics: Metrics,
    root: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.root.cancel();
    }
}

/// What a populate call changed, so a failure can put things back.
enum Undo {
    Added(String),
    Replaced {
        old: Arc<ProxyEntry>,
        was_enabled: bool,
    },
}

impl Chaos {
    /// An empty registry. `seed` drives every random choice its toxics make
    /// (toxicity, jitter, slice sizes), so equal seeds and equal call
    /// sequences make equal choices.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                seed,
                proxies: RwLock::new(BTreeMap::new()),
                ops: tokio::sync::Mutex::new(()),
                metrics: Metrics::new(),
                root: CancellationToken::new(),
            }),
        }
    }

    /// The seed this registry was made with.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    fn entry(&self, name: &str) -> Result<Arc<ProxyEntry>, ChaosError> {
        self.inner
            .proxies
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| ChaosError::ProxyNotFound(name.to_owned()))
    }

    fn new_entry(&self, spec: &ProxySpec) -> Arc<ProxyEntry> {
        ProxyEntry::new(
            &spec.name,
            &spec.listen,
            &spec.upstream,
            self.inner.seed,
            self.inner.metrics.clone(),
            self.inner.root.clone(),
        )
    }

    /// Creates a proxy and, if `spec.enabled`, starts listening.
    pub async fn create_proxy(&self, spec: ProxySpec) -> Result<Proxy, ChaosError> {
        check_spec(&spec, None)?;
        let _ops = self.inner.ops.lock().await;
        if self.inner.proxies.read().contains_key(&spec.name) {
            return Err(ChaosError::ProxyExists(spec.name));
        }
        let entry = self.new_entry(&spec);
        if spec.enabled {
            entry.start().await?;
        }
        self.inner
            .proxies
            .write()
            .insert(spec.name.clone(), Arc::clone(&entry));
        Ok(entry.view())
    }

    /// Creates or replaces a set of proxies, all or nothing.
    ///
    /// Every entry is checked first (name and upstream present, names
    /// unique, listen addresses of enabled entries resolvable); nothing
    /// changes unless all pass. Then an existing proxy with the same listen
    /// and upstream is left as it is, one that differs is replaced, and new
    /// ones are created. If starting one fails (its port is taken, say),
    /// everything done so far is undone and the error returned.
    pub async fn populate(&self, specs: Vec<ProxySpec>) -> Result<Vec<Proxy>, ChaosError> {
        let mut names = HashSet::new();
        let mut resolved: Vec<Option<SocketAddr>> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            check_spec(spec, Some(i + 1))?;
            if !names.insert(spec.name.as_str()) {
                return Err(ChaosError::BadRequest(format!(
                    "duplicate proxy name {:?} at proxy {}",
                    spec.name,
                    i + 1
                )));
            }
            resolved.push(if spec.enabled {
                Some(resolve_listen(&spec.listen).await?)
            } else {
                None
            });
        }

        let _ops = self.inner.ops.lock().await;
        let mut undo = Vec::new();
        let mut result = Vec::with_capacity(specs.len());
        for (spec, resolved) in specs.iter().zip(resolved) {
            let existing = self.inner.proxies.read().get(&spec.name).cloned();
            if let Some(existing) = existing {
                if existing.same_addresses(&spec.listen, resolved, &spec.upstream) {
                    result.push(Arc::clone(&existing));
                    continue;
                }
                let was_enabled = existing.is_enabled();
                existing.stop().await;
                self.inner.proxies.write().remove(&spec.name);
                undo.push(Undo::Replaced {
                    old: existing,
                    was_enabled,
                });
            } else {
                undo.push(Undo::Added(spec.name.clone()));
            }
            let entry = self.new_entry(spec);
            if spec.enabled {
                if let Err(e) = entry.start().await {
                    self.roll_back(undo).await;
                    return Err(e);
                }
            }
            self.inner
                .proxies
                .write()
                .insert(spec.name.clone(), Arc::clone(&entry));
            result.push(entry);
        }
        Ok(result.iter().map(|e| e.view()).collect())
    }

    async fn roll_back(&self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            let name = match &step {
                Undo::Added(name) => name.clone(),
                Undo::Replaced { old, .. } => old.name().to_owned(),
            };
            let new = self.inner.proxies.write().remove(&name);
            if let Some(new) = new {
                new.stop().await;
            }
            if let Undo::Replaced { old, was_enabled } = step {
                if was_enabled {
                    if let Err(e) = old.start().await {
                        tracing::warn!(proxy = %name, error = %e, "could not restart proxy while undoing populate");
                    }
                }
                self.inner.proxies.write().insert(name, old);
            }
        }
    }

    /// One proxy.
    pub fn get(&self, name: &str) -> Result<Proxy, ChaosError> {
        Ok(self.entry(name)?.view())
    }

    /// Every proxy, by name.
    pub fn list(&self) -> Vec<Proxy> {
        let entries: Vec<_> = self.inner.proxies.read().values().cloned().collect();
        entries.iter().map(|e| e.view()).collect()
    }

    /// Changes a proxy. New addresses restart it (its connections are
    /// dropped); `enabled` starts or stops it.
    pub async fn update_proxy(&self, name: &str, update: ProxyUpdate) -> Result<Proxy, ChaosError> {
        let _ops = self.inner.ops.lock().await;
        let entry = self.entry(name)?;
        let listen = update.listen.unwrap_or_else(|| entry.listen());
        let upstream = update.upstream.unwrap_or_else(|| entry.upstream());
        let enabled = update.enabled.unwrap_or_else(|| entry.is_enabled());
        let resolved = resolve_listen(&listen).await.ok();
        if !entry.same_addresses(&listen, resolved, &upstream) {
            entry.stop().await;
            entry.set_addresses(listen, upstream);
        }
        if enabled {
            entry.start().await?;
        } else {
            entry.stop().await;
        }
        Ok(entry.view())
    }

    /// Enables (listens) or disables (closes the listener and every
    /// connection) a proxy.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<Proxy, ChaosError> {
        self.update_proxy(
            name,
            ProxyUpdate {
                enabled: Some(enabled),
                ..ProxyUpdate::default()
            },
        )
        .await
    }

    /// Stops and forgets a proxy.
    pub async fn delete_proxy(&self, name: &str) -> Result<(), ChaosError> {
        let _ops = self.inner.ops.lock().await;
        let entry = self
            .inner
            .proxies
            .write()
            .remove(name)
            .ok_or_else(|| ChaosError::ProxyNotFound(name.to_owned()))?;
        entry.stop().await;
        Ok(())
    }

    /// Adds a toxic; live connections take it on at once.
    pub fn add_toxic(&self, proxy: &str, toxic: ToxicSpec) -> Result<Toxic, ChaosError> {
        self.entry(proxy)?.add_toxic(toxic)
    }

    /// One toxic of a proxy.
    pub fn get_toxic(&self, proxy: &str, toxic: &str) -> Result<Toxic, ChaosError> {
        self.entry(proxy)?.toxic(toxic)
    }

    /// The toxics of a proxy, upstream ones first.
    pub fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ChaosError> {
        Ok(self.entry(proxy)?.toxics())
    }

    /// Changes a toxic's toxicity or attributes; live connections keep what
    /// is in flight and carry on under the new settings.
    pub fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        update: ToxicUpdate,
    ) -> Result<Toxic, ChaosError> {
        self.entry(proxy)?.update_toxic(toxic, update)
    }

    /// Removes a toxic; what it held on live connections goes on, in order.
    pub fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ChaosError> {
        self.entry(proxy)?.remove_toxic(toxic)
    }

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ChaosError> {
        let _ops = self.inner.ops.lock().await;
        let entries: Vec<_> = self.inner.proxies.read().values().cloned().collect();
        for entry in entries {
            entry.start().await?;
            entry.clear_toxics();
        }
        Ok(())
    }

    /// Closes every listener and connection and forgets every proxy.
    pub async fn shutdown(&self) {
        let _ops = self.inner.ops.lock().await;
        let entries: Vec<_> = std::mem::take(&mut *self.inner.proxies.write())
            .into_values()
            .collect();
        for entry in entries {
            entry.stop().await;
        }
    }

    /// The Prometheus exposition of the byte counters.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.render()
    }

    /// Whether the named proxy exists and has a toxic of this name.
    pub(crate) fn has_toxic(&self, proxy: &str, toxic: &str) -> Result<bool, ChaosError> {
        Ok(self.entry(proxy)?.has_toxic(toxic))
    }
}

/// Name and upstream are required; `at` is the 1-based position in a
/// populate list, named in the message as Toxiproxy does.
fn check_spec(spec: &ProxySpec, at: Option<usize>) -> Result<(), ChaosError> {
    let field = |name: &str| match at {
        Some(i) => ChaosError::MissingField(format!("{name} at proxy {i}")),
        None => ChaosError::MissingField(name.to_owned()),
    };
    if spec.name.is_empty() {
        return Err(field("name"));
    }
    if spec.upstream.is_empty() {
        return Err(field("upstream"));
    }
    Ok(())
}
