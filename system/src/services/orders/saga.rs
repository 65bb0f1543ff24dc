//! The orchestrated saga of a synchronous order:
//!
//! ```text
//! reserve stock ──► charge payment ──► confirm ──► notify
//!      │                  │
//!      └──────────────────┴──► compensate: refund payment, release stock (reverse order)
//! ```
//!
//! Each step is logged before it runs and its outcome after, and
//! `orders.saga_step` says where to go on, so [`Saga::drive`] can pick up
//! any order where it stopped, in this process or after a crash. Every
//! remote operation is idempotent per order (reservations keyed by order id,
//! the charge by the order's idempotency key), so repeating a step whose
//! outcome was lost is safe.
//!
//! The charge is the pivot: before it succeeds, a failure compensates;
//! after, the saga only goes forward (committing the reservation is retried
//! until it succeeds). Compensations are retried until they succeed too.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gauntlet_resilience::{Backoff, RetryConfig};
use parking_lot::Mutex;
use serde_json::json;

use super::store::{self, log, step, Order};
use crate::client::{ClientError, ServiceClient};
use crate::db::Db;
use crate::services::analytics::OrderOutcome;
use crate::services::catalog::{Reservation, ReserveRequest};
use crate::services::notifications::{NewNotification, Notification};
use crate::services::payments::{order_key, Charge, NewCharge, NewRefund};
use crate::telemetry::{inc, KindCounter};

/// Backoff between attempts of a step that must eventually succeed
/// (compensations, committing a reservation after the charge): short at
/// first, capped so a recovered dependency is noticed within a second.
pub const MUST_SUCCEED_BACKOFF: RetryConfig = RetryConfig {
    max_attempts: u32::MAX,
    base_delay: Duration::from_millis(50),
    max_delay: Duration::from_secs(1),
};

/// How many rounds a must-succeed step (a compensation, committing the
/// reservation) gets while a client waits; after that the client is told
/// the order is still PENDING and recovery carries on without a deadline.
pub const REQUEST_PATIENCE: u32 = 3;

/// The dependencies of the saga.
#[derive(Clone)]
pub struct Saga {
    pub db: Db,
    pub catalog: ServiceClient,
    pub payments: ServiceClient,
    pub notifications: ServiceClient,
    pub analytics: ServiceClient,
    pub backoff: Arc<Backoff>,
    pub in_flight: Arc<Mutex<HashSet<i64>>>,
    pub outcomes: KindCounter,
    pub compensations: KindCounter,
}

/// Holds an order's claim: one driver per saga at a time in this process.
pub struct Claim {
    id: i64,
    set: Arc<Mutex<HashSet<i64>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.set.lock().remove(&self.id);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("order {0} not found")]
    NotFound(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// How far [`Saga::drive`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Stop once the order is CONFIRMED or CANCELLED and notification was
    /// tried once (the request path: the client should not wait on it).
    Terminal,
    /// Go on until the saga is done.
    Done,
}

impl Saga {
    pub fn claim(&self, id: i64) -> Option<Claim> {
        self.in_flight.lock().insert(id).then(|| Claim {
            id,
            set: self.in_flight.clone(),
        })
    }

    /// Runs the saga of `id` forward from where it stands.
    pub async fn drive(&self, id: i64, until: Until) -> Result<Order, SagaError> {
        let mut notified_once = false;
        loop {
            let order = store::get(&self.db, id)
                .await?
                .ok_or(SagaError::NotFound(id))?;
            let patience = match until {
                Until::Terminal => Some(REQUEST_PATIENCE),
                Until::Done => None,
            };
            let progressed = match order.saga_step.as_str() {
                step::RESERVE => self.reserve(&order).await?,
                step::CHARGE => self.charge(&order).await?,
                step::CONFIRM => self.confirm(&order, patience).await?,
                step::COMPENSATE => self.compensate(&order, patience).await?,
                step::NOTIFY if until == Until::Terminal && notified_once => return Ok(order),
                step::NOTIFY => {
                    notified_once = true;
                    self.notify(&order).await?
                }
                _ => return Ok(order),
            };
            if !progressed {
                // Out of patience: answer with the order as it stands.
                return store::get(&self.db, id)
                    .await?
                    .ok_or(SagaError::NotFound(id));
            }
        }
    }

