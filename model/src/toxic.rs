//! The toxics, in Toxiproxy's shape: a kind with its attributes
//! (`{"type": "latency", "attributes": {"latency": 100, "jitter": 10}}`),
//! and a toxic to add (kind, stream, toxicity and name).
//!
//! Attributes left out are 0, and unknown attributes are ignored, as
//! Toxiproxy reads them; a scenario file's unknown attribute is reported
//! with its line by the scenario checker before anything deserialises.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A toxic's kind and attributes, as the Toxiproxy API shows them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum ToxicKind {
    /// Delay each chunk.
    Latency(Latency),
    /// Cap the throughput.
    Bandwidth(Bandwidth),
    /// Hold the close after the stream ends.
    SlowClose(SlowClose),
    /// Swallow all data; close after a while (or never).
    Timeout(Timeout),
    /// Reset the connection (TCP RST) once data flows.
    ResetPeer(ResetPeer),
    /// Cut data into small chunks.
    Slicer(Slicer),
    /// Close after a number of bytes.
    LimitData(LimitData),
}

/// The names the API accepts in `type`.
pub const TOXIC_TYPES: [&str; 7] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
];

/// The attributes each toxic type takes, for checking and for hints.
pub const TOXIC_ATTRIBUTES: [(&str, &[&str]); 7] = [
    ("latency", &["latency", "jitter"]),
    ("bandwidth", &["rate"]),
    ("slow_close", &["delay"]),
    ("timeout", &["timeout"]),
    ("reset_peer", &["timeout"]),
    ("slicer", &["average_size", "size_variation", "delay"]),
    ("limit_data", &["bytes"]),
];

impl ToxicKind {
    /// The `type` string of this kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Latency(_) => "latency",
            Self::Bandwidth(_) => "bandwidth",
            Self::SlowClose(_) => "slow_close",
            Self::Timeout(_) => "timeout",
            Self::ResetPeer(_) => "reset_peer",
            Self::Slicer(_) => "slicer",
            Self::LimitData(_) => "limit_data",
        }
    }
}

/// Attributes of the `latency` toxic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Delay added to each chunk, in milliseconds.
    pub latency: u64,
    /// Largest random deviation from `latency`, in milliseconds.
    pub jitter: u64,
}

/// Attributes of the `bandwidth` toxic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bandwidth {
    /// Throughput cap, in KB/s (1 KB = 1000 bytes); 0 lets data through
    /// unthrottled.
    pub rate: u64,
}

/// Attributes of the `slow_close` toxic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlowClose {
    /// How long the close is held after the stream ends, in milliseconds.
    pub delay: u64,
}

/// Attributes of the `timeout` toxic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeout {
    /// Time from when the toxic takes hold until the connection is closed,
    /// in milliseconds; 0 never closes it (data is still swallowed).
    pub timeout: u64,
}

/// Attributes of the `reset_peer` toxic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResetPeer {
    /// Delay between the first data reaching the toxic and the reset, in
    /// milliseconds; 0 resets at once.
    pub timeout: u64,
}

/// Attributes of the `slicer` toxic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Slicer {
    /// Mean size of a slice, in bytes (0 is taken as 1).
    pub average_size: u64,
    /// Largest deviation of a cut from the middle of its span, in bytes;
    /// should be smaller than `average_size`.
    pub size_variation: u64,
    /// Pause after each slice, in microseconds.
    pub delay: u64,
}

/// Attributes of the `limit_data` toxic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitData {
    /// Bytes let through before the connection is closed.
    pub bytes: u64,
}

/// Which direction of a connection a toxic affects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → upstream server (requests).
    Upstream,
    /// Upstream server → client (responses). The default.
    #[default]
    Downstream,
}

impl Stream {
    /// `"upstream"` or `"downstream"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stream name that is neither `upstream` nor `downstream`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream must be 'upstream' or 'downstream', got '{0}'")]
pub struct UnknownStream(pub String);

impl FromStr for Stream {
    type Err = UnknownStream;

    /// Case-insensitive, as Toxiproxy parses it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "upstream" => Ok(Self::Upstream),
            "downstream" => Ok(Self::Downstream),
            _ => Err(UnknownStream(s.to_owned())),
        }
    }
}

