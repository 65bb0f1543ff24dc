//! notifications and analytics on the event bus: both take note of how
//! orders end (`OrderConfirmed`, `OrderCancelled` on the orders topic),
//! each in its own consumer group and its own database, recording the
//! event id in the same transaction as the effect.

use std::sync::Arc;

use futures::future::BoxFuture;
use gauntlet_events::{processed, Delivery, Event, EventType, HandleError, Handler};
use sqlx::SqliteConnection;

use crate::db::{now_ms, Db};
use crate::events::{payload, OrderFacts};
use crate::service::{ServiceContext, StartError};

#[derive(Clone, Copy)]
enum Sink {
    Notifications,
    Analytics,
}

struct SinkHandler {
    db: Db,
    sink: Sink,
}

/// Starts the consumer group of notifications or analytics, if there is a
/// broker.
pub fn start(ctx: &ServiceContext, db: &Db) -> Result<(), StartError> {
    if ctx.kafka().is_none() {
        return Ok(());
    }
    let sink = match ctx.name {
        crate::Service::Notifications => Sink::Notifications,
        _ => Sink::Analytics,
    };
    let handler = Arc::new(SinkHandler {
        db: db.clone(),
        sink,
    });
    ctx.consume(handler)
}

impl Handler for SinkHandler {
    fn handle<'a>(&'a self, msg: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let event = msg.event()?;
            let status = match event.event_type {
                EventType::OrderConfirmed => "CONFIRMED",
                EventType::OrderCancelled => "CANCELLED",
                _ => return Ok(()),
            };
            self.apply(&event, status).await
        })
    }
}

impl SinkHandler {
    async fn apply(&self, event: &Event, status: &'static str) -> Result<(), HandleError> {
        let facts: OrderFacts = payload(event)?;
        let sink = self.sink;
        self.db
            .write
            .transact((event.clone(), facts), move |(event, facts), conn| {
                Box::pin(apply(conn, sink, event, facts, status))
            })
            .await
    }
}

async fn apply(
    conn: &mut SqliteConnection,
    sink: Sink,
    event: &Event,
    facts: &OrderFacts,
    status: &str,
) -> Result<(), HandleError> {
    let group = match sink {
        Sink::Notifications => "notifications",
        Sink::Analytics => "analytics",
    };
    if !processed::first_time(conn, &event.event_id.to_string(), group).await? {
        return Ok(());
    }
    match sink {
        Sink::Notifications if status == "CONFIRMED" => {
            sqlx::query(
                "INSERT INTO notifications (order_id, kind, created_at) VALUES (?, 'order_confirmed', ?)
                 ON CONFLICT (order_id, kind) DO NOTHING",
            )
            .bind(event.order_id)
            .bind(now_ms())
            .execute(&mut *conn)
            .await?;
        }
        Sink::Notifications => {}
        Sink::Analytics => {
            sqlx::query(
                "INSERT INTO order_outcomes (order_id, status, product_id, quantity, total_cents, at)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(event.order_id)
            .bind(status)
            .bind(facts.product_id)
            .bind(facts.quantity)
            .bind(facts.total_cents)
            .bind(now_ms())
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
