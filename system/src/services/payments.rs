//! payments: charges and refunds, in front of the external provider.
//!
//! Never charges an order twice: an order has one row here, keyed by the
//! order's idempotency key, and that same key travels with every attempt to
//! the provider, including a retry after a reply was lost. Refunds are keyed
//! the same way, so both are safe to repeat.
//!
//! - `POST /charges {"order_id","amount_cents"}` (`Idempotency-Key`
//!   optional, default `order-<id>`): 201/200 `CHARGED`; 402 declined; 409
//!   already refunded; 503 provider unavailable (the row stays `PENDING`
//!   and a retry with the key picks it up).
//! - `POST /refunds {"order_id"}`: 200 `REFUNDED` or `VOIDED` (nothing was
//!   charged; a late charge for the order is then refused).
//! - `GET /charges/{order_id}`, `GET /charges`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;

use crate::client::{ClientError, ServiceClient, IDEMPOTENCY_KEY};
use crate::config::Service;
use crate::db::{now_ms, Db};
use crate::error::{ApiError, Json, Path};
use crate::service::{Built, ServiceContext, StartError};
use crate::services::provider::{ChargeReply, ChargeRequest, ProviderCharge, RefundRequest};
use crate::telemetry::{inc, KindCounter};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/payments");

#[derive(Clone)]
pub struct PaymentsState {
    pub(crate) db: Db,
    provider: ServiceClient,
    events: KindCounter,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq)]
pub struct Charge {
    pub order_id: i64,
    pub idempotency_key: String,
    pub amount_cents: i64,
    pub status: String,
    pub provider_charge_id: Option<i64>,
    pub attempts: i64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCharge {
    pub order_id: i64,
    pub amount_cents: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRefund {
    pub order_id: i64,
}

/// The idempotency key of an order's payment when the caller names none.
pub fn order_key(order_id: i64) -> String {
    format!("order-{order_id}")
}

const COLUMNS: &str =
    "order_id, idempotency_key, amount_cents, status, provider_charge_id, attempts, error";

pub fn app(state: PaymentsState) -> Router {
    Router::new()
        .route("/charges", post(charge).get(list))
        .route("/charges/{order_id}", get(fetch))
        .route("/refunds", post(refund))
        .with_state(state)
}

pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    let db = ctx.db(&MIGRATOR).await?;
    let state = PaymentsState {
        db: db.clone(),
        provider: ctx.client(Service::Provider)?,
        events: ctx
            .telemetry
            .counter("payments_events", "Charges and refunds by outcome"),
    };
    let mut built = Built::new(app(state.clone()));
    if let Some(producer) = ctx.producer()? {
        crate::services::payments_events::start(ctx, state, producer, &mut built)?;
    }
    built.db = Some(db);
    Ok(built)
}

async fn load(db: &Db, order_id: i64) -> Result<Option<Charge>, sqlx::Error> {
    load_in(&mut *db.write.acquire().await?, order_id).await
}

/// Moves a `PENDING` charge on; never overwrites a refund that got there first.
async fn settle(
    db: &Db,
    order_id: i64,
    status: &'static str,
    provider_charge_id: Option<i64>,
    error: Option<&'static str>,
) -> Result<Option<Charge>, sqlx::Error> {
    let update = (order_id, status, provider_charge_id, error);
    db.write
        .transact(update, |&(order_id, status, provider_charge_id, error), conn| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE charges SET status = ?, provider_charge_id = COALESCE(?, provider_charge_id),
                     error = ?, updated_at = ? WHERE order_id = ? AND status = 'PENDING'",
                )
                .bind(status)
                .bind(provider_charge_id)
                .bind(error)
                .bind(now_ms())
                .bind(order_id)
                .execute(&mut *conn)
                .await?;
                load_in(conn, order_id).await
            })
        })
        .await
}

