//! gateway: the system's front door. Routes `/api/users`, `/api/products`
//! and `/api/orders` to their services (only to instances the registry
//! calls routable), checks the caller (JWT or API key) and the rate limits
//! when configured ([`Edge`], in `gateway_edge`), and answers
//! `/services/status` from the registry.
//!
//! Bad input stops here, with a JSON error and a 4xx, before anything is
//! forwarded: a path the API does not have (404), a method a path does
//! not take (405, with `Allow`), a body over [`MAX_BODY`] (413), a write
//! whose body is not JSON (415). A request is read whole before it is
//! answered, so a client still sending its body never has its answer
//! lost to a connection reset; and a service is only sent requests its
//! handlers read whole, so it never answers early either (an early
//! answer with the body unread used to reach the client as a 504).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures::FutureExt;

use crate::client::{ServiceClient, IDEMPOTENCY_KEY};
use crate::config::Service;
use crate::error::ApiError;
use crate::registry::Registry;
use crate::service::{Built, ServiceContext, StartError};

pub use super::gateway_edge::{Edge, EdgeError};

#[derive(Clone)]
pub struct GatewayState {
    users: ServiceClient,
    catalog: ServiceClient,
    orders: ServiceClient,
    registry: Arc<Registry>,
    edge: Arc<Edge>,
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
    for service in Service::ALL {
        if service == Service::Gateway {
            continue;
        }
        // Probe each service where the gateway would reach it.
        if let Some(url) = ctx.endpoints.url(Service::Gateway, service) {
            registry.register(service, url);
        }
    }
    let state = GatewayState {
        users: ctx.client(Service::Users)?,
        catalog: ctx.client(Service::Catalog)?,
        orders: ctx.client(Service::Orders)?,
        registry: registry.clone(),
        edge: Arc::new(
            Edge::new(&ctx.config.gateway).map_err(|e| StartError::Config(e.to_string()))?,
        ),
    };
    let edge = state.edge.clone();
    let mut built = Built::new(app(state));
    built.background.push(edge.run_forgetting().boxed());
    built.background.push(
        registry
            .run(ctx.http.clone(), ctx.config.health_interval)
            .boxed(),
    );
    Ok(built)
}

