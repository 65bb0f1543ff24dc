//! Starting, stopping and crashing one service.
//!
//! A service is its router, its database and its background loops, all owned
//! by one task. [`RunningService::stop`] drains in-flight requests;
//! [`RunningService::crash`] kills the task and everything it owns at once,
//! as a `kill -9` would, leaving the database file behind for a restart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::ServiceClient;
use crate::config::{link_name, Endpoints, Service, SystemConfig};
use crate::db::{Db, DbError};
use crate::events::{Bus, Instance};
use crate::telemetry::{self, Telemetry};
use gauntlet_events::EventProducer;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{service} needs the address of {target}, and none was configured")]
    MissingEndpoint { service: Service, target: Service },
    #[error("cannot bind {service} to {addr}: {source}")]
    Bind {
        service: Service,
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot reach the event bus: {0}")]
    Events(String),
}

/// What a service is given to start: who it is, where its data lives, how
/// to reach the others.
#[derive(Clone, Debug)]
pub struct ServiceContext {
    pub name: Service,
    pub data_dir: PathBuf,
    pub config: Arc<SystemConfig>,
    pub endpoints: Arc<Endpoints>,
    pub http: reqwest::Client,
    pub telemetry: Arc<Telemetry>,
    /// This service's consumers and relays (empty without Kafka).
    pub bus: Arc<Bus>,
    /// Which of its service's processes this is: the whole service unless
    /// several share the work (see [`Instance`]).
    pub instance: Instance,
}

impl ServiceContext {
    pub fn new(
        name: Service,
        data_dir: PathBuf,
        config: Arc<SystemConfig>,
        endpoints: Arc<Endpoints>,
        http: reqwest::Client,
    ) -> Self {
        let bus = Bus::new();
        Self {
            name,
            data_dir,
            config,
            endpoints,
            http,
            telemetry: Telemetry::new(name, bus.clone()),
            bus,
            instance: Instance::default(),
        }
    }

    /// This process as one of several of its service.
    pub fn with_instance(mut self, instance: Instance) -> Self {
        self.instance = instance;
        self
    }

    /// The Kafka bootstrap servers, when the system has a broker.
    pub fn kafka(&self) -> Option<&str> {
        self.endpoints.kafka.as_deref()
    }

    /// A producer for this service, when the system has a broker.
    pub fn producer(&self) -> Result<Option<EventProducer>, StartError> {
        let Some(bootstrap) = self.kafka() else {
            return Ok(None);
        };
        EventProducer::new(bootstrap, self.name.as_str())
            .map(Some)
            .map_err(|e| StartError::Events(e.to_string()))
    }

    /// The client for this service's link to `to`, watched by telemetry.
    pub fn client(&self, to: Service) -> Result<ServiceClient, StartError> {
        let base = self
            .endpoints
            .url(self.name, to)
            .ok_or(StartError::MissingEndpoint {
                service: self.name,
                target: to,
            })?;
        let link = link_name(self.name, to);
        let client = ServiceClient::new(
            link.clone(),
            base,
            self.http.clone(),
            self.config.resilience(&link),
            self.config.seed_for(&link),
        );
        self.telemetry.watch(&client);
        Ok(client)
    }

    /// Starts this service's outbox relay over `db` as a background loop;
    /// returns the notifier to poke after each commit.
    pub fn relay(
        &self,
        db: &Db,
        producer: EventProducer,
        built: &mut Built,
    ) -> Arc<tokio::sync::Notify> {
        let seed = self.config.seed_for(&format!("{}.relay", self.name));
        let (relay, notify) =
            self.bus
                .relay(db, producer, &self.config.events, self.instance.share, seed);
        built.background.push(relay);
        notify
    }

