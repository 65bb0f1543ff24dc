//! Checking a scenario file, reporting every problem at once.
//!
//! serde stops at the first problem; a user fixing a scenario wants them
//! all, each with its line. So the file is parsed into a tree that keeps
//! every key's and value's position, walked key by key against the schema
//! (unknown keys with the nearest valid one as a hint, wrong types, bad
//! numbers and durations, unknown links, services and gate metrics), and
//! deserialised into a [`Scenario`] only when the walk found nothing.

mod faults;
mod load;
mod system;
mod tree;

use std::path::Path;
use std::time::Duration;

use crate::gates;
use crate::problem::{nearest, LineIndex, Problem};
use crate::scenario::{Scenario, ScenarioSource};
use tree::{Entry, Node, Span, Table, Val};

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} problem(s) in the scenario:\n{}", .0.len(), list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and checks a scenario file.
pub fn load_scenario(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_scenario(path, &text).map_err(ScenarioError::Invalid)
}

/// Checks a scenario's text; `path` is only used to name the file in
/// problems. Returns the scenario, or every problem found, in file order.
pub fn parse_scenario(path: impl AsRef<Path>, text: &str) -> Result<Scenario, Vec<Problem>> {
    let file = path.as_ref().display().to_string();
    let mut cx = Ctx {
        file: &file,
        index: LineIndex::new(text),
        problems: Vec::new(),
    };
    let doc = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let message = e.message().lines().next().unwrap_or("").trim().to_string();
            cx.report(e.span(), format!("invalid TOML: {message}"));
            return Err(cx.problems);
        }
    };
    let root = tree::from_root(doc.as_table());
    check_root(&mut cx, &root);
    if !cx.problems.is_empty() {
        // In file order; the sort is stable, so problems at one position
        // keep the order they were found in.
        cx.problems.sort_by_key(|p| (p.line, p.column));
        return Err(cx.problems);
    }
    // Every check passed: serde now sees a well-formed document. Should it
    // still object, that is reported like any other problem, never dropped.
    let mut scenario: Scenario =
        serde_json::from_value(tree::to_json(&Val::Table(root))).map_err(|e| {
            vec![cx
                .index
                .problem(&file, None, format!("scenario does not deserialise: {e}"))]
        })?;
    scenario.source = Some(ScenarioSource {
        file,
        text: text.to_string(),
    });
    Ok(scenario)
}

const TOP_KEYS: [&str; 8] = [
    "name",
    "description",
    "seed",
    "system",
    "load",
    "faults",
    "quiesce",
    "gates",
];

fn check_root(cx: &mut Ctx<'_>, root: &Table) {
    cx.known_keys(root, "", &TOP_KEYS);
    match root.get("name") {
        Some(e) => {
            if let Some(name) = cx.string(&e.node, "name", "a string (the scenario's name)") {
                if name.trim().is_empty() {
                    cx.report(
                        e.node.span.clone(),
                        "`name`: expected a non-empty string (the scenario's name), found \"\"",
                    );
                }
            }
        }
        None => cx.report(None, "missing key `name` (the scenario's name, a string)"),
    }
    if let Some(e) = root.get("description") {
        cx.string(&e.node, "description", "a string");
    }
    if let Some(e) = root.get("seed") {
        if let Some(seed) = cx.integer(&e.node, "seed", "an integer (seeds every random choice)") {
            if seed < 0 {
                cx.report(
                    e.node.span.clone(),
                    format!("`seed`: expected an integer >= 0, found {seed}"),
                );
            }
        }
    }
    let flow = system::check(cx, root.get("system"));
    match root.get("load") {
        Some(e) => load::check(cx, &e.node),
        None => cx.report(
            None,
            "missing table `[load]` (the load to drive: `rate` stages or `users`)",
        ),
    }
    if let Some(e) = root.get("faults") {
        faults::check(cx, &e.node, flow);
    }
    if let Some(e) = root.get("quiesce") {
        cx.duration(&e.node, "quiesce");
    }
    if let Some(e) = root.get("gates") {
        check_gates(cx, &e.node);
    }
}

fn check_gates(cx: &mut Ctx<'_>, node: &Node) {
    let Some(items) = cx.array(
        node,
        "gates",
        "an array of strings such as \"error_rate < 1%\"",
    ) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let path = format!("gates[{i}]");
        let Some(text) = cx.string(item, &path, "a gate string such as \"p99(sync) < 300ms\"")
        else {
            continue;
        };
        if let Err(e) = gates::parse(text) {
            let span = cx.inside_string(item, e.offset);
            cx.report(span, format!("`{path}`: {}", e.message));
        }
    }
}

