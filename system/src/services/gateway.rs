//! gateway: the system's front door. Routes `/api/users`, `/api/products`
//! and `/api/orders` to their services (only to instances the registry
//! calls routable), checks the API key and the rate limit when configured,
//! and answers `/services/status` from the registry.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures::FutureExt;
use parking_lot::Mutex;

use crate::client::{ServiceClient, IDEMPOTENCY_KEY};
use crate::config::{GatewayConfig, ServiceName};
use crate::error::ApiError;
use crate::registry::Registry;
use crate::service::{Built, ServiceContext, StartError};

#[derive(Clone)]
pub struct GatewayState {
    users: ServiceClient,
    catalog: ServiceClient,
    orders: ServiceClient,
    registry: Arc<Registry>,
    edge: Arc<Edge>,
}

/// The edge policies: API key and a token-bucket rate limit.
#[derive(Debug)]
pub struct Edge {
    api_key: Option<String>,
    bucket: Option<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Edge {
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            api_key: config.api_key.clone(),
            bucket: config.rate_limit_per_sec.map(|r| {
                Mutex::new(Bucket {
                    rate: f64::from(r),
                    tokens: f64::from(r),
                    at: Instant::now(),
                })
            }),
        }
    }

    fn admit(&self) -> bool {
        let Some(bucket) = &self.bucket else {
            return true;
        };
        let mut b = bucket.lock();
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * b.rate).min(b.rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub fn app(state: GatewayState) -> Router {
    let api = Router::new()
        .route("/api/users", any(forward))
        .route("/api/users/{*rest}", any(forward))
        .route("/api/products", any(forward))
        .route("/api/products/{*rest}", any(forward))
        .route("/api/orders", any(forward))
        .route("/api/orders/{*rest}", any(forward))
        .route_layer(axum::middleware::from_fn_with_state(
            state.edge.clone(),
            edge,
        ));
    api.route("/services/status", get(status)).with_state(state)
}

pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    let registry = Registry::new();
    for service in ServiceName::ALL {
        if service == ServiceName::Gateway {
            continue;
        }
        // Probe each service where the gateway would reach it.
        if let Some(url) = ctx.endpoints.url(ServiceName::Gateway, service) {
            registry.register(service, url);
        }
    }
    let state = GatewayState {
        users: ctx.client(ServiceName::Users)?,
        catalog: ctx.client(ServiceName::Catalog)?,
        orders: ctx.client(ServiceName::Orders)?,
        registry: registry.clone(),
        edge: Arc::new(Edge::new(&ctx.config.gateway)),
    };
    let mut built = Built::new(app(state));
    built.background.push(
        registry
            .run(ctx.http.clone(), ctx.config.health_interval)
            .boxed(),
    );
    Ok(built)
}

async fn edge(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    if let Some(key) = &edge.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong API key")
                .with_detail("send Authorization: Bearer <key>")
                .into_response();
        }
    }
    if !edge.admit() {
        return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded").into_response();
    }
    next.run(req).await
}

async fn forward(
    State(st): State<GatewayState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let (service, client) = if path.starts_with("/api/users") {
        (ServiceName::Users, &st.users)
    } else if path.starts_with("/api/products") {
        (ServiceName::Catalog, &st.catalog)
    } else {
        (ServiceName::Orders, &st.orders)
    };
    if st.registry.pick(service).is_none() {
        return Err(ApiError::unavailable(format!(
            "no healthy instance of {service}"
        )));
    }
    let target = match uri.query() {
        Some(q) => format!("{}?{q}", &path["/api".len()..]),
        None => path["/api".len()..].to_string(),
    };
    let mut out = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = headers.get(&name) {
            out.insert(name, v.clone());
        }
    }
    let key = headers.get(IDEMPOTENCY_KEY).cloned();
    if let Some(k) = &key {
        out.insert(IDEMPOTENCY_KEY, k.clone());
    }
    // Reads are safe to repeat; a write only when it carries a key.
    let retryable = method == Method::GET || key.is_some();
    let body = (!body.is_empty()).then_some(body);
    let resp = client.send(method, &target, out, body, retryable).await?;
    let mut response = (resp.status, resp.body).into_response();
    let ct = resp
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CONTENT_TYPE, ct);
    Ok(response)
}

async fn status(State(st): State<GatewayState>) -> impl IntoResponse {
    let instances = st.registry.instances();
    let routable = instances.iter().filter(|i| i.routable).count();
    axum::Json(serde_json::json!({
        "services": instances,
        "routable": routable,
        "total": instances.len(),
    }))
}
