//! analytics: order counts, success rate, revenue and top products, from
//! order outcomes. Each order counts once however often its outcome arrives.
//!
//! - `POST /events/orders {"order_id","status","product_id","quantity","total_cents"}`
//!   → 201 recorded, 200 already recorded.
//! - `GET /stats`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db};
use crate::error::{ApiError, Json};
use crate::service::{Built, ServiceContext, StartError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/analytics");

/// How many products `/stats` ranks.
const TOP_PRODUCTS: i64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrderOutcome {
    pub order_id: i64,
    pub status: String,
    pub product_id: i64,
    pub quantity: i64,
    pub total_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq)]
pub struct TopProduct {
    pub product_id: i64,
    pub quantity: i64,
    pub revenue_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub orders: i64,
    pub confirmed: i64,
    pub cancelled: i64,
    /// confirmed / orders, 0 when there are none.
    pub success_rate: f64,
    pub revenue_cents: i64,
    pub top_products: Vec<TopProduct>,
}

pub fn app(db: Db) -> Router {
    Router::new()
        .route("/events/orders", post(record))
        .route("/stats", get(stats))
        .with_state(db)
}

pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    let db = ctx.db(&MIGRATOR).await?;
    let mut built = Built::new(app(db.clone()));
    crate::services::sinks_events::start(ctx, &db)?;
    built.db = Some(db);
    Ok(built)
}

async fn record(State(db): State<Db>, Json(o): Json<OrderOutcome>) -> Result<StatusCode, ApiError> {
    if o.status != "CONFIRMED" && o.status != "CANCELLED" {
        return Err(ApiError::bad_request(
            "status must be CONFIRMED or CANCELLED",
        ));
    }
    let r = sqlx::query(
        "INSERT INTO order_outcomes (order_id, status, product_id, quantity, total_cents, at)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(o.order_id)
    .bind(&o.status)
    .bind(o.product_id)
    .bind(o.quantity)
    .bind(o.total_cents)
    .bind(now_ms())
    .execute(&mut *db.write.acquire().await?)
    .await?;
    Ok(if r.rows_affected() > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

async fn stats(State(db): State<Db>) -> Result<axum::Json<Stats>, ApiError> {
    let (orders, confirmed, revenue_cents): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(status = 'CONFIRMED'), 0),
                COALESCE(SUM(CASE WHEN status = 'CONFIRMED' THEN total_cents END), 0)
         FROM order_outcomes",
    )
    .fetch_one(&db.read)
    .await?;
    let top_products = sqlx::query_as::<_, TopProduct>(
        "SELECT product_id, SUM(quantity) AS quantity, SUM(total_cents) AS revenue_cents
         FROM order_outcomes WHERE status = 'CONFIRMED'
         GROUP BY product_id ORDER BY quantity DESC, product_id LIMIT ?",
    )
    .bind(TOP_PRODUCTS)
    .fetch_all(&db.read)
    .await?;
    Ok(axum::Json(Stats {
        orders,
        confirmed,
        cancelled: orders - confirmed,
        success_rate: if orders > 0 {
            confirmed as f64 / orders as f64
        } else {
            0.0
        },
        revenue_cents,
        top_products,
    }))
}
