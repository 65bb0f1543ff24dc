//! `[[faults]]`: when, for how long, and what (a typed action).

use super::tree::{Node, Table};
use super::{join, system, Ctx};
use crate::problem::nearest;
use crate::scenario::{FlowChoice, TOXIC_ATTRIBUTES};
use crate::topology::{Service, CONSUMER_GROUPS, LINKS};

const STEP_KEYS: [&str; 3] = ["at", "duration", "action"];
const ACTIONS: [&str; 6] = [
    "toxic",
    "link_down",
    "crash",
    "provider",
    "pause_consumer",
    "poison",
];
const TOXIC_KEYS: [&str; 5] = ["type", "attributes", "stream", "toxicity", "name"];

pub(super) fn check(cx: &mut Ctx<'_>, node: &Node, flow: FlowChoice) {
    let Some(items) = cx.array(node, "faults", "an array of tables `[[faults]]`") else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let path = format!("faults[{i}]");
        let Some(t) = cx.table(
            item,
            &path,
            "a table `[[faults]]` with at, duration, action",
        ) else {
            continue;
        };
        cx.known_keys(t, &path, &STEP_KEYS);
        if let Some(e) = cx.require(t, item, &path, "at", "when the fault starts, e.g. \"10s\"") {
            cx.duration(&e.node, &join(&path, "at"));
        }
        if let Some(e) = t.get("duration") {
            cx.positive_duration(&e.node, &join(&path, "duration"));
        }
        let what = "the fault, e.g. { type = \"link_down\", link = \"orders->payments\" }";
        if let Some(e) = cx.require(t, item, &path, "action", what) {
            action(cx, &e.node, &join(&path, "action"), flow);
        }
    }
}

fn action(cx: &mut Ctx<'_>, node: &Node, path: &str, flow: FlowChoice) {
    let Some(t) = cx.table(node, path, "a table { type = \"...\", ... }") else {
        return;
    };
    let Some(ty) = cx.require(
        t,
        node,
        path,
        "type",
        "one of toxic, link_down, crash, provider, pause_consumer, poison",
    ) else {
        return;
    };
    let Some(kind) = cx.choice(&ty.node, &join(path, "type"), "fault type", &ACTIONS) else {
        return;
    };
    let keys: &[&str] = match kind {
        "toxic" => &["type", "link", "toxic"],
        "link_down" => &["type", "link"],
        "crash" => &["type", "service"],
        "provider" => &["type", "faults"],
        "pause_consumer" => &["type", "group"],
        _ => &["type", "topic", "count"],
    };
    cx.known_keys(t, path, keys);
    match kind {
        "toxic" => {
            link(cx, t, node, path);
            if let Some(e) = cx.require(
                t,
                node,
                path,
                "toxic",
                "e.g. { type = \"latency\", attributes = { latency = 200 } }",
            ) {
                toxic(cx, &e.node, &join(path, "toxic"));
            }
        }
        "link_down" => link(cx, t, node, path),
        "crash" => {
            if let Some(e) = cx.require(t, node, path, "service", "the service to kill") {
                let p = join(path, "service");
                known(
                    cx,
                    &e.node,
                    &p,
                    "a service name",
                    ("service", "services"),
                    &Service::NAMES,
                );
            }
        }
        "provider" => {
            if let Some(e) = cx.require(
                t,
                node,
                path,
                "faults",
                "the provider's behaviour, e.g. { failure_rate = 0.5 }",
            ) {
                system::provider_faults(cx, &e.node, &join(path, "faults"));
            }
        }
        "pause_consumer" => {
            if let Some(e) = cx.require(t, node, path, "group", "the consumer group to pause") {
                let p = join(path, "group");
                known(
                    cx,
                    &e.node,
                    &p,
                    "a consumer group name",
                    ("consumer group", "groups"),
                    &CONSUMER_GROUPS,
                );
            }
            event_path_only(cx, &ty.node, path, kind, flow);
        }
        _ => {
            if let Some(e) = cx.require(t, node, path, "topic", "the topic to publish to") {
                name(cx, &e.node, &join(path, "topic"), "a topic name");
            }
            if let Some(e) = cx.require(t, node, path, "count", "how many poison messages") {
                cx.count(
                    &e.node,
                    &join(path, "count"),
                    1,
                    "poison messages to publish",
                );
            }
            event_path_only(cx, &ty.node, path, kind, flow);
        }
    }
}

