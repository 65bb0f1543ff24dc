//! catalog: products, their stock, and per-order reservations.
//!
//! Every reservation operation is keyed by order id and idempotent, so a
//! saga may repeat any of them after a timeout:
//! - `POST /reservations {"order_id","product_id","quantity"}` takes stock
//!   (201; 200 when already reserved; 409 insufficient stock or already
//!   released; 404 unknown product);
//! - `POST /reservations/{order_id}/release` gives it back (a release that
//!   comes first leaves a tombstone so a late reserve is refused);
//! - `POST /reservations/{order_id}/commit` makes it final (order confirmed).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use sqlx::SqliteConnection;

use crate::db::{now_ms, Db};
use crate::error::{ApiError, Json, Path, Query};
use crate::service::{Built, ServiceContext, StartError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/catalog");

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq, utoipa::ToSchema)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    /// In stock now: not reserved by any order.
    pub stock: i64,
    /// The stock it was created with.
    pub initial_stock: i64,
}

/// A product to create; the bounds are the ones its handler checks.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Anything with a character that is not whitespace; stored trimmed.
    #[schema(pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    pub name: String,
    #[serde(deserialize_with = "crate::integer::i64")]
    #[schema(minimum = 0)]
    pub price_cents: i64,
    #[serde(deserialize_with = "crate::integer::i64")]
    #[schema(minimum = 0)]
    pub stock: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq)]
pub struct Reservation {
    pub order_id: i64,
    pub product_id: i64,
    pub quantity: i64,
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub order_id: i64,
    pub product_id: i64,
    pub quantity: i64,
}

pub fn app(db: Db) -> Router {
    Router::new()
        .route("/products", post(create).get(list))
        .route("/products/{id}", get(fetch))
        .route("/reservations", post(reserve).get(reservations))
        .route("/reservations/{order_id}/release", post(release))
        .route("/reservations/{order_id}/commit", post(commit))
        .with_state(db)
}

pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    let db = ctx.db(&MIGRATOR).await?;
    let mut built = Built::new(app(db.clone()));
    if let Some(producer) = ctx.producer()? {
        crate::services::catalog_events::start(ctx, &db, producer, &mut built)?;
    }
    built.db = Some(db);
    Ok(built)
}

async fn create(
    State(db): State<Db>,
    Json(new): Json<NewProduct>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    let mut problems = Vec::new();
    if new.name.trim().is_empty() {
        problems.push("name must not be empty");
    }
    if new.price_cents < 0 {
        problems.push("price_cents must be >= 0");
    }
    if new.stock < 0 {
        problems.push("stock must be >= 0");
    }
    if !problems.is_empty() {
        return Err(ApiError::bad_request("invalid product").with_detail(problems));
    }
    let product = sqlx::query_as::<_, Product>(
        "INSERT INTO products (name, price_cents, stock, initial_stock, created_at)
         VALUES (?, ?, ?, ?, ?) RETURNING id, name, price_cents, stock, initial_stock",
    )
    .bind(new.name.trim())
    .bind(new.price_cents)
    .bind(new.stock)
    .bind(new.stock)
    .bind(now_ms())
    .fetch_one(&mut *db.write.acquire().await?)
    .await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// `GET /products`' query: a page of products in id order.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// How many products at most; any integer, taken as 1 to 1000.
    #[serde(default = "default_limit")]
    #[param(default = 100)]
    limit: i64,
    /// Only products with a greater id (the last id of the previous page).
    #[serde(default)]
    #[param(default = 0)]
    after: i64,
}

fn default_limit() -> i64 {
    100
}

