//! What every service exposes about itself: `GET /health`, `GET /info`,
//! `GET /metrics` (Prometheus text) and `GET /circuit-breakers`, plus the
//! request-metrics middleware. A service registers its own counters in the
//! same registry at start-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tracing::Instrument;

use crate::client::ServiceClient;
use crate::config::Service;
use crate::db::Db;
use gauntlet_resilience::BreakerState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~3.3 s: loopback calls to sagas waiting on a slow provider.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// One label set of a service's own counters, e.g. `{kind="confirmed"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// A counter family labelled by `kind`, for a service's own events.
pub type KindCounter = Family<KindLabel, Counter>;

pub fn inc(family: &KindCounter, kind: &str) {
    family
        .get_or_create(&KindLabel {
            kind: kind.to_string(),
        })
        .inc();
}

/// A service's telemetry: identity, uptime, metrics registry, watched clients.
#[derive(Debug)]
pub struct Telemetry {
    pub service: Service,
    started: Instant,
    started_unix_ms: i64,
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    clients: Arc<Mutex<Vec<ServiceClient>>>,
    cpu: Mutex<CpuSample>,
    db: Mutex<Option<Db>>,
    bus: Arc<crate::events::Bus>,
}

impl Telemetry {
    pub fn new(service: Service, bus: Arc<crate::events::Bus>) -> Arc<Self> {
        let mut registry = Registry::with_prefix("gauntlet");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests served, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route",
            latency.clone(),
        );
        let clients = Arc::new(Mutex::new(Vec::new()));
        registry.register_collector(Box::new(ClientsCollector(clients.clone())));
        registry.register_collector(Box::new(BusCollector(bus.clone())));
        Arc::new(Self {
            service,
            started: Instant::now(),
            started_unix_ms: crate::db::now_ms(),
            registry: Mutex::new(registry),
            requests,
            latency,
            clients,
            cpu: Mutex::new(CpuSample::now()),
            db: Mutex::new(None),
            bus,
        })
    }

    /// Registers one of the service's own counters.
    pub fn counter(&self, name: &str, help: &str) -> KindCounter {
        let family = KindCounter::default();
        self.registry.lock().register(name, help, family.clone());
        family
    }

    /// Registers one of the service's own latency histograms (seconds).
    pub fn histogram(&self, name: &str, help: &str) -> Histogram {
        let h = latency_histogram();
        self.registry.lock().register(name, help, h.clone());
        h
    }

    /// Puts a client's breaker and retry figures on `/metrics` and
    /// `/circuit-breakers`.
    pub fn watch(&self, client: &ServiceClient) {
        self.clients.lock().push(client.clone());
    }

    /// The database `/health` pings.
    pub fn set_db(&self, db: Db) {
        *self.db.lock() = Some(db);
    }

    pub fn clients(&self) -> Vec<ServiceClient> {
        self.clients.lock().clone()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock()) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The routes every service serves, merged into its own router.
pub fn routes(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route(TELEMETRY_ROUTES[0], get(health))
        .route(TELEMETRY_ROUTES[1], get(info))
        .route(TELEMETRY_ROUTES[2], get(metrics))
        .route(TELEMETRY_ROUTES[3], get(circuit_breakers))
        .route(TELEMETRY_ROUTES[4], get(events))
        .with_state(telemetry)
}

/// The routes every service has for being watched (health, identity,
/// metrics, breakers, the event path's figures).
pub const TELEMETRY_ROUTES: [&str; 5] = [
    "/health",
    "/info",
    "/metrics",
    "/circuit-breakers",
    "/events",
];

