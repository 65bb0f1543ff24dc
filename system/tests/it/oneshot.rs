//! Every service's router driven in process with `tower::ServiceExt::oneshot`,
//! as axum's examples test their handlers: routing, validation and its one
//! JSON error shape, the happy path of each main route, `/health` and
//! `/info`, and the gateway's API key, rate limit and `/services/status`.
//!
//! Each service is built the way the system builds it (`services::build`
//! on a [`ServiceContext`] with its own SQLite file in a temp dir) and its
//! router composed as it is served (`service::served`): the service's
//! `app()`, the telemetry routes, the JSON 404 and 405 fallbacks and the
//! request metrics.
//! What a service calls is given an address under `.invalid`, never
//! reached, except where the route under test needs its callee's answer:
//! then the callee is served on loopback (payments' charge, the gateway's
//! forwarding, the whole system behind an order). The provider's
//! `POST /charges` needs the connection it came on (`ConnectionAbort`,
//! which only `server::run` can make), so it is the one route tested over
//! TCP here.
//!
//! The gateway's edge is tested in its own module (`services/gateway.rs`:
//! JWTs, the API key with and without them, per-subject and global limits,
//! 404/405/413/415 on `/api`); here only what that leaves out: the edge as
//! the system's config sets it up, what it does not guard, and the registry
//! behind `/services/status`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use gauntlet_system::client::{http_client, IDEMPOTENCY_KEY};
use gauntlet_system::config::{Endpoints, GatewayConfig, LimitsConfig, Service, SystemConfig};
use gauntlet_system::service::{self, RunningService, ServiceContext};
use gauntlet_system::services;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::common::{saga_steps, TestSystem};

// --- harness ----------------------------------------------------------------

/// One service's router, as it is served, over its own database.
struct Svc {
    name: Service,
    app: Router,
    /// The run directory; the database is `<dir>/<name>.db`.
    dir: tempfile::TempDir,
}

/// One answer, its body parsed: `null` when empty (a bare 405, a 201
/// without a body), and a failed test when it is not JSON.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

fn context(
    name: Service,
    dir: &tempfile::TempDir,
    config: SystemConfig,
    endpoints: Endpoints,
) -> ServiceContext {
    ServiceContext::new(
        name,
        dir.path().to_path_buf(),
        Arc::new(config),
        Arc::new(endpoints),
        http_client(),
    )
}

impl Svc {
    /// `name` built as the system builds it, its router as it is served.
    async fn build(name: Service, config: SystemConfig, endpoints: Endpoints) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ctx = context(name, &dir, config, endpoints);
        let built = match services::build(&ctx).await {
            Ok(built) => built,
            Err(e) => panic!("{name} does not build: {e}"),
        };
        // Its background loops (saga recovery, health probes) are not run:
        // nothing here depends on them.
        let app = service::served(&ctx, built.router);
        Self { name, app, dir }
    }

    /// `name` with every service it calls at an address never reached.
    async fn alone(name: Service) -> Self {
        Self::build(name, SystemConfig::default(), nowhere()).await
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self
            .app
            .clone()
            .oneshot(req)
            .await
            .expect("a router always answers");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `method uri` with no body.
    async fn call(&self, method: Method, uri: &str) -> Answer {
        self.send(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .expect("a request"),
        )
        .await
    }

    async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri).await
    }

    /// `method uri` with `body` as JSON.
    async fn json(&self, method: Method, uri: &str, body: &Value) -> Answer {
        self.raw(method, uri, Some("application/json"), body.to_string())
            .await
    }

    async fn post(&self, uri: &str, body: &Value) -> Answer {
        self.json(Method::POST, uri, body).await
    }

    /// `POST uri` with `body` as JSON and an `Idempotency-Key`.
    async fn post_keyed(&self, uri: &str, body: &Value, key: &str) -> Answer {
        self.send(
            Request::builder()
                .method(Method::POST)
                .uri(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .header(IDEMPOTENCY_KEY, key)
                .body(Body::from(body.to_string()))
                .expect("a request"),
        )
        .await
    }

    /// `method uri` with this body, as it is, and this `Content-Type`.
    async fn raw(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: String,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        self.send(req.body(Body::from(body)).expect("a request"))
            .await
    }
}

impl Answer {
    /// Asserts the project's one error shape: `{"error", "detail"}` and
    /// nothing else.
    #[track_caller]
    fn assert_error_shape(&self) {
        let mut keys: Vec<&str> = self
            .body
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(keys, ["detail", "error"], "the error shape: {}", self.body);
        assert!(self.body["error"].is_string(), "{}", self.body);
    }

    /// Asserts this is the error `error` with `status`; gives its `detail`.
    #[track_caller]
    fn error(&self, status: StatusCode, error: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.assert_error_shape();
        assert_eq!(self.body["error"], error, "{}", self.body);
        &self.body["detail"]
    }

    /// [`Answer::error`] whose detail is a text mentioning `needle`.
    #[track_caller]
    fn error_saying(&self, status: StatusCode, error: &str, needle: &str) {
        let detail = self.error(status, error);
        assert!(
            detail.as_str().is_some_and(|d| d.contains(needle)),
            "the detail should mention {needle:?}: {}",
            self.body
        );
    }

    /// The `Allow` header's methods, sorted, joined by ", ".
    fn allowed(&self) -> String {
        let mut methods: Vec<&str> = self
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        methods.sort_unstable();
        methods.join(", ")
    }

    #[track_caller]
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

/// A service served on loopback, for a route whose answer needs its callee.
struct Served {
    running: RunningService,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start(name: Service, endpoints: Endpoints) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let listener = service::bind(name, "127.0.0.1:0")
            .await
            .expect("a loopback port");
        let ctx = context(name, &dir, SystemConfig::default(), endpoints);
        let running = match services::start(ctx, listener).await {
            Ok(running) => running,
            Err(e) => panic!("{name} does not start: {e}"),
        };
        Self { running, _dir: dir }
    }

    fn url(&self) -> String {
        self.running.url()
    }

    async fn stop(self) {
        self.running.stop().await;
    }
}

/// An address that never resolves (RFC 2606), one per service.
fn fake_url(name: Service) -> String {
    format!("http://{name}.invalid")
}

/// Every service at its [`fake_url`].
fn nowhere() -> Endpoints {
    let mut endpoints = Endpoints::default();
    for name in Service::ALL {
        endpoints.services.insert(name, fake_url(name));
    }
    endpoints
}