    #[tracing::instrument(name = "saga.reserve", skip_all, fields(order = o.id))]
    async fn reserve(&self, o: &Order) -> Result<bool, SagaError> {
        store::append(
            &self.db,
            o.id,
            log::RESERVE_STOCK,
            "execute",
            "started",
            None,
        )
        .await?;
        let req = ReserveRequest {
            order_id: o.id,
            product_id: o.product_id,
            quantity: o.quantity,
        };
        let r: Result<Reservation, _> = self.catalog.post("/reservations", &req, None, true).await;
        match r {
            Ok(_) => {
                let e = (log::RESERVE_STOCK, "execute", "succeeded", None);
                store::advance(&self.db, o.id, step::CHARGE, None, None, e).await?
            }
            Err(err) => {
                let detail = err.to_string();
                // Certainly not applied (a 4xx, an open breaker, a refused
                // connection): nothing to release.
                let outcome = if err.maybe_applied() {
                    "failed"
                } else {
                    "rejected"
                };
                let reason = match &err {
                    ClientError::Status { body, .. } => body.error.clone(),
                    _ => format!("stock reservation failed: {err}"),
                };
                let e = (
                    log::RESERVE_STOCK,
                    "execute",
                    outcome,
                    Some(detail.as_str()),
                );
                store::advance(&self.db, o.id, step::COMPENSATE, None, Some(&reason), e).await?
            }
        }
        Ok(true)
    }

    #[tracing::instrument(name = "saga.charge", skip_all, fields(order = o.id))]
    async fn charge(&self, o: &Order) -> Result<bool, SagaError> {
        store::append(
            &self.db,
            o.id,
            log::CHARGE_PAYMENT,
            "execute",
            "started",
            None,
        )
        .await?;
        let req = NewCharge {
            order_id: o.id,
            amount_cents: o.total_cents,
        };
        let key = order_key(o.id);
        let r: Result<Charge, _> = self.payments.post("/charges", &req, Some(&key), true).await;
        match r {
            Ok(_) => {
                let e = (log::CHARGE_PAYMENT, "execute", "succeeded", None);
                store::advance(&self.db, o.id, step::CONFIRM, None, None, e).await?
            }
            Err(err) => {
                let detail = err.to_string();
                let reason = match &err {
                    ClientError::Status { body, .. } => body.error.clone(),
                    _ => format!("payment failed: {err}"),
                };
                // A payment that never reached payments (open breaker,
                // refused connection) needs no refund. Anything else, even a
                // definite decline, is refunded: the refund is idempotent
                // and voids the key, so no late charge can stand.
                let reached = err.maybe_applied() || matches!(err, ClientError::Status { .. });
                let outcome = if reached { "failed" } else { "rejected" };
                let e = (
                    log::CHARGE_PAYMENT,
                    "execute",
                    outcome,
                    Some(detail.as_str()),
                );
                store::advance(&self.db, o.id, step::COMPENSATE, None, Some(&reason), e).await?
            }
        }
        Ok(true)
    }

    #[tracing::instrument(name = "saga.confirm", skip_all, fields(order = o.id))]
    async fn confirm(&self, o: &Order, patience: Option<u32>) -> Result<bool, SagaError> {
        let path = format!("/reservations/{}/commit", o.id);
        let mut retry = 0;
        loop {
            let r: Result<Reservation, _> = self.catalog.post(&path, &json!({}), None, true).await;
            match r {
                Ok(_) => break,
                Err(ClientError::Status { status, body, .. }) => {
                    // The reservation is gone (released by someone else):
                    // the order cannot be delivered, so give the money back.
                    let detail = format!("{status}: {}", body.error);
                    let reason = format!("reservation lost after payment: {}", body.error);
                    let e = (
                        log::CONFIRM_ORDER,
                        "execute",
                        "failed",
                        Some(detail.as_str()),
                    );
                    store::advance(&self.db, o.id, step::COMPENSATE, None, Some(&reason), e)
                        .await?;
                    return Ok(true);
                }
                Err(err) => {
                    tracing::debug!(order = o.id, error = %err, "commit reservation: retrying");
                    retry += 1;
                    if patience.is_some_and(|p| retry >= p) {
                        return Ok(false);
                    }
                    tokio::time::sleep(self.backoff.delay(retry - 1)).await;
                }
            }
        }
        let e = (log::CONFIRM_ORDER, "execute", "succeeded", None);
        store::advance(&self.db, o.id, step::NOTIFY, Some("CONFIRMED"), None, e).await?;
        inc(&self.outcomes, "completed");
        Ok(true)
    }

