//! The orders database: orders and their saga log, written so that the saga
//! can be resumed from it alone after a crash.

use serde::{Deserialize, Serialize};

use sqlx::SqliteConnection;

use crate::db::{now_ms, Db};

/// The steps of a saga, as stored in `orders.saga_step`.
pub mod step {
    pub const RESERVE: &str = "reserve";
    pub const CHARGE: &str = "charge";
    pub const CONFIRM: &str = "confirm";
    pub const COMPENSATE: &str = "compensate";
    pub const NOTIFY: &str = "notify";
    pub const DONE: &str = "done";
    /// An async order waiting on events.
    pub const EVENTS: &str = "events";
}

/// Names in the saga log.
pub mod log {
    pub const VERIFY_USER: &str = "verify_user";
    pub const RESERVE_STOCK: &str = "reserve_stock";
    pub const CHARGE_PAYMENT: &str = "charge_payment";
    pub const CONFIRM_ORDER: &str = "confirm_order";
    pub const NOTIFY: &str = "notify";
    pub const REFUND_PAYMENT: &str = "refund_payment";
    pub const RELEASE_STOCK: &str = "release_stock";
    pub const CANCEL_ORDER: &str = "cancel_order";
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq, utoipa::ToSchema)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub product_id: i64,
    pub quantity: i64,
    pub total_cents: i64,
    /// `sync` or `async`.
    pub flow: String,
    /// `PENDING`, then `CONFIRMED` or `CANCELLED`.
    pub status: String,
    /// Where the saga stands (`reserve`, `charge`, ..., `done`).
    pub saga_step: String,
    /// Why it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it became CONFIRMED or CANCELLED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<i64>,
    /// The W3C trace id (32 hex digits) of the request that placed it: its
    /// saga (sync) or its events (async) are that trace's spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Order {
    pub fn is_terminal(&self) -> bool {
        self.status != "PENDING"
    }
}

/// One line of an order's saga log.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq, utoipa::ToSchema)]
pub struct SagaEntry {
    pub step: String,
    pub action: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub at: i64,
}

const ORDER_COLUMNS: &str = "id, user_id, product_id, quantity, total_cents, flow, status, \
     saga_step, cancel_reason, created_at, settled_at, trace_id";

pub struct NewOrder<'a> {
    pub user_id: i64,
    pub product_id: i64,
    pub quantity: i64,
    pub total_cents: i64,
    pub flow: &'a str,
    pub idempotency_key: Option<&'a str>,
}

/// Inserts an order; `Ok(None)` when its idempotency key is already taken.
pub async fn insert(db: &Db, new: &NewOrder<'_>) -> Result<Option<Order>, sqlx::Error> {
    let mut conn = db.write.acquire().await?;
    insert_in(&mut conn, new, step::RESERVE).await
}

/// [`insert`] inside a transaction, starting its saga at `first_step`.
pub async fn insert_in(
    conn: &mut SqliteConnection,
    new: &NewOrder<'_>,
    first_step: &str,
) -> Result<Option<Order>, sqlx::Error> {
    let now = now_ms();
    sqlx::query_as::<_, Order>(&format!(
        "INSERT INTO orders (user_id, product_id, quantity, total_cents, flow, status, saga_step,
                             idempotency_key, created_at, updated_at, trace_id)
         VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?, ?)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING {ORDER_COLUMNS}"
    ))
    .bind(new.user_id)
    .bind(new.product_id)
    .bind(new.quantity)
    .bind(new.total_cents)
    .bind(new.flow)
    .bind(first_step)
    .bind(new.idempotency_key)
    .bind(now)
    .bind(now)
    .bind(gauntlet_events::trace::current_trace_id())
    .fetch_optional(&mut *conn)
    .await
}

pub async fn get_in(conn: &mut SqliteConnection, id: i64) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as::<_, Order>(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as::<_, Order>(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut *db.write.acquire().await?)
        .await
}

pub async fn by_key(db: &Db, key: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as::<_, Order>(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = ?"
    ))
    .bind(key)
    .fetch_optional(&mut *db.write.acquire().await?)
    .await
}

pub async fn list(
    db: &Db,
    status: Option<&str>,
    open_sagas_only: bool,
    after: i64,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as::<_, Order>(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders
         WHERE (?1 IS NULL OR status = ?1) AND (?2 = 0 OR saga_step != 'done') AND id > ?3
         ORDER BY id LIMIT ?4"
    ))
    .bind(status)
    .bind(open_sagas_only)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.read)
    .await
}

/// Sync sagas not yet done: what recovery looks at.
pub async fn unfinished(db: &Db) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM orders WHERE flow = 'sync' AND saga_step != 'done' ORDER BY id",
    )
    .fetch_all(&db.read)
    .await
}

pub async fn saga_log(db: &Db, order_id: i64) -> Result<Vec<SagaEntry>, sqlx::Error> {
    sqlx::query_as::<_, SagaEntry>(
        "SELECT step, action, outcome, detail, at FROM saga_log WHERE order_id = ? ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(&mut *db.write.acquire().await?)
    .await
}

pub async fn append(
    db: &Db,
    order_id: i64,
    step: &str,
    action: &str,
    outcome: &str,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut conn = db.write.acquire().await?;
    append_in(&mut conn, order_id, step, action, outcome, detail).await
}

pub async fn append_in(
    conn: &mut SqliteConnection,
    order_id: i64,
    step: &str,
    action: &str,
    outcome: &str,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO saga_log (order_id, step, action, outcome, detail, at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(order_id)
    .bind(step)
    .bind(action)
    .bind(outcome)
    .bind(detail)
    .bind(now_ms())
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Moves the saga on, and logs why, in one transaction.
pub async fn advance(
    db: &Db,
    order_id: i64,
    next_step: &str,
    status: Option<&str>,
    cancel_reason: Option<&str>,
    entry: (&str, &str, &str, Option<&str>),
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let mut tx = db.write.begin().await?;
    sqlx::query(
        "UPDATE orders SET saga_step = ?1, status = COALESCE(?2, status),
         cancel_reason = COALESCE(?3, cancel_reason), updated_at = ?4,
         settled_at = COALESCE(settled_at, CASE WHEN ?2 IS NOT NULL THEN ?4 END) WHERE id = ?5",
    )
    .bind(next_step)
    .bind(status)
    .bind(cancel_reason)
    .bind(now)
    .bind(order_id)
    .execute(&mut *tx)
    .await?;
    let (step, action, outcome, detail) = entry;
    sqlx::query(
        "INSERT INTO saga_log (order_id, step, action, outcome, detail, at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(order_id)
    .bind(step)
    .bind(action)
    .bind(outcome)
    .bind(detail)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
