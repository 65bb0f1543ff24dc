//! Scenario validation end to end: every problem of a broken file at once,
//! each at its line and column; a complete file into typed values; and the
//! examples in the scenario documentation.

use std::time::Duration;

use gauntlet_reports::parse_scenario;
use gauntlet_reports::scenario::{
    FaultAction, FlowChoice, LoadModel, Stream, ToxicKind, DEFAULT_MIX,
};
use gauntlet_reports::topology::Service;

const BROKEN: &str = r#"name = "broken"
seed = "forty-two"
colour = "blue"
gates = [
  "p99(POST /api/orders) < 300ms",
  "p98(sync) < 300ms",
  "breaker.opened(orders->paymnts) >= 1",
]

[system]
flow = "sync"

[system.links."orders->payments".breaker]
failure_rate_threshold = 150

[load]
rate = [
  { duration = "10s", target = 100 },
  { duration = "20s", target = -50 },
]
users = 10

[load.mix]
browse = 2
place_ordr = 3

[[faults]]
at = "5s"
duration = "10 parsecs"
action = { type = "link_down", link = "orders->paymnts" }

[[faults]]
at = "20s"
action = { type = "crash", service = "order" }

[[faults]]
at = "25s"
action = { type = "pause_consumer", group = "payments" }
"#;

#[test]
fn lists_every_problem_with_its_position() {
    let problems: Vec<String> = parse_scenario("scenarios/broken.toml", BROKEN)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let metrics = "p50, p90, p95, p99, p999, min, max, avg, requests, errors, error_rate, \
        unknown_rate, rejected, unauthorized, rate_limited, throughput, saga.completed, saga.compensated, saga.failed, breaker.opened, \
        retries, dlq.count, dlq.rate, lag.max, lag.final, orders.placed, orders.acknowledged, \
        orders.confirmed, orders.cancelled, orders.pending, orders.lost, invariants.violations";
    let want = vec![
        // a wrong type
        r#"scenarios/broken.toml:2:8: `seed`: expected an integer (seeds every random choice), found a string "forty-two""#.to_string(),
        // an unknown key with nothing near it: the valid keys are listed
        "scenarios/broken.toml:3:1: unknown key `colour` at the top level (expected one of: name, description, seed, system, load, faults, quiesce, gates)".into(),
        // a gate on an unknown metric, at the metric inside the string
        format!("scenarios/broken.toml:6:4: `gates[1]`: unknown metric `p98`; did you mean `p99`? (metrics: {metrics})"),
        // a gate on an unknown link, at the argument
        "scenarios/broken.toml:7:19: `gates[2]`: unknown link `orders->paymnts`; did you mean `orders->payments`? (links with a breaker: gateway->users, gateway->catalog, gateway->orders, orders->users, orders->catalog, orders->payments, orders->notifications, orders->analytics, payments->provider)".into(),
        r#"scenarios/broken.toml:14:26: `system.links."orders->payments".breaker.failure_rate_threshold`: expected a percent in (0, 100], found 150"#.into(),
        // a negative rate
        "scenarios/broken.toml:19:32: `load.rate[1].target`: expected a rate > 0 (journeys started per second), found -50".into(),
        "scenarios/broken.toml:21:1: `load.users`: `rate` (open model) and `users` (closed model) exclude each other: keep one".into(),
        // an unknown key with a hint
        "scenarios/broken.toml:25:1: unknown key `place_ordr` in `load.mix`; did you mean `place_order`?".into(),
        // a duration that does not parse
        r#"scenarios/broken.toml:29:12: `faults[0].duration`: expected a duration such as "250ms", "10s" or "2m", found "10 parsecs" (unknown time unit "parsecs", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations))"#.into(),
        // a fault on an unknown link
        "scenarios/broken.toml:30:39: `faults[0].action.link`: unknown link `orders->paymnts`; did you mean `orders->payments`? (links: gateway, gateway->users, gateway->catalog, gateway->orders, orders->users, orders->catalog, orders->payments, orders->notifications, orders->analytics, payments->provider, kafka)".into(),
        // an unknown service
        "scenarios/broken.toml:34:38: `faults[1].action.service`: unknown service `order`; did you mean `orders`? (services: gateway, users, catalog, orders, payments, provider, notifications, analytics)".into(),
        r#"scenarios/broken.toml:38:19: `faults[2].action`: `pause_consumer` acts on the event path, which a sync-only run does not have: set `system.flow` to "async" or "both""#.into(),
    ];
    assert_eq!(problems, want);
}

const MINIMAL_LOAD: &str = "[load]\nusers = 5\nduration = \"30s\"\n";