fn every_connection() -> f32 {
    1.0
}

/// A toxic to add to a link: its kind and attributes, and optionally a
/// name, a stream and a toxicity. The shape of Toxiproxy's
/// `POST /proxies/{name}/toxics` body and of a scenario's `toxic` table:
/// `{type = "latency", attributes = {latency = 200}, stream = "upstream"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToxicSpec {
    /// Defaults to `<type>_<stream>`, e.g. `latency_downstream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Defaults to [`Stream::Downstream`].
    #[serde(default)]
    pub stream: Stream,
    /// Probability, per connection, that the toxic applies to it
    /// (0.0–1.0); defaults to 1.0 (every connection).
    #[serde(default = "every_connection")]
    pub toxicity: f32,
    /// The toxic and its attributes.
    #[serde(flatten)]
    pub kind: ToxicKind,
}

impl ToxicSpec {
    /// A downstream toxic applying to every connection, named after its type.
    pub fn new(kind: ToxicKind) -> Self {
        Self {
            name: None,
            stream: Stream::Downstream,
            toxicity: 1.0,
            kind,
        }
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the stream.
    pub fn stream(mut self, stream: Stream) -> Self {
        self.stream = stream;
        self
    }

    /// Sets the toxicity.
    pub fn toxicity(mut self, toxicity: f32) -> Self {
        self.toxicity = toxicity;
        self
    }

    /// The name the toxic gets: the one given, or `<type>_<stream>`.
    pub fn resolved_name(&self) -> String {
        match &self.name {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!("{}_{}", self.kind.type_name(), self.stream),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_has_its_attributes_listed_in_order() {
        let kinds = [
            ToxicKind::Latency(Latency::default()),
            ToxicKind::Bandwidth(Bandwidth::default()),
            ToxicKind::SlowClose(SlowClose::default()),
            ToxicKind::Timeout(Timeout::default()),
            ToxicKind::ResetPeer(ResetPeer::default()),
            ToxicKind::Slicer(Slicer::default()),
            ToxicKind::LimitData(LimitData::default()),
        ];
        for ((kind, name), (listed, attributes)) in
            kinds.iter().zip(TOXIC_TYPES).zip(TOXIC_ATTRIBUTES)
        {
            assert_eq!(kind.type_name(), name);
            assert_eq!(listed, name);
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json["type"], name);
            let keys: Vec<&str> = json["attributes"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut want = attributes.to_vec();
            want.sort_unstable();
            let mut keys = keys;
            keys.sort_unstable();
            assert_eq!(keys, want, "{name}");
        }
    }

    #[test]
    fn a_spec_reads_toxiproxys_shape_with_its_defaults() {
        let spec: ToxicSpec = serde_json::from_value(json!({
            "type": "latency", "attributes": {"latency": 200, "ignored": 1}
        }))
        .unwrap();
        assert_eq!(
            spec,
            ToxicSpec::new(ToxicKind::Latency(Latency {
                latency: 200,
                jitter: 0
            }))
        );
        assert_eq!(spec.resolved_name(), "latency_downstream");
        let full = spec
            .clone()
            .name("slow")
            .stream(Stream::Upstream)
            .toxicity(0.5);
        assert_eq!(
            serde_json::to_value(&full).unwrap(),
            json!({"name": "slow", "stream": "upstream", "toxicity": 0.5,
                   "type": "latency", "attributes": {"latency": 200, "jitter": 0}})
        );
        assert_eq!(
            serde_json::from_value::<ToxicSpec>(serde_json::to_value(&full).unwrap()).unwrap(),
            full
        );
        assert_eq!(full.resolved_name(), "slow");
        assert!(serde_json::from_value::<ToxicSpec>(json!({"type": "meteor"})).is_err());
    }

    #[test]
    fn streams_parse_as_toxiproxy_does() {
        assert_eq!("UpStream".parse::<Stream>(), Ok(Stream::Upstream));
        assert_eq!("downstream".parse::<Stream>(), Ok(Stream::Downstream));
        assert_eq!(
            "sideways".parse::<Stream>().unwrap_err().to_string(),
            "stream must be 'upstream' or 'downstream', got 'sideways'"
        );
    }
}
