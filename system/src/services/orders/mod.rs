//! orders: takes orders and sees each through its saga.
//!
//! - `POST /orders {"user_id","product_id","quantity","flow"}` with an
//!   optional `Idempotency-Key` header (the same key returns the same order,
//!   200). A `sync` order runs its saga in the request and comes back 201
//!   `CONFIRMED` or `CANCELLED` (202 `PENDING` when a compensation or the
//!   final commit cannot complete while the client waits, or the saga
//!   outlives the request's deadline; recovery finishes it).
//! - `GET /orders/{id}`: the order and its saga log.
//! - `GET /orders[?status=&open=true&after=&limit=]`: orders, for checkers.
//!
//! A recovery loop drives every unfinished sync saga it finds, so a saga
//! cut short by a crash is completed or compensated after the restart.

mod events;
mod saga;
pub mod store;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use futures::FutureExt;
use gauntlet_resilience::Backoff;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::client::{ClientError, ServiceClient, IDEMPOTENCY_KEY};
use crate::config::Service;
use crate::db::Db;
use crate::error::{ApiError, Json, Path, Query};
use crate::service::{Built, ServiceContext, StartError};
use crate::services::catalog::Product;
use crate::services::users::User;
pub use saga::{Saga, Until, MUST_SUCCEED_BACKOFF};
pub use store::{Order, SagaEntry};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/orders");

/// How long a sync order's request waits for its saga before answering 202.
/// Below the gateway's timeout for this link, so the client hears from us.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(20);
/// How long an idempotent replay waits for a saga another request drives.
const REPLAY_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct OrdersState {
    db: Db,
    users: ServiceClient,
    catalog: ServiceClient,
    saga: Saga,
    /// Present when the system has a broker.
    async_orders: Option<events::AsyncOrders>,
}

pub use gauntlet_model::Flow;

/// An order to place. A `user_id` or `product_id` that does not exist is
/// answered 422.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    #[serde(deserialize_with = "crate::integer::i64")]
    pub user_id: i64,
    #[serde(deserialize_with = "crate::integer::i64")]
    pub product_id: i64,
    #[serde(deserialize_with = "crate::integer::i64")]
    #[schema(minimum = 1)]
    pub quantity: i64,
    #[serde(default)]
    pub flow: Flow,
}

/// An order with its saga log, as `GET /orders/{id}` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OrderView {
    #[serde(flatten)]
    pub order: Order,
    pub saga: Vec<SagaEntry>,
}

pub fn app(state: OrdersState) -> Router {
    Router::new()
        .route("/orders", post(place).get(list))
        .route("/orders/{id}", get(fetch))
        .with_state(state)
}

pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    let db = ctx.db(&MIGRATOR).await?;
    let t = &ctx.telemetry;
    let saga = Saga {
        db: db.clone(),
        catalog: ctx.client(Service::Catalog)?,
        payments: ctx.client(Service::Payments)?,
        notifications: ctx.client(Service::Notifications)?,
        analytics: ctx.client(Service::Analytics)?,
        backoff: Arc::new(Backoff::new(
            MUST_SUCCEED_BACKOFF,
            ctx.config.seed_for("orders.saga"),
        )),
        in_flight: Arc::new(Mutex::new(HashSet::new())),
        outcomes: t.counter("saga_outcomes", "Sagas ended, by outcome"),
        compensations: t.counter("saga_compensations", "Compensations run, by step"),
    };
    let mut built = Built::new(axum::Router::new());
    let async_orders = match ctx.producer()? {
        Some(producer) => Some(events::start(
            ctx,
            &db,
            producer,
            saga.outcomes.clone(),
            &mut built,
        )?),
        None => None,
    };
    let state = OrdersState {
        db: db.clone(),
        users: ctx.client(Service::Users)?,
        catalog: saga.catalog.clone(),
        saga: saga.clone(),
        async_orders,
    };
    built.router = app(state);
    built.db = Some(db);
    built
        .background
        .push(recover(saga, ctx.config.saga_recovery_interval).boxed());
    Ok(built)
}

/// Drives every unfinished saga nobody in this process is driving.
async fn recover(saga: Saga, every: Duration) {
    let mut drivers = JoinSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        while drivers.try_join_next().is_some() {}
        let ids = match store::unfinished(&saga.db).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "saga recovery: cannot list unfinished sagas");
                continue;
            }
        };
        for id in ids {
            let Some(claim) = saga.claim(id) else {
                continue;
            };
            let saga = saga.clone();
            drivers.spawn(async move {
                let _claim = claim;
                if let Err(e) = saga.drive(id, Until::Done).await {
                    tracing::warn!(order = id, error = %e, "saga recovery failed");
                }
            });
        }
    }
}

