//! The proxy and toxic descriptions the API takes and returns.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use gauntlet_model::toxic::{Stream, ToxicSpec};

use crate::toxics::ToxicKind;

/// What to create: a named proxy from `listen` to `upstream`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxySpec {
    /// Unique name of the proxy.
    pub name: String,
    /// Address to listen on, `host:port`. Port 0 picks a free port; an empty
    /// string means `127.0.0.1:0`.
    pub listen: String,
    /// Address to forward to, `host:port`, resolved at each new connection.
    pub upstream: String,
    /// Whether to start listening at once.
    pub enabled: bool,
}

impl ProxySpec {
    /// An enabled proxy.
    pub fn new(
        name: impl Into<String>,
        listen: impl Into<String>,
        upstream: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            listen: listen.into(),
            upstream: upstream.into(),
            enabled: true,
        }
    }
}

/// A change to a proxy; `None` keeps the current value. Changing `listen` or
/// `upstream` restarts the proxy (dropping its connections).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyUpdate {
    /// New listen address.
    #[serde(default)]
    pub listen: Option<String>,
    /// New upstream address.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Enable (listen) or disable (close the listener and every connection).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A proxy as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    /// Unique name.
    pub name: String,
    /// The address actually bound while enabled (`127.0.0.1:41234` for a
    /// requested `127.0.0.1:0` or `localhost:41234`); as requested otherwise.
    pub listen: String,
    /// Where connections are forwarded.
    pub upstream: String,
    /// Whether it is listening.
    pub enabled: bool,
    /// Its toxics: upstream ones first, each stream in the order added.
    pub toxics: Vec<Toxic>,
}

impl Proxy {
    /// The listen address as a socket address, when it is one.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// A toxic as the API shows it:
/// `{"name", "type", "attributes", "stream", "toxicity"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    /// Unique (across both streams) within its proxy.
    pub name: String,
    /// `type` and `attributes`.
    #[serde(flatten)]
    pub kind: ToxicKind,
    /// The direction it affects.
    pub stream: Stream,
    /// Probability, per connection, that the toxic applies to it (0.0–1.0).
    pub toxicity: f32,
}

/// A change to a toxic: its toxicity and any of its attributes (the ones left
/// out keep their values), as Toxiproxy's update endpoint reads them. The
/// toxic's name, type and stream cannot change.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToxicUpdate {
    /// New toxicity.
    #[serde(default)]
    pub toxicity: Option<f32>,
    /// Attributes to change, by name.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

impl ToxicUpdate {
    /// Changes the toxicity only.
    pub fn toxicity(toxicity: f32) -> Self {
        Self {
            toxicity: Some(toxicity),
            attributes: Map::new(),
        }
    }

    /// Replaces every attribute with those of `kind` (which must be of the
    /// toxic's type).
    pub fn attributes(kind: &ToxicKind) -> Self {
        Self {
            toxicity: None,
            attributes: crate::toxics::attributes(kind),
        }
    }

    /// Changes one attribute.
    pub fn with(mut self, attribute: &str, value: u64) -> Self {
        self.attributes
            .insert(attribute.to_owned(), Value::from(value));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::Latency;
    use crate::ChaosError;
    use serde_json::json;

    #[test]
    fn toxic_json_has_the_toxiproxy_shape() {
        let toxic = Toxic {
            name: "latency_downstream".into(),
            kind: ToxicKind::Latency(Latency {
                latency: 100,
                jitter: 0,
            }),
            stream: Stream::Downstream,
            toxicity: 1.0,
        };
        let value = serde_json::to_value(&toxic).unwrap();
        assert_eq!(
            value,
            json!({
                "name": "latency_downstream",
                "type": "latency",
                "attributes": {"latency": 100, "jitter": 0},
                "stream": "downstream",
                "toxicity": 1.0
            })
        );
        assert_eq!(serde_json::from_value::<Toxic>(value).unwrap(), toxic);
    }

    #[test]
    fn streams_parse_case_insensitively() {
        assert_eq!("UpStream".parse::<Stream>().unwrap(), Stream::Upstream);
        let e: ChaosError = "sideways".parse::<Stream>().unwrap_err().into();
        assert!(matches!(e, ChaosError::InvalidStream(ref s) if s == "sideways"));
    }

    #[test]
    fn default_toxic_name_is_type_and_stream() {
        let spec = ToxicSpec::new(ToxicKind::Latency(Latency::default()));
        assert_eq!(spec.resolved_name(), "latency_downstream");
        assert_eq!(
            spec.clone().stream(Stream::Upstream).resolved_name(),
            "latency_upstream"
        );
        assert_eq!(spec.name("").resolved_name(), "latency_downstream");
    }
}
