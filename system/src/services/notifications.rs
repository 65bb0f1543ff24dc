//! notifications: tells customers what happened to their order. Sends each
//! kind of notification at most once per order (a repeat is a no-op 200).
//!
//! - `POST /notifications {"order_id","kind"}` → 201 sent, 200 already sent.
//! - `GET /notifications[?order_id=]`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db};
use crate::error::{ApiError, Json, Query};
use crate::service::{Built, ServiceContext, StartError};
use crate::telemetry::{inc, KindCounter};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/notifications");

#[derive(Clone)]
pub struct NotificationsState {
    db: Db,
    sent: KindCounter,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq)]
pub struct Notification {
    pub id: i64,
    pub order_id: i64,
    pub kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    pub order_id: i64,
    pub kind: String,
}

pub fn app(state: NotificationsState) -> Router {
    Router::new()
        .route("/notifications", post(send).get(list))
        .with_state(state)
}

pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    let db = ctx.db(&MIGRATOR).await?;
    let state = NotificationsState {
        db: db.clone(),
        sent: ctx
            .telemetry
            .counter("notifications_sent", "Notifications sent by kind"),
    };
    let mut built = Built::new(app(state));
    crate::services::sinks_events::start(ctx, &db)?;
    built.db = Some(db);
    Ok(built)
}

async fn send(
    State(st): State<NotificationsState>,
    Json(req): Json<NewNotification>,
) -> Result<(StatusCode, Json<Notification>), ApiError> {
    if req.kind.trim().is_empty() {
        return Err(ApiError::bad_request("kind must not be empty"));
    }
    let inserted = sqlx::query_as::<_, Notification>(
        "INSERT INTO notifications (order_id, kind, created_at) VALUES (?, ?, ?)
         ON CONFLICT (order_id, kind) DO NOTHING RETURNING id, order_id, kind",
    )
    .bind(req.order_id)
    .bind(&req.kind)
    .bind(now_ms())
    .fetch_optional(&mut *st.db.write.acquire().await?)
    .await?;
    if let Some(n) = inserted {
        inc(&st.sent, &n.kind);
        return Ok((StatusCode::CREATED, Json(n)));
    }
    let existing = sqlx::query_as::<_, Notification>(
        "SELECT id, order_id, kind FROM notifications WHERE order_id = ? AND kind = ?",
    )
    .bind(req.order_id)
    .bind(&req.kind)
    .fetch_one(&mut *st.db.write.acquire().await?)
    .await?;
    Ok((StatusCode::OK, Json(existing)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    order_id: Option<i64>,
}

async fn list(
    State(st): State<NotificationsState>,
    Query(f): Query<Filter>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let rows = sqlx::query_as::<_, Notification>(
        "SELECT id, order_id, kind FROM notifications WHERE ?1 IS NULL OR order_id = ?1 ORDER BY id",
    )
    .bind(f.order_id)
    .fetch_all(&st.db.read)
    .await?;
    Ok(Json(rows))
}