/// What every service answers alike: an unknown path is a JSON 404 naming
/// it, a method a route does not take is 405 with `Allow` (each of
/// `wrong_methods`: method, path, the allowed methods sorted), `/health`
/// says who it is and that its database answers, and `/info` its version,
/// process, database file and the base URL of each link it calls.
async fn assert_like_every_service(
    svc: &Svc,
    wrong_methods: &[(Method, &str, &str)],
    dependencies: Value,
) {
    let path = "/no/such/path";
    let a = svc.get(path).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}: {}", svc.name, a.body);
    a.assert_error_shape();
    assert!(
        a.body["error"].as_str().is_some_and(|e| e.ends_with(path)),
        "{}: {}",
        svc.name,
        a.body
    );

    for (method, path, allow) in wrong_methods {
        let a = svc.call(method.clone(), path).await;
        assert_eq!(
            a.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{}: {method} {path}: {}",
            svc.name,
            a.body
        );
        assert_eq!(a.allowed(), *allow, "{}: {method} {path}", svc.name);
    }

    let has_db = svc.name != Service::Gateway;
    let a = svc.get("/health").await;
    assert_eq!(a.status, StatusCode::OK, "{}: {}", svc.name, a.body);
    assert_eq!(a.body["service"], svc.name.as_str());
    assert_eq!(a.body["status"], "healthy", "{}", a.body);
    assert_eq!(a.body["database"], if has_db { "ok" } else { "none" });
    assert_eq!(a.body["open_breakers"], json!([]), "{}", a.body);

    let a = svc.get("/info").await;
    assert_eq!(a.status, StatusCode::OK, "{}: {}", svc.name, a.body);
    assert_eq!(a.body["service"], svc.name.as_str());
    assert_eq!(a.body["version"], env!("CARGO_PKG_VERSION"));
    // In process: the service is this test.
    assert_eq!(a.body["pid"], std::process::id());
    assert!(
        a.body["started_at_ms"].as_i64().is_some_and(|t| t > 0),
        "{}",
        a.body
    );
    let database = if has_db {
        let file = svc.dir.path().join(format!("{}.db", svc.name));
        json!(file.display().to_string())
    } else {
        Value::Null
    };
    assert_eq!(a.body["database"], database, "{}", svc.name);
    assert_eq!(a.body["dependencies"], dependencies, "{}", svc.name);
}

// --- users --------------------------------------------------------------------