fn event_path_only(cx: &mut Ctx<'_>, at: &Node, path: &str, kind: &str, flow: FlowChoice) {
    if !flow.uses_events() {
        cx.report(
            at.span.clone(),
            format!(
                "`{path}`: `{kind}` acts on the event path, which a sync-only run does not have: \
                 set `system.flow` to \"async\" or \"both\""
            ),
        );
    }
}

fn name(cx: &mut Ctx<'_>, node: &Node, path: &str, what: &str) {
    if let Some(s) = cx.string(node, path, what) {
        if s.trim().is_empty() || s.contains(char::is_whitespace) {
            cx.report(
                node.span.clone(),
                format!("`{path}`: expected {what} (not empty, no spaces), found {s:?}"),
            );
        }
    }
}

fn link(cx: &mut Ctx<'_>, t: &Table, node: &Node, path: &str) {
    let Some(e) = cx.require(t, node, path, "link", "the link, e.g. \"orders->payments\"") else {
        return;
    };
    let p = join(path, "link");
    let expected = "a link name such as \"orders->payments\"";
    known(cx, &e.node, &p, expected, ("link", "links"), &LINKS);
}

/// A string that must be one of `names`: an unknown one is reported with
/// the nearest name (a typo's likely intent) and the whole list.
/// `what` is the singular and plural of what the names are.
fn known(
    cx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
    expected: &str,
    what: (&str, &str),
    names: &[&str],
) {
    let Some(s) = cx.string(node, path, expected) else {
        return;
    };
    if !names.contains(&s) {
        let hint = nearest(s, names)
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        cx.report(
            node.span.clone(),
            format!(
                "`{path}`: unknown {} `{s}`{hint} ({}: {})",
                what.0,
                what.1,
                names.join(", ")
            ),
        );
    }
}

fn toxic(cx: &mut Ctx<'_>, node: &Node, path: &str) {
    let Some(t) = cx.table(
        node,
        path,
        "a toxic { type = \"latency\", attributes = { ... } }",
    ) else {
        return;
    };
    cx.known_keys(t, path, &TOXIC_KEYS);
    let types: Vec<&str> = TOXIC_ATTRIBUTES.iter().map(|(n, _)| *n).collect();
    let kind = cx
        .require(t, node, path, "type", "the toxic's type")
        .and_then(|e| cx.choice(&e.node, &join(path, "type"), "toxic type", &types));
    if let Some(e) = t.get("attributes") {
        let ap = join(path, "attributes");
        if let Some(attrs) = cx.table(&e.node, &ap, "a table of the toxic's attributes") {
            let allowed = kind.and_then(|k| TOXIC_ATTRIBUTES.iter().find(|(n, _)| *n == k));
            if let Some((_, allowed)) = allowed {
                cx.known_keys(attrs, &ap, allowed);
            }
            for a in &attrs.entries {
                let p = join(&ap, &a.key);
                if let Some(n) = cx.integer(&a.node, &p, "an integer >= 0") {
                    if n < 0 {
                        cx.report(
                            a.node.span.clone(),
                            format!("`{p}`: expected an integer >= 0, found {n}"),
                        );
                    }
                }
            }
        }
    }
    if let Some(e) = t.get("stream") {
        cx.choice(
            &e.node,
            &join(path, "stream"),
            "stream",
            &["upstream", "downstream"],
        );
    }
    if let Some(e) = t.get("toxicity") {
        cx.number_in(
            &e.node,
            &join(path, "toxicity"),
            0.0,
            1.0,
            "a share of connections between 0 and 1",
        );
    }
    if let Some(e) = t.get("name") {
        name(cx, &e.node, &join(path, "name"), "a toxic name");
    }
}
