//! catalog on the event bus: reserves stock when an order is created
//! (`StockReserved` or `StockReservationFailed` through its outbox), commits
//! the reservation when the order is confirmed, releases it when cancelled.

use std::sync::Arc;

use futures::future::BoxFuture;
use gauntlet_events::{
    outbox, processed, Delivery, Event, EventProducer, EventType, HandleError, Handler,
};
use sqlx::SqliteConnection;
use tokio::sync::Notify;

use crate::db::Db;
use crate::events::{payload, OrderFacts, INVENTORY};
use crate::service::{Built, ServiceContext, StartError};
use crate::services::catalog::{commit_in, release_in, reserve_in, ReserveRequest};

const GROUP: &str = "catalog";

struct CatalogHandler {
    db: Db,
    relay: Arc<Notify>,
}

pub fn start(
    ctx: &ServiceContext,
    db: &Db,
    producer: EventProducer,
    built: &mut Built,
) -> Result<(), StartError> {
    let notify = ctx.relay(db, producer, built);
    let handler = Arc::new(CatalogHandler {
        db: db.clone(),
        relay: notify,
    });
    ctx.consume(handler)
}

impl Handler for CatalogHandler {
    fn handle<'a>(&'a self, msg: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let event = msg.event()?;
            match event.event_type {
                EventType::OrderCreated => self.reserve(&event).await,
                EventType::OrderConfirmed => self.settle(&event, true).await,
                EventType::OrderCancelled => self.settle(&event, false).await,
                _ => Ok(()),
            }
        })
    }
}

impl CatalogHandler {
    /// Reserves the order's stock and announces the outcome, in a
    /// transaction shared with whatever else this database has queued.
    async fn reserve(&self, event: &Event) -> Result<(), HandleError> {
        let facts: OrderFacts = payload(event)?;
        let announced = self
            .db
            .write
            .transact((event.clone(), facts), |(event, facts), conn| {
                Box::pin(reserve(conn, event, facts))
            })
            .await?;
        if announced {
            self.relay.notify_one();
        }
        Ok(())
    }

    /// Commits (confirmed) or releases (cancelled) the order's reservation.
    async fn settle(&self, event: &Event, confirmed: bool) -> Result<(), HandleError> {
        self.db
            .write
            .transact(event.clone(), move |event, conn| {
                Box::pin(settle(conn, event, confirmed))
            })
            .await
    }
}

/// Reserves stock for `event`'s order unless it was seen before; true if
/// an outcome was queued in the outbox.
async fn reserve(
    conn: &mut SqliteConnection,
    event: &Event,
    facts: &OrderFacts,
) -> Result<bool, HandleError> {
    if !processed::first_time(conn, &event.event_id.to_string(), GROUP).await? {
        return Ok(false);
    }
    let req = ReserveRequest {
        order_id: event.order_id,
        product_id: facts.product_id,
        quantity: facts.quantity,
    };
    let next = match reserve_in(conn, &req).await {
        Ok(_) => Event::new(
            EventType::StockReserved,
            event.order_id,
            serde_json::to_value(facts).unwrap_or_default(),
        ),
        Err(e) if e.status.is_client_error() => Event::new(
            EventType::StockReservationFailed,
            event.order_id,
            serde_json::to_value(OrderFacts {
                reason: Some(e.body.error),
                ..facts.clone()
            })
            .unwrap_or_default(),
        ),
        Err(e) => return Err(crate::events::api_error(e)),
    };
    outbox::enqueue(conn, INVENTORY, &next.key(), &next)
        .await
        .map_err(HandleError::transient)?;
    Ok(true)
}

async fn settle(
    conn: &mut SqliteConnection,
    event: &Event,
    confirmed: bool,
) -> Result<(), HandleError> {
    if !processed::first_time(conn, &event.event_id.to_string(), GROUP).await? {
        return Ok(());
    }
    let result = if confirmed {
        commit_in(conn, event.order_id).await
    } else {
        release_in(conn, event.order_id).await
    };
    if let Err(e) = result {
        if e.status.is_server_error() {
            return Err(crate::events::api_error(e));
        }
        // Nothing to commit or release is not worth a dead letter, but
        // it is worth a line in the log.
        tracing::warn!(order = event.order_id, error = %e.body.error, "catalog: reservation not settled");
    }
    Ok(())
}
