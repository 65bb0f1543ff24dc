//! The Toxiproxy HTTP API over a [`Chaos`].
//!
//! Every endpoint, status code and JSON shape follows Toxiproxy (see the
//! crate docs). Bodies are read as JSON whatever their `Content-Type`, and
//! unknown fields are ignored, because Toxiproxy's clients rely on both.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::{Chaos, ChaosError, ProxySpec, ProxyUpdate, Stream, ToxicSpec, ToxicUpdate};

/// The Toxiproxy version whose API this server speaks, reported by
/// `GET /version`. Clients gate features on it, so it names the API level,
/// not this crate's version.
pub const TOXIPROXY_API_VERSION: &str = "2.12.0";

/// Toxiproxy's default control address. Loopback only: the API can open
/// ports and cut connections, so it is not exposed unless asked for.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8474";

impl IntoResponse for ChaosError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "API request failed");
        }
        let body = json!({ "error": self.api_message(), "status": status.as_u16() });
        (status, Json(body)).into_response()
    }
}

/// The HTTP API as a router, for serving or for `oneshot` tests.
pub fn api(chaos: Chaos) -> Router {
    let routes = Router::new()
        .route("/reset", post(reset))
        .route("/proxies", get(proxy_index).post(proxy_create))
        .route("/populate", post(populate))
        .route(
            "/proxies/{proxy}",
            get(proxy_show)
                .post(proxy_update)
                .patch(proxy_update)
                .delete(proxy_delete),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(toxic_index).post(toxic_create),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic_show)
                .post(toxic_update)
                .patch(toxic_update)
                .delete(toxic_delete),
        )
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(chaos);
    // Route on a cleaned path: Toxiproxy's router cleans paths too, and some
    // clients build URLs such as `http://host:8474//proxies`. The outer
    // router only rewrites and hands over, so the rewrite happens before
    // the inner one routes.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::map_request(clean_path))
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn run_api(
    listener: TcpListener,
    chaos: Chaos,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api(chaos))
        .with_graceful_shutdown(shutdown)
        .await
}

/// What `gauntlet proxy --listen 127.0.0.1:8474 [--seed N]` runs: the API on
/// `listen` until `shutdown`, then every proxy is stopped.
pub async fn run_standalone(
    listen: std::net::SocketAddr,
    seed: u64,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ChaosError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ChaosError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    let chaos = Chaos::new(seed);
    tracing::info!(%listen, seed, "chaos API listening");
    let served = run_api(listener, chaos.clone(), shutdown).await;
    chaos.shutdown().await;
    served.map_err(ChaosError::Io)
}

/// Collapses runs of `/` in the path (`//proxies` → `/proxies`).
async fn clean_path(mut request: Request) -> Request {
    let uri = request.uri();
    if !uri.path().contains("//") {
        return request;
    }
    let mut path = String::with_capacity(uri.path().len());
    for c in uri.path().chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(clean) = Uri::from_parts(parts) {
            *request.uri_mut() = clean;
        }
    }
    request
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ChaosError> {
    serde_json::from_slice(body).map_err(|e| ChaosError::BadRequest(e.to_string()))
}

/// The proxies of a Toxiproxy config file (what `toxiproxy-server -config
/// FILE` loads, and `POST /populate` takes): a JSON array of
/// `{"name", "listen", "upstream", "enabled"}`, `enabled` defaulting to
/// true. The error carries the line and column.
pub fn proxies_from_json(text: &str) -> Result<Vec<ProxySpec>, serde_json::Error> {
    let inputs: Vec<ProxyInput> = serde_json::from_str(text)?;
    Ok(inputs.into_iter().map(Into::into).collect())
}

/// A proxy as clients send it; missing strings are empty, missing `enabled`
/// is `true`.
#[derive(Deserialize)]
struct ProxyInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    listen: String,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    enabled: Option<bool>,
}

impl From<ProxyInput> for ProxySpec {
    fn from(input: ProxyInput) -> Self {
        ProxySpec {
            name: input.name,
            listen: input.listen,
            upstream: input.upstream,
            enabled: input.enabled.unwrap_or(true),
        }
    }
}

/// A toxic as clients send it. `direction` is accepted for `stream`.
#[derive(Deserialize)]
struct ToxicInput {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    toxicity: Option<f32>,
    #[serde(default)]
    attributes: Option<Value>,
}

async fn proxy_index(State(chaos): State<Chaos>) -> Response {
    let proxies: serde_json::Map<String, Value> = chaos
        .list()
        .into_iter()
        .map(|p| (p.name.clone(), json!(p)))
        .collect();
    Json(proxies).into_response()
}

