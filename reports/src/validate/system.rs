//! `[system]`: flow, per-link resilience overrides, provider behaviour,
//! external endpoints, the gateway's JWTs and rate limits.

use super::tree::{Entry, Node};
use super::{join, Ctx};
use crate::problem::nearest;
use crate::scenario::FlowChoice;
use crate::topology::{Service, RESILIENT_LINKS};

const KEYS: [&str; 5] = ["flow", "links", "provider", "external", "gateway"];
const LINK_KEYS: [&str; 3] = ["timeout", "retry", "breaker"];
const RETRY_KEYS: [&str; 3] = ["max_attempts", "base_delay", "max_delay"];
const BREAKER_KEYS: [&str; 7] = [
    "sliding_window_size",
    "minimum_calls",
    "failure_rate_threshold",
    "slow_call_rate_threshold",
    "slow_call_duration",
    "wait_in_open",
    "permitted_calls_in_half_open",
];
pub(super) const PROVIDER_KEYS: [&str; 5] = [
    "failure_rate",
    "decline_rate",
    "latency_ms",
    "jitter_ms",
    "lost_reply_rate",
];
const GATEWAY_KEYS: [&str; 2] = ["auth", "limits"];
const AUTH_KEYS: [&str; 4] = ["hs256_secret", "issuer", "audience", "leeway"];
const LIMITS_KEYS: [&str; 4] = [
    "per_subject_per_sec",
    "per_subject_burst",
    "global_per_sec",
    "global_burst",
];
/// The shortest HS256 secret taken, in bytes (RFC 7518, 3.2: at least the
/// hash's 256 bits); the gateway refuses shorter ones at start.
const MIN_HS256_SECRET: usize = 32;
const EXTERNAL_KEYS: [&str; 4] = ["gateway", "toxiproxy", "kafka", "services"];

/// Checks `[system]`; returns the flow, for the checks that depend on it.
pub(super) fn check(cx: &mut Ctx<'_>, system: Option<&Entry>) -> FlowChoice {
    let mut flow = FlowChoice::default();
    let Some(entry) = system else {
        return flow;
    };
    let node = &entry.node;
    let Some(t) = cx.table(node, "system", "a table `[system]`") else {
        return flow;
    };
    cx.known_keys(t, "system", &KEYS);
    if let Some(e) = t.get("flow") {
        match cx.choice(&e.node, "system.flow", "flow", &["sync", "async", "both"]) {
            Some("async") => flow = FlowChoice::Async,
            Some("both") => flow = FlowChoice::Both,
            _ => {}
        }
    }
    if let Some(e) = t.get("links") {
        check_links(cx, &e.node);
    }
    if let Some(e) = t.get("provider") {
        provider_faults(cx, &e.node, "system.provider");
    }
    if let Some(e) = t.get("external") {
        check_external(cx, &e.node);
    }
    if let Some(e) = t.get("gateway") {
        check_gateway(cx, &e.node);
    }
    flow
}

fn check_gateway(cx: &mut Ctx<'_>, node: &Node) {
    let path = "system.gateway";
    let Some(t) = cx.table(node, path, "a table of `auth`, `limits`") else {
        return;
    };
    cx.known_keys(t, path, &GATEWAY_KEYS);
    if let Some(e) = t.get("auth") {
        check_auth(cx, &e.node);
    }
    if let Some(e) = t.get("limits") {
        check_limits(cx, &e.node);
    }
}

fn check_auth(cx: &mut Ctx<'_>, node: &Node) {
    let path = "system.gateway.auth";
    let Some(t) = cx.table(node, path, "a table `[system.gateway.auth]`") else {
        return;
    };
    cx.known_keys(t, path, &AUTH_KEYS);
    if let Some(e) = cx.require(
        t,
        node,
        path,
        "hs256_secret",
        "the HS256 secret the gateway checks tokens with and the load signs them with",
    ) {
        let p = join(path, "hs256_secret");
        if let Some(s) = cx.string(&e.node, &p, "a string of at least 32 bytes") {
            if s.len() < MIN_HS256_SECRET {
                cx.report(
                    e.node.span.clone(),
                    format!(
                        "`{p}`: expected at least {MIN_HS256_SECRET} bytes (HS256 wants a 256-bit key), found {}",
                        s.len()
                    ),
                );
            }
        }
    }
    for key in ["issuer", "audience"] {
        if let Some(e) = t.get(key) {
            let p = join(path, key);
            if let Some(s) = cx.string(&e.node, &p, "a string") {
                if s.trim().is_empty() {
                    cx.report(
                        e.node.span.clone(),
                        format!("`{p}`: expected a non-empty string (leave the key out to not check it)"),
                    );
                }
            }
        }
    }
    if let Some(e) = t.get("leeway") {
        let p = join(path, "leeway");
        if let Some(d) = cx.duration(&e.node, &p) {
            if d.subsec_nanos() != 0 {
                cx.report(
                    e.node.span.clone(),
                    format!(
                        "`{p}`: expected whole seconds (token times are in seconds), found {:?}",
                        humantime::format_duration(d).to_string()
                    ),
                );
            }
        }
    }
}