#[tokio::test]
async fn users_create_then_read_back_and_refuse_a_second_email() {
    let users = Svc::alone(Service::Users).await;
    let a = users
        .post(
            "/users",
            &json!({"name": "  Ada Lovelace ", "email": " Ada@Example.COM "}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let id = a.body["id"].as_i64().expect("an id");
    // Stored trimmed, the email in lower case.
    let ada = json!({"id": id, "name": "Ada Lovelace", "email": "ada@example.com"});
    assert_eq!(a.body, ada);

    let a = users.get(&format!("/users/{id}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, ada);

    // Emails are unique in ASCII lower case.
    let a = users
        .post(
            "/users",
            &json!({"name": "Ada", "email": "ADA@example.com"}),
        )
        .await;
    let detail = a.error(
        StatusCode::CONFLICT,
        "a user with email ada@example.com already exists",
    );
    assert!(detail.is_null(), "{}", a.body);
}

#[tokio::test]
async fn users_refuse_bad_input_with_the_error_shape() {
    let users = Svc::alone(Service::Users).await;
    // Every problem with a user, in one answer.
    let a = users
        .post(
            "/users",
            &json!({"name": " \t", "email": "nobody.example.com"}),
        )
        .await;
    assert_eq!(
        *a.error(StatusCode::BAD_REQUEST, "invalid user"),
        json!([
            "name must not be empty",
            "email must look like name@example.com"
        ])
    );
    let a = users
        .post("/users", &json!({"name": "Ada", "email": "ada@localhost"}))
        .await;
    assert_eq!(
        *a.error(StatusCode::BAD_REQUEST, "invalid user"),
        json!(["email must look like name@example.com"])
    );
    // Well-formed JSON of the wrong shape is 422.
    let a = users.post("/users", &json!({"name": "Ada"})).await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "missing field `email`",
    );
    let a = users
        .post(
            "/users",
            &json!({"name": "Ada", "email": "ada@example.com", "age": 36}),
        )
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "unknown field `age`",
    );
    let a = users
        .post("/users", &json!({"name": 7, "email": "ada@example.com"}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "name",
    );
    // Not JSON at all is 400; no JSON content type, 415.
    let a = users
        .raw(
            Method::POST,
            "/users",
            Some("application/json"),
            r#"{"name": "#.into(),
        )
        .await;
    a.error_saying(
        StatusCode::BAD_REQUEST,
        "malformed JSON",
        "Failed to parse the request body as JSON",
    );
    for content_type in [None, Some("text/plain")] {
        let body = json!({"name": "Ada", "email": "ada@example.com"}).to_string();
        let a = users.raw(Method::POST, "/users", content_type, body).await;
        assert_eq!(
            *a.error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Type: application/json"
            ),
            "Expected request with `Content-Type: application/json`",
            "{content_type:?}"
        );
    }
    // Ids are integers; an unknown one is 404.
    let a = users.get("/users/abc").await;
    assert_eq!(
        *a.error(StatusCode::BAD_REQUEST, "invalid path parameter"),
        "Invalid URL: Cannot parse `abc` to a `i64`"
    );
    let a = users.get("/users/42").await;
    assert!(a
        .error(StatusCode::NOT_FOUND, "user 42 not found")
        .is_null());
}

#[tokio::test]
async fn users_unknown_paths_wrong_methods_health_and_info() {
    let users = Svc::alone(Service::Users).await;
    assert_like_every_service(
        &users,
        &[
            (Method::GET, "/users", "POST"),
            (Method::PUT, "/users/1", "GET, HEAD"),
        ],
        json!({}),
    )
    .await;
}

// --- catalog ------------------------------------------------------------------

#[tokio::test]
async fn catalog_creates_products_then_reads_and_pages_them() {
    let catalog = Svc::alone(Service::Catalog).await;
    let a = catalog
        .post(
            "/products",
            &json!({"name": "  Widget ", "price_cents": 250, "stock": 10}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let first = a.body["id"].as_i64().expect("an id");
    let widget = json!({"id": first, "name": "Widget", "price_cents": 250, "stock": 10, "initial_stock": 10});
    assert_eq!(a.body, widget);
    // Whole numbers written as floats are integers (see `integer.rs`).
    let a = catalog
        .post(
            "/products",
            &json!({"name": "Gadget", "price_cents": 1.25e3, "stock": 4.0}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let second = a.body["id"].as_i64().expect("an id");
    let gadget = json!({"id": second, "name": "Gadget", "price_cents": 1250, "stock": 4, "initial_stock": 4});
    assert_eq!(a.body, gadget);

    let a = catalog.get(&format!("/products/{first}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, widget);
    let a = catalog.get("/products").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, json!([widget, gadget]));
    let a = catalog.get(&format!("/products?after={first}")).await;
    assert_eq!(a.body, json!([gadget]));
    // A limit below 1 is taken as 1.
    let a = catalog.get("/products?limit=0").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, json!([widget]));
}

#[tokio::test]
async fn catalog_refuses_bad_products_and_queries() {
    let catalog = Svc::alone(Service::Catalog).await;
    // Every problem with a product, in one answer.
    let a = catalog
        .post(
            "/products",
            &json!({"name": " ", "price_cents": -1, "stock": -5}),
        )
        .await;
    assert_eq!(
        *a.error(StatusCode::BAD_REQUEST, "invalid product"),
        json!([
            "name must not be empty",
            "price_cents must be >= 0",
            "stock must be >= 0"
        ])
    );
    let a = catalog
        .post(
            "/products",
            &json!({"name": "Widget", "price_cents": 12.5, "stock": 1}),
        )
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "price_cents",
    );
    let a = catalog
        .post("/products", &json!({"name": "Widget", "price_cents": 1}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "missing field `stock`",
    );
    let a = catalog.get("/products/x").await;
    assert_eq!(
        *a.error(StatusCode::BAD_REQUEST, "invalid path parameter"),
        "Invalid URL: Cannot parse `x` to a `i64`"
    );
    let a = catalog.get("/products/999").await;
    assert!(a
        .error(StatusCode::NOT_FOUND, "product 999 not found")
        .is_null());
    let a = catalog.get("/products?limit=many").await;
    a.error_saying(StatusCode::BAD_REQUEST, "invalid query string", "limit");
    let a = catalog.get("/products?page=2").await;
    a.error_saying(
        StatusCode::BAD_REQUEST,
        "invalid query string",
        "unknown field `page`",
    );
}

#[tokio::test]
async fn catalog_reservations_are_idempotent_and_guarded() {
    let catalog = Svc::alone(Service::Catalog).await;
    let a = catalog
        .post(
            "/products",
            &json!({"name": "Widget", "price_cents": 250, "stock": 10}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let p = a.body["id"].as_i64().expect("an id");
    let stock = |a: &Answer| a.body["stock"].as_i64();

    // Reserved once, however often asked.
    let reserve = json!({"order_id": 1, "product_id": p, "quantity": 3});
    let reserved = json!({"order_id": 1, "product_id": p, "quantity": 3, "status": "RESERVED"});
    let a = catalog.post("/reservations", &reserve).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body, reserved);
    let a = catalog.post("/reservations", &reserve).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, reserved);
    assert_eq!(
        stock(&catalog.get(&format!("/products/{p}")).await),
        Some(7)
    );

    // What cannot be reserved.
    let a = catalog
        .post(
            "/reservations",
            &json!({"order_id": 2, "product_id": p, "quantity": 8}),
        )
        .await;
    assert_eq!(
        *a.error(StatusCode::CONFLICT, "insufficient stock"),
        json!({"product_id": p, "available": 7, "requested": 8})
    );
    let a = catalog
        .post(
            "/reservations",
            &json!({"order_id": 2, "product_id": 999, "quantity": 1}),
        )
        .await;
    assert!(a
        .error(StatusCode::NOT_FOUND, "product 999 not found")
        .is_null());
    for quantity in [0_i64, -2] {
        let a = catalog
            .post(
                "/reservations",
                &json!({"order_id": 2, "product_id": p, "quantity": quantity}),
            )
            .await;
        assert!(a
            .error(StatusCode::BAD_REQUEST, "quantity must be > 0")
            .is_null());
    }
    let a = catalog
        .post("/reservations", &json!({"order_id": 2, "product_id": p}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "missing field `quantity`",
    );
    assert_eq!(
        stock(&catalog.get(&format!("/products/{p}")).await),
        Some(7)
    );

    // Committed is final: committing again is a no-op, releasing refused.
    let committed = json!({"order_id": 1, "product_id": p, "quantity": 3, "status": "COMMITTED"});
    for _ in 0..2 {
        let a = catalog.call(Method::POST, "/reservations/1/commit").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body, committed);
    }
    let a = catalog.call(Method::POST, "/reservations/1/release").await;
    assert!(a
        .error(
            StatusCode::CONFLICT,
            "reservation for order 1 is committed; it cannot be released"
        )
        .is_null());

    // A release that comes first leaves a tombstone a late reserve cannot pass.
    let a = catalog.call(Method::POST, "/reservations/5/release").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let tombstone = json!({"order_id": 5, "product_id": 0, "quantity": 0, "status": "RELEASED"});
    assert_eq!(a.body, tombstone);
    let a = catalog
        .post(
            "/reservations",
            &json!({"order_id": 5, "product_id": p, "quantity": 1}),
        )
        .await;
    assert!(a
        .error(
            StatusCode::CONFLICT,
            "reservation for order 5 was already released"
        )
        .is_null());
    let a = catalog.call(Method::POST, "/reservations/5/commit").await;
    assert!(a
        .error(
            StatusCode::CONFLICT,
            "reservation for order 5 was released; it cannot be committed"
        )
        .is_null());
    let a = catalog.call(Method::POST, "/reservations/6/commit").await;
    assert!(a
        .error(StatusCode::NOT_FOUND, "reservation for order 6 not found")
        .is_null());
    let a = catalog.call(Method::POST, "/reservations/six/commit").await;
    a.error_saying(StatusCode::BAD_REQUEST, "invalid path parameter", "six");

    // A release gives the stock back.
    let a = catalog
        .post(
            "/reservations",
            &json!({"order_id": 7, "product_id": p, "quantity": 2}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(
        stock(&catalog.get(&format!("/products/{p}")).await),
        Some(5)
    );
    let a = catalog.call(Method::POST, "/reservations/7/release").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let released = json!({"order_id": 7, "product_id": p, "quantity": 2, "status": "RELEASED"});
    assert_eq!(a.body, released);
    assert_eq!(
        stock(&catalog.get(&format!("/products/{p}")).await),
        Some(7)
    );

    let a = catalog.get("/reservations?status=RELEASED").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, json!([tombstone, released]));
    let a = catalog.get("/reservations?status=COMMITTED").await;
    assert_eq!(a.body, json!([committed]));
    let a = catalog.get("/reservations").await;
    assert_eq!(a.body, json!([committed, tombstone, released]));
}

#[tokio::test]
async fn catalog_unknown_paths_wrong_methods_health_and_info() {
    let catalog = Svc::alone(Service::Catalog).await;
    assert_like_every_service(
        &catalog,
        &[
            (Method::DELETE, "/products", "GET, HEAD, POST"),
            (Method::POST, "/products/1", "GET, HEAD"),
            (Method::PUT, "/reservations", "GET, HEAD, POST"),
            (Method::GET, "/reservations/1/release", "POST"),
            (Method::GET, "/reservations/1/commit", "POST"),
        ],
        json!({}),
    )
    .await;
}

// --- orders -------------------------------------------------------------------

#[tokio::test]
async fn orders_refuse_bad_orders_before_calling_anyone() {
    // Every callee is unreachable: each of these is answered before a call.
    let orders = Svc::alone(Service::Orders).await;
    for quantity in [0_i64, -3] {
        let a = orders
            .post(
                "/orders",
                &json!({"user_id": 1, "product_id": 1, "quantity": quantity}),
            )
            .await;
        assert_eq!(
            *a.error(StatusCode::BAD_REQUEST, "quantity must be > 0"),
            quantity
        );
    }
    let a = orders
        .post(
            "/orders",
            &json!({"user_id": 1, "product_id": 1, "quantity": 1.5}),
        )
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "quantity",
    );
    let a = orders
        .post("/orders", &json!({"user_id": 1, "quantity": 1}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "missing field `product_id`",
    );
    let a = orders
        .post(
            "/orders",
            &json!({"user_id": 1, "product_id": 1, "quantity": 1, "flow": "batch"}),
        )
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "unknown variant `batch`",
    );

    // An Idempotency-Key must be 1 to 200 visible ASCII characters.
    let order = json!({"user_id": 1, "product_id": 1, "quantity": 1});
    let too_long = "k".repeat(201);
    for key in ["", too_long.as_str()] {
        let a = orders.post_keyed("/orders", &order, key).await;
        assert!(
            a.error(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be 1 to 200 visible ASCII characters"
            )
            .is_null(),
            "{} characters",
            key.len()
        );
    }
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(order.to_string()))
        .expect("a request");
    req.headers_mut().insert(
        IDEMPOTENCY_KEY,
        HeaderValue::from_bytes("café".as_bytes()).expect("a header value"),
    );
    let a = orders.send(req).await;
    a.error(
        StatusCode::BAD_REQUEST,
        "Idempotency-Key must be 1 to 200 visible ASCII characters",
    );

    // This system runs without a broker.
    let a = orders
        .post(
            "/orders",
            &json!({"user_id": 1, "product_id": 1, "quantity": 1, "flow": "async"}),
        )
        .await;
    assert!(a
        .error(
            StatusCode::SERVICE_UNAVAILABLE,
            "flow \"async\" needs a Kafka broker, and this system runs without one"
        )
        .is_null());

    // Nothing was written by any of them.
    let a = orders.get("/orders").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, json!([]));
    let a = orders.get("/orders/77").await;
    assert!(a
        .error(StatusCode::NOT_FOUND, "order 77 not found")
        .is_null());
    let a = orders.get("/orders/x").await;
    assert_eq!(
        *a.error(StatusCode::BAD_REQUEST, "invalid path parameter"),
        "Invalid URL: Cannot parse `x` to a `i64`"
    );
    let a = orders.get("/orders?open=maybe").await;
    a.error_saying(StatusCode::BAD_REQUEST, "invalid query string", "open");
    let a = orders.get("/orders?state=PENDING").await;
    a.error_saying(
        StatusCode::BAD_REQUEST,
        "invalid query string",
        "unknown field `state`",
    );
}

#[tokio::test]
async fn orders_unknown_paths_wrong_methods_health_and_info() {
    let orders = Svc::alone(Service::Orders).await;
    assert_like_every_service(
        &orders,
        &[
            (Method::DELETE, "/orders", "GET, HEAD, POST"),
            (Method::PUT, "/orders/1", "GET, HEAD"),
        ],
        json!({
            "orders->users": fake_url(Service::Users),
            "orders->catalog": fake_url(Service::Catalog),
            "orders->payments": fake_url(Service::Payments),
            "orders->notifications": fake_url(Service::Notifications),
            "orders->analytics": fake_url(Service::Analytics),
        }),
    )
    .await;
}

#[tokio::test]
async fn orders_place_then_read_back_against_the_real_services() {
    // The saga needs its callees' answers: the rest of the system runs on
    // loopback, and this orders router (its own database) calls it.
    let t = TestSystem::start(SystemConfig::default()).await;
    let (user, product) = t.seed(10, 1250).await;
    let orders = Svc::build(
        Service::Orders,
        SystemConfig::default(),
        t.system.endpoints().clone(),
    )
    .await;

    // A user or product that does not exist is the caller's mistake: 422
    // with the callee's own words, and nothing written.
    let a = orders
        .post(
            "/orders",
            &json!({"user_id": 999_999, "product_id": product, "quantity": 1}),
        )
        .await;
    assert!(a
        .error(StatusCode::UNPROCESSABLE_ENTITY, "user 999999 not found")
        .is_null());
    let a = orders
        .post(
            "/orders",
            &json!({"user_id": user, "product_id": 888_888, "quantity": 1}),
        )
        .await;
    assert!(a
        .error(StatusCode::UNPROCESSABLE_ENTITY, "product 888888 not found")
        .is_null());
    let a = orders
        .post(
            "/orders",
            &json!({"user_id": user, "product_id": product, "quantity": 9_000_000_000_000_000_000_i64}),
        )
        .await;
    assert_eq!(
        *a.error(StatusCode::UNPROCESSABLE_ENTITY, "quantity too large"),
        "9000000000000000000 x 1250 cents does not fit in 64 bits"
    );
    assert_eq!(orders.get("/orders").await.body, json!([]));

    let place = json!({"user_id": user, "product_id": product, "quantity": 2});
    let a = orders.post_keyed("/orders", &place, "checkout-1").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let order = a.body;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["user_id"], user);
    assert_eq!(order["product_id"], product);
    assert_eq!(order["quantity"], 2);
    assert_eq!(order["total_cents"], 2500);
    assert_eq!(order["flow"], "sync");
    let id = order["id"].as_i64().expect("an id");

    // Read back: the same order, with its saga log.
    let a = orders.get(&format!("/orders/{id}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    for (field, value) in order.as_object().expect("an object") {
        assert_eq!(a.body[field], *value, "{field}: {}", a.body);
    }
    let saga = a.body["saga"].as_array().expect("a saga log");
    assert_eq!(saga[0]["step"], "verify_user", "{}", a.body);
    assert_eq!(saga[0]["outcome"], "succeeded", "{}", a.body);
    assert_eq!(saga[0]["detail"], format!("user {user} exists"));
    let steps = saga_steps(&a.body);
    for step in [
        "reserve_stock:execute:succeeded",
        "charge_payment:execute:succeeded",
        "confirm_order:execute:succeeded",
    ] {
        assert!(steps.iter().any(|s| s == step), "{step} in {steps:?}");
    }

    // The same key is the same order, and takes no more stock.
    let a = orders.post_keyed("/orders", &place, "checkout-1").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, order);
    assert_eq!(t.stock(product).await, 8);
    let a = orders.get("/orders?status=CONFIRMED").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, json!([order]));
    let a = orders.get("/orders?status=CANCELLED").await;
    assert_eq!(a.body, json!([]));
    t.stop().await;
}

// --- payments -----------------------------------------------------------------

#[tokio::test]
async fn payments_refuse_bad_charges_and_refunds() {
    // The provider is unreachable: each of these is answered before a call.
    let payments = Svc::alone(Service::Payments).await;
    for amount in [0_i64, -5] {
        let a = payments
            .post("/charges", &json!({"order_id": 1, "amount_cents": amount}))
            .await;
        assert!(a
            .error(StatusCode::BAD_REQUEST, "amount_cents must be > 0")
            .is_null());
    }
    let a = payments.post("/charges", &json!({"order_id": 1})).await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "missing field `amount_cents`",
    );
    let a = payments
        .post("/charges", &json!({"order_id": "1", "amount_cents": 5}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "order_id",
    );
    let a = payments
        .post("/refunds", &json!({"order_id": 1, "amount_cents": 5}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "unknown field `amount_cents`",
    );
    let a = payments.get("/charges/5").await;
    assert!(a
        .error(StatusCode::NOT_FOUND, "charge for order 5 not found")
        .is_null());
    let a = payments.get("/charges/five").await;
    assert_eq!(
        *a.error(StatusCode::BAD_REQUEST, "invalid path parameter"),
        "Invalid URL: Cannot parse `five` to a `i64`"
    );
    // No row was left by any of them.
    let a = payments.get("/charges").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, json!([]));
}

#[tokio::test]
async fn payments_a_refund_first_voids_the_order_and_its_charge_is_refused() {
    // Nothing was charged, so neither answer needs the provider.
    let payments = Svc::alone(Service::Payments).await;
    let voided = json!({
        "order_id": 7, "idempotency_key": "order-7", "amount_cents": 0,
        "status": "VOIDED", "provider_charge_id": null, "attempts": 0, "error": null,
    });
    for _ in 0..2 {
        let a = payments.post("/refunds", &json!({"order_id": 7})).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body, voided);
    }
    let a = payments.get("/charges/7").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, voided);

    let charge = json!({"order_id": 7, "amount_cents": 100});
    let a = payments.post("/charges", &charge).await;
    assert_eq!(
        *a.error(
            StatusCode::CONFLICT,
            "payment for order 7 was already voided"
        ),
        voided
    );
    let a = payments
        .post_keyed("/charges", &charge, "another-key")
        .await;
    assert!(a
        .error(
            StatusCode::CONFLICT,
            "order 7 is already being paid under another idempotency key"
        )
        .is_null());
    assert_eq!(payments.get("/charges").await.body, json!([voided]));
}