/// Middleware counting every request by matched route and status.
pub async fn track(State(t): State<Arc<Telemetry>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    // Every request is a server span, continuing the caller's trace when
    // its `traceparent` names one (a client's own, or a peer service's);
    // but the probes and scrapes of these routes, which are not the
    // system's work and would be most of an idle system's traces.
    let span = if TELEMETRY_ROUTES.contains(&route.as_str()) {
        tracing::Span::none()
    } else {
        tracing::info_span!(
        "request",
        otel.name = %format!("{} {method} {route}", t.service),
        otel.kind = "server",
        service = %t.service,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        )
    };
    let traceparent = req
        .headers()
        .get(gauntlet_events::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    gauntlet_events::trace::continue_from(&span, traceparent);
    let start = Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    t.latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    t.requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub service: Service,
    pub status: HealthStatus,
    pub uptime_s: f64,
    pub memory_bytes: u64,
    pub cpu_percent: f64,
    pub database: &'static str,
    pub open_breakers: Vec<String>,
}

async fn health(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    let db = t.db.lock().clone();
    let database = match db {
        None => "none",
        Some(db) => match tokio::time::timeout(Duration::from_secs(1), db.ping()).await {
            Ok(Ok(())) => "ok",
            _ => "failing",
        },
    };
    let open_breakers: Vec<String> = t
        .clients()
        .iter()
        .filter(|c| c.policy().breaker().state() != BreakerState::Closed)
        .map(|c| c.link().to_string())
        .collect();
    let status = if database == "failing" {
        HealthStatus::Unhealthy
    } else if !open_breakers.is_empty() {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    let code = match status {
        HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    let cpu_percent = t.cpu.lock().percent_since();
    let body = Health {
        service: t.service,
        status,
        uptime_s: t.uptime().as_secs_f64(),
        memory_bytes: resident_bytes(),
        cpu_percent,
        database,
        open_breakers,
    };
    (code, axum::Json(body))
}

async fn info(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    let dependencies: serde_json::Map<String, serde_json::Value> = t
        .clients()
        .iter()
        .map(|c| (c.link().to_string(), c.base().into()))
        .collect();
    let database =
        t.db.lock()
            .as_ref()
            .map(|db| db.path().display().to_string());
    axum::Json(serde_json::json!({
        "service": t.service,
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "started_at_ms": t.started_unix_ms,
        "database": database,
        "dependencies": dependencies,
    }))
}

async fn metrics(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        t.encode(),
    )
}

async fn circuit_breakers(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    let breakers: Vec<serde_json::Value> = t
        .clients()
        .iter()
        .map(|c| {
            serde_json::json!({
                "link": c.link(),
                "target": c.base(),
                "breaker": c.policy().breaker().snapshot(),
                "calls": c.policy().stats(),
                "transitions": c.policy().breaker().transitions(),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "service": t.service, "breakers": breakers }))
}

/// `GET /events`: the service's event path as the harness reads it to
/// decide the system has quiesced (outbox drained, no lag) and to sample
/// lag over a run. A service with no event path answers zeros and `[]`.
async fn events(State(t): State<Arc<Telemetry>>) -> Response {
    let backlog = match t.bus.outbox_backlog().await {
        Ok(n) => n,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({
                    "error": "database_unavailable",
                    "message": format!("cannot count the outbox backlog: {e}"),
                })),
            )
                .into_response()
        }
    };
    let relays = t.bus.relay_stats();
    let consumers: Vec<serde_json::Value> = t
        .bus
        .stats()
        .iter()
        .map(|s| {
            let lag: i64 = s
                .lag
                .iter()
                .map(|l| (l.high_watermark - l.position).max(0))
                .sum();
            serde_json::json!({
                "group": s.group,
                "processed": s.processed,
                "retries": s.retries,
                "dead_lettered": s.dead_lettered,
                "errors": s.errors,
                "paused": s.paused,
                "lag": lag,
                "lag_age_ms": s.lag_age.map(|a| a.as_millis() as u64),
            })
        })
        .collect();
    axum::Json(serde_json::json!({
        "service": t.service,
        "outbox": {
            "relays": relays.len(),
            "backlog": backlog,
            "published": relays.iter().map(|r| r.published()).sum::<u64>(),
            "failures": relays.iter().map(|r| r.failures()).sum::<u64>(),
        },
        "consumers": consumers,
    }))
    .into_response()
}

/// A counter read from a client at scrape time: name, help, how to read it.
type CounterSpec = (&'static str, &'static str, fn(&ServiceClient) -> u64);

/// Encodes breaker and retry figures of the watched clients at scrape time,
/// straight from their snapshots (no second copy of the counts to drift).
#[derive(Debug)]
struct ClientsCollector(Arc<Mutex<Vec<ServiceClient>>>);

