//! Reading the system after (and while) the load runs, through the same
//! HTTP endpoints an operator would use: each service's own read endpoints
//! for the final state, `/circuit-breakers` for breaker transitions and
//! retries, `/events` for outbox backlog and consumer lag. The broker's
//! own accounts of the event path are in `accounts.rs`.

use std::collections::{BTreeMap, BTreeSet};

use gauntlet_reports::report::BreakerTransition;
use gauntlet_reports::state::{
    FinalState, Ledger, Notification, Order, Product, ProviderCharge, Reservation,
};
use gauntlet_system::Service;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Page size when reading orders (the endpoint's maximum).
const ORDERS_PAGE: usize = 10_000;
/// Page size when reading products (the endpoint's maximum).
const PRODUCTS_PAGE: usize = 1_000;

/// The services whose clients have breakers (they call other services).
pub const CALLERS: [Service; 3] = [Service::Gateway, Service::Orders, Service::Payments];

/// Why a read of the system failed: each names the request.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no address for the {0} service")]
    NoAddress(Service),
    #[error("GET {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("GET {url}: {status}: {body}")]
    Refused {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("GET {url}: unreadable answer: {source}")]
    Unreadable { url: String, source: reqwest::Error },
}

/// Where each service answers, directly (not through a fault proxy: the
/// harness reads the system's state, it does not take part in it).
#[derive(Debug, Clone)]
pub struct Probe {
    pub urls: BTreeMap<Service, String>,
    pub http: reqwest::Client,
}

impl Probe {
    fn url(&self, service: Service, path: &str) -> Result<String, ProbeError> {
        self.urls
            .get(&service)
            .map(|base| format!("{}{path}", base.trim_end_matches('/')))
            .ok_or(ProbeError::NoAddress(service))
    }

    /// `GET` a JSON answer from one service.
    pub async fn get<T: DeserializeOwned>(
        &self,
        service: Service,
        path: &str,
    ) -> Result<T, ProbeError> {
        let url = self.url(service, path)?;
        let resp = match self.http.get(&url).send().await {
            Ok(resp) => resp,
            Err(source) => return Err(ProbeError::Unreachable { url, source }),
        };
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(ProbeError::Refused { url, status, body });
        }
        resp.json::<T>()
            .await
            .map_err(|source| ProbeError::Unreadable { url, source })
    }

    /// Orders not yet terminal (at most `limit` of them).
    pub async fn open_orders(&self, limit: usize) -> Result<Vec<Order>, ProbeError> {
        self.get(Service::Orders, &format!("/orders?open=true&limit={limit}"))
            .await
    }

    /// Everything the invariants read, from every service's database.
    /// `events` is filled separately (it comes from the broker).
    pub async fn final_state(&self) -> Result<FinalState, ProbeError> {
        let orders: Vec<Order> = self
            .all_pages(Service::Orders, "/orders", ORDERS_PAGE, |o: &Order| o.id)
            .await?;
        let products: Vec<Product> = self
            .all_pages(
                Service::Catalog,
                "/products",
                PRODUCTS_PAGE,
                |p: &Product| p.id,
            )
            .await?;
        let charges: Vec<ProviderCharge> = self.get(Service::Provider, "/charges").await?;
        let ledger: Ledger = self.get(Service::Provider, "/ledger").await?;
        let reservations: Vec<Reservation> = self.get(Service::Catalog, "/reservations").await?;
        let notifications: Vec<Notification> =
            self.get(Service::Notifications, "/notifications").await?;
        Ok(FinalState {
            orders,
            charges,
            ledger: Some(ledger),
            products,
            reservations,
            notifications,
            events: None,
        })
    }

    /// Every row of a keyset-paginated list (`?after=<last id>&limit=`).
    async fn all_pages<T: DeserializeOwned>(
        &self,
        service: Service,
        path: &str,
        page: usize,
        id: fn(&T) -> i64,
    ) -> Result<Vec<T>, ProbeError> {
        let mut rows: Vec<T> = Vec::new();
        loop {
            let after = rows.last().map_or(0, id);
            let batch: Vec<T> = self
                .get(service, &format!("{path}?after={after}&limit={page}"))
                .await?;
            let n = batch.len();
            rows.extend(batch);
            if n < page {
                return Ok(rows);
            }
        }
    }

    /// One service's `/events`.
    pub async fn events(&self, service: Service) -> Result<EventsView, ProbeError> {
        self.get(service, "/events").await
    }

    /// One service's `/circuit-breakers`.
    pub async fn breakers(&self, service: Service) -> Result<BreakersView, ProbeError> {
        self.get(service, "/circuit-breakers").await
    }
}

