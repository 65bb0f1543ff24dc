//! provider: a simulated *external* payment gateway, the part of the world
//! the system does not own. Its behaviour is set at run time (and seeded):
//! `PUT /admin/faults {"failure_rate","decline_rate","latency_ms","jitter_ms","lost_reply_rate"}`.
//!
//! - `POST /charges {"order_id","amount_cents"}` with an `Idempotency-Key`
//!   header (required): 201 charged; 200 a replay of a key already charged
//!   (never charged twice); 402 declined; 409 key voided by an earlier
//!   refund; 503 unavailable. With `lost_reply_rate` the charge is made and
//!   the connection then dropped without an answer: the real-world trap
//!   that makes a naive retry charge twice.
//! - `POST /refunds {"idempotency_key"}`: refunds a charge, or voids a key
//!   never charged so a late charge under it is refused.
//! - `GET /charges[?order_id=]`, `GET /ledger`: what was really charged.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;

use crate::client::IDEMPOTENCY_KEY;
use crate::config::ProviderFaults;
use crate::db::{now_ms, Db};
use crate::error::{ApiError, Json, Query};
use crate::server::ConnectionAbort;
use crate::service::{Built, ServiceContext, StartError};
use crate::telemetry::{inc, KindCounter};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/provider");

#[derive(Clone)]
pub struct ProviderState {
    db: Db,
    faults: Arc<Mutex<ProviderFaults>>,
    rng: Arc<Mutex<StdRng>>,
    events: KindCounter,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq)]
pub struct ProviderCharge {
    pub id: i64,
    pub idempotency_key: String,
    pub order_id: Option<i64>,
    pub amount_cents: i64,
    pub status: String,
    pub requests: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    #[serde(default)]
    pub order_id: Option<i64>,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChargeReply {
    #[serde(flatten)]
    pub charge: ProviderCharge,
    /// True when this key had been charged before: nothing new was charged.
    pub replayed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    pub idempotency_key: String,
}

/// The provider's books, for the harness's invariants.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ledger {
    pub charges: i64,
    pub charged_cents: i64,
    pub refunded_cents: i64,
    pub net_cents: i64,
    pub voided: i64,
    /// Orders charged under more than one key: double charges.
    pub orders_charged_twice: Vec<i64>,
}

/// Random draws for one request, taken together under one lock.
struct Dice {
    fail: f64,
    decline: f64,
    lose: f64,
    jitter: f64,
}

impl ProviderState {
    fn roll(&self) -> Dice {
        let mut rng = self.rng.lock();
        Dice {
            fail: rng.gen(),
            decline: rng.gen(),
            lose: rng.gen(),
            jitter: rng.gen_range(-1.0..=1.0),
        }
    }
}

pub fn app(state: ProviderState) -> Router {
    Router::new()
        .route("/charges", post(charge).get(charges))
        .route("/refunds", post(refund))
        .route("/ledger", get(ledger))
        .route("/admin/faults", get(get_faults).put(set_faults))
        .with_state(state)
}

pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    ctx.config
        .provider
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let db = ctx.db(&MIGRATOR).await?;
    let state = ProviderState {
        db: db.clone(),
        faults: Arc::new(Mutex::new(ctx.config.provider.clone())),
        rng: Arc::new(Mutex::new(StdRng::seed_from_u64(
            ctx.config.seed_for("provider"),
        ))),
        events: ctx
            .telemetry
            .counter("provider_events", "Provider outcomes by kind"),
    };
    let mut built = Built::new(app(state));
    built.db = Some(db);
    Ok(built)
}

async fn charge(
    State(st): State<ProviderState>,
    Extension(abort): Extension<ConnectionAbort>,
    headers: HeaderMap,
    Json(req): Json<ChargeRequest>,
) -> Result<(StatusCode, Json<ChargeReply>), ApiError> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad_request("the Idempotency-Key header is required"))?
        .to_string();
    if req.amount_cents <= 0 {
        return Err(ApiError::bad_request("amount_cents must be > 0"));
    }
    let faults = st.faults.lock().clone();
    let dice = st.roll();
    if dice.fail < faults.failure_rate {
        inc(&st.events, "unavailable");
        return Err(ApiError::unavailable("provider unavailable"));
    }
    let delay = faults.latency_ms as f64 + dice.jitter * faults.jitter_ms as f64;
    if delay > 0.0 {
        tokio::time::sleep(Duration::from_micros((delay * 1000.0) as u64)).await;
    }

    let declines = dice.decline < faults.decline_rate;
    let outcome = st
        .db
        .write
        .transact(
            (key.clone(), req.order_id, req.amount_cents, declines),
            |(key, order_id, amount_cents, declines), conn| {
                Box::pin(charge_in(conn, key, *order_id, *amount_cents, *declines))
            },
        )
        .await?;
    let charge = match outcome {
        Charged::Refused => {
            inc(&st.events, "refused_voided");
            return Err(ApiError::conflict(format!(
                "key {key} was voided by a refund"
            )));
        }
        Charged::Replayed(existing) => {
            inc(&st.events, "replayed");
            let reply = ChargeReply {
                charge: existing,
                replayed: true,
            };
            return Ok((StatusCode::OK, Json(reply)));
        }
        Charged::Declined => {
            inc(&st.events, "declined");
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "payment declined",
            ));
        }
        Charged::New(charge) => charge,
    };
    inc(&st.events, "charged");
    if dice.lose < faults.lost_reply_rate {
        inc(&st.events, "reply_lost");
        tracing::debug!(%key, "provider: charged, dropping the reply");
        abort.abort();
        // The connection is gone; this response is never written.
        std::future::pending::<()>().await;
    }
    Ok((
        StatusCode::CREATED,
        Json(ChargeReply {
            charge,
            replayed: false,
        }),
    ))
}