async fn list(
    State(db): State<Db>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Product>>, ApiError> {
    let rows = sqlx::query_as::<_, Product>(
        "SELECT id, name, price_cents, stock, initial_stock FROM products
         WHERE id > ? ORDER BY id LIMIT ?",
    )
    .bind(page.after)
    .bind(page.limit.clamp(1, 1000))
    .fetch_all(&db.read)
    .await?;
    Ok(Json(rows))
}

async fn fetch(State(db): State<Db>, Path(id): Path<i64>) -> Result<Json<Product>, ApiError> {
    sqlx::query_as::<_, Product>(
        "SELECT id, name, price_cents, stock, initial_stock FROM products WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(&db.read)
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::not_found("product", id))
}

async fn reserve(
    State(db): State<Db>,
    Json(req): Json<ReserveRequest>,
) -> Result<(StatusCode, Json<Reservation>), ApiError> {
    let mut tx = db.write.begin().await?;
    let (status, r) = reserve_in(&mut tx, &req).await?;
    tx.commit().await?;
    Ok((status, Json(r)))
}

/// Takes stock for an order, idempotently: 201 reserved now, 200 already.
pub async fn reserve_in(
    tx: &mut SqliteConnection,
    req: &ReserveRequest,
) -> Result<(StatusCode, Reservation), ApiError> {
    if req.quantity <= 0 {
        return Err(ApiError::bad_request("quantity must be > 0"));
    }
    if let Some(existing) = find(tx, req.order_id).await? {
        return match existing.status.as_str() {
            "RELEASED" => Err(ApiError::conflict(format!(
                "reservation for order {} was already released",
                req.order_id
            ))),
            _ => Ok((StatusCode::OK, existing)),
        };
    }
    let stock: Option<i64> = sqlx::query_scalar("SELECT stock FROM products WHERE id = ?")
        .bind(req.product_id)
        .fetch_optional(&mut *tx)
        .await?;
    let stock = stock.ok_or_else(|| ApiError::not_found("product", req.product_id))?;
    if stock < req.quantity {
        return Err(
            ApiError::conflict("insufficient stock").with_detail(serde_json::json!({
                "product_id": req.product_id, "available": stock, "requested": req.quantity
            })),
        );
    }
    let now = now_ms();
    sqlx::query("UPDATE products SET stock = stock - ? WHERE id = ?")
        .bind(req.quantity)
        .bind(req.product_id)
        .execute(&mut *tx)
        .await?;
    let reservation = sqlx::query_as::<_, Reservation>(
        "INSERT INTO reservations (order_id, product_id, quantity, status, created_at, updated_at)
         VALUES (?, ?, ?, 'RESERVED', ?, ?) RETURNING order_id, product_id, quantity, status",
    )
    .bind(req.order_id)
    .bind(req.product_id)
    .bind(req.quantity)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    Ok((StatusCode::CREATED, reservation))
}

async fn find(
    tx: &mut SqliteConnection,
    order_id: i64,
) -> Result<Option<Reservation>, sqlx::Error> {
    sqlx::query_as::<_, Reservation>(
        "SELECT order_id, product_id, quantity, status FROM reservations WHERE order_id = ?",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await
}

async fn release(
    State(db): State<Db>,
    Path(order_id): Path<i64>,
) -> Result<Json<Reservation>, ApiError> {
    let mut tx = db.write.begin().await?;
    let r = release_in(&mut tx, order_id).await?;
    tx.commit().await?;
    Ok(Json(r))
}

/// Gives an order's stock back, idempotently. A release that comes before
/// any reserve leaves a tombstone, so a reserve still in flight cannot take
/// stock for an order already given up.
pub async fn release_in(tx: &mut SqliteConnection, order_id: i64) -> Result<Reservation, ApiError> {
    let now = now_ms();
    match find(tx, order_id).await? {
        Some(r) if r.status == "RELEASED" => Ok(r),
        Some(r) if r.status == "COMMITTED" => Err(ApiError::conflict(format!(
            "reservation for order {order_id} is committed; it cannot be released"
        ))),
        Some(r) => {
            sqlx::query("UPDATE products SET stock = stock + ? WHERE id = ?")
                .bind(r.quantity)
                .bind(r.product_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE reservations SET status = 'RELEASED', updated_at = ? WHERE order_id = ?",
            )
            .bind(now)
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
            Ok(Reservation {
                status: "RELEASED".into(),
                ..r
            })
        }
        None => {
            sqlx::query(
                "INSERT INTO reservations (order_id, product_id, quantity, status, created_at, updated_at)
                 VALUES (?, 0, 0, 'RELEASED', ?, ?)",
            )
            .bind(order_id)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(Reservation {
                order_id,
                product_id: 0,
                quantity: 0,
                status: "RELEASED".into(),
            })
        }
    }
}

async fn commit(
    State(db): State<Db>,
    Path(order_id): Path<i64>,
) -> Result<Json<Reservation>, ApiError> {
    let mut tx = db.write.begin().await?;
    let r = commit_in(&mut tx, order_id).await?;
    tx.commit().await?;
    Ok(Json(r))
}

/// Makes an order's reservation final (the order was confirmed).
pub async fn commit_in(tx: &mut SqliteConnection, order_id: i64) -> Result<Reservation, ApiError> {
    let existing = find(tx, order_id)
        .await?
        .ok_or_else(|| ApiError::not_found("reservation for order", order_id))?;
    match existing.status.as_str() {
        "COMMITTED" => Ok(existing),
        "RELEASED" => Err(ApiError::conflict(format!(
            "reservation for order {order_id} was released; it cannot be committed"
        ))),
        _ => {
            sqlx::query(
                "UPDATE reservations SET status = 'COMMITTED', updated_at = ? WHERE order_id = ?",
            )
            .bind(now_ms())
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
            Ok(Reservation {
                status: "COMMITTED".into(),
                ..existing
            })
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReservationFilter {
    status: Option<String>,
}

/// Every reservation (optionally by status): final state for invariants.
async fn reservations(
    State(db): State<Db>,
    Query(filter): Query<ReservationFilter>,
) -> Result<Json<Vec<Reservation>>, ApiError> {
    let rows = sqlx::query_as::<_, Reservation>(
        "SELECT order_id, product_id, quantity, status FROM reservations
         WHERE ?1 IS NULL OR status = ?1 ORDER BY order_id",
    )
    .bind(filter.status)
    .fetch_all(&db.read)
    .await?;
    Ok(Json(rows))
}
