//! The HTTP API over real HTTP: every endpoint's status code and exact JSON,
//! pinned against what Toxiproxy answers.

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::common::{self, refused, Api, Server};

async fn send(
    client: &Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn call(
    client: &Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, text) = send(client, method, url, body).await;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON body")
    };
    (status, value)
}

use reqwest::Method as M;

fn error(message: &str, status: u16) -> Value {
    json!({"error": message, "status": status})
}

#[tokio::test]
async fn version_index_and_unknown_routes() {
    let api = Api::start(1).await;
    let http = Client::new();

    assert_eq!(
        call(&http, M::GET, api.url("/version"), None).await,
        (StatusCode::OK, json!({"version": "2.12.0"}))
    );
    assert_eq!(
        call(&http, M::GET, api.url("/proxies"), None).await,
        (StatusCode::OK, json!({}))
    );
    assert_eq!(
        call(&http, M::GET, api.url("/nope"), None).await,
        (StatusCode::NOT_FOUND, error("not found", 404))
    );
    api.stop().await;
}

#[tokio::test]
async fn proxy_create_show_and_list() {
    let api = Api::start(1).await;
    let http = Client::new();

    let (status, created) = call(
        &http,
        M::POST,
        api.url("/proxies"),
        Some(json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let listen = created["listen"].as_str().expect("listen").to_owned();
    let port: u16 = listen
        .strip_prefix("127.0.0.1:")
        .expect("loopback")
        .parse()
        .expect("port");
    assert_ne!(port, 0, "an ephemeral port was bound and reported");
    let expected = json!({
        "name": "db", "listen": listen, "upstream": "127.0.0.1:9", "enabled": true, "toxics": []
    });
    assert_eq!(created, expected);
    assert_eq!(
        call(&http, M::GET, api.url("/proxies/db"), None).await,
        (StatusCode::OK, expected.clone())
    );
    assert_eq!(
        call(&http, M::GET, api.url("/proxies"), None).await,
        (StatusCode::OK, json!({"db": expected}))
    );

    // `localhost` is reported as the IPv4 address it was bound to.
    let (status, local) = call(
        &http,
        M::POST,
        api.url("/proxies"),
        Some(json!({"name": "local", "listen": "localhost:0", "upstream": "127.0.0.1:9"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        local["listen"]
            .as_str()
            .is_some_and(|l| l.starts_with("127.0.0.1:")),
        "{local}"
    );

    // Created disabled: nothing bound, listen shown as given.
    let (status, off) = call(
        &http,
        M::POST,
        api.url("/proxies"),
        Some(json!({"name": "off", "listen": "localhost:0", "upstream": "127.0.0.1:9", "enabled": false})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        off,
        json!({"name": "off", "listen": "localhost:0", "upstream": "127.0.0.1:9", "enabled": false, "toxics": []})
    );
    api.stop().await;
}

#[tokio::test]
async fn proxy_create_errors() {
    let api = Api::start(1).await;
    let http = Client::new();
    let url = api.url("/proxies");

    assert_eq!(
        call(
            &http,
            M::POST,
            url.clone(),
            Some(json!({"upstream": "127.0.0.1:9"}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            error("missing required field: name", 400)
        )
    );
    assert_eq!(
        call(&http, M::POST, url.clone(), Some(json!({"name": "db"}))).await,
        (
            StatusCode::BAD_REQUEST,
            error("missing required field: upstream", 400)
        )
    );
    let (status, body) = send(&http, M::POST, url.clone(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&body).expect("JSON error");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("bad request body: ")),
        "{body}"
    );
    assert_eq!(body["status"], 400);

    let spec = json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"});
    let (status, db) = call(&http, M::POST, url.clone(), Some(spec.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        call(&http, M::POST, url.clone(), Some(spec)).await,
        (StatusCode::CONFLICT, error("proxy already exists", 409))
    );

    // The port is taken by `db`: 500, and nothing is created.
    let (status, body) = call(
        &http,
        M::POST,
        url.clone(),
        Some(json!({"name": "clash", "listen": db["listen"], "upstream": "127.0.0.1:9"})),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("listen tcp ")),
        "{body}"
    );
    assert_eq!(body["status"], 500);
    assert_eq!(
        call(&http, M::GET, api.url("/proxies/clash"), None).await,
        (StatusCode::NOT_FOUND, error("proxy not found", 404))
    );
    api.stop().await;
}

#[tokio::test]
async fn proxy_update_disable_enable_and_delete() {
    let api = Api::start(1).await;
    let http = Client::new();
    let (_, db) = call(
        &http,
        M::POST,
        api.url("/proxies"),
        Some(json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})),
    )
    .await;
    let listen = db["listen"].as_str().expect("listen").to_owned();
    let addr = listen.parse().expect("socket address");

    let (status, off) = call(
        &http,
        M::POST,
        api.url("/proxies/db"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(off["enabled"], false);
    assert_eq!(off["listen"], listen.as_str());
    assert!(refused(addr).await, "a disabled proxy refuses connections");

    // PATCH works like POST; re-enabling binds the same port again.
    let (status, on) = call(
        &http,
        M::PATCH,
        api.url("/proxies/db"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        on,
        json!({"name": "db", "listen": listen, "upstream": "127.0.0.1:9", "enabled": true, "toxics": []})
    );

    let (status, moved) = call(
        &http,
        M::POST,
        api.url("/proxies/db"),
        Some(json!({"upstream": "127.0.0.1:7"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(moved["upstream"], "127.0.0.1:7");
    assert_eq!(moved["enabled"], true);

    assert_eq!(
        call(
            &http,
            M::POST,
            api.url("/proxies/nope"),
            Some(json!({"enabled": false}))
        )
        .await,
        (StatusCode::NOT_FOUND, error("proxy not found", 404))
    );

    let (status, body) = send(&http, M::DELETE, api.url("/proxies/db"), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    assert!(refused(addr).await, "a deleted proxy's port is closed");
    assert_eq!(
        call(&http, M::DELETE, api.url("/proxies/db"), None).await,
        (StatusCode::NOT_FOUND, error("proxy not found", 404))
    );
    api.stop().await;
}

#[tokio::test]
async fn toxic_create_show_update_delete() {
    let api = Api::start(1).await;
    let http = Client::new();
    call(
        &http,
        M::POST,
        api.url("/proxies"),
        Some(json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})),
    )
    .await;
    let toxics = api.url("/proxies/db/toxics");

    // Defaults: downstream, toxicity 1.0, name `<type>_<stream>`, every
    // attribute present; 200, not 201.
    let latency = json!({
        "name": "latency_downstream", "type": "latency", "stream": "downstream",
        "toxicity": 1.0, "attributes": {"latency": 100, "jitter": 0}
    });
    assert_eq!(
        call(
            &http,
            M::POST,
            toxics.clone(),
            Some(json!({"type": "latency", "attributes": {"latency": 100}}))
        )
        .await,
        (StatusCode::OK, latency.clone())
    );
    assert_eq!(
        call(&http, M::GET, toxics.clone(), None).await,
        (StatusCode::OK, json!([latency.clone()]))
    );
    let one = api.url("/proxies/db/toxics/latency_downstream");
    assert_eq!(
        call(&http, M::GET, one.clone(), None).await,
        (StatusCode::OK, latency.clone())
    );

    // Updates read only attributes and toxicity; unnamed attributes keep
    // their values.
    let (status, updated) = call(
        &http,
        M::POST,
        one.clone(),
        Some(json!({"attributes": {"jitter": 5}, "name": "ignored", "stream": "upstream"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        updated,
        json!({"name": "latency_downstream", "type": "latency", "stream": "downstream",
               "toxicity": 1.0, "attributes": {"latency": 100, "jitter": 5}})
    );
    let (status, updated) =
        call(&http, M::PATCH, one.clone(), Some(json!({"toxicity": 0.5}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["toxicity"], 0.5);
    assert_eq!(updated["attributes"], json!({"latency": 100, "jitter": 5}));

    // The proxy shows its toxics, upstream first.
    let (_, up) = call(
        &http,
        M::POST,
        toxics.clone(),
        Some(json!({"type": "timeout", "direction": "upstream", "toxicity": 0.25})),
    )
    .await;
    assert_eq!(
        up,
        json!({"name": "timeout_upstream", "type": "timeout", "stream": "upstream",
               "toxicity": 0.25, "attributes": {"timeout": 0}})
    );
    let (_, proxy) = call(&http, M::GET, api.url("/proxies/db"), None).await;
    assert_eq!(proxy["toxics"][0]["name"], "timeout_upstream");
    assert_eq!(proxy["toxics"][1]["name"], "latency_downstream");

    let (status, body) = send(&http, M::DELETE, one.clone(), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(
        call(&http, M::GET, one.clone(), None).await,
        (StatusCode::NOT_FOUND, error("toxic not found", 404))
    );
    assert_eq!(
        call(&http, M::DELETE, one.clone(), None).await,
        (StatusCode::NOT_FOUND, error("toxic not found", 404))
    );
    assert_eq!(
        call(&http, M::POST, one, Some(json!({"toxicity": 1.0}))).await,
        (StatusCode::NOT_FOUND, error("toxic not found", 404))
    );
    api.stop().await;
}

#[tokio::test]
async fn toxic_errors() {
    let api = Api::start(1).await;
    let http = Client::new();
    call(
        &http,
        M::POST,
        api.url("/proxies"),
        Some(json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})),
    )
    .await;
    let toxics = api.url("/proxies/db/toxics");

    assert_eq!(
        call(
            &http,
            M::POST,
            api.url("/proxies/nope/toxics"),
            Some(json!({"type": "latency"}))
        )
        .await,
        (StatusCode::NOT_FOUND, error("proxy not found", 404))
    );
    assert_eq!(
        call(&http, M::GET, api.url("/proxies/nope/toxics"), None).await,
        (StatusCode::NOT_FOUND, error("proxy not found", 404))
    );
    assert_eq!(
        call(
            &http,
            M::POST,
            toxics.clone(),
            Some(json!({"type": "latency", "stream": "sideways"}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            error(
                "stream was invalid, can be either upstream or downstream",
                400
            )
        )
    );
    assert_eq!(
        call(
            &http,
            M::POST,
            toxics.clone(),
            Some(json!({"type": "gremlins"}))
        )
        .await,
        (StatusCode::BAD_REQUEST, error("invalid toxic type", 400))
    );
    assert_eq!(
        call(
            &http,
            M::POST,
            toxics.clone(),
            Some(json!({"attributes": {}}))
        )
        .await,
        (StatusCode::BAD_REQUEST, error("invalid toxic type", 400))
    );
    let (status, body) = call(
        &http,
        M::POST,
        toxics.clone(),
        Some(json!({"type": "latency", "attributes": {"latency": -1}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("bad request body: ")),
        "{body}"
    );

    // Names are unique across both streams.
    let named = |stream: &str| json!({"name": "x", "type": "latency", "stream": stream});
    assert_eq!(
        call(&http, M::POST, toxics.clone(), Some(named("upstream")))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&http, M::POST, toxics.clone(), Some(named("downstream"))).await,
        (StatusCode::CONFLICT, error("toxic already exists", 409))
    );
    api.stop().await;
}

#[tokio::test]
async fn every_toxic_type_shows_every_attribute() {
    let api = Api::start(1).await;
    let http = Client::new();
    call(
        &http,
        M::POST,
        api.url("/proxies"),
        Some(json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})),
    )
    .await;
    let cases = [
        ("latency", json!({"latency": 0, "jitter": 0})),
        ("bandwidth", json!({"rate": 0})),
        ("slow_close", json!({"delay": 0})),
        ("timeout", json!({"timeout": 0})),
        ("reset_peer", json!({"timeout": 0})),
        (
            "slicer",
            json!({"average_size": 0, "size_variation": 0, "delay": 0}),
        ),
        ("limit_data", json!({"bytes": 0})),
    ];
    for (kind, attributes) in cases {
        let (status, toxic) = call(
            &http,
            M::POST,
            api.url("/proxies/db/toxics"),
            Some(json!({"type": kind, "stream": "upstream"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{kind}");
        assert_eq!(
            toxic,
            json!({"name": format!("{kind}_upstream"), "type": kind, "stream": "upstream",
                   "toxicity": 1.0, "attributes": attributes})
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn reset_enables_everything_and_removes_toxics() {
    let api = Api::start(1).await;
    let http = Client::new();
    for name in ["a", "b"] {
        call(
            &http,
            M::POST,
            api.url("/proxies"),
            Some(json!({"name": name, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})),
        )
        .await;
        call(
            &http,
            M::POST,
            api.url(&format!("/proxies/{name}/toxics")),
            Some(json!({"type": "latency"})),
        )
        .await;
    }
    call(
        &http,
        M::POST,
        api.url("/proxies/a"),
        Some(json!({"enabled": false})),
    )
    .await;

    let (status, body) = send(&http, M::POST, api.url("/reset"), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    let (_, proxies) = call(&http, M::GET, api.url("/proxies"), None).await;
    for name in ["a", "b"] {
        assert_eq!(proxies[name]["enabled"], true, "{proxies}");
        assert_eq!(proxies[name]["toxics"], json!([]), "{proxies}");
    }
    api.stop().await;
}

#[tokio::test]
async fn populate_creates_keeps_replaces_all_or_nothing() {
    let api = Api::start(1).await;
    let http = Client::new();
    let populate = api.url("/populate");

    let (status, body) = call(
        &http,
        M::POST,
        populate.clone(),
        Some(json!([
            {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"},
            {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9", "enabled": false}
        ])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let a_listen = body["proxies"][0]["listen"]
        .as_str()
        .expect("listen")
        .to_owned();
    assert_eq!(
        body,
        json!({"proxies": [
            {"name": "a", "listen": a_listen, "upstream": "127.0.0.1:9", "enabled": true, "toxics": []},
            {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9", "enabled": false, "toxics": []}
        ]})
    );

    // Same listen and upstream: left alone (its toxic survives).
    call(
        &http,
        M::POST,
        api.url("/proxies/a/toxics"),
        Some(json!({"type": "latency"})),
    )
    .await;
    let (status, body) = call(
        &http,
        M::POST,
        populate.clone(),
        Some(json!([{"name": "a", "listen": a_listen, "upstream": "127.0.0.1:9"}])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body["proxies"][0]["toxics"][0]["name"],
        "latency_downstream"
    );

    // A different upstream: replaced (a fresh proxy, no toxics).
    let (status, body) = call(
        &http,
        M::POST,
        populate.clone(),
        Some(json!([{"name": "a", "listen": a_listen, "upstream": "127.0.0.1:8"}])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body,
        json!({"proxies": [{"name": "a", "listen": a_listen, "upstream": "127.0.0.1:8", "enabled": true, "toxics": []}]})
    );

    // Validation fails on the second entry: nothing is applied.
    assert_eq!(
        call(
            &http,
            M::POST,
            populate.clone(),
            Some(json!([
                {"name": "c", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"},
                {"name": "d", "listen": "127.0.0.1:0"}
            ])),
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "missing required field: upstream at proxy 2", "status": 400, "proxies": null})
        )
    );
    assert_eq!(
        call(&http, M::GET, api.url("/proxies/c"), None).await.0,
        StatusCode::NOT_FOUND
    );

    let (status, body) = call(
        &http,
        M::POST,
        populate.clone(),
        Some(json!([
            {"name": "c", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"},
            {"name": "c", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}
        ])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["proxies"], Value::Null);
    assert_eq!(
        call(&http, M::GET, api.url("/proxies/c"), None).await.0,
        StatusCode::NOT_FOUND
    );

    // Applying fails on the second entry (its port is taken by `a`): the
    // first is undone.
    let (status, body) = call(
        &http,
        M::POST,
        populate.clone(),
        Some(json!([
            {"name": "c", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"},
            {"name": "e", "listen": a_listen, "upstream": "127.0.0.1:9"}
        ])),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["status"], 500);
    assert_eq!(body["proxies"], Value::Null);
    assert_eq!(
        call(&http, M::GET, api.url("/proxies/c"), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&http, M::GET, api.url("/proxies/e"), None).await.0,
        StatusCode::NOT_FOUND
    );

    let (status, body) = call(&http, M::POST, populate, Some(json!({"name": "a"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("bad request body: ")),
        "{body}"
    );
    api.stop().await;
}

#[tokio::test]
async fn doubled_slashes_are_accepted() {
    let api = Api::start(1).await;
    let http = Client::new();
    let (status, _) = call(
        &http,
        M::POST,
        api.url("//proxies"),
        Some(json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, toxic) = call(
        &http,
        M::POST,
        api.url("//proxies//db//toxics"),
        Some(json!({"type": "latency"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(toxic["name"], "latency_downstream");
    let (status, proxies) = call(&http, M::GET, api.url("//proxies"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(proxies["db"]["toxics"][0]["name"], "latency_downstream");
    api.stop().await;
}

#[tokio::test]
async fn metrics_count_bytes_per_proxy_and_direction() {
    let echo = Server::echo().await;
    let api = Api::start(1).await;
    let http = Client::new();
    let (_, db) = call(
        &http,
        M::POST,
        api.url("/proxies"),
        Some(json!({"name": "db", "listen": "127.0.0.1:0", "upstream": echo.addr.to_string()})),
    )
    .await;
    let addr = db["listen"]
        .as_str()
        .expect("listen")
        .parse()
        .expect("address");
    let mut stream = common::connect(addr).await;
    assert_eq!(
        common::round_trip(&mut stream, b"hello")
            .await
            .expect("echo"),
        b"hello"
    );
    drop(stream);

    let expected = format!(
        "toxiproxy_proxy_received_bytes_total{{direction=\"upstream\",proxy=\"db\",listener=\"{}\",upstream=\"{}\"}} 5",
        addr, echo.addr
    );
    let got = common::eventually(|| {
        let http = http.clone();
        let url = api.url("/metrics");
        let expected = expected.clone();
        async move {
            let (status, text) = send(&http, M::GET, url, None).await;
            status == StatusCode::OK
                && text.contains(&expected)
                && text.contains(
                    "toxiproxy_proxy_sent_bytes_total{direction=\"downstream\",proxy=\"db\"",
                )
        }
    })
    .await;
    assert!(got, "metrics never showed {expected}");
    api.stop().await;
    echo.stop().await;
}