/// Authentication and rate limits, on `/api/*` only. The peer address is
/// the one the server saw (`ConnectInfo`), for the per-subject limit of a
/// caller without a token.
async fn edge(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    if edge.is_open() {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Err(refusal) = edge.admit(req.headers(), peer) {
        // Read what the client is still sending, so it gets the answer.
        drain(req.into_body()).await;
        return refusal.into_response();
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
        (Service::Users, &st.users)
    } else if path.starts_with("/api/products") {
        (Service::Catalog, &st.catalog)
    } else {
        (Service::Orders, &st.orders)
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
    use crate::config::GatewayConfig;

    /// The gateway with no instance of anything behind it: whatever it
    /// would forward is answered 503, so a 4xx here is its own.
    fn gateway() -> Router {
        gateway_with(&GatewayConfig::default())
    }

    /// [`gateway`] with these edge policies.
    fn gateway_with(config: &GatewayConfig) -> Router {
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
            edge: Arc::new(Edge::new(config).expect("a valid edge config")),
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

    // --- the edge: JWTs, the API key, rate limits -------------------------

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
    const RSA_PEM: &str = include_str!("../../tests/fixtures/jwt-test-rsa.pem");
    const JWKS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt-test-rsa.jwks.json"
    );

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    /// Claims good for an hour from now.
    fn claims(sub: &str) -> serde_json::Value {
        serde_json::json!({"sub": sub, "exp": now() + 3600, "iss": "gauntlet-tests", "aud": "gauntlet"})
    }

    fn hs256(claims: &serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("a token")
    }

    fn rs256(claims: &serde_json::Value, kid: Option<&str>) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("the test key");
        jsonwebtoken::encode(&header, claims, &key).expect("a token")
    }

    fn auth_config() -> GatewayConfig {
        GatewayConfig {
            auth: Some(crate::config::AuthConfig {
                jwks_file: Some(JWKS.into()),
                issuer: Some("gauntlet-tests".into()),
                audience: Some("gauntlet".into()),
                // No skew: an expired token is refused at once.
                leeway: std::time::Duration::ZERO,
                ..crate::config::AuthConfig::hs256(SECRET)
            }),
            ..GatewayConfig::default()
        }
    }

    /// A GET through `app`, with `authorization` and from `peer`.
    async fn get(
        app: &Router,
        authorization: Option<&str>,
        peer: Option<[u8; 4]>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut req = Request::builder().uri("/api/products/1");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let mut req = req.body(Body::empty()).expect("a request");
        if let Some(ip) = peer {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
        }
        let resp = app.clone().oneshot(req).await.expect("an answer");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("a body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.status, parts.headers, json)
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// Past the edge: the request reached the (empty) registry.
    const PAST_THE_EDGE: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

    #[tokio::test]
    async fn a_request_without_a_token_gets_the_bare_challenge() {
        let app = gateway_with(&auth_config());
        for authorization in [None, Some("Basic dXNlcjpwYXNz")] {
            let (status, headers, json) = get(&app, authorization, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
            assert_eq!(
                headers[header::WWW_AUTHENTICATE],
                "Bearer realm=\"gauntlet\""
            );
            assert_eq!(json["error"], "missing bearer token");
            assert_eq!(json["detail"], "send Authorization: Bearer <token>");
        }
    }

    #[tokio::test]
    async fn every_bad_token_is_401_invalid_token_saying_why() {
        let app = gateway_with(&auth_config());
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = claims("alice");
            f(&mut c);
            c
        };
        let cases: Vec<(&str, String, &str)> = vec![
            ("malformed", "not-a-jwt".into(), "malformed token"),
            (
                "bad signature",
                hs256(&claims("alice"), "another-secret-of-at-least-32-bytes"),
                "the signature does not match",
            ),
            (
                "expired",
                hs256(&with(&|c| c["exp"] = (now() - 10).into()), SECRET),
                "the token has expired",
            ),
            (
                "not yet valid",
                hs256(&with(&|c| c["nbf"] = (now() + 600).into()), SECRET),
                "the token is not valid yet (nbf)",
            ),
            (
                "wrong issuer",
                hs256(&with(&|c| c["iss"] = "someone-else".into()), SECRET),
                "wrong issuer; expected gauntlet-tests",
            ),
            (
                "wrong audience",
                hs256(&with(&|c| c["aud"] = "another-api".into()), SECRET),
                "wrong audience; expected gauntlet",
            ),
            (
                "no issuer",
                hs256(
                    &with(&|c| {
                        c.as_object_mut().map(|o| o.remove("iss"));
                    }),
                    SECRET,
                ),
                "the token has no iss claim",
            ),
            (
                "no subject",
                hs256(
                    &with(&|c| {
                        c.as_object_mut().map(|o| o.remove("sub"));
                    }),
                    SECRET,
                ),
                "the token has no sub claim",
            ),
            (
                "unknown RSA key",
                rs256(&claims("alice"), Some("another-kid")),
                "no key with kid another-kid in the key set",
            ),
        ];
        for (case, token, why) in cases {
            let (status, headers, json) = get(&app, Some(&bearer(&token)), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
            let challenge = headers[header::WWW_AUTHENTICATE].to_str().expect("ASCII");
            assert!(
                challenge.starts_with(
                    "Bearer realm=\"gauntlet\", error=\"invalid_token\", error_description=\""
                ),
                "{case}: {challenge}"
            );
            assert!(challenge.contains(why), "{case}: {challenge}");
            assert_eq!(json["error"], "invalid token", "{case}");
            assert!(
                json["detail"].as_str().is_some_and(|d| d.contains(why)),
                "{case}: {json}"
            );
        }
    }

    #[tokio::test]
    async fn a_valid_hs256_or_rs256_token_gets_through() {
        let app = gateway_with(&auth_config());
        for (alg, token) in [
            ("HS256", hs256(&claims("alice"), SECRET)),
            (
                "RS256 by kid",
                rs256(&claims("bob"), Some("gauntlet-test-1")),
            ),
            ("RS256, the only key", rs256(&claims("bob"), None)),
        ] {
            let (status, headers, _) = get(&app, Some(&bearer(&token)), None).await;
            assert_eq!(status, PAST_THE_EDGE, "{alg}");
            assert!(headers.get(header::WWW_AUTHENTICATE).is_none(), "{alg}");
        }
        // A token only passes with the algorithms configured.
        let hs_only = GatewayConfig {
            auth: Some(crate::config::AuthConfig::hs256(SECRET)),
            ..GatewayConfig::default()
        };
        let (status, _, json) = get(
            &gateway_with(&hs_only),
            Some(&bearer(&rs256(&claims("bob"), None))),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["detail"], "algorithm RS256 is not accepted here");
    }

    #[tokio::test]
    async fn the_static_api_key_still_works_with_and_without_jwts() {
        let key_only = GatewayConfig {
            api_key: Some("k3y".into()),
            ..GatewayConfig::default()
        };
        let app = gateway_with(&key_only);
        assert_eq!(get(&app, Some("Bearer k3y"), None).await.0, PAST_THE_EDGE);
        let (status, headers, json) = get(&app, Some("Bearer nope"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["detail"], "wrong API key");
        assert!(headers[header::WWW_AUTHENTICATE]
            .to_str()
            .is_ok_and(|c| c.contains("error=\"invalid_token\"")));
        let both = GatewayConfig {
            api_key: Some("k3y".into()),
            ..auth_config()
        };
        let app = gateway_with(&both);
        assert_eq!(get(&app, Some("Bearer k3y"), None).await.0, PAST_THE_EDGE);
        let token = hs256(&claims("alice"), SECRET);
        assert_eq!(
            get(&app, Some(&bearer(&token)), None).await.0,
            PAST_THE_EDGE
        );
    }

    #[test]
    fn a_bad_jwks_file_is_a_start_up_error_naming_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let cases = [
            ("missing.json", None, "cannot be read"),
            ("garbage.json", Some("{not json"), "is not a JWKS"),
            (
                "no-rsa.json",
                Some(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#),
                "has no RSA signing key",
            ),
        ];
        for (name, text, why) in cases {
            let path = dir.path().join(name);
            if let Some(text) = text {
                std::fs::write(&path, text).expect("written");
            }
            let config = GatewayConfig {
                auth: Some(crate::config::AuthConfig {
                    hs256_secret: None,
                    jwks_file: Some(path.clone()),
                    ..crate::config::AuthConfig::hs256(SECRET)
                }),
                ..GatewayConfig::default()
            };
            let e = Edge::new(&config).expect_err(name).to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains(why), "{name}: {e}");
        }
    }

    #[test]
    fn bad_edge_settings_are_refused_each_by_its_key() {
        let config = GatewayConfig {
            api_key: None,
            auth: Some(crate::config::AuthConfig {
                hs256_secret: Some("short".into()),
                issuer: Some(" ".into()),
                leeway: std::time::Duration::from_millis(1500),
                ..crate::config::AuthConfig::hs256(SECRET)
            }),
            limits: crate::config::LimitsConfig {
                per_subject_per_sec: Some(0),
                global_burst: Some(5),
                ..Default::default()
            },
        };
        let e = Edge::new(&config).expect_err("invalid").to_string();
        for key in [
            "auth.hs256_secret: 5 bytes is too short",
            "auth.issuer: must not be empty",
            "auth.leeway: 1s 500ms is not whole seconds",
            "limits.per_subject_per_sec: must be at least 1",
            "limits.global_burst: set global_per_sec too",
        ] {
            assert!(e.contains(key), "{key} in {e}");
        }
    }

    fn limited(per_subject: Option<(u32, u32)>, global: Option<(u32, u32)>) -> GatewayConfig {
        GatewayConfig {
            limits: crate::config::LimitsConfig {
                per_subject_per_sec: per_subject.map(|l| l.0),
                per_subject_burst: per_subject.map(|l| l.1),
                global_per_sec: global.map(|l| l.0),
                global_burst: global.map(|l| l.1),
            },
            ..auth_config()
        }
    }

    fn assert_429(answer: &(StatusCode, HeaderMap, serde_json::Value), which: &str) {
        let (status, headers, json) = answer;
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        let secs: u64 = headers[header::RETRY_AFTER]
            .to_str()
            .expect("ASCII")
            .parse()
            .expect("whole seconds");
        assert!(secs >= 1, "Retry-After {secs}");
        assert_eq!(json["error"], "rate limit exceeded");
        assert!(
            json["detail"].as_str().is_some_and(|d| d.contains(which)),
            "{json}"
        );
    }

    #[tokio::test]
    async fn a_subject_over_its_limit_is_429_until_the_window_refills() {
        // 20 a second, a burst of 3: the 4th at once is refused, and one
        // more is let through 50 ms later.
        let app = gateway_with(&limited(Some((20, 3)), None));
        let alice = bearer(&hs256(&claims("alice"), SECRET));
        for _ in 0..3 {
            assert_eq!(get(&app, Some(&alice), None).await.0, PAST_THE_EDGE);
        }
        let refused = get(&app, Some(&alice), None).await;
        assert_429(&refused, "per-subject");
        let refused_at = std::time::Instant::now();
        let deadline = refused_at + std::time::Duration::from_secs(5);
        loop {
            let (status, _, _) = get(&app, Some(&alice), None).await;
            if status == PAST_THE_EDGE {
                break;
            }
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert!(
                std::time::Instant::now() < deadline,
                "never let through again"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Refilled at 20/s: about 50 ms, certainly not at once.
        assert!(refused_at.elapsed() >= std::time::Duration::from_millis(20));
    }

    #[tokio::test]
    async fn two_subjects_are_limited_apart_and_without_a_token_by_address() {
        let app = gateway_with(&limited(Some((1, 2)), None));
        let alice = bearer(&hs256(&claims("alice"), SECRET));
        let bob = bearer(&hs256(&claims("bob"), SECRET));
        for _ in 0..2 {
            assert_eq!(get(&app, Some(&alice), None).await.0, PAST_THE_EDGE);
        }
        assert_429(&get(&app, Some(&alice), None).await, "per-subject");
        // Bob has his own allowance, from the same address as Alice.
        for _ in 0..2 {
            assert_eq!(
                get(&app, Some(&bob), Some([127, 0, 0, 1])).await.0,
                PAST_THE_EDGE
            );
        }
        assert_429(&get(&app, Some(&bob), None).await, "per-subject");
        // Without auth, the client's address is the subject.
        let open = GatewayConfig {
            auth: None,
            ..limited(Some((1, 1)), None)
        };
        let app = gateway_with(&open);
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        assert_eq!(get(&app, None, Some(a)).await.0, PAST_THE_EDGE);
        assert_429(&get(&app, None, Some(a)).await, "per-subject");
        assert_eq!(get(&app, None, Some(b)).await.0, PAST_THE_EDGE);
        assert_429(&get(&app, None, Some(b)).await, "per-subject");
    }

    #[tokio::test]
    async fn the_global_limit_counts_everyone_together() {
        let app = gateway_with(&limited(Some((100, 100)), Some((1, 3))));
        let tokens: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|s| bearer(&hs256(&claims(s), SECRET)))
            .collect();
        for t in &tokens[..3] {
            assert_eq!(get(&app, Some(t), None).await.0, PAST_THE_EDGE);
        }
        // A fourth subject, well within its own limit, is over the global one.
        assert_429(&get(&app, Some(&tokens[3]), None).await, "global");
    }

    #[tokio::test]
    async fn idle_subjects_are_forgotten() {
        // No auth: each address is a subject.
        let config = GatewayConfig {
            auth: None,
            ..limited(Some((1000, 1)), None)
        };
        let edge = Edge::new(&config).expect("valid");
        for i in 0..50u8 {
            assert!(edge
                .admit(&HeaderMap::new(), Some([10, 0, 0, i].into()))
                .is_ok());
        }
        assert_eq!(edge.tracked_subjects(), 50);
        // 1 ms refills a subject at 1000/s; poll until all are fresh again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while edge.tracked_subjects() > 0 {
            assert!(std::time::Instant::now() < deadline, "still tracked");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            edge.forget_idle_subjects();
        }
    }

    #[tokio::test]
    async fn an_open_gateway_checks_nothing() {
        let app = gateway();
        for _ in 0..5 {
            assert_eq!(get(&app, None, None).await.0, PAST_THE_EDGE);
        }
    }

    #[tokio::test]
    async fn over_tcp_a_client_without_a_token_is_limited_by_its_address() {
        // The server hands the peer address to the edge (`ConnectInfo`).
        let config = GatewayConfig {
            limits: crate::config::LimitsConfig {
                per_subject_per_sec: Some(1),
                per_subject_burst: Some(1),
                ..Default::default()
            },
            ..GatewayConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(crate::server::run(
            listener,
            gateway_with(&config),
            stop.clone().cancelled_owned(),
        ));
        let http = reqwest::Client::new();
        let url = format!("http://{addr}/api/products/1");
        let first = http.get(&url).send().await.expect("an answer");
        assert_eq!(first.status(), PAST_THE_EDGE);
        let second = http.get(&url).send().await.expect("an answer");
        assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(second.headers().contains_key(header::RETRY_AFTER));
        stop.cancel();
        server.await.expect("joined").expect("served");
    }
}
