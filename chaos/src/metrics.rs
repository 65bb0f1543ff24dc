//! Byte counters per proxy and direction, served at `/metrics`.
//!
//! The names and labels are Toxiproxy's: `toxiproxy_proxy_received_bytes_total`
//! and `toxiproxy_proxy_sent_bytes_total`, labelled `direction`, `proxy`,
//! `listener` and `upstream`, so dashboards built for Toxiproxy keep working.
//!
//! Each link (one direction of one connection) counts into cells of its own,
//! which only its pump writes: a load and a store per chunk, where one
//! counter shared by every connection of a proxy would be a locked add on a
//! cache line the cores pass back and forth (on a busy proxy, most of what
//! the pass-through's own code cost). The exported counters are brought up
//! to date from the cells when the metrics are rendered, so a scrape sees
//! every byte counted so far; a link's cells are folded in for good, and
//! forgotten, once its pump is done.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::Stream;

type Labels = [(&'static str, String); 4];

/// Links the live list holds before it is first swept of finished ones.
const FIRST_SWEEP: usize = 64;

/// The registry, the two counter families and the links counting into them.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    received: Family<Labels, Counter>,
    sent: Family<Labels, Counter>,
    links: Arc<Mutex<Links>>,
}

/// The exported counters of one proxy's direction.
#[derive(Clone, Debug)]
pub(crate) struct DirectionCounters {
    /// Bytes read from the direction's source.
    received: Counter,
    /// Bytes written to the direction's destination.
    sent: Counter,
}

/// What one link has counted: written by its pump alone.
#[derive(Debug, Default)]
struct Cells {
    received: AtomicU64,
    sent: AtomicU64,
}

/// The counters one link adds to, held by its pump alone (not `Clone`: the
/// cells have a single writer).
#[derive(Debug)]
pub(crate) struct LinkCounters {
    cells: Arc<Cells>,
}

impl LinkCounters {
    /// Counts bytes read from the link's source.
    #[inline]
    pub(crate) fn received(&self, n: usize) {
        add(&self.cells.received, n);
    }

    /// Counts bytes written to the link's destination.
    #[inline]
    pub(crate) fn sent(&self, n: usize) {
        add(&self.cells.sent, n);
    }
}

/// Adds to a cell with one writer: a load and a store, no locked add (the
/// renderer only reads the cell).
#[inline]
fn add(cell: &AtomicU64, n: usize) {
    cell.store(cell.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
}

/// The links whose cells the exported counters have not taken in for good.
struct Links {
    live: Vec<Live>,
    /// The list's length at which opening a link sweeps it first.
    sweep_at: usize,
}

struct Live {
    cells: Arc<Cells>,
    totals: DirectionCounters,
    /// What of the cells the totals already hold: (received, sent).
    folded: (u64, u64),
}

impl Live {
    /// Adds what the cells counted since the last fold to the totals.
    fn fold(&mut self) {
        let received = self.cells.received.load(Ordering::Relaxed);
        let sent = self.cells.sent.load(Ordering::Relaxed);
        self.totals.received.inc_by(received - self.folded.0);
        self.totals.sent.inc_by(sent - self.folded.1);
        self.folded = (received, sent);
    }
}

impl Links {
    /// Folds every link's counts into the totals and forgets the links whose
    /// pump is done (the list then holds the only reference to the cells,
    /// so nothing can count into them any more).
    fn sweep(&mut self) {
        self.live.retain_mut(|link| {
            // Whether the pump is gone is read before the fold: its last
            // counts are stored before it lets go of the cells, and the fence
            // makes them visible here, so a finished link is folded whole.
            let running = Arc::strong_count(&link.cells) > 1;
            fence(Ordering::Acquire);
            link.fold();
            running
        });
        self.sweep_at = (2 * self.live.len()).max(FIRST_SWEEP);
    }
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
            links: Arc::new(Mutex::new(Links {
                live: Vec::new(),
                sweep_at: FIRST_SWEEP,
            })),
        }
    }

    /// The exported counters of one direction of a proxy.
    pub(crate) fn direction(
        &self,
        direction: Stream,
        proxy: &str,
        listener: &str,
        upstream: &str,
    ) -> DirectionCounters {
        let labels: Labels = [
            ("direction", direction.as_str().to_owned()),
            ("proxy", proxy.to_owned()),
            ("listener", listener.to_owned()),
            ("upstream", upstream.to_owned()),
        ];
        DirectionCounters {
            received: self.received.get_or_create(&labels).clone(),
            sent: self.sent.get_or_create(&labels).clone(),
        }
    }

    /// Cells for one new link, counted into `totals`. Sweeps the list of
    /// finished links first once it has doubled since the last sweep, so
    /// with no scrape at all it stays within twice the live links (plus a
    /// few).
    pub(crate) fn open(&self, totals: &DirectionCounters) -> LinkCounters {
        let cells = Arc::new(Cells::default());
        let mut links = self.links.lock();
        if links.live.len() >= links.sweep_at {
            links.sweep();
        }
        links.live.push(Live {
            cells: Arc::clone(&cells),
            totals: totals.clone(),
            folded: (0, 0),
        });
        LinkCounters { cells }
    }

    /// The exposition text (OpenMetrics, which Prometheus reads), with every
    /// link's counts so far.
    pub(crate) fn render(&self) -> String {
        self.links.lock().sweep();
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
        let totals = metrics.direction(Stream::Upstream, "db", "127.0.0.1:1", "127.0.0.1:2");
        let link = metrics.open(&totals);
        link.received(5);
        link.sent(3);
        let text = metrics.render();
        assert!(text.contains(
            "toxiproxy_proxy_received_bytes_total{direction=\"upstream\",proxy=\"db\",listener=\"127.0.0.1:1\",upstream=\"127.0.0.1:2\"} 5"
        ), "{text}");
        assert!(
            text.contains("toxiproxy_proxy_sent_bytes_total{direction=\"upstream\",proxy=\"db\",listener=\"127.0.0.1:1\",upstream=\"127.0.0.1:2\"} 3"),
            "{text}"
        );
    }

    fn received(text: &str) -> u64 {
        text.lines()
            .find(|l| l.starts_with("toxiproxy_proxy_received_bytes_total{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no received counter in {text}"))
    }

    #[test]
    fn counts_add_up_across_links_scrapes_and_finished_links() {
        let metrics = Metrics::new();
        let totals = metrics.direction(Stream::Downstream, "db", "a", "b");
        let first = metrics.open(&totals);
        let second = metrics.open(&totals);
        first.received(10);
        second.received(1);
        assert_eq!(received(&metrics.render()), 11);
        // Counted after a scrape, and by a link that then finishes.
        first.received(100);
        drop(first);
        assert_eq!(received(&metrics.render()), 111);
        // The finished link is folded in once, not again on the next scrape.
        second.received(1_000);
        assert_eq!(received(&metrics.render()), 1_111);
        assert_eq!(metrics.links.lock().live.len(), 1);
    }

    #[test]
    fn finished_links_are_forgotten_without_a_scrape() {
        let metrics = Metrics::new();
        let totals = metrics.direction(Stream::Upstream, "db", "a", "b");
        let live = metrics.open(&totals);
        for _ in 0..10 * FIRST_SWEEP {
            let link = metrics.open(&totals);
            link.received(1);
        }
        live.received(1);
        assert!(
            metrics.links.lock().live.len() <= FIRST_SWEEP,
            "finished links kept: {}",
            metrics.links.lock().live.len()
        );
        assert_eq!(received(&metrics.render()), 10 * FIRST_SWEEP as u64 + 1);
    }
}
