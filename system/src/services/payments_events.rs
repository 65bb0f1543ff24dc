//! payments on the event bus: charges an order once its stock is reserved,
//! and announces `PaymentCompleted` or `PaymentFailed` through its outbox.
//! A payment that fails is voided first (the refund call), so no charge
//! under the order's key can stand once the failure is announced.

use std::sync::Arc;

use futures::future::BoxFuture;
use gauntlet_events::{
    outbox, processed, Delivery, Event, EventProducer, EventType, HandleError, Handler,
};
use tokio::sync::Notify;

use crate::events::{api_error, db_error, payload, OrderFacts, PAYMENTS};
use crate::service::{Built, ServiceContext, StartError};
use crate::services::payments::{charge_order, order_key, refund_order, NewCharge, PaymentsState};

const GROUP: &str = "payments";

struct PaymentsHandler {
    state: PaymentsState,
    relay: Arc<Notify>,
}

pub fn start(
    ctx: &ServiceContext,
    state: PaymentsState,
    producer: EventProducer,
    built: &mut Built,
) -> Result<(), StartError> {
    let notify = ctx.relay(&state.db, producer, built);
    let handler = Arc::new(PaymentsHandler {
        state,
        relay: notify,
    });
    ctx.consume(handler)
}

impl Handler for PaymentsHandler {
    fn handle<'a>(&'a self, msg: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let event = msg.event()?;
            match event.event_type {
                EventType::StockReserved => self.charge(&event).await,
                _ => Ok(()),
            }
        })
    }
}

impl PaymentsHandler {
    async fn charge(&self, event: &Event) -> Result<(), HandleError> {
        let facts: OrderFacts = payload(event)?;
        let db = &self.state.db;
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM processed_events WHERE event_id = ? AND consumer = ?",
        )
        .bind(event.event_id.to_string())
        .bind(GROUP)
        // A read beside the writer: a charge recorded is committed with
        // its mark, and the mark is checked again where it is written.
        .fetch_optional(&db.read)
        .await
        .map_err(db_error)?;
        if seen.is_some() {
            return Ok(());
        }
        // The HTTP call to the provider happens outside any transaction:
        // the charge is idempotent per order, so a redelivery repeats it
        // harmlessly before the outcome is recorded once below.
        let req = NewCharge {
            order_id: event.order_id,
            amount_cents: facts.total_cents,
        };
        let next = match charge_order(&self.state, &req, &order_key(event.order_id)).await {
            Ok(_) => Event::new(
                EventType::PaymentCompleted,
                event.order_id,
                serde_json::to_value(&facts).unwrap_or_default(),
            ),
            Err(e) if e.status.is_server_error() && e.status.as_u16() != 503 => {
                return Err(api_error(e));
            }
            Err(e) => {
                // Declined, voided, or the provider out of reach after the
                // client's retries: void the key, then say it failed. If
                // even the void cannot reach the provider, retry later.
                refund_order(&self.state, event.order_id)
                    .await
                    .map_err(|v| {
                        HandleError::transient(format!("cannot void: {}", v.body.error))
                    })?;
                Event::new(
                    EventType::PaymentFailed,
                    event.order_id,
                    serde_json::to_value(OrderFacts {
                        reason: Some(e.body.error),
                        ..facts
                    })
                    .unwrap_or_default(),
                )
            }
        };
        let announced = db
            .write
            .transact(
                (event.event_id.to_string(), next),
                |(event_id, next), conn| {
                    Box::pin(async move {
                        if !processed::first_time(conn, event_id, GROUP).await? {
                            return Ok(false);
                        }
                        outbox::enqueue(conn, PAYMENTS, &next.key(), next)
                            .await
                            .map_err(HandleError::transient)?;
                        Ok::<_, HandleError>(true)
                    })
                },
            )
            .await?;
        if announced {
            self.relay.notify_one();
        }
        Ok(())
    }
}