async fn place(
    State(st): State<OrdersState>,
    headers: HeaderMap,
    Json(req): Json<PlaceOrder>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    if req.quantity <= 0 {
        return Err(ApiError::bad_request("quantity must be > 0").with_detail(req.quantity));
    }
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 200 => Some(k.to_string()),
            _ => {
                return Err(ApiError::bad_request(
                    "Idempotency-Key must be 1 to 200 visible ASCII characters",
                ))
            }
        },
    };
    if let Some(k) = &key {
        if let Some(existing) = store::by_key(&st.db, k).await? {
            return replay(&st, existing).await;
        }
    }
    if req.flow == Flow::Async && st.async_orders.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "flow \"async\" needs a Kafka broker, and this system runs without one",
        ));
    }
    // Validate before anything is written: an unknown user or product is
    // the caller's mistake and leaves no trace.
    let user: User = st
        .users
        .get(&format!("/users/{}", req.user_id))
        .await
        .map_err(dependency)?;
    let product: Product = st
        .catalog
        .get(&format!("/products/{}", req.product_id))
        .await
        .map_err(dependency)?;
    // Well-formed, like an unknown product: it cannot be priced, so 422.
    let total_cents = product
        .price_cents
        .checked_mul(req.quantity)
        .ok_or_else(|| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "quantity too large").with_detail(
                format!(
                    "{} x {} cents does not fit in 64 bits",
                    req.quantity, product.price_cents
                ),
            )
        })?;
    let new = store::NewOrder {
        user_id: user.id,
        product_id: product.id,
        quantity: req.quantity,
        total_cents,
        flow: req.flow.as_str(),
        idempotency_key: key.as_deref(),
    };
    if let Some(async_orders) = &st.async_orders {
        if req.flow == Flow::Async {
            return match async_orders.place(&st.db, &new).await? {
                Some(order) => Ok((StatusCode::ACCEPTED, Json(order))),
                None => {
                    let existing = store::by_key(&st.db, key.as_deref().unwrap_or_default())
                        .await?
                        .ok_or_else(|| ApiError::internal("order vanished"))?;
                    Ok((StatusCode::OK, Json(existing)))
                }
            };
        }
    }
    let Some(order) = store::insert(&st.db, &new).await? else {
        // Another request with the same key won the race.
        let existing = store::by_key(&st.db, key.as_deref().unwrap_or_default())
            .await?
            .ok_or_else(|| ApiError::internal("order vanished"))?;
        return replay(&st, existing).await;
    };
    let detail = format!("user {} exists", user.id);
    store::append(
        &st.db,
        order.id,
        store::log::VERIFY_USER,
        "execute",
        "succeeded",
        Some(&detail),
    )
    .await?;
    let Some(claim) = st.saga.claim(order.id) else {
        return wait_for(&st, order.id, SYNC_DEADLINE).await;
    };
    let driven =
        tokio::time::timeout(SYNC_DEADLINE, st.saga.drive(order.id, Until::Terminal)).await;
    drop(claim);
    match driven {
        Ok(Ok(order)) if order.is_terminal() => Ok((StatusCode::CREATED, Json(order))),
        Ok(Ok(order)) => Ok((StatusCode::ACCEPTED, Json(order))),
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(_) => {
            let order = store::get(&st.db, order.id)
                .await?
                .ok_or_else(|| ApiError::internal("order vanished"))?;
            Ok((StatusCode::ACCEPTED, Json(order)))
        }
    }
}

/// The answer to a repeated idempotency key: the same order, once its saga
/// has settled (or as it stands, if that takes too long; an async order
/// at once, as its first answer was).
async fn replay(st: &OrdersState, order: Order) -> Result<(StatusCode, Json<Order>), ApiError> {
    if order.is_terminal() || order.flow == "async" {
        return Ok((StatusCode::OK, Json(order)));
    }
    let (_, Json(order)) = wait_for(st, order.id, REPLAY_WAIT).await?;
    Ok((StatusCode::OK, Json(order)))
}

async fn wait_for(
    st: &OrdersState,
    id: i64,
    deadline: Duration,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let order = store::get(&st.db, id)
            .await?
            .ok_or_else(|| ApiError::not_found("order", id))?;
        if order.is_terminal() {
            return Ok((StatusCode::CREATED, Json(order)));
        }
        if tokio::time::Instant::now() >= until {
            return Ok((StatusCode::ACCEPTED, Json(order)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A dependency's answer during validation: its 4xx is the caller's
/// mistake (say so, e.g. "user 7 not found"); anything else is ours.
fn dependency(e: ClientError) -> ApiError {
    match e {
        ClientError::Status { status, body, .. } if status == StatusCode::NOT_FOUND => ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body,
        },
        other => other.into(),
    }
}

async fn fetch(
    State(st): State<OrdersState>,
    Path(id): Path<i64>,
) -> Result<Json<OrderView>, ApiError> {
    let order = store::get(&st.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("order", id))?;
    let saga = store::saga_log(&st.db, id).await?;
    Ok(Json(OrderView { order, saga }))
}

/// `GET /orders`' query: orders in id order, for checkers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only orders in this status (`PENDING`, `CONFIRMED`, `CANCELLED`).
    status: Option<String>,
    /// Only orders whose saga is not done yet.
    #[serde(default)]
    #[param(default = false)]
    open: bool,
    /// Only orders with a greater id (the last id of the previous page).
    #[serde(default)]
    #[param(default = 0)]
    after: i64,
    /// How many orders at most; any integer, taken as 1 to 10000.
    #[serde(default = "default_limit")]
    #[param(default = 1000)]
    limit: i64,
}

fn default_limit() -> i64 {
    1000
}

async fn list(
    State(st): State<OrdersState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Order>>, ApiError> {
    let rows = store::list(
        &st.db,
        q.status.as_deref(),
        q.open,
        q.after,
        q.limit.clamp(1, 10_000),
    )
    .await?;
    Ok(Json(rows))
}
