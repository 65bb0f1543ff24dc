//! Byte counters per proxy and direction, served at `/metrics`.
//!
//! The names and labels are Toxiproxy's: `toxiproxy_proxy_received_bytes_total`
//! and `toxiproxy_proxy_sent_bytes_total`, labelled `direction`, `proxy`,
//! `listener` and `upstream`, so dashboards built for Toxiproxy keep working.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::Stream;

type Labels = [(&'static str, String); 4];

/// The registry and the two counter families.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    received: Family<Labels, Counter>,
    sent: Family<Labels, Counter>,
}

/// The counters one link adds to.
#[derive(Clone, Debug)]
pub(crate) struct LinkCounters {
    /// Bytes read from the link's source.
    pub(crate) received: Counter,
    /// Bytes written to the link's destination.
    pub(crate) sent: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let received = Family::<Labels, Counter>::default();
        let sent = Family::<Labels, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "toxiproxy_proxy_received_bytes",
            "Bytes read by the proxy from the source of each direction",
            received.clone(),
        );
        registry.register(
            "toxiproxy_proxy_sent_bytes",
            "Bytes written by the proxy to the destination of each direction",
            sent.clone(),
        );
        Self {
            registry: Arc::new(registry),
            received,
            sent,
        }
    }

    pub(crate) fn link(
        &self,
        direction: Stream,
        proxy: &str,
        listener: &str,
        upstream: &str,
    ) -> LinkCounters {
        let labels: Labels = [
            ("direction", direction.as_str().to_owned()),
            ("proxy", proxy.to_owned()),
            ("listener", listener.to_owned()),
            ("upstream", upstream.to_owned()),
        ];
        LinkCounters {
            received: self.received.get_or_create(&labels).clone(),
            sent: self.sent.get_or_create(&labels).clone(),
        }
    }

    /// The exposition text (OpenMetrics, which Prometheus reads).
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_toxiproxy_names() {
        let metrics = Metrics::new();
        let link = metrics.link(Stream::Upstream, "db", "127.0.0.1:1", "127.0.0.1:2");
        link.received.inc_by(5);
        link.sent.inc_by(3);
        let text = metrics.render();
        assert!(text.contains(
            "toxiproxy_proxy_received_bytes_total{direction=\"upstream\",proxy=\"db\",listener=\"127.0.0.1:1\",upstream=\"127.0.0.1:2\"} 5"
        ), "{text}");
        assert!(
            text.contains("toxiproxy_proxy_sent_bytes_total{direction=\"upstream\""),
            "{text}"
        );
    }
}