#[test]
fn a_gate_on_an_unknown_metric_is_rejected_before_the_run() {
    let text = format!(
        "name = \"g\"\ngates = [\"orders.lostt == 0\", \"latency(sync) < 3s\"]\n{MINIMAL_LOAD}"
    );
    let problems: Vec<String> = parse_scenario("g.toml", &text)
        .unwrap_err()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "g.toml:2:11: `gates[0]`: unknown metric `orders.lostt`; did you mean `orders.lost`?"
        ),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].starts_with("g.toml:2:32: `gates[1]`: unknown metric `latency` (metrics: "),
        "{}",
        problems[1]
    );
}

#[test]
fn more_problems_each_reported() {
    let text = r#"name = ""
quiesce = "soon"
gates = "p99 < 3"

[system]
flow = "sideways"

[system.links.kafka]
timeout = "1s"

[system.links."orders->payments"]
timeout = "0s"
retry = { max_attempts = 0, base_delay = "2s", max_delay = "1s" }

[system.provider]
failure_rate = 1.5
latency_ms = -3

[system.external]
toxiproxy = "http://127.0.0.1:8474"
services = { ordrs = "http://127.0.0.1:1", users = "127.0.0.1:2" }

[load]
users = 0
start_rate = 3

[load.mix]
browse = 0

[[faults]]
duration = "3s"
action = { type = "toxic", link = "gateway", toxic = { type = "latncy", attributes = { latency = -1 }, toxicity = 2 } }

[[faults]]
at = "1s"
action = { type = "poison", topic = "orders" }

[[faults]]
at = "2s"
action = { type = "explode" }
"#;
    let problems: Vec<String> = parse_scenario("m.toml", text)
        .unwrap_err()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let want = [
        r#"m.toml:1:8: `name`: expected a non-empty string (the scenario's name), found """#,
        r#"m.toml:2:11: `quiesce`: expected a duration such as "250ms", "10s" or "2m", found "soon" (expected number at 0)"#,
        r#"m.toml:3:9: `gates`: expected an array of strings such as "error_rate < 1%", found a string "p99 < 3""#,
        "m.toml:6:8: `system.flow`: unknown flow `sideways` (expected one of: sync, async, both)",
        "m.toml:8:15: `system.links.kafka`: unknown link `kafka` (links with resilience settings: gateway->users, gateway->catalog, gateway->orders, orders->users, orders->catalog, orders->payments, orders->notifications, orders->analytics, payments->provider)",
        r#"m.toml:12:11: `system.links."orders->payments".timeout`: expected a duration > 0, found "0s""#,
        r#"m.toml:13:26: `system.links."orders->payments".retry.max_attempts`: expected an integer >= 1 (total attempts, 1 = no retry), found 0"#,
        r#"m.toml:13:60: `system.links."orders->payments".retry.max_delay`: expected at least base_delay (2s), found 1s"#,
        "m.toml:16:16: `system.provider.failure_rate`: expected a probability between 0 and 1, found 1.5",
        "m.toml:17:14: `system.provider.latency_ms`: expected milliseconds >= 0, found -3",
        r#"m.toml:19:1: `system.external`: missing key `gateway` (the gateway's URL, e.g. "http://127.0.0.1:8080")"#,
        r#"m.toml:20:13: `system.external.toxiproxy`: expected an address `host:port`, e.g. "127.0.0.1:8474", found "http://127.0.0.1:8474""#,
        "m.toml:21:14: `system.external.services.ordrs`: unknown service `ordrs`; did you mean `orders`? (services: gateway, users, catalog, orders, payments, provider, notifications, analytics)",
        r#"m.toml:21:52: `system.external.services.users`: expected a URL starting with http:// or https://, found "127.0.0.1:2""#,
        r#"m.toml:23:1: `load`: missing key `duration` (how long the closed model runs, e.g. "60s")"#,
        "m.toml:24:9: `load.users`: expected an integer >= 1 (concurrent users), found 0",
        "m.toml:25:1: `load.start_rate` belongs to the open model (`rate`)",
        "m.toml:27:1: `load.mix`: every weight is 0: give at least one of create_user, browse, place_order, poll_order a weight > 0",
        r#"m.toml:30:1: `faults[0]`: missing key `at` (when the fault starts, e.g. "10s")"#,
        "m.toml:32:63: `faults[0].action.toxic.type`: unknown toxic type `latncy`; did you mean `latency`? (expected one of: latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data)",
        "m.toml:32:98: `faults[0].action.toxic.attributes.latency`: expected an integer >= 0, found -1",
        "m.toml:32:115: `faults[0].action.toxic.toxicity`: expected a share of connections between 0 and 1, found 2",
        "m.toml:36:10: `faults[1].action`: missing key `count` (how many poison messages)",
        r#"m.toml:36:19: `faults[1].action`: `poison` acts on the event path, which a sync-only run does not have: set `system.flow` to "async" or "both""#,
        "m.toml:40:19: `faults[2].action.type`: unknown fault type `explode` (expected one of: toxic, link_down, crash, provider, pause_consumer, poison)",
    ];
    assert_eq!(problems, want);
}