fn check_limits(cx: &mut Ctx<'_>, node: &Node) {
    let path = "system.gateway.limits";
    let Some(t) = cx.table(node, path, "a table `[system.gateway.limits]`") else {
        return;
    };
    cx.known_keys(t, path, &LIMITS_KEYS);
    for scope in ["per_subject", "global"] {
        let rate_key = format!("{scope}_per_sec");
        let burst_key = format!("{scope}_burst");
        if let Some(e) = t.get(&rate_key) {
            cx.count(
                &e.node,
                &join(path, &rate_key),
                1,
                "requests per second; leave the key out for no limit",
            );
        }
        if let Some(e) = t.get(&burst_key) {
            let p = join(path, &burst_key);
            cx.count(&e.node, &p, 1, "requests let through at once");
            if t.get(&rate_key).is_none() {
                cx.report(
                    e.key_span.clone(),
                    format!("`{p}`: set `{rate_key}` too; a burst alone is no limit"),
                );
            }
        }
    }
}

fn check_links(cx: &mut Ctx<'_>, node: &Node) {
    let Some(links) = cx.table(
        node,
        "system.links",
        "a table of links, e.g. `[system.links.\"orders->payments\"]`",
    ) else {
        return;
    };
    for e in &links.entries {
        let path = join("system.links", &e.key);
        if !RESILIENT_LINKS.contains(&e.key.as_str()) {
            let hint = nearest(&e.key, &RESILIENT_LINKS)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            cx.report(
                e.key_span.clone(),
                format!(
                    "`{path}`: unknown link `{}`{hint} (links with resilience settings: {})",
                    e.key,
                    RESILIENT_LINKS.join(", ")
                ),
            );
            continue;
        }
        let Some(t) = cx.table(&e.node, &path, "a table of `timeout`, `retry`, `breaker`") else {
            continue;
        };
        cx.known_keys(t, &path, &LINK_KEYS);
        if let Some(x) = t.get("timeout") {
            cx.positive_duration(&x.node, &join(&path, "timeout"));
        }
        if let Some(x) = t.get("retry") {
            check_retry(cx, &x.node, &join(&path, "retry"));
        }
        if let Some(x) = t.get("breaker") {
            check_breaker(cx, &x.node, &join(&path, "breaker"));
        }
    }
}

fn check_retry(cx: &mut Ctx<'_>, node: &Node, path: &str) {
    let Some(t) = cx.table(node, path, "a table of retry settings") else {
        return;
    };
    cx.known_keys(t, path, &RETRY_KEYS);
    if let Some(e) = t.get("max_attempts") {
        cx.count(
            &e.node,
            &join(path, "max_attempts"),
            1,
            "total attempts, 1 = no retry",
        );
    }
    let base = t
        .get("base_delay")
        .and_then(|e| cx.duration(&e.node, &join(path, "base_delay")));
    let max = t.get("max_delay").and_then(|e| {
        cx.duration(&e.node, &join(path, "max_delay"))
            .map(|d| (d, e.node.span.clone()))
    });
    if let (Some(base), Some((max, span))) = (base, max) {
        if base > max {
            cx.report(
                span,
                format!(
                    "`{}`: expected at least base_delay ({}), found {}",
                    join(path, "max_delay"),
                    humantime::format_duration(base),
                    humantime::format_duration(max)
                ),
            );
        }
    }
}

