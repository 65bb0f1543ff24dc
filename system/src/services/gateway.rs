//! gateway: the system's front door. Routes `/api/users`, `/api/products`
//! and `/api/orders` to their services (only to instances the registry
//! calls routable), checks the API key and the rate limit when configured,
//! and answers `/services/status` from the registry.
//!
//! Bad input stops here, with a JSON error and a 4xx, before anything is
//! forwarded: a path the API does not have (404), a method a path does
//! not take (405, with `Allow`), a body over [`MAX_BODY`] (413), a write
//! whose body is not JSON (415). A request is read whole before it is
//! answered, so a client still sending its body never has its answer
//! lost to a connection reset; and a service is only sent requests its
//! handlers read whole, so it never answers early either (an early
//! answer with the body unread used to reach the client as a 504).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
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

/// The largest request body the gateway takes, in bytes: orders, users
/// and products are a few hundred bytes of JSON; a megabyte is generous
/// and still keeps one client from holding a service's memory.
pub const MAX_BODY: usize = 1 << 20;

/// The public API: each path shape and the methods it takes. `{}` is one
/// path segment (an id).
const ROUTES: &[(&str, &[Method])] = &[
    ("/api/users", &[Method::POST]),
    ("/api/users/{}", &[Method::GET]),
    ("/api/products", &[Method::GET, Method::POST]),
    ("/api/products/{}", &[Method::GET]),
    ("/api/orders", &[Method::GET, Method::POST]),
    ("/api/orders/{}", &[Method::GET]),
];

/// The methods `path` takes, or `None` when the API has no such path.
fn methods_of(path: &str) -> Option<&'static [Method]> {
    let given: Vec<&str> = path.split('/').collect();
    ROUTES.iter().find_map(|(shape, methods)| {
        let want: Vec<&str> = shape.split('/').collect();
        let fits = want.len() == given.len()
            && want
                .iter()
                .zip(&given)
                .all(|(w, g)| (*w == "{}" && !g.is_empty()) || w == g);
        fits.then_some(*methods)
    })
}

/// How much of a body too large, or not wanted, is still read (and
/// dropped) before the answer: a server that answers and closes with the
/// body unread makes the kernel reset the connection, and the client may
/// lose the answer with it. Past this, the connection is not worth it.
const DRAIN_LIMIT: usize = 8 << 20;

/// A request's body, whole: up to [`MAX_BODY`] kept, past it read on to
/// [`DRAIN_LIMIT`] and dropped, and refused.
async fn read_body(mut body: axum::body::Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(format!("the request body could not be read: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen > DRAIN_LIMIT {
                return Err(too_large());
            }
            if seen <= MAX_BODY {
                kept.extend_from_slice(&data);
            }
        }
    }
    if seen > MAX_BODY {
        return Err(too_large());
    }
    Ok(kept.freeze())
}

/// Reads a body that will not be used, so the answer reaches the client.
async fn drain(body: axum::body::Body) {
    let _ = read_body(body).await;
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        .with_detail(format!("at most {MAX_BODY} bytes"))
}

/// Any path the API does not have.
async fn not_found(req: Request) -> ApiError {
    let (parts, body) = req.into_parts();
    drain(body).await;
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", parts.method, parts.uri.path()),
    )
    .with_detail("the API: /api/users, /api/products, /api/orders, /services/status, /openapi.json")
}

/// Any other method on a read-only path: 405 in JSON, as on `/api`.
async fn only_get(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    drain(body).await;
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {}", parts.uri.path(), parts.method),
    )
    .with_detail("allowed: GET, HEAD")
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
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
    api.route("/services/status", get(status).fallback(only_get))
        .route(
            "/openapi.json",
            get(crate::openapi::serve).fallback(only_get),
        )
        .fallback(not_found)
        .with_state(state)
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

