//! Shared helpers for the system's integration tests: start the whole
//! system on loopback with a given configuration, and talk to it.

use std::time::Duration;

use gauntlet_system::{Service, System, SystemConfig, SystemOptions};
use serde_json::{json, Value};

pub struct TestSystem {
    pub system: System,
    pub http: reqwest::Client,
}

impl TestSystem {
    pub async fn start(config: SystemConfig) -> Self {
        let system = System::start(SystemOptions {
            config,
            ..SystemOptions::default()
        })
        .await
        .expect("system starts");
        Self {
            system,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    pub fn url(&self, service: Service, path: &str) -> String {
        format!("{}{path}", self.system.url(service))
    }

    pub fn api(&self, path: &str) -> String {
        self.url(Service::Gateway, path)
    }

    pub async fn get(&self, url: &str) -> (u16, Value) {
        let r = self.http.get(url).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, url: &str, body: Value) -> (u16, Value) {
        self.post_with(url, body, None).await
    }

    pub async fn post_with(&self, url: &str, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(url).json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, url: &str, body: &'static str) -> (u16, Value) {
        let r = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A user and a product with `stock` units at `price` cents.
    pub async fn seed(&self, stock: i64, price: i64) -> (i64, i64) {
        let (s, user) = self
            .post(
                &self.api("/api/users"),
                json!({"name": "Ada", "email": format!("ada{}@example.com", rand_suffix())}),
            )
            .await;
        assert_eq!(s, 201, "{user}");
        let (s, product) = self
            .post(
                &self.api("/api/products"),
                json!({"name": "Widget", "price_cents": price, "stock": stock}),
            )
            .await;
        assert_eq!(s, 201, "{product}");
        (
            user["id"].as_i64().unwrap(),
            product["id"].as_i64().unwrap(),
        )
    }

    pub async fn order(&self, user: i64, product: i64, quantity: i64) -> (u16, Value) {
        self.post(
            &self.api("/api/orders"),
            json!({"user_id": user, "product_id": product, "quantity": quantity, "flow": "sync"}),
        )
        .await
    }

    pub async fn set_provider(&self, faults: Value) {
        let r = self
            .http
            .put(self.url(Service::Provider, "/admin/faults"))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    pub async fn stock(&self, product: i64) -> i64 {
        let (_, p) = self
            .get(&self.api(&format!("/api/products/{product}")))
            .await;
        p["stock"].as_i64().expect("stock")
    }

    pub async fn provider_charges(&self, order: i64) -> Vec<Value> {
        let (_, v) = self
            .get(&self.url(Service::Provider, &format!("/charges?order_id={order}")))
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Polls `f` until it returns `Some`, or panics after `within`.
    pub async fn eventually<T, F, Fut>(&self, within: Duration, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        self.system.stop().await;
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The steps of a saga log as "step:action:outcome" strings.
pub fn saga_steps(order: &Value) -> Vec<String> {
    order["saga"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}",
                        e["step"].as_str().unwrap_or(""),
                        e["action"].as_str().unwrap_or(""),
                        e["outcome"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