fn check_breaker(cx: &mut Ctx<'_>, node: &Node, path: &str) {
    let Some(t) = cx.table(node, path, "a table of breaker settings") else {
        return;
    };
    cx.known_keys(t, path, &BREAKER_KEYS);
    for (key, what) in [
        ("sliding_window_size", "calls judged in CLOSED"),
        ("minimum_calls", "calls before any rate is judged"),
        ("permitted_calls_in_half_open", "trial calls in HALF_OPEN"),
    ] {
        if let Some(e) = t.get(key) {
            cx.count(&e.node, &join(path, key), 1, what);
        }
    }
    for key in ["failure_rate_threshold", "slow_call_rate_threshold"] {
        if let Some(e) = t.get(key) {
            let p = join(path, key);
            let n = cx.number(&e.node, &p, "a percent in (0, 100]");
            if n.is_some_and(|n| !(n > 0.0 && n <= 100.0)) {
                cx.report(
                    e.node.span.clone(),
                    format!(
                        "`{p}`: expected a percent in (0, 100], found {}",
                        n.unwrap_or_default()
                    ),
                );
            }
        }
    }
    if let Some(e) = t.get("slow_call_duration") {
        cx.positive_duration(&e.node, &join(path, "slow_call_duration"));
    }
    if let Some(e) = t.get("wait_in_open") {
        cx.duration(&e.node, &join(path, "wait_in_open"));
    }
}

/// The provider's behaviour, in `[system.provider]` and in `provider`
/// fault actions.
pub(super) fn provider_faults(cx: &mut Ctx<'_>, node: &Node, path: &str) {
    let Some(t) = cx.table(node, path, "a table of provider faults") else {
        return;
    };
    cx.known_keys(t, path, &PROVIDER_KEYS);
    for key in ["failure_rate", "decline_rate", "lost_reply_rate"] {
        if let Some(e) = t.get(key) {
            cx.number_in(
                &e.node,
                &join(path, key),
                0.0,
                1.0,
                "a probability between 0 and 1",
            );
        }
    }
    for key in ["latency_ms", "jitter_ms"] {
        if let Some(e) = t.get(key) {
            let p = join(path, key);
            if let Some(n) = cx.integer(&e.node, &p, "an integer number of milliseconds") {
                if n < 0 {
                    cx.report(
                        e.node.span.clone(),
                        format!("`{p}`: expected milliseconds >= 0, found {n}"),
                    );
                }
            }
        }
    }
}

fn check_external(cx: &mut Ctx<'_>, node: &Node) {
    let path = "system.external";
    let Some(t) = cx.table(node, path, "a table `[system.external]`") else {
        return;
    };
    cx.known_keys(t, path, &EXTERNAL_KEYS);
    if let Some(e) = cx.require(
        t,
        node,
        path,
        "gateway",
        "the gateway's URL, e.g. \"http://127.0.0.1:8080\"",
    ) {
        url(cx, &e.node, &join(path, "gateway"));
    }
    for key in ["toxiproxy", "kafka"] {
        if let Some(e) = t.get(key) {
            let p = join(path, key);
            if let Some(s) = cx.string(&e.node, &p, "an address `host:port`") {
                if !s.contains(':') || s.contains("://") {
                    cx.report(
                        e.node.span.clone(),
                        format!("`{p}`: expected an address `host:port`, e.g. \"127.0.0.1:8474\", found {s:?}"),
                    );
                }
            }
        }
    }
    if let Some(e) = t.get("services") {
        let sp = join(path, "services");
        if let Some(services) = cx.table(&e.node, &sp, "a table of service name = URL") {
            for s in &services.entries {
                if Service::from_name(&s.key).is_none() {
                    let hint = nearest(&s.key, &Service::NAMES)
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                    cx.report(
                        s.key_span.clone(),
                        format!(
                            "`{}`: unknown service `{}`{hint} (services: {})",
                            join(&sp, &s.key),
                            s.key,
                            Service::NAMES.join(", ")
                        ),
                    );
                } else {
                    url(cx, &s.node, &join(&sp, &s.key));
                }
            }
        }
    }
}

fn url(cx: &mut Ctx<'_>, node: &Node, path: &str) {
    if let Some(s) = cx.string(node, path, "a URL such as \"http://127.0.0.1:8080\"") {
        if !(s.starts_with("http://") || s.starts_with("https://")) {
            cx.report(
                node.span.clone(),
                format!("`{path}`: expected a URL starting with http:// or https://, found {s:?}"),
            );
        }
    }
}
