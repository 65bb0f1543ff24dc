//! orders on the event bus: the choreographed saga of an async order.
//!
//! - placing one writes the order (PENDING) and `OrderCreated` to the
//!   outbox in one transaction;
//! - `StockReservationFailed` or `PaymentFailed` cancel it, and
//!   `PaymentCompleted` confirms it, each announcing `OrderCancelled` /
//!   `OrderConfirmed` (catalog then releases or commits the stock,
//!   notifications and analytics take note);
//! - every event that moved it is written to its saga log, so
//!   `GET /orders/{id}` shows them.

use std::sync::Arc;

use futures::future::BoxFuture;
use gauntlet_events::{
    outbox, processed, Delivery, Event, EventProducer, EventType, HandleError, Handler,
};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::Notify;

use super::store::{self, Order};
use crate::db::{now_ms, Db};
use crate::error::ApiError;
use crate::events::{db_error, payload, OrderFacts, ORDERS};
use crate::service::{Built, ServiceContext, StartError};
use crate::telemetry::{inc, KindCounter};

const GROUP: &str = "orders";

/// What placing an async order needs.
#[derive(Clone)]
pub struct AsyncOrders {
    relay: Arc<Notify>,
}

struct OrdersHandler {
    db: Db,
    relay: Arc<Notify>,
    outcomes: KindCounter,
    settle: Histogram,
}

pub fn start(
    ctx: &ServiceContext,
    db: &Db,
    producer: EventProducer,
    outcomes: KindCounter,
    built: &mut Built,
) -> Result<AsyncOrders, StartError> {
    let notify = ctx.relay(db, producer, built);
    let settle = ctx.telemetry.histogram(
        "async_order_settle_seconds",
        "Time from an async order accepted to CONFIRMED or CANCELLED",
    );
    let handler = Arc::new(OrdersHandler {
        db: db.clone(),
        relay: notify.clone(),
        outcomes,
        settle,
    });
    ctx.consume(handler)?;
    Ok(AsyncOrders { relay: notify })
}

impl AsyncOrders {
    /// Writes the order and its `OrderCreated` event in one transaction;
    /// `Ok(None)` when the idempotency key is already taken.
    pub async fn place(
        &self,
        db: &Db,
        new: &store::NewOrder<'_>,
    ) -> Result<Option<Order>, ApiError> {
        let mut tx = db.write.begin().await?;
        let Some(order) = store::insert_in(&mut tx, new, store::step::EVENTS).await? else {
            return Ok(None);
        };
        let facts = OrderFacts {
            user_id: new.user_id,
            product_id: new.product_id,
            quantity: new.quantity,
            total_cents: new.total_cents,
            reason: None,
        };
        let event = Event::new(
            EventType::OrderCreated,
            order.id,
            serde_json::to_value(&facts).unwrap_or_default(),
        );
        outbox::enqueue(&mut tx, ORDERS, &event.key(), &event)
            .await
            .map_err(ApiError::internal)?;
        store::append_in(
            &mut tx,
            order.id,
            "OrderCreated",
            "execute",
            "succeeded",
            Some("published through the outbox"),
        )
        .await?;
        tx.commit().await?;
        self.relay.notify_one();
        Ok(Some(order))
    }
}

impl Handler for OrdersHandler {
    fn handle<'a>(&'a self, msg: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let event = msg.event()?;
            match event.event_type {
                EventType::StockReserved => self.note(&event).await,
                EventType::StockReservationFailed | EventType::PaymentFailed => {
                    self.settle(&event, false).await
                }
                EventType::PaymentCompleted => self.settle(&event, true).await,
                _ => Ok(()),
            }
        })
    }
}

impl OrdersHandler {
    /// Logs an event that moves nothing yet.
    async fn note(&self, event: &Event) -> Result<(), HandleError> {
        let mut tx = self.db.write.begin().await.map_err(db_error)?;
        if processed::first_time(&mut tx, &event.event_id.to_string(), GROUP)
            .await
            .map_err(db_error)?
        {
            store::append_in(
                &mut tx,
                event.order_id,
                event.event_type.as_str(),
                "execute",
                "succeeded",
                None,
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// Moves a PENDING order to CONFIRMED or CANCELLED and announces it.
    async fn settle(&self, event: &Event, confirmed: bool) -> Result<(), HandleError> {
        let facts: OrderFacts = payload(event)?;
        let mut tx = self.db.write.begin().await.map_err(db_error)?;
        if !processed::first_time(&mut tx, &event.event_id.to_string(), GROUP)
            .await
            .map_err(db_error)?
        {
            return Ok(());
        }
        let order = store::get_in(&mut tx, event.order_id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| HandleError::permanent(format!("order {} not found", event.order_id)))?;
        let detail = facts.reason.clone();
        store::append_in(
            &mut tx,
            order.id,
            event.event_type.as_str(),
            "execute",
            "succeeded",
            detail.as_deref(),
        )
        .await
        .map_err(db_error)?;
        if order.status != "PENDING" {
            // Already settled (a duplicate under another event id, or a
            // late event): record it, change nothing.
            tx.commit().await.map_err(db_error)?;
            return Ok(());
        }
        let (status, next) = if confirmed {
            ("CONFIRMED", EventType::OrderConfirmed)
        } else {
            ("CANCELLED", EventType::OrderCancelled)
        };
        let now = now_ms();
        sqlx::query(
            "UPDATE orders SET status = ?, saga_step = 'done', cancel_reason = ?, updated_at = ?,
             settled_at = ? WHERE id = ? AND status = 'PENDING'",
        )
        .bind(status)
        .bind(if confirmed {
            None
        } else {
            facts.reason.clone()
        })
        .bind(now)
        .bind(now)
        .bind(order.id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let out = Event::new(
            next,
            order.id,
            serde_json::to_value(&facts).unwrap_or_default(),
        );
        outbox::enqueue(&mut tx, ORDERS, &out.key(), &out)
            .await
            .map_err(HandleError::transient)?;
        let created: i64 = sqlx::query_scalar("SELECT created_at FROM orders WHERE id = ?")
            .bind(order.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        self.relay.notify_one();
        self.settle.observe((now - created).max(0) as f64 / 1000.0);
        inc(
            &self.outcomes,
            if confirmed {
                "async_confirmed"
            } else {
                "async_cancelled"
            },
        );
        Ok(())
    }
}
