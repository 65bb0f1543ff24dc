//! `[load]`: open model (`rate` stages) or closed model (`users`), the
//! journey mix and the warm-up.

use super::tree::Node;
use super::{join, Ctx};

const KEYS: [&str; 8] = [
    "rate",
    "start_rate",
    "users",
    "increase_per_sec",
    "think_time",
    "duration",
    "mix",
    "warmup",
];
const STAGE_KEYS: [&str; 2] = ["duration", "target"];
const MIX_KEYS: [&str; 4] = ["create_user", "browse", "place_order", "poll_order"];
const CLOSED_ONLY: [&str; 3] = ["increase_per_sec", "think_time", "duration"];

pub(super) fn check(cx: &mut Ctx<'_>, node: &Node) {
    let Some(t) = cx.table(node, "load", "a table `[load]`") else {
        return;
    };
    cx.known_keys(t, "load", &KEYS);
    let rate = t.get("rate");
    let users = t.get("users");
    match (rate, users) {
        (Some(_), Some(u)) => cx.report(
            u.key_span.clone(),
            "`load.users`: `rate` (open model) and `users` (closed model) exclude each other: keep one",
        ),
        (None, None) => cx.report(
            node.span.clone(),
            "`load`: missing `rate` (open model: stages of journeys per second) or `users` (closed model)",
        ),
        _ => {}
    }
    if let Some(r) = rate {
        stages(cx, &r.node);
        for key in CLOSED_ONLY {
            if let Some(e) = t.get(key) {
                cx.report(
                    e.key_span.clone(),
                    format!(
                        "`load.{key}` belongs to the closed model (`users`); an open model (`rate`) runs as long as its stages"
                    ),
                );
            }
        }
    }
    if let Some(e) = t.get("start_rate") {
        if users.is_some() && rate.is_none() {
            cx.report(
                e.key_span.clone(),
                "`load.start_rate` belongs to the open model (`rate`)",
            );
        } else {
            cx.number_in(
                &e.node,
                "load.start_rate",
                0.0,
                f64::MAX,
                "a rate >= 0 (journeys started per second)",
            );
        }
    }
    if let Some(u) = users {
        cx.count(&u.node, "load.users", 1, "concurrent users");
        if let Some(e) = t.get("increase_per_sec") {
            cx.count(
                &e.node,
                "load.increase_per_sec",
                1,
                "users started per second",
            );
        }
        if let Some(e) = t.get("think_time") {
            cx.duration(&e.node, "load.think_time");
        }
        match t.get("duration") {
            Some(e) => {
                cx.positive_duration(&e.node, "load.duration");
            }
            None if rate.is_none() => cx.report(
                node.span.clone(),
                "`load`: missing key `duration` (how long the closed model runs, e.g. \"60s\")",
            ),
            None => {}
        }
    }
    if let Some(e) = t.get("mix") {
        mix(cx, &e.node);
    }
    if let Some(e) = t.get("warmup") {
        cx.duration(&e.node, "load.warmup");
    }
}

fn stages(cx: &mut Ctx<'_>, node: &Node) {
    let what = "an array of stages such as [{ duration = \"10s\", target = 200 }]";
    let Some(items) = cx.array(node, "load.rate", what) else {
        return;
    };
    if items.is_empty() {
        cx.report(node.span.clone(), "`load.rate`: needs at least one stage");
    }
    for (i, item) in items.iter().enumerate() {
        let path = format!("load.rate[{i}]");
        let Some(t) = cx.table(item, &path, "a stage { duration = \"10s\", target = 200 }") else {
            continue;
        };
        cx.known_keys(t, &path, &STAGE_KEYS);
        if let Some(e) = cx.require(
            t,
            item,
            &path,
            "duration",
            "how long the stage lasts, e.g. \"10s\"",
        ) {
            cx.positive_duration(&e.node, &join(&path, "duration"));
        }
        if let Some(e) = cx.require(
            t,
            item,
            &path,
            "target",
            "journeys per second at the stage's end",
        ) {
            let p = join(&path, "target");
            if let Some(n) = cx.number(&e.node, &p, "a rate > 0 (journeys started per second)") {
                if !(n > 0.0 && n.is_finite()) {
                    cx.report(
                        e.node.span.clone(),
                        format!(
                            "`{p}`: expected a rate > 0 (journeys started per second), found {n}"
                        ),
                    );
                }
            }
        }
    }
}

fn mix(cx: &mut Ctx<'_>, node: &Node) {
    let Some(t) = cx.table(node, "load.mix", "a table of journey weights") else {
        return;
    };
    cx.known_keys(t, "load.mix", &MIX_KEYS);
    let mut total = 0u64;
    let mut all_valid = true;
    for key in MIX_KEYS {
        if let Some(e) = t.get(key) {
            match cx.count(&e.node, &join("load.mix", key), 0, "a relative weight") {
                Some(w) => total += u64::from(w),
                None => all_valid = false,
            }
        }
    }
    if all_valid && total == 0 {
        cx.report(
            node.span.clone(),
            format!(
                "`load.mix`: every weight is 0: give at least one of {} a weight > 0",
                MIX_KEYS.join(", ")
            ),
        );
    }
}