#[test]
fn gateway_auth_and_limits_problems_each_at_its_line() {
    let text = r#"name = "edge"

[system.gateway]
tls = true

[system.gateway.auth]
hs256_secret = "short"
issuer = ""
audince = "gauntlet"
leeway = "1500ms"

[system.gateway.limits]
per_subject_per_sec = 0
per_subject_bursts = 3
global_burst = 10

[load]
rate = [{ duration = "5s", target = 5 }]
"#;
    let problems: Vec<String> = parse_scenario("edge.toml", text)
        .unwrap_err()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let want = [
        "edge.toml:4:1: unknown key `tls` in `system.gateway` (expected one of: auth, limits)",
        "edge.toml:7:16: `system.gateway.auth.hs256_secret`: expected at least 32 bytes (HS256 wants a 256-bit key), found 5",
        "edge.toml:8:10: `system.gateway.auth.issuer`: expected a non-empty string (leave the key out to not check it)",
        "edge.toml:9:1: unknown key `audince` in `system.gateway.auth`; did you mean `audience`?",
        r#"edge.toml:10:10: `system.gateway.auth.leeway`: expected whole seconds (token times are in seconds), found "1s 500ms""#,
        "edge.toml:13:23: `system.gateway.limits.per_subject_per_sec`: expected an integer >= 1 (requests per second; leave the key out for no limit), found 0",
        "edge.toml:14:1: unknown key `per_subject_bursts` in `system.gateway.limits`; did you mean `per_subject_burst`?",
        "edge.toml:15:1: `system.gateway.limits.global_burst`: set `global_per_sec` too; a burst alone is no limit",
    ];
    assert_eq!(problems, want);

    // A missing secret, and tables of the wrong type.
    let text = r#"name = "edge"
[system.gateway.auth]
issuer = "me"
[system.gateway]
limits = 5
[load]
rate = [{ duration = "5s", target = 5 }]
"#;
    let problems: Vec<String> = parse_scenario("edge.toml", text)
        .unwrap_err()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].contains("`system.gateway.auth`: missing key `hs256_secret`"),
        "{problems:#?}"
    );
    assert!(
        problems[1].contains("`system.gateway.limits`: expected a table `[system.gateway.limits]`"),
        "{problems:#?}"
    );
}

#[test]
fn gateway_auth_and_limits_reach_the_typed_scenario() {
    let text = r#"name = "edge"

[system.gateway.auth]
hs256_secret = "a-shared-secret-of-at-least-32-bytes"
issuer = "gauntlet"
audience = "gauntlet-api"
leeway = "5s"

[system.gateway.limits]
per_subject_per_sec = 5
per_subject_burst = 10
global_per_sec = 500

[load]
rate = [{ duration = "5s", target = 5 }]
"#;
    let s = parse_scenario("edge.toml", text).unwrap();
    let auth = s.system.gateway.auth.expect("auth");
    assert_eq!(auth.hs256_secret, "a-shared-secret-of-at-least-32-bytes");
    assert_eq!(auth.issuer.as_deref(), Some("gauntlet"));
    assert_eq!(auth.audience.as_deref(), Some("gauntlet-api"));
    assert_eq!(auth.leeway, Some(Duration::from_secs(5)));
    let limits = s.system.gateway.limits.expect("limits");
    assert_eq!(limits.per_subject_per_sec, Some(5));
    assert_eq!(limits.per_subject_burst, Some(10));
    assert_eq!(limits.global_per_sec, Some(500));
    assert_eq!(limits.global_burst, None);
    // Off unless asked for.
    let plain = parse_scenario(
        "p.toml",
        "name = \"p\"\n[load]\nrate = [{ duration = \"5s\", target = 5 }]\n",
    )
    .unwrap();
    assert_eq!(plain.system.gateway, Default::default());
}

const COMPLETE: &str = r#"name = "everything"
description = "Every key, to check they all reach the typed scenario."
seed = 7
quiesce = "45s"
gates = [
  "p99(POST /api/orders) < 300ms",
  "throughput(async) / throughput(sync) > 5",
  "dlq.rate(orders) < 0.5%",
  "invariants.violations(no_double_charge) == 0",
]

[system]
flow = "both"

[system.links."orders->payments"]
timeout = "1s"
retry = { max_attempts = 3, base_delay = "50ms", max_delay = "1s" }
breaker = { sliding_window_size = 20, minimum_calls = 10, failure_rate_threshold = 50.0, wait_in_open = "5s" }

[system.provider]
latency_ms = 100
lost_reply_rate = 0.1