#[tokio::test]
async fn payments_unknown_paths_wrong_methods_health_and_info() {
    let payments = Svc::alone(Service::Payments).await;
    assert_like_every_service(
        &payments,
        &[
            (Method::DELETE, "/charges", "GET, HEAD, POST"),
            (Method::POST, "/charges/1", "GET, HEAD"),
            (Method::GET, "/refunds", "POST"),
        ],
        json!({"payments->provider": fake_url(Service::Provider)}),
    )
    .await;
}

#[tokio::test]
async fn payments_charge_then_read_back_against_a_real_provider() {
    let provider = Served::start(Service::Provider, Endpoints::default()).await;
    let mut endpoints = nowhere();
    endpoints.services.insert(Service::Provider, provider.url());
    let payments = Svc::build(Service::Payments, SystemConfig::default(), endpoints).await;

    let charge = json!({"order_id": 3, "amount_cents": 1250});
    let a = payments.post_keyed("/charges", &charge, "pay-3").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let http = http_client();
    let at_provider: Value = http
        .get(format!("{}/charges?order_id=3", provider.url()))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        at_provider.as_array().map(Vec::len),
        Some(1),
        "{at_provider}"
    );
    let charged = json!({
        "order_id": 3, "idempotency_key": "pay-3", "amount_cents": 1250,
        "status": "CHARGED", "provider_charge_id": at_provider[0]["id"],
        "attempts": 1, "error": null,
    });
    assert_eq!(a.body, charged);
    assert_eq!(at_provider[0]["idempotency_key"], "pay-3");

    let a = payments.get("/charges/3").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, charged);
    // A repeat is the same charge: 200, no second attempt.
    let a = payments.post_keyed("/charges", &charge, "pay-3").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, charged);

    let a = payments.post("/refunds", &json!({"order_id": 3})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let mut refunded = charged.clone();
    refunded["status"] = json!("REFUNDED");
    assert_eq!(a.body, refunded);
    assert_eq!(payments.get("/charges").await.body, json!([refunded]));
    let a = payments.post_keyed("/charges", &charge, "pay-3").await;
    assert_eq!(
        *a.error(
            StatusCode::CONFLICT,
            "payment for order 3 was already refunded"
        ),
        refunded
    );
    let ledger: Value = http
        .get(format!("{}/ledger", provider.url()))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(ledger["charged_cents"], 1250, "{ledger}");
    assert_eq!(ledger["net_cents"], 0, "{ledger}");
    provider.stop().await;
}

