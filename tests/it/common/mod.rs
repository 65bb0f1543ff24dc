//! The stack every integration test here starts, and the few calls they
//! all make on it.

use gauntlet::stack::{Stack, StackOptions};
use gauntlet::timeline::{Network, Services, Target};
use gauntlet_system::Service;
use serde_json::{json, Value};

/// A running stack and an HTTP client that bypasses any proxy settings.
pub struct Harness {
    pub stack: Stack,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start(opts: StackOptions) -> Self {
        let stack = Stack::start(opts).await.expect("stack starts");
        Self {
            stack,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// A fault timeline's target on this stack.
    pub fn target(&self, network: Network) -> Target {
        Target {
            network,
            services: Services::Embedded(self.stack.system.clone()),
            http: self.http.clone(),
        }
    }

    /// A service's own URL for `path` (not through a proxy).
    pub async fn url(&self, s: Service, path: &str) -> String {
        format!("{}{path}", self.stack.system.lock().await.url(s))
    }

    /// `POST` to the gateway: the status and the JSON answer.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.stack.gateway_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, url: String) -> Value {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A user and a product with `stock` units at `price_cents`: their ids.
    pub async fn seed(&self, price_cents: i64, stock: i64) -> (i64, i64) {
        let (_, u) = self
            .post("/api/users", json!({"name": "A", "email": "a@example.com"}))
            .await;
        let (_, p) = self
            .post(
                "/api/products",
                json!({"name": "W", "price_cents": price_cents, "stock": stock}),
            )
            .await;
        (u["id"].as_i64().unwrap(), p["id"].as_i64().unwrap())
    }
}

/// Every failed invariant and gate of a run, with what it found, for an
/// assertion's message.
pub fn failures(r: &gauntlet_reports::report::Report) -> Vec<String> {
    r.invariants
        .iter()
        .filter(|i| !i.passed)
        .map(|i| format!("{}: {}", i.name, i.detail))
        .chain(
            r.gates
                .iter()
                .filter(|g| !g.passed)
                .map(|g| format!("{}: {}", g.gate, g.detail)),
        )
        .collect()
}
