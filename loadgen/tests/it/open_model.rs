//! The open model, black-box: what the target actually received.

use std::time::Duration;

use gauntlet_loadgen::{Model, OpKind, Outcome, Stage};
use tokio::time::Instant;

use crate::common::{browse_at, received_between, run, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_its_rate_within_5_percent() {
    let target = Target::start().await;
    let result = run(browse_at(&target.base_url, 200.0, 5.0)).await;

    let received = target.received();
    let n = received.len();
    assert!(
        (950..=1050).contains(&n),
        "target received {n}, want 1000 +- 5%"
    );
    // ...and over the 5 s it was asked for, not in bursts at the end.
    let first = received.iter().map(|r| r.at).min().unwrap();
    let last = received.iter().map(|r| r.at).max().unwrap();
    let span = (last - first).as_secs_f64();
    assert!((4.75..=5.25).contains(&span), "sent over {span:.3} s");
    for s in 0..5 {
        let in_second = received_between(&received, first, s as f64, s as f64 + 1.0);
        assert!(
            (170..=230).contains(&in_second),
            "second {s}: {in_second} requests, want 200 +- 15%"
        );
    }
    assert_eq!(result.missed_arrivals, 0);
    assert_eq!(result.history.len(), n);
    let e = result.endpoint(OpKind::ListProducts).unwrap();
    assert_eq!(e.counts.ok as usize, n);
    assert_eq!(
        result
            .achieved_rate
            .iter()
            .map(|&x| x as usize)
            .sum::<usize>(),
        n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_p99_from_the_intended_send_time() {
    // 200/s for 6 s; every request arriving in a 1 s window is held to its
    // end: ~200 of ~1200 requests (17%) are hit.
    let target = Target::start().await;
    let start = Instant::now();
    target.state.behaviour.lock().stall = Some((
        start + Duration::from_millis(2500),
        start + Duration::from_millis(3500),
    ));
    let open = run(browse_at(&target.base_url, 200.0, 6.0)).await;
    let e = open.endpoint(OpKind::ListProducts).unwrap();
    let p99 = e.latency.value_at_quantile(0.99);
    let p50 = e.latency.value_at_quantile(0.50);
    assert!(
        p99 >= 500_000,
        "open-model p99 {p99} us must show the 1 s stall"
    );
    assert!(p50 < 100_000, "median {p50} us: most requests were fast");
    // The backlog was sent late but nothing was dropped.
    assert_eq!(open.missed_arrivals, 0);
    assert!((1150..=1250).contains(&(e.counts.ok as usize)));
    // The windows place the slow requests in the stall's seconds.
    let slow_window = open
        .windows
        .iter()
        .max_by_key(|w| w.endpoints["GET /api/products"].latency.max())
        .unwrap();
    assert!(
        (2..=3).contains(&slow_window.second),
        "slowest second {}",
        slow_window.second
    );

    // Contrast: a closed model at about the same rate measures from the
    // actual send, so only the 5 requests in flight at the stall are slow
    // (under 1% of them) and its p99 misses the stall.
    let target = Target::start().await;
    let start = Instant::now();
    target.state.behaviour.lock().stall = Some((
        start + Duration::from_millis(2500),
        start + Duration::from_millis(3500),
    ));
    let mut config = browse_at(&target.base_url, 1.0, 1.0);
    config.model = Model::Closed {
        users: 5,
        increase_per_sec: None,
        think_time: Duration::from_millis(20),
        duration: Duration::from_secs(6),
    };
    let closed = run(config).await;
    let c = closed.endpoint(OpKind::ListProducts).unwrap();
    assert!(
        c.latency.max() >= 500_000,
        "the stall hit the closed run too"
    );
    let slow = closed
        .history
        .iter()
        .filter(|o| o.latency_us() >= 500_000)
        .count();
    assert!(slow <= 5, "{slow} slow requests, one per user at most");
    assert!(
        (slow as f64) < 0.01 * c.counts.total() as f64,
        "{slow} of {}",
        c.counts.total()
    );
    assert!(
        c.latency.value_at_quantile(0.99) < 250_000,
        "closed-model p99 {} us hides the stall",
        c.latency.value_at_quantile(0.99)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramps_follow_the_stages() {
    // 0 -> 200/s over 4 s, then 200/s for 1 s: N(t) = 25 t^2 on the ramp,
    // so 25 arrivals in its first second and 175 in its last.
    let target = Target::start().await;
    let mut config = browse_at(&target.base_url, 0.0, 1.0);
    config.model = Model::Open {
        start_rate: 0.0,
        stages: vec![
            Stage {
                duration: Duration::from_secs(4),
                target_rate: 200.0,
            },
            Stage {
                duration: Duration::from_secs(1),
                target_rate: 200.0,
            },
        ],
        warmup_rate: None,
        max_users: None,
        expected_latency: Duration::from_millis(100),
    };
    let result = run(config).await;
    let received = target.received();
    let origin = received.iter().map(|r| r.at).min().unwrap();
    let per_second: Vec<usize> = (0..5)
        .map(|s| received_between(&received, origin, s as f64, s as f64 + 1.0))
        .collect();
    let within = |got: usize, want: f64, tol: f64| (got as f64 - want).abs() <= want * tol;
    assert!(
        within(per_second[0], 25.0, 0.2),
        "first second {per_second:?}"
    );
    assert!(
        within(per_second[3], 175.0, 0.1),
        "last ramp second {per_second:?}"
    );
    assert!(within(per_second[4], 200.0, 0.1), "hold {per_second:?}");
    assert!(per_second.windows(2).all(|w| w[0] < w[1]), "{per_second:?}");
    // The result's own view agrees, against its target rates.
    assert_eq!(result.achieved_rate.len(), 5);
    assert!((result.target_rate[0] - 25.0).abs() < 1e-6);
    assert!((result.target_rate[3] - 175.0).abs() < 1e-6);
    assert!(within(result.achieved_rate[3] as usize, 175.0, 0.1));
    assert!(result.history.iter().all(|o| o.outcome == Outcome::Ok));
}