async fn forward(State(st): State<GatewayState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let path = uri.path();
    let Some(allowed) = methods_of(path) else {
        drain(body).await;
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no route {method} {path}"),
        ));
    };
    if !allowed.contains(&method) {
        drain(body).await;
        let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        let allow = allow.join(", ");
        let mut response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} does not take {method}"),
        )
        .with_detail(format!("allowed: {allow}"))
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, v);
        }
        return Ok(response);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        // Not read at all: refused whole, connection and all.
        return Err(too_large());
    }
    let body = read_body(body).await?;
    if method == Method::POST {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a JSON body is expected",
            )
            .with_detail("send Content-Type: application/json"));
        }
    }
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use gauntlet_resilience::ResilienceConfig;
    use tower::ServiceExt;

    use super::*;

    /// The gateway with no instance of anything behind it: whatever it
    /// would forward is answered 503, so a 4xx here is its own.
    fn gateway() -> Router {
        let http = reqwest::Client::new();
        let client = |link: &str| {
            ServiceClient::new(
                link,
                "http://127.0.0.1:9",
                http.clone(),
                ResilienceConfig::default(),
                1,
            )
        };
        app(GatewayState {
            users: client("gateway->users"),
            catalog: client("gateway->catalog"),
            orders: client("gateway->orders"),
            registry: Registry::new(),
            edge: Arc::new(Edge::new(&GatewayConfig::default())),
        })
    }

    async fn call(
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Body::from(body)).expect("a request");
        let resp = gateway().oneshot(req).await.expect("an answer");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("a body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.status, parts.headers, json)
    }

    #[test]
    fn the_route_table_knows_paths_and_methods() {
        assert_eq!(
            methods_of("/api/products"),
            Some(&[Method::GET, Method::POST][..])
        );
        assert_eq!(methods_of("/api/products/-1"), Some(&[Method::GET][..]));
        assert_eq!(methods_of("/api/users"), Some(&[Method::POST][..]));
        assert_eq!(methods_of("/api/products/1/extra"), None);
        assert_eq!(methods_of("/api/users/"), None);
        assert_eq!(methods_of("/api/nothing"), None);
    }

    #[tokio::test]
    async fn a_method_a_path_does_not_take_is_405_with_allow_and_the_body_read() {
        let big = vec![b'{'; 200 * 1024];
        let (status, headers, json) = call(
            Method::DELETE,
            "/api/products/-1",
            Some("application/json"),
            big,
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET");
        assert_eq!(json["error"], "/api/products/-1 does not take DELETE");
        let (status, headers, _) = call(Method::PUT, "/api/orders", None, vec![]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET, POST");
    }

    #[tokio::test]
    async fn a_path_the_api_does_not_have_is_404_in_json() {
        for path in ["/api/products/1/extra", "/api/nothing", "/nope"] {
            let (status, _, json) = call(Method::GET, path, None, vec![]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(
                json["error"].as_str().is_some_and(|e| e.contains(path)),
                "{path}: {json}"
            );
        }
    }

    #[tokio::test]
    async fn the_openapi_document_is_served_and_has_every_route_and_method() {
        let req = Request::builder()
            .uri("/openapi.json")
            .body(Body::empty())
            .expect("a request");
        let resp = gateway().oneshot(req).await.expect("an answer");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("a body");
        assert_eq!(bytes, crate::openapi::document().as_bytes());
        let spec: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        // The document's /api paths are exactly ROUTES, method for method.
        let mut documented = Vec::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            let shape = path.replace("{id}", "{}");
            let mut methods: Vec<String> = item
                .as_object()
                .expect("a path item")
                .keys()
                .map(|m| m.to_ascii_uppercase())
                .collect();
            methods.sort();
            documented.push((shape, methods));
        }
        documented.sort();
        let mut routes: Vec<(String, Vec<String>)> = ROUTES
            .iter()
            .map(|(shape, methods)| {
                let mut m: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
                m.sort();
                (shape.to_string(), m)
            })
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
        let (status, headers, json) = call(Method::POST, "/openapi.json", None, vec![]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET, HEAD");
        assert_eq!(json["error"], "/openapi.json does not take POST");
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_413_and_a_write_that_is_not_json_is_415() {
        let (status, _, json) = call(
            Method::POST,
            "/api/orders",
            Some("application/json"),
            vec![b' '; MAX_BODY + 1],
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json["error"], "request body too large");
        let (status, _, json) = call(
            Method::POST,
            "/api/orders",
            Some("text/plain"),
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(json["detail"], "send Content-Type: application/json");
        // A good request gets past the edge (and finds nobody behind it).
        let (status, _, _) = call(
            Method::POST,
            "/api/orders",
            Some("application/json; charset=utf-8"),
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