async fn load_in(
    conn: &mut SqliteConnection,
    order_id: i64,
) -> Result<Option<Charge>, sqlx::Error> {
    sqlx::query_as::<_, Charge>(&format!("SELECT {COLUMNS} FROM charges WHERE order_id = ?"))
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await
}

async fn charge(
    State(st): State<PaymentsState>,
    headers: HeaderMap,
    Json(req): Json<NewCharge>,
) -> Result<(StatusCode, Json<Charge>), ApiError> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| order_key(req.order_id));
    let (status, charge) = charge_order(&st, &req, &key).await?;
    Ok((status, Json(charge)))
}

/// Charges an order once, whatever happens to replies and retries: the
/// order's row here and `key` at the provider make every repeat a replay.
pub async fn charge_order(
    st: &PaymentsState,
    req: &NewCharge,
    key: &str,
) -> Result<(StatusCode, Charge), ApiError> {
    if req.amount_cents <= 0 {
        return Err(ApiError::bad_request("amount_cents must be > 0"));
    }
    // The row (PENDING unless this order was seen before) and, for a
    // charge still to make, one more attempt on it, in one transaction.
    let row = st
        .db
        .write
        .transact(
            (req.order_id, key.to_string(), req.amount_cents),
            |(order_id, key, amount_cents), conn| {
                Box::pin(async move {
                    let now = now_ms();
                    sqlx::query(
                        "INSERT INTO charges (order_id, idempotency_key, amount_cents, status, created_at, updated_at)
                         VALUES (?, ?, ?, 'PENDING', ?, ?) ON CONFLICT (order_id) DO NOTHING",
                    )
                    .bind(order_id)
                    .bind(key)
                    .bind(amount_cents)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    let row = load_in(conn, *order_id).await?;
                    if let Some(row) = &row {
                        if row.idempotency_key == *key && !is_settled(&row.status) {
                            sqlx::query("UPDATE charges SET attempts = attempts + 1 WHERE order_id = ?")
                                .bind(order_id)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok::<_, sqlx::Error>(row)
                })
            },
        )
        .await?
        .ok_or_else(|| ApiError::internal("charge row vanished"))?;
    if row.idempotency_key != key {
        return Err(ApiError::conflict(format!(
            "order {} is already being paid under another idempotency key",
            req.order_id
        )));
    }
    match row.status.as_str() {
        "CHARGED" => return Ok((StatusCode::OK, row)),
        "FAILED" => return Err(declined(row)),
        "REFUNDED" | "VOIDED" => {
            return Err(ApiError::conflict(format!(
                "payment for order {} was already {}",
                req.order_id,
                row.status.to_lowercase()
            ))
            .with_detail(serde_json::to_value(&row).unwrap_or_default()))
        }
        _ => {}
    }
    let body = ChargeRequest {
        order_id: Some(req.order_id),
        amount_cents: row.amount_cents,
    };
    let result: Result<ChargeReply, ClientError> =
        st.provider.post("/charges", &body, Some(key), true).await;
    match result {
        Ok(reply) => {
            inc(&st.events, "charged");
            let row = settle(&st.db, req.order_id, "CHARGED", Some(reply.charge.id), None)
                .await?
                .ok_or_else(|| ApiError::internal("charge row vanished"))?;
            if row.status == "CHARGED" {
                Ok((StatusCode::CREATED, row))
            } else {
                // A refund overtook us while the provider was answering;
                // the refund already reversed the charge at the provider.
                Err(ApiError::conflict(format!(
                    "payment for order {} was {} meanwhile",
                    req.order_id,
                    row.status.to_lowercase()
                )))
            }
        }
        Err(e) if e.status() == Some(StatusCode::PAYMENT_REQUIRED) => {
            inc(&st.events, "declined");
            let row = settle(
                &st.db,
                req.order_id,
                "FAILED",
                None,
                Some("payment declined"),
            )
            .await?
            .ok_or_else(|| ApiError::internal("charge row vanished"))?;
            Err(declined(row))
        }
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
            inc(&st.events, "voided");
            settle(
                &st.db,
                req.order_id,
                "VOIDED",
                None,
                Some("voided at provider"),
            )
            .await?;
            Err(ApiError::conflict(format!(
                "payment for order {} was voided",
                req.order_id
            )))
        }
        Err(e) => {
            inc(&st.events, "provider_unavailable");
            sqlx::query("UPDATE charges SET error = ? WHERE order_id = ?")
                .bind(e.to_string())
                .bind(req.order_id)
                .execute(&mut *st.db.write.acquire().await?)
                .await?;
            Err(ApiError::unavailable("payment provider unavailable").with_detail(e.to_string()))
        }
    }
}

/// A charge past PENDING: nothing more to attempt.
fn is_settled(status: &str) -> bool {
    matches!(status, "CHARGED" | "FAILED" | "REFUNDED" | "VOIDED")
}

fn declined(row: Charge) -> ApiError {
    ApiError::new(StatusCode::PAYMENT_REQUIRED, "payment declined")
        .with_detail(serde_json::to_value(&row).unwrap_or_default())
}

async fn refund(
    State(st): State<PaymentsState>,
    Json(req): Json<NewRefund>,
) -> Result<Json<Charge>, ApiError> {
    refund_order(&st, req.order_id).await.map(Json)
}

/// Gives an order's payment back, or voids it if nothing was charged, so
/// no charge under its key can stand afterwards. Idempotent.
pub async fn refund_order(st: &PaymentsState, order_id: i64) -> Result<Charge, ApiError> {
    let req = NewRefund { order_id };
    let now = now_ms();
    // A refund before any charge leaves a VOIDED row, so the charge, if it
    // ever arrives, is refused.
    let tombstone = sqlx::query(
        "INSERT INTO charges (order_id, idempotency_key, amount_cents, status, created_at, updated_at)
         VALUES (?, ?, 0, 'VOIDED', ?, ?) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(req.order_id)
    .bind(order_key(req.order_id))
    .bind(now)
    .bind(now)
    .execute(&mut *st.db.write.acquire().await?)
    .await?;
    let row = load(&st.db, req.order_id)
        .await?
        .ok_or_else(|| ApiError::internal("charge row vanished"))?;
    if tombstone.rows_affected() > 0 {
        inc(&st.events, "voided");
        return Ok(row);
    }
    if matches!(row.status.as_str(), "REFUNDED" | "VOIDED") {
        return Ok(row);
    }
    // CHARGED, PENDING (a charge may be in flight or its reply lost) or
    // FAILED: the provider's word decides what there is to give back.
    let at_provider: ProviderCharge = st
        .provider
        .post(
            "/refunds",
            &RefundRequest {
                idempotency_key: row.idempotency_key.clone(),
            },
            Some(&row.idempotency_key),
            true,
        )
        .await?;
    let status = if at_provider.status == "REFUNDED" {
        "REFUNDED"
    } else {
        "VOIDED"
    };
    inc(&st.events, &status.to_lowercase());
    sqlx::query(
        "UPDATE charges SET status = ?, updated_at = ? WHERE order_id = ? AND status NOT IN ('REFUNDED', 'VOIDED')",
    )
    .bind(status)
    .bind(now_ms())
    .bind(req.order_id)
    .execute(&mut *st.db.write.acquire().await?)
    .await?;
    load(&st.db, req.order_id)
        .await?
        .ok_or_else(|| ApiError::internal("charge row vanished"))
}

async fn fetch(
    State(st): State<PaymentsState>,
    Path(order_id): Path<i64>,
) -> Result<Json<Charge>, ApiError> {
    load(&st.db, order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("charge for order", order_id))
}

async fn list(State(st): State<PaymentsState>) -> Result<Json<Vec<Charge>>, ApiError> {
    let rows =
        sqlx::query_as::<_, Charge>(&format!("SELECT {COLUMNS} FROM charges ORDER BY order_id"))
            .fetch_all(&st.db.read)
            .await?;
    Ok(Json(rows))
}
