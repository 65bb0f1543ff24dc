//! An in-process stand-in for the gateway that records every request it
//! actually receives, and can be told to stall, fail, delay, or answer
//! orders pending. Bound to 127.0.0.1:0; stopped when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use gauntlet_loadgen::{LoadConfig, LoadResult, Mix, Model, Stage};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One request as the target saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub body: String,
    pub key: Option<String>,
    /// The `Authorization` header, as sent.
    pub auth: Option<String>,
}

#[derive(Default)]
pub struct Behaviour {
    /// Requests arriving in `[from, until)` are held until `until`.
    pub stall: Option<(Instant, Instant)>,
    /// Every request is answered with this status.
    pub status: Option<u16>,
    /// Every request waits this long before its answer.
    pub delay: Option<Duration>,
    /// This many requests, the first ones, are answered 429.
    pub rate_limit_first: u32,
}

#[derive(Default)]
pub struct TargetState {
    pub received: Mutex<Vec<Received>>,
    pub behaviour: Mutex<Behaviour>,
    /// Orders are answered 202 PENDING and turn CONFIRMED on the second read.
    pub pending_orders: AtomicBool,
    next_user: AtomicI64,
    next_order: AtomicI64,
    reads: Mutex<HashMap<i64, u32>>,
}

pub struct Target {
    pub base_url: String,
    pub state: Arc<TargetState>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

impl Target {
    pub async fn start() -> Target {
        let state = Arc::new(TargetState::default());
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        Target {
            base_url: format!("http://{addr}"),
            state,
            stop,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().clone()
    }
}

async fn handle(
    State(st): State<Arc<TargetState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let path = uri
        .path_and_query()
        .map_or(uri.path().to_string(), |p| p.to_string());
    st.received.lock().push(Received {
        at,
        method: method.to_string(),
        path: path.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
        key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let (stall, status, delay) = {
        let mut b = st.behaviour.lock();
        if b.rate_limit_first > 0 {
            b.rate_limit_first -= 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                r#"{"error":"rate limit exceeded","detail":null}"#,
            )
                .into_response();
        }
        (b.stall, b.status, b.delay)
    };
    if let Some((from, until)) = stall {
        if at >= from && at < until {
            tokio::time::sleep_until(until).await;
        }
    }
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(s) = status {
        let s = StatusCode::from_u16(s).unwrap();
        return (s, r#"{"error":"injected","detail":null}"#).into_response();
    }
    let json = |status: StatusCode, v: serde_json::Value| {
        (
            status,
            [("content-type", "application/json")],
            v.to_string(),
        )
            .into_response()
    };
    match (method.as_str(), uri.path()) {
        ("POST", "/api/users") => {
            let id = st.next_user.fetch_add(1, Ordering::Relaxed) + 1;
            json(StatusCode::CREATED, serde_json::json!({"id": id}))
        }
        ("GET", "/api/products") => json(
            StatusCode::OK,
            serde_json::json!((1..=5)
                .map(|i| serde_json::json!({"id": i, "name": format!("p{i}"),
                    "price_cents": 100, "stock": 1000, "initial_stock": 1000}))
                .collect::<Vec<_>>()),
        ),
        ("POST", "/api/orders") => {
            let id = st.next_order.fetch_add(1, Ordering::Relaxed) + 1;
            if st.pending_orders.load(Ordering::Relaxed) {
                json(
                    StatusCode::ACCEPTED,
                    serde_json::json!({"id": id, "status": "PENDING"}),
                )
            } else {
                json(
                    StatusCode::CREATED,
                    serde_json::json!({"id": id, "status": "CONFIRMED"}),
                )
            }
        }
        ("GET", p) if p.starts_with("/api/orders/") => {
            let Ok(id) = p["/api/orders/".len()..].parse::<i64>() else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let reads = {
                let mut r = st.reads.lock();
                let n = r.entry(id).or_insert(0);
                *n += 1;
                *n
            };
            let status = if reads >= 2 { "CONFIRMED" } else { "PENDING" };
            json(
                StatusCode::OK,
                serde_json::json!({"id": id, "status": status}),
            )
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Browse-only open load at `rate` per second for `secs`.
pub fn browse_at(base_url: &str, rate: f64, secs: f64) -> LoadConfig {
    let mut c = LoadConfig::new(
        base_url,
        Model::Open {
            start_rate: rate,
            stages: vec![Stage {
                duration: Duration::from_secs_f64(secs),
                target_rate: rate,
            }],
            warmup_rate: None,
            max_users: None,
            expected_latency: Duration::from_millis(100),
        },
    );
    c.mix = Mix {
        create_user: 0,
        browse: 1,
        place_order: 0,
        poll_order: 0,
    };
    c
}

/// Runs `config` with no progress output and no cancellation.
pub async fn run(config: LoadConfig) -> LoadResult {
    gauntlet_loadgen::run_load(config, CancellationToken::new(), |_| {})
        .await
        .unwrap()
}

/// `n` requests per second as seen by the target: those in `[from, to)`
/// seconds after `origin`.
pub fn received_between(r: &[Received], origin: Instant, from: f64, to: f64) -> usize {
    r.iter()
        .filter(|x| {
            let t = x.at.saturating_duration_since(origin).as_secs_f64();
            x.at >= origin && t >= from && t < to
        })
        .count()
}