// --- provider -----------------------------------------------------------------

#[tokio::test]
async fn provider_faults_are_set_checked_and_read_back() {
    let provider = Svc::alone(Service::Provider).await;
    let a = provider.get("/admin/faults").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"failure_rate": 0.0, "decline_rate": 0.0, "latency_ms": 0, "jitter_ms": 0, "lost_reply_rate": 0.0})
    );
    // Fields left out are their defaults.
    let set = json!({"failure_rate": 0.0, "decline_rate": 0.25, "latency_ms": 5, "jitter_ms": 0, "lost_reply_rate": 0.0});
    let a = provider
        .json(
            Method::PUT,
            "/admin/faults",
            &json!({"decline_rate": 0.25, "latency_ms": 5}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, set);
    assert_eq!(provider.get("/admin/faults").await.body, set);

    // A rate outside [0, 1] is refused by name, and changes nothing.
    for (field, value) in [("failure_rate", 1.5), ("lost_reply_rate", -0.1)] {
        let a = provider
            .json(Method::PUT, "/admin/faults", &json!({ field: value }))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        a.assert_error_shape();
        assert!(
            a.body["error"]
                .as_str()
                .is_some_and(|e| e.contains(field) && e.contains(&value.to_string())),
            "{}",
            a.body
        );
        assert!(a.body["detail"].is_null(), "{}", a.body);
    }
    let a = provider
        .json(Method::PUT, "/admin/faults", &json!({"outage": true}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "unknown field `outage`",
    );
    let a = provider
        .json(Method::PUT, "/admin/faults", &json!({"latency_ms": -1}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "latency_ms",
    );
    assert_eq!(provider.get("/admin/faults").await.body, set);
}

#[tokio::test]
async fn provider_a_refund_of_a_key_never_charged_voids_it() {
    let provider = Svc::alone(Service::Provider).await;
    let a = provider
        .post("/refunds", &json!({"idempotency_key": "never-charged"}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let id = a.body["id"].as_i64().expect("an id");
    let voided = json!({
        "id": id, "idempotency_key": "never-charged", "order_id": null,
        "amount_cents": 0, "status": "VOIDED", "requests": 1,
    });
    assert_eq!(a.body, voided);
    // Idempotent: the same row.
    let a = provider
        .post("/refunds", &json!({"idempotency_key": "never-charged"}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, voided);

    assert_eq!(provider.get("/charges").await.body, json!([voided]));
    // A tombstone belongs to no order.
    assert_eq!(provider.get("/charges?order_id=1").await.body, json!([]));
    let a = provider.get("/ledger").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"charges": 0, "charged_cents": 0, "refunded_cents": 0, "net_cents": 0, "voided": 1, "orders_charged_twice": []})
    );

    let a = provider.post("/refunds", &json!({})).await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "missing field `idempotency_key`",
    );
    let a = provider.get("/charges?order_id=one").await;
    a.error_saying(StatusCode::BAD_REQUEST, "invalid query string", "order_id");
}

#[tokio::test]
async fn provider_unknown_paths_wrong_methods_health_and_info() {
    let provider = Svc::alone(Service::Provider).await;
    assert_like_every_service(
        &provider,
        &[
            (Method::DELETE, "/charges", "GET, HEAD, POST"),
            (Method::GET, "/refunds", "POST"),
            (Method::POST, "/ledger", "GET, HEAD"),
            (Method::DELETE, "/admin/faults", "GET, HEAD, PUT"),
        ],
        json!({}),
    )
    .await;
}

/// Over TCP: the charge handler takes the connection it came on (to drop
/// it for a lost reply), which only `server::run` provides.
#[tokio::test]
async fn provider_charges_once_per_key_over_loopback() {
    let provider = Served::start(Service::Provider, Endpoints::default()).await;
    let http = http_client();
    let url = format!("{}/charges", provider.url());
    let charge = json!({"order_id": 9, "amount_cents": 500});

    for key in [None, Some("")] {
        let mut req = http.post(&url).json(&charge);
        if let Some(k) = key {
            req = req.header(IDEMPOTENCY_KEY, k);
        }
        let r = req.send().await.expect("an answer");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{key:?}");
        let body: Value = r.json().await.expect("JSON");
        assert_eq!(
            body,
            json!({"error": "the Idempotency-Key header is required", "detail": null})
        );
    }
    let r = http
        .post(&url)
        .header(IDEMPOTENCY_KEY, "k-9")
        .json(&json!({"order_id": 9, "amount_cents": 0}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(
        body,
        json!({"error": "amount_cents must be > 0", "detail": null})
    );

    let r = http
        .post(&url)
        .header(IDEMPOTENCY_KEY, "k-9")
        .json(&charge)
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), StatusCode::CREATED);
    let first: Value = r.json().await.expect("JSON");
    let id = first["id"].as_i64().expect("an id");
    assert_eq!(
        first,
        json!({"id": id, "idempotency_key": "k-9", "order_id": 9, "amount_cents": 500, "status": "CHARGED", "requests": 1, "replayed": false})
    );
    // The same key again is a replay: the same charge, nothing new charged.
    let r = http
        .post(&url)
        .header(IDEMPOTENCY_KEY, "k-9")
        .json(&charge)
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.expect("JSON");
    assert_eq!(
        again,
        json!({"id": id, "idempotency_key": "k-9", "order_id": 9, "amount_cents": 500, "status": "CHARGED", "requests": 2, "replayed": true})
    );
    let ledger: Value = http
        .get(format!("{}/ledger", provider.url()))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        ledger,
        json!({"charges": 1, "charged_cents": 500, "refunded_cents": 0, "net_cents": 500, "voided": 0, "orders_charged_twice": []})
    );
    provider.stop().await;
}

