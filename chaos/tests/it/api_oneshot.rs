//! The router without sockets: requests go straight into `api(chaos)`.

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use gauntlet_chaos::{api, Chaos, ProxySpec};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(
    chaos: &Chaos,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let response = api(chaos.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON")
    };
    (status, content_type, value)
}

#[tokio::test]
async fn errors_are_json_with_their_status() {
    let chaos = Chaos::new(3);
    let (status, content_type, body) = call(&chaos, "GET", "/proxies/missing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(body, json!({"error": "proxy not found", "status": 404}));

    // Bodies are JSON whatever the content type says (none here).
    let (status, _, body) = call(&chaos, "POST", "/proxies", Some(json!({"name": "x"}))).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "missing required field: upstream", "status": 400})
        )
    );
    chaos.shutdown().await;
}

#[tokio::test]
async fn in_process_changes_show_in_the_api() {
    let chaos = Chaos::new(3);
    chaos
        .create_proxy(ProxySpec {
            enabled: false,
            ..ProxySpec::new("db", "127.0.0.1:0", "127.0.0.1:9")
        })
        .await
        .expect("create");
    let (status, _, body) = call(&chaos, "GET", "///proxies///db", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9", "enabled": false, "toxics": []})
    );
    let (status, _, body) = call(
        &chaos,
        "POST",
        "/proxies/db/toxics",
        Some(json!({"type": "slicer"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        chaos.get("db").expect("db").toxics[0].name,
        body["name"].as_str().unwrap_or_default()
    );
    chaos.shutdown().await;
}