/// The walk's state: where it is and what it found.
pub(crate) struct Ctx<'a> {
    file: &'a str,
    index: LineIndex<'a>,
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    pub(crate) fn report(&mut self, span: Span, message: impl Into<String>) {
        let p = self.index.problem(self.file, span, message.into());
        self.problems.push(p);
    }

    /// The span of the `offset`-th character inside a string value, when
    /// the string is written without escapes (else the string's start).
    fn inside_string(&self, node: &Node, offset: usize) -> Span {
        let span = node.span.clone()?;
        let raw = self.index.text().get(span.clone())?;
        let Val::Str(value) = &node.val else {
            return Some(span);
        };
        let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else {
            1
        };
        if raw.len() != value.len() + 2 * quote || raw.get(quote..raw.len() - quote) != Some(value)
        {
            return Some(span);
        }
        let byte = value
            .char_indices()
            .nth(offset)
            .map_or(value.len(), |(b, _)| b);
        let start = span.start + quote + byte;
        Some(start..start + 1)
    }

    /// Reports every key of `table` not in `allowed`, with a hint.
    pub(crate) fn known_keys(&mut self, table: &Table, path: &str, allowed: &[&str]) {
        for e in &table.entries {
            if allowed.contains(&e.key.as_str()) {
                continue;
            }
            let place = if path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in `{path}`")
            };
            let message = match nearest(&e.key, allowed) {
                Some(hint) => format!("unknown key `{}` {place}; did you mean `{hint}`?", e.key),
                None => format!(
                    "unknown key `{}` {place} (expected one of: {})",
                    e.key,
                    allowed.join(", ")
                ),
            };
            self.report(e.key_span.clone(), message);
        }
    }

    fn mismatch(&mut self, node: &Node, path: &str, expected: &str) {
        let found = node.val.describe();
        let hint = match (&node.val, expected.contains("duration")) {
            (Val::Int(i), true) => format!(" (write \"{i}s\" or \"{i}ms\")"),
            _ => String::new(),
        };
        self.report(
            node.span.clone(),
            format!("`{path}`: expected {expected}, found {found}{hint}"),
        );
    }

    pub(crate) fn table<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
    ) -> Option<&'n Table> {
        match &node.val {
            Val::Table(t) => Some(t),
            _ => {
                self.mismatch(node, path, what);
                None
            }
        }
    }

    pub(crate) fn array<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
    ) -> Option<&'n [Node]> {
        match &node.val {
            Val::Array(a) => Some(a),
            _ => {
                self.mismatch(node, path, what);
                None
            }
        }
    }

    pub(crate) fn string<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> Option<&'n str> {
        match &node.val {
            Val::Str(s) => Some(s),
            _ => {
                self.mismatch(node, path, what);
                None
            }
        }
    }

    pub(crate) fn integer(&mut self, node: &Node, path: &str, what: &str) -> Option<i64> {
        match &node.val {
            Val::Int(i) => Some(*i),
            _ => {
                self.mismatch(node, path, what);
                None
            }
        }
    }

    /// An integer at least `min`, that fits a u32.
    pub(crate) fn count(&mut self, node: &Node, path: &str, min: i64, what: &str) -> Option<u32> {
        let i = self.integer(node, path, what)?;
        match u32::try_from(i) {
            Ok(n) if i >= min => Some(n),
            _ => {
                let range = if i >= min {
                    format!("at most {}", u32::MAX)
                } else {
                    format!(">= {min}")
                };
                self.report(
                    node.span.clone(),
                    format!("`{path}`: expected an integer {range} ({what}), found {i}"),
                );
                None
            }
        }
    }

    /// An integer or a float.
    pub(crate) fn number(&mut self, node: &Node, path: &str, what: &str) -> Option<f64> {
        match &node.val {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            _ => {
                self.mismatch(node, path, what);
                None
            }
        }
    }

    /// A number within `lo..=hi`; `what` names the range and unit.
    pub(crate) fn number_in(
        &mut self,
        node: &Node,
        path: &str,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> Option<f64> {
        let n = self.number(node, path, what)?;
        if n >= lo && n <= hi {
            Some(n)
        } else {
            self.report(
                node.span.clone(),
                format!("`{path}`: expected {what}, found {}", node_text(node)),
            );
            None
        }
    }

    pub(crate) fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        const WHAT: &str = "a duration such as \"250ms\", \"10s\" or \"2m\"";
        let s = self.string(node, path, WHAT)?;
        match humantime::parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.report(
                    node.span.clone(),
                    format!("`{path}`: expected {WHAT}, found {s:?} ({e})"),
                );
                None
            }
        }
    }

    /// A duration greater than zero.
    pub(crate) fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.report(
                node.span.clone(),
                format!(
                    "`{path}`: expected a duration > 0, found {:?}",
                    node_text(node)
                ),
            );
            return None;
        }
        Some(d)
    }

    /// A string among `choices`, with a hint when it is near one.
    pub(crate) fn choice<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
        choices: &[&str],
    ) -> Option<&'n str> {
        let s = self.string(node, path, &format!("{what}: one of {}", quoted(choices)))?;
        if choices.contains(&s) {
            return Some(s);
        }
        let hint = nearest(s, choices)
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        self.report(
            node.span.clone(),
            format!(
                "`{path}`: unknown {what} `{s}`{hint} (expected one of: {})",
                choices.join(", ")
            ),
        );
        None
    }

    /// A required key: reports it missing at `at` (the table's span).
    pub(crate) fn require<'t>(
        &mut self,
        table: &'t Table,
        at: &Node,
        path: &str,
        key: &str,
        what: &str,
    ) -> Option<&'t Entry> {
        let e = table.get(key);
        if e.is_none() {
            self.report(
                at.span.clone(),
                format!("`{path}`: missing key `{key}` ({what})"),
            );
        }
        e
    }
}

