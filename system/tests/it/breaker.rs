//! The circuit breaker as every service uses it: through `ServiceClient`,
//! on a real loopback socket, against a target that can be made to fail.
//! (The breaker's own state machine is pinned with paused time in the
//! resilience crate; this shows the wiring: what counts as a failure, that
//! an open breaker does not call, and the way back to CLOSED.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use gauntlet_resilience::{BreakerConfig, BreakerState, ResilienceConfig, RetryConfig};
use gauntlet_system::client::{http_client, ClientError, ServiceClient};

#[derive(Clone, Default)]
struct Target {
    hits: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
}

async fn start(target: Target) -> (String, tokio::sync::oneshot::Sender<()>) {
    let app = Router::new().route(
        "/thing",
        get(move || {
            let t = target.clone();
            async move {
                t.hits.fetch_add(1, Ordering::SeqCst);
                if t.failing.load(Ordering::SeqCst) {
                    (StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"down\"}")
                } else {
                    (StatusCode::OK, "{\"ok\":true}")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(gauntlet_system::server::run(listener, app, async {
        let _ = rx.await;
    }));
    (url, tx)
}

#[tokio::test]
async fn opens_after_failures_rejects_without_calling_then_half_opens_and_closes() {
    let target = Target::default();
    let (url, stop) = start(target.clone()).await;
    let config = ResilienceConfig {
        timeout: Duration::from_secs(2),
        retry: RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        },
        breaker: BreakerConfig {
            sliding_window_size: 4,
            minimum_calls: 4,
            failure_rate_threshold: 50.0,
            wait_in_open: Duration::from_millis(300),
            permitted_calls_in_half_open: 1,
            ..BreakerConfig::default()
        },
    };
    let client = ServiceClient::new("orders->payments", url, http_client(), config, 7);
    let call = || async { client.get::<serde_json::Value>("/thing").await };

    // Two successes, then two 503s: 50% over the minimum of 4 calls.
    for _ in 0..2 {
        call().await.expect("healthy target");
    }
    target.failing.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let e = call().await.unwrap_err();
        assert!(matches!(e, ClientError::Unavailable { .. }), "{e:?}");
    }
    assert_eq!(client.policy().breaker().state(), BreakerState::Open);

    // Open: fails fast, the target is not called.
    let hits = target.hits.load(Ordering::SeqCst);
    for _ in 0..5 {
        let e = call().await.unwrap_err();
        assert!(matches!(e, ClientError::Rejected { .. }), "{e:?}");
    }
    assert_eq!(
        target.hits.load(Ordering::SeqCst),
        hits,
        "no call while open"
    );

    // After the wait, one trial call is let through; it succeeds: CLOSED.
    target.failing.store(false, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match call().await {
            Ok(_) => break,
            Err(ClientError::Rejected { .. }) => {
                assert!(tokio::time::Instant::now() < deadline, "never half-opened");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(client.policy().breaker().state(), BreakerState::Closed);
    let path: Vec<(BreakerState, BreakerState)> = client
        .policy()
        .breaker()
        .transitions()
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        path,
        [
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
    let stats = client.policy().stats();
    assert!(stats.rejected >= 5, "{stats:?}");
    let _ = stop.send(());
}

#[tokio::test]
async fn a_4xx_is_the_callers_fault_and_never_opens_the_breaker() {
    let (url, stop) = start(Target::default()).await;
    let config = ResilienceConfig {
        breaker: BreakerConfig {
            sliding_window_size: 4,
            minimum_calls: 4,
            ..BreakerConfig::default()
        },
        ..ResilienceConfig::default()
    };
    let client = ServiceClient::new("gateway->users", url, http_client(), config, 7);
    for _ in 0..10 {
        let e = client
            .get::<serde_json::Value>("/no-such-route")
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::NOT_FOUND), "{e:?}");
    }
    assert_eq!(client.policy().breaker().state(), BreakerState::Closed);
    assert_eq!(client.policy().stats().retries, 0, "a 4xx is not retried");
    let _ = stop.send(());
}

/// Found by the `latency-storm` scenario: a charge that timed out, then had
/// its retry refused by a breaker that opened meanwhile, was reported as
/// "not attempted", and the saga skipped its refund. The first attempt had
/// reached the target: the outcome is unknown, and must say so.
#[tokio::test]
async fn a_retry_refused_by_the_breaker_after_a_timeout_leaves_the_outcome_unknown() {
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/thing",
        get(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                // Acts, then answers too late.
                tokio::time::sleep(Duration::from_millis(300)).await;
                "{\"ok\":true}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gauntlet_system::server::run(listener, app, async {
        let _ = rx.await;
    }));
    let config = ResilienceConfig {
        timeout: Duration::from_millis(100),
        retry: RetryConfig {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        },
        // One failure in one call opens it: the retry is refused.
        breaker: BreakerConfig {
            sliding_window_size: 1,
            minimum_calls: 1,
            failure_rate_threshold: 50.0,
            wait_in_open: Duration::from_secs(10),
            ..BreakerConfig::default()
        },
    };
    let client = ServiceClient::new("orders->payments", url, http_client(), config, 7);
    let e = client
        .get::<serde_json::Value>("/thing")
        .await
        .expect_err("timed out, then refused");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the first attempt reached the target"
    );
    assert_eq!(client.policy().breaker().state(), BreakerState::Open);
    assert!(matches!(e, ClientError::Unknown { .. }), "{e:?}");
    assert!(e.maybe_applied(), "{e}");

    // With the breaker open from the start, nothing was attempted.
    let e = client.get::<serde_json::Value>("/thing").await.unwrap_err();
    assert!(matches!(e, ClientError::Rejected { .. }), "{e:?}");
    assert!(!e.maybe_applied());
    let _ = tx.send(());
}
