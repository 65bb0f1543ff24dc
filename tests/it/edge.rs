//! The gateway as an edge, over TCP through the real fault proxies: bad
//! input gets a 4xx with a JSON error, never a 5xx, however large its body.

use gauntlet::stack::StackOptions;
use serde_json::Value;

use crate::common::Harness;

/// The case that used to end in 504s: a route without DELETE, a 200 KB
/// body, 200 times on one keep-alive client. Every answer is a 405 naming
/// what is allowed; a few other kinds of bad input get their own 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_with_a_big_body_is_answered_4xx_every_time() {
    let mut h = Harness::start(StackOptions::default()).await;
    let gateway = h.stack.gateway_url().to_string();
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(200 * 1024));
    let mut by_status = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let r = h
            .http
            .delete(format!("{gateway}/api/products/-1"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let key = match r {
            Ok(r) => {
                let status = r.status().as_u16();
                let allow = r
                    .headers()
                    .get("allow")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let json: Value = r.json().await.unwrap_or(Value::Null);
                assert!(json["error"].is_string(), "{status}: {json}");
                format!("{status} allow={allow}")
            }
            Err(e) => format!("no answer: {e}"),
        };
        *by_status.entry(key).or_insert(0) += 1;
    }
    assert_eq!(
        by_status,
        std::collections::BTreeMap::from([("405 allow=GET".to_string(), 200)]),
    );

    // Other bad input: not JSON, too large, no such path.
    let r = h
        .http
        .post(format!("{gateway}/api/orders"))
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status().as_u16(), 415);
    let r = h
        .http
        .post(format!("{gateway}/api/orders"))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status().as_u16(), 413);
    let r = h
        .http
        .get(format!("{gateway}/api/products/1/nothing"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status().as_u16(), 404);
    let json: Value = r.json().await.expect("JSON");
    assert!(json["error"].is_string(), "{json}");
    h.stack.stop().await;
}
