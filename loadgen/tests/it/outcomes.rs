//! How each kind of ending lands in the history.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gauntlet_loadgen::{HttpClient, Mix, OpKind, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::{browse_at, run, Target};

/// Both ways of sending must read endings alike.
const CLIENTS: [HttpClient; 2] = [HttpClient::Direct, HttpClient::Goose];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_a_failure_with_its_status() {
    for client in CLIENTS {
        let target = Target::start().await;
        target.state.behaviour.lock().status = Some(503);
        let mut config = browse_at(&target.base_url, 20.0, 1.0);
        config.client = client;
        let result = run(config).await;
        assert_eq!(result.history.len(), 20, "{client:?}");
        for op in &result.history {
            assert_eq!(op.outcome, Outcome::Fail, "{op:?}");
            assert_eq!(op.status, Some(503));
            assert!(op.detail.as_deref().unwrap_or("").contains("injected"));
        }
        let e = result.endpoint(OpKind::ListProducts).unwrap();
        assert_eq!((e.counts.ok, e.counts.fail, e.counts.unknown), (0, 20, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_or_429_is_rejected_not_a_failure() {
    for (status, client) in [(401, HttpClient::Direct), (429, HttpClient::Goose)] {
        let target = Target::start().await;
        target.state.behaviour.lock().status = Some(status);
        let mut config = browse_at(&target.base_url, 20.0, 1.0);
        config.client = client;
        let result = run(config).await;
        assert_eq!(result.history.len(), 20, "{client:?}");
        for op in &result.history {
            // In the history a refusal is a failure: nothing was done.
            assert_eq!(op.outcome, Outcome::Fail, "{op:?}");
            assert_eq!(op.status, Some(status));
        }
        let c = result.endpoint(OpKind::ListProducts).unwrap().counts;
        assert_eq!((c.ok, c.fail, c.unknown), (0, 0, 0), "{status}");
        assert_eq!(c.rejected(), 20);
        assert_eq!(c.total(), 20);
        let want = if status == 401 { (20, 0) } else { (0, 20) };
        assert_eq!((c.unauthorized, c.rate_limited), want);
        assert_eq!(result.overall().counts.rejected(), 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_unknown_not_a_failure() {
    for client in CLIENTS {
        let target = Target::start().await;
        target.state.behaviour.lock().delay = Some(Duration::from_secs(3));
        let mut config = browse_at(&target.base_url, 20.0, 1.0);
        config.client = client;
        config.request_timeout = Duration::from_millis(200);
        let result = run(config).await;
        assert_eq!(result.history.len(), 20);
        for op in &result.history {
            assert_eq!(op.outcome, Outcome::Unknown, "{op:?}");
            assert_eq!(op.status, None);
            assert!(
                op.detail.as_deref().unwrap_or("").starts_with("timeout"),
                "{op:?}"
            );
            let latency = op.latency_us();
            assert!((190_000..1_000_000).contains(&latency), "{latency}");
        }
        assert_eq!(
            result
                .endpoint(OpKind::ListProducts)
                .unwrap()
                .counts
                .unknown,
            20
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_after_sending_is_unknown() {
    // Reads each request, then hangs up without a word.
    let (addr, server) = raw_server(|mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
    })
    .await;
    for client in CLIENTS {
        let mut config = browse_at(&format!("http://{addr}"), 10.0, 1.0);
        config.client = client;
        let result = run(config).await;
        assert_eq!(result.history.len(), 10);
        for op in &result.history {
            assert_eq!(op.outcome, Outcome::Unknown, "{client:?} {op:?}");
            assert_eq!(op.status, None);
        }
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closes_after_answering_is_remade() {
    // Answers one request per connection, then hangs up: once saying so
    // (`connection: close`), once without a word (as an idle timeout does).
    for announce in [true, false] {
        let (addr, server) = raw_server(move |mut s| async move {
            let mut buf = [0u8; 4096];
            if s.read(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
            let close = if announce {
                "connection: close\r\n"
            } else {
                ""
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 content-length: 2\r\n{close}\r\n[]"
            );
            let _ = s.write_all(answer.as_bytes()).await;
        })
        .await;
        for client in CLIENTS {
            let mut config = browse_at(&format!("http://{addr}"), 20.0, 1.0);
            config.client = client;
            let result = run(config).await;
            assert_eq!(result.history.len(), 20);
            for op in &result.history {
                assert_eq!(
                    op.outcome,
                    Outcome::Ok,
                    "announce {announce}, {client:?}: {op:?}"
                );
            }
        }
        server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_never_made_is_a_failure() {
    // A port nobody listens on: the request never left.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    for client in CLIENTS {
        let mut config = browse_at(&format!("http://{addr}"), 10.0, 1.0);
        config.client = client;
        let result = run(config).await;
        assert_eq!(result.history.len(), 10);
        for op in &result.history {
            assert_eq!(op.outcome, Outcome::Fail, "{client:?} {op:?}");
            assert_eq!(op.status, None);
            assert!(op
                .detail
                .as_deref()
                .unwrap_or("")
                .starts_with("no connection"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_order_is_ok_with_its_id_and_followed_to_a_terminal_state() {
    let target = Target::start().await;
    target.state.pending_orders.store(true, Ordering::Relaxed);
    let mut config = browse_at(&target.base_url, 10.0, 1.0);
    config.mix = Mix {
        create_user: 0,
        browse: 0,
        place_order: 0,
        poll_order: 1,
    };
    config.customers = 3;
    config.poll.interval = Duration::from_millis(50);
    let result = run(config).await;

    // Set-up: the catalog read and 3 customers, outside any journey.
    let setup: Vec<_> = result
        .history
        .iter()
        .filter(|o| o.journey.is_none())
        .collect();
    assert_eq!(setup.len(), 4);
    assert!(
        result.endpoint(OpKind::CreateUser).is_none(),
        "set-up is not measured"
    );

    let orders: Vec<_> = result
        .history
        .iter()
        .filter(|o| o.kind == OpKind::PlaceOrder)
        .collect();
    assert_eq!(orders.len(), 10);
    let mut keys = HashSet::new();
    for o in &orders {
        assert_eq!(o.outcome, Outcome::Ok);
        assert_eq!(o.status, Some(202));
        assert_eq!(o.detail.as_deref(), Some("PENDING"));
        let id = o.order_id.expect("a pending order still has its id");
        assert!(keys.insert(o.idempotency_key.clone().expect("a key")));
        // Read until CONFIRMED (the target confirms on the second read).
        let reads: Vec<_> = result
            .history
            .iter()
            .filter(|r| r.kind == OpKind::GetOrder && r.order_id == Some(id))
            .collect();
        assert_eq!(reads.len(), 2, "order {id}: {reads:?}");
        assert_eq!(reads[1].detail.as_deref(), Some("CONFIRMED"));
        assert!(reads
            .iter()
            .all(|r| r.journey == o.journey && r.invoke_us > o.complete_us));
    }
    // The target saw the same keys.
    let sent: HashSet<_> = target
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/orders")
        .map(|r| r.key.expect("every order carries a key"))
        .collect();
    assert_eq!(sent.len(), 10);
    assert!(keys.iter().all(|k| sent.contains(&**k)));
}

/// A loopback server that runs `each` on every connection it accepts;
/// abort the handle to stop it.
async fn raw_server<F, Fut>(each: F) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(each(s));
        }
    });
    (addr, server)
}