    #[tracing::instrument(name = "saga.compensate", skip_all, fields(order = o.id))]
    async fn compensate(&self, o: &Order, patience: Option<u32>) -> Result<bool, SagaError> {
        let entries = store::saga_log(&self.db, o.id).await?;
        let needs = |execute: &str, compensation: &str| {
            let started = entries
                .iter()
                .any(|e| e.step == execute && e.action == "execute" && e.outcome == "started");
            let rejected = entries
                .iter()
                .any(|e| e.step == execute && e.action == "execute" && e.outcome == "rejected");
            let done = entries.iter().any(|e| {
                e.step == compensation && e.action == "compensate" && e.outcome == "succeeded"
            });
            started && !rejected && !done
        };
        let mut compensated = false;
        // Reverse order of the forward steps.
        if needs(log::CHARGE_PAYMENT, log::REFUND_PAYMENT) {
            let refund = NewRefund { order_id: o.id };
            let key = order_key(o.id);
            let done = self
                .until_ok(o.id, log::REFUND_PAYMENT, patience, || async {
                    let r: Result<Charge, _> = self
                        .payments
                        .post("/refunds", &refund, Some(&key), true)
                        .await;
                    r.map(|c| c.status)
                })
                .await?;
            if !done {
                return Ok(false);
            }
            inc(&self.compensations, log::REFUND_PAYMENT);
            compensated = true;
        }
        if needs(log::RESERVE_STOCK, log::RELEASE_STOCK) {
            let path = format!("/reservations/{}/release", o.id);
            let done = self
                .until_ok(o.id, log::RELEASE_STOCK, patience, || async {
                    let r: Result<Reservation, _> =
                        self.catalog.post(&path, &json!({}), None, true).await;
                    r.map(|r| r.status)
                })
                .await?;
            if !done {
                return Ok(false);
            }
            inc(&self.compensations, log::RELEASE_STOCK);
            compensated = true;
        }
        let e = (log::CANCEL_ORDER, "compensate", "succeeded", None);
        store::advance(&self.db, o.id, step::NOTIFY, Some("CANCELLED"), None, e).await?;
        inc(
            &self.outcomes,
            if compensated { "compensated" } else { "failed" },
        );
        Ok(true)
    }

    /// Runs a compensation until it succeeds (or `patience` rounds have
    /// failed: `Ok(false)`), logging its start once and its success.
    async fn until_ok<F, Fut>(
        &self,
        id: i64,
        name: &str,
        patience: Option<u32>,
        mut op: F,
    ) -> Result<bool, SagaError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<String, ClientError>>,
    {
        let entries = store::saga_log(&self.db, id).await?;
        let started = entries
            .iter()
            .any(|e| e.step == name && e.action == "compensate" && e.outcome == "started");
        if !started {
            store::append(&self.db, id, name, "compensate", "started", None).await?;
        }
        let mut retry = 0;
        loop {
            match op().await {
                Ok(result) => {
                    store::append(&self.db, id, name, "compensate", "succeeded", Some(&result))
                        .await?;
                    return Ok(true);
                }
                Err(err) => {
                    tracing::debug!(order = id, step = name, error = %err, "compensation: retrying");
                    retry += 1;
                    if patience.is_some_and(|p| retry >= p) {
                        return Ok(false);
                    }
                    tokio::time::sleep(self.backoff.delay(retry - 1)).await;
                }
            }
        }
    }

    /// Best effort, once per drive: a failure leaves the step for recovery
    /// to try again later, and never changes the order's outcome.
    #[tracing::instrument(name = "saga.notify", skip_all, fields(order = o.id))]
    async fn notify(&self, o: &Order) -> Result<bool, SagaError> {
        let mut problems = Vec::new();
        if o.status == "CONFIRMED" {
            let n = NewNotification {
                order_id: o.id,
                kind: "order_confirmed".into(),
            };
            let r: Result<Notification, _> = self
                .notifications
                .post("/notifications", &n, None, true)
                .await;
            if let Err(e) = r {
                problems.push(e.to_string());
            }
        }
        let outcome = OrderOutcome {
            order_id: o.id,
            status: o.status.clone(),
            product_id: o.product_id,
            quantity: o.quantity,
            total_cents: o.total_cents,
        };
        let sent = self
            .analytics
            .send(
                axum::http::Method::POST,
                "/events/orders",
                json_headers(),
                serde_json::to_vec(&outcome).ok().map(Into::into),
                true,
            )
            .await;
        if let Err(e) = sent {
            problems.push(e.to_string());
        }
        if problems.is_empty() {
            let e = (log::NOTIFY, "execute", "succeeded", None);
            store::advance(&self.db, o.id, step::DONE, None, None, e).await?;
        } else {
            let detail = problems.join("; ");
            store::append(
                &self.db,
                o.id,
                log::NOTIFY,
                "execute",
                "failed",
                Some(&detail),
            )
            .await?;
        }
        Ok(true)
    }
}

fn json_headers() -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    h
}
