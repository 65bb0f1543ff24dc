//! A TOML document as a plain tree in which every key and value keeps its
//! byte span, so each check can say where it looked. Built once from the
//! parser's document; turned into JSON for deserialising once every check
//! has passed.

use std::ops::Range;

use serde_json::{Map, Number, Value as Json};
use toml_edit::{Item, Value};

pub(crate) type Span = Option<Range<usize>>;

#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Where the value is written; for a table, its header (or the key that
    /// implies it).
    pub span: Span,
    pub val: Val,
}

#[derive(Debug, Clone)]
pub(crate) enum Val {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Table),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Span,
    pub node: Node,
}

impl Table {
    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

impl Val {
    /// How a value is named in messages: "a string \"10 sec\"", "an integer 5".
    pub(crate) fn describe(&self) -> String {
        match self {
            Val::Str(s) => format!("a string {s:?}"),
            Val::Int(i) => format!("an integer {i}"),
            Val::Float(f) => format!("a float {f}"),
            Val::Bool(b) => format!("a boolean {b}"),
            Val::Datetime(d) => format!("a date-time {d}"),
            Val::Array(_) => "an array".into(),
            Val::Table(_) => "a table".into(),
        }
    }
}

/// The tree of a parsed document's root table.
pub(crate) fn from_root(root: &toml_edit::Table) -> Table {
    from_table(root)
}

fn from_table(t: &toml_edit::Table) -> Table {
    let entries = t
        .iter()
        .filter(|(_, item)| !item.is_none())
        .filter_map(|(k, item)| {
            let key_span = t.key(k).and_then(|k| k.span());
            from_item(item).map(|node| entry(k, key_span, node))
        })
        .collect();
    Table { entries }
}

fn entry(key: &str, key_span: Span, mut node: Node) -> Entry {
    // Implicit tables (`[a.b]` with no `[a]`) have no span of their own:
    // point at the key that brought them in.
    if node.span.is_none() {
        node.span.clone_from(&key_span);
    }
    Entry {
        key: key.to_string(),
        key_span,
        node,
    }
}

fn from_item(item: &Item) -> Option<Node> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(from_value(v)),
        Item::Table(t) => Some(Node {
            span: t.span(),
            val: Val::Table(from_table(t)),
        }),
        Item::ArrayOfTables(a) => Some(Node {
            span: a.span(),
            val: Val::Array(
                a.iter()
                    .map(|t| Node {
                        span: t.span(),
                        val: Val::Table(from_table(t)),
                    })
                    .collect(),
            ),
        }),
    }
}

fn from_value(v: &Value) -> Node {
    let val = match v {
        Value::String(s) => Val::Str(s.value().clone()),
        Value::Integer(i) => Val::Int(*i.value()),
        Value::Float(f) => Val::Float(*f.value()),
        Value::Boolean(b) => Val::Bool(*b.value()),
        Value::Datetime(d) => Val::Datetime(d.value().to_string()),
        Value::Array(a) => Val::Array(a.iter().map(from_value).collect()),
        Value::InlineTable(t) => Val::Table(Table {
            entries: t
                .iter()
                .map(|(k, v)| entry(k, t.key(k).and_then(|k| k.span()), from_value(v)))
                .collect(),
        }),
    };
    Node {
        span: v.span(),
        val,
    }
}

/// The same data as JSON, for serde.
pub(crate) fn to_json(node: &Val) -> Json {
    match node {
        Val::Str(s) | Val::Datetime(s) => Json::String(s.clone()),
        Val::Int(i) => Json::Number((*i).into()),
        Val::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Val::Bool(b) => Json::Bool(*b),
        Val::Array(a) => Json::Array(a.iter().map(|n| to_json(&n.val)).collect()),
        Val::Table(t) => Json::Object(
            t.entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.node.val)))
                .collect::<Map<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_spans_of_keys_values_and_tables() {
        let text = "a = 1\n[t.u]\nb = \"x\"\n[[arr]]\nc = { d = 2.5 }\n";
        let doc = toml_edit::Document::parse(text).unwrap();
        let root = from_root(doc.as_table());
        let a = root.get("a").unwrap();
        assert_eq!(a.key_span, Some(0..1));
        assert_eq!(a.node.span, Some(4..5));
        let t = root.get("t").unwrap();
        // `t` is implicit: it points at its key in `[t.u]`.
        assert_eq!(&text[t.node.span.clone().unwrap()], "t");
        let Val::Table(t) = &t.node.val else { panic!() };
        let Val::Table(u) = &t.get("u").unwrap().node.val else {
            panic!()
        };
        assert_eq!(
            &text[u.get("b").unwrap().node.span.clone().unwrap()],
            "\"x\""
        );
        let arr = root.get("arr").unwrap();
        let Val::Array(items) = &arr.node.val else {
            panic!()
        };
        let Val::Table(first) = &items[0].val else {
            panic!()
        };
        let c = first.get("c").unwrap();
        let Val::Table(c) = &c.node.val else { panic!() };
        assert_eq!(&text[c.get("d").unwrap().key_span.clone().unwrap()], "d");
        assert_eq!(
            to_json(&Val::Table(root)),
            serde_json::json!({"a": 1, "t": {"u": {"b": "x"}}, "arr": [{"c": {"d": 2.5}}]})
        );
    }
}
