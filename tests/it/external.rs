//! `run` attached to a system running elsewhere (here: the same stack
//! `serve` starts, in this process, reached only through its gateway, its
//! services' URLs, its Toxiproxy API and its broker). Twice in a row on
//! the same system: the second run's keys must not collide with the
//! first's, and the invariants hold over the state both left.

use std::net::SocketAddr;

use gauntlet::run::{self, RunOptions};
use gauntlet::stack::{Kafka, Stack, StackOptions};
use gauntlet_reports::parse_scenario;
use gauntlet_system::SystemOptions;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_runs_against_a_system_running_elsewhere() {
    let mut stack = Stack::start(StackOptions {
        system: SystemOptions::default(),
        gateway_listen: None,
        api_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        kafka: Kafka::Embedded,
    })
    .await
    .expect("stack starts");
    let api = stack.api_addr().expect("fault API");
    let kafka = stack.kafka().await.expect("broker");
    let services: String = stack
        .system
        .lock()
        .await
        .endpoints()
        .services
        .iter()
        .map(|(name, url)| format!("{name} = \"{url}\"\n"))
        .collect();
    let text = format!(
        r#"
name = "attached"
seed = 4
quiesce = "20s"
gates = ["orders.lost == 0", "orders.pending == 0", "dlq.count(orders) == 3"]

[system]
flow = "both"

[system.external]
gateway = "{gateway}"
toxiproxy = "{api}"
kafka = "{kafka}"

[system.external.services]
{services}
[load]
rate = [{{ duration = "4s", target = 15 }}]
warmup = "1s"
mix = {{ place_order = 4, poll_order = 1 }}

[[faults]]
at = "1s"
duration = "1s"
action = {{ type = "link_down", link = "orders->payments" }}

[[faults]]
at = "1s"
action = {{ type = "poison", topic = "orders", count = 1 }}
"#,
        gateway = stack.gateway_url(),
    );
    let scenario = parse_scenario("attached.toml", &text).expect("valid scenario");
    assert!(run::preflight::preflight(&scenario).is_empty());
    let out = tempfile::tempdir().expect("temp dir");
    let opts = RunOptions {
        out_dir: out.path().to_path_buf(),
        progress: false,
        ..RunOptions::default()
    };
    for round in 1..=2 {
        let outcome = run::run(&scenario, &opts, CancellationToken::new())
            .await
            .expect("runs");
        let r = &outcome.report;
        let failed = crate::common::failures(r);
        // The dead-letter counts (this run's, per topic) and the faults
        // with their times, so a failure says what the broker held.
        assert!(
            r.passed,
            "round {round}: {failed:#?} {:?}\ndlq: {:?}\nfaults: {:?}",
            outcome.notes, r.dlq, r.faults
        );
        // The network faults went through the Toxiproxy API, and every one
        // applied and undone without error.
        assert!(r.faults.iter().all(|f| f.error.is_none()), "{:?}", r.faults);
        assert!(
            r.faults.iter().any(|f| f.action == "orders->payments down"
                && f.phase == Some(gauntlet_reports::report::FaultPhase::Undone)),
            "{:?}",
            r.faults
        );
        assert!(r.flows.contains_key("sync") && r.flows.contains_key("async"));
    }
    // Healed: the link is up again.
    assert!(stack.chaos.list().iter().all(|p| p.enabled));
    stack.stop().await;
}