async fn proxy_create(State(chaos): State<Chaos>, body: Bytes) -> Result<Response, ChaosError> {
    let input: ProxyInput = parse(&body)?;
    let proxy = chaos.create_proxy(input.into()).await?;
    Ok((StatusCode::CREATED, Json(proxy)).into_response())
}

async fn populate(State(chaos): State<Chaos>, body: Bytes) -> Response {
    let result = match parse::<Vec<ProxyInput>>(&body) {
        Ok(inputs) => {
            chaos
                .populate(inputs.into_iter().map(Into::into).collect())
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(proxies) => (StatusCode::CREATED, Json(json!({ "proxies": proxies }))).into_response(),
        // Toxiproxy's populate error body also carries the proxies it
        // applied; being all-or-nothing, this one applied none.
        Err(e) => {
            let status = e.status();
            let body =
                json!({ "error": e.api_message(), "status": status.as_u16(), "proxies": null });
            (status, Json(body)).into_response()
        }
    }
}

async fn proxy_show(
    State(chaos): State<Chaos>,
    Path(name): Path<String>,
) -> Result<Response, ChaosError> {
    Ok(Json(chaos.get(&name)?).into_response())
}

async fn proxy_update(
    State(chaos): State<Chaos>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ChaosError> {
    chaos.get(&name)?;
    let update: ProxyUpdate = parse(&body)?;
    Ok(Json(chaos.update_proxy(&name, update).await?).into_response())
}

async fn proxy_delete(
    State(chaos): State<Chaos>,
    Path(name): Path<String>,
) -> Result<StatusCode, ChaosError> {
    chaos.delete_proxy(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn toxic_index(
    State(chaos): State<Chaos>,
    Path(name): Path<String>,
) -> Result<Response, ChaosError> {
    Ok(Json(chaos.toxics(&name)?).into_response())
}

/// Checks in Toxiproxy's order: proxy, body, stream, name, type, clash,
/// attributes.
async fn toxic_create(
    State(chaos): State<Chaos>,
    Path(proxy): Path<String>,
    body: Bytes,
) -> Result<Response, ChaosError> {
    chaos.get(&proxy)?;
    let input: ToxicInput = parse(&body)?;
    let stream: Stream = input
        .stream
        .as_deref()
        .or(input.direction.as_deref())
        .unwrap_or("downstream")
        .parse()?;
    let kind_name = input.kind.unwrap_or_default();
    let name = match input.name {
        Some(name) if !name.is_empty() => name,
        _ => format!("{kind_name}_{stream}"),
    };
    if !crate::toxics::TOXIC_TYPES.contains(&kind_name.as_str()) {
        return Err(ChaosError::InvalidToxicType(kind_name));
    }
    if chaos.has_toxic(&proxy, &name)? {
        return Err(ChaosError::ToxicExists { proxy, toxic: name });
    }
    let kind = crate::toxics::from_parts(&kind_name, input.attributes.unwrap_or(Value::Null))?;
    let spec = ToxicSpec {
        name: Some(name),
        stream,
        toxicity: input.toxicity.unwrap_or(1.0),
        kind,
    };
    // 200, not 201: Toxiproxy answers a new toxic with 200.
    Ok(Json(chaos.add_toxic(&proxy, spec)?).into_response())
}

async fn toxic_show(
    State(chaos): State<Chaos>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<Response, ChaosError> {
    Ok(Json(chaos.get_toxic(&proxy, &toxic)?).into_response())
}

async fn toxic_update(
    State(chaos): State<Chaos>,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ChaosError> {
    chaos.get_toxic(&proxy, &toxic)?;
    let update: ToxicUpdateInput = parse(&body)?;
    let update = ToxicUpdate {
        toxicity: update.toxicity,
        attributes: match update.attributes {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(ChaosError::BadRequest(format!(
                    "attributes must be an object, got {other}"
                )))
            }
        },
    };
    Ok(Json(chaos.update_toxic(&proxy, &toxic, update)?).into_response())
}

#[derive(Deserialize)]
struct ToxicUpdateInput {
    #[serde(default)]
    toxicity: Option<f32>,
    #[serde(default)]
    attributes: Option<Value>,
}

async fn toxic_delete(
    State(chaos): State<Chaos>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<StatusCode, ChaosError> {
    chaos.remove_toxic(&proxy, &toxic)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset(State(chaos): State<Chaos>) -> Result<StatusCode, ChaosError> {
    chaos.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn version() -> Response {
    Json(json!({ "version": TOXIPROXY_API_VERSION })).into_response()
}

async fn metrics(State(chaos): State<Chaos>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        chaos.metrics_text(),
    )
        .into_response()
}

async fn not_found() -> Response {
    let body = json!({ "error": "not found", "status": 404 });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
