//! Whole runs: seeding, cancellation, progress, the closed model.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gauntlet_loadgen::{
    run_load, JourneyKind, LoadConfig, LoadError, Mix, Model, OpKind, Phase, Planner, Progress,
    Stage,
};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::common::{browse_at, run, Target};

/// What the target received, order-free: (method, path, body, key).
fn requests(target: &Target) -> Vec<(String, String, String, Option<String>)> {
    let mut v: Vec<_> = target
        .received()
        .into_iter()
        .map(|r| (r.method, r.path, r.body, r.key))
        .collect();
    v.sort();
    v
}

fn mixed(base_url: &str, seed: u64) -> LoadConfig {
    let mut c = browse_at(base_url, 50.0, 2.0);
    c.mix = Mix::default();
    c.seed = seed;
    c.customers = 5;
    c.max_quantity = 3;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seed_gives_the_same_journeys() {
    let a = Target::start().await;
    let ra = run(mixed(&a.base_url, 7)).await;
    let b = Target::start().await;
    let rb = run(mixed(&b.base_url, 7)).await;
    let c = Target::start().await;
    run(mixed(&c.base_url, 8)).await;

    let (sa, sb, sc) = (requests(&a), requests(&b), requests(&c));
    assert_eq!(sa.len(), 1 + 5 + 100, "catalog, customers, 100 journeys");
    assert_eq!(sa, sb, "same seed, same requests");
    assert_ne!(sa, sc, "another seed, other requests");

    // Journey k ran the plan the planner gives for k, in both runs.
    let planner = Planner::new(&mixed(&a.base_url, 7));
    for r in [&ra, &rb] {
        for op in r.history.iter().filter(|o| o.journey.is_some()) {
            let plan = planner.plan(op.journey.unwrap());
            let want: &[OpKind] = match plan.kind {
                JourneyKind::CreateUser => &[OpKind::CreateUser],
                JourneyKind::Browse => &[OpKind::ListProducts],
                JourneyKind::PlaceOrder => &[OpKind::PlaceOrder],
                JourneyKind::PollOrder => &[OpKind::PlaceOrder, OpKind::GetOrder],
            };
            assert!(want.contains(&op.kind), "{op:?} in {plan:?}");
        }
    }
    // All three journeys were in the mix.
    let kinds: HashSet<_> = ra.history.iter().map(|o| o.kind).collect();
    assert!(kinds.contains(&OpKind::CreateUser) && kinds.contains(&OpKind::PlaceOrder));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_run_promptly_and_keeps_what_it_did() {
    let target = Target::start().await;
    let cancel = CancellationToken::new();
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            cancel.cancel();
        })
    };
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let record = seen.clone();
    let started = Instant::now();
    let result = run_load(browse_at(&target.base_url, 100.0, 30.0), cancel, move |p| {
        record.lock().push(p)
    })
    .await
    .unwrap();
    let took = started.elapsed();
    stopper.await.unwrap();
    assert!(took < Duration::from_secs(4), "took {took:?} to stop");
    assert!(result.cancelled);
    let n = result.history.len();
    assert!(
        (120..=200).contains(&n),
        "{n} requests in about 1.5 s at 100/s"
    );
    assert!(result.missed_arrivals <= 5, "{}", result.missed_arrivals);
    // Nothing was sent after the run returned.
    let after = target.received().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(target.received().len(), after);

    let seen = seen.lock();
    assert!(seen.len() >= 2, "progress was reported: {seen:?}");
    assert_eq!(seen[0].phase, Phase::Setup);
    let p = &seen[1];
    assert_eq!(p.phase, Phase::Load);
    assert_eq!(p.target_rate, Some(100.0));
    assert!((60.0..=140.0).contains(&p.current_rate), "{p:?}");
    assert!(p.p99_ms.is_some());
    assert_eq!(p.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_model_ramps_its_users_and_thinks() {
    let target = Target::start().await;
    let mut config = browse_at(&target.base_url, 1.0, 1.0);
    config.model = Model::Closed {
        users: 4,
        increase_per_sec: Some(4.0),
        think_time: Duration::from_millis(100),
        duration: Duration::from_secs(2),
    };
    let result = run(config).await;
    assert_eq!(result.users, 4);
    let users: HashSet<u64> = result
        .history
        .iter()
        .filter_map(|o| o.journey.map(|j| j >> 32))
        .collect();
    assert_eq!(users, (0..4).collect());
    // Each user: a journey about every 100 ms, started 250 ms apart.
    let n = result.history.len();
    assert!((50..=85).contains(&n), "{n} journeys");
    let first_of = |u: u64| {
        result
            .history
            .iter()
            .filter(|o| o.journey.map(|j| j >> 32) == Some(u))
            .map(|o| o.invoke_us)
            .min()
            .unwrap()
    };
    let gap = first_of(3).saturating_sub(first_of(0));
    assert!(
        (500_000..=1_200_000).contains(&gap),
        "4th user {gap} us after the 1st"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_up_is_in_the_history_but_not_the_figures() {
    let target = Target::start().await;
    let mut config = browse_at(&target.base_url, 50.0, 1.0);
    config.warmup = Duration::from_secs(1);
    if let Model::Open { warmup_rate, .. } = &mut config.model {
        *warmup_rate = Some(20.0);
    }
    let result = run(config).await;
    assert_eq!(target.received().len(), 70);
    assert_eq!(result.history.len(), 70);
    let e = result.endpoint(OpKind::ListProducts).unwrap();
    assert_eq!(e.counts.total(), 50);
    assert_eq!(result.achieved_rate, vec![50]);
    assert!(result.measured_from_us >= result.load_started_us + 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_and_an_empty_catalog_are_refused() {
    let mut config = browse_at("not a url", 10.0, 1.0);
    config.model = Model::Open {
        start_rate: 0.0,
        stages: vec![Stage {
            duration: Duration::ZERO,
            target_rate: 1.0,
        }],
        warmup_rate: None,
        max_users: None,
        expected_latency: Duration::from_millis(100),
    };
    match run_load(config, CancellationToken::new(), |_| {}).await {
        Err(LoadError::Config(errors)) => assert_eq!(errors.len(), 2, "{errors:?}"),
        other => panic!("{other:?}"),
    }

    // Orders need products; a catalog answered 503 stops the run at set-up.
    let target = Target::start().await;
    target.state.behaviour.lock().status = Some(503);
    let mut config = browse_at(&target.base_url, 10.0, 1.0);
    config.mix.place_order = 1;
    match run_load(config, CancellationToken::new(), |_| {}).await {
        Err(e @ LoadError::Setup { .. }) => assert!(e.to_string().contains("503"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_can_be_spawned_as_a_task() {
    let target = Target::start().await;
    let config = browse_at(&target.base_url, 20.0, 0.5);
    // run_load's future is Send: a harness can run it beside its faults.
    let task = tokio::spawn(run_load(config, CancellationToken::new(), |_| {}));
    let result = task.await.unwrap().unwrap();
    assert_eq!(result.history.len(), 10);
    let json = serde_json::to_string(&result.history).unwrap();
    assert!(
        json.starts_with(r#"[{"id":0,"journey":0,"kind":"list_products""#),
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_config_each_user_signs_its_own_token() {
    let target = Target::start().await;
    let secret = "a-secret-of-at-least-thirty-two-bytes!";
    let mut config = LoadConfig::new(
        &target.base_url,
        Model::Closed {
            users: 3,
            increase_per_sec: None,
            think_time: Duration::from_millis(50),
            duration: Duration::from_secs(1),
        },
    );
    config.mix = Mix {
        create_user: 0,
        browse: 1,
        place_order: 1,
        poll_order: 0,
    };
    config.customers = 2;
    // Ignored: a token takes its place.
    config.api_key = Some("static".into());
    config.token = Some(gauntlet_loadgen::TokenConfig {
        hs256_secret: secret.into(),
        issuer: Some("harness".into()),
        audience: Some("gateway".into()),
    });
    // The set-up's first two requests are refused 429: it waits and goes on.
    target.state.behaviour.lock().rate_limit_first = 2;
    let started = Instant::now();
    let result = run(config).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited after 429"
    );

    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&["harness"]);
    v.set_audience(&["gateway"]);
    v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
    let now = jsonwebtoken::get_current_timestamp();
    let mut subjects = HashSet::new();
    let received = target.received();
    for r in &received {
        let auth = r.auth.as_deref().expect("every request carries a token");
        let token = auth.strip_prefix("Bearer ").expect("a bearer token");
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .expect("a token the gateway's secret verifies")
            .claims;
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp > now + 60, "valid past the run: exp {exp}, now {now}");
        subjects.insert(claims["sub"].as_str().unwrap().to_string());
    }
    assert!(subjects.remove("load-setup"), "{subjects:?}");
    assert_eq!(subjects.len(), 3, "one subject per user: {subjects:?}");
    assert!(
        subjects.iter().all(|s| s.starts_with("load-")),
        "{subjects:?}"
    );
    // The set-up's refused tries are in the history; the load went on.
    let refused = result
        .history
        .iter()
        .filter(|o| o.journey.is_none() && o.status == Some(429))
        .count();
    assert_eq!(refused, 2);
    assert!(result.overall().counts.ok > 0);
}