[system.external]
gateway = "http://127.0.0.1:8080"
toxiproxy = "127.0.0.1:8474"
kafka = "127.0.0.1:9092"
services = { orders = "http://127.0.0.1:9001" }

[load]
start_rate = 10
rate = [
  { duration = "10s", target = 200 },
  { duration = "20s", target = 200.5 },
]
warmup = "2s"

[[faults]]
at = "5s"
action = { type = "toxic", link = "payments->provider", toxic = { type = "latency", attributes = { latency = 200, jitter = 50 }, stream = "upstream", toxicity = 0.5 } }

[[faults]]
at = "10s"
duration = "20s"
action = { type = "link_down", link = "orders->payments" }

[[faults]]
at = "30s"
duration = "5s"
action = { type = "crash", service = "notifications" }

[[faults]]
at = "40s"
duration = "10s"
[faults.action]
type = "provider"
faults = { lost_reply_rate = 0.5 }

[[faults]]
at = "12s"
duration = "3s"
action = { type = "pause_consumer", group = "payments" }

[[faults]]
at = "14s"
action = { type = "poison", topic = "orders", count = 3 }
"#;

#[test]
fn a_complete_scenario_reaches_the_typed_values() {
    let s = parse_scenario("everything.toml", COMPLETE).unwrap();
    assert_eq!(s.seed, 7);
    assert_eq!(s.quiesce, Duration::from_secs(45));
    assert_eq!(s.gates.len(), 4);
    assert_eq!(s.system.flow, FlowChoice::Both);
    let link = &s.system.links["orders->payments"];
    assert_eq!(link.timeout, Some(Duration::from_secs(1)));
    assert_eq!(link.retry.as_ref().unwrap().max_attempts, Some(3));
    assert_eq!(
        link.breaker.as_ref().unwrap().wait_in_open,
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        link.breaker.as_ref().unwrap().permitted_calls_in_half_open,
        None
    );
    assert_eq!(s.system.provider.latency_ms, 100);
    let ext = s.system.external.as_ref().unwrap();
    assert_eq!(ext.services[&Service::Orders], "http://127.0.0.1:9001");
    match &s.load.model {
        LoadModel::Open { start_rate, stages } => {
            assert_eq!(*start_rate, Some(10.0));
            assert_eq!(stages[1].target, 200.5);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.load.duration(), Duration::from_secs(30));
    assert_eq!(s.load.mix, DEFAULT_MIX);
    assert_eq!(s.load.warmup, Duration::from_secs(2));
    assert_eq!(s.faults.len(), 6);
    match &s.faults[0].action {
        FaultAction::Toxic { link, toxic } => {
            assert_eq!(link, "payments->provider");
            assert_eq!(toxic.stream, Stream::Upstream);
            assert_eq!(toxic.toxicity, 0.5);
            assert!(
                matches!(&toxic.kind, ToxicKind::Latency(l) if l.latency == 200 && l.jitter == 50)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&s.faults[3].action, FaultAction::Provider { faults } if faults.lost_reply_rate == 0.5)
    );
    assert!(matches!(
        &s.faults[5].action,
        FaultAction::Poison { count: 3, .. }
    ));
    // A step serialises to the shape it was written in.
    let json = serde_json::to_value(&s.faults[1]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"at": "10s", "duration": "20s",
                           "action": {"type": "link_down", "link": "orders->payments"}})
    );
}

/// Every ```toml block of the scenario documentation is a valid scenario
/// (blocks marked `toml,invalid` must fail), so the docs cannot drift.
#[test]
fn the_documented_examples_are_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/README.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut blocks = 0;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```toml") else {
            continue;
        };
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let text = body.join("\n");
        let result = parse_scenario("README.md", &text);
        if info.contains("invalid") {
            assert!(result.is_err(), "expected problems in:\n{text}");
        } else if let Err(problems) = result {
            panic!(
                "{}\nin:\n{text}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        blocks += 1;
    }
    assert!(blocks >= 2, "the scenario documentation lost its examples");
}

#[test]
fn a_paused_consumer_group_must_be_one_that_reads() {
    let text = r#"name = "groups"
[system]
flow = "async"
[load]
users = 1
duration = "1s"
[[faults]]
at = "1s"
action = { type = "pause_consumer", group = "payment" }
[[faults]]
at = "2s"
action = { type = "pause_consumer", group = "gateway" }
"#;
    let problems: Vec<String> = parse_scenario("g.toml", text)
        .unwrap_err()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let groups = "(groups: catalog, payments, orders, notifications, analytics)";
    assert_eq!(
        problems,
        [
            format!("g.toml:9:45: `faults[0].action.group`: unknown consumer group `payment`; did you mean `payments`? {groups}"),
            format!("g.toml:12:45: `faults[1].action.group`: unknown consumer group `gateway` {groups}"),
        ]
    );
}