// --- notifications ------------------------------------------------------------

#[tokio::test]
async fn notifications_are_sent_once_per_order_and_kind_then_listed() {
    let notifications = Svc::alone(Service::Notifications).await;
    let send = |order_id: i64, kind: &str| json!({"order_id": order_id, "kind": kind});
    let a = notifications
        .post("/notifications", &send(1, "order_confirmed"))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let confirmed = a.body;
    assert_eq!(confirmed["order_id"], 1);
    assert_eq!(confirmed["kind"], "order_confirmed");
    assert!(confirmed["id"].is_i64(), "{confirmed}");
    // A repeat is a no-op: 200 and the same notification.
    let a = notifications
        .post("/notifications", &send(1, "order_confirmed"))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, confirmed);
    // Another kind, or another order, is another notification.
    let a = notifications
        .post("/notifications", &send(1, "order_shipped"))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let shipped = a.body;
    assert_ne!(shipped["id"], confirmed["id"]);
    let a = notifications
        .post("/notifications", &send(2, "order_confirmed"))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let other = a.body;

    let a = notifications.get("/notifications?order_id=1").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, json!([confirmed, shipped]));
    let a = notifications.get("/notifications").await;
    assert_eq!(a.body, json!([confirmed, shipped, other]));
    let a = notifications.get("/notifications?order_id=3").await;
    assert_eq!(a.body, json!([]));
}