impl Collector for ClientsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let clients = self.0.lock().clone();
        {
            let mut family = encoder.encode_descriptor(
                "breaker_state",
                "Circuit breaker state per link: 1 for the current state",
                None,
                MetricType::Gauge,
            )?;
            for c in &clients {
                let state = c.policy().breaker().state();
                for s in [
                    BreakerState::Closed,
                    BreakerState::Open,
                    BreakerState::HalfOpen,
                ] {
                    let labels = [("link", c.link().to_string()), ("state", s.to_string())];
                    ConstGauge::new(i64::from(state == s))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let counters: [CounterSpec; 6] = [
            (
                "breaker_transitions",
                "Circuit breaker state transitions per link",
                |c| c.policy().breaker().snapshot().transitions,
            ),
            ("client_calls", "Calls made per link", |c| {
                c.policy().stats().calls
            }),
            ("client_retries", "Retries per link", |c| {
                c.policy().stats().retries
            }),
            ("client_timeouts", "Attempts that timed out per link", |c| {
                c.policy().stats().timeouts
            }),
            (
                "client_rejected",
                "Calls rejected by an open breaker per link",
                |c| c.policy().stats().rejected,
            ),
            ("client_failures", "Calls that failed per link", |c| {
                c.policy().stats().failures
            }),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in &clients {
                let labels = [("link", c.link().to_string())];
                ConstCounter::new(value(c)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A consumer figure read at scrape time: name, help, how to read it.
type StatSpec = (
    &'static str,
    &'static str,
    fn(&gauntlet_events::ConsumerStats) -> u64,
);

/// Encodes the service's consumer groups and outbox relays at scrape time.
#[derive(Debug)]
struct BusCollector(Arc<crate::events::Bus>);

impl Collector for BusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let counters: [StatSpec; 4] = [
            ("consumer_processed", "Messages handled, by group", |s| {
                s.processed
            }),
            ("consumer_retries", "Handler retries, by group", |s| {
                s.retries
            }),
            (
                "consumer_dead_lettered",
                "Messages sent to a DLQ, by group",
                |s| s.dead_lettered,
            ),
            (
                "consumer_errors",
                "Failed handler attempts, by group",
                |s| s.errors,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for s in &stats {
                let labels = [("group", s.group.clone())];
                ConstCounter::new(value(s)).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "consumer_lag",
                "Messages not yet handled, by group, topic and partition",
                None,
                MetricType::Gauge,
            )?;
            for s in &stats {
                for l in &s.lag {
                    let labels = [
                        ("group", s.group.clone()),
                        ("topic", l.topic.clone()),
                        ("partition", l.partition.to_string()),
                    ];
                    let lag = (l.high_watermark - l.position).max(0);
                    ConstGauge::new(lag).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "consumer_processing_seconds",
                "Time to handle a message (retries included): p50 and p99, by group",
                None,
                MetricType::Gauge,
            )?;
            for s in &stats {
                for (q, v) in [("0.5", s.processing_p50()), ("0.99", s.processing_p99())] {
                    let labels = [("group", s.group.clone()), ("quantile", q.to_string())];
                    ConstGauge::new(v.as_secs_f64()).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let relays = self.0.relay_stats();
        if !relays.is_empty() {
            let mut family = encoder.encode_descriptor(
                "outbox_published",
                "Outbox rows published",
                None,
                MetricType::Counter,
            )?;
            let total: u64 = relays.iter().map(|r| r.published()).sum();
            ConstCounter::new(total).encode(family.encode_family(&[("relay", "outbox")])?)?;
        }
        Ok(())
    }
}

/// Resident memory of this process: /proc/self/statm's resident pages in
/// the kernel's page size (0 where /proc cannot be read).
#[cfg(target_os = "linux")]
fn resident_bytes() -> u64 {
    procfs::process::Process::myself()
        .and_then(|me| me.statm())
        .map(|m| m.resident.saturating_mul(procfs::page_size()))
        .unwrap_or(0)
}

/// Resident memory of this process: unknown (0) without /proc.
#[cfg(not(target_os = "linux"))]
fn resident_bytes() -> u64 {
    0
}

/// CPU time of this process, to report a percentage between two health checks.
#[derive(Debug)]
struct CpuSample {
    at: Instant,
    ticks: u64,
}

impl CpuSample {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            ticks: cpu_ticks(),
        }
    }

    fn percent_since(&mut self) -> f64 {
        let next = Self::now();
        let wall = next.at.duration_since(self.at).as_secs_f64();
        let cpu = next.ticks.saturating_sub(self.ticks) as f64 / ticks_per_second() as f64;
        *self = next;
        if wall > 0.0 {
            cpu / wall * 100.0
        } else {
            0.0
        }
    }
}

/// CPU time of this process in clock ticks, user and system (utime and
/// stime of /proc/self/stat, one read); 0 where /proc cannot be read.
#[cfg(target_os = "linux")]
fn cpu_ticks() -> u64 {
    procfs::process::Process::myself()
        .and_then(|me| me.stat())
        .map(|s| s.utime.saturating_add(s.stime))
        .unwrap_or(0)
}

/// The kernel's clock ticks per second (`USER_HZ`), never 0.
#[cfg(target_os = "linux")]
fn ticks_per_second() -> u64 {
    procfs::ticks_per_second().max(1)
}

/// CPU time of this process: unknown (0) without /proc.
#[cfg(not(target_os = "linux"))]
fn cpu_ticks() -> u64 {
    0
}

#[cfg(not(target_os = "linux"))]
fn ticks_per_second() -> u64 {
    100
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_whole_pages_and_more_than_nothing() {
        let bytes = resident_bytes();
        // A test binary with its runtime mapped is well over a megabyte.
        assert!(bytes > 1 << 20, "resident {bytes} bytes");
        assert_eq!(bytes % procfs::page_size(), 0);
    }

    #[test]
    fn cpu_time_advances_while_the_process_works() {
        let mut sample = CpuSample::now();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Reading /proc is itself work: spin until a tick is counted.
        while cpu_ticks() <= sample.ticks {
            assert!(Instant::now() < deadline, "no CPU time counted in 10 s");
        }
        let percent = sample.percent_since();
        // Other tests share the process, so no upper bound but a finite one.
        assert!(percent > 0.0 && percent.is_finite(), "{percent}%");
    }
}
