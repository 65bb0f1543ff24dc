//! The whole system in one process: every service on its own loopback port,
//! each with its own database file under one run directory.
//!
//! Start-up is two phases so a fault layer can sit on the links: [`bind`]
//! reserves every service's port (so every address is known), then
//! [`Bound::start`] starts the services with the URLs each caller must use
//! for each link (a proxy's, or the service's own).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::client::http_client;
use crate::config::{Endpoints, Service, SystemConfig};
use crate::service::{self, RunningService, ServiceContext, StartError};
use crate::services;

/// Why a service's consumers could not be paused or resumed.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    /// The service is crashed or stopped: restart it first.
    #[error("{service} is not running")]
    NotRunning { service: Service },
    /// A consumer of the service refused.
    #[error(transparent)]
    Consumer(Box<gauntlet_events::EventsError>),
}

impl From<gauntlet_events::EventsError> for PauseError {
    fn from(e: gauntlet_events::EventsError) -> Self {
        Self::Consumer(Box::new(e))
    }
}

/// Where and how to run the system.
#[derive(Debug, Clone, Default)]
pub struct SystemOptions {
    /// The run directory for the databases; a fresh temporary one if `None`.
    pub data_dir: Option<PathBuf>,
    pub config: SystemConfig,
    /// Fixed listen addresses per service (`127.0.0.1:8080`); others get
    /// an ephemeral loopback port.
    pub addrs: BTreeMap<Service, String>,
    /// Kafka bootstrap servers, as clients must use them; without them the
    /// async flow answers 503.
    pub kafka: Option<String>,
}

/// Every service's port reserved, nothing started yet.
pub struct Bound {
    listeners: BTreeMap<Service, TcpListener>,
    endpoints: Endpoints,
    data_dir: PathBuf,
    tempdir: Option<tempfile::TempDir>,
    config: Arc<SystemConfig>,
}

/// Reserves a port for every service and prepares the run directory.
pub async fn bind(opts: SystemOptions) -> Result<Bound, StartError> {
    let (data_dir, tempdir) = match opts.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StartError::Config(format!("cannot create data dir {}: {e}", dir.display()))
            })?;
            (dir, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("gauntlet-")
                .tempdir()
                .map_err(|e| StartError::Config(format!("cannot create a temp dir: {e}")))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let mut listeners = BTreeMap::new();
    let mut endpoints = Endpoints::default();
    for name in Service::ALL {
        let addr = opts
            .addrs
            .get(&name)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:0".to_string());
        let listener = service::bind(name, &addr).await?;
        let local = listener.local_addr().map_err(|source| StartError::Bind {
            service: name,
            addr: addr.clone(),
            source,
        })?;
        endpoints.services.insert(name, format!("http://{local}"));
        listeners.insert(name, listener);
    }
    endpoints.kafka = opts.kafka;
    Ok(Bound {
        listeners,
        endpoints,
        data_dir,
        tempdir,
        config: Arc::new(opts.config),
    })
}

impl Bound {
    /// Each service's own URL.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Sets the Kafka bootstrap servers the services will use.
    pub fn set_kafka(&mut self, bootstrap: Option<String>) {
        self.endpoints.kafka = bootstrap;
    }

    /// Starts every service, callees first. `links` overrides the URL a
    /// caller uses for a link (`"orders->payments" => proxy URL`).
    pub async fn start(mut self, links: BTreeMap<String, String>) -> Result<System, StartError> {
        self.endpoints.links = links;
        let endpoints = Arc::new(self.endpoints);
        let http = http_client();
        let mut system = System {
            config: self.config,
            endpoints,
            data_dir: self.data_dir,
            _tempdir: self.tempdir,
            http,
            services: BTreeMap::new(),
        };
        for name in Service::ALL {
            let Some(listener) = self.listeners.remove(&name) else {
                continue;
            };
            let running = services::start(system.context(name), listener).await;
            match running {
                Ok(r) => {
                    system.services.insert(name, r);
                }
                Err(e) => {
                    system.stop().await;
                    return Err(e);
                }
            }
        }
        Ok(system)
    }
}

/// The running system.
pub struct System {
    config: Arc<SystemConfig>,
    endpoints: Arc<Endpoints>,
    data_dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    http: reqwest::Client,
    services: BTreeMap<Service, RunningService>,
}

impl System {
    /// Binds and starts everything with no proxies on the links.
    pub async fn start(opts: SystemOptions) -> Result<System, StartError> {
        bind(opts).await?.start(BTreeMap::new()).await
    }

    fn context(&self, name: Service) -> ServiceContext {
        ServiceContext::new(
            name,
            self.data_dir.clone(),
            self.config.clone(),
            self.endpoints.clone(),
            self.http.clone(),
        )
    }

    /// A service's own URL (not through any proxy).
    pub fn url(&self, name: Service) -> String {
        self.endpoints
            .services
            .get(&name)
            .cloned()
            .unwrap_or_default()
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn config(&self) -> &SystemConfig {
        &self.config
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn is_running(&self, name: Service) -> bool {
        self.services.contains_key(&name)
    }

    /// Kills a service where it stands: connections, requests and loops.
    /// Its database file stays for [`System::restart`].
    pub async fn crash(&mut self, name: Service) -> bool {
        match self.services.remove(&name) {
            Some(s) => {
                tracing::info!(service = %name, "crashing");
                s.crash().await;
                true
            }
            None => false,
        }
    }

    /// Starts a crashed or stopped service again, on the same port and the
    /// same database.
    pub async fn restart(&mut self, name: Service) -> Result<(), StartError> {
        if let Some(s) = self.services.remove(&name) {
            s.stop().await;
        }
        let url = self.url(name);
        let addr = url.trim_start_matches("http://").to_string();
        let listener = service::bind(name, &addr).await?;
        let running = services::start(self.context(name), listener).await?;
        tracing::info!(service = %name, %addr, "restarted");
        self.services.insert(name, running);
        Ok(())
    }

    /// Pauses (or resumes) every consumer group of a service, as a fault.
    pub fn set_consumers_paused(&self, name: Service, paused: bool) -> Result<(), PauseError> {
        let s = self
            .services
            .get(&name)
            .ok_or(PauseError::NotRunning { service: name })?;
        s.bus.set_paused(paused).map_err(PauseError::from)
    }

    /// Stops every service gracefully, callers first.
    pub async fn stop(&mut self) {
        for name in Service::ALL.into_iter().rev() {
            if let Some(s) = self.services.remove(&name) {
                s.stop().await;
            }
        }
    }
}
