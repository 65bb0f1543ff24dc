//! The synchronous order flow, end to end on loopback: every service real,
//! every database a real SQLite file.

use std::time::Duration;

use gauntlet_system::{Service, SystemConfig};
use serde_json::json;

use crate::common::{saga_steps, TestSystem};

#[tokio::test]
async fn a_confirmed_order_takes_stock_charges_once_and_is_counted() {
    let t = TestSystem::start(SystemConfig::default()).await;
    let (user, product) = t.seed(10, 1250).await;

    let (status, order) = t.order(user, product, 3).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(order["total_cents"], 3750);
    assert_eq!(order["flow"], "sync");
    let id = order["id"].as_i64().unwrap();

    assert_eq!(t.stock(product).await, 7);
    let charges = t.provider_charges(id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["status"], "CHARGED");
    assert_eq!(charges[0]["amount_cents"], 3750);

    let (_, res) = t.get(&t.url(Service::Catalog, "/reservations")).await;
    assert_eq!(
        res,
        json!([{"order_id": id, "product_id": product, "quantity": 3, "status": "COMMITTED"}])
    );
    let (_, stats) = t.get(&t.url(Service::Analytics, "/stats")).await;
    assert_eq!(stats["confirmed"], 1);
    assert_eq!(stats["revenue_cents"], 3750);
    assert_eq!(stats["top_products"][0]["product_id"], product);
    let (_, sent) = t
        .get(&t.url(
            Service::Notifications,
            &format!("/notifications?order_id={id}"),
        ))
        .await;
    assert_eq!(sent.as_array().map(Vec::len), Some(1), "{sent}");

    let (_, full) = t.get(&t.api(&format!("/api/orders/{id}"))).await;
    assert_eq!(
        saga_steps(&full),
        [
            "verify_user:execute:succeeded",
            "reserve_stock:execute:started",
            "reserve_stock:execute:succeeded",
            "charge_payment:execute:started",
            "charge_payment:execute:succeeded",
            "confirm_order:execute:succeeded",
            "notify:execute:succeeded",
        ]
    );
    t.stop().await;
}

async fn assert_compensated(t: &TestSystem, product: i64, stock: i64, order: &serde_json::Value) {
    assert_eq!(order["status"], "CANCELLED", "{order}");
    let id = order["id"].as_i64().unwrap();
    assert_eq!(t.stock(product).await, stock, "stock released");
    let (_, full) = t.get(&t.api(&format!("/api/orders/{id}"))).await;
    let steps = saga_steps(&full);
    let tail: Vec<&str> = steps
        .iter()
        .rev()
        .take(7)
        .rev()
        .map(String::as_str)
        .collect();
    // Compensations run in reverse order of the steps they undo.
    assert_eq!(
        tail,
        [
            "charge_payment:execute:failed",
            "refund_payment:compensate:started",
            "refund_payment:compensate:succeeded",
            "release_stock:compensate:started",
            "release_stock:compensate:succeeded",
            "cancel_order:compensate:succeeded",
            "notify:execute:succeeded",
        ],
        "{steps:?}"
    );
    // Nothing stands at the provider, and a late charge could not land.
    let charges = t.provider_charges(id).await;
    assert!(
        charges.iter().all(|c| c["status"] != "CHARGED"),
        "{charges:?}"
    );
    let (_, res) = t.get(&t.url(Service::Catalog, "/reservations")).await;
    assert_eq!(res[0]["status"], "RELEASED", "{res}");
    let (_, stats) = t.get(&t.url(Service::Analytics, "/stats")).await;
    assert_eq!(stats["cancelled"], 1);
    assert_eq!(stats["revenue_cents"], 0);
}

#[tokio::test]
async fn an_unavailable_provider_cancels_the_order_and_compensates_in_reverse() {
    let t = TestSystem::start(SystemConfig::default()).await;
    let (user, product) = t.seed(5, 100).await;
    t.set_provider(json!({"failure_rate": 1.0})).await;
    let (status, order) = t.order(user, product, 2).await;
    assert_eq!(status, 201, "{order}");
    assert!(
        order["cancel_reason"].as_str().unwrap().contains("payment"),
        "{order}"
    );
    assert_compensated(&t, product, 5, &order).await;
    t.stop().await;
}

