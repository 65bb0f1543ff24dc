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
use sqlx::SqliteConnection;
use tokio::sync::Notify;

use super::store::{self, Order};
use crate::db::{now_ms, Db};
use crate::error::ApiError;
use crate::events::{payload, OrderFacts, ORDERS};
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
    /// Writes the order and its `OrderCreated` event in one transaction
    /// (shared with what else the database has queued); `Ok(None)` when
    /// the idempotency key is already taken.
    pub async fn place(
        &self,
        db: &Db,
        new: &store::NewOrder<'_>,
    ) -> Result<Option<Order>, ApiError> {
        let owned = Placed {
            user_id: new.user_id,
            product_id: new.product_id,
            quantity: new.quantity,
            total_cents: new.total_cents,
            flow: new.flow.to_string(),
            idempotency_key: new.idempotency_key.map(str::to_string),
        };
        let order = db
            .write
            .transact(owned, |placed, conn| Box::pin(place(conn, placed)))
            .await?;
        if order.is_some() {
            self.relay.notify_one();
        }
        Ok(order)
    }
}

/// A [`store::NewOrder`] that owns its text, to hand to the writer.
struct Placed {
    user_id: i64,
    product_id: i64,
    quantity: i64,
    total_cents: i64,
    flow: String,
    idempotency_key: Option<String>,
}

async fn place(conn: &mut SqliteConnection, placed: &Placed) -> Result<Option<Order>, ApiError> {
    let new = store::NewOrder {
        user_id: placed.user_id,
        product_id: placed.product_id,
        quantity: placed.quantity,
        total_cents: placed.total_cents,
        flow: &placed.flow,
        idempotency_key: placed.idempotency_key.as_deref(),
    };
    let Some(order) = store::insert_in(conn, &new, store::step::EVENTS).await? else {
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
    outbox::enqueue(conn, ORDERS, &event.key(), &event)
        .await
        .map_err(ApiError::internal)?;
    store::append_in(
        conn,
        order.id,
        "OrderCreated",
        "execute",
        "succeeded",
        Some("published through the outbox"),
    )
    .await?;
    Ok(Some(order))
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
        self.db
            .write
            .transact(event.clone(), |event, conn| Box::pin(note(conn, event)))
            .await
    }

    /// Moves a PENDING order to CONFIRMED or CANCELLED and announces it.
    async fn settle(&self, event: &Event, confirmed: bool) -> Result<(), HandleError> {
        let facts: OrderFacts = payload(event)?;
        let settled = self
            .db
            .write
            .transact((event.clone(), facts), move |(event, facts), conn| {
                Box::pin(settle(conn, event, facts, confirmed))
            })
            .await?;
        let Some(took_ms) = settled else {
            return Ok(());
        };
        self.relay.notify_one();
        self.settle.observe(took_ms as f64 / 1000.0);
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

async fn note(conn: &mut SqliteConnection, event: &Event) -> Result<(), HandleError> {
    if processed::first_time(conn, &event.event_id.to_string(), GROUP).await? {
        store::append_in(
            conn,
            event.order_id,
            event.event_type.as_str(),
            "execute",
            "succeeded",
            None,
        )
        .await?;
    }
    Ok(())
}

/// Settles `event`'s order unless it was seen before or is settled
/// already; the time from accepted to settled, in ms, if it settled now.
async fn settle(
    conn: &mut SqliteConnection,
    event: &Event,
    facts: &OrderFacts,
    confirmed: bool,
) -> Result<Option<i64>, HandleError> {
    if !processed::first_time(conn, &event.event_id.to_string(), GROUP).await? {
        return Ok(None);
    }
    let order = store::get_in(conn, event.order_id)
        .await?
        .ok_or_else(|| HandleError::permanent(format!("order {} not found", event.order_id)))?;
    store::append_in(
        conn,
        order.id,
        event.event_type.as_str(),
        "execute",
        "succeeded",
        facts.reason.as_deref(),
    )
    .await?;
    if order.status != "PENDING" {
        // Already settled (a duplicate under another event id, or a late
        // event): record it, change nothing.
        return Ok(None);
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
    .execute(&mut *conn)
    .await?;
    let out = Event::new(
        next,
        order.id,
        serde_json::to_value(facts).unwrap_or_default(),
    );
    outbox::enqueue(conn, ORDERS, &out.key(), &out)
        .await
        .map_err(HandleError::transient)?;
    let created: i64 = sqlx::query_scalar("SELECT created_at FROM orders WHERE id = ?")
        .bind(order.id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Some((now - created).max(0)))
}