/// The value as written, for messages.
fn node_text(node: &Node) -> String {
    match &node.val {
        Val::Int(i) => i.to_string(),
        Val::Float(f) => f.to_string(),
        Val::Str(s) => s.clone(),
        other => other.describe(),
    }
}

fn quoted(choices: &[&str]) -> String {
    choices
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `path.key`, quoting keys that are not bare TOML keys (`"orders->payments"`).
pub(crate) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse_scenario("s.toml", text) {
            Ok(_) => vec![],
            Err(p) => p.into_iter().map(|p| p.to_string()).collect(),
        }
    }

    const MINIMAL: &str = "name = \"m\"\n[load]\nrate = [{ duration = \"10s\", target = 5 }]\n";

    #[test]
    fn a_minimal_scenario_parses_with_defaults() {
        let s = parse_scenario("s.toml", MINIMAL).unwrap();
        assert_eq!(s.name, "m");
        assert_eq!(s.seed, crate::scenario::DEFAULT_SEED);
        assert_eq!(s.quiesce, crate::scenario::DEFAULT_QUIESCE);
        assert_eq!(s.system.flow, crate::scenario::FlowChoice::Sync);
        assert!(s.faults.is_empty() && s.gates.is_empty());
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let p = problems("name = \"m\"\nload = [\n");
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0],
            "s.toml:2:9: invalid TOML: unclosed array, expected `]`"
        );
    }

    #[test]
    fn missing_name_and_load() {
        assert_eq!(
            problems("seed = 3\n"),
            vec![
                "s.toml:1:1: missing key `name` (the scenario's name, a string)",
                "s.toml:1:1: missing table `[load]` (the load to drive: `rate` stages or `users`)",
            ]
        );
    }

    #[test]
    fn gate_problems_point_inside_the_string() {
        let text = format!("gates = [\"p99 < 3ms\", \"error_rate < 5ms\"]\n{MINIMAL}");
        assert_eq!(
            problems(&text),
            vec!["s.toml:1:38: `gates[1]`: unit `ms` does not fit `error_rate`, a ratio, which takes % (a bare number is a fraction: 0.01 = 1%)"]
        );
        // A string with escapes: the problem points at its start.
        let text = format!("gates = [\"p98\\u0020< 3\"]\n{MINIMAL}");
        let p = problems(&text);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("s.toml:1:10: `gates[0]`: unknown metric `p98`"),
            "{p:?}"
        );
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let text = format!("seed = \"x\"\nquiesce = 30\n{MINIMAL}");
        assert_eq!(
            problems(&text),
            vec![
                "s.toml:1:8: `seed`: expected an integer (seeds every random choice), found a string \"x\"",
                "s.toml:2:11: `quiesce`: expected a duration such as \"250ms\", \"10s\" or \"2m\", found an integer 30 (write \"30s\" or \"30ms\")",
            ]
        );
    }

    #[test]
    fn join_quotes_keys_that_need_it() {
        assert_eq!(join("", "seed"), "seed");
        assert_eq!(
            join("system.links", "orders->payments"),
            "system.links.\"orders->payments\""
        );
    }
}