#[tokio::test]
async fn a_declined_payment_cancels_the_order_and_compensates_in_reverse() {
    let t = TestSystem::start(SystemConfig::default()).await;
    let (user, product) = t.seed(5, 100).await;
    t.set_provider(json!({"decline_rate": 1.0})).await;
    let (status, order) = t.order(user, product, 2).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["cancel_reason"], "payment declined");
    assert_compensated(&t, product, 5, &order).await;
    t.stop().await;
}

#[tokio::test]
async fn a_lost_reply_is_retried_with_the_same_key_and_charges_exactly_once() {
    let t = TestSystem::start(SystemConfig::default()).await;
    let (user, product) = t.seed(5, 999).await;
    // Every charge made for the first time loses its reply; a replay of
    // the key answers normally.
    t.set_provider(json!({"lost_reply_rate": 1.0})).await;
    let (status, order) = t.order(user, product, 1).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "CONFIRMED");
    let id = order["id"].as_i64().unwrap();
    let charges = t.provider_charges(id).await;
    assert_eq!(charges.len(), 1, "exactly one charge: {charges:?}");
    assert_eq!(charges[0]["idempotency_key"], format!("order-{id}"));
    assert!(charges[0]["requests"].as_i64().unwrap() >= 2, "{charges:?}");
    let (_, ledger) = t.get(&t.url(Service::Provider, "/ledger")).await;
    assert_eq!(ledger["net_cents"], 999);
    assert_eq!(ledger["orders_charged_twice"], json!([]));
    t.stop().await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_order() {
    let t = TestSystem::start(SystemConfig::default()).await;
    let (user, product) = t.seed(10, 100).await;
    let body = json!({"user_id": user, "product_id": product, "quantity": 1, "flow": "sync"});
    let (s1, first) = t
        .post_with(&t.api("/api/orders"), body.clone(), Some("abc"))
        .await;
    let (s2, again) = t
        .post_with(&t.api("/api/orders"), body.clone(), Some("abc"))
        .await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first, again);
    let (s3, other) = t.post_with(&t.api("/api/orders"), body, Some("xyz")).await;
    assert_eq!(s3, 201);
    assert_ne!(first["id"], other["id"]);
    assert_eq!(t.stock(product).await, 8, "two orders, not three");
    let (_, all) = t.get(&t.url(Service::Orders, "/orders")).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    t.stop().await;
}