#[tokio::test]
async fn notifications_refuse_bad_input() {
    let notifications = Svc::alone(Service::Notifications).await;
    let a = notifications
        .post("/notifications", &json!({"order_id": 1, "kind": "  "}))
        .await;
    assert!(a
        .error(StatusCode::BAD_REQUEST, "kind must not be empty")
        .is_null());
    let a = notifications
        .post("/notifications", &json!({"order_id": 1}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "missing field `kind`",
    );
    let a = notifications
        .post("/notifications", &json!({"order_id": "1", "kind": "x"}))
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "order_id",
    );
    let a = notifications.get("/notifications?order_id=x").await;
    a.error_saying(StatusCode::BAD_REQUEST, "invalid query string", "order_id");
    let a = notifications.get("/notifications?order=1").await;
    a.error_saying(
        StatusCode::BAD_REQUEST,
        "invalid query string",
        "unknown field `order`",
    );
    assert_eq!(notifications.get("/notifications").await.body, json!([]));
}

#[tokio::test]
async fn notifications_unknown_paths_wrong_methods_health_and_info() {
    let notifications = Svc::alone(Service::Notifications).await;
    assert_like_every_service(
        &notifications,
        &[(Method::DELETE, "/notifications", "GET, HEAD, POST")],
        json!({}),
    )
    .await;
}

// --- analytics ----------------------------------------------------------------

#[tokio::test]
async fn analytics_counts_each_order_once_in_its_stats() {
    let analytics = Svc::alone(Service::Analytics).await;
    let a = analytics.get("/stats").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"orders": 0, "confirmed": 0, "cancelled": 0, "success_rate": 0.0, "revenue_cents": 0, "top_products": []})
    );

    let outcome = |order_id: i64, status: &str, product_id: i64, quantity: i64, total: i64| json!({"order_id": order_id, "status": status, "product_id": product_id, "quantity": quantity, "total_cents": total});
    let a = analytics
        .post("/events/orders", &outcome(1, "CONFIRMED", 7, 2, 500))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert!(a.body.is_null(), "no body: {}", a.body);
    // Redelivered, even with another status: already recorded.
    for status in ["CONFIRMED", "CANCELLED"] {
        let a = analytics
            .post("/events/orders", &outcome(1, status, 7, 2, 500))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{status}: {}", a.body);
    }
    for o in [
        outcome(2, "CANCELLED", 7, 1, 250),
        outcome(3, "CONFIRMED", 8, 5, 1000),
    ] {
        let a = analytics.post("/events/orders", &o).await;
        assert_eq!(a.status, StatusCode::CREATED, "{o}: {}", a.body);
    }

    let a = analytics.get("/stats").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let rate = a.body["success_rate"].as_f64().expect("a rate");
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{}", a.body);
    let mut stats = a.body;
    stats["success_rate"] = Value::Null;
    assert_eq!(
        stats,
        json!({
            "orders": 3, "confirmed": 2, "cancelled": 1, "success_rate": null,
            "revenue_cents": 1500,
            // Confirmed orders only, most units first.
            "top_products": [
                {"product_id": 8, "quantity": 5, "revenue_cents": 1000},
                {"product_id": 7, "quantity": 2, "revenue_cents": 500},
            ],
        })
    );
}

#[tokio::test]
async fn analytics_refuse_bad_outcomes() {
    let analytics = Svc::alone(Service::Analytics).await;
    let a = analytics
        .post(
            "/events/orders",
            &json!({"order_id": 1, "status": "SHIPPED", "product_id": 7, "quantity": 1, "total_cents": 1}),
        )
        .await;
    assert!(a
        .error(
            StatusCode::BAD_REQUEST,
            "status must be CONFIRMED or CANCELLED"
        )
        .is_null());
    let a = analytics
        .post(
            "/events/orders",
            &json!({"order_id": 1, "status": "CONFIRMED", "product_id": 7, "quantity": 1}),
        )
        .await;
    a.error_saying(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
        "missing field `total_cents`",
    );
    let a = analytics
        .raw(
            Method::POST,
            "/events/orders",
            Some("application/json"),
            r#"{"order_id": 1, "status": "#.into(),
        )
        .await;
    a.error(StatusCode::BAD_REQUEST, "malformed JSON");
    assert_eq!(analytics.get("/stats").await.body["orders"], 0);
}

#[tokio::test]
async fn analytics_unknown_paths_wrong_methods_health_and_info() {
    let analytics = Svc::alone(Service::Analytics).await;
    assert_like_every_service(
        &analytics,
        &[
            (Method::GET, "/events/orders", "POST"),
            (Method::POST, "/stats", "GET, HEAD"),
        ],
        json!({}),
    )
    .await;
}

// --- gateway ------------------------------------------------------------------

/// The gateway with `config`'s edge and every service at its [`fake_url`].
async fn gateway(config: GatewayConfig) -> Svc {
    let config = SystemConfig {
        gateway: config,
        ..SystemConfig::default()
    };
    Svc::build(Service::Gateway, config, nowhere()).await
}

/// `method uri` with this `Authorization`, if any.
fn authorized(method: Method, uri: &str, authorization: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = authorization {
        req = req.header(header::AUTHORIZATION, a);
    }
    req.body(Body::empty()).expect("a request")
}

/// Past the edge: `PUT /api/orders` is refused by the route table, after
/// the edge and before anything is forwarded.
#[track_caller]
fn assert_past_the_edge(a: &Answer) {
    assert_eq!(
        *a.error(
            StatusCode::METHOD_NOT_ALLOWED,
            "/api/orders does not take PUT"
        ),
        "allowed: GET, POST"
    );
}