/// A service's `GET /events`.
#[derive(Debug, Clone, Deserialize)]
pub struct EventsView {
    pub outbox: OutboxView,
    pub consumers: Vec<ConsumerView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutboxView {
    pub backlog: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerView {
    pub group: String,
    pub lag: i64,
}

/// A service's `GET /circuit-breakers`.
#[derive(Debug, Clone, Deserialize)]
pub struct BreakersView {
    pub breakers: Vec<BreakerView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BreakerView {
    pub link: String,
    pub calls: CallsView,
    pub transitions: Vec<TransitionView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallsView {
    pub retries: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TransitionView {
    pub from: String,
    pub to: String,
    pub at_unix_ms: u64,
}

/// Breaker transitions and retry counts gathered over a run. A service
/// that crashes comes back with fresh breakers and zeroed counters, so
/// transitions are merged by identity and counters that go down are
/// carried over.
#[derive(Debug, Default)]
pub struct BreakerLog {
    seen: BTreeSet<(String, u64, String, String)>,
    transitions: Vec<(String, u64, String, String)>,
    /// Per link: retries carried from earlier incarnations, and the last value seen.
    retries: BTreeMap<String, (u64, u64)>,
}

impl BreakerLog {
    pub fn absorb(&mut self, view: &BreakersView) {
        for b in &view.breakers {
            for t in &b.transitions {
                let key = (b.link.clone(), t.at_unix_ms, t.from.clone(), t.to.clone());
                if self.seen.insert(key.clone()) {
                    self.transitions.push(key);
                }
            }
            let (carried, last) = self.retries.entry(b.link.clone()).or_default();
            if b.calls.retries < *last {
                *carried += *last;
            }
            *last = b.calls.retries;
        }
    }

    /// Every transition in time order, `at_ms` from `origin_unix_ms`
    /// (transitions before it, in the warm-up, count as 0).
    pub fn transitions(&self, origin_unix_ms: i64) -> Vec<BreakerTransition> {
        let mut out: Vec<BreakerTransition> = self
            .transitions
            .iter()
            .map(|(link, at, from, to)| BreakerTransition {
                flow: None,
                link: link.clone(),
                from: from.clone(),
                to: to.clone(),
                at_ms: (*at as i64 - origin_unix_ms).max(0) as u64,
            })
            .collect();
        out.sort_by(|a, b| (a.at_ms, &a.link).cmp(&(b.at_ms, &b.link)));
        out
    }

    /// Times each watched link's breaker went to OPEN (0 included).
    pub fn opened(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = self.retries.keys().map(|l| (l.clone(), 0)).collect();
        for (link, _, _, to) in &self.transitions {
            if to == "OPEN" {
                *out.entry(link.clone()).or_default() += 1;
            }
        }
        out
    }

    /// Retried attempts per watched link.
    pub fn retries(&self) -> BTreeMap<String, u64> {
        self.retries
            .iter()
            .map(|(l, (carried, last))| (l.clone(), carried + last))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(link: &str, retries: u64, transitions: &[(&str, &str, u64)]) -> BreakersView {
        BreakersView {
            breakers: vec![BreakerView {
                link: link.into(),
                calls: CallsView { retries },
                transitions: transitions
                    .iter()
                    .map(|(f, t, at)| TransitionView {
                        from: (*f).into(),
                        to: (*t).into(),
                        at_unix_ms: *at,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn a_restarted_service_loses_no_transition_or_retry() {
        let mut log = BreakerLog::default();
        log.absorb(&view("orders->payments", 4, &[("CLOSED", "OPEN", 1_000)]));
        log.absorb(&view(
            "orders->payments",
            7,
            &[("CLOSED", "OPEN", 1_000), ("OPEN", "HALF_OPEN", 6_000)],
        ));
        // The service restarted: fresh breaker, counters from zero.
        log.absorb(&view("orders->payments", 2, &[("CLOSED", "OPEN", 9_000)]));
        assert_eq!(log.retries()["orders->payments"], 9);
        assert_eq!(log.opened()["orders->payments"], 2);
        let t = log.transitions(2_000);
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].at_ms, t[1].at_ms, t[2].at_ms), (0, 4_000, 7_000));
    }
}