#[tokio::test]
async fn bad_requests_get_a_json_4xx_and_change_nothing() {
    let t = TestSystem::start(SystemConfig::default()).await;
    let (user, product) = t.seed(10, 100).await;
    let orders = t.api("/api/orders");
    let cases: Vec<(&str, u16, (u16, serde_json::Value))> = vec![
        ("malformed JSON", 400, t.post_raw(&orders, r#"{"user_id": 1,"#).await),
        ("wrong type", 422, t.post_raw(&orders, r#"{"user_id": "one", "product_id": 1, "quantity": 1}"#).await),
        ("missing field", 422, t.post_raw(&orders, r#"{"user_id": 1}"#).await),
        ("unknown field", 422, t.post_raw(&orders, r#"{"user_id": 1, "product_id": 1, "quantity": 1, "colour": "red"}"#).await),
        ("negative quantity", 400, t.order(user, product, -1).await),
        ("zero quantity", 400, t.order(user, product, 0).await),
        ("unknown user", 422, t.order(9999, product, 1).await),
        ("unknown product", 422, t.order(user, 9999, 1).await),
        ("unknown flow", 422, t.post(&orders, json!({"user_id": user, "product_id": product, "quantity": 1, "flow": "carrier-pigeon"})).await),
        ("bad user", 400, t.post(&t.api("/api/users"), json!({"name": "", "email": "nope"})).await),
        ("negative stock", 400, t.post(&t.api("/api/products"), json!({"name": "x", "price_cents": 1, "stock": -5})).await),
        ("unknown order", 404, t.get(&t.api("/api/orders/424242")).await),
        ("non-numeric id", 400, t.get(&t.api("/api/orders/abc")).await),
        ("unknown route", 404, t.get(&t.api("/api/nothing-here")).await),
    ];
    for (what, want, (got, body)) in cases {
        assert_eq!(got, want, "{what}: {body}");
        assert!(
            body["error"].is_string(),
            "{what}: no JSON error body: {body}"
        );
    }
    assert_eq!(t.stock(product).await, 10);
    let (_, all) = t.get(&t.url(Service::Orders, "/orders")).await;
    assert_eq!(all, json!([]), "no order was written");
    let (_, ledger) = t.get(&t.url(Service::Provider, "/ledger")).await;
    assert_eq!(ledger["charges"], 0);
    t.stop().await;
}

#[tokio::test]
async fn orders_restarted_mid_saga_finishes_it_without_charging_twice() {
    let t = TestSystem::start(SystemConfig::default()).await;
    let (user, product) = t.seed(10, 500).await;
    // Hold the saga in its charge step long enough to crash orders there.
    t.set_provider(json!({"latency_ms": 1500})).await;
    let mut t = t;
    let gateway = t.api("/api/orders");
    let http = t.http.clone();
    let client = tokio::spawn(async move {
        http.post(gateway)
            .json(&json!({"user_id": user, "product_id": product, "quantity": 2, "flow": "sync"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let orders_url = t.url(Service::Orders, "/orders?open=true");
    let id = t
        .eventually(
            Duration::from_secs(10),
            "the saga to reach its charge step",
            || {
                let t = &t;
                let url = orders_url.clone();
                async move {
                    let (_, open) = t.get(&url).await;
                    open.as_array()?
                        .iter()
                        .find(|o| o["saga_step"] == "charge")
                        .and_then(|o| o["id"].as_i64())
                }
            },
        )
        .await;
    assert!(t.system.crash(Service::Orders).await);
    // The client saw its connection die: its outcome is unknown to it.
    let seen = client.await.unwrap();
    assert!(seen.as_ref().map(|s| *s >= 500).unwrap_or(true), "{seen:?}");
    t.set_provider(json!({})).await;
    t.system.restart(Service::Orders).await.unwrap();

    let order_url = t.api(&format!("/api/orders/{id}"));
    let order = t
        .eventually(
            Duration::from_secs(15),
            "recovery to finish the saga",
            || {
                let t = &t;
                let url = order_url.clone();
                async move {
                    let (s, o) = t.get(&url).await;
                    (s == 200 && o["saga_step"] == "done").then_some(o)
                }
            },
        )
        .await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let charges = t.provider_charges(id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["status"], "CHARGED");
    assert_eq!(t.stock(product).await, 8);
    t.stop().await;
}

#[tokio::test]
async fn orders_restarted_mid_saga_compensates_when_payment_then_fails() {
    let t = TestSystem::start(SystemConfig::default()).await;
    let (user, product) = t.seed(10, 500).await;
    let mut t = t;
    // Stall every provider request so the first charge never completes,
    // and then let nothing be charged after the restart.
    t.set_provider(json!({"latency_ms": 3000})).await;
    let gateway = t.api("/api/orders");
    let http = t.http.clone();
    let client = tokio::spawn(async move {
        let _ = http
            .post(gateway)
            .json(&json!({"user_id": user, "product_id": product, "quantity": 4, "flow": "sync"}))
            .send()
            .await;
    });
    let orders_url = t.url(Service::Orders, "/orders?open=true");
    let id = t
        .eventually(
            Duration::from_secs(10),
            "the saga to reach its charge step",
            || {
                let t = &t;
                let url = orders_url.clone();
                async move {
                    let (_, open) = t.get(&url).await;
                    open.as_array()?
                        .iter()
                        .find(|o| o["saga_step"] == "charge")
                        .and_then(|o| o["id"].as_i64())
                }
            },
        )
        .await;
    t.system.crash(Service::Orders).await;
    client.await.unwrap();
    t.set_provider(json!({"decline_rate": 1.0})).await;
    t.system.restart(Service::Orders).await.unwrap();
    let order_url = t.api(&format!("/api/orders/{id}"));
    let order = t
        .eventually(
            Duration::from_secs(20),
            "recovery to compensate the saga",
            || {
                let t = &t;
                let url = order_url.clone();
                async move {
                    let (s, o) = t.get(&url).await;
                    (s == 200 && o["saga_step"] == "done").then_some(o)
                }
            },
        )
        .await;
    assert_eq!(order["status"], "CANCELLED", "{order}");
    assert_eq!(t.stock(product).await, 10);
    let charges = t.provider_charges(id).await;
    assert!(
        charges.iter().all(|c| c["status"] != "CHARGED"),
        "{charges:?}"
    );
    t.stop().await;
}