    /// Starts this service's consumer group (named after the service), on
    /// the topics [`SUBSCRIPTIONS`](crate::events::SUBSCRIPTIONS) gives it.
    pub fn consume(&self, handler: Arc<dyn gauntlet_events::Handler>) -> Result<(), StartError> {
        let topics = crate::events::subscriptions(self.name);
        let bootstrap = self.kafka().ok_or_else(|| {
            StartError::Events(format!(
                "{} consumes events, and there is no broker",
                self.name
            ))
        })?;
        let seed = self.config.seed_for(&format!("{}.consumer", self.name));
        self.bus
            .consume(
                gauntlet_events::ConsumerConfig::new(
                    bootstrap,
                    self.name.as_str(),
                    topics.iter().copied(),
                ),
                &self.config.events,
                self.instance,
                seed,
                handler,
            )
            .map_err(|e| StartError::Events(e.to_string()))
    }

    /// Opens this service's database with its migrations.
    pub async fn db(&self, migrator: &sqlx::migrate::Migrator) -> Result<Db, StartError> {
        let db = Db::open(&self.data_dir, self.name.as_str(), migrator).await?;
        self.telemetry.set_db(db.clone());
        Ok(db)
    }
}

/// A built service, ready to serve.
pub struct Built {
    pub router: Router,
    pub db: Option<Db>,
    /// Loops that live as long as the service (saga recovery, health checks).
    /// Each must end when `life` is cancelled or be safe to drop at any await.
    pub background: Vec<BoxFuture<'static, ()>>,
}

impl Built {
    pub fn new(router: Router) -> Self {
        Self {
            router,
            db: None,
            background: Vec::new(),
        }
    }
}

/// A service serving on a loopback port.
#[derive(Debug)]
pub struct RunningService {
    pub name: Service,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    stop: CancellationToken,
    task: JoinHandle<()>,
    db: Option<Db>,
    pub bus: Arc<Bus>,
}

impl RunningService {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop: no new connections, in-flight requests finish,
    /// consumers commit and leave their groups.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        self.bus.stop().await;
        if let Some(db) = &self.db {
            db.close().await;
        }
    }

    /// Abrupt stop: every connection, request and loop dies where it is.
    pub async fn crash(self) {
        self.bus.kill();
        self.task.abort();
        let _ = self.task.await;
        if let Some(db) = &self.db {
            db.close().await;
        }
    }
}

/// A service's router as it is served: its own routes, the telemetry
/// routes (`/health`, `/info`, `/metrics`, ...), JSON errors for an unknown
/// path (the gateway keeps its own, which names the API) or a method a path
/// does not take, and the request metrics and spans around all of it.
pub fn served(ctx: &ServiceContext, router: Router) -> Router {
    let app = router.merge(telemetry::routes(ctx.telemetry.clone()));
    let app = if ctx.name == Service::Gateway {
        app
    } else {
        app.fallback(crate::error::no_route)
    };
    app.method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            ctx.telemetry.clone(),
            telemetry::track,
        ))
}

/// Serves a built service on `listener`, with the common routes and metrics.
pub fn spawn(ctx: &ServiceContext, listener: TcpListener, built: Built) -> RunningService {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let app = served(ctx, built.router);
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let name = ctx.name;
    let background = built.background;
    let task = tokio::spawn(async move {
        // The loops run inside this task so that aborting it (a crash) kills
        // them too; a graceful stop ends them once the server has drained.
        let loops = async move {
            futures::future::join_all(background).await;
            std::future::pending::<()>().await
        };
        tokio::select! {
            r = crate::server::run(listener, app, shutdown) => {
                if let Err(e) = r { tracing::error!(service = %name, error = %e, "server failed"); }
            }
            _ = loops => {}
        }
    });
    RunningService {
        name: ctx.name,
        addr,
        data_dir: ctx.data_dir.clone(),
        stop,
        task,
        db: built.db,
        bus: ctx.bus.clone(),
    }
}

/// Binds `addr` (port 0 for any free port) on loopback or as given.
pub async fn bind(service: Service, addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            service,
            addr: addr.to_string(),
            source,
        })
}