/// What a charge request came to at the provider.
enum Charged {
    New(ProviderCharge),
    /// The key was charged before: the same charge, asked once more.
    Replayed(ProviderCharge),
    /// The key was voided by a refund first.
    Refused,
    Declined,
}

/// A charge under `key`, or what an earlier request with it left.
async fn charge_in(
    conn: &mut SqliteConnection,
    key: &str,
    order_id: Option<i64>,
    amount_cents: i64,
    declines: bool,
) -> Result<Charged, sqlx::Error> {
    let existing = sqlx::query_as::<_, ProviderCharge>(
        "SELECT id, idempotency_key, order_id, amount_cents, status, requests FROM charges
         WHERE idempotency_key = ?",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(mut existing) = existing {
        if existing.status == "VOIDED" {
            return Ok(Charged::Refused);
        }
        sqlx::query("UPDATE charges SET requests = requests + 1, updated_at = ? WHERE id = ?")
            .bind(now_ms())
            .bind(existing.id)
            .execute(&mut *conn)
            .await?;
        existing.requests += 1;
        return Ok(Charged::Replayed(existing));
    }
    if declines {
        return Ok(Charged::Declined);
    }
    let now = now_ms();
    sqlx::query_as::<_, ProviderCharge>(
        "INSERT INTO charges (idempotency_key, order_id, amount_cents, status, created_at, updated_at)
         VALUES (?, ?, ?, 'CHARGED', ?, ?)
         RETURNING id, idempotency_key, order_id, amount_cents, status, requests",
    )
    .bind(key)
    .bind(order_id)
    .bind(amount_cents)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .map(Charged::New)
}

async fn refund(
    State(st): State<ProviderState>,
    Json(req): Json<RefundRequest>,
) -> Result<Json<ProviderCharge>, ApiError> {
    let now = now_ms();
    let mut tx = st.db.write.begin().await?;
    sqlx::query(
        "INSERT INTO charges (idempotency_key, order_id, amount_cents, status, created_at, updated_at)
         VALUES (?, NULL, 0, 'VOIDED', ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&req.idempotency_key)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let updated = sqlx::query(
        "UPDATE charges SET status = 'REFUNDED', updated_at = ?
         WHERE idempotency_key = ? AND status = 'CHARGED'",
    )
    .bind(now)
    .bind(&req.idempotency_key)
    .execute(&mut *tx)
    .await?;
    let charge = sqlx::query_as::<_, ProviderCharge>(
        "SELECT id, idempotency_key, order_id, amount_cents, status, requests FROM charges
         WHERE idempotency_key = ?",
    )
    .bind(&req.idempotency_key)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if updated.rows_affected() > 0 {
        inc(&st.events, "refunded");
    }
    Ok(Json(charge))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeFilter {
    order_id: Option<i64>,
}

async fn charges(
    State(st): State<ProviderState>,
    Query(filter): Query<ChargeFilter>,
) -> Result<Json<Vec<ProviderCharge>>, ApiError> {
    let rows = sqlx::query_as::<_, ProviderCharge>(
        "SELECT id, idempotency_key, order_id, amount_cents, status, requests FROM charges
         WHERE ?1 IS NULL OR order_id = ?1 ORDER BY id",
    )
    .bind(filter.order_id)
    .fetch_all(&st.db.read)
    .await?;
    Ok(Json(rows))
}

async fn ledger(State(st): State<ProviderState>) -> Result<Json<Ledger>, ApiError> {
    let (charges, charged_cents, refunded_cents, voided): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT
            COALESCE(SUM(status IN ('CHARGED', 'REFUNDED')), 0),
            COALESCE(SUM(CASE WHEN status IN ('CHARGED', 'REFUNDED') THEN amount_cents END), 0),
            COALESCE(SUM(CASE WHEN status = 'REFUNDED' THEN amount_cents END), 0),
            COALESCE(SUM(status = 'VOIDED'), 0)
         FROM charges",
    )
    .fetch_one(&st.db.read)
    .await?;
    let orders_charged_twice: Vec<i64> = sqlx::query_scalar(
        "SELECT order_id FROM charges WHERE order_id IS NOT NULL AND status IN ('CHARGED', 'REFUNDED')
         GROUP BY order_id HAVING COUNT(*) > 1 ORDER BY order_id",
    )
    .fetch_all(&st.db.read)
    .await?;
    Ok(Json(Ledger {
        charges,
        charged_cents,
        refunded_cents,
        net_cents: charged_cents - refunded_cents,
        voided,
        orders_charged_twice,
    }))
}

async fn get_faults(State(st): State<ProviderState>) -> Json<ProviderFaults> {
    Json(st.faults.lock().clone())
}

async fn set_faults(
    State(st): State<ProviderState>,
    Json(faults): Json<ProviderFaults>,
) -> Result<Json<ProviderFaults>, ApiError> {
    faults
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    tracing::info!(?faults, "provider faults set");
    *st.faults.lock() = faults.clone();
    Ok(Json(faults))
}