#[tokio::test]
async fn gateway_services_status_lists_every_instance_where_the_gateway_reaches_it() {
    // A link override (a proxy in front of users) is where the gateway
    // reaches users, so it is what the registry probes and shows.
    let mut endpoints = nowhere();
    endpoints.links.insert(
        "gateway->users".to_string(),
        "http://users-proxy.invalid".to_string(),
    );
    let gw = Svc::build(Service::Gateway, SystemConfig::default(), endpoints).await;
    let a = gw.get("/services/status").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // Not probed yet (the probe loop does not run here): unknown, routable.
    let instance = |service: &str, url: String| {
        json!({
            "service": service, "url": url, "health": "unknown", "routable": true,
            "consecutive_failures": 0, "last_checked_ms": null, "probe_ms": null,
        })
    };
    assert_eq!(
        a.body,
        json!({
            "services": [
                instance("users", "http://users-proxy.invalid".into()),
                instance("catalog", fake_url(Service::Catalog)),
                instance("orders", fake_url(Service::Orders)),
                instance("payments", fake_url(Service::Payments)),
                instance("provider", fake_url(Service::Provider)),
                instance("notifications", fake_url(Service::Notifications)),
                instance("analytics", fake_url(Service::Analytics)),
            ],
            "routable": 7,
            "total": 7,
        })
    );
    // Read-only, refused in JSON.
    let a = gw.call(Method::POST, "/services/status").await;
    assert_eq!(
        *a.error(
            StatusCode::METHOD_NOT_ALLOWED,
            "/services/status does not take POST"
        ),
        "allowed: GET, HEAD"
    );
    assert_eq!(a.header(header::ALLOW), "GET, HEAD");

    assert_like_every_service(
        &gw,
        &[
            (Method::DELETE, "/services/status", "GET, HEAD"),
            (Method::PUT, "/api/orders", "GET, POST"),
            (Method::DELETE, "/api/users/1", "GET"),
        ],
        json!({
            "gateway->users": "http://users-proxy.invalid",
            "gateway->catalog": fake_url(Service::Catalog),
            "gateway->orders": fake_url(Service::Orders),
        }),
    )
    .await;
}

#[tokio::test]
async fn gateway_api_key_guards_the_api_and_nothing_else() {
    let gw = gateway(GatewayConfig {
        api_key: Some("k3y".into()),
        ..GatewayConfig::default()
    })
    .await;
    // No bearer token (none at all, or another scheme): the bare challenge.
    for authorization in [None, Some("Basic k3y"), Some("k3y")] {
        let a = gw
            .send(authorized(Method::PUT, "/api/orders", authorization))
            .await;
        assert_eq!(
            *a.error(StatusCode::UNAUTHORIZED, "missing bearer token"),
            "send Authorization: Bearer <token>",
            "{authorization:?}"
        );
        assert_eq!(
            a.header(header::WWW_AUTHENTICATE),
            "Bearer realm=\"gauntlet\""
        );
    }
    let a = gw
        .send(authorized(Method::PUT, "/api/orders", Some("Bearer k3y!")))
        .await;
    assert_eq!(
        *a.error(StatusCode::UNAUTHORIZED, "invalid token"),
        "wrong API key"
    );
    assert_eq!(
        a.header(header::WWW_AUTHENTICATE),
        "Bearer realm=\"gauntlet\", error=\"invalid_token\", error_description=\"wrong API key\""
    );
    // The scheme is case-insensitive.
    for authorization in ["Bearer k3y", "bearer k3y"] {
        let a = gw
            .send(authorized(Method::PUT, "/api/orders", Some(authorization)))
            .await;
        assert_past_the_edge(&a);
    }

    // Outside /api nothing is guarded: status, telemetry, the document,
    // and the 404 of a path the API does not have.
    for path in ["/services/status", "/health", "/info", "/openapi.json"] {
        let a = gw.get(path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    let a = gw.get("/api/nothing").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    a.assert_error_shape();
}

#[tokio::test]
async fn gateway_rate_limit_from_the_config_counts_only_admitted_api_calls() {
    // One a second, a burst of two, per subject; every request here is
    // the same subject (the API key lets in by address, and there is none).
    let gw = gateway(GatewayConfig {
        api_key: Some("k3y".into()),
        limits: LimitsConfig {
            per_subject_per_sec: Some(1),
            per_subject_burst: Some(2),
            ..LimitsConfig::default()
        },
        ..GatewayConfig::default()
    })
    .await;
    // Refused callers and calls outside /api use none of the allowance.
    for _ in 0..3 {
        let a = gw.send(authorized(Method::PUT, "/api/orders", None)).await;
        a.error(StatusCode::UNAUTHORIZED, "missing bearer token");
    }
    for _ in 0..5 {
        assert_eq!(gw.get("/services/status").await.status, StatusCode::OK);
    }
    for _ in 0..2 {
        let a = gw
            .send(authorized(Method::PUT, "/api/orders", Some("Bearer k3y")))
            .await;
        assert_past_the_edge(&a);
    }
    let a = gw
        .send(authorized(Method::PUT, "/api/orders", Some("Bearer k3y")))
        .await;
    assert_eq!(
        *a.error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded"),
        "per-subject limit; retry in 1 s"
    );
    assert_eq!(a.header(header::RETRY_AFTER), "1");
    // Who the caller is is still checked first; and /health is not limited.
    let a = gw.send(authorized(Method::PUT, "/api/orders", None)).await;
    a.error(StatusCode::UNAUTHORIZED, "missing bearer token");
    assert_eq!(gw.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn gateway_forwards_a_user_there_and_back() {
    let users = Served::start(Service::Users, Endpoints::default()).await;
    let mut endpoints = nowhere();
    endpoints.services.insert(Service::Users, users.url());
    let gw = Svc::build(Service::Gateway, SystemConfig::default(), endpoints).await;

    let a = gw
        .post(
            "/api/users",
            &json!({"name": "Grace", "email": "grace@example.com"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.header(header::CONTENT_TYPE), "application/json");
    let id = a.body["id"].as_i64().expect("an id");
    let grace = json!({"id": id, "name": "Grace", "email": "grace@example.com"});
    assert_eq!(a.body, grace);
    let a = gw.get(&format!("/api/users/{id}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, grace);

    // The service's own refusals come through as they are.
    let a = gw
        .post("/api/users", &json!({"name": "", "email": "grace"}))
        .await;
    assert_eq!(
        *a.error(StatusCode::BAD_REQUEST, "invalid user"),
        json!([
            "name must not be empty",
            "email must look like name@example.com"
        ])
    );
    let a = gw.get("/api/users/424242").await;
    assert!(a
        .error(StatusCode::NOT_FOUND, "user 424242 not found")
        .is_null());
    users.stop().await;
}
