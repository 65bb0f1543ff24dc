//! Faults on the running system, through the same stack `gauntlet serve`
//! starts: a proxy on every link, faults applied by the timeline.

use std::collections::BTreeMap;
use std::time::Duration;

use gauntlet::stack::StackOptions;
use gauntlet::timeline::{FaultAction, FaultStep, Network, Phase, Timeline, ToxicSpec};
use gauntlet_chaos::{Latency, ToxicKind};
use gauntlet_resilience::{BreakerConfig, ResilienceConfig, RetryConfig};
use gauntlet_system::{Service, SystemConfig, SystemOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::common::Harness;

struct T(Harness);

impl std::ops::Deref for T {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl std::ops::DerefMut for T {
    fn deref_mut(&mut self) -> &mut Harness {
        &mut self.0
    }
}

impl T {
    async fn start(config: SystemConfig) -> Self {
        T(Harness::start(StackOptions {
            system: SystemOptions {
                config,
                ..SystemOptions::default()
            },
            api_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..StackOptions::default()
        })
        .await)
    }

    async fn seed(&self) -> (i64, i64) {
        self.0.seed(100, 1000).await
    }

    /// Places an order: 201 settled, or 202 still compensating.
    async fn order(&self, user: i64, product: i64) -> (Value, Duration) {
        let started = std::time::Instant::now();
        let (s, o) = self
            .post(
                "/api/orders",
                json!({"user_id": user, "product_id": product, "quantity": 1, "flow": "sync"}),
            )
            .await;
        assert!(
            s == 201 || (s == 202 && o["status"] == "PENDING"),
            "{s} {o}"
        );
        (o, started.elapsed())
    }

    async fn service_url(&self, s: Service) -> String {
        self.stack.system.lock().await.url(s)
    }
}

fn payments_link_config() -> SystemConfig {
    let mut links = BTreeMap::new();
    links.insert(
        "orders->payments".to_string(),
        ResilienceConfig {
            timeout: Duration::from_secs(1),
            retry: RetryConfig {
                max_attempts: 2,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
            },
            breaker: BreakerConfig {
                sliding_window_size: 6,
                minimum_calls: 6,
                failure_rate_threshold: 50.0,
                wait_in_open: Duration::from_millis(500),
                permitted_calls_in_half_open: 1,
                ..BreakerConfig::default()
            },
        },
    );
    SystemConfig {
        links,
        ..SystemConfig::default()
    }
}

async fn payments_link_down_then_up(t: &T, network: Network) {
    let (user, product) = t.seed().await;
    let (ok, _) = t.order(user, product).await;
    assert_eq!(ok["status"], "CONFIRMED");

    let mut timeline = Timeline::new(
        vec![FaultStep {
            at: Duration::ZERO,
            duration: None,
            action: FaultAction::LinkDown {
                link: "orders->payments".into(),
            },
        }],
        t.target(network),
    );
    timeline.run(&CancellationToken::new()).await;
    let applied: Vec<(&str, Phase)> = timeline
        .records()
        .iter()
        .map(|r| (r.action.as_str(), r.phase))
        .collect();
    assert_eq!(applied, [("orders->payments down", Phase::Applied)]);

    // Orders fail while the link is down. One whose charge may have reached
    // payments cannot be cancelled before its refund goes through, so it
    // comes back PENDING; once the breaker has seen enough failures it opens
    // and orders are cancelled at once, without trying the link.
    let mut fast = None;
    let mut placed = Vec::new();
    for _ in 0..20 {
        let (o, took) = t.order(user, product).await;
        assert_ne!(o["status"], "CONFIRMED", "{o}");
        placed.push(o["id"].as_i64().unwrap());
        let reason = o["cancel_reason"].as_str().unwrap_or_default().to_string();
        if o["status"] == "CANCELLED" && reason.contains("circuit breaker open") {
            fast = Some(took);
            break;
        }
    }
    let fast = fast.expect("the breaker opened within 20 orders");
    assert!(fast < Duration::from_millis(500), "failed fast: {fast:?}");

    timeline.heal().await;
    let phases: Vec<Phase> = timeline.records().iter().map(|r| r.phase).collect();
    assert_eq!(phases, [Phase::Applied, Phase::Undone]);
    assert!(timeline.records().iter().all(|r| r.error.is_none()));

    // Back: after the wait in open, a trial call closes the breaker.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (o, _) = t.order(user, product).await;
        if o["status"] == "CONFIRMED" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recovered: {o}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every order placed while the link was down ends CANCELLED, its stock
    // back and nothing charged.
    for id in placed {
        let url = format!("{}/api/orders/{id}", t.stack.gateway_url());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let o = t.get(url.clone()).await;
            if o["saga_step"] == "done" {
                assert_eq!(o["status"], "CANCELLED", "{o}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never settled: {o}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ledger = t
        .get(format!("{}/ledger", t.service_url(Service::Provider).await))
        .await;
    assert_eq!(ledger["orders_charged_twice"], json!([]));
    let confirmed = t
        .get(format!(
            "{}/orders?status=CONFIRMED",
            t.service_url(Service::Orders).await
        ))
        .await;
    let confirmed = confirmed.as_array().unwrap().len() as i64;
    assert_eq!(ledger["net_cents"], confirmed * 100, "{ledger}");
    let p = t
        .get(format!("{}/api/products/{product}", t.stack.gateway_url()))
        .await;
    assert_eq!(p["stock"], 1000 - confirmed, "{p}");

    let breakers = t
        .get(format!(
            "{}/circuit-breakers",
            t.service_url(Service::Orders).await
        ))
        .await;
    let payments = breakers["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["link"] == "orders->payments")
        .unwrap()
        .clone();
    let path: Vec<(String, String)> = payments["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().into(),
                t["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(path.contains(&("CLOSED".into(), "OPEN".into())), "{path:?}");
    assert!(
        path.contains(&("OPEN".into(), "HALF_OPEN".into())),
        "{path:?}"
    );
    assert_eq!(
        path.last().map(|p| p.1.as_str()),
        Some("CLOSED"),
        "{path:?}"
    );
}

#[tokio::test]
async fn payments_link_down_trips_the_breaker_and_orders_recover() {
    let mut t = T::start(payments_link_config()).await;
    let network = Network::Embedded(t.stack.chaos.clone());
    payments_link_down_then_up(&t, network).await;
    t.stack.stop().await;
}

#[tokio::test]
async fn the_same_timeline_drives_the_proxy_through_a_toxiproxy_client() {
    let mut t = T::start(payments_link_config()).await;
    let api = t.stack.api_addr().unwrap().to_string();
    payments_link_down_then_up(&t, Network::Toxiproxy(api)).await;
    t.stack.stop().await;
}

#[tokio::test]
async fn a_crashed_notifications_service_does_not_fail_orders() {
    let mut t = T::start(SystemConfig::default()).await;
    let (user, product) = t.seed().await;
    let mut timeline = Timeline::new(
        vec![FaultStep {
            at: Duration::ZERO,
            duration: None,
            action: FaultAction::Crash {
                service: Service::Notifications,
            },
        }],
        t.target(Network::Embedded(t.stack.chaos.clone())),
    );
    timeline.run(&CancellationToken::new()).await;
    let (o, _) = t.order(user, product).await;
    assert_eq!(o["status"], "CONFIRMED", "{o}");
    let id = o["id"].as_i64().unwrap();

    // Restarted, it gets the notification it missed: exactly one.
    timeline.heal().await;
    let url = format!(
        "{}/notifications?order_id={id}",
        t.service_url(Service::Notifications).await
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let sent = t.get(url.clone()).await;
        if sent.as_array().map(Vec::len) == Some(1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never notified: {sent}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.stack.stop().await;
}

#[tokio::test]
async fn a_latency_toxic_slows_orders_until_it_is_removed() {
    let mut t = T::start(SystemConfig::default()).await;
    let (user, product) = t.seed().await;
    let step = FaultStep {
        at: Duration::ZERO,
        duration: None,
        action: FaultAction::Toxic {
            link: "payments->provider".into(),
            toxic: ToxicSpec::new(ToxicKind::Latency(Latency {
                latency: 300,
                jitter: 0,
            })),
        },
    };
    let mut timeline = Timeline::new(
        vec![step],
        t.target(Network::Embedded(t.stack.chaos.clone())),
    );
    timeline.run(&CancellationToken::new()).await;
    let (o, slow) = t.order(user, product).await;
    assert_eq!(o["status"], "CONFIRMED");
    assert!(slow >= Duration::from_millis(300), "{slow:?}");
    timeline.heal().await;
    let (_, fast) = t.order(user, product).await;
    assert!(fast < Duration::from_millis(300), "{fast:?}");
    t.stack.stop().await;
}

#[tokio::test]
async fn every_link_is_a_named_proxy_on_the_fault_api() {
    let mut t = T::start(SystemConfig::default()).await;
    let api = t.stack.api_addr().unwrap();
    let proxies = t.get(format!("http://{api}/proxies")).await;
    let mut names: Vec<&str> = proxies
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "gateway",
            "gateway->catalog",
            "gateway->orders",
            "gateway->users",
            "orders->analytics",
            "orders->catalog",
            "orders->notifications",
            "orders->payments",
            "orders->users",
            "payments->provider",
        ]
    );
    // And traffic really flows through them.
    let (u, p) = t.seed().await;
    t.order(u, p).await;
    let metrics = t
        .http
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("payments->provider"), "{metrics}");
    t.stack.stop().await;
}

#[tokio::test]
async fn two_toxics_on_one_link_through_the_toxiproxy_api_are_undone_one_by_one() {
    let mut t = T::start(SystemConfig::default()).await;
    let api = t.stack.api_addr().unwrap().to_string();
    let link = "orders->payments";
    let toxic = |name: &str, kind: ToxicKind| FaultAction::Toxic {
        link: link.into(),
        toxic: ToxicSpec::new(kind).name(name),
    };
    let slow = Latency {
        latency: 50,
        jitter: 0,
    };
    let timeline_steps = vec![
        // Same type and stream: only their names tell them apart.
        FaultStep {
            at: Duration::ZERO,
            duration: Some(Duration::from_millis(200)),
            action: toxic("brief", ToxicKind::Latency(slow)),
        },
        FaultStep {
            at: Duration::ZERO,
            duration: None,
            action: toxic("lasting", ToxicKind::Latency(slow)),
        },
        FaultStep {
            at: Duration::from_millis(50),
            duration: None,
            action: toxic(
                "reset",
                ToxicKind::ResetPeer(gauntlet_chaos::ResetPeer { timeout: 0 }),
            ),
        },
    ];
    let mut timeline = Timeline::new(timeline_steps, t.target(Network::Toxiproxy(api.clone())));
    timeline.run(&CancellationToken::new()).await;
    let errors: Vec<_> = timeline
        .records()
        .iter()
        .filter_map(|r| r.error.clone())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // "brief" was undone at 200 ms; the other two stay until the heal.
    assert_eq!(toxic_names(&t, &api).await, ["lasting", "reset"]);
    timeline.heal().await;
    assert!(toxic_names(&t, &api).await.is_empty());
    t.stack.stop().await;
}

/// The names of the toxics on orders->payments, as the API lists them.
async fn toxic_names(t: &T, api: &str) -> Vec<String> {
    let url = format!("http://{api}/proxies/orders-%3Epayments/toxics");
    let toxics = t.get(url).await;
    let mut names: Vec<String> = toxics
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}
